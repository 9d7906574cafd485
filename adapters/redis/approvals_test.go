package redisstore

import (
	"context"
	"encoding/json"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/runtimeid/runtimeid"
)

// agentPolicy challenges every action of an agent, answerable only by
// a human approval, and allows the rest.
type agentPolicy struct{}

func (agentPolicy) Decide(_ context.Context, ev *runtimeid.Evaluation) (runtimeid.Decision, error) {
	if ev.Identity.IsDelegated() {
		return runtimeid.Decision{Outcome: runtimeid.Challenge, Rule: "agent",
			Reason: "agent_action",
			StepUp: &runtimeid.StepUp{ACRValues: []string{runtimeid.ApprovalACR}}}, nil
	}
	return runtimeid.Decision{Outcome: runtimeid.Allow, Rule: "default"}, nil
}

// approver is one instance of a service with human approvals: an
// engine whose approvals live in the shared store, and the approval
// endpoint behind it.
type approver struct {
	engine    *runtimeid.Engine
	approvals *runtimeid.Approvals
	endpoint  http.Handler
}

func newApprover(t testing.TB, w *world, store *Store, clock func() time.Time) *approver {
	ap, err := runtimeid.NewApprovals(runtimeid.ApprovalsOptions{
		Now: clock, Store: store.Approvals()})
	require.NoError(t, err)
	eng := newEngine(t, w, runtimeid.Config{Policy: agentPolicy{}, StepUps: ap, Now: clock})
	return &approver{engine: eng, approvals: ap,
		endpoint: eng.Protect("approve_agent_action", runtimeid.High)(ap.Handler())}
}

// approvers are n instances of one service.
func approvers(t testing.TB, w *world, n int, now func() time.Time) []*approver {
	out := make([]*approver, n)
	for i, s := range sharedStores(t, n, now) {
		out[i] = newApprover(t, w, s, now)
	}
	return out
}

func agent() *runtimeid.Identity {
	return &runtimeid.Identity{Subject: "alice", Issuer: testIssuer, SessionID: "s-1",
		Actor: &runtimeid.Actor{Subject: "agent-7", ClientID: "bot"}}
}

var alice = &runtimeid.Identity{Subject: "alice", Issuer: testIssuer}

// export evaluates the agent's export, naming the approval if any.
func (a *approver) export(t testing.TB, approval string) *runtimeid.Evaluation {
	ctx := context.Background()
	if approval != "" {
		ctx = runtimeid.WithApprovalRef(ctx,
			runtimeid.ApprovalRef{ID: approval, Action: "export"})
	}
	ev, _ := a.engine.Evaluate(ctx, runtimeid.Input{Identity: agent(),
		Action: runtimeid.Action{Name: "export", Sensitivity: runtimeid.High}})
	require.NotNil(t, ev)
	return ev
}

// request asks for an approval, as an adapter does on a challenge.
func (a *approver) request(t testing.TB) runtimeid.Approval {
	ev := a.export(t, "")
	require.Equal(t, runtimeid.Challenge, ev.Decision.Outcome)
	ap, err := a.approvals.RequestApproval(context.Background(), ev)
	require.NoError(t, err)
	return ap
}

// call sends a request to the approval endpoint with token.
func (a *approver) call(token, method, form string) *httptest.ResponseRecorder {
	r := httptest.NewRequest(method, "/approvals", strings.NewReader(form))
	r.Header.Set("Authorization", "Bearer "+token)
	r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	rec := httptest.NewRecorder()
	a.endpoint.ServeHTTP(rec, r)
	return rec
}

func approveForm(id string) string {
	return url.Values{"id": {id}, "decision": {"approve"}}.Encode()
}

