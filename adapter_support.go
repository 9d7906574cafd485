package runtimeid

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"time"
)

// Unmatched is the action name of a request that no route matched. The
// adapters evaluate it like any other action, so that a stranger learns
// nothing about which routes exist; [Config.Sensitivities] may set its
// sensitivity under this name.
const Unmatched = "unmatched"

// DefaultWatchInterval is how often [Engine.Watch] re-evaluates when
// [WatchOptions.Interval] is zero.
const DefaultWatchInterval = 30 * time.Second

// ActionName returns the name the router adapters give a request with the
// method that was routed to pattern: "<METHOD> <pattern>", such as
// "GET /api/orders/{id}", with HEAD named as GET so that one policy rule
// covers both. An empty pattern gives [Unmatched].
func ActionName(method, pattern string) string {
	if pattern == "" {
		return Unmatched
	}
	if method == http.MethodHead {
		method = http.MethodGet
	}
	return method + " " + pattern
}

// RouteAction returns the action of a request with the method that was
// routed to pattern: named by [ActionName], with the sensitivity that
// [Config.Sensitivities] gives that name. Adapters use it.
func (e *Engine) RouteAction(method, pattern string) Action {
	name := ActionName(method, pattern)
	return Action{
		Name:        name,
		Sensitivity: e.cfg.Sensitivities[name],
		Route:       pattern,
	}
}

// Enforce applies the [Config.Enforcer] to an evaluation from
// [Engine.EvaluateRequest] and reports whether the handler may run. It
// writes the refusal otherwise. Without an enforcer, only a clean allow
// (or one that failed open) passes, and the rest get a plain 403.
func (e *Engine) Enforce(w http.ResponseWriter, r *http.Request, ev *Evaluation) (proceed bool) {
	if e.cfg.Enforcer != nil {
		// A panicking enforcer must not let the request through, nor
		// leave the client without an answer.
		defer func() {
			if p := recover(); p != nil {
				e.cfg.Logger.LogAttrs(r.Context(), slog.LevelError, "runtimeid: enforcer panicked",
					slog.String("error", fmt.Sprint(p)))
				internalError(w)
				proceed = false
			}
		}()
		return e.cfg.Enforcer.Enforce(w, r, ev)
	}
	if ev != nil && allowed(ev) {
		return true
	}
	http.Error(w, http.StatusText(http.StatusForbidden), http.StatusForbidden)
	return false
}

// IsPreflight reports whether r is a CORS preflight: an OPTIONS request
// with an Origin and an Access-Control-Request-Method header.
//
// Browsers never send credentials with a preflight (Fetch standard, CORS
// protocol), so evaluating one would refuse it with a 401 and the real
// request could never be sent. The adapters therefore pass preflights to
// the router unevaluated: the router answers, or the application's CORS
// handler does, and that handler must do nothing a stranger may not do.
// The real request that follows is evaluated as usual. An OPTIONS request
// that is not a preflight is evaluated like any other.
func IsPreflight(r *http.Request) bool {
	return r.Method == http.MethodOptions &&
		r.Header.Get("Origin") != "" &&
		r.Header.Get("Access-Control-Request-Method") != ""
}

// Recheck evaluates ev's action again, for the same identity and request,
// at the current time of [Config.Now]: what changed since (the token
// expired, the authentication is now too old for a step-up rule, the
// risk rose) applies. Long-lived connections, such as a WebSocket or a
// server-sent event stream, call it (or [Engine.Watch]) to learn when the
// session behind them may no longer act.
//
// The token is not parsed again; its verified expiry is checked against
// the clock skew. The identity validators run again, so a session revoked
// since (see signals/ssf) ends with [CodeTokenRevoked]; proof-of-possession
// validators accept the binding the opening request proved (see
// [Evaluation.Recheck]). The signals are collected afresh. A recheck fails
// closed even when the original route failed open and is audited like any
// evaluation; it is not counted as a request and baselines do not learn
// from it (see [Evaluation.Reused]). An evaluation this engine did not
// make is refused with [CodeTokenMissing].
func (e *Engine) Recheck(ctx context.Context, ev *Evaluation) *Evaluation {
	next := &Evaluation{
		Time:       e.now(),
		Request:    ev.Request,
		Action:     ev.Action,
		Credential: ev.Credential,
		Recheck:    true,
		engine:     e,
	}
	next.Signals.ClientIP = ev.Signals.ClientIP
	next.Signals.Device.UserAgent = ev.Signals.Device.UserAgent
	tokErr := e.stillValid(ev, next.Time)
	e.run(ctx, next, ev.Identity, tokErr, false)
	return next
}

