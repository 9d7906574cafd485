package runtimeid_test

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"log/slog"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/lestrrat-go/jwx/v2/jwa"
	"github.com/lestrrat-go/jwx/v2/jwt"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/runtimeid/runtimeid"
	"github.com/runtimeid/runtimeid/policy"
)

// revoker refuses every token once revoked is set, as a validator over
// pushed revocations does.
type revoker struct{ revoked atomic.Bool }

func (v *revoker) Validate(context.Context, *runtimeid.Evaluation) error {
	if v.revoked.Load() {
		return &runtimeid.TokenError{Code: runtimeid.CodeTokenRevoked, Detail: "session revoked"}
	}
	return nil
}

// TestRecheckDPoPBoundAndRevoked opens a long-lived request with a
// DPoP-bound token: rechecks allow it without a new proof (the one that
// opened the connection must not count as replayed), until the session
// is revoked, which the next recheck reports.
func TestRecheckDPoPBoundAndRevoked(t *testing.T) {
	now := testNow
	d, err := runtimeid.NewDPoP(runtimeid.DPoPOptions{Now: func() time.Time { return now }})
	require.NoError(t, err)
	rev := &revoker{}
	var logs bytes.Buffer

	priv, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	require.NoError(t, err)
	keys, issuer := benchKeys(t, jwa.ES256, priv)
	eng, err := runtimeid.New(runtimeid.Config{
		Token: runtimeid.TokenConfig{Issuer: popIssuer, Audience: []string{"api"},
			Keys: keys},
		Validators: []runtimeid.IdentityValidator{d, rev},
		Policy:     policy.Default(),
		Now:        func() time.Time { return now },
		Logger:     slog.New(slog.NewJSONHandler(&logs, nil)),
	})
	require.NoError(t, err)

	key := newProofKey(t)
	tok := jwt.New()
	require.NoError(t, tok.Set(jwt.IssuerKey, popIssuer))
	require.NoError(t, tok.Set(jwt.AudienceKey, "api"))
	require.NoError(t, tok.Set(jwt.SubjectKey, "alice"))
	require.NoError(t, tok.Set(jwt.IssuedAtKey, now))
	require.NoError(t, tok.Set(jwt.ExpirationKey, now.Add(time.Hour)))
	require.NoError(t, tok.Set("cnf", map[string]any{"jkt": key.jkt}))
	signed, err := jwt.Sign(tok, jwt.WithKey(jwa.ES256, issuer))
	require.NoError(t, err)

	r := httptest.NewRequest("GET", testURL, nil)
	r.Header.Set("Authorization", "DPoP "+string(signed))
	r.Header.Set("DPoP", key.proof("GET", testURL, string(signed), now).sign(t))
	ev := eng.EvaluateRequest(r, runtimeid.Action{Name: "orders.stream"})
	require.Equal(t, runtimeid.Allow, ev.Decision.Outcome, ev.Decision.Reason)
	require.True(t, ev.Credential.BindingVerified)

	now = now.Add(time.Minute)
	got := eng.Recheck(context.Background(), ev)
	assert.Equal(t, runtimeid.Allow, got.Decision.Outcome, got.Decision.Reason)
	assert.True(t, got.Recheck)
	assert.True(t, got.Credential.BindingVerified)
	assert.Equal(t, "DPoP", got.Credential.Scheme)

	rev.revoked.Store(true)
	now = now.Add(time.Minute)
	got = eng.Recheck(context.Background(), ev)
	assert.Equal(t, runtimeid.Block, got.Decision.Outcome)
	assert.Equal(t, runtimeid.CodeTokenRevoked, got.Decision.Reason)
	lines := strings.Split(strings.TrimSpace(logs.String()), "\n")
	require.Len(t, lines, 3)
	assert.NotContains(t, lines[0], `"recheck"`)
	assert.Contains(t, lines[2], `"reason":"token_revoked"`)
	assert.Contains(t, lines[2], `"recheck":true`)
	var te *runtimeid.TokenError
	require.ErrorAs(t, got.Err, &te)
	assert.Equal(t, "session revoked", te.Detail)

	// The opening request, sent again as a new request, is a replay.
	again := eng.EvaluateRequest(r, runtimeid.Action{Name: "orders.stream"})
	assert.Equal(t, runtimeid.Block, again.Decision.Outcome)
}
