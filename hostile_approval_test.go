package runtimeid_test

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/runtimeid/runtimeid"
)

// TestApprovalNotSpentOnChallengeItCannotMeet: an approval decided
// longer ago than the challenge's max_age cannot meet it; reporting it
// must not use it up, or the agent loses the approval to a challenge
// that stands anyway.
func TestApprovalNotSpentOnChallengeItCannotMeet(t *testing.T) {
	now := time.Date(2026, 12, 4, 12, 0, 0, 0, time.UTC)
	clock := now
	a, err := runtimeid.NewApprovals(runtimeid.ApprovalsOptions{
		TTL: 10 * time.Minute, Now: func() time.Time { return clock }})
	require.NoError(t, err)
	agent := &runtimeid.Identity{Issuer: "https://issuer.test", Subject: "alice",
		SessionID: "s1", Actor: &runtimeid.Actor{Subject: "bot", ClientID: "bot"}}
	ev := &runtimeid.Evaluation{Identity: agent,
		Action:   runtimeid.Action{Name: "pay"},
		Decision: runtimeid.Decision{Outcome: runtimeid.Challenge}}
	ap, err := a.RequestApproval(context.Background(), ev)
	require.NoError(t, err)
	require.NoError(t, a.Approve(context.Background(), ap.ID, &runtimeid.Identity{
		Issuer: "https://issuer.test", Subject: "alice"}))

	clock = now.Add(2 * time.Minute)
	ctx := runtimeid.WithApprovalRef(context.Background(),
		runtimeid.ApprovalRef{ID: ap.ID, Action: "pay"})
	strict := &runtimeid.StepUp{ACRValues: []string{runtimeid.ApprovalACR},
		MaxAge: time.Minute}
	_, _, ok := a.StepUp(ctx, agent, strict)
	assert.False(t, ok)
	got, found, err := a.Get(ctx, ap.ID)
	require.NoError(t, err)
	require.True(t, found)
	assert.Equal(t, runtimeid.ApprovalApproved, got.State, "spent for nothing")

	lax := &runtimeid.StepUp{ACRValues: []string{runtimeid.ApprovalACR},
		MaxAge: 5 * time.Minute}
	acr, at, ok := a.StepUp(ctx, agent, lax)
	assert.True(t, ok)
	assert.Equal(t, runtimeid.ApprovalACR, acr)
	assert.Equal(t, now, at)
}
