package main

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"net/http"
	"testing"
	"time"

	"github.com/lestrrat-go/jwx/v2/jwa"
	"github.com/lestrrat-go/jwx/v2/jwk"
	"github.com/lestrrat-go/jwx/v2/jws"
	"github.com/lestrrat-go/jwx/v2/jwt"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/runtimeid/runtimeid"
)

// TestQuickstartDPoP sends a DPoP-bound token (RFC 9449) to the
// quickstart with its proof, then without it.
func TestQuickstartDPoP(t *testing.T) {
	iss, srv := startDefault(t)

	// The client's own key; the token is bound to its thumbprint.
	priv, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	require.NoError(t, err)
	clientKey, err := jwk.FromRaw(priv)
	require.NoError(t, err)
	pub, err := clientKey.PublicKey()
	require.NoError(t, err)
	jkt, err := runtimeid.JWKThumbprint(pub)
	require.NoError(t, err)
	now := time.Now()
	token, err := iss.mint(grant{sub: "alice", sid: "alice-dpop", issued: now, authTime: now, jkt: jkt})
	require.NoError(t, err)

	proof := func(method, url string) string {
		ath := sha256.Sum256([]byte(token))
		claims := jwt.New()
		claims.Set(jwt.JwtIDKey, base64.RawURLEncoding.EncodeToString([]byte(method+url+time.Now().String())))
		claims.Set("htm", method)
		claims.Set("htu", url)
		claims.Set(jwt.IssuedAtKey, time.Now())
		claims.Set("ath", base64.RawURLEncoding.EncodeToString(ath[:]))
		hdrs := jws.NewHeaders()
		hdrs.Set(jws.TypeKey, "dpop+jwt")
		hdrs.Set(jws.JWKKey, pub)
		signed, err := jwt.Sign(claims, jwt.WithKey(jwa.ES256, clientKey, jws.WithProtectedHeaders(hdrs)))
		require.NoError(t, err)
		return string(signed)
	}
	do := func(method, path, scheme string, withProof bool) *http.Response {
		req, err := http.NewRequest(method, srv.URL+path, nil)
		require.NoError(t, err)
		req.Header.Set("Authorization", scheme+" "+token)
		if withProof {
			req.Header.Set("DPoP", proof(method, srv.URL+path))
		}
		resp, err := http.DefaultClient.Do(req)
		require.NoError(t, err)
		resp.Body.Close()
		return resp
	}

	for _, route := range []struct{ method, path string }{
		{"GET", "/api/orders"}, {"PATCH", "/api/profile"}, {"POST", "/api/transfers"},
		{"GET", "/api/export"}, {"POST", "/api/admin/roles"},
	} {
		resp := do(route.method, route.path, "DPoP", true)
		assert.Equal(t, 200, resp.StatusCode, "%s %s with its proof", route.method, route.path)
	}

	// Without the proof, or as a plain bearer token, the stolen token is
	// useless.
	resp := do("GET", "/api/orders", "DPoP", false)
	assert.Equal(t, 401, resp.StatusCode)
	assert.Equal(t, `Bearer realm="quickstart", DPoP realm="quickstart", `+
		`algs="ES256 ES384 ES512 EdDSA PS256 PS384 PS512 RS256 RS384 RS512", `+
		`error="invalid_dpop_proof", error_description="DPoP proof missing"`,
		resp.Header.Get("WWW-Authenticate"))
	resp = do("GET", "/api/orders", "Bearer", false)
	assert.Equal(t, 401, resp.StatusCode)
	assert.Contains(t, resp.Header.Get("WWW-Authenticate"), `error="invalid_token"`)
}
