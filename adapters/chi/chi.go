// Package chiadapter protects a go-chi/chi v5 router with a runtimeid engine.
//
//	r := chi.NewRouter()
//	r.Use(chiadapter.Middleware(eng))
//
// The middleware runs before chi routes the request, so it asks the
// router which route will run, with chi's own matcher
// ([chi.Routes.Find]), and evaluates the request as the action
// "<METHOD> <pattern>" of that route, such as "GET /api/orders/{id}"
// (see [runtimeid.ActionName]; a regular expression in a parameter is
// dropped). Its sensitivity comes from
// [runtimeid.Config.Sensitivities]. A request that matches no route is
// evaluated as [runtimeid.Unmatched]. A single route takes its own
// action name and sensitivity with [Protect]:
//
//	r.With(chiadapter.Protect(eng, "payout", runtimeid.High)).
//		Post("/api/payouts", h)
//
// The action is never derived from the raw path: chi matches the escaped
// path, so "/api%2Fexport", "/api//export" and "/API/export" match no
// route. Middleware that rewrites the path or method chi routes on
// (middleware.CleanPath, StripSlashes, GetHead) must be registered
// before this one, or the route that runs may differ from the one
// evaluated; GetHead is handled either way, since HEAD is evaluated as
// GET.
package chiadapter

import (
	"net/http"

	"github.com/go-chi/chi/v5"

	"github.com/runtimeid/runtimeid"
	"github.com/runtimeid/runtimeid/adapters/internal/adapt"
)

// Middleware evaluates every request before chi's routing. Refused
// requests get the engine's enforcer response; the others reach their
// handler with the evaluation in the request context (see
// [runtimeid.FromContext]). CORS preflights pass unevaluated (see
// [runtimeid.IsPreflight]). opts apply to every route.
func Middleware(eng *runtimeid.Engine,
	opts ...runtimeid.RouteOption,
) func(http.Handler) http.Handler {
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			a := eng.RouteAction(r.Method, Pattern(r))
			r, _, ok := adapt.Check(eng, w, r, a, opts)
			if ok {
				next.ServeHTTP(w, r)
			}
		})
	}
}

// Protect returns route-level middleware that evaluates the request as
// the named action with its own sensitivity. Under [Middleware] the request is
// evaluated again as this action, reusing the identity the middleware
// verified (see [runtimeid.Evaluation.Nested]); both must allow it.
func Protect(eng *runtimeid.Engine, name string, s runtimeid.Sensitivity,
	opts ...runtimeid.RouteOption,
) func(http.Handler) http.Handler {
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			a := adapt.Route(eng, r.Method, Pattern(r), name, s)
			r, _, ok := adapt.Check(eng, w, r, a, opts)
			if ok {
				next.ServeHTTP(w, r)
			}
		})
	}
}

// Pattern returns the normalised pattern of the route chi will run for
// r, or "" when none will (no match, or a method the route lacks), or
// when r is not being served by a chi router. HEAD falls back to the
// GET route, which chi's GetHead middleware would run.
func Pattern(r *http.Request) string {
	rctx := chi.RouteContext(r.Context())
	if rctx == nil || rctx.Routes == nil {
		return ""
	}
	method := rctx.RouteMethod
	if method == "" {
		method = r.Method
	}
	path := routePath(r, rctx)
	p := rctx.Routes.Find(chi.NewRouteContext(), method, path)
	if p == "" && method == http.MethodHead {
		p = rctx.Routes.Find(chi.NewRouteContext(), http.MethodGet, path)
	}
	return adapt.Normalize(p)
}

// routePath is the path chi's root router routes on: a path set by
// earlier middleware, else the escaped path as sent.
func routePath(r *http.Request, rctx *chi.Context) string {
	// Inside a mounted router RoutePath is relative to the mount; Find
	// starts from the root, so only a rewrite made before routing
	// counts.
	if rctx.RoutePath != "" && len(rctx.RoutePatterns) == 0 {
		return rctx.RoutePath
	}
	p := r.URL.RawPath
	if p == "" {
		p = r.URL.Path
	}
	if p == "" {
		p = "/"
	}
	return p
}
