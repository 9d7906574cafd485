package policy

import (
	"context"
	"errors"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/runtimeid/runtimeid"
)

var t0 = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

// evaluation returns a quiet evaluation: a fresh login, a known device,
// no findings, a medium-sensitivity action.
func evaluation() *runtimeid.Evaluation {
	return &runtimeid.Evaluation{
		Time: t0,
		Identity: &runtimeid.Identity{
			Subject:  "alice",
			Issuer:   "https://issuer.test",
			Audience: []string{"api"},
			ACR:      "urn:example:mfa",
			AuthTime: t0.Add(-time.Minute),
			IssuedAt: t0.Add(-time.Minute),
			Expiry:   t0.Add(time.Hour),
			Claims:   map[string]any{"tenant": "acme"},
		},
		Action: runtimeid.Action{
			Name:        "POST /api/transfers",
			Sensitivity: runtimeid.Medium,
			Method:      "POST",
			Route:       "/api/transfers",
		},
		Signals: runtimeid.Signals{
			ClientIP: netip.MustParseAddr("192.0.2.10"),
			Session: runtimeid.SessionSignals{
				TokenAge: time.Minute, SinceAuth: time.Minute, HasAuthTime: true,
			},
		},
	}
}

func mustNew(t *testing.T, rules ...Rule) *Policy {
	t.Helper()
	p, err := New(Spec{Rules: rules})
	require.NoError(t, err)
	return p
}

func match(t *testing.T, when string, ev *runtimeid.Evaluation) bool {
	t.Helper()
	p := mustNew(t, Rule{Name: "r", When: when, Outcome: runtimeid.Block})
	d, err := p.Decide(context.Background(), ev)
	require.NoError(t, err, when)
	return d.Outcome == runtimeid.Block
}

func TestVariables(t *testing.T) {
	ev := evaluation()
	ev.Identity.Scopes = []string{"read", "write"}
	ev.Identity.AMR = []string{"pwd", "otp"}
	ev.Identity.Actor = &runtimeid.Actor{Subject: "agent-7", ClientID: "bot", Issuer: "https://issuer.test"}
	ev.Action.Attributes = map[string]any{"amount": 1200}
	ev.Signals.Network = runtimeid.NetworkSignals{
		Country: "FR", City: "Paris", ASN: 3215, ASOrg: "Orange", ISP: "Orange",
		VPN: true, Anonymous: true, HasLocation: true,
	}
	ev.Signals.Device = runtimeid.DeviceSignals{
		Browser: "Firefox", BrowserVersion: "130", OS: "Linux", OSVersion: "6",
		Type: "desktop", ID: "dev-1", UserAgent: "Mozilla/5.0",
	}
	ev.Signals.Custom = map[string]any{"vip": true}
	ev.Assessment = runtimeid.Assessment{Score: 0.75, Level: runtimeid.LevelHigh,
		Findings: []runtimeid.Finding{{Code: "new_device", Weight: 0.4}, {Code: "new_device", Weight: 0.6}}}

	for _, when := range []string{
		`identity.sub == "alice" && identity.iss == "https://issuer.test"`,
		`"api" in identity.aud && identity.scopes == ["read", "write"]`,
		`identity.acr == "urn:example:mfa" && "otp" in identity.amr`,
		`identity.has_auth_time && now - identity.auth_time == duration("1m")`,
		`identity.exp - identity.iat == duration("61m")`,
		`identity.delegated && identity.actor.sub == "agent-7"`,
		`identity.actor.client_id == "bot" && identity.actor.iss == "https://issuer.test"`,
		`identity.claims.tenant == "acme" && identity.sid == "" && identity.jti == ""`,
		`identity.client_id == ""`,
		`action.name == "POST /api/transfers" && action.sensitivity == "medium"`,
		`action.method == "POST" && action.route == "/api/transfers"`,
		`action.attributes.amount > 1000`,
		`signals.client_ip == "192.0.2.10"`,
		`signals.network.country == "FR" && signals.network.city == "Paris"`,
		`signals.network.asn == 3215 && signals.network.as_org == "Orange"`,
		`signals.network.isp == "Orange" && signals.network.has_location`,
		`signals.network.anonymous && signals.network.vpn && !signals.network.tor`,
		`!signals.network.hosting && !signals.network.public_proxy`,
		`!signals.network.residential_proxy`,
		`signals.device.browser == "Firefox" && signals.device.browser_version == "130"`,
		`signals.device.os == "Linux" && signals.device.os_version == "6"`,
		`signals.device.type == "desktop" && !signals.device.bot`,
		`signals.device.id == "dev-1" && signals.device.user_agent == "Mozilla/5.0"`,
		`signals.session.token_age == duration("1m")`,
		`signals.session.has_auth_time && signals.session.since_auth < duration("5m")`,
		`signals.custom.vip == true`,
		`risk.score > 0.7 && risk.level == "high"`,
		`risk.findings == ["new_device", "new_device"] && risk.weights.new_device == 0.6`,
		`now == timestamp("2026-03-01T12:00:00Z")`,
		`has(identity.auth_time) && has(identity.actor.sub)`,
	} {
		assert.True(t, match(t, when, ev), when)
	}
}

