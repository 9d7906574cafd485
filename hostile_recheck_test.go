package runtimeid_test

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/runtimeid/runtimeid"
	"github.com/runtimeid/runtimeid/internal/conformance"
	"github.com/runtimeid/runtimeid/internal/conformance/demo"
)

// TestRecheckRefusesForeignEvaluation rechecks, with one engine, an
// evaluation another engine made: the identity was verified against
// the other engine's issuer and audience, never this one's, so the
// recheck must not allow it.
func TestRecheckRefusesForeignEvaluation(t *testing.T) {
	now := conformance.Now
	other, _ := fixture(t)
	fx, _ := fixture(t) // another issuer key: other's tokens fail here
	ev := evaluate(t, other, demo.Grant{Subject: "alice", Issued: now},
		runtimeid.Action{Name: "read"})
	require.Equal(t, runtimeid.Allow, ev.Decision.Outcome)

	got := fx.Engine.Recheck(context.Background(), ev)
	assert.Equal(t, runtimeid.Block, got.Decision.Outcome)
	assert.Nil(t, got.Identity)

	ch := fx.Engine.Watch(context.Background(), ev, runtimeid.WatchOptions{
		Ticks: closedTick()})
	last := <-ch
	require.NotNil(t, last)
	assert.Equal(t, runtimeid.Block, last.Decision.Outcome)

	// Sanity: the same token sent to this engine fails verification.
	fresh := fx.Engine.EvaluateRequest(ev.Request, runtimeid.Action{Name: "read"})
	assert.Equal(t, runtimeid.Block, fresh.Decision.Outcome)
	assert.Equal(t, runtimeid.CodeTokenSignature, fresh.Decision.Reason)
}

func closedTick() <-chan time.Time {
	ch := make(chan time.Time, 1)
	ch <- time.Time{}
	close(ch) // the watch ends after one recheck
	return ch
}
