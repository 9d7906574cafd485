package runtimeid

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

var t0 = time.Date(2026, 12, 4, 12, 0, 0, 0, time.UTC)

type policyFunc func(ev *Evaluation) (Decision, error)

func (f policyFunc) Decide(_ context.Context, ev *Evaluation) (Decision, error) { return f(ev) }

type collectorFunc func(ev *Evaluation) error

func (f collectorFunc) Collect(_ context.Context, ev *Evaluation) error { return f(ev) }

type evaluatorFunc func(ev *Evaluation) ([]Finding, error)

func (f evaluatorFunc) Assess(_ context.Context, ev *Evaluation) ([]Finding, error) { return f(ev) }

type countingLearner struct {
	evaluatorFunc
	learned atomic.Int64
}

func (l *countingLearner) Learn(context.Context, *Evaluation) { l.learned.Add(1) }

func allow(*Evaluation) (Decision, error) { return Decision{Outcome: Allow, Rule: "default"}, nil }

func newTestEngine(t *testing.T, cfg Config) (*Engine, *bytes.Buffer) {
	t.Helper()
	var logs bytes.Buffer
	cfg.Token.InsecureSkipAuthentication = true
	cfg.Logger = slog.New(slog.NewJSONHandler(&logs, nil))
	cfg.Now = func() time.Time { return t0 }
	if cfg.Policy == nil {
		cfg.Policy = policyFunc(allow)
	}
	e, err := New(cfg)
	require.NoError(t, err)
	return e, &logs
}

func alice() *Identity {
	return &Identity{Subject: "alice", SessionID: "s1", AuthTime: t0.Add(-time.Hour), IssuedAt: t0.Add(-time.Minute)}
}

func TestNewRejectsBadConfig(t *testing.T) {
	tests := []struct {
		name  string
		cfg   Config
		field string
	}{
		{"no policy", Config{}, "Policy"},
		{"nil collector", Config{Policy: policyFunc(allow), Collectors: []SignalCollector{nil}}, "Collectors[0]"},
		{"nil evaluator", Config{Policy: policyFunc(allow), Evaluators: []RiskEvaluator{nil}}, "Evaluators[0]"},
		{"thresholds", Config{Policy: policyFunc(allow), MediumRisk: 0.8, HighRisk: 0.5}, "MediumRisk"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := New(tt.cfg)
			require.ErrorIs(t, err, ErrConfig)
			var ce *ConfigError
			require.ErrorAs(t, err, &ce)
			assert.Equal(t, tt.field, ce.Field)
		})
	}
}

func TestScoreCombinesFindings(t *testing.T) {
	e, _ := newTestEngine(t, Config{Evaluators: []RiskEvaluator{
		evaluatorFunc(func(*Evaluation) ([]Finding, error) {
			return []Finding{{Code: "a", Weight: 0.5}, {Code: "b", Weight: 0.5}}, nil
		}),
		evaluatorFunc(func(*Evaluation) ([]Finding, error) {
			return []Finding{{Code: "c", Weight: 2}, {Code: "d", Weight: -1}}, nil
		}),
	}})
	ev, err := e.Evaluate(context.Background(), Input{Identity: alice()})
	require.NoError(t, err)
	assert.Equal(t, 1.0, ev.Assessment.Score) // c is clamped to 1
	assert.Equal(t, LevelHigh, ev.Assessment.Level)
	assert.Equal(t, []string{"a", "b", "c", "d"}, ev.Assessment.Codes())
	assert.Equal(t, 0.0, ev.Assessment.Findings[3].Weight)

	e, _ = newTestEngine(t, Config{Evaluators: []RiskEvaluator{
		evaluatorFunc(func(*Evaluation) ([]Finding, error) {
			return []Finding{{Code: "a", Weight: 0.2}, {Code: "b", Weight: 0.25}}, nil
		}),
	}})
	ev, err = e.Evaluate(context.Background(), Input{Identity: alice()})
	require.NoError(t, err)
	assert.InDelta(t, 0.4, ev.Assessment.Score, 1e-12) // 1 - 0.8*0.75
	assert.Equal(t, LevelMedium, ev.Assessment.Level)
}

