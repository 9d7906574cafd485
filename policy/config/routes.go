package config

import (
	"fmt"
	"net/http"

	"github.com/runtimeid/runtimeid"
)

// Unmatched is the action name of a request that matches no route.
const Unmatched = "unmatched"

// Routes matches requests against the configured route patterns with a
// [net/http.ServeMux] used only for matching, so the action is always a
// pattern the operator wrote, never the raw path. It is immutable and
// safe for concurrent use.
type Routes struct {
	mux    *http.ServeMux
	routes map[string]Route
	def    runtimeid.Sensitivity
}

// NewRoutes builds the matcher. Requests that match no route get the
// action [Unmatched] with sensitivity def. Invalid or conflicting
// patterns are an error.
func NewRoutes(routes []Route, def runtimeid.Sensitivity) (rt *Routes, err error) {
	rt = &Routes{mux: http.NewServeMux(), routes: map[string]Route{}, def: def}
	defer func() {
		// ServeMux panics on a bad pattern or a conflict.
		if p := recover(); p != nil {
			rt, err = nil, fmt.Errorf("config: routes: %v", p)
		}
	}()
	for _, r := range routes {
		rt.mux.Handle(r.Pattern, http.NotFoundHandler())
		rt.routes[r.Pattern] = r
	}
	return rt, nil
}

// Pattern returns the pattern r matches, or "" when none. It fits
// [runtimeid.Config.RoutePattern].
func (rt *Routes) Pattern(r *http.Request) string {
	_, p := rt.mux.Handler(r)
	if _, ok := rt.routes[p]; !ok {
		return ""
	}
	return p
}

// Match returns the action r is evaluated as, and the route's options
// for [runtimeid.Engine.EvaluateRequest].
func (rt *Routes) Match(r *http.Request) (runtimeid.Action, []runtimeid.RouteOption) {
	p := rt.Pattern(r)
	if p == "" {
		return runtimeid.Action{Name: Unmatched, Sensitivity: rt.def}, nil
	}
	route := rt.routes[p]
	s, _ := runtimeid.ParseSensitivity(route.Sensitivity)
	a := runtimeid.Action{Name: p, Route: p, Sensitivity: s}
	if route.FailOpen {
		return a, []runtimeid.RouteOption{runtimeid.FailOpen()}
	}
	return a, nil
}

// Lookup returns the route of a pattern.
func (rt *Routes) Lookup(pattern string) (Route, bool) {
	r, ok := rt.routes[pattern]
	return r, ok
}

// Sensitivities returns the sensitivity of each pattern, for
// [runtimeid.Config.Sensitivities].
func (rt *Routes) Sensitivities() map[string]runtimeid.Sensitivity {
	m := make(map[string]runtimeid.Sensitivity, len(rt.routes))
	for p, r := range rt.routes {
		m[p], _ = runtimeid.ParseSensitivity(r.Sensitivity)
	}
	return m
}
