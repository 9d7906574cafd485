package runtimeid_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/lestrrat-go/jwx/v2/jwk"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/runtimeid/runtimeid"
	"github.com/runtimeid/runtimeid/policy"
	"github.com/runtimeid/runtimeid/risk"
	"github.com/runtimeid/runtimeid/signals"
	"github.com/runtimeid/runtimeid/signals/ssf"
)

// The fault tests: a plug-in that panics, a key server that hangs or
// answers garbage, a store that errors. Each must fail the request
// closed (or open where the route says so), be logged, and leave the
// process running.

type panicCollector struct{}

func (panicCollector) Collect(context.Context, *runtimeid.Evaluation) error { panic("collector bug") }

type panicValidator struct{}

func (panicValidator) Validate(context.Context, *runtimeid.Evaluation) error { panic("validator bug") }

type panicLearner struct{}

func (panicLearner) Assess(context.Context, *runtimeid.Evaluation) ([]runtimeid.Finding, error) {
	return nil, nil
}
func (panicLearner) Learn(context.Context, *runtimeid.Evaluation) { panic("learner bug") }

type panicStepUps struct{}

func (panicStepUps) StepUp(context.Context, *runtimeid.Identity,
	*runtimeid.StepUp) (string, time.Time, bool) {
	panic("step-up source bug")
}

type panicPolicy struct{}

func (panicPolicy) Decide(context.Context, *runtimeid.Evaluation) (runtimeid.Decision, error) {
	panic("policy bug")
}

// customCollector puts a value no policy can read into the custom
// signals, for a policy rule that reads it.
type customCollector struct{}

func (customCollector) Collect(_ context.Context, ev *runtimeid.Evaluation) error {
	ev.Signals.Custom = map[string]any{"odd": make(chan int), "fn": func() {}}
	return nil
}

// errStore is a risk.Store whose backend is down.
type errStore struct{}

func (errStore) Get(context.Context, string) (*risk.Profile, error) {
	return nil, errors.New("store: connection refused")
}

func (errStore) Update(context.Context, string, func(*risk.Profile)) error {
	return errors.New("store: connection refused")
}

func faultEngine(t *testing.T, cfg runtimeid.Config) (*runtimeid.Engine, *strings.Builder) {
	t.Helper()
	logs := &strings.Builder{}
	cfg.Token.InsecureSkipAuthentication = true
	if cfg.Policy == nil {
		cfg.Policy = policy.Default()
	}
	cfg.Logger = slog.New(slog.NewJSONHandler(logs, nil))
	cfg.Now = func() time.Time { return hostileNow }
	eng, err := runtimeid.New(cfg)
	require.NoError(t, err)
	return eng, logs
}

func faultIdentity() *runtimeid.Identity {
	return &runtimeid.Identity{Subject: "alice", Issuer: testIssuer,
		AuthTime: hostileNow.Add(-time.Hour), IssuedAt: hostileNow}
}

func TestFaultsFailClosed(t *testing.T) {
	odd, err := policy.New(policy.Spec{Rules: []policy.Rule{{Name: "odd",
		When: `"odd" in signals.custom && signals.custom.odd == 1`, Outcome: runtimeid.Block}}})
	require.NoError(t, err)
	evaluator, err := risk.NewEvaluator(errStore{}, risk.Options{})
	require.NoError(t, err)

	tests := []struct {
		name  string
		cfg   runtimeid.Config
		stage string
	}{
		{"collector panic", runtimeid.Config{
			Collectors: []runtimeid.SignalCollector{panicCollector{}}}, "signals"},
		{"validator panic", runtimeid.Config{
			Validators: []runtimeid.IdentityValidator{panicValidator{}}}, "identity"},
		{"policy panic", runtimeid.Config{Policy: panicPolicy{}}, "policy"},
		{"policy reads an unreadable custom signal", runtimeid.Config{Policy: odd,
			Collectors: []runtimeid.SignalCollector{customCollector{}}}, "policy"},
		{"risk store errors", runtimeid.Config{
			Evaluators: []runtimeid.RiskEvaluator{evaluator}}, "risk"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			eng, logs := faultEngine(t, tt.cfg)
			ev, err := eng.Evaluate(context.Background(),
				runtimeid.Input{Identity: faultIdentity()})
			var ee *runtimeid.EvaluationError
			require.ErrorAs(t, err, &ee)
			assert.Equal(t, tt.stage, ee.Stage)
			assert.Equal(t, runtimeid.Block, ev.Decision.Outcome)
			assert.Equal(t, runtimeid.CodeEvaluationError, ev.Decision.Reason)
			assert.Contains(t, logs.String(), `"outcome":"block"`)

			ev, _ = eng.Evaluate(context.Background(),
				runtimeid.Input{Identity: faultIdentity(), FailOpen: true})
			assert.Equal(t, runtimeid.Allow, ev.Decision.Outcome)
			assert.True(t, ev.Decision.FailedOpen)
		})
	}
}

