package main

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/lestrrat-go/jwx/v2/jwa"
	"github.com/lestrrat-go/jwx/v2/jwk"
	"github.com/lestrrat-go/jwx/v2/jwt"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/runtimeid/runtimeid/decision/upstream"
	"github.com/runtimeid/runtimeid/policy/config"
)

var serveNow = time.Date(2025, 6, 2, 9, 30, 0, 0, time.UTC)

const signingKey = "0123456789abcdef0123456789abcdef-test-only"

// proxyEnv is a proxy in front of a recording upstream.
type proxyEnv struct {
	proxy *proxy
	built *config.Built
	key   jwk.Key

	mu   sync.Mutex
	seen []*http.Request // what reached the upstream
}

func newProxyEnv(t *testing.T, upstreamURL string, extra string) *proxyEnv {
	t.Helper()
	env := &proxyEnv{}
	raw, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	require.NoError(t, err)
	env.key, err = jwk.FromRaw(raw)
	require.NoError(t, err)
	require.NoError(t, env.key.Set(jwk.KeyIDKey, "k1"))
	require.NoError(t, env.key.Set(jwk.AlgorithmKey, jwa.ES256))
	pub, err := env.key.PublicKey()
	require.NoError(t, err)
	set := jwk.NewSet()
	require.NoError(t, set.AddKey(pub))
	jwks, err := json.Marshal(set)
	require.NoError(t, err)

	dir := t.TempDir()
	require.NoError(t, os.WriteFile(filepath.Join(dir, "jwks.json"), jwks, 0o600))
	require.NoError(t, os.WriteFile(filepath.Join(dir, "signing.key"), []byte(signingKey+"\n"), 0o600))
	if upstreamURL == "" {
		up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			env.mu.Lock()
			env.seen = append(env.seen, r)
			env.mu.Unlock()
			io.WriteString(w, "upstream ok")
		}))
		t.Cleanup(up.Close)
		upstreamURL = up.URL
	}
	yaml := fmt.Sprintf(`version: 1
token: {issuer: https://idp.test, audience: [api], jwks_file: jwks.json}
enforcement: {realm: api}
routes:
  - {pattern: "GET /api/orders", sensitivity: low}
  - {pattern: "POST /api/transfers", sensitivity: high}
serve: {upstream: %q, signing_key_file: signing.key}
live: {enabled: true}
%s`, upstreamURL, extra)
	path := filepath.Join(dir, "runtimeid.yaml")
	require.NoError(t, os.WriteFile(path, []byte(yaml), 0o600))
	cfg, err := config.Load(path)
	require.NoError(t, err)
	env.built, err = cfg.Build(config.BuildOptions{Now: func() time.Time { return serveNow }})
	require.NoError(t, err)
	t.Cleanup(func() { env.built.Close() })
	env.proxy, err = newProxy(cfg, env.built, slog.New(slog.DiscardHandler))
	require.NoError(t, err)
	return env
}

func (env *proxyEnv) token(t *testing.T, authAgo time.Duration) string {
	tok := jwt.New()
	tok.Set(jwt.IssuerKey, "https://idp.test")
	tok.Set(jwt.AudienceKey, "api")
	tok.Set(jwt.SubjectKey, "alice")
	tok.Set(jwt.IssuedAtKey, serveNow.Add(-time.Minute))
	tok.Set(jwt.ExpirationKey, serveNow.Add(time.Hour))
	tok.Set("auth_time", serveNow.Add(-authAgo).Unix())
	tok.Set("sid", "s-1")
	tok.Set("acr", "urn:test:mfa")
	signed, err := jwt.Sign(tok, jwt.WithKey(jwa.ES256, env.key))
	require.NoError(t, err)
	return string(signed)
}

func (env *proxyEnv) do(method, target, token string, hdr map[string]string) *httptest.ResponseRecorder {
	req := httptest.NewRequest(method, target, nil)
	req.RemoteAddr = "2.125.160.216:4000"
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	for k, v := range hdr {
		req.Header.Add(k, v)
	}
	rec := httptest.NewRecorder()
	env.proxy.ServeHTTP(rec, req)
	return rec
}

