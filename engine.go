package runtimeid

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"net/netip"
	"reflect"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"
)

// Engine evaluates actions. It is safe for concurrent use; build one with
// [New] and share it.
type Engine struct {
	cfg      Config
	verifier *tokenVerifier
	learners []Learner
	tel      *telemetry
	now      func() time.Time
}

// New checks the config and builds an engine. Every problem is a
// [*ConfigError] naming the field to fix.
func New(cfg Config) (*Engine, error) {
	if err := cfg.setDefaults(); err != nil {
		return nil, err
	}
	e := &Engine{cfg: cfg, now: cfg.Now}

	if !cfg.Token.InsecureSkipAuthentication {
		v, err := newTokenVerifier(&e.cfg.Token)
		if err != nil {
			return nil, err
		}
		e.verifier = v
	}
	for _, c := range cfg.Collectors {
		if l, ok := c.(Learner); ok {
			e.learners = append(e.learners, l)
		}
	}
	for _, r := range cfg.Evaluators {
		if l, ok := r.(Learner); ok {
			e.learners = append(e.learners, l)
		}
	}

	tel, err := newTelemetry(cfg.TracerProvider, cfg.MeterProvider)
	if err != nil {
		return nil, &ConfigError{Field: "MeterProvider",
			Reason: "cannot create instruments", Err: err}
	}
	e.tel = tel
	return e, nil
}