// TestApprovalsAcrossInstances: challenged on A, approved through B's
// endpoint, the retry on C is allowed once; a second retry on A is
// challenged.
func TestApprovalsAcrossInstances(t *testing.T) {
	w := newWorld(t)
	ins := approvers(t, w, 3, clock)
	a, b, c := ins[0], ins[1], ins[2]
	human := w.mint("s-h", false)

	ap := a.request(t)
	assert.Equal(t, runtimeid.Challenge, c.export(t, ap.ID).Decision.Outcome,
		"not approved yet")

	// B lists it for alice, refuses the agent, and approves it.
	rec := b.call(human, http.MethodGet, "")
	require.Equal(t, http.StatusOK, rec.Code)
	var pending []runtimeid.Approval
	require.NoError(t, json.Unmarshal(rec.Body.Bytes(), &pending))
	assert.Equal(t, []runtimeid.Approval{ap}, pending)
	assert.ErrorIs(t, b.approvals.Approve(t.Context(), ap.ID, agent()),
		runtimeid.ErrApprovalForbidden)
	rec = b.call(human, http.MethodPost, approveForm(ap.ID))
	require.Equal(t, http.StatusOK, rec.Code)
	var decided runtimeid.Approval
	require.NoError(t, json.Unmarshal(rec.Body.Bytes(), &decided))
	assert.Equal(t, runtimeid.ApprovalApproved, decided.State)
	assert.Equal(t, testNow, decided.Decided)
	assert.Equal(t, http.StatusConflict, c.call(human, http.MethodPost, approveForm(ap.ID)).Code)

	got := c.export(t, ap.ID)
	assert.Equal(t, runtimeid.Allow, got.Decision.Outcome)
	assert.True(t, got.Decision.SteppedUp)

	for _, other := range []*approver{a, b, c} {
		assert.Equal(t, runtimeid.Challenge, other.export(t, ap.ID).Decision.Outcome)
	}
	stored, ok, err := a.approvals.Get(t.Context(), ap.ID)
	require.NoError(t, err)
	require.True(t, ok)
	assert.Equal(t, runtimeid.ApprovalUsed, stored.State)
	waiting, err := a.approvals.Pending(t.Context(), testIssuer, "alice")
	require.NoError(t, err)
	assert.Empty(t, waiting)
}

// TestApprovalsUsedOnceAcrossInstances retries one approved action on
// three instances at once: exactly one retry is allowed. Two
// decisions racing on two instances: exactly one wins.
func TestApprovalsUsedOnceAcrossInstances(t *testing.T) {
	ins := approvers(t, newWorld(t), 3, clock)

	ap := ins[0].request(t)
	var errs [2]error
	var wg sync.WaitGroup
	wg.Go(func() { errs[0] = ins[1].approvals.Approve(context.Background(), ap.ID, alice) })
	wg.Go(func() { errs[1] = ins[2].approvals.Deny(context.Background(), ap.ID, alice) })
	wg.Wait()
	closed := 0
	for _, err := range errs {
		if err != nil {
			assert.ErrorIs(t, err, runtimeid.ErrApprovalClosed)
			closed++
		}
	}
	require.Equal(t, 1, closed, "one decision wins")
	if errs[0] != nil {
		ap = ins[0].request(t)
		require.NoError(t, ins[1].approvals.Approve(context.Background(), ap.ID, alice))
	}

	var allowed atomic.Int32
	for _, in := range ins {
		for range 8 {
			wg.Go(func() {
				if in.export(t, ap.ID).Decision.Outcome == runtimeid.Allow {
					allowed.Add(1)
				}
			})
		}
	}
	wg.Wait()
	assert.Equal(t, int32(1), allowed.Load())
}

// TestApprovalsFailClosed stops Redis: no approval is created, decided
// or used; once Redis is back, the approval given before is used once.
func TestApprovalsFailClosed(t *testing.T) {
	srv := startServer(t)
	w := newWorld(t)
	logs := &logged{}
	store := newStore(t, newClient(t, srv.addr), testPrefix(t), func(o *Options) {
		o.Now = clock
		o.Timeout = time.Second
		o.Logger = slog.New(logs)
	})
	in := newApprover(t, w, store, clock)
	human := w.mint("s-h", false)
	ap := in.request(t)
	require.NoError(t, in.approvals.Approve(context.Background(), ap.ID, alice))

	srv.stop()
	got := in.export(t, ap.ID)
	assert.Equal(t, runtimeid.Challenge, got.Decision.Outcome)
	assert.False(t, got.Decision.SteppedUp)
	_, err := in.approvals.RequestApproval(context.Background(), in.export(t, ""))
	assert.ErrorIs(t, err, ErrUnavailable)
	assert.ErrorIs(t, in.approvals.Deny(context.Background(), ap.ID, alice), ErrUnavailable)
	assert.Equal(t, http.StatusServiceUnavailable,
		in.call(human, http.MethodPost, approveForm(ap.ID)).Code)
	assert.Equal(t, http.StatusServiceUnavailable, in.call(human, http.MethodGet, "").Code)
	assert.Contains(t, logs.messages(), "redisstore: approvals get failed")

	srv.start()
	eventually(t, 10*time.Second, "redis back", func() bool {
		_, ok, err := in.approvals.Get(t.Context(), ap.ID)
		return ok && err == nil
	})
	assert.Equal(t, runtimeid.Allow, in.export(t, ap.ID).Decision.Outcome)
	assert.Equal(t, runtimeid.Challenge, in.export(t, ap.ID).Decision.Outcome)
}

