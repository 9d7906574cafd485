package policy

import (
	"context"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/runtimeid/runtimeid"
)

// benchEvaluation is the quiet evaluation of the tests with the scopes,
// client and country the ten-rule policy reads, and one finding.
func benchEvaluation() *runtimeid.Evaluation {
	ev := evaluation()
	ev.Identity.Scopes = []string{"orders:read", "orders:write"}
	ev.Identity.ClientID = "web"
	ev.Action.Method = "GET"
	ev.Signals.Network.Country = "GB"
	ev.Assessment.Findings = []runtimeid.Finding{{Code: "new_asn", Weight: 0.15}}
	return ev
}

func benchDecide(b *testing.B, p *Policy) {
	ev := benchEvaluation()
	ctx := context.Background()
	d, err := p.Decide(ctx, ev)
	require.NoError(b, err)
	require.Equal(b, runtimeid.Allow, d.Outcome)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := p.Decide(ctx, ev); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkPolicy10 decides with the ten rules of the benchmarks
// (testdata/bench/policy10.yaml at the repository root), none of which
// matches.
func BenchmarkPolicy10(b *testing.B) {
	p, err := Load("../testdata/bench/policy10.yaml")
	require.NoError(b, err)
	require.Len(b, p.rules, 10)
	benchDecide(b, p)
}

// BenchmarkPolicyDefault decides with [Default].
func BenchmarkPolicyDefault(b *testing.B) {
	benchDecide(b, Default())
}
