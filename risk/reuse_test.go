package risk

import (
	"context"
	"math"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/runtimeid/runtimeid"
)

// A request evaluated twice (a Protect inside the middleware) or
// rechecked on a long-lived connection counts and teaches once.

func TestReusedEvaluationIsNotCountedAgain(t *testing.T) {
	ctx := context.Background()
	s, err := NewSessionEvaluator(SessionOptions{BurstPerMinute: 2})
	require.NoError(t, err)
	u := use{ip: "192.0.2.1", net: london, dev: chrome}
	for _, reuse := range []func(*runtimeid.Evaluation){
		func(*runtimeid.Evaluation) {},
		func(ev *runtimeid.Evaluation) { ev.Nested = true },
		func(ev *runtimeid.Evaluation) { ev.Recheck = true },
	} {
		ev := u.eval()
		reuse(ev)
		got, err := s.Assess(ctx, ev)
		require.NoError(t, err)
		assert.Empty(t, got)
	}
	// One request so far: the third real one is the first over the
	// limit (TestRequestBurst), the second is not.
	got, err := s.Assess(ctx, u.eval())
	require.NoError(t, err)
	assert.Empty(t, got)
	got, err = s.Assess(ctx, u.eval())
	require.NoError(t, err)
	require.Len(t, got, 1)
	assert.Equal(t, CodeRequestBurst, got[0].Code)
}

func TestReusedEvaluationTeachesNothing(t *testing.T) {
	ctx := context.Background()
	store := NewMemoryStore()
	e, err := NewEvaluator(store, Options{})
	require.NoError(t, err)
	m, err := NewModel(ModelOptions{})
	require.NoError(t, err)

	ev := req{net: london}.eval()
	ev.Nested = true
	e.Learn(ctx, ev)
	m.Learn(ctx, ev)
	ev.Nested, ev.Recheck = false, true
	e.Learn(ctx, ev)
	m.Learn(ctx, ev)
	assert.Equal(t, 0, store.Len())
	assert.Equal(t, 0, m.Len())

	ev.Recheck = false
	e.Learn(ctx, ev)
	m.Learn(ctx, ev)
	assert.Equal(t, 1, store.Len())
	assert.Equal(t, 1, m.Len())
}

func TestAgentCountsARequestOnce(t *testing.T) {
	a := newAgents(t, AgentOptions{})
	id := agentID("agent-7")
	ctx := context.Background()

	outer := agentEv(id, "POST /mcp", runtimeid.Low, agentT0)
	assess(t, a, outer)
	a.Learn(ctx, outer)
	nested := agentEv(id, "export", runtimeid.High, agentT0)
	nested.Nested = true
	assess(t, a, nested)
	a.Learn(ctx, nested)
	recheck := agentEv(id, "POST /mcp", runtimeid.Low, agentT0)
	recheck.Recheck = true
	assess(t, a, recheck)
	a.Learn(ctx, recheck)

	st, ok := a.Stats(id, agentT0)
	require.True(t, ok)
	assert.InDelta(t, math.Ln2, st.ActionsPerMinute, 1e-9) // one action
	assert.Equal(t, 1, st.Learned)
	assert.Equal(t, []string{"POST /mcp", "export"}, st.Actions)
}
