// Package adapt holds what the router adapters share: the evaluation
// step and the normalisation of route patterns.
package adapt

import (
	"net/http"
	"strings"

	"github.com/runtimeid/runtimeid"
)

// Check evaluates r as the action a and reports whether the handler may
// run. On false the refusal is written. On true it returns r with the
// evaluation in its context, and the evaluation. CORS preflights pass
// unevaluated with a nil evaluation (see [runtimeid.IsPreflight]).
func Check(eng *runtimeid.Engine, w http.ResponseWriter, r *http.Request,
	a runtimeid.Action, opts []runtimeid.RouteOption,
) (*http.Request, *runtimeid.Evaluation, bool) {
	if runtimeid.IsPreflight(r) {
		return r, nil, true
	}
	ev := eng.EvaluateRequest(r, a, opts...)
	if !eng.Enforce(w, r, ev) {
		return r, ev, false
	}
	ctx := runtimeid.NewContext(r.Context(), ev)
	return r.WithContext(ctx), ev, true
}

// Route returns the action of a request routed to pattern, named by
// [runtimeid.ActionName], or the named action when name is not empty.
func Route(eng *runtimeid.Engine, method, pattern, name string,
	s runtimeid.Sensitivity,
) runtimeid.Action {
	if name == "" {
		return eng.RouteAction(method, pattern)
	}
	return runtimeid.Action{Name: name, Sensitivity: s, Route: pattern}
}

// Normalize rewrites a route pattern in ServeMux syntax, so that one
// policy names a route the same way under every router: ":id" (gin,
// echo) becomes "{id}", a named catch-all "*path" (gin) becomes
// "{path...}", and chi's "{id:[0-9]+}" loses its regular expression. A
// bare "*" (chi, echo) stays as it is.
func Normalize(pattern string) string {
	if !strings.ContainsAny(pattern, ":*") {
		return pattern
	}
	var b strings.Builder
	for i := 0; i < len(pattern); {
		n := 1
		switch c := pattern[i]; {
		case c == '{' && braces(pattern[i:]) > 0:
			n = braces(pattern[i:])
			name, _, _ := strings.Cut(pattern[i+1:i+n-1], ":")
			b.WriteString("{" + name + "}")
		case (c == ':' || c == '*') && (i == 0 || pattern[i-1] == '/'):
			n = strings.IndexByte(pattern[i:]+"/", '/')
			b.WriteString(param(c, pattern[i+1:i+n]))
		default:
			b.WriteByte(c)
		}
		i += n
	}
	return b.String()
}

// braces returns the length of the {...} group p starts with, nested
// groups (chi allows "{id:[0-9]{3}}") included, or 0 when it is not
// closed.
func braces(p string) int {
	depth := 0
	for i := range len(p) {
		switch p[i] {
		case '{':
			depth++
		case '}':
			depth--
			if depth == 0 {
				return i + 1
			}
		}
	}
	return 0
}

func param(kind byte, name string) string {
	switch {
	case name == "":
		return string(kind)
	case kind == ':':
		return "{" + name + "}"
	}
	return "{" + name + "...}"
}