// TestFaultsAfterTheDecision: a panic in a learner or in OnDecision is
// logged and the decision stands; a panicking step-up source satisfies
// no challenge.
func TestFaultsAfterTheDecision(t *testing.T) {
	eng, logs := faultEngine(t, runtimeid.Config{
		Evaluators: []runtimeid.RiskEvaluator{panicLearner{}},
		OnDecision: func(context.Context, *runtimeid.Evaluation) { panic("hook bug") },
		StepUps:    panicStepUps{},
	})
	ev, err := eng.Evaluate(context.Background(), runtimeid.Input{Identity: faultIdentity(),
		Action: runtimeid.Action{Name: "read", Sensitivity: runtimeid.Low}})
	require.NoError(t, err)
	assert.Equal(t, runtimeid.Allow, ev.Decision.Outcome)
	assert.Contains(t, logs.String(), "runtimeid: learn failed")
	assert.Contains(t, logs.String(), "runtimeid: OnDecision failed")

	ev, _ = eng.Evaluate(context.Background(), runtimeid.Input{Identity: faultIdentity(),
		Action: runtimeid.Action{Name: "pay", Sensitivity: runtimeid.High}})
	assert.Equal(t, runtimeid.Challenge, ev.Decision.Outcome)
	assert.False(t, ev.Decision.SteppedUp)
}

// hangingServer answers /keys once and then hangs every request until
// the test ends.
func hangingServer(t *testing.T, first []byte) *httptest.Server {
	release := make(chan struct{})
	served := make(chan struct{}, 1)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case served <- struct{}{}:
			if first != nil {
				w.Write(first)
				return
			}
		default:
		}
		select {
		case <-release:
		case <-r.Context().Done():
		}
	}))
	t.Cleanup(func() { close(release); srv.Close() })
	return srv
}

func TestFaultsJWKSHangs(t *testing.T) {
	t.Run("first fetch times out", func(t *testing.T) {
		srv := hangingServer(t, nil)
		start := time.Now()
		_, err := runtimeid.RemoteKeys(context.Background(), srv.URL,
			runtimeid.RemoteKeysOptions{FetchTimeout: 200 * time.Millisecond})
		require.ErrorIs(t, err, runtimeid.ErrKeys)
		assert.Less(t, time.Since(start), 5*time.Second)
	})

	t.Run("unknown kid wait is bounded", func(t *testing.T) {
		s0 := newHostile(t, hostileOpts{})
		pub, err := s0.key.PublicKey()
		require.NoError(t, err)
		set := jwk.NewSet()
		require.NoError(t, set.AddKey(pub))
		body, err := json.Marshal(set)
		require.NoError(t, err)
		srv := hangingServer(t, body)
		keys, err := runtimeid.RemoteKeys(context.Background(), srv.URL,
			runtimeid.RemoteKeysOptions{FetchTimeout: 5 * time.Second,
				UnknownKeyWait: 100 * time.Millisecond})
		require.NoError(t, err)
		t.Cleanup(func() { keys.Close() })
		s := newHostile(t, hostileOpts{keys: keys})
		s.priv, s.key = s0.priv, s0.key

		start := time.Now()
		tok := s.forge(map[string]any{"alg": "ES256", "kid": "rotated"},
			func(string) []byte { return make([]byte, 64) })
		rep := s.serve(s.h, get("/", bearer(tok)...))
		assert.Equal(t, 401, rep.status)
		assert.Equal(t, "token_unknown_key", rep.code)
		assert.Less(t, time.Since(start), 3*time.Second)

		// The known key still verifies while the refresh hangs.
		rep = s.serve(s.h, get("/", bearer(s.sign(nil))...))
		assert.Equal(t, 200, rep.status)
	})

	t.Run("garbage at start", func(t *testing.T) {
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
			w.Write([]byte(`{"keys":[{"kty":"EC","crv":"P-256","x":"!!"}]}`))
		}))
		t.Cleanup(srv.Close)
		_, err := runtimeid.RemoteKeys(context.Background(), srv.URL, runtimeid.RemoteKeysOptions{})
		require.ErrorIs(t, err, runtimeid.ErrKeys)
	})
}

