package runtimeid_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/runtimeid/runtimeid"
	"github.com/runtimeid/runtimeid/internal/conformance"
	"github.com/runtimeid/runtimeid/internal/conformance/demo"
)

func TestActionName(t *testing.T) {
	tests := []struct{ method, pattern, want string }{
		{"GET", "/api/orders", "GET /api/orders"},
		{"HEAD", "/api/orders", "GET /api/orders"},
		{"POST", "/api/orders/{id}", "POST /api/orders/{id}"},
		{"GET", "", runtimeid.Unmatched},
	}
	for _, tt := range tests {
		assert.Equal(t, tt.want, runtimeid.ActionName(tt.method, tt.pattern))
	}
}

func TestIsPreflight(t *testing.T) {
	tests := []struct {
		method, origin, acrm string
		want                 bool
	}{
		{"OPTIONS", "https://a.test", "POST", true},
		{"OPTIONS", "", "POST", false},
		{"OPTIONS", "https://a.test", "", false},
		{"GET", "https://a.test", "POST", false},
	}
	for _, tt := range tests {
		r := httptest.NewRequest(tt.method, "/x", nil)
		if tt.origin != "" {
			r.Header.Set("Origin", tt.origin)
		}
		if tt.acrm != "" {
			r.Header.Set("Access-Control-Request-Method", tt.acrm)
		}
		assert.Equal(t, tt.want, runtimeid.IsPreflight(r))
	}
}

// clock is a settable clock for the engine.
type clock struct{ now atomic.Pointer[time.Time] }

func (c *clock) set(t time.Time) { c.now.Store(&t) }
func (c *clock) read() time.Time { return *c.now.Load() }

func fixture(t *testing.T) (*conformance.Fixture, *clock) {
	t.Helper()
	var c clock
	c.set(conformance.Now)
	fx, err := conformance.NewFixture(c.read)
	require.NoError(t, err)
	return fx, &c
}

// evaluate evaluates a request for action with a token minted for g.
func evaluate(t *testing.T, fx *conformance.Fixture, g demo.Grant,
	a runtimeid.Action,
) *runtimeid.Evaluation {
	t.Helper()
	tok, err := fx.Issuer.Mint(g)
	require.NoError(t, err)
	r := httptest.NewRequest("POST", "/api/transfers", nil)
	r.Header.Set("Authorization", "Bearer "+tok)
	return fx.Engine.EvaluateRequest(r, a)
}

func TestRecheck(t *testing.T) {
	now := conformance.Now
	high := runtimeid.Action{Name: "transfer", Sensitivity: runtimeid.High}
	tests := []struct {
		name    string
		grant   demo.Grant
		action  runtimeid.Action
		later   time.Duration
		outcome runtimeid.Outcome
		reason  string
	}{
		{"still fresh", demo.Grant{Subject: "alice", Issued: now, AuthTime: now},
			high, 4 * time.Minute, runtimeid.Allow, "default"},
		{"login too old for step-up", demo.Grant{Subject: "alice", Issued: now, AuthTime: now},
			high, 6 * time.Minute, runtimeid.Challenge, "stale_authentication"},
		{"token expired, skew included", demo.Grant{Subject: "alice", Issued: now, TTL: time.Hour},
			runtimeid.Action{Name: "read"}, time.Hour + time.Minute, runtimeid.Block,
			runtimeid.CodeTokenExpired},
		{"within the skew", demo.Grant{Subject: "alice", Issued: now, TTL: time.Hour},
			runtimeid.Action{Name: "read"}, time.Hour + 59*time.Second, runtimeid.Allow, "default"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			fx, c := fixture(t)
			ev := evaluate(t, fx, tt.grant, tt.action)
			require.Equal(t, runtimeid.Allow, ev.Decision.Outcome)

			c.set(now.Add(tt.later))
			got := fx.Engine.Recheck(context.Background(), ev)
			assert.Equal(t, tt.outcome, got.Decision.Outcome)
			assert.Equal(t, tt.reason, got.Decision.Reason)
			assert.Equal(t, now.Add(tt.later), got.Time)
			assert.Equal(t, tt.action.Name, got.Action.Name)
			assert.Same(t, ev.Request, got.Request)
		})
	}
}

func TestRecheckKeepsTokenError(t *testing.T) {
	fx, _ := fixture(t)
	r := httptest.NewRequest("GET", "/", nil)
	ev := fx.Engine.EvaluateRequest(r, runtimeid.Action{Name: "read"})
	require.Equal(t, runtimeid.CodeTokenMissing, ev.Decision.Reason)
	got := fx.Engine.Recheck(context.Background(), ev)
	assert.Equal(t, runtimeid.Block, got.Decision.Outcome)
	assert.Equal(t, runtimeid.CodeTokenMissing, got.Decision.Reason)
}

