package policy

import (
	"context"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/runtimeid/runtimeid"
)

// worstCase is an evaluation at the bounds the cost estimate assumes:
// lists of boundedListLen elements and long strings everywhere.
func worstCase() *runtimeid.Evaluation {
	long := strings.Repeat("x", 8<<10)
	list := make([]string, boundedListLen)
	for i := range list {
		list[i] = long
	}
	ev := evaluation()
	id := ev.Identity
	id.Subject, id.ClientID, id.ACR, id.SessionID = long, long, long, long
	id.Audience, id.Scopes, id.AMR = list, list, list
	ev.Action.Name, ev.Action.Method, ev.Action.Route = long, long, long
	ev.Signals.Network.Country, ev.Signals.Device.UserAgent = long, long
	ev.Assessment.Findings = make([]runtimeid.Finding, boundedListLen)
	for i := range ev.Assessment.Findings {
		ev.Assessment.Findings[i].Code = long
	}
	return ev
}

// TestFastProgramsStayUnderTheLimit checks the claim that lets a rule run
// without cost tracking: on an evaluation at the bounds, its tracked cost
// is within the estimate, and the estimate within RuleCostLimit.
func TestFastProgramsStayUnderTheLimit(t *testing.T) {
	bench, err := Load("../testdata/bench/policy10.yaml")
	require.NoError(t, err)
	extra := mustNew(t,
		Rule{Name: "scopes", When: `identity.scopes.exists(s, s == "a")`,
			Outcome: runtimeid.Block},
		Rule{Name: "findings", When: `risk.findings.all(f, f != "x") && size(risk.weights) > 1`,
			Outcome: runtimeid.Block},
		Rule{Name: "aud", When: `"api" in identity.aud || identity.amr.size() == 3`,
			Outcome: runtimeid.Block},
	)
	env, err := environment()
	require.NoError(t, err)
	ev := worstCase()
	for _, p := range []*Policy{Default(), bench, extra} {
		for _, r := range p.rules {
			require.NotNil(t, r.fast, r.Name)
			ast, iss := env.Compile(r.When)
			require.NoError(t, iss.Err())
			est, err := env.EstimateCost(ast, listBounds{})
			require.NoError(t, err)
			_, det, err := r.prg.Eval(&activation{ev: ev})
			require.NoError(t, err, r.Name)
			actual := *det.ActualCost()
			assert.LessOrEqual(t, actual, est.Max, r.Name)
			assert.LessOrEqual(t, est.Max, uint64(RuleCostLimit), r.Name)
		}
	}
}

// TestUnboundedRulesKeepTracking checks that a rule whose cost depends on
// a size the estimate does not bound has no fast program, and that an
// evaluation with longer lists than assumed runs the tracked ones.
func TestUnboundedRulesKeepTracking(t *testing.T) {
	p := mustNew(t,
		Rule{Name: "claims", When: `identity.claims.exists(k, k == "x")`,
			Outcome: runtimeid.Block},
		Rule{Name: "contains", When: `identity.sub.contains(identity.iss)`,
			Outcome: runtimeid.Block},
		Rule{Name: "nested", When: `risk.findings.exists(a, risk.findings.exists(b, a + b == "x"))`,
			Outcome: runtimeid.Block},
	)
	for _, r := range p.rules {
		assert.Nil(t, r.fast, r.Name)
	}

	ev := evaluation()
	assert.True(t, withinBounds(ev))
	ev.Assessment.Findings = make([]runtimeid.Finding, boundedListLen+1)
	assert.False(t, withinBounds(ev))
	ev = evaluation()
	ev.Identity.Scopes = make([]string, boundedListLen+1)
	assert.False(t, withinBounds(ev))
	ev.Identity = nil
	assert.True(t, withinBounds(ev))

	d, err := p.Decide(context.Background(), evaluation())
	require.NoError(t, err)
	assert.Equal(t, runtimeid.Allow, d.Outcome)
}
