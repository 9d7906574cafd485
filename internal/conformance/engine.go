package conformance

import (
	"net/http"
	"sync"
	"time"

	"github.com/runtimeid/runtimeid"
	"github.com/runtimeid/runtimeid/decision"
	"github.com/runtimeid/runtimeid/internal/conformance/demo"
	"github.com/runtimeid/runtimeid/policy"
)

// Now is the suite's clock: every evaluation happens at this instant.
var Now = time.Date(2026, 12, 4, 12, 0, 0, 0, time.UTC)

// Policy is the suite's policy. High-sensitivity actions need an
// authentication in the last five minutes; the subject "mallory" is
// refused everything but reading orders.
const Policy = `
version: 1
default: allow
rules:
  - name: block-mallory
    when: identity.sub == "mallory" && action.name != "GET /api/orders"
    outcome: block
    reason: blocked_user
  - name: stale-high
    when: >-
      action.sensitivity == "high" &&
      (!signals.session.has_auth_time ||
       signals.session.since_auth > duration("5m"))
    outcome: challenge
    reason: stale_authentication
    step_up: { max_age: 5m }
`

// Sensitivities is the suite's [runtimeid.Config.Sensitivities], keyed by
// the action names the adapters give.
var Sensitivities = map[string]runtimeid.Sensitivity{
	"POST /api/transfers": runtimeid.High,
	"GET /api/orders":     runtimeid.Low,
}

// Fixture is an engine with real ES256 tokens, the suite's policy and the
// decision package's enforcer, recording every action it evaluates.
type Fixture struct {
	Engine *runtimeid.Engine
	Issuer *demo.Issuer

	rec *recorder
}

// NewFixture builds a fixture whose clock reads now().
func NewFixture(now func() time.Time) (*Fixture, error) {
	is, err := demo.NewIssuer()
	if err != nil {
		return nil, err
	}
	keys, err := runtimeid.StaticKeys(is.Public)
	if err != nil {
		return nil, err
	}
	pol, err := policy.Parse([]byte(Policy), "conformance.yaml")
	if err != nil {
		return nil, err
	}
	enf, err := decision.NewEnforcer(decision.Options{Realm: "api"})
	if err != nil {
		return nil, err
	}
	rec := &recorder{next: enf}
	eng, err := runtimeid.New(runtimeid.Config{
		Token: runtimeid.TokenConfig{
			Issuer:   demo.IssuerURL,
			Audience: []string{demo.Audience},
			Keys:     keys,
		},
		Policy:        pol,
		Enforcer:      rec,
		Now:           now,
		Sensitivities: Sensitivities,
	})
	if err != nil {
		return nil, err
	}
	return &Fixture{Engine: eng, Issuer: is, rec: rec}, nil
}

// Evaluated returns the action names evaluated since the last call.
func (f *Fixture) Evaluated() []string {
	f.rec.mu.Lock()
	defer f.rec.mu.Unlock()
	got := f.rec.actions
	f.rec.actions = nil
	return got
}

// recorder is an enforcer that notes each evaluated action name.
type recorder struct {
	next runtimeid.Enforcer

	// mu guards actions.
	mu      sync.Mutex
	actions []string
}

func (r *recorder) Enforce(w http.ResponseWriter, req *http.Request,
	ev *runtimeid.Evaluation,
) bool {
	r.mu.Lock()
	r.actions = append(r.actions, ev.Action.Name)
	r.mu.Unlock()
	return r.next.Enforce(w, req, ev)
}
