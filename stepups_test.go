package runtimeid

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// fixedStepUp reports one step-up, or none, and counts its calls and
// keeps the requirement it was last asked with.
type fixedStepUp struct {
	acr   string
	at    time.Time
	ok    bool
	calls int
	want  *StepUp
}

func (f *fixedStepUp) StepUp(_ context.Context, _ *Identity,
	want *StepUp) (string, time.Time, bool) {
	f.calls++
	f.want = want
	return f.acr, f.at, f.ok
}

func TestStepUpSources(t *testing.T) {
	t0 := time.Date(2026, 5, 1, 12, 0, 0, 0, time.UTC)
	none := func() *fixedStepUp { return &fixedStepUp{} }
	at := func(acr string, d time.Duration) *fixedStepUp {
		return &fixedStepUp{acr: acr, at: t0.Add(d), ok: true}
	}
	passkey := &StepUp{ACRValues: []string{"passkey"}}
	either := &StepUp{ACRValues: []string{"passkey", "otp"}, MaxAge: time.Hour}
	tests := []struct {
		name    string
		srcs    []*fixedStepUp
		want    *StepUp
		wantACR string
		wantAt  time.Time
		wantOK  bool
	}{
		{"no sources", nil, nil, "", time.Time{}, false},
		{"none recorded", []*fixedStepUp{none(), none()}, passkey, "", time.Time{}, false},
		{"the one recorded", []*fixedStepUp{none(), at("otp", 0)}, nil, "otp", t0, true},
		{"the most recent", []*fixedStepUp{at("old", -time.Minute), at("new", 0)},
			nil, "new", t0, true},
		{"most recent first", []*fixedStepUp{at("new", 0), at("old", -time.Minute)},
			nil, "new", t0, true},
		{"a tie goes to the earlier", []*fixedStepUp{at("first", 0), at("second", 0)},
			nil, "first", t0, true},
		{"a later code hides no passkey",
			[]*fixedStepUp{at("passkey", -time.Minute), at("otp", 0)},
			passkey, "passkey", t0.Add(-time.Minute), true},
		{"either: the most recent",
			[]*fixedStepUp{at("passkey", -time.Minute), at("otp", 0)},
			either, "otp", t0, true},
		{"none accepted: the most recent",
			[]*fixedStepUp{at("otp", -time.Minute), at("sms", 0)},
			passkey, "sms", t0, true},
		{"the most recent accepted",
			[]*fixedStepUp{at("passkey", -2*time.Minute), at("passkey", -time.Minute),
				at("otp", 0)},
			passkey, "passkey", t0.Add(-time.Minute), true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var srcs []StepUpSource
			for _, s := range tt.srcs {
				srcs = append(srcs, s)
			}
			srcs = append(srcs, nil) // skipped
			acr, when, ok := StepUpSources(srcs...).StepUp(context.Background(),
				&Identity{}, tt.want)
			assert.Equal(t, tt.wantACR, acr)
			assert.Equal(t, tt.wantAt, when)
			assert.Equal(t, tt.wantOK, ok)
			for _, s := range tt.srcs {
				assert.Equal(t, 1, s.calls, "every source is asked once")
				assert.Same(t, tt.want, s.want, "every source is told the requirement")
			}
		})
	}
}

func TestStepUpSourcesInEngine(t *testing.T) {
	// A passkey, then a code, on the same session; the code is newer.
	now := time.Date(2026, 5, 1, 12, 0, 0, 0, time.UTC)
	passkey := &fixedStepUp{acr: "passkey", at: now.Add(-2 * time.Minute), ok: true}
	code := &fixedStepUp{acr: "otp", at: now.Add(-time.Minute), ok: true}
	tests := []struct {
		name      string
		want      *StepUp
		outcome   Outcome
		steppedUp bool
	}{
		{"passkey required: met by the older passkey",
			&StepUp{ACRValues: []string{"passkey"}, MaxAge: 5 * time.Minute}, Allow, true},
		{"either accepted: met by the newer code",
			&StepUp{ACRValues: []string{"passkey", "otp"}, MaxAge: 90 * time.Second},
			Allow, true},
		{"passkey too old",
			&StepUp{ACRValues: []string{"passkey"}, MaxAge: time.Minute}, Challenge, false},
		{"neither accepted",
			&StepUp{ACRValues: []string{"hwk"}}, Challenge, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			challenge := policyFunc(func(*Evaluation) (Decision, error) {
				return Decision{Outcome: Challenge, Rule: "mfa", StepUp: tt.want}, nil
			})
			e, _ := newTestEngine(t, Config{Policy: challenge,
				StepUps: StepUpSources(passkey, code)})
			e.now = func() time.Time { return now }
			ev, err := e.Evaluate(context.Background(), Input{Identity: alice()})
			require.NoError(t, err)
			assert.Equal(t, tt.outcome, ev.Decision.Outcome)
			assert.Equal(t, tt.steppedUp, ev.Decision.SteppedUp)
			assert.Same(t, tt.want, code.want, "the source is told the requirement")
		})
	}
}

func TestApprovalNotSpentOnAChallengeItCannotMeet(t *testing.T) {
	s := newApprovalStack(t)
	ctx := context.Background()
	ap, err := s.store.RequestApproval(ctx, s.evaluate(t, "export", ""))
	require.NoError(t, err)
	require.NoError(t, s.store.Approve(context.Background(), ap.ID, &Identity{Subject: "alice",
		Issuer: "https://idp"}))
	ctx = WithApprovalRef(ctx, ApprovalRef{ID: ap.ID, Action: "export"})

	// A challenge that wants a passkey: the approval is not reported,
	// and stays approved.
	_, _, ok := s.store.StepUp(ctx, agentIdentity(),
		&StepUp{ACRValues: []string{"passkey"}})
	assert.False(t, ok)
	got, _, _ := s.store.Get(context.Background(), ap.ID)
	assert.Equal(t, ApprovalApproved, got.State)

	// One that accepts it: reported once, at the approval's time.
	acr, at, ok := s.store.StepUp(ctx, agentIdentity(),
		&StepUp{ACRValues: []string{"passkey", ApprovalACR}})
	assert.Equal(t, ApprovalACR, acr)
	assert.Equal(t, t0, at)
	assert.True(t, ok)
	got, _, _ = s.store.Get(context.Background(), ap.ID)
	assert.Equal(t, ApprovalUsed, got.State)
}
