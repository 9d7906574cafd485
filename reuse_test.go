package runtimeid_test

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
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
	"github.com/runtimeid/runtimeid/decision"
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

// dpopStack is an engine that accepts DPoP-bound tokens, with a
// revoker after the DPoP validator and the audit log kept.
type dpopStack struct {
	eng  *runtimeid.Engine
	rev  *revoker
	logs *bytes.Buffer
	now  *time.Time
	tok  string
	key  *proofKey
}

func newDPoPStack(t *testing.T) *dpopStack {
	t.Helper()
	now := testNow
	s := &dpopStack{rev: &revoker{}, logs: &bytes.Buffer{}, now: &now, key: newProofKey(t)}
	d, err := runtimeid.NewDPoP(runtimeid.DPoPOptions{Now: func() time.Time { return *s.now }})
	require.NoError(t, err)
	priv, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	require.NoError(t, err)
	keys, issuer := benchKeys(t, jwa.ES256, priv)
	enf, err := decision.NewEnforcer(decision.Options{Realm: "api", DPoP: d})
	require.NoError(t, err)
	s.eng, err = runtimeid.New(runtimeid.Config{
		Token: runtimeid.TokenConfig{Issuer: popIssuer, Audience: []string{"api"},
			Keys: keys},
		Validators: []runtimeid.IdentityValidator{d, s.rev},
		Policy:     policy.Default(),
		Enforcer:   enf,
		Now:        func() time.Time { return *s.now },
		Logger:     slog.New(slog.NewJSONHandler(s.logs, nil)),
	})
	require.NoError(t, err)

	tok := jwt.New()
	require.NoError(t, tok.Set(jwt.IssuerKey, popIssuer))
	require.NoError(t, tok.Set(jwt.AudienceKey, "api"))
	require.NoError(t, tok.Set(jwt.SubjectKey, "alice"))
	require.NoError(t, tok.Set(jwt.IssuedAtKey, now))
	require.NoError(t, tok.Set(jwt.ExpirationKey, now.Add(time.Hour)))
	require.NoError(t, tok.Set("cnf", map[string]any{"jkt": s.key.jkt}))
	signed, err := jwt.Sign(tok, jwt.WithKey(jwa.ES256, issuer))
	require.NoError(t, err)
	s.tok = string(signed)
	return s
}

// request is a GET of testURL with the token and a fresh proof.
func (s *dpopStack) request(t *testing.T) *http.Request {
	r := httptest.NewRequest("GET", testURL, nil)
	r.Header.Set("Authorization", "DPoP "+s.tok)
	r.Header.Set("DPoP", s.key.proof("GET", testURL, s.tok, *s.now).sign(t))
	return r
}

// audit returns the audit events logged so far, one JSON line each.
func (s *dpopStack) audit() []string {
	return strings.Split(strings.TrimSpace(s.logs.String()), "\n")
}

// TestRecheckDPoPBoundAndRevoked opens a long-lived request with a
// DPoP-bound token: rechecks allow it without a new proof (the one that
// opened the connection must not count as replayed), until the session
// is revoked, which the next recheck reports.
func TestRecheckDPoPBoundAndRevoked(t *testing.T) {
	s := newDPoPStack(t)
	r := s.request(t)
	ev := s.eng.EvaluateRequest(r, runtimeid.Action{Name: "orders.stream"})
	require.Equal(t, runtimeid.Allow, ev.Decision.Outcome, ev.Decision.Reason)
	require.True(t, ev.Credential.BindingVerified)

	*s.now = s.now.Add(time.Minute)
	got := s.eng.Recheck(context.Background(), ev)
	assert.Equal(t, runtimeid.Allow, got.Decision.Outcome, got.Decision.Reason)
	assert.True(t, got.Recheck)
	assert.True(t, got.Credential.BindingVerified)
	assert.Equal(t, "DPoP", got.Credential.Scheme)

	s.rev.revoked.Store(true)
	*s.now = s.now.Add(time.Minute)
	got = s.eng.Recheck(context.Background(), ev)
	assert.Equal(t, runtimeid.Block, got.Decision.Outcome)
	assert.Equal(t, runtimeid.CodeTokenRevoked, got.Decision.Reason)
	lines := s.audit()
	require.Len(t, lines, 3)
	assert.NotContains(t, lines[0], `"recheck"`)
	assert.Contains(t, lines[2], `"reason":"token_revoked"`)
	assert.Contains(t, lines[2], `"recheck":true`)
	var te *runtimeid.TokenError
	require.ErrorAs(t, got.Err, &te)
	assert.Equal(t, "session revoked", te.Detail)

	// The opening request, sent again as a new request, is a replay.
	again := s.eng.EvaluateRequest(r, runtimeid.Action{Name: "orders.stream"})
	assert.Equal(t, runtimeid.Block, again.Decision.Outcome)
}

// TestProtectInsideMiddleware wraps a handler with Protect inside the
// same engine's Middleware: the protected action is evaluated reusing
// the identity the middleware verified, so the single-use DPoP proof is
// not refused as replayed, and its own decision still applies.
func TestProtectInsideMiddleware(t *testing.T) {
	ok := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ev := runtimeid.FromContext(r.Context())
		w.Write([]byte(ev.Action.Name))
	})
	tests := []struct {
		name        string
		sensitivity runtimeid.Sensitivity
		revoked     bool
		status      int
		body        string
		events      []string // outcome, reason and nesting of each event
	}{
		{"allowed twice", runtimeid.Medium, false, 200, "orders.export",
			[]string{"allow default false", "allow default true"}},
		{"protected action challenges", runtimeid.High, false, 401, "",
			[]string{"allow default false", "challenge stale_authentication true"}},
		{"middleware refuses first", runtimeid.Medium, true, 401, "",
			[]string{"block token_revoked false"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := newDPoPStack(t)
			s.rev.revoked.Store(tt.revoked)
			mux := http.NewServeMux()
			mux.Handle("GET /v1/orders", s.eng.Middleware(
				s.eng.Protect("orders.export", tt.sensitivity)(ok)))
			w := httptest.NewRecorder()
			mux.ServeHTTP(w, s.request(t))

			assert.Equal(t, tt.status, w.Code)
			if tt.status == 200 {
				assert.Equal(t, tt.body, w.Body.String())
			}
			var got []string
			for _, line := range s.audit() {
				var e struct {
					Outcome, Reason string
					Nested          bool
				}
				require.NoError(t, json.Unmarshal([]byte(line), &e))
				got = append(got, fmt.Sprintf("%s %s %t", e.Outcome, e.Reason, e.Nested))
			}
			assert.Equal(t, tt.events, got)
		})
	}
}

// TestProtectUnderAnotherEngine checks that only the same engine's
// evaluation is reused: another engine verifies the token itself.
func TestProtectUnderAnotherEngine(t *testing.T) {
	outer, inner := newDPoPStack(t), newDPoPStack(t)
	reached := false
	h := outer.eng.Middleware(inner.eng.Protect("orders.export", runtimeid.Medium)(
		http.HandlerFunc(func(http.ResponseWriter, *http.Request) { reached = true })))
	w := httptest.NewRecorder()
	h.ServeHTTP(w, outer.request(t))

	assert.Equal(t, 401, w.Code)
	assert.False(t, reached)
	assert.Len(t, outer.audit(), 1)
	require.Len(t, inner.audit(), 1)
	assert.Contains(t, inner.audit()[0], `"reason":"token_signature"`)
	assert.NotContains(t, inner.audit()[0], `"nested"`)
}
