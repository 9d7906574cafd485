package policy

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/runtimeid/runtimeid"
)

func TestDefaultPolicy(t *testing.T) {
	fresh := &runtimeid.StepUp{MaxAge: 5 * time.Minute}
	high := func(ev *runtimeid.Evaluation) { ev.Action.Sensitivity = runtimeid.High }
	finding := func(code string) func(*runtimeid.Evaluation) {
		return func(ev *runtimeid.Evaluation) {
			ev.Assessment.Findings = append(ev.Assessment.Findings, runtimeid.Finding{Code: code})
		}
	}
	tests := []struct {
		name  string
		setup []func(*runtimeid.Evaluation)
		want  runtimeid.Decision
	}{
		{"quiet request", nil, runtimeid.Decision{
			Outcome: runtimeid.Allow, Rule: "default", Reason: "default"}},
		{"quiet high request", []func(*runtimeid.Evaluation){high}, runtimeid.Decision{
			Outcome: runtimeid.Allow, Rule: "default", Reason: "default"}},
		{"anonymous network, high", []func(*runtimeid.Evaluation){high,
			func(ev *runtimeid.Evaluation) { ev.Signals.Network.Anonymous = true }},
			runtimeid.Decision{Outcome: runtimeid.Block,
				Rule: "block-anonymous-network-high", Reason: "anonymous_network"}},
		{"anonymous_network finding, high", []func(*runtimeid.Evaluation){high,
			finding("anonymous_network")},
			runtimeid.Decision{Outcome: runtimeid.Block,
				Rule: "block-anonymous-network-high", Reason: "anonymous_network"}},
		{"anonymous network, medium", []func(*runtimeid.Evaluation){
			func(ev *runtimeid.Evaluation) { ev.Signals.Network.Anonymous = true }},
			runtimeid.Decision{Outcome: runtimeid.Allow, Rule: "default", Reason: "default"}},
		{"impossible travel", []func(*runtimeid.Evaluation){finding("impossible_travel")},
			runtimeid.Decision{Outcome: runtimeid.Block,
				Rule: "block-impossible-travel", Reason: "impossible_travel"}},
		{"token replayed by another device, fresh login", []func(*runtimeid.Evaluation){high,
			finding("new_device"), finding("token_replay")},
			runtimeid.Decision{Outcome: runtimeid.Block,
				Rule: "block-stolen-token", Reason: "token_theft"}},
		{"session in two distant places", []func(*runtimeid.Evaluation){
			finding("concurrent_session_far_apart")},
			runtimeid.Decision{Outcome: runtimeid.Block,
				Rule: "block-stolen-token", Reason: "token_theft"}},
		{"bot, medium", []func(*runtimeid.Evaluation){
			func(ev *runtimeid.Evaluation) { ev.Signals.Device.Bot = true }},
			runtimeid.Decision{Outcome: runtimeid.Block, Rule: "block-bot", Reason: "bot"}},
		{"bot, low", []func(*runtimeid.Evaluation){func(ev *runtimeid.Evaluation) {
			ev.Signals.Device.Bot = true
			ev.Action.Sensitivity = runtimeid.Low
		}}, runtimeid.Decision{Outcome: runtimeid.Allow, Rule: "default", Reason: "default"}},
		{"stale auth, high", []func(*runtimeid.Evaluation){high,
			func(ev *runtimeid.Evaluation) { ev.Signals.Session.SinceAuth = 5*time.Minute + 1 }},
			runtimeid.Decision{Outcome: runtimeid.Challenge, Rule: "challenge-stale-auth-high",
				Reason: "stale_authentication", StepUp: fresh}},
		{"auth exactly 5m ago, high", []func(*runtimeid.Evaluation){high,
			func(ev *runtimeid.Evaluation) { ev.Signals.Session.SinceAuth = 5 * time.Minute }},
			runtimeid.Decision{Outcome: runtimeid.Allow, Rule: "default", Reason: "default"}},
		{"no auth_time, high", []func(*runtimeid.Evaluation){high,
			func(ev *runtimeid.Evaluation) { ev.Signals.Session = runtimeid.SessionSignals{} }},
			runtimeid.Decision{Outcome: runtimeid.Challenge, Rule: "challenge-stale-auth-high",
				Reason: "stale_authentication", StepUp: fresh}},
		{"stale auth, medium", []func(*runtimeid.Evaluation){
			func(ev *runtimeid.Evaluation) { ev.Signals.Session = runtimeid.SessionSignals{} }},
			runtimeid.Decision{Outcome: runtimeid.Allow, Rule: "default", Reason: "default"}},
		{"new device, high", []func(*runtimeid.Evaluation){high, finding("new_device")},
			runtimeid.Decision{Outcome: runtimeid.Challenge, Rule: "challenge-new-device-high",
				Reason: "new_device", StepUp: fresh}},
		{"new device, medium", []func(*runtimeid.Evaluation){finding("new_device")},
			runtimeid.Decision{Outcome: runtimeid.Allow, Rule: "default", Reason: "default"}},
		{"high risk", []func(*runtimeid.Evaluation){func(ev *runtimeid.Evaluation) {
			ev.Assessment.Level = runtimeid.LevelHigh
		}}, runtimeid.Decision{Outcome: runtimeid.Challenge, Rule: "challenge-high-risk",
			Reason: "high_risk"}},
		{"new device beats stale auth and high risk", []func(*runtimeid.Evaluation){high,
			finding("new_device"), func(ev *runtimeid.Evaluation) {
				ev.Signals.Session.SinceAuth = time.Hour
				ev.Assessment.Level = runtimeid.LevelHigh
			}},
			runtimeid.Decision{Outcome: runtimeid.Challenge, Rule: "challenge-new-device-high",
				Reason: "new_device", StepUp: fresh}},
		{"stale auth beats high risk", []func(*runtimeid.Evaluation){high,
			func(ev *runtimeid.Evaluation) {
				ev.Signals.Session.SinceAuth = time.Hour
				ev.Assessment.Level = runtimeid.LevelHigh
			}},
			runtimeid.Decision{Outcome: runtimeid.Challenge, Rule: "challenge-stale-auth-high",
				Reason: "stale_authentication", StepUp: fresh}},
		{"block beats challenge", []func(*runtimeid.Evaluation){high,
			finding("new_device"), finding("impossible_travel")},
			runtimeid.Decision{Outcome: runtimeid.Block,
				Rule: "block-impossible-travel", Reason: "impossible_travel"}},
		{"no identity", []func(*runtimeid.Evaluation){func(ev *runtimeid.Evaluation) {
			ev.Identity = nil
			ev.Signals.Session = runtimeid.SessionSignals{}
		}}, runtimeid.Decision{Outcome: runtimeid.Allow, Rule: "default", Reason: "default"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ev := evaluation()
			for _, f := range tt.setup {
				f(ev)
			}
			d, err := Default().Decide(context.Background(), ev)
			require.NoError(t, err)
			assert.Equal(t, tt.want, d)
		})
	}
}