func TestWatchFiresOnStepUp(t *testing.T) {
	fx, c := fixture(t)
	now := conformance.Now
	ev := evaluate(t, fx, demo.Grant{Subject: "alice", Issued: now, AuthTime: now},
		runtimeid.Action{Name: "stream", Sensitivity: runtimeid.High})
	require.Equal(t, runtimeid.Allow, ev.Decision.Outcome)

	ticks := make(chan time.Time)
	ch := fx.Engine.Watch(context.Background(), ev, runtimeid.WatchOptions{Ticks: ticks})

	// Still within five minutes: the ticks are consumed, nothing arrives.
	// The second send is accepted only after the first recheck allowed.
	c.set(now.Add(4 * time.Minute))
	ticks <- time.Time{}
	ticks <- time.Time{}

	// The recheck of the second tick may read the clock before or after
	// this change; either it or the next one must challenge.
	c.set(now.Add(6 * time.Minute))
	var got *runtimeid.Evaluation
	var ok bool
	select {
	case ticks <- time.Time{}:
		got, ok = <-ch
	case got, ok = <-ch:
	}
	require.True(t, ok)
	assert.Equal(t, runtimeid.Challenge, got.Decision.Outcome)
	assert.Equal(t, "stale_authentication", got.Decision.Reason)
	assert.Equal(t, 5*time.Minute, got.Decision.StepUp.MaxAge)
	_, ok = <-ch
	assert.False(t, ok, "the channel closes after its one value")
}

func TestWatchWakesAtExpiry(t *testing.T) {
	fx, c := fixture(t)
	now := conformance.Now
	ev := evaluate(t, fx, demo.Grant{Subject: "alice", Issued: now, TTL: time.Hour},
		runtimeid.Action{Name: "read"})
	require.Equal(t, runtimeid.Allow, ev.Decision.Outcome)

	c.set(now.Add(10 * time.Minute))
	var waited time.Duration
	fire := make(chan time.Time, 1)
	ch := fx.Engine.Watch(context.Background(), ev, runtimeid.WatchOptions{
		Ticks: make(chan time.Time), // never ticks
		After: func(d time.Duration) <-chan time.Time { waited = d; return fire },
	})
	// exp is an hour after issue, plus the 60 s skew, less the 10 min gone.
	assert.Equal(t, 50*time.Minute+time.Minute, waited)

	c.set(now.Add(time.Hour + time.Minute))
	fire <- time.Time{}
	got, ok := <-ch
	require.True(t, ok)
	assert.Equal(t, runtimeid.Block, got.Decision.Outcome)
	assert.Equal(t, runtimeid.CodeTokenExpired, got.Decision.Reason)
	assert.True(t, got.Recheck)
}

func TestWatchStops(t *testing.T) {
	fx, _ := fixture(t)
	ev := evaluate(t, fx, demo.Grant{Subject: "alice", Issued: conformance.Now},
		runtimeid.Action{Name: "read"})

	ctx, cancel := context.WithCancel(context.Background())
	ch := fx.Engine.Watch(ctx, ev, runtimeid.WatchOptions{Interval: time.Hour})
	cancel()
	_, ok := <-ch
	assert.False(t, ok, "cancelling closes the channel without a value")

	ticks := make(chan time.Time)
	ch = fx.Engine.Watch(context.Background(), ev, runtimeid.WatchOptions{Ticks: ticks})
	close(ticks)
	_, ok = <-ch
	assert.False(t, ok, "closed ticks close the channel")
}

func TestEnforceWithoutEnforcer(t *testing.T) {
	eng, err := runtimeid.New(runtimeid.Config{
		Token:  runtimeid.TokenConfig{InsecureSkipAuthentication: true},
		Policy: policyOf(runtimeid.Challenge),
	})
	require.NoError(t, err)
	r := httptest.NewRequest("GET", "/", nil)
	ev := eng.EvaluateRequest(r, eng.RouteAction("GET", "/"))
	w := httptest.NewRecorder()
	assert.False(t, eng.Enforce(w, r, ev))
	assert.Equal(t, http.StatusForbidden, w.Code)

	ev.Decision.Outcome = runtimeid.Allow
	assert.True(t, eng.Enforce(httptest.NewRecorder(), r, ev))
	assert.False(t, eng.Enforce(httptest.NewRecorder(), r, nil))
}

func TestRouteActionSensitivity(t *testing.T) {
	fx, _ := fixture(t)
	a := fx.Engine.RouteAction("POST", "/api/transfers")
	assert.Equal(t, runtimeid.Action{Name: "POST /api/transfers",
		Sensitivity: runtimeid.High, Route: "/api/transfers"}, a)
	a = fx.Engine.RouteAction("GET", "")
	assert.Equal(t, runtimeid.Action{Name: runtimeid.Unmatched}, a)
}

type policyOf runtimeid.Outcome

func (p policyOf) Decide(context.Context, *runtimeid.Evaluation) (runtimeid.Decision, error) {
	return runtimeid.Decision{Outcome: runtimeid.Outcome(p), Rule: "test"}, nil
}