func TestAbsentIdentity(t *testing.T) {
	ev := evaluation()
	ev.Identity = nil
	ev.Signals.Session = runtimeid.SessionSignals{}
	ev.Signals.ClientIP = netip.Addr{}
	for _, when := range []string{
		`!identity.delegated && !identity.has_auth_time`,
		`identity.sub == "" && identity.aud == [] && identity.claims == {}`,
		`!has(identity.auth_time) && !has(identity.actor) && identity.actor.sub == ""`,
		`!signals.session.has_auth_time && !has(signals.session.since_auth)`,
		`signals.client_ip == "" && risk.findings == [] && risk.weights == {}`,
		`action.attributes == {} && signals.custom == {}`,
	} {
		assert.True(t, match(t, when, ev), when)
	}

	// Reading an absent time fails the request closed.
	for _, when := range []string{
		`now - identity.auth_time > duration("5m")`,
		`signals.session.since_auth > duration("5m")`,
		`identity.claims.missing == "x"`,
	} {
		p := mustNew(t, Rule{Name: "r", When: when, Outcome: runtimeid.Block})
		_, err := p.Decide(context.Background(), ev)
		require.ErrorIs(t, err, ErrEvaluation, when)
		assert.Contains(t, err.Error(), `rule "r"`)
	}
}

