// Package echoadapter protects a labstack/echo v4 server with a runtimeid
// engine. It is its own Go module, so that the core module never pulls
// echo into a build:
//
//	import echoadapter "github.com/runtimeid/runtimeid/adapters/echo"
//
//	e := echo.New()
//	e.Use(echoadapter.Middleware(eng))
//
// Middleware registered with Use runs after echo routed the request, so
// every request is evaluated as the action "<METHOD> <pattern>" of the
// route that will run, from [echo.Context.Path], with echo's ":id"
// written "{id}" (see [runtimeid.ActionName]), such as
// "GET /api/orders/{id}": the same name the other adapters give, so one
// policy serves them all. Its sensitivity comes from
// [runtimeid.Config.Sensitivities]. A request that no route of its method
// matches is evaluated as [runtimeid.Unmatched], even where echo names a
// path for its 404 or 405 response. A single route takes its own action
// name and sensitivity with [Protect]:
//
//	e.POST("/api/payouts", h,
//		echoadapter.Protect(eng, "payout", runtimeid.High))
//
// The action is never derived from the raw path: echo routes on the
// escaped path, so "/api%2Fexport" matches no route. Do not register the
// middleware with Pre: it would run before routing and see no route.
package echoadapter

import (
	"sync"

	"github.com/labstack/echo/v4"

	"github.com/runtimeid/runtimeid"
	"github.com/runtimeid/runtimeid/adapters/internal/adapt"
)

// ContextKey is the key under which the evaluation is stored in the
// echo context: c.Get(ContextKey).
const ContextKey = "runtimeid"

// Middleware evaluates every request. Refused requests get the engine's
// enforcer response and stop there; the others continue with the
// evaluation in the echo context (see [Evaluation]) and in the request
// context (see [runtimeid.FromContext]). CORS preflights pass
// unevaluated (see [runtimeid.IsPreflight]). opts apply to every route.
func Middleware(eng *runtimeid.Engine, opts ...runtimeid.RouteOption) echo.MiddlewareFunc {
	var routes routeIndex
	return func(next echo.HandlerFunc) echo.HandlerFunc {
		return func(c echo.Context) error {
			a := eng.RouteAction(c.Request().Method, routes.pattern(c))
			return check(eng, c, a, opts, next)
		}
	}
}

// Protect returns route-level middleware that evaluates the request as
// the named action with its own sensitivity. Under [Middleware] the request is
// evaluated again as this action, reusing the identity the middleware
// verified (see [runtimeid.Evaluation.Nested]); both must allow it.
func Protect(eng *runtimeid.Engine, name string, s runtimeid.Sensitivity,
	opts ...runtimeid.RouteOption,
) echo.MiddlewareFunc {
	var routes routeIndex
	return func(next echo.HandlerFunc) echo.HandlerFunc {
		return func(c echo.Context) error {
			a := adapt.Route(eng, c.Request().Method, routes.pattern(c), name, s)
			return check(eng, c, a, opts, next)
		}
	}
}

func check(eng *runtimeid.Engine, c echo.Context, a runtimeid.Action,
	opts []runtimeid.RouteOption, next echo.HandlerFunc,
) error {
	r, ev, ok := adapt.Check(eng, c.Response(), c.Request(), a, opts)
	if !ok {
		// The refusal is written; returning nil keeps echo's error
		// handler from writing a second response.
		return nil
	}
	c.SetRequest(r)
	if ev != nil {
		c.Set(ContextKey, ev)
	}
	return next(c)
}

// Evaluation returns the evaluation of c's request, or nil outside a
// protected route. Treat it as read-only. The request context carries the
// same one: runtimeid.FromContext(c.Request().Context()).
func Evaluation(c echo.Context) *runtimeid.Evaluation {
	ev, _ := c.Get(ContextKey).(*runtimeid.Evaluation)
	return ev
}

// Pattern returns the normalised pattern of the route echo matched for
// c, or "" when no route of the request's method did. echo's context
// names a path for 404 and 405 responses too, so the path is checked
// against the routes registered for the method, by a walk of echo's
// route list ([Middleware] and [Protect] remember the routes they found).
func Pattern(c echo.Context) string {
	path := c.Path()
	if path == "" || !routed(routeOf(c, path)) {
		return ""
	}
	return adapt.Normalize(path)
}

// route is a route as echo registers it, on the router that serves a
// request's host.
type route struct {
	router       *echo.Router
	method, path string
}

// routeOf returns the route c would run if path is registered.
func routeOf(c echo.Context, path string) route {
	e := c.Echo()
	router := e.Router()
	if hr, ok := e.Routers()[c.Request().Host]; ok {
		router = hr
	}
	return route{router: router, method: c.Request().Method, path: path}
}

// routed reports whether rt is registered: a walk of echo's route list,
// which echo keeps without an index.
func routed(rt route) bool {
	for _, r := range rt.router.Routes() {
		if r.Path == rt.path && r.Method == rt.method {
			return true
		}
	}
	return false
}

// routeIndex remembers the routes found registered, so that a request
// to one is checked with a map lookup rather than a walk of echo's list
// (1.2 µs among 50 routes). echo adds routes but never removes them, so
// a remembered route stays true; a path not remembered is walked for,
// which finds routes added since. The index holds registered routes
// only, so it is bounded by them whatever the requests.
type routeIndex struct {
	mu    sync.RWMutex
	known map[route]struct{}
}

// pattern is [Pattern] through the index.
func (x *routeIndex) pattern(c echo.Context) string {
	path := c.Path()
	if path == "" {
		return ""
	}
	rt := routeOf(c, path)
	x.mu.RLock()
	_, ok := x.known[rt]
	x.mu.RUnlock()
	if !ok {
		if !routed(rt) {
			return ""
		}
		x.mu.Lock()
		if x.known == nil {
			x.known = make(map[route]struct{})
		}
		x.known[rt] = struct{}{}
		x.mu.Unlock()
	}
	return adapt.Normalize(path)
}