func TestFailuresFailClosed(t *testing.T) {
	boom := errors.New("boom")
	tests := []struct {
		name  string
		cfg   Config
		stage string
		panic bool
	}{
		{"collector error", Config{Collectors: []SignalCollector{
			collectorFunc(func(*Evaluation) error { return boom })}}, "signals", false},
		{"collector panic", Config{Collectors: []SignalCollector{
			collectorFunc(func(*Evaluation) error { panic("bad collector") })}}, "signals", true},
		{"evaluator panic", Config{Evaluators: []RiskEvaluator{
			evaluatorFunc(func(*Evaluation) ([]Finding, error) { panic("bad evaluator") })}}, "risk", true},
		{"policy error", Config{Policy: policyFunc(func(*Evaluation) (Decision, error) {
			return Decision{}, boom
		})}, "policy", false},
		{"policy unset outcome", Config{Policy: policyFunc(func(*Evaluation) (Decision, error) {
			return Decision{}, nil
		})}, "policy", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e, logs := newTestEngine(t, tt.cfg)
			ev, err := e.Evaluate(context.Background(), Input{Identity: alice()})
			require.ErrorIs(t, err, ErrEvaluation)
			var ee *EvaluationError
			require.ErrorAs(t, err, &ee)
			assert.Equal(t, tt.stage, ee.Stage)
			assert.Equal(t, tt.panic, ee.Panic)
			assert.Equal(t, Block, ev.Decision.Outcome)
			assert.Equal(t, CodeEvaluationError, ev.Decision.Reason)
			assert.Contains(t, logs.String(), `"outcome":"block"`)

			ev, err = e.Evaluate(context.Background(), Input{Identity: alice(), FailOpen: true})
			require.ErrorIs(t, err, ErrEvaluation)
			assert.Equal(t, Allow, ev.Decision.Outcome)
			assert.True(t, ev.Decision.FailedOpen)
			assert.Contains(t, logs.String(), `"failed_open":true`)
		})
	}
}

func TestChallengeSatisfiedByStepUp(t *testing.T) {
	challenge := policyFunc(func(*Evaluation) (Decision, error) {
		return Decision{Outcome: Challenge, Rule: "fresh", Reason: "stale_authentication",
			StepUp: &StepUp{ACRValues: []string{"mfa"}, MaxAge: 5 * time.Minute}}, nil
	})
	noReq := policyFunc(func(*Evaluation) (Decision, error) {
		return Decision{Outcome: Challenge, Rule: "any"}, nil
	})
	tests := []struct {
		name      string
		policy    PolicyEngine
		acr       string
		authAgo   time.Duration
		want      Outcome
		steppedUp bool
	}{
		{"fresh mfa", challenge, "mfa", time.Minute, Allow, true},
		{"stale mfa", challenge, "mfa", 6 * time.Minute, Challenge, false},
		{"fresh wrong acr", challenge, "pwd", time.Minute, Challenge, false},
		{"no auth_time", challenge, "mfa", -1, Challenge, false},
		{"default step-up fresh", noReq, "", 4 * time.Minute, Allow, true},
		{"default step-up stale", noReq, "", 6 * time.Minute, Challenge, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			l := &countingLearner{evaluatorFunc: func(*Evaluation) ([]Finding, error) { return nil, nil }}
			e, _ := newTestEngine(t, Config{Policy: tt.policy, Evaluators: []RiskEvaluator{l}})
			id := &Identity{Subject: "alice", ACR: tt.acr}
			if tt.authAgo >= 0 {
				id.AuthTime = t0.Add(-tt.authAgo)
			}
			ev, err := e.Evaluate(context.Background(), Input{Identity: id})
			require.NoError(t, err)
			assert.Equal(t, tt.want, ev.Decision.Outcome)
			assert.Equal(t, tt.steppedUp, ev.Decision.SteppedUp)
			require.NotNil(t, ev.Decision.StepUp)
			if ev.Decision.Rule == "any" {
				assert.Equal(t, DefaultStepUpMaxAge, ev.Decision.StepUp.MaxAge)
			}
			// Baselines learn from allowed actions only.
			wantLearned := int64(0)
			if tt.want == Allow {
				wantLearned = 1
			}
			assert.Equal(t, wantLearned, l.learned.Load())
		})
	}
}

