package runtimeid

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
)

// route is one protected route's settings.
type route struct {
	name            string
	sensitivity     Sensitivity
	allowQueryToken bool
	failOpen        bool
	attributes      map[string]any // from EvaluateRequest
}

// RouteOption changes how [Engine.Protect] treats one route.
type RouteOption func(*route)

// AllowQueryToken accepts the token from the access_token query parameter
// (RFC 6750 section 2.3) on this route. Tokens in URLs end up in logs and
// browser history, so every other route refuses them with
// invalid_request.
func AllowQueryToken() RouteOption { return func(r *route) { r.allowQueryToken = true } }

// FailOpen lets requests to this route proceed when a collector, evaluator
// or the policy fails. The failure is still audited and the decision says
// FailedOpen. Token errors are never let through.
func FailOpen() RouteOption { return func(r *route) { r.failOpen = true } }

// Middleware evaluates every request before next runs. The action is the
// matched route pattern (see [Config.RoutePattern]) and its sensitivity
// comes from [Config.Sensitivities]. Requests that may not proceed get the
// [Config.Enforcer]'s response; the others reach next with the evaluation
// in their context (see [FromContext]).
func (e *Engine) Middleware(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		pattern, ok := e.routePattern(r)
		if !ok {
			internalError(w)
			return
		}
		rt := route{name: pattern, sensitivity: e.cfg.Sensitivities[pattern]}
		if pattern == "" {
			rt.name = "unmatched"
		}
		e.serve(w, r, next, &rt, pattern)
	})
}

// Protect returns middleware for one handler, evaluated as the action name
// with its own sensitivity, whatever the router. Use it to wrap the few
// handlers that matter, or to name actions better than route patterns do.
// Inside this engine's [Engine.Middleware] the request is evaluated again
// as this action, reusing the identity the middleware verified (see
// [Evaluation.Nested]); both must allow it.
func (e *Engine) Protect(
	name string, s Sensitivity, opts ...RouteOption,
) func(http.Handler) http.Handler {
	rt := route{name: name, sensitivity: s}
	for _, o := range opts {
		o(&rt)
	}
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			pattern, ok := e.routePattern(r)
			if !ok {
				internalError(w)
				return
			}
			e.serve(w, r, next, &rt, pattern)
		})
	}
}

// routePattern asks [Config.RoutePattern] for the request's route. A
// panic there, a bug in the caller's router glue, refuses the request
// (ok false): evaluating it as some other route could lower its
// sensitivity.
func (e *Engine) routePattern(r *http.Request) (pattern string, ok bool) {
	if e.cfg.RoutePattern == nil {
		return r.Pattern, true
	}
	defer func() {
		if p := recover(); p != nil {
			e.cfg.Logger.LogAttrs(r.Context(), slog.LevelError, "runtimeid: RoutePattern panicked",
				slog.String("error", fmt.Sprint(p)))
			pattern, ok = "", false
		}
	}()
	return e.cfg.RoutePattern(r), true
}

// EvaluateRequest runs the pipeline for an HTTP request as the named action
// without writing a response. Adapters use it; most code wants
// [Engine.Middleware] or [Engine.Protect].
func (e *Engine) EvaluateRequest(r *http.Request, a Action, opts ...RouteOption) *Evaluation {
	rt := route{name: a.Name, sensitivity: a.Sensitivity, attributes: a.Attributes}
	for _, o := range opts {
		o(&rt)
	}
	return e.evaluateHTTP(r, &rt, a.Route)
}

func (e *Engine) serve(
	w http.ResponseWriter, r *http.Request,
	next http.Handler, rt *route, pattern string,
) {
	ev := e.evaluateHTTP(r, rt, pattern)
	if !e.Enforce(w, r, ev) {
		return
	}
	next.ServeHTTP(w, r.WithContext(NewContext(r.Context(), ev)))
}

func (e *Engine) evaluateHTTP(r *http.Request, rt *route, pattern string) *Evaluation {
	ctx := r.Context()
	method := r.Method
	if method == http.MethodHead {
		method = http.MethodGet
	}
	ev := &Evaluation{
		Time:    e.now(),
		Request: r,
		Action: Action{Name: rt.name, Sensitivity: rt.sensitivity, Method: method, Route: pattern,
			Attributes: rt.attributes},
		engine: e,
	}
	ev.Signals.Device.UserAgent = truncate(r.Header.Get("User-Agent"), MaxUserAgent)

	// Inside this engine's Middleware, which allowed the request, the
	// token and its proof were verified already; a DPoP proof is single
	// use and would now read as replayed. The token's expiry is checked
	// again: the request may have outlived it.
	if prev := FromContext(ctx); e.nests(r, rt, prev) {
		ev.Nested = true
		ev.Credential = prev.Credential
		e.run(ctx, ev, prev.Identity, e.stillValid(prev, ev.Time), rt.failOpen)
		return ev
	}

	var id *Identity
	var tokErr *TokenError
	if e.verifier != nil {
		ev.Credential, tokErr = e.credential(r, rt.allowQueryToken)
		if tokErr == nil {
			id, tokErr = e.verifyToken(ctx, ev.Credential.Token.Reveal(), ev.Time)
		}
	}
	e.run(ctx, ev, id, tokErr, rt.failOpen)
	return ev
}