func TestServeForwardsSignedHeaders(t *testing.T) {
	env := newProxyEnv(t, "", "")
	tok := env.token(t, time.Hour)
	rec := env.do("GET", "/api/orders?page=2", tok, map[string]string{
		"X-Runtimeid-Subject":   "mallory",
		"x-runtimeid-outcome":   "allow",
		"X-RUNTIMEID-SIGNATURE": "v1=forged",
		"X-Runtimeid-Admin":     "yes",
	})
	require.Equal(t, http.StatusOK, rec.Code, rec.Body.String())
	assert.Equal(t, "upstream ok", rec.Body.String())
	require.Len(t, env.seen, 1)
	got := env.seen[0]

	var names []string
	for k := range got.Header {
		if strings.HasPrefix(k, "X-Runtimeid-") {
			names = append(names, k)
		}
	}
	assert.ElementsMatch(t, []string{"X-Runtimeid-Subject", "X-Runtimeid-Session",
		"X-Runtimeid-Outcome", "X-Runtimeid-Rule", "X-Runtimeid-Score",
		"X-Runtimeid-Findings", "X-Runtimeid-Acr", "X-Runtimeid-Timestamp",
		"X-Runtimeid-Signature"}, names)
	assert.Equal(t, []string{"alice"}, got.Header.Values("X-Runtimeid-Subject"))
	assert.Equal(t, "Bearer "+tok, got.Header.Get("Authorization"))
	assert.Equal(t, "2.125.160.216", got.Header.Get("X-Forwarded-For"))

	v, err := upstream.NewVerifier([]byte(signingKey), upstream.VerifierOptions{
		Now: func() time.Time { return serveNow.Add(30 * time.Second) }})
	require.NoError(t, err)
	vals, err := v.Verify(got)
	require.NoError(t, err)
	assert.Equal(t, upstream.Values{Subject: "alice", Session: "s-1", Outcome: "allow",
		Rule: "default", Score: 0.1, Findings: []string{"first_seen"}, ACR: "urn:test:mfa",
		Time: serveNow}, vals)

	// The signature covers the request URI.
	got.URL.RawQuery = "page=3"
	_, err = v.Verify(got)
	assert.ErrorIs(t, err, upstream.ErrSignature)

	// The live view saw the decision.
	snap := env.built.Live.Snapshot()
	assert.Equal(t, 1, snap.Total)
	assert.Equal(t, "alice", snap.Recent[0].Subject)
}

func TestServeRefusalsNeverReachUpstream(t *testing.T) {
	env := newProxyEnv(t, "", "")
	stale := env.token(t, time.Hour)
	tests := []struct {
		name, method, target, token string
		status                      int
		wantHeader                  string
	}{
		{"stale login on a transfer", "POST", "/api/transfers", stale, 401,
			`Bearer realm="api", error="insufficient_user_authentication", ` +
				`error_description="step-up authentication required: stale_authentication", max_age=300`},
		{"no token", "GET", "/api/orders", "", 401, `Bearer realm="api"`},
		{"tampered token", "GET", "/api/orders", stale + "x", 401, ""},
		{"dot segments", "GET", "/api/../api/transfers", stale, 400, ""},
		{"encoded slash", "GET", "/api%2Ftransfers", stale, 400, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rec := env.do(tt.method, tt.target, tt.token, nil)
			assert.Equal(t, tt.status, rec.Code)
			if tt.wantHeader != "" {
				assert.Equal(t, tt.wantHeader, rec.Header().Get("WWW-Authenticate"))
			}
			assert.NotContains(t, rec.Body.String(), stale)
		})
	}
	assert.Empty(t, env.seen)
}

func TestServeStripAuthorization(t *testing.T) {
	env := newProxyEnv(t, "", "")
	env.proxy.stripAuth = true
	rec := env.do("GET", "/api/orders", env.token(t, time.Minute), nil)
	require.Equal(t, http.StatusOK, rec.Code)
	require.Len(t, env.seen, 1)
	assert.Empty(t, env.seen[0].Header.Values("Authorization"))
}

func TestServeUpstreamDown(t *testing.T) {
	down := httptest.NewServer(http.NotFoundHandler())
	down.Close()
	env := newProxyEnv(t, down.URL, "")
	rec := env.do("GET", "/api/orders", env.token(t, time.Minute), nil)
	assert.Equal(t, http.StatusBadGateway, rec.Code)
	assert.Equal(t, "application/problem+json", rec.Header().Get("Content-Type"))
	assert.JSONEq(t, `{"type":"urn:runtimeid:problem:upstream_unavailable","title":"Bad Gateway",`+
		`"status":502,"code":"upstream_unavailable","detail":"the upstream service did not answer"}`,
		rec.Body.String())
}

func TestServeConfigErrors(t *testing.T) {
	dir := t.TempDir()
	write := func(body string) string {
		p := filepath.Join(dir, "c.yaml")
		require.NoError(t, os.WriteFile(p, []byte(body), 0o600))
		return p
	}
	require.NoError(t, os.WriteFile(filepath.Join(dir, "short.key"), []byte("short"), 0o600))
	tests := []struct{ body, err string }{
		{"version: 1\ntoken: {insecure_skip_authentication: true}\n",
			"serve.upstream: required by serve"},
		{"version: 1\ntoken: {insecure_skip_authentication: true}\nserve: {upstream: 'http://127.0.0.1:1'}\n",
			"serve.signing_key_file: required by serve"},
		{"version: 1\ntoken: {insecure_skip_authentication: true}\n" +
			"serve: {upstream: 'http://127.0.0.1:1', signing_key_file: short.key}\n",
			"serve.signing_key_file: unusable: upstream: signing key too short: 5 bytes, want at least 32"},
		{"version: 1\ntoken: {issuer: x, audience: [y]}\n", "token.jwks_file: give jwks_file or jwks_url"},
	}
	for _, tt := range tests {
		path := write(tt.body)
		code, out, errOut := runCmd(t, "serve", "-config", path)
		assert.Equal(t, exitUsage, code)
		assert.Empty(t, out)
		assert.Contains(t, errOut, tt.err)
	}
}