func TestEvaluateInput(t *testing.T) {
	var seen *Evaluation
	e, logs := newTestEngine(t, Config{Collectors: []SignalCollector{collectorFunc(func(ev *Evaluation) error {
		seen = ev
		return nil
	})}})
	ua := string(bytes.Repeat([]byte("x"), 1000))
	ev, err := e.Evaluate(context.Background(), Input{
		Identity:  alice(),
		Action:    Action{Name: "tool:export"},
		ClientIP:  netip.MustParseAddr("::ffff:81.2.69.142"),
		UserAgent: ua,
	})
	require.NoError(t, err)
	assert.Same(t, ev, seen)
	assert.Equal(t, "81.2.69.142", ev.Signals.ClientIP.String())
	assert.Len(t, ev.Signals.Device.UserAgent, MaxUserAgent)
	assert.Equal(t, Medium, ev.Action.Sensitivity)
	assert.Equal(t, time.Minute, ev.Signals.Session.TokenAge)
	assert.Equal(t, time.Hour, ev.Signals.Session.SinceAuth)
	assert.True(t, ev.Signals.Session.HasAuthTime)

	var event map[string]any
	require.NoError(t, json.Unmarshal(logs.Bytes(), &event))
	assert.Equal(t, AuditMessage, event["msg"])
	assert.Equal(t, "allow", event["outcome"])
	assert.Equal(t, "alice", event["sub"])
	assert.Equal(t, "s1", event["sid"])
	assert.Equal(t, "tool:export", event["action"])
	assert.Equal(t, "81.2.69.142", event["client_ip"])
	assert.Equal(t, "INFO", event["level"])
}

// recordingEnforcer lets allows through and answers everything else 418,
// so the tests can tell the enforcer ran.
type recordingEnforcer struct{ last *Evaluation }

func (r *recordingEnforcer) Enforce(w http.ResponseWriter, _ *http.Request, ev *Evaluation) bool {
	r.last = ev
	if ev.Decision.Outcome == Allow {
		return true
	}
	w.WriteHeader(http.StatusTeapot)
	return false
}

func TestMiddlewareActionAndContext(t *testing.T) {
	enf := &recordingEnforcer{}
	e, _ := newTestEngine(t, Config{
		Enforcer:      enf,
		Sensitivities: map[string]Sensitivity{"GET /api/orders": Low},
		Policy: policyFunc(func(ev *Evaluation) (Decision, error) {
			if ev.Action.Sensitivity == High {
				return Decision{Outcome: Block, Rule: "high", Reason: "nope"}, nil
			}
			return Decision{Outcome: Allow, Rule: "default"}, nil
		}),
	})
	var got *Evaluation
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got = FromContext(r.Context())
		assert.Same(t, &got.Decision, DecisionFrom(r.Context()))
		assert.Same(t, &got.Signals, SignalsFrom(r.Context()))
		assert.Nil(t, IdentityFrom(r.Context()))
		w.WriteHeader(http.StatusNoContent)
	})
	mux := http.NewServeMux()
	mux.Handle("GET /api/orders", e.Middleware(h))
	mux.Handle("POST /api/transfers", e.Protect("transfer", High)(h))

	// HEAD is evaluated as GET, and the action is the pattern.
	rec := httptest.NewRecorder()
	mux.ServeHTTP(rec, httptest.NewRequest(http.MethodHead, "/api/orders?x=1", nil))
	assert.Equal(t, http.StatusNoContent, rec.Code)
	require.NotNil(t, got)
	want := Action{
		Name:        "GET /api/orders",
		Sensitivity: Low,
		Method:      "GET",
		Route:       "GET /api/orders",
	}
	assert.Equal(t, want, got.Action)

	rec = httptest.NewRecorder()
	mux.ServeHTTP(rec, httptest.NewRequest(http.MethodPost, "/api/transfers", nil))
	assert.Equal(t, http.StatusTeapot, rec.Code)
	assert.Equal(t, "transfer", enf.last.Action.Name)
	assert.Equal(t, "high", enf.last.Decision.Rule)

	// Without a pattern the action is "unmatched" at the default sensitivity.
	rec = httptest.NewRecorder()
	e.Middleware(h).ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/x", nil))
	assert.Equal(t, http.StatusNoContent, rec.Code)
	assert.Equal(t, Action{Name: "unmatched", Sensitivity: Medium, Method: "GET"}, got.Action)
}

func TestMiddlewareWithoutEnforcerAllowsOnlyAllow(t *testing.T) {
	e, _ := newTestEngine(t, Config{Policy: policyFunc(func(*Evaluation) (Decision, error) {
		return Decision{Outcome: Challenge, Rule: "c"}, nil
	})})
	rec := httptest.NewRecorder()
	e.Protect("x", Low)(http.NotFoundHandler()).ServeHTTP(rec, httptest.NewRequest("GET", "/", nil))
	assert.Equal(t, http.StatusForbidden, rec.Code)
}

