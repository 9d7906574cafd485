package risk

import (
	"context"
	"fmt"
	"math"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/runtimeid/runtimeid"
)

var agentT0 = time.Date(2026, 12, 4, 12, 0, 0, 0, time.UTC)

func agentID(actor string) *runtimeid.Identity {
	return &runtimeid.Identity{Subject: "alice", Issuer: "https://idp",
		Actor: &runtimeid.Actor{Subject: actor, ClientID: "bot"}}
}

func agentEv(id *runtimeid.Identity, action string, s runtimeid.Sensitivity,
	t time.Time) *runtimeid.Evaluation {
	return &runtimeid.Evaluation{Time: t, Identity: id,
		Action:   runtimeid.Action{Name: action, Sensitivity: s},
		Decision: runtimeid.Decision{Outcome: runtimeid.Allow}}
}

func newAgents(t *testing.T, o AgentOptions) *AgentEvaluator {
	t.Helper()
	a, err := NewAgentEvaluator(o)
	require.NoError(t, err)
	return a
}

func assess(t *testing.T, a *AgentEvaluator, ev *runtimeid.Evaluation) []runtimeid.Finding {
	t.Helper()
	fs, err := a.Assess(context.Background(), ev)
	require.NoError(t, err)
	return fs
}

func TestAgentOnlyAgents(t *testing.T) {
	a := newAgents(t, AgentOptions{ClientIDs: []string{"batch-bot"}})
	human := &runtimeid.Identity{Subject: "alice", ClientID: "web"}
	bot := &runtimeid.Identity{Subject: "alice", ClientID: "batch-bot"}
	for range 100 {
		assert.Empty(t, assess(t, a, agentEv(human, "x", runtimeid.Low, agentT0)))
		assess(t, a, agentEv(bot, "x", runtimeid.Low, agentT0))
	}
	assert.Equal(t, 1, a.Len())
	assert.Empty(t, assess(t, a, agentEv(nil, "x", runtimeid.Low, agentT0)))
	_, ok := a.Stats(human, agentT0)
	assert.False(t, ok)
}

func TestAgentRateHigh(t *testing.T) {
	a := newAgents(t, AgentOptions{})
	id := agentID("agent-7")
	// k actions in one instant count k, so the rate is k·ln2 a minute:
	// the 44th is the first at or above 30.
	for k := 1; k <= 43; k++ {
		require.Empty(t, assess(t, a, agentEv(id, "list", runtimeid.Low, agentT0)), k)
	}
	fs := assess(t, a, agentEv(id, "list", runtimeid.Low, agentT0))
	rate := 44 * math.Ln2
	require.Len(t, fs, 1)
	assert.Equal(t, CodeAgentRateHigh, fs[0].Code)
	assert.InDelta(t, 0.5*rate/60, fs[0].Weight, 1e-12)
	assert.Equal(t, "about 30 actions per minute, limit 30", fs[0].Detail)

	// Another agent acting for the same user has its own rate.
	assert.Empty(t, assess(t, a, agentEv(agentID("agent-8"), "list", runtimeid.Low, agentT0)))

	// Two half-lives later the rate is a quarter.
	st, ok := a.Stats(id, agentT0.Add(2*time.Minute))
	require.True(t, ok)
	assert.InDelta(t, rate/4, st.ActionsPerMinute, 1e-9)
}

func usage(a *AgentEvaluator, id *runtimeid.Identity, t time.Time, records int, bytes int64) {
	ev := agentEv(id, "list", runtimeid.Low, t)
	a.RecordUsage(context.Background(), ev, runtimeid.Usage{Records: records, Bytes: bytes})
}