// stillValid repeats the token checks that depend on time. An
// evaluation another engine made, or one built by hand, has no
// identity this engine verified: its issuer, audience and keys may be
// another's.
func (e *Engine) stillValid(ev *Evaluation, now time.Time) *TokenError {
	if te, ok := ev.Err.(*TokenError); ok {
		return te
	}
	if ev.engine != e {
		return &TokenError{Code: CodeTokenMissing,
			Detail: "evaluation not made by this engine"}
	}
	if e.verifier == nil {
		return nil
	}
	id := ev.Identity
	if id == nil {
		return &TokenError{Code: CodeTokenMissing, Detail: "no access token"}
	}
	if !id.Expiry.IsZero() && !now.Before(id.Expiry.Add(e.verifier.skew)) {
		return &TokenError{Code: CodeTokenExpired, Detail: "token expired"}
	}
	return nil
}

// WatchOptions configure [Engine.Watch]. The zero value rechecks every
// [DefaultWatchInterval].
type WatchOptions struct {
	// Interval is the time between rechecks. Zero means
	// [DefaultWatchInterval].
	Interval time.Duration

	// Ticks, when set, replaces the ticker: each value received triggers
	// one recheck. Tests use it to drive the watch without waiting.
	Ticks <-chan time.Time

	// After, when set, replaces [time.After] for the one extra recheck
	// made when the token expires (its exp plus the clock skew, measured
	// with [Config.Now]). Tests use it to fire that recheck themselves.
	After func(time.Duration) <-chan time.Time
}

// Watch rechecks ev (see [Engine.Recheck]) on every tick, and once more
// when its token expires, until a recheck no longer allows the action,
// and delivers that evaluation on the
// returned channel, which then closes. Its Decision says why: a token
// error such as [CodeTokenExpired] in Reason, or a [Challenge] whose
// StepUp the client must meet. The channel closes without a value when
// ctx is done; cancel ctx when the connection ends.
//
// A handler of a long-lived connection selects on the channel next to its
// own work and closes the connection, with a message the client can act
// on, when a value arrives.
func (e *Engine) Watch(ctx context.Context, ev *Evaluation, opts WatchOptions) <-chan *Evaluation {
	ticks := opts.Ticks
	stop := func() {}
	if ticks == nil {
		every := opts.Interval
		if every <= 0 {
			every = DefaultWatchInterval
		}
		t := time.NewTicker(every)
		ticks, stop = t.C, t.Stop
	}

	expiry := e.expiryTimer(ev, opts.After)
	out := make(chan *Evaluation, 1)
	go func() {
		defer close(out)
		defer stop()
		e.watch(ctx, ev, ticks, expiry, out)
	}()
	return out
}

// expiryTimer fires when ev's token stops being valid, so that a watch
// does not let it live on until the next tick; nil when it never does.
func (e *Engine) expiryTimer(ev *Evaluation, after func(time.Duration) <-chan time.Time,
) <-chan time.Time {
	if e.verifier == nil || ev.Identity == nil || ev.Identity.Expiry.IsZero() {
		return nil
	}
	if after == nil {
		after = time.After
	}
	left := ev.Identity.Expiry.Add(e.verifier.skew).Sub(e.now())
	return after(max(left, 0))
}

func (e *Engine) watch(ctx context.Context, ev *Evaluation,
	ticks, expiry <-chan time.Time, out chan<- *Evaluation,
) {
	for {
		select {
		case <-ctx.Done():
			return
		case _, ok := <-ticks:
			if !ok {
				return
			}
		case <-expiry:
			expiry = nil // it fires once
		}
		next := e.Recheck(ctx, ev)
		if !allowed(next) {
			// out has room for one value and receives only this one.
			out <- next
			return
		}
	}
}

func allowed(ev *Evaluation) bool {
	d := &ev.Decision
	return d.Outcome == Allow && (ev.Err == nil || d.FailedOpen)
}
