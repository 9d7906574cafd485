// Package servemux protects a standard library [http.ServeMux] with a
// runtimeid engine.
//
//	handler := servemux.Wrap(eng, mux)
//
// Every request is evaluated before the mux runs a handler, as the action
// "<METHOD> <pattern>" of the route the mux will run, such as
// "GET /api/orders/{id}" (see [runtimeid.ActionName]); its sensitivity
// comes from [runtimeid.Config.Sensitivities]. A single route takes its
// own action name and sensitivity with [Protect].
//
// The action is never derived from the raw path. A request the mux would
// redirect to a cleaned path ("/api//export", "/api/./export") or to a
// trailing slash runs no handler, so it is evaluated as
// [runtimeid.Unmatched], like requests the mux answers with 404 or 405;
// the redirect's target is evaluated as its own route when the client
// follows it.
package servemux

import (
	"net/http"
	"path"
	"strings"

	"github.com/runtimeid/runtimeid"
	"github.com/runtimeid/runtimeid/adapters/internal/adapt"
)

// Wrap returns a handler that evaluates every request and then serves it
// with mux. Refused requests get the engine's enforcer response; the
// others reach their handler with the evaluation in the request context
// (see [runtimeid.FromContext]). CORS preflights pass unevaluated (see
// [runtimeid.IsPreflight]). opts apply to every route.
func Wrap(eng *runtimeid.Engine, mux *http.ServeMux, opts ...runtimeid.RouteOption) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		a := eng.RouteAction(r.Method, Pattern(mux, r))
		r, _, ok := adapt.Check(eng, w, r, a, opts)
		if ok {
			mux.ServeHTTP(w, r)
		}
	})
}

// Protect returns middleware for one route's handler, evaluated as the
// named action with its own sensitivity:
//
//	mux.Handle("POST /api/payouts",
//		servemux.Protect(eng, "payout", runtimeid.High)(h))
//
// The action's Route is the mux's pattern. Under [Wrap] the request is
// evaluated again as this action, reusing the identity the middleware
// verified (see [runtimeid.Evaluation.Nested]); both must allow it.
func Protect(eng *runtimeid.Engine, name string, s runtimeid.Sensitivity,
	opts ...runtimeid.RouteOption,
) func(http.Handler) http.Handler {
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			a := adapt.Route(eng, r.Method, patternPath(r.Pattern), name, s)
			r, _, ok := adapt.Check(eng, w, r, a, opts)
			if ok {
				next.ServeHTTP(w, r)
			}
		})
	}
}

// Pattern returns the pattern of the route mux will run for r, without
// its method ("/api/orders/{id}", or "host/path" for a pattern with a
// host), or "" when mux will run no route: no route matches, the method
// is not allowed, or the mux redirects.
func Pattern(mux *http.ServeMux, r *http.Request) string {
	_, pattern := mux.Handler(r)
	if pattern == "" || redirects(r, patternPath(pattern)) {
		return ""
	}
	return patternPath(pattern)
}

// patternPath drops the method of a ServeMux pattern.
func patternPath(pattern string) string {
	if i := strings.IndexAny(pattern, " \t"); i >= 0 {
		return strings.TrimLeft(pattern[i:], " \t")
	}
	return pattern
}

// redirects reports whether the mux answers r with a redirect although
// [http.ServeMux.Handler] names a pattern: the pattern is then the one
// the redirect's target would match. The mux redirects a path that is
// not clean, and a path without a trailing slash that only a pattern
// ending in a slash or in a "{name...}" wildcard matches (Go 1.22
// routing).
func redirects(r *http.Request, pattern string) bool {
	p := r.URL.EscapedPath()
	if r.Method != http.MethodConnect && cleanPath(p) != p {
		return true
	}
	if i := strings.IndexByte(pattern, '/'); i > 0 {
		pattern = pattern[i:] // drop the host
	}
	pattern = strings.TrimSuffix(pattern, "{$}")
	// A trailing "{name...}" also matches an empty rest, so the pattern
	// behaves as if it ended in its slash: "/files/{p...}" answers
	// "/files" with a redirect to "/files/".
	if strings.HasSuffix(pattern, "...}") {
		if i := strings.LastIndexByte(pattern, '/'); i >= 0 {
			pattern = pattern[:i+1]
		}
	}
	if !strings.HasSuffix(pattern, "/") || strings.HasSuffix(p, "/") {
		return false
	}
	// A pattern ending in a slash matches a path with fewer slashes only
	// by redirecting it to the path with a slash added.
	return strings.Count(p, "/") < strings.Count(pattern, "/")
}

// cleanPath is the path the mux routes: p cleaned of "." and ".."
// segments and repeated slashes, with its trailing slash kept, as
// net/http does it.
func cleanPath(p string) string {
	if p == "" {
		return "/"
	}
	if p[0] != '/' {
		p = "/" + p
	}
	np := path.Clean(p)
	if p[len(p)-1] == '/' && np != "/" {
		np += "/"
	}
	return np
}
