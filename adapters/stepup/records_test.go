package stepup

import (
	"context"
	"encoding/json"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/runtimeid/runtimeid"
)

// challengeWith is a policy that challenges every action with want.
type challengeWith struct{ want *runtimeid.StepUp }

func (c challengeWith) Decide(context.Context, *runtimeid.Evaluation) (runtimeid.Decision, error) {
	return runtimeid.Decision{Outcome: runtimeid.Challenge, Rule: "mfa",
		Reason: "step_up", StepUp: c.want}, nil
}

// TestPasskeyThenCode: a code entered after a passkey on the same
// session does not hide the passkey from a rule that demands one.
func TestPasskeyThenCode(t *testing.T) {
	h := newHarness(t)
	tok := h.token("alice", "s1", 0)
	secret := h.enrollOTP(tok)
	id := &runtimeid.Identity{Issuer: testIssuer, Subject: "alice", SessionID: "s1"}
	passkeyAt := h.clock.Now()
	require.NoError(t, h.svc.record(t.Context(), id, Record{ACR: ACRPasskey,
		Method: "passkey", Time: passkeyAt, Device: "passkey:abc"}))
	h.clock.Add(time.Minute)
	w := h.do("POST", "/stepup/otp/verify", tok, map[string]string{"code": h.code(secret)})
	require.Equal(t, 200, w.Code, w.Body.String())
	codeAt := h.clock.Now()

	latest, ok := h.svc.Record(t.Context(), id)
	require.True(t, ok)
	assert.Equal(t, Record{ACR: ACROTP, Method: "otp", Time: codeAt, Device: "otp"}, latest)

	tests := []struct {
		name    string
		want    *runtimeid.StepUp
		acr     string
		at      time.Time
		outcome runtimeid.Outcome
	}{
		{"passkey required", &runtimeid.StepUp{ACRValues: []string{ACRPasskey},
			MaxAge: 5 * time.Minute}, ACRPasskey, passkeyAt, runtimeid.Allow},
		{"either accepted: the newest", &runtimeid.StepUp{
			ACRValues: []string{ACRPasskey, ACROTP}, MaxAge: 5 * time.Minute},
			ACROTP, codeAt, runtimeid.Allow},
		{"any acr: the newest", &runtimeid.StepUp{MaxAge: 5 * time.Minute},
			ACROTP, codeAt, runtimeid.Allow},
		{"passkey too old", &runtimeid.StepUp{ACRValues: []string{ACRPasskey},
			MaxAge: 30 * time.Second}, ACRPasskey, passkeyAt, runtimeid.Challenge},
		{"none accepted: the newest", &runtimeid.StepUp{
			ACRValues: []string{ACRPasskeyPresence}}, ACROTP, codeAt, runtimeid.Challenge},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			acr, at, ok := h.svc.StepUp(t.Context(), id, tt.want)
			require.True(t, ok)
			assert.Equal(t, tt.acr, acr)
			assert.Equal(t, tt.at, at)

			eng, err := runtimeid.New(runtimeid.Config{Token: h.tokenConfig(),
				Policy: challengeWith{tt.want}, StepUps: h.svc, Now: h.clock.Now})
			require.NoError(t, err)
			ev, err := eng.Evaluate(t.Context(), runtimeid.Input{Identity: id})
			require.NoError(t, err)
			assert.Equal(t, tt.outcome, ev.Decision.Outcome)
			assert.Equal(t, tt.outcome == runtimeid.Allow, ev.Decision.SteppedUp)
		})
	}
}

func TestSessionRecordsAdd(t *testing.T) {
	t0 := time.Date(2026, 5, 1, 12, 0, 0, 0, time.UTC)
	rec := func(acr string, d time.Duration) Record {
		return Record{ACR: acr, Time: t0.Add(d)}
	}
	var r sessionRecords
	r.add(rec("a", 0), t0.Add(-time.Hour))
	r.add(rec("b", time.Minute), t0.Add(-time.Hour))
	r.add(rec("a", 2*time.Minute), t0.Add(-time.Hour))
	assert.Equal(t, []Record{rec("a", 2*time.Minute), rec("b", time.Minute)}, r.all(),
		"one per acr, newest first")

	// Step-ups older than the record's lifetime are dropped.
	r.add(rec("c", 3*time.Minute), t0.Add(90*time.Second))
	assert.Equal(t, []Record{rec("c", 3*time.Minute), rec("a", 2*time.Minute)}, r.all())

	// Bounded, whatever the acr values.
	for i := range 3 * maxSessionRecords {
		r.add(rec(string(rune('d'+i)), time.Duration(4+i)*time.Minute), t0)
	}
	assert.Len(t, r.all(), maxSessionRecords)
	assert.Equal(t, string(rune('d'+3*maxSessionRecords-1)), r.ACR)
}

func TestSessionRecordsReadsOneRecord(t *testing.T) {
	// A value written when a session kept only its latest step-up.
	old := `{"acr":"urn:runtimeid:acr:otp","method":"otp",` +
		`"auth_time":"2026-05-01T12:00:00Z","device":"otp"}`
	var r sessionRecords
	require.NoError(t, json.Unmarshal([]byte(old), &r))
	want := Record{ACR: ACROTP, Method: "otp", Device: "otp",
		Time: time.Date(2026, 5, 1, 12, 0, 0, 0, time.UTC)}
	assert.Equal(t, []Record{want}, r.all())
	assert.Equal(t, want, r.pick(&runtimeid.StepUp{ACRValues: []string{ACRPasskey}}))
}
