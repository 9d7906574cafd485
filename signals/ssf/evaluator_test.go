package ssf

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/runtimeid/runtimeid"
)

func TestEvaluator(t *testing.T) {
	alice := IssSub(tokIssuer, "alice")
	device := SubjectID{Format: FormatOpaque, ID: "d-1"}
	before := t0.Add(-time.Hour)
	aal := func(dir string) map[string]any {
		return map[string]any{"namespace": "NIST-AAL", "current_level": "nist-aal1",
			"previous_level": "nist-aal2", "change_direction": dir}
	}

	tests := []struct {
		name   string
		events []*Event
		acr    string
		role   any
		want   []runtimeid.Finding
	}{
		{"nothing", nil, "", nil, nil},
		{
			name: "risk high",
			events: []*Event{event(CAEPRiskLevelChange, alice, t0,
				map[string]any{"current_level": "HIGH"})},
			want: []runtimeid.Finding{{Code: FindingRiskLevel, Weight: 0.8,
				Detail: "the identity provider reports high risk"}},
		},
		{
			name: "risk medium",
			events: []*Event{event(CAEPRiskLevelChange, alice, t0,
				map[string]any{"current_level": "medium"})},
			want: []runtimeid.Finding{{Code: FindingRiskLevel, Weight: 0.4,
				Detail: "the identity provider reports medium risk"}},
		},
		{"risk lowered", []*Event{
			event(CAEPRiskLevelChange, alice, before, map[string]any{"current_level": "HIGH"}),
			event(CAEPRiskLevelChange, alice, t0, map[string]any{"current_level": "LOW"})}, "", nil, nil},
		{"unknown risk level ignored", []*Event{event(CAEPRiskLevelChange, alice, t0,
			map[string]any{"current_level": "extreme"})}, "", nil, nil},
		{
			name: "device not compliant",
			events: []*Event{event(CAEPDeviceComplianceChange, device, t0,
				map[string]any{"current_status": "not-compliant"})},
			want: []runtimeid.Finding{{Code: FindingDeviceNoncompliant, Weight: 0.7,
				Detail: "device reported not compliant"}},
		},
		{
			name: "device compliant again",
			events: []*Event{
				event(CAEPDeviceComplianceChange, device, before,
					map[string]any{"current_status": "not-compliant"}),
				event(CAEPDeviceComplianceChange, device, t0,
					map[string]any{"current_status": "compliant"}),
			},
		},
		{
			name:   "assurance decreased after the token",
			events: []*Event{event(CAEPAssuranceLevelChange, alice, t0, aal("decrease"))},
			want: []runtimeid.Finding{{Code: FindingAssuranceDowngraded, Weight: 0.4,
				Detail: "assurance level decreased"}},
		},
		{"assurance increased", []*Event{event(CAEPAssuranceLevelChange, alice, t0, aal("increase"))}, "", nil, nil},
		{"claims changed", []*Event{event(CAEPTokenClaimsChange, alice, t0,
			map[string]any{"claims": map[string]any{"role": "ro-admin"}})}, "", "admin",
			[]runtimeid.Finding{{Code: FindingClaimsChanged, Weight: 0.4, Detail: "token claims changed"}}},
		{"claims already in the token", []*Event{event(CAEPTokenClaimsChange, alice, t0,
			map[string]any{"claims": map[string]any{"role": "ro-admin"}})}, "", "ro-admin", nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			st := NewState(StateOptions{})
			applyAll(t, st, tt.events...)
			id := identity("alice", "", before)
			id.ACR = tt.acr
			if tt.role != nil {
				id.Claims["role"] = tt.role
			}
			ev := evaluation(id)
			ev.Signals.Device.ID = "d-1"
			got, err := NewEvaluator(st).Assess(context.Background(), ev)
			require.NoError(t, err)
			assert.Equal(t, tt.want, got)
		})
	}
}

func TestAssuranceDowngradedByACR(t *testing.T) {
	// A token issued after the decrease still carries the old level.
	st := NewState(StateOptions{})
	applyAll(t, st, event(CAEPAssuranceLevelChange, IssSub(tokIssuer, "alice"), t0.Add(-time.Hour),
		map[string]any{"current_level": "aal1", "previous_level": "aal2", "change_direction": "decrease"}))
	id := identity("alice", "", t0)
	id.ACR = "aal2"
	got, err := NewEvaluator(st).Assess(context.Background(), evaluation(id))
	require.NoError(t, err)
	assert.Equal(t, []string{FindingAssuranceDowngraded}, codes(got))

	id.ACR = "aal1"
	got, err = NewEvaluator(st).Assess(context.Background(), evaluation(id))
	require.NoError(t, err)
	assert.Empty(t, got)
}

func codes(fs []runtimeid.Finding) []string {
	out := make([]string, len(fs))
	for i, f := range fs {
		out[i] = f.Code
	}
	return out
}

func TestCollector(t *testing.T) {
	st := NewState(StateOptions{})
	alice := IssSub(tokIssuer, "alice")
	applyAll(t, st,
		event(CAEPRiskLevelChange, alice, t0, map[string]any{"current_level": "medium"}),
		event(CAEPDeviceComplianceChange, Opaque("d-1"), t0, map[string]any{"current_status": "not-compliant"}),
		event(CAEPAssuranceLevelChange, alice, t0, map[string]any{"namespace": "NIST-AAL",
			"current_level": "nist-aal2", "change_direction": "increase"}),
		event(CAEPTokenClaimsChange, alice, t0, map[string]any{"claims": map[string]any{"trusted_network": false}}),
	)
	ev := evaluation(identity("alice", "", t0))
	ev.Signals.Device.ID = "d-1"
	require.NoError(t, NewCollector(st).Collect(context.Background(), ev))
	assert.Equal(t, map[string]any{
		"risk_level":          "medium",
		"device_compliance":   "not-compliant",
		"device_compliant":    false,
		"assurance_level":     "nist-aal2",
		"assurance_namespace": "NIST-AAL",
		"assurance_direction": "increase",
		"claims":              map[string]any{"trusted_network": false},
	}, ev.Signals.Custom["ssf"])

	// An identity nothing was pushed about sees every member, empty.
	ev = evaluation(identity("bob", "", t0))
	require.NoError(t, NewCollector(st).Collect(context.Background(), ev))
	assert.Equal(t, map[string]any{
		"risk_level": "", "device_compliance": "", "device_compliant": true,
		"assurance_level": "", "assurance_namespace": "", "assurance_direction": "",
		"claims": map[string]any{},
	}, ev.Signals.Custom["ssf"])
}

func TestClaimsBounded(t *testing.T) {
	st := NewState(StateOptions{})
	many := map[string]any{}
	for i := range 100 {
		many[string(rune('a'+i%26))+string(rune('a'+i/26))] = i
	}
	applyAll(t, st, event(CAEPTokenClaimsChange, Opaque("alice"), t0, map[string]any{"claims": many}))
	f, ok := st.Lookup(Key{Kind: KindSub, ID: "alice"}, t0)
	require.True(t, ok)
	assert.Len(t, f.Claims, maxClaims)
}