func TestDecide(t *testing.T) {
	stepA := &runtimeid.StepUp{ACRValues: []string{"a"}, MaxAge: time.Minute}
	stepB := &runtimeid.StepUp{ACRValues: []string{"b"}}
	rules := []Rule{
		{Name: "allow-vip", When: `signals.custom.vip == true`, Outcome: runtimeid.Allow},
		{Name: "c1", When: `"c1" in risk.findings`, Outcome: runtimeid.Challenge, StepUp: stepA},
		{Name: "c2", When: `"c2" in risk.findings`, Outcome: runtimeid.Challenge,
			Reason: "second", StepUp: stepB},
		{Name: "b1", When: `"b1" in risk.findings`, Outcome: runtimeid.Block, Reason: "blocked"},
		{Name: "b2", When: `"b2" in risk.findings`, Outcome: runtimeid.Block},
		{Name: "watch", When: `"w" in risk.findings`, Outcome: runtimeid.Block,
			Reason: "watched", ReportOnly: true},
	}
	tests := []struct {
		name     string
		def      runtimeid.Outcome
		findings []string
		vip      bool
		want     runtimeid.Decision
	}{
		{name: "no match", want: runtimeid.Decision{
			Outcome: runtimeid.Allow, Rule: "default", Reason: "default"}},
		{name: "default block", def: runtimeid.Block, want: runtimeid.Decision{
			Outcome: runtimeid.Block, Rule: "default", Reason: "default"}},
		{name: "allow rule beats default", def: runtimeid.Block, vip: true,
			want: runtimeid.Decision{Outcome: runtimeid.Allow, Rule: "allow-vip", Reason: "allow-vip"}},
		{name: "challenge beats allow", vip: true, findings: []string{"c2"},
			want: runtimeid.Decision{Outcome: runtimeid.Challenge, Rule: "c2", Reason: "second",
				StepUp: stepB}},
		{name: "first challenge wins", findings: []string{"c2", "c1"},
			want: runtimeid.Decision{Outcome: runtimeid.Challenge, Rule: "c1", Reason: "c1",
				StepUp: stepA}},
		{name: "block beats challenge", findings: []string{"c1", "b2"},
			want: runtimeid.Decision{Outcome: runtimeid.Block, Rule: "b2", Reason: "b2"}},
		{name: "first block wins", findings: []string{"b2", "b1", "c1"},
			want: runtimeid.Decision{Outcome: runtimeid.Block, Rule: "b1", Reason: "blocked"}},
		{name: "report only changes nothing", findings: []string{"w"},
			want: runtimeid.Decision{Outcome: runtimeid.Allow, Rule: "default", Reason: "default",
				ReportOnly: []runtimeid.RuleMatch{{Rule: "watch", Outcome: runtimeid.Block,
					Reason: "watched"}}}},
		{name: "report only beside a challenge", findings: []string{"w", "c2"},
			want: runtimeid.Decision{Outcome: runtimeid.Challenge, Rule: "c2", Reason: "second",
				StepUp: stepB, ReportOnly: []runtimeid.RuleMatch{{Rule: "watch",
					Outcome: runtimeid.Block, Reason: "watched"}}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, err := New(Spec{Default: tt.def, Rules: rules})
			require.NoError(t, err)
			ev := evaluation()
			for _, code := range tt.findings {
				ev.Assessment.Findings = append(ev.Assessment.Findings, runtimeid.Finding{Code: code})
			}
			ev.Signals.Custom = map[string]any{"vip": tt.vip}
			d, err := p.Decide(context.Background(), ev)
			require.NoError(t, err)
			assert.Equal(t, tt.want, d)
		})
	}
}

func TestDecideCopiesStepUp(t *testing.T) {
	step := &runtimeid.StepUp{ACRValues: []string{"a"}, MaxAge: time.Minute}
	p := mustNew(t, Rule{Name: "c", When: "true", Outcome: runtimeid.Challenge, StepUp: step})
	step.ACRValues[0] = "changed"
	d, err := p.Decide(context.Background(), evaluation())
	require.NoError(t, err)
	d.StepUp.ACRValues[0] = "mutated"
	assert.Equal(t, "a", p.Rules()[0].StepUp.ACRValues[0])
}

func TestDecideErrors(t *testing.T) {
	p := mustNew(t, Rule{Name: "r", When: "true", Outcome: runtimeid.Block})
	_, err := p.Decide(context.Background(), nil)
	require.ErrorIs(t, err, ErrEvaluation)

	// The cost limit stops a rule that would run for a long time.
	ev := evaluation()
	ev.Assessment.Findings = make([]runtimeid.Finding, 200)
	slow := mustNew(t, Rule{Name: "slow", Outcome: runtimeid.Block,
		When: `risk.findings.exists(a, risk.findings.exists(b, a + b == "x"))`})
	_, err = slow.Decide(context.Background(), ev)
	require.ErrorIs(t, err, ErrEvaluation)
	assert.Contains(t, err.Error(), "cost limit exceeded")

	// A cancelled context stops the evaluation before the next rule.
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_, err = p.Decide(ctx, ev)
	require.ErrorIs(t, err, ErrEvaluation)
	assert.True(t, errors.Is(err, context.Canceled), err.Error())
}

func TestRules(t *testing.T) {
	r := Rule{Name: "r", Description: "d", When: "true", Outcome: runtimeid.Challenge,
		StepUp: &runtimeid.StepUp{MaxAge: time.Minute}}
	p := mustNew(t, r)
	assert.Equal(t, []Rule{r}, p.Rules())
	assert.Equal(t, runtimeid.Allow, p.DefaultOutcome())
}

