package runtimeid

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// testApproval is a pending approval of alice's with the n-th id.
func testApproval(n int, subject string) Approval {
	return Approval{ID: fmt.Sprintf("apr_%032x", n), Subject: subject,
		Issuer: "https://idp", Actor: "agent-7", ClientID: "bot",
		Action: "export", Created: t0, Expires: t0.Add(time.Minute)}
}

func ids(list []Approval) []string {
	var out []string
	for _, a := range list {
		out = append(out, a.ID)
	}
	return out
}

func TestMemoryApprovalsGetAndList(t *testing.T) {
	m := newMemoryApprovals(10)
	ctx := context.Background()
	for i, sub := range []string{"alice", "bob", "alice"} {
		require.NoError(t, m.Add(ctx, testApproval(i, sub)))
	}

	got, ok, err := m.Get(ctx, testApproval(1, "bob").ID)
	require.NoError(t, err)
	require.True(t, ok)
	assert.Equal(t, testApproval(1, "bob"), got)
	_, ok, err = m.Get(ctx, "apr_missing")
	require.NoError(t, err)
	assert.False(t, ok)

	list, err := m.List(ctx, "https://idp", "alice")
	require.NoError(t, err)
	assert.Equal(t, []string{testApproval(0, "").ID, testApproval(2, "").ID}, ids(list))
	list, err = m.List(ctx, "https://other", "alice")
	require.NoError(t, err)
	assert.Empty(t, list)
}

func TestMemoryApprovalsSwap(t *testing.T) {
	ctx := context.Background()
	approved := testApproval(1, "alice")
	approved.State, approved.Decided = ApprovalApproved, t0
	used := approved
	used.State = ApprovalUsed

	tests := []struct {
		name  string
		add   bool
		next  Approval
		from  ApprovalState
		won   bool
		state ApprovalState
	}{
		{"decide", true, approved, ApprovalPending, true, ApprovalApproved},
		{"stale state", true, used, ApprovalApproved, false, ApprovalPending},
		{"missing", false, approved, ApprovalPending, false, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := newMemoryApprovals(10)
			if tt.add {
				require.NoError(t, m.Add(ctx, testApproval(1, "alice")))
			}
			won, err := m.Swap(ctx, tt.next, tt.from)
			require.NoError(t, err)
			assert.Equal(t, tt.won, won)
			got, _, _ := m.Get(ctx, tt.next.ID)
			assert.Equal(t, tt.state, got.State)
		})
	}
}

// TestMemoryApprovalsBounded keeps at most two approvals: a decided one
// outlives an older pending one; using it does not make it recent.
func TestMemoryApprovalsBounded(t *testing.T) {
	ctx := context.Background()
	m := newMemoryApprovals(2)
	a0, a1 := testApproval(0, "alice"), testApproval(1, "alice")
	require.NoError(t, m.Add(ctx, a0))
	require.NoError(t, m.Add(ctx, a1))

	next := a0
	next.State = ApprovalApproved
	won, err := m.Swap(ctx, next, ApprovalPending)
	require.NoError(t, err)
	require.True(t, won)
	require.NoError(t, m.Add(ctx, testApproval(2, "alice")))
	list, _ := m.List(ctx, "https://idp", "alice")
	assert.Equal(t, []string{a0.ID, testApproval(2, "").ID}, ids(list))

	next.State = ApprovalUsed
	won, err = m.Swap(ctx, next, ApprovalApproved)
	require.NoError(t, err)
	require.True(t, won)
	require.NoError(t, m.Add(ctx, testApproval(3, "alice")))
	list, _ = m.List(ctx, "https://idp", "alice")
	assert.Equal(t, []string{testApproval(2, "").ID, testApproval(3, "").ID}, ids(list))
	assert.Equal(t, 2, m.all.Len())
}

func TestMemoryApprovalsSwapOnce(t *testing.T) {
	ctx := context.Background()
	m := newMemoryApprovals(10)
	ap := testApproval(1, "alice")
	ap.State = ApprovalApproved
	require.NoError(t, m.Add(ctx, ap))
	ap.State = ApprovalUsed

	var wins atomic.Int32
	var wg sync.WaitGroup
	for range 32 {
		wg.Go(func() {
			if won, err := m.Swap(ctx, ap, ApprovalApproved); err == nil && won {
				wins.Add(1)
			}
		})
	}
	wg.Wait()
	assert.Equal(t, int32(1), wins.Load())
}

