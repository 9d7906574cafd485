package runtimeid

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
)

// fixedStepUp reports one step-up, or none, and counts its calls.
type fixedStepUp struct {
	acr   string
	at    time.Time
	ok    bool
	calls int
}

func (f *fixedStepUp) StepUp(context.Context, *Identity) (string, time.Time, bool) {
	f.calls++
	return f.acr, f.at, f.ok
}

func TestStepUpSources(t *testing.T) {
	t0 := time.Date(2026, 5, 1, 12, 0, 0, 0, time.UTC)
	none := func() *fixedStepUp { return &fixedStepUp{} }
	at := func(acr string, d time.Duration) *fixedStepUp {
		return &fixedStepUp{acr: acr, at: t0.Add(d), ok: true}
	}
	tests := []struct {
		name    string
		srcs    []*fixedStepUp
		wantACR string
		wantAt  time.Time
		wantOK  bool
	}{
		{"no sources", nil, "", time.Time{}, false},
		{"none recorded", []*fixedStepUp{none(), none()}, "", time.Time{}, false},
		{"the one recorded", []*fixedStepUp{none(), at("otp", 0)}, "otp", t0, true},
		{"the most recent", []*fixedStepUp{at("old", -time.Minute), at("new", 0)},
			"new", t0, true},
		{"most recent first", []*fixedStepUp{at("new", 0), at("old", -time.Minute)},
			"new", t0, true},
		{"a tie goes to the earlier", []*fixedStepUp{at("first", 0), at("second", 0)},
			"first", t0, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var srcs []StepUpSource
			for _, s := range tt.srcs {
				srcs = append(srcs, s)
			}
			srcs = append(srcs, nil) // skipped
			acr, when, ok := StepUpSources(srcs...).StepUp(context.Background(), &Identity{})
			assert.Equal(t, tt.wantACR, acr)
			assert.Equal(t, tt.wantAt, when)
			assert.Equal(t, tt.wantOK, ok)
			for _, s := range tt.srcs {
				assert.Equal(t, 1, s.calls, "every source is asked once")
			}
		})
	}
}

func TestStepUpSourcesInEngine(t *testing.T) {
	// A challenge with max_age 5m is met by the recent one of two
	// recorded step-ups.
	now := time.Date(2026, 5, 1, 12, 0, 0, 0, time.UTC)
	su := &StepUp{MaxAge: 5 * time.Minute}
	src := StepUpSources(&fixedStepUp{acr: "a", at: now.Add(-time.Hour), ok: true},
		&fixedStepUp{acr: "b", at: now.Add(-time.Minute), ok: true})
	acr, at, ok := src.StepUp(context.Background(), &Identity{})
	assert.True(t, ok)
	assert.True(t, su.SatisfiedBy(&Identity{ACR: acr, AuthTime: at}, now))
}