func (c *Config) setDefaults() error {
	if c.Policy == nil {
		return &ConfigError{Field: "Policy", Reason: "required; build one with the policy package"}
	}
	for i, col := range c.Collectors {
		if col == nil {
			return &ConfigError{Field: fmt.Sprintf("Collectors[%d]", i), Reason: "is nil"}
		}
	}
	for i, ev := range c.Evaluators {
		if ev == nil {
			return &ConfigError{Field: fmt.Sprintf("Evaluators[%d]", i), Reason: "is nil"}
		}
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	if c.DefaultSensitivity == SensitivityUnset {
		c.DefaultSensitivity = Medium
	}
	if c.MediumRisk == 0 {
		c.MediumRisk = DefaultMediumRisk
	}
	if c.HighRisk == 0 {
		c.HighRisk = DefaultHighRisk
	}
	if !(c.MediumRisk > 0 && c.MediumRisk < c.HighRisk && c.HighRisk <= 1) {
		return &ConfigError{Field: "MediumRisk",
			Reason: "thresholds must satisfy 0 < MediumRisk < HighRisk <= 1"}
	}
	if len(c.DefaultStepUp.ACRValues) == 0 && c.DefaultStepUp.MaxAge == 0 {
		c.DefaultStepUp.MaxAge = DefaultStepUpMaxAge
	}
	return nil
}

// Input describes an action that is not an HTTP request, for
// [Engine.Evaluate]: a tool call, a job, a message.
type Input struct {
	// Token is the raw access token, verified as a bearer token would be.
	Token string

	// Identity is an identity the caller already verified, used when
	// Token is empty. Trusting it is the caller's responsibility.
	Identity *Identity

	// Action is what is being done. Its Sensitivity defaults to
	// [Config.DefaultSensitivity].
	Action Action

	// ClientIP and UserAgent, when known, feed the network and device
	// collectors.
	ClientIP  netip.Addr
	UserAgent string

	// FailOpen lets the action proceed when a collector, evaluator or the
	// policy fails. The decision records it.
	FailOpen bool
}

// Evaluate runs the pipeline for an action that is not an HTTP request and
// returns its evaluation. The error is [Evaluation.Err]: a [*TokenError]
// or an [*EvaluationError]. Whatever the error, the decision is set, and it
// is never [Allow] after an error unless in.FailOpen.
func (e *Engine) Evaluate(ctx context.Context, in Input) (*Evaluation, error) {
	ev := &Evaluation{Time: e.now(), Action: in.Action, engine: e}
	ev.Signals.ClientIP = in.ClientIP.Unmap()
	ev.Signals.Device.UserAgent = truncate(in.UserAgent, MaxUserAgent)

	var identity *Identity
	var tokErr *TokenError
	switch {
	case in.Token != "":
		ev.Credential.Token = Secret(in.Token)
		identity, tokErr = e.verifyToken(ctx, in.Token, ev.Time)
	case in.Identity != nil:
		identity = in.Identity
	case e.verifier != nil:
		tokErr = &TokenError{Code: CodeTokenMissing, Detail: "no access token"}
	}
	e.run(ctx, ev, identity, tokErr, in.FailOpen)
	return ev, ev.Err
}

// verifyToken verifies raw. A panic in a [KeySource] becomes a token error,
// so a broken key source refuses tokens instead of crashing the request.
func (e *Engine) verifyToken(ctx context.Context, raw string,
	now time.Time) (id *Identity, te *TokenError) {
	if e.verifier == nil {
		return nil, nil
	}
	defer func() {
		if p := recover(); p != nil {
			id, te = nil, &TokenError{Code: CodeTokenUnknownKey,
				Detail: "verification keys unavailable",
				Err:    fmt.Errorf("key source panicked: %v", p)}
		}
	}()
	return e.verifier.verify(ctx, raw, now)
}

// run is the pipeline: identity, signals, risk, policy, step-up, learn,
// audit. Everything it calls may fail or panic; it never lets either
// through as an allow unless failOpen.
func (e *Engine) run(ctx context.Context, ev *Evaluation, id *Identity,
	tokErr *TokenError, failOpen bool) {
	ctx, span := e.tel.start(ctx)
	defer span.End()
	if ev.Action.Sensitivity == SensitivityUnset {
		ev.Action.Sensitivity = e.cfg.DefaultSensitivity
	}

	// 1. Identity: the token, then the identity validators (proof of
	// possession, pushed revocations). A missing, bad or refused token
	// ends the evaluation: no later stage sees an unverified identity.
	if tokErr != nil {
		e.fail(ctx, span, ev, tokErr, nil, false)
		return
	}
	ev.Identity = id
	if tokErr, err := e.validate(ctx, ev); tokErr != nil || err != nil {
		e.fail(ctx, span, ev, tokErr, err, failOpen)
		return
	}
	ev.Signals.Session = sessionSignals(id, ev.Time)

	// 2-4. Signals, risk and policy. The first failure stops the
	// pipeline: a decision made on half the signals is not a decision.
	if err := e.decide(ctx, ev); err != nil {
		e.fail(ctx, span, ev, nil, err, failOpen)
		return
	}

	// 5. A challenge the identity already meets is an allow, so a user who
	// just stepped up is not sent round the loop again (RFC 9470 section
	// 4: the client retries with a token that satisfies the requirement).
	d := &ev.Decision
	if d.Outcome == Challenge {
		if d.StepUp == nil {
			su := e.cfg.DefaultStepUp
			d.StepUp = &su
		}
		if e.steppedUp(ctx, ev) {
			d.Outcome = Allow
			d.SteppedUp = true
		}
	}

	// 6. Baselines learn from allowed actions only.
	if d.Outcome == Allow {
		e.learn(ctx, ev)
	}
	e.finish(ctx, span, ev)
}

// fail ends an evaluation that cannot decide: a token error refuses the
// token; any other error blocks, unless the route fails open.
func (e *Engine) fail(ctx context.Context, span trace.Span, ev *Evaluation,
	tokErr *TokenError, err error, failOpen bool) {
	switch {
	case tokErr != nil:
		ev.Err = tokErr
		ev.Decision = Decision{Outcome: Block, Rule: "token", Reason: tokErr.Code}
	default:
		ev.Err = err
		ev.Decision = Decision{Outcome: Block, Rule: "error", Reason: CodeEvaluationError}
		if failOpen {
			ev.Decision.Outcome = Allow
			ev.Decision.FailedOpen = true
		}
	}
	e.finish(ctx, span, ev)
}

// validate runs the identity validators, then refuses a key-bound token
// whose binding none of them proved (RFC 9449 section 7.1, RFC 8705
// section 3: a resource server must not accept such a token as a plain
// bearer token).
func (e *Engine) validate(ctx context.Context, ev *Evaluation) (*TokenError, error) {
	if ev.Identity == nil {
		return nil, nil
	}
	for _, v := range e.cfg.Validators {
		err := guard("identity", v, func() error { return v.Validate(ctx, ev) })
		var ee *EvaluationError
		if errors.As(err, &ee) && !ee.Panic {
			var te *TokenError
			if errors.As(ee.Err, &te) {
				return te, nil
			}
		}
		if err != nil {
			return nil, err
		}
	}
	switch {
	case ev.Credential.BindingVerified:
	case ev.Identity.Confirmation != nil:
		return &TokenError{Code: CodeTokenBinding,
			Detail: "token is bound to a key that was not proven"}, nil
	case ev.Credential.Scheme == "DPoP":
		return &TokenError{Code: CodeTokenBinding, Detail: "DPoP proof not verified"}, nil
	}
	return nil, nil
}

// steppedUp reports whether the token, or a step-up recorded for its
// session, meets the challenge's requirement.
func (e *Engine) steppedUp(ctx context.Context, ev *Evaluation) bool {
	su := ev.Decision.StepUp
	if su.SatisfiedBy(ev.Identity, ev.Time) {
		return true
	}
	if e.cfg.StepUps == nil || ev.Identity == nil {
		return false
	}
	var acr string
	var at time.Time
	var ok bool
	err := guard("step-up", e.cfg.StepUps, func() error {
		acr, at, ok = e.cfg.StepUps.StepUp(ctx, ev.Identity, su)
		return nil
	})
	if err != nil || !ok {
		return false
	}
	recorded := Identity{ACR: acr, AuthTime: at}
	return su.SatisfiedBy(&recorded, ev.Time)
}

func (e *Engine) decide(ctx context.Context, ev *Evaluation) error {
	for _, c := range e.cfg.Collectors {
		if err := guard("signals", c, func() error { return c.Collect(ctx, ev) }); err != nil {
			return err
		}
	}

	var findings []Finding
	for _, r := range e.cfg.Evaluators {
		var got []Finding
		err := guard("risk", r, func() (err error) {
			got, err = r.Assess(ctx, ev)
			return err
		})
		if err != nil {
			return err
		}
		findings = append(findings, got...)
	}
	ev.Assessment = e.assess(findings)

	var d Decision
	err := guard("policy", e.cfg.Policy, func() (err error) {
		d, err = e.cfg.Policy.Decide(ctx, ev)
		return err
	})
	if err != nil {
		return err
	}
	if d.Outcome == OutcomeUnset || d.Outcome > Block {
		return &EvaluationError{Stage: "policy", Component: typeName(e.cfg.Policy),
			Err: fmt.Errorf("returned outcome %d", d.Outcome)}
	}
	ev.Decision = d
	return nil
}

// assess combines findings into one score. Each finding's weight is the
// probability that it alone means an attack, so independent findings
// combine as 1 - Π(1 - w): no one finding can be outvoted, and the score
// stays in [0,1] however many there are.
func (e *Engine) assess(findings []Finding) Assessment {
	safe := 1.0
	for i := range findings {
		w := findings[i].Weight
		if math.IsNaN(w) || w < 0 {
			w = 0
		}
		findings[i].Weight = min(w, 1)
		safe *= 1 - findings[i].Weight
	}
	a := Assessment{Score: 1 - safe, Findings: findings}
	switch {
	case a.Score >= e.cfg.HighRisk:
		a.Level = LevelHigh
	case a.Score >= e.cfg.MediumRisk:
		a.Level = LevelMedium
	}
	return a
}

func (e *Engine) learn(ctx context.Context, ev *Evaluation) {
	for _, l := range e.learners {
		err := guard("learn", l, func() error { l.Learn(ctx, ev); return nil })
		if err != nil {
			// The decision stands; a baseline that failed to learn only
			// makes later requests look less familiar.
			e.cfg.Logger.LogAttrs(ctx, slog.LevelError, "runtimeid: learn failed",
				slog.String("error", err.Error()))
		}
	}
}

func (e *Engine) finish(ctx context.Context, span trace.Span, ev *Evaluation) {
	ev.Duration = e.now().Sub(ev.Time)
	e.audit(ctx, ev)
	if e.cfg.OnDecision != nil {
		e.onDecision(ctx, ev)
	}
	e.tel.record(ctx, ev)
	if span.IsRecording() {
		span.SetAttributes(spanAttributes(ev)...)
		if ev.Err != nil {
			span.SetStatus(codes.Error, ev.Decision.Reason)
		}
	}
}

func (e *Engine) onDecision(ctx context.Context, ev *Evaluation) {
	err := guard("decision", e.cfg.OnDecision, func() error {
		e.cfg.OnDecision(ctx, ev)
		return nil
	})
	if err != nil {
		e.cfg.Logger.LogAttrs(ctx, slog.LevelError, "runtimeid: OnDecision failed",
			slog.String("error", err.Error()))
	}
}

// guard runs one component and turns a panic into an [*EvaluationError],
// so a bug in a plug-in fails one request closed instead of the process.
func guard(stage string, component any, f func() error) (err error) {
	defer func() {
		if p := recover(); p != nil {
			err = &EvaluationError{Stage: stage, Component: typeName(component),
				Panic: true, Err: fmt.Errorf("%v", p)}
		}
	}()
	if err := f(); err != nil {
		return &EvaluationError{Stage: stage, Component: typeName(component), Err: err}
	}
	return nil
}

func typeName(v any) string {
	t := reflect.TypeOf(v)
	if t == nil {
		return "<nil>"
	}
	return t.String()
}

func sessionSignals(id *Identity, now time.Time) SessionSignals {
	var s SessionSignals
	if id == nil {
		return s
	}
	if !id.IssuedAt.IsZero() {
		s.TokenAge = max(now.Sub(id.IssuedAt), 0)
	}
	if !id.AuthTime.IsZero() {
		s.HasAuthTime = true
		s.SinceAuth = max(now.Sub(id.AuthTime), 0)
	}
	return s
}

func truncate(s string, n int) string {
	if len(s) > n {
		return s[:n]
	}
	return s
}

func spanAttributes(ev *Evaluation) []attribute.KeyValue {
	return []attribute.KeyValue{
		attribute.String("runtimeid.outcome", ev.Decision.Outcome.String()),
		attribute.String("runtimeid.rule", ev.Decision.Rule),
		attribute.String("runtimeid.reason", ev.Decision.Reason),
		attribute.String("runtimeid.action", ev.Action.Name),
		attribute.Float64("runtimeid.score", ev.Assessment.Score),
		attribute.StringSlice("runtimeid.findings", ev.Assessment.Codes()),
	}
}