// TestFaultsSSFPollHangs: a poll endpoint that never answers costs one
// poll its timeout, not the poller.
func TestFaultsSSFPollHangs(t *testing.T) {
	srv := hangingServer(t, nil)
	rx, err := ssf.NewReceiver(ssf.ReceiverOptions{Issuer: "https://tx.test", Audience: "rx",
		Keys: staticKeysFor(t), State: ssf.NewState(ssf.StateOptions{})})
	require.NoError(t, err)
	p, err := ssf.NewPoller(ssf.PollOptions{Endpoint: srv.URL, Receiver: rx,
		Client: &http.Client{Timeout: 200 * time.Millisecond}})
	require.NoError(t, err)
	start := time.Now()
	_, _, err = p.Poll(context.Background())
	require.ErrorIs(t, err, ssf.ErrDelivery)
	assert.Less(t, time.Since(start), 5*time.Second)
}

func staticKeysFor(t *testing.T) runtimeid.KeySource {
	s := newHostile(t, hostileOpts{})
	pub, err := s.key.PublicKey()
	require.NoError(t, err)
	set := jwk.NewSet()
	require.NoError(t, set.AddKey(pub))
	keys, err := runtimeid.StaticKeys(set)
	require.NoError(t, err)
	return keys
}

// TestHostileMemoryBounded: a stream of distinct subjects, sessions,
// devices and addresses leaves every LRU-bounded store at its bound.
func TestHostileMemoryBounded(t *testing.T) {
	const bound = 1000
	n := 100_000
	if raceEnabled || testing.Short() {
		n = 10_000
	}
	store, err := risk.NewLRUStore(bound)
	require.NoError(t, err)
	baseline, err := risk.NewEvaluator(store, risk.Options{})
	require.NoError(t, err)
	sessions, err := risk.NewSessionEvaluator(risk.SessionOptions{MaxSessions: bound, MaxSources: bound})
	require.NoError(t, err)
	model, err := risk.NewModel(risk.ModelOptions{MaxSubjects: bound})
	require.NoError(t, err)
	eng, _ := faultEngine(t, runtimeid.Config{
		Collectors: []runtimeid.SignalCollector{signals.NewClientIP(nil)},
		Evaluators: []runtimeid.RiskEvaluator{baseline, sessions, model},
	})
	replay := runtimeid.NewMemoryReplayCache(bound, func() time.Time { return hostileNow })
	state := ssf.NewState(ssf.StateOptions{MaxEntries: bound})

	for i := range n {
		sub := fmt.Sprintf("user-%d", i)
		id := &runtimeid.Identity{Subject: sub, SessionID: sub + "-sid", TokenID: sub + "-jti",
			IssuedAt: hostileNow}
		addr := netip.AddrFrom4([4]byte{11, byte(i >> 16), byte(i >> 8), byte(i)})
		_, err := eng.Evaluate(context.Background(), runtimeid.Input{Identity: id,
			ClientIP: addr, UserAgent: "agent/" + sub})
		require.NoError(t, err)
		// A full replay cache refuses new proofs (so the DPoP validator
		// fails closed) rather than forgetting unexpired ones.
		_, err = replay.Seen(context.Background(), sub, hostileNow.Add(time.Hour))
		if i < bound {
			require.NoError(t, err)
		} else {
			require.ErrorIs(t, err, runtimeid.ErrReplayCacheFull)
		}
		require.NoError(t, state.Update(ssf.Key{Kind: ssf.KindIssSub, Issuer: testIssuer, ID: sub}, hostileNow,
			func(f *ssf.Facts) { f.Blocked = "x" }))
	}
	assert.Equal(t, bound, store.Len())
	got, sources := sessions.Len()
	assert.LessOrEqual(t, got, bound)
	assert.LessOrEqual(t, sources, bound)
	assert.Equal(t, bound, model.Len())
	assert.Equal(t, bound, replay.Len())
	assert.Equal(t, bound, state.Len())
}