func TestNewErrors(t *testing.T) {
	ok := Rule{Name: "ok", When: "true", Outcome: runtimeid.Block}
	tests := []struct {
		name string
		spec Spec
		want string
	}{
		{"version", Spec{Version: 2}, `policy: version: unsupported version 2, want 1`},
		{"default", Spec{Default: 9}, `policy: default: unknown outcome 9`},
		{"too many rules", Spec{Rules: make([]Rule, MaxRules+1)},
			`policy: rules: 501 rules, at most 500`},
		{"no name", Spec{Rules: []Rule{{When: "true", Outcome: runtimeid.Block}}},
			`policy: rules[0]: name: required`},
		{"bad name", Spec{Rules: []Rule{{Name: "a b", When: "true", Outcome: runtimeid.Block}}},
			`policy: rules[0] "a b": name: "a b": only letters, digits and _-.: are allowed`},
		{"duplicate", Spec{Rules: []Rule{ok, ok}},
			`policy: rules[1] "ok": name: duplicate name, first used by rules[0]`},
		{"no outcome", Spec{Rules: []Rule{{Name: "r", When: "true"}}},
			`policy: rules[0] "r": outcome: required: allow, challenge or block`},
		{"bad reason", Spec{Rules: []Rule{{Name: "r", When: "true", Outcome: runtimeid.Block,
			Reason: `x"y`}}},
			`policy: rules[0] "r": reason: "x\"y": only letters, digits and _-.: are allowed`},
		{"empty when", Spec{Rules: []Rule{{Name: "r", When: " ", Outcome: runtimeid.Block}}},
			`policy: rules[0] "r": when: required`},
		{"step_up on block", Spec{Rules: []Rule{{Name: "r", When: "true",
			Outcome: runtimeid.Block, StepUp: &runtimeid.StepUp{}}}},
			`policy: rules[0] "r": step_up: only a challenge has a step-up, not block`},
		{"negative max_age", Spec{Rules: []Rule{{Name: "r", When: "true",
			Outcome: runtimeid.Challenge, StepUp: &runtimeid.StepUp{MaxAge: -1}}}},
			`policy: rules[0] "r": step_up: max_age -1ns is negative`},
		{"acr with space", Spec{Rules: []Rule{{Name: "r", When: "true",
			Outcome: runtimeid.Challenge, StepUp: &runtimeid.StepUp{ACRValues: []string{"a b"}}}}},
			`policy: rules[0] "r": step_up: acr value "a b" is empty or holds a space, quote,` +
				` backslash or control character`},
		{"huge expression", Spec{Rules: []Rule{{Name: "r", Outcome: runtimeid.Block,
			When: strings.Repeat("true && ", 600) + "true"}}},
			`policy: rules[0] "r": when: 4804 bytes, at most 4096`},
		{"not bool", Spec{Rules: []Rule{{Name: "r", When: "risk.score", Outcome: runtimeid.Block}}},
			`policy: rules[0] "r": when: has type double, want bool` +
				` (compare a dynamic value explicitly, as in x == true)`},
		{"dyn is not bool", Spec{Rules: []Rule{{Name: "r", When: "signals.custom.vip",
			Outcome: runtimeid.Block}}},
			`policy: rules[0] "r": when: has type dyn, want bool` +
				` (compare a dynamic value explicitly, as in x == true)`},
		{"syntax", Spec{Rules: []Rule{{Name: "r", When: "risk.score >", Outcome: runtimeid.Block}}},
			`policy: rules[0] "r": when: 1:13: Syntax error: mismatched input '<EOF>' expecting`},
		{"unknown variable", Spec{Rules: []Rule{{Name: "r", When: "user.name == \"x\"",
			Outcome: runtimeid.Block}}},
			`policy: rules[0] "r": when: 1:1: undeclared reference to 'user'`},
		{"unknown field", Spec{Rules: []Rule{{Name: "r", When: "signals.network.contry == \"FR\"",
			Outcome: runtimeid.Block}}},
			`policy: rules[0] "r": when: 1:16: undefined field 'contry'`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := New(tt.spec)
			require.Error(t, err)
			assert.True(t, strings.HasPrefix(err.Error(), tt.want), "got  %s\nwant %s", err, tt.want)
			require.ErrorIs(t, err, ErrInvalid)
			require.ErrorIs(t, err, runtimeid.ErrConfig)
			var pe *Error
			require.ErrorAs(t, err, &pe)
		})
	}
}