func TestAgentVolumeColdStart(t *testing.T) {
	a := newAgents(t, AgentOptions{})
	id := agentID("agent-7")
	usage(a, id, agentT0, 1000, 0)
	assert.Empty(t, assess(t, a, agentEv(id, "list", runtimeid.Low, agentT0)))
	usage(a, id, agentT0, 1, 0)
	fs := assess(t, a, agentEv(id, "list", runtimeid.Low, agentT0.Add(59*time.Second)))
	assert.Equal(t, []runtimeid.Finding{{Code: CodeAgentVolumeSpike, Weight: 0.8,
		Detail: "1001 records read this window, threshold 1000"}}, fs)

	// A new window starts empty.
	assert.Empty(t, assess(t, a, agentEv(id, "list", runtimeid.Low, agentT0.Add(time.Minute))))
}

func TestAgentVolumeAgainstBaseline(t *testing.T) {
	a := newAgents(t, AgentOptions{})
	id := agentID("agent-7")
	// Three windows of 20 records and 4 KiB each make the baseline.
	for w := range 3 {
		tw := agentT0.Add(time.Duration(w) * time.Minute)
		assess(t, a, agentEv(id, "list", runtimeid.Low, tw))
		usage(a, id, tw, 20, 4096)
	}
	t3 := agentT0.Add(3 * time.Minute)
	assert.Empty(t, assess(t, a, agentEv(id, "list", runtimeid.Low, t3)))
	st, _ := a.Stats(id, t3)
	assert.Equal(t, 3, st.BaselineWindows)
	assert.Equal(t, 20.0, st.BaselineRecords)
	assert.Equal(t, 4096.0, st.BaselineBytes)

	// Threshold: max(100, 10 × 20) = 200 records; bytes max(1 MiB, 40 KiB).
	usage(a, id, t3, 200, 0)
	assert.Empty(t, assess(t, a, agentEv(id, "list", runtimeid.Low, t3)))
	usage(a, id, t3, 4800, 0)
	fs := assess(t, a, agentEv(id, "list", runtimeid.Low, t3))
	assert.Equal(t, []runtimeid.Finding{{Code: CodeAgentVolumeSpike, Weight: 0.8,
		Detail: "5000 records read this window, threshold 200"}}, fs)

	// The spiking window teaches the baseline only up to the threshold:
	// 20 + 0.25·(200-20) = 65.
	t4 := agentT0.Add(4 * time.Minute)
	assess(t, a, agentEv(id, "list", runtimeid.Low, t4))
	st, _ = a.Stats(id, t4)
	assert.Equal(t, 65.0, st.BaselineRecords)
	assert.Equal(t, 4096.0-0.25*4096, st.BaselineBytes)

	usage(a, id, t4, 0, 1<<20+1)
	fs = assess(t, a, agentEv(id, "list", runtimeid.Low, t4))
	assert.Equal(t, []runtimeid.Finding{{Code: CodeAgentVolumeSpike, Weight: 0.8,
		Detail: "1048577 bytes read this window, threshold 1048576"}}, fs)
}

// trainedAgent returns an evaluator that learned 20 list_orders and
// one audit action of agent-7.
func trainedAgent(t *testing.T) (*AgentEvaluator, *runtimeid.Identity) {
	a := newAgents(t, AgentOptions{})
	id := agentID("agent-7")
	for range 20 {
		a.Learn(context.Background(), agentEv(id, "list_orders", runtimeid.Low, agentT0))
	}
	a.Learn(context.Background(), agentEv(id, "audit", runtimeid.High, agentT0))
	return a, id
}