// nests reports whether r may reuse the identity prev verified: prev
// is an allow of this engine, and r still carries, as this route
// accepts it, the very credential prev verified. A request whose
// Authorization header was replaced or removed since, or whose query
// token this route refuses, is evaluated afresh.
func (e *Engine) nests(r *http.Request, rt *route, prev *Evaluation) bool {
	if prev == nil || prev.engine != e || prev.Err != nil ||
		prev.Identity == nil || !allowed(prev) {
		return false
	}
	cred, tokErr := e.credential(r, rt.allowQueryToken)
	return tokErr == nil && cred.Scheme == prev.Credential.Scheme &&
		cred.Token == prev.Credential.Token
}

// credential takes the token from exactly one Authorization header (RFC
// 6750 section 2.1), or from the query on routes that allow it. Two ways
// at once, or two headers, are invalid_request (section 3.1): a proxy and
// the application could otherwise each read a different token. The scheme
// is Bearer, or DPoP (RFC 9449 section 7.1), in any case.
func (e *Engine) credential(r *http.Request, allowQuery bool) (Credential, *TokenError) {
	headers := r.Header.Values("Authorization")
	query, tokErr := queryToken(r, allowQuery)
	switch {
	case tokErr != nil:
		return Credential{}, tokErr
	case len(headers) > 1:
		return Credential{}, invalidRequest("more than one Authorization header")
	case len(headers) == 1 && query != "":
		return Credential{}, invalidRequest("access token sent more than one way")
	case query != "":
		tok, tokErr := e.checkSize(query)
		return Credential{Token: Secret(tok)}, tokErr
	case len(headers) == 0:
		return Credential{}, &TokenError{Code: CodeTokenMissing, Detail: "no access token"}
	}

	h := headers[0]
	if len(h) > e.cfg.Token.MaxSize+len("Bearer ")+16 {
		return Credential{}, &TokenError{
			Code:   CodeTokenTooLarge,
			Detail: "authorization header too large",
		}
	}
	scheme, token, _ := strings.Cut(strings.TrimSpace(h), " ")
	switch {
	case strings.EqualFold(scheme, "Bearer"):
		scheme = "Bearer"
	case strings.EqualFold(scheme, "DPoP"):
		scheme = "DPoP"
	default:
		return Credential{}, &TokenError{Code: CodeTokenMalformed,
			Detail: "authorization scheme is not Bearer"}
	}
	tok, tokErr := e.checkSize(strings.TrimLeft(token, " "))
	return Credential{Scheme: scheme, Token: Secret(tok)}, tokErr
}

// queryToken returns the access_token query parameter (RFC 6750 section
// 2.3), refused unless the route allows it. Tokens in URLs end up in
// access logs, proxies and browser history.
func queryToken(r *http.Request, allow bool) (string, *TokenError) {
	if r.URL == nil || !strings.Contains(r.URL.RawQuery, "access_token") {
		return "", nil
	}
	vals, ok := r.URL.Query()["access_token"]
	switch {
	case !ok:
		return "", nil
	case !allow:
		return "", invalidRequest("access token in query string refused")
	case len(vals) != 1:
		return "", invalidRequest("more than one access_token parameter")
	}
	return vals[0], nil
}

func invalidRequest(detail string) *TokenError {
	return &TokenError{Code: CodeRequestInvalid, Detail: detail}
}

func (e *Engine) checkSize(token string) (string, *TokenError) {
	switch {
	case token == "":
		return "", &TokenError{Code: CodeTokenMalformed, Detail: "empty token"}
	case len(token) > e.cfg.Token.MaxSize:
		return "", &TokenError{Code: CodeTokenTooLarge, Detail: "token too large"}
	}
	return token, nil
}

func internalError(w http.ResponseWriter) {
	http.Error(w, http.StatusText(http.StatusInternalServerError), http.StatusInternalServerError)
}

type contextKey struct{}

// NewContext returns a copy of ctx that carries the evaluation.
func NewContext(ctx context.Context, ev *Evaluation) context.Context {
	return context.WithValue(ctx, contextKey{}, ev)
}

// FromContext returns the evaluation of the request that ctx belongs to,
// or nil outside a protected handler. Treat it as read-only.
func FromContext(ctx context.Context) *Evaluation {
	ev, _ := ctx.Value(contextKey{}).(*Evaluation)
	return ev
}

// DecisionFrom returns the decision for ctx's request, or nil.
func DecisionFrom(ctx context.Context) *Decision {
	if ev := FromContext(ctx); ev != nil {
		return &ev.Decision
	}
	return nil
}

// IdentityFrom returns the verified identity of ctx's request, or nil.
func IdentityFrom(ctx context.Context) *Identity {
	if ev := FromContext(ctx); ev != nil {
		return ev.Identity
	}
	return nil
}

// SignalsFrom returns the signals of ctx's request, or nil.
func SignalsFrom(ctx context.Context) *Signals {
	if ev := FromContext(ctx); ev != nil {
		return &ev.Signals
	}
	return nil
}