func TestStepUpSatisfiedBy(t *testing.T) {
	var nilStepUp *StepUp
	assert.False(t, nilStepUp.SatisfiedBy(alice(), t0))
	assert.False(t, (&StepUp{}).SatisfiedBy(nil, t0))
	assert.True(t, (&StepUp{}).SatisfiedBy(&Identity{}, t0))
}

func TestParseNames(t *testing.T) {
	for _, s := range []Sensitivity{Low, Medium, High} {
		got, err := ParseSensitivity(s.String())
		require.NoError(t, err)
		assert.Equal(t, s, got)
	}
	_, err := ParseSensitivity("extreme")
	require.ErrorIs(t, err, ErrConfig)
	for _, o := range []Outcome{Allow, Challenge, Block} {
		got, err := ParseOutcome(o.String())
		require.NoError(t, err)
		assert.Equal(t, o, got)
	}
	_, err = ParseOutcome("maybe")
	assert.EqualError(t, err, `runtimeid: config outcome: unknown outcome "maybe"`)
	assert.Equal(t, "unset", Outcome(9).String())
	assert.Equal(t, "high", Level(9).String())
}

type validatorFunc func(ev *Evaluation) error

func (f validatorFunc) Validate(_ context.Context, ev *Evaluation) error { return f(ev) }

type stepUps struct {
	acr string
	at  time.Time
}

func (s stepUps) StepUp(context.Context, *Identity, *StepUp) (string, time.Time, bool) {
	return s.acr, s.at, !s.at.IsZero()
}

func TestValidators(t *testing.T) {
	revoked := validatorFunc(func(*Evaluation) error {
		return &TokenError{Code: CodeTokenRevoked, Detail: "session revoked"}
	})
	binder := validatorFunc(func(ev *Evaluation) error {
		ev.Credential.BindingVerified = true
		return nil
	})
	bound := func() *Identity {
		id := alice()
		id.Confirmation = &Confirmation{JKT: "abc"}
		return id
	}
	tests := []struct {
		name       string
		validators []IdentityValidator
		id         *Identity
		code       string // token error code, "" for none
		evalErr    bool
	}{
		{"none", nil, alice(), "", false},
		{"revoked", []IdentityValidator{revoked}, alice(), CodeTokenRevoked, false},
		{"bound, unproven", nil, bound(), CodeTokenBinding, false},
		{"bound, proven", []IdentityValidator{binder}, bound(), "", false},
		{"validator panics", []IdentityValidator{validatorFunc(func(*Evaluation) error { panic("x") })},
			alice(), "", true},
		{"validator fails", []IdentityValidator{validatorFunc(func(*Evaluation) error {
			return errors.New("state unavailable")
		})}, alice(), "", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e, _ := newTestEngine(t, Config{Validators: tt.validators})
			ev, err := e.Evaluate(context.Background(), Input{Identity: tt.id})
			switch {
			case tt.code != "":
				var te *TokenError
				require.ErrorAs(t, err, &te)
				assert.Equal(t, tt.code, te.Code)
				assert.Equal(t, Decision{Outcome: Block, Rule: "token", Reason: tt.code}, ev.Decision)
			case tt.evalErr:
				require.ErrorIs(t, err, ErrEvaluation)
				assert.Equal(t, Block, ev.Decision.Outcome)
			default:
				require.NoError(t, err)
				assert.Equal(t, Allow, ev.Decision.Outcome)
			}
		})
	}
}

func TestRecordedStepUpSatisfiesChallenge(t *testing.T) {
	challenge := policyFunc(func(*Evaluation) (Decision, error) {
		return Decision{Outcome: Challenge, Rule: "mfa",
			StepUp: &StepUp{ACRValues: []string{"passkey"}, MaxAge: 5 * time.Minute}}, nil
	})
	tests := []struct {
		name string
		rec  stepUps
		want Outcome
	}{
		{"none recorded", stepUps{}, Challenge},
		{"fresh passkey", stepUps{"passkey", t0.Add(-time.Minute)}, Allow},
		{"old passkey", stepUps{"passkey", t0.Add(-10 * time.Minute)}, Challenge},
		{"fresh code, passkey wanted", stepUps{"otp", t0.Add(-time.Minute)}, Challenge},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e, _ := newTestEngine(t, Config{Policy: challenge, StepUps: tt.rec})
			ev, err := e.Evaluate(context.Background(), Input{Identity: alice()})
			require.NoError(t, err)
			assert.Equal(t, tt.want, ev.Decision.Outcome)
			assert.Equal(t, tt.want == Allow, ev.Decision.SteppedUp)
		})
	}
}