func TestDefaultShared(t *testing.T) {
	assert.Same(t, Default(), Default())
	names := make([]string, 0, 6)
	for _, r := range Default().Rules() {
		names = append(names, r.Name)
	}
	assert.Equal(t, []string{
		"block-anonymous-network-high", "block-impossible-travel", "block-stolen-token", "block-bot",
		"challenge-new-device-high", "challenge-stale-auth-high", "challenge-high-risk",
	}, names)
}

// benchPolicy is ten rules of the shapes real policies use, none of which
// match the quiet evaluation, so every one runs to the end.
var benchPolicy = `version: 1
rules:
  - {name: r1, outcome: block, when: 'action.sensitivity == "high" && signals.network.anonymous'}
  - {name: r2, outcome: block, when: '"impossible_travel" in risk.findings'}
  - {name: r3, outcome: block, when: 'signals.device.bot && action.sensitivity != "low"'}
  - name: r4
    outcome: challenge
    when: 'action.sensitivity == "high" &&
      (!signals.session.has_auth_time || signals.session.since_auth > duration("5m"))'
  - {name: r5, outcome: challenge, when: 'action.sensitivity == "high" && "new_device" in risk.findings'}
  - {name: r6, outcome: challenge, when: 'risk.level == "high"'}
  - {name: r7, outcome: block, when: 'signals.network.country in ["KP", "IR"]'}
  - {name: r8, outcome: challenge, when: 'identity.delegated && action.name.startsWith("POST /admin")'}
  - {name: r9, outcome: challenge, when: 'risk.score > 0.5 && !("urn:example:mfa" in [identity.acr])'}
  - name: r10
    outcome: block
    report_only: true
    when: 'signals.client_ip.startsWith("10.") && signals.network.hosting'
`

func BenchmarkDecide(b *testing.B) {
	p, err := Parse([]byte(benchPolicy), "bench.yaml")
	require.NoError(b, err)
	ev := evaluation()
	ev.Assessment.Findings = []runtimeid.Finding{{Code: "unusual_hour", Weight: 0.1}}
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		d, err := p.Decide(ctx, ev)
		if err != nil || d.Rule != "default" {
			b.Fatal(d, err)
		}
	}
}

func BenchmarkDecideDefault(b *testing.B) {
	ev := evaluation()
	ev.Action.Sensitivity = runtimeid.High
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Default().Decide(ctx, ev); err != nil {
			b.Fatal(err)
		}
	}
}