// TestApprovalUsedOnceConcurrently retries one approved action from
// many goroutines: exactly one is allowed.
func TestApprovalUsedOnceConcurrently(t *testing.T) {
	s := newApprovalStack(t)
	ap, err := s.store.RequestApproval(context.Background(), s.evaluate(t, "export", ""))
	require.NoError(t, err)
	require.NoError(t, s.store.Approve(context.Background(), ap.ID, &Identity{Subject: "alice",
		Issuer: "https://idp"}))

	ctx := WithApprovalRef(context.Background(), ApprovalRef{ID: ap.ID, Action: "export"})
	var wins atomic.Int32
	var wg sync.WaitGroup
	for range 32 {
		wg.Go(func() {
			if _, _, ok := s.store.StepUp(ctx, agentIdentity(),
				&StepUp{ACRValues: []string{ApprovalACR}}); ok {
				wins.Add(1)
			}
		})
	}
	wg.Wait()
	assert.Equal(t, int32(1), wins.Load())
}

var errDown = errors.New("store down")

// brokenStore fails every call, and counts them.
type brokenStore struct{ calls atomic.Int32 }

func (b *brokenStore) Add(context.Context, Approval) error {
	b.calls.Add(1)
	return errDown
}

func (b *brokenStore) Get(context.Context, string) (Approval, bool, error) {
	b.calls.Add(1)
	return Approval{}, false, errDown
}

func (b *brokenStore) List(context.Context, string, string) ([]Approval, error) {
	b.calls.Add(1)
	return nil, errDown
}

func (b *brokenStore) Swap(context.Context, Approval, ApprovalState) (bool, error) {
	b.calls.Add(1)
	return false, errDown
}

// TestApprovalsStoreDown: a store that cannot answer creates, decides
// and uses nothing.
func TestApprovalsStoreDown(t *testing.T) {
	s := newApprovalStack(t)
	broken := &brokenStore{}
	s.store.store = broken
	ctx := context.Background()
	id := testApproval(1, "alice").ID
	human := &Identity{Subject: "alice", Issuer: "https://idp"}

	_, err := s.store.RequestApproval(ctx, s.evaluate(t, "export", ""))
	assert.ErrorIs(t, err, errDown)
	assert.ErrorIs(t, s.store.Approve(context.Background(), id, human), errDown)
	assert.ErrorIs(t, s.store.Deny(context.Background(), id, human), errDown)
	_, ok, err := s.store.Get(ctx, id)
	assert.False(t, ok)
	assert.ErrorIs(t, err, errDown)
	pending, err := s.store.Pending(ctx, "https://idp", "alice")
	assert.Nil(t, pending)
	assert.ErrorIs(t, err, errDown)
	assert.Equal(t, Challenge, s.evaluate(t, "export", id).Decision.Outcome)

	for _, r := range []*http.Request{
		httptest.NewRequest("GET", "/approvals", nil),
		httptest.NewRequest("POST", "/approvals",
			strings.NewReader("id="+id+"&decision=approve")),
	} {
		r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		ev := &Evaluation{Identity: human, Decision: Decision{Outcome: Allow}}
		w := httptest.NewRecorder()
		s.store.Handler().ServeHTTP(w, r.WithContext(NewContext(r.Context(), ev)))
		assert.Equal(t, http.StatusServiceUnavailable, w.Code, r.Method)
	}

	// A made-up id is not looked up.
	before := broken.calls.Load()
	assert.ErrorIs(t, s.store.Approve(context.Background(), "apr_x", human), ErrApprovalNotFound)
	assert.Equal(t, Challenge, s.evaluate(t, "export", "made-up").Decision.Outcome)
	assert.Equal(t, before, broken.calls.Load())
}

func TestApprovalsUseStore(t *testing.T) {
	m := newMemoryApprovals(10)
	a, err := NewApprovals(ApprovalsOptions{Store: m, Now: func() time.Time { return t0 }})
	require.NoError(t, err)
	assert.Same(t, m, a.store)
}