func TestAgentScopeDrift(t *testing.T) {
	// Cold start: 19 learned actions are not yet a baseline.
	cold := newAgents(t, AgentOptions{})
	id := agentID("agent-7")
	for range 19 {
		cold.Learn(context.Background(), agentEv(id, "list_orders", runtimeid.Low, agentT0))
	}
	assert.Empty(t, assess(t, cold, agentEv(id, "export", runtimeid.High, agentT0)))

	tests := []struct {
		action string
		s      runtimeid.Sensitivity
		want   []runtimeid.Finding
	}{
		{"list_orders", runtimeid.Low, nil},
		{"export", runtimeid.High, []runtimeid.Finding{{Code: CodeAgentScopeDrift,
			Weight: 0.6, Detail: `high action "export" is outside this agent's 2 usual actions`}}},
		{"update_profile", runtimeid.Medium, []runtimeid.Finding{{Code: CodeAgentScopeDrift,
			Weight: 0.3, Detail: `medium action "update_profile" is outside this agent's 2 usual actions`}}},
	}
	for _, tt := range tests {
		t.Run(tt.action, func(t *testing.T) {
			a, id := trainedAgent(t)
			assert.Equal(t, tt.want, assess(t, a, agentEv(id, tt.action, tt.s, agentT0)))
		})
	}
}

func TestAgentHighShareDrift(t *testing.T) {
	a, id := trainedAgent(t)
	// One low, then a high: 1 of 2 recent actions is high, usually 1/21.
	assert.Empty(t, assess(t, a, agentEv(id, "list_orders", runtimeid.Low, agentT0)))
	fs := assess(t, a, agentEv(id, "audit", runtimeid.High, agentT0))
	assert.Equal(t, []runtimeid.Finding{{Code: CodeAgentScopeDrift, Weight: 0.3,
		Detail: "50% of recent actions are high-sensitivity, usually 5%"}}, fs)
}

func TestAgentWeightsOffAndBounds(t *testing.T) {
	a := newAgents(t, AgentOptions{MaxAgents: 2, RatePerMinute: 1,
		Weights: AgentWeights{RateHigh: Off}})
	for i := range 3 {
		id := agentID(fmt.Sprint("agent-", i))
		for range 5 {
			assert.Empty(t, assess(t, a, agentEv(id, "x", runtimeid.Low, agentT0)))
		}
	}
	assert.Equal(t, 2, a.Len())

	// The learned set stops at MaxActions.
	b := newAgents(t, AgentOptions{MaxActions: 2})
	id := agentID("agent-7")
	for _, name := range []string{"a", "b", "c", "a"} {
		b.Learn(context.Background(), agentEv(id, name, runtimeid.Low, agentT0))
	}
	st, _ := b.Stats(id, agentT0)
	assert.Equal(t, []string{"a", "b"}, st.Actions)
	assert.Equal(t, 4, st.Learned)
}

func TestAgentOptionsInvalid(t *testing.T) {
	tests := []AgentOptions{
		{MaxAgents: -1},
		{HalfLife: -time.Second},
		{RatePerMinute: math.NaN()},
		{VolumeFactor: math.Inf(1)},
		{HighShare: 1.5},
		{Weights: AgentWeights{VolumeSpike: 2}},
	}
	for i, o := range tests {
		_, err := NewAgentEvaluator(o)
		assert.ErrorIs(t, err, runtimeid.ErrConfig, i)
	}
}

func TestAgentUsageSaturates(t *testing.T) {
	a := newAgents(t, AgentOptions{})
	id := agentID("agent-7")
	usage(a, id, agentT0, -5, math.MaxInt64)
	usage(a, id, agentT0, 1, math.MaxInt64)
	st, _ := a.Stats(id, agentT0)
	assert.Equal(t, int64(1), st.WindowRecords)
	assert.Equal(t, int64(math.MaxInt64), st.WindowBytes)
}

func BenchmarkAgentAssess(b *testing.B) {
	a, _ := NewAgentEvaluator(AgentOptions{})
	ids := make([]*runtimeid.Identity, 1000)
	for i := range ids {
		ids[i] = agentID(fmt.Sprint("agent-", i))
	}
	ctx := context.Background()
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		ev := agentEv(ids[i%len(ids)], "list", runtimeid.Low,
			agentT0.Add(time.Duration(i)*time.Millisecond))
		a.Assess(ctx, ev)
		a.Learn(ctx, ev)
	}
}
