package stepup

import (
	"context"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/runtimeid/runtimeid"
)

// TestAttemptCancelledAfterSuccessKeepsLimit: an attempt still being
// checked when another one succeeds (and so clears the counts) and
// that then gives its number back must not leave a count below zero:
// that would hand the user or session more than MaxAttempts failures
// before the wait.
func TestAttemptCancelledAfterSuccessKeepsLimit(t *testing.T) {
	h := newHarness(t)
	ctx := context.Background()
	id := &runtimeid.Identity{Issuer: "https://issuer.test",
		Subject: "alice", SessionID: "s1"}
	lim := h.svc.limit

	slow, aerr := lim.begin(ctx, id)
	require.Nil(t, aerr)
	ok, aerr := lim.begin(ctx, id)
	require.Nil(t, aerr)
	ok.end(ctx, nil)           // a success clears the counts
	slow.end(ctx, errInternal) // nothing proven: the number goes back

	allowed := 0
	for range 2 * DefaultMaxAttempts {
		at, aerr := lim.begin(ctx, id)
		if aerr != nil {
			break
		}
		allowed++
		at.end(ctx, errVerification)
	}
	assert.Equal(t, DefaultMaxAttempts, allowed)
}