// TestApprovalsListBounded keeps the latest MaxListedApprovals of a
// subject in the list; an older one can still be decided by id.
func TestApprovalsListBounded(t *testing.T) {
	addr := redisAddr(t)
	now, at := movableClock()
	store := newStore(t, newClient(t, addr), testPrefix(t), func(o *Options) {
		o.Now = at
		o.MaxListedApprovals = 2
	})
	in := newApprover(t, newWorld(t), store, at)
	var made []runtimeid.Approval
	for range 3 {
		made = append(made, in.request(t))
		now.Add(int64(time.Second))
	}
	pending, err := in.approvals.Pending(t.Context(), testIssuer, "alice")
	require.NoError(t, err)
	assert.Equal(t, made[1:], pending)
	require.NoError(t, in.approvals.Approve(context.Background(), made[0].ID, alice))

	// Unknown and malformed ids are not found; a foreign record is
	// refused.
	_, ok, err := in.approvals.Get(t.Context(), "apr_"+strings.Repeat("0", 32))
	require.NoError(t, err)
	assert.False(t, ok)
	_, _, err = decodeApproval(made[0].ID, []byte(`{"id":"apr_other"}`))
	assert.ErrorContains(t, err, "redisstore: malformed approval")
	_, _, err = decodeApproval(made[0].ID, []byte(`{`))
	assert.ErrorContains(t, err, "redisstore: malformed approval")
}

// TestApprovalsExpireAcrossInstances: an approval given on one
// instance and not used within its TTL is refused on another.
func TestApprovalsExpireAcrossInstances(t *testing.T) {
	now, at := movableClock()
	ins := approvers(t, newWorld(t), 2, at)

	ap := ins[0].request(t)
	require.NoError(t, ins[0].approvals.Approve(context.Background(), ap.ID, alice))
	now.Store(ap.Expires.UnixNano())
	assert.Equal(t, runtimeid.Challenge, ins[1].export(t, ap.ID).Decision.Outcome)
	assert.ErrorIs(t, ins[1].approvals.Deny(t.Context(), ap.ID, alice),
		runtimeid.ErrApprovalClosed)
}

// movableClock starts at testNow; the store's goroutines read it
// while the test moves it.
func movableClock() (*atomic.Int64, func() time.Time) {
	now := &atomic.Int64{}
	now.Store(testNow.UnixNano())
	return now, func() time.Time { return time.Unix(0, now.Load()).UTC() }
}

// logged records the messages a store logs from its goroutines.
type logged struct {
	mu  sync.Mutex
	got []string
}

func (l *logged) Enabled(context.Context, slog.Level) bool { return true }
func (l *logged) WithAttrs([]slog.Attr) slog.Handler       { return l }
func (l *logged) WithGroup(string) slog.Handler            { return l }

func (l *logged) Handle(_ context.Context, r slog.Record) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.got = append(l.got, r.Message)
	return nil
}

func (l *logged) messages() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return slices.Clone(l.got)
}

// BenchmarkApprovalLifecycle is one approval's life through Redis, as
// three instances see it: requested on one, approved on another, the
// retry allowed on the third, then refused on the first.
func BenchmarkApprovalLifecycle(b *testing.B) {
	ins := approvers(b, newWorld(b), 3, clock)
	for b.Loop() {
		ap := ins[0].request(b)
		require.NoError(b, ins[1].approvals.Approve(context.Background(), ap.ID, alice))
		require.Equal(b, runtimeid.Allow, ins[2].export(b, ap.ID).Decision.Outcome)
		require.Equal(b, runtimeid.Challenge, ins[0].export(b, ap.ID).Decision.Outcome)
	}
}