func TestSecretNeverPrints(t *testing.T) {
	s := Secret("eyJhbGciOi.payload.sig")
	var buf bytes.Buffer
	slog.New(slog.NewJSONHandler(&buf, nil)).Info("x", "token", s)
	assert.NotContains(t, buf.String(), "payload")
	assert.Contains(t, buf.String(), `"token":"[redacted]"`)
	assert.Equal(t, "[redacted]", s.String())
	assert.Equal(t, "eyJhbGciOi.payload.sig", s.Reveal())
}

func TestOnDecision(t *testing.T) {
	var seen []Outcome
	e, logs := newTestEngine(t, Config{OnDecision: func(_ context.Context, ev *Evaluation) {
		seen = append(seen, ev.Decision.Outcome)
		if ev.Action.Name == "boom" {
			panic("hook bug")
		}
	}})
	_, err := e.Evaluate(context.Background(), Input{Identity: alice(), Action: Action{Name: "read"}})
	require.NoError(t, err)
	ev, err := e.Evaluate(context.Background(), Input{Identity: alice(), Action: Action{Name: "boom"}})
	require.NoError(t, err, "a panicking hook changes nothing")
	assert.Equal(t, Allow, ev.Decision.Outcome)
	assert.Equal(t, []Outcome{Allow, Allow}, seen)
	assert.Contains(t, logs.String(), `"msg":"runtimeid: OnDecision failed"`)
	assert.Contains(t, logs.String(), "hook bug")
}

func TestEvaluateRequestKeepsAttributes(t *testing.T) {
	e, _ := newTestEngine(t, Config{})
	r := httptest.NewRequest(http.MethodPost, "/mcp", nil)
	ev := e.EvaluateRequest(r, Action{Name: "tool:export", Sensitivity: High,
		Attributes: map[string]any{"tool": "export_customers"}})
	assert.Equal(t, map[string]any{"tool": "export_customers"}, ev.Action.Attributes)
	assert.Equal(t, "POST", ev.Action.Method)
}

func TestAuditDelegation(t *testing.T) {
	e, logs := newTestEngine(t, Config{})
	id := alice()
	id.ClientID = "agent-app"
	id.Actor = &Actor{Subject: "agent-7", Actor: &Actor{Subject: "orchestrator"}}
	_, err := e.Evaluate(context.Background(), Input{Identity: id, Action: Action{Name: "tool:list"}})
	require.NoError(t, err)
	var event map[string]any
	require.NoError(t, json.Unmarshal(logs.Bytes(), &event))
	assert.Equal(t, "alice", event["sub"])
	assert.Equal(t, "agent-7", event["act"])
	assert.Equal(t, "agent-app", event["client_id"])
	assert.Equal(t, []any{"agent-7", "orchestrator"}, event["act_chain"])
}

type panickingEnforcer struct{}

func (panickingEnforcer) Enforce(http.ResponseWriter, *http.Request, *Evaluation) bool {
	panic("enforcer bug")
}

func TestPanicsAroundTheHandler(t *testing.T) {
	ran := false
	h := http.HandlerFunc(func(http.ResponseWriter, *http.Request) { ran = true })

	e, logs := newTestEngine(t, Config{Enforcer: panickingEnforcer{}})
	rec := httptest.NewRecorder()
	e.Protect("x", Low)(h).ServeHTTP(rec, httptest.NewRequest("GET", "/", nil))
	assert.Equal(t, http.StatusInternalServerError, rec.Code)
	assert.False(t, ran)
	assert.Contains(t, logs.String(), "runtimeid: enforcer panicked")

	e, logs = newTestEngine(t, Config{RoutePattern: func(*http.Request) string { panic("router glue bug") }})
	rec = httptest.NewRecorder()
	e.Middleware(h).ServeHTTP(rec, httptest.NewRequest("GET", "/", nil))
	assert.Equal(t, http.StatusInternalServerError, rec.Code)
	assert.False(t, ran)
	assert.Contains(t, logs.String(), "runtimeid: RoutePattern panicked")
}
