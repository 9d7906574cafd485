package runtimeid_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/tls"
	"encoding/base64"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"os"
	"testing"
	"time"

	"github.com/lestrrat-go/jwx/v2/jwa"
	"github.com/lestrrat-go/jwx/v2/jwk"
	"github.com/lestrrat-go/jwx/v2/jws"
	"github.com/lestrrat-go/jwx/v2/jwt"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/runtimeid/runtimeid"
	"github.com/runtimeid/runtimeid/decision"
	"github.com/runtimeid/runtimeid/policy"
)

// The RFC 9449 examples: the key of every proof, its thumbprint (section
// 6.1) and the access token of the resource request (section 7.1).
const (
	rfcJKT        = "0ZcOCORZNYy-DWpqq30jZyJGHTN0d2HglBV3uiguA4I"
	rfcToken      = "Kz~8mXK1EalYznwH-LC-1fBAo.4Ljp~zsPE_NeO.gxU"
	rfcResource   = "https://resource.example.org/protectedresource"
	rfcResourceAt = 1562262618
)

type rfcProof struct {
	Proof  string         `json:"proof"`
	Header map[string]any `json:"header"`
	Claims map[string]any `json:"claims"`
}

func loadRFCProofs(t testing.TB) []rfcProof {
	data, err := os.ReadFile("testdata/dpop/rfc9449/dpop_proofs.json")
	require.NoError(t, err)
	var proofs []rfcProof
	require.NoError(t, json.Unmarshal(data, &proofs))
	require.Len(t, proofs, 4)
	return proofs
}

func fixedClock(unix int64) func() time.Time {
	return func() time.Time { return time.Unix(unix, 0) }
}

// dpopEval is an evaluation of a request with the DPoP scheme, as the
// engine hands it to validators.
func dpopEval(r *http.Request, token, jkt string) *runtimeid.Evaluation {
	ev := &runtimeid.Evaluation{Request: r, Identity: &runtimeid.Identity{Subject: "alice"}}
	ev.Credential = runtimeid.Credential{Scheme: "DPoP", Token: runtimeid.Secret(token)}
	if jkt != "" {
		ev.Identity.Confirmation = &runtimeid.Confirmation{JKT: jkt,
			Raw: map[string]any{"jkt": jkt}}
	}
	return ev
}

func requireTokenError(t *testing.T, err error, code, detail string) {
	t.Helper()
	var te *runtimeid.TokenError
	require.ErrorAs(t, err, &te)
	assert.Equal(t, code, te.Code)
	assert.Equal(t, detail, te.Detail)
	assert.ErrorIs(t, err, runtimeid.ErrToken)
}

func TestDPoPRFC9449ResourceRequest(t *testing.T) {
	proofs := loadRFCProofs(t)
	d, err := runtimeid.NewDPoP(runtimeid.DPoPOptions{Now: fixedClock(rfcResourceAt)})
	require.NoError(t, err)

	// Section 7.1: GET /protectedresource with the DPoP scheme.
	r := httptest.NewRequest("GET", rfcResource, nil)
	r.Header.Set("Authorization", "DPoP "+rfcToken)
	r.Header.Set("DPoP", proofs[3].Proof)
	ev := dpopEval(r, rfcToken, rfcJKT)
	require.NoError(t, d.Validate(context.Background(), ev))
	assert.True(t, ev.Credential.BindingVerified)

	// The same proof again is a replay.
	ev = dpopEval(r, rfcToken, rfcJKT)
	err = d.Validate(context.Background(), ev)
	requireTokenError(t, err, runtimeid.CodeDPoPProofReplayed, "DPoP proof already used")
	assert.False(t, ev.Credential.BindingVerified)
}

func TestDPoPRFC9449TokenEndpointProofs(t *testing.T) {
	// The proofs of section 4 are for the token endpoint: they verify,
	// but carry no ath, which a resource server requires.
	for _, p := range loadRFCProofs(t)[:3] {
		iat := int64(p.Claims["iat"].(float64))
		d, err := runtimeid.NewDPoP(runtimeid.DPoPOptions{Now: fixedClock(iat)})
		require.NoError(t, err)
		r := httptest.NewRequest("POST", "https://server.example.com/token", nil)
		r.Header.Set("DPoP", p.Proof)
		err = d.Validate(context.Background(), dpopEval(r, rfcToken, rfcJKT))
		requireTokenError(t, err, runtimeid.CodeDPoPProofInvalid, "DPoP proof has no ath")

		// One second later than the window, the same proof is too old.
		d, _ = runtimeid.NewDPoP(runtimeid.DPoPOptions{Now: fixedClock(iat + 61)})
		err = d.Validate(context.Background(), dpopEval(r, rfcToken, rfcJKT))
		requireTokenError(t, err, runtimeid.CodeDPoPProofInvalid, "DPoP proof too old")
	}
}

func TestJWKThumbprintVectors(t *testing.T) {
	data, err := os.ReadFile("testdata/dpop/rfc7638/vectors.json")
	require.NoError(t, err)
	var v struct {
		Thumbprints []struct {
			ID   string          `json:"id"`
			JWK  json.RawMessage `json:"jwk"`
			Want string          `json:"thumbprint_sha256"`
		} `json:"jwk_thumbprints"`
	}
	require.NoError(t, json.Unmarshal(data, &v))
	require.Len(t, v.Thumbprints, 2)
	for _, tp := range v.Thumbprints {
		key, err := jwk.ParseKey(tp.JWK)
		require.NoError(t, err)
		got, err := runtimeid.JWKThumbprint(key)
		require.NoError(t, err)
		assert.Equal(t, tp.Want, got, tp.ID)
	}
	assert.Equal(t, rfcJKT, v.Thumbprints[1].Want)

	// The jwk of every RFC 9449 proof has the thumbprint of section 6.1.
	for _, p := range loadRFCProofs(t) {
		raw, _ := json.Marshal(p.Header["jwk"])
		key, err := jwk.ParseKey(raw)
		require.NoError(t, err)
		got, _ := runtimeid.JWKThumbprint(key)
		assert.Equal(t, rfcJKT, got)
	}
}

// proofKey is a client's DPoP key.
type proofKey struct {
	priv   any
	public map[string]any
	jkt    string
	alg    jwa.SignatureAlgorithm
}

func newProofKey(t testing.TB) *proofKey {
	priv, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	require.NoError(t, err)
	return keyFor(t, priv, jwa.ES256)
}

func keyFor(t testing.TB, priv any, alg jwa.SignatureAlgorithm) *proofKey {
	k, err := jwk.FromRaw(priv)
	require.NoError(t, err)
	pub, err := k.PublicKey()
	require.NoError(t, err)
	jkt, err := runtimeid.JWKThumbprint(pub)
	require.NoError(t, err)
	data, err := json.Marshal(pub)
	require.NoError(t, err)
	var m map[string]any
	require.NoError(t, json.Unmarshal(data, &m))
	return &proofKey{priv: priv, public: m, jkt: jkt, alg: alg}
}

// proof describes a DPoP proof to build; edit it to break one thing.
type proof struct {
	header map[string]any
	claims map[string]any
	alg    jwa.SignatureAlgorithm
	key    any // signing key; nil with alg "none"
	badSig bool
}

func (k *proofKey) proof(method, htu, token string, iat time.Time) *proof {
	sum := sha256.Sum256([]byte(token))
	return &proof{
		header: map[string]any{"typ": "dpop+jwt", "alg": string(k.alg), "jwk": k.public},
		claims: map[string]any{
			"jti": rand.Text(),
			"htm": method, "htu": htu, "iat": iat.Unix(),
			"ath": base64.RawURLEncoding.EncodeToString(sum[:]),
		},
		alg: k.alg,
		key: k.priv,
	}
}

func b64json(t testing.TB, v any) string {
	data, err := json.Marshal(v)
	require.NoError(t, err)
	return base64.RawURLEncoding.EncodeToString(data)
}

func (p *proof) sign(t testing.TB) string {
	input := b64json(t, p.header) + "." + b64json(t, p.claims)
	if p.alg == jwa.NoSignature {
		return input + "."
	}
	signer, err := jws.NewSigner(p.alg)
	require.NoError(t, err)
	sig, err := signer.Sign([]byte(input), p.key)
	require.NoError(t, err)
	if p.badSig {
		sig[0] ^= 1
	}
	return input + "." + base64.RawURLEncoding.EncodeToString(sig)
}

const (
	testURL   = "https://api.example.com/v1/orders"
	testToken = "access-token-1"
)

var testNow = time.Date(2026, 12, 4, 12, 0, 0, 0, time.UTC)

func TestDPoPFailures(t *testing.T) {
	key := newProofKey(t)
	other := newProofKey(t)
	rsaPriv, err := rsa.GenerateKey(rand.Reader, 1024)
	require.NoError(t, err)
	small := keyFor(t, rsaPriv, jwa.RS256)

	const invalid = runtimeid.CodeDPoPProofInvalid
	tests := []struct {
		name   string
		edit   func(p *proof)
		req    func(r *http.Request, p string)
		code   string
		detail string
	}{
		{name: "valid"},
		{name: "two headers", req: func(r *http.Request, p string) {
			r.Header.Add("DPoP", p)
		}, code: invalid, detail: "more than one DPoP header"},
		{name: "no header", req: func(r *http.Request, _ string) {
			r.Header.Del("DPoP")
		}, code: invalid, detail: "DPoP proof missing"},
		{name: "not a JWS", req: func(r *http.Request, _ string) {
			r.Header.Set("DPoP", "a.b")
		}, code: invalid, detail: "DPoP proof is not a compact JWS"},
		{name: "too large", req: func(r *http.Request, p string) {
			r.Header.Set("DPoP", p+string(make([]byte, 9000)))
		}, code: invalid, detail: "DPoP proof too large"},
		{name: "typ JWT", edit: func(p *proof) { p.header["typ"] = "JWT" },
			code: invalid, detail: "DPoP proof typ must be dpop+jwt"},
		{name: "typ missing", edit: func(p *proof) { delete(p.header, "typ") },
			code: invalid, detail: "DPoP proof typ must be dpop+jwt"},
		{name: "alg none", edit: func(p *proof) {
			p.header["alg"], p.alg = "none", jwa.NoSignature
		}, code: invalid, detail: "DPoP proof algorithm not allowed"},
		{name: "alg HS256", edit: func(p *proof) {
			p.header["alg"], p.alg, p.key = "HS256", jwa.HS256, []byte("secret")
		}, code: invalid, detail: "DPoP proof algorithm not allowed"},
		{name: "alg ES384 with a P-256 key", edit: func(p *proof) {
			p.header["alg"] = "ES384"
		}, code: invalid, detail: "DPoP jwk does not suit the algorithm"},
		{name: "RSA key of 1024 bits", edit: func(p *proof) {
			p.header["alg"], p.header["jwk"] = "RS256", small.public
			p.alg, p.key = jwa.RS256, small.priv
		}, code: invalid, detail: "DPoP jwk does not suit the algorithm"},
		{name: "no jwk", edit: func(p *proof) { delete(p.header, "jwk") },
			code: invalid, detail: "DPoP proof has no jwk"},
		{name: "private key in jwk", edit: func(p *proof) {
			k, _ := jwk.FromRaw(key.priv)
			data, _ := json.Marshal(k)
			var m map[string]any
			json.Unmarshal(data, &m)
			p.header["jwk"] = m
		}, code: invalid, detail: "DPoP jwk holds a private key"},
		{name: "symmetric jwk", edit: func(p *proof) {
			p.header["jwk"] = map[string]any{"kty": "oct", "k": "c2VjcmV0"}
		}, code: invalid, detail: "DPoP jwk holds a private key"},
		{name: "crit header", edit: func(p *proof) { p.header["crit"] = []string{"x"} },
			code: invalid, detail: "unsupported critical header"},
		{name: "bad signature", edit: func(p *proof) { p.badSig = true },
			code: invalid, detail: "invalid DPoP proof signature"},
		{name: "signed by another key", edit: func(p *proof) { p.key = other.priv },
			code: invalid, detail: "invalid DPoP proof signature"},
		{name: "htm mismatch", edit: func(p *proof) { p.claims["htm"] = "POST" },
			code: invalid, detail: "DPoP htm does not match the request method"},
		{name: "htm lower case", edit: func(p *proof) { p.claims["htm"] = "get" },
			code: invalid, detail: "DPoP htm does not match the request method"},
		{name: "htu with query", edit: func(p *proof) { p.claims["htu"] = testURL + "?a=1" },
			code: invalid, detail: "DPoP htu must be an http(s) URI without query"},
		{name: "htu with fragment", edit: func(p *proof) { p.claims["htu"] = testURL + "#f" },
			code: invalid, detail: "DPoP htu must be an http(s) URI without query"},
		{name: "htu other path", edit: func(p *proof) {
			p.claims["htu"] = "https://api.example.com/v1/users"
		}, code: invalid, detail: "DPoP htu does not match the request URL"},
		{name: "htu other host", edit: func(p *proof) {
			p.claims["htu"] = "https://evil.example.com/v1/orders"
		}, code: invalid, detail: "DPoP htu does not match the request URL"},
		{name: "htu http", edit: func(p *proof) {
			p.claims["htu"] = "http://api.example.com/v1/orders"
		}, code: invalid, detail: "DPoP htu does not match the request URL"},
		{name: "htu normalised", edit: func(p *proof) {
			p.claims["htu"] = "HTTPS://API.Example.COM:443/v1/%6Frders"
		}},
		{name: "request with query", req: func(r *http.Request, _ string) {
			r.URL.RawQuery = "page=2"
		}},
		{name: "iat too old", edit: func(p *proof) {
			p.claims["iat"] = testNow.Add(-61 * time.Second).Unix()
		}, code: invalid, detail: "DPoP proof too old"},
		{name: "iat 60s old", edit: func(p *proof) {
			p.claims["iat"] = testNow.Add(-60 * time.Second).Unix()
		}},
		{name: "iat too new", edit: func(p *proof) {
			p.claims["iat"] = testNow.Add(6 * time.Second).Unix()
		}, code: invalid, detail: "DPoP proof issued in the future"},
		{name: "iat 5s ahead", edit: func(p *proof) {
			p.claims["iat"] = testNow.Add(5 * time.Second).Unix()
		}},
		{name: "iat a string", edit: func(p *proof) { p.claims["iat"] = "1" },
			code: invalid, detail: "bad DPoP claims"},
		{name: "no jti", edit: func(p *proof) { delete(p.claims, "jti") },
			code: invalid, detail: "DPoP proof has no jti"},
		{name: "no htu", edit: func(p *proof) { delete(p.claims, "htu") },
			code: invalid, detail: "DPoP proof needs htm, htu and iat"},
		{name: "wrong ath", edit: func(p *proof) {
			p.claims["ath"] = "fUHyO2r2Z3DZ53EsNrWBb0xWXoaNy59IiKCAqksmQEo"
		}, code: invalid, detail: "DPoP ath does not match the access token"},
		{name: "no ath", edit: func(p *proof) { delete(p.claims, "ath") },
			code: invalid, detail: "DPoP proof has no ath"},
		{name: "jkt mismatch", edit: func(p *proof) {
			p.header["jwk"], p.key = other.public, other.priv
		}, code: runtimeid.CodeDPoPBindingMismatch,
			detail: "DPoP proof key does not match the token"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d, err := runtimeid.NewDPoP(runtimeid.DPoPOptions{Now: fixedClock(testNow.Unix())})
			require.NoError(t, err)
			p := key.proof("GET", testURL, testToken, testNow)
			if tt.edit != nil {
				tt.edit(p)
			}
			signed := p.sign(t)
			r := httptest.NewRequest("GET", testURL, nil)
			r.Header.Set("DPoP", signed)
			if tt.req != nil {
				tt.req(r, signed)
			}
			ev := dpopEval(r, testToken, key.jkt)
			err = d.Validate(context.Background(), ev)
			if tt.code == "" {
				require.NoError(t, err)
				assert.True(t, ev.Credential.BindingVerified)
				return
			}
			requireTokenError(t, err, tt.code, tt.detail)
			assert.False(t, ev.Credential.BindingVerified)
		})
	}
}

func TestDPoPSchemeAndBinding(t *testing.T) {
	key := newProofKey(t)
	tests := []struct {
		name     string
		scheme   string
		jkt      string
		required bool
		code     string
		detail   string
	}{
		{name: "bearer without cnf passes", scheme: "Bearer"},
		{name: "bound token as bearer", scheme: "Bearer", jkt: key.jkt,
			code:   runtimeid.CodeDPoPBindingMismatch,
			detail: "DPoP-bound token sent without the DPoP scheme"},
		{name: "bound token from the query", scheme: "", jkt: key.jkt,
			code:   runtimeid.CodeDPoPBindingMismatch,
			detail: "DPoP-bound token sent without the DPoP scheme"},
		{name: "DPoP scheme, unbound token", scheme: "DPoP",
			code: runtimeid.CodeDPoPBindingMismatch, detail: "token is not bound to a DPoP key"},
		{name: "bearer when DPoP is required", scheme: "Bearer", required: true,
			code: runtimeid.CodeDPoPRequired, detail: "DPoP proof required"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d, err := runtimeid.NewDPoP(runtimeid.DPoPOptions{
				Now: fixedClock(testNow.Unix()), Required: tt.required})
			require.NoError(t, err)
			r := httptest.NewRequest("GET", testURL, nil)
			r.Header.Set("DPoP", key.proof("GET", testURL, testToken, testNow).sign(t))
			ev := dpopEval(r, testToken, tt.jkt)
			ev.Credential.Scheme = tt.scheme
			err = d.Validate(context.Background(), ev)
			if tt.code == "" {
				require.NoError(t, err)
				assert.False(t, ev.Credential.BindingVerified)
				return
			}
			requireTokenError(t, err, tt.code, tt.detail)
		})
	}
}

func TestDPoPBehindProxy(t *testing.T) {
	key := newProofKey(t)
	const public = "https://api.example.com/v1/orders"
	tests := []struct {
		name    string
		peer    string
		headers map[string]string
		ok      bool
	}{
		{name: "trusted X-Forwarded", peer: "10.0.0.5:4711", ok: true, headers: map[string]string{
			"X-Forwarded-Proto": "https", "X-Forwarded-Host": "api.example.com"}},
		{name: "trusted X-Forwarded list, last wins", peer: "10.0.0.5:4711", ok: true,
			headers: map[string]string{"X-Forwarded-Proto": "http, https",
				"X-Forwarded-Host": "evil.example, api.example.com"}},
		{name: "trusted Forwarded", peer: "10.0.0.5:4711", ok: true, headers: map[string]string{
			"Forwarded": `for=198.51.100.7;proto=https;host="api.example.com"`}},
		{name: "Forwarded chain through two proxies", peer: "10.0.0.5:4711", ok: true,
			headers: map[string]string{"Forwarded": "for=198.51.100.7;proto=https;" +
				"host=api.example.com, for=10.0.0.9;proto=http;host=lb.internal"}},
		{name: "client-forged Forwarded element is skipped", peer: "10.0.0.5:4711",
			ok: true, headers: map[string]string{"Forwarded": "for=1.2.3.4;host=evil.example," +
				" for=198.51.100.7;proto=https;host=api.example.com"}},
		{name: "Forwarded wins over X-Forwarded", peer: "10.0.0.5:4711", ok: false,
			headers: map[string]string{"Forwarded": "for=198.51.100.7;proto=http",
				"X-Forwarded-Proto": "https", "X-Forwarded-Host": "api.example.com"}},
		{name: "untrusted peer's headers ignored", peer: "203.0.113.9:4711",
			headers: map[string]string{
				"X-Forwarded-Proto": "https", "X-Forwarded-Host": "api.example.com"}},
		{name: "no headers", peer: "10.0.0.5:4711"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d, err := runtimeid.NewDPoP(runtimeid.DPoPOptions{
				Now:            fixedClock(testNow.Unix()),
				TrustedProxies: []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8")},
			})
			require.NoError(t, err)
			// The load balancer speaks plain HTTP to the app.
			r := httptest.NewRequest("GET", "http://app.internal:8080/v1/orders", nil)
			r.RemoteAddr = tt.peer
			for k, v := range tt.headers {
				r.Header.Set(k, v)
			}
			r.Header.Set("DPoP", key.proof("GET", public, testToken, testNow).sign(t))
			err = d.Validate(context.Background(), dpopEval(r, testToken, key.jkt))
			if tt.ok {
				require.NoError(t, err)
				return
			}
			requireTokenError(t, err, runtimeid.CodeDPoPProofInvalid,
				"DPoP htu does not match the request URL")
		})
	}
}

func TestDPoPNonces(t *testing.T) {
	key := newProofKey(t)
	nonces, err := runtimeid.NewHMACNonces([]byte("0123456789abcdef0123456789abcdef"), time.Minute)
	require.NoError(t, err)
	now := testNow
	issued := nonces.Nonce(now)
	tests := []struct {
		name  string
		nonce any
		age   time.Duration // how long after issue the proof is checked
		ok    bool
	}{
		{name: "missing"},
		{name: "current", nonce: issued, ok: true},
		{name: "previous period", nonce: issued, age: time.Minute, ok: true},
		{name: "expired", nonce: issued, age: 2 * time.Minute},
		{name: "forged", nonce: "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"},
		{name: "other secret", nonce: mustNonces(t, "another secret of 32 bytes......").Nonce(now)},
		{name: "not a string", nonce: 12},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			at := now.Add(tt.age)
			d, err := runtimeid.NewDPoP(runtimeid.DPoPOptions{
				Now: func() time.Time { return at }, Nonces: nonces})
			require.NoError(t, err)
			assert.Equal(t, nonces.Nonce(at), d.Nonce())
			p := key.proof("GET", testURL, testToken, at)
			if tt.nonce != nil {
				p.claims["nonce"] = tt.nonce
			}
			r := httptest.NewRequest("GET", testURL, nil)
			r.Header.Set("DPoP", p.sign(t))
			err = d.Validate(context.Background(), dpopEval(r, testToken, key.jkt))
			switch {
			case tt.ok:
				require.NoError(t, err)
			case tt.name == "not a string":
				requireTokenError(t, err, runtimeid.CodeDPoPProofInvalid, "bad DPoP claims")
			default:
				requireTokenError(t, err, runtimeid.CodeDPoPNonceRequired,
					"DPoP proof needs a current server nonce")
			}
		})
	}
}

func mustNonces(t *testing.T, secret string) *runtimeid.HMACNonces {
	n, err := runtimeid.NewHMACNonces([]byte(secret), time.Minute)
	require.NoError(t, err)
	return n
}

func TestHMACNonces(t *testing.T) {
	_, err := runtimeid.NewHMACNonces([]byte("short"), 0)
	require.ErrorIs(t, err, runtimeid.ErrConfig)

	n := mustNonces(t, "0123456789abcdef0123456789abcdef")
	t0 := time.Unix(600, 0) // the start of a period
	a := n.Nonce(t0)
	assert.Len(t, a, 32)
	assert.Equal(t, a, n.Nonce(t0.Add(59*time.Second)), "same period, same nonce")
	b := n.Nonce(t0.Add(time.Minute))
	assert.NotEqual(t, a, b)
	assert.True(t, n.Valid(a, t0.Add(119*time.Second)))
	assert.False(t, n.Valid(a, t0.Add(120*time.Second)))
	assert.False(t, n.Valid(b, t0), "a nonce from the future")
	assert.False(t, n.Valid(a+"A", t0))
	assert.False(t, n.Valid("", t0))
}

// stubReplay records every call, and fails when err is set.
type stubReplay struct {
	err  error
	keys []string
}

func (s *stubReplay) Seen(_ context.Context, key string, _ time.Time) (bool, error) {
	s.keys = append(s.keys, key)
	return false, s.err
}

func TestDPoPReplayCacheFailureFailsClosed(t *testing.T) {
	key := newProofKey(t)
	replay := &stubReplay{err: errors.New("store down")}
	d, err := runtimeid.NewDPoP(runtimeid.DPoPOptions{
		Now: fixedClock(testNow.Unix()), Replay: replay})
	require.NoError(t, err)
	r := httptest.NewRequest("GET", testURL, nil)
	r.Header.Set("DPoP", key.proof("GET", testURL, testToken, testNow).sign(t))
	err = d.Validate(context.Background(), dpopEval(r, testToken, key.jkt))
	requireTokenError(t, err, runtimeid.CodeDPoPReplayUnchecked, "DPoP proof could not be checked")
	assert.ErrorContains(t, err, "")
	require.Len(t, replay.keys, 1)
	assert.Len(t, replay.keys[0], len("dpop:")+43)

	// A proof that fails an earlier check never reaches the cache.
	r.Header.Set("DPoP", key.proof("POST", testURL, testToken, testNow).sign(t))
	_ = d.Validate(context.Background(), dpopEval(r, testToken, key.jkt))
	assert.Len(t, replay.keys, 1)
}

func TestNewDPoPOptions(t *testing.T) {
	for _, opts := range []runtimeid.DPoPOptions{
		{Algs: []string{"HS256"}},
		{Algs: []string{"none"}},
		{MaxAge: -time.Second},
		{MaxProofSize: -1},
	} {
		_, err := runtimeid.NewDPoP(opts)
		require.ErrorIs(t, err, runtimeid.ErrConfig, "%+v", opts)
	}
	d, err := runtimeid.NewDPoP(runtimeid.DPoPOptions{})
	require.NoError(t, err)
	assert.Equal(t, runtimeid.DefaultDPoPAlgs, d.Algs())
	assert.Equal(t, "", d.Nonce())
	assert.False(t, d.Required())

	d, err = runtimeid.NewDPoP(runtimeid.DPoPOptions{Algs: []string{"ES256"}})
	require.NoError(t, err)
	assert.Equal(t, []string{"ES256"}, d.Algs())
}

// FuzzDPoPProof feeds arbitrary DPoP headers to the validator: it must
// refuse them with a token error, never panic.
func FuzzDPoPProof(f *testing.F) {
	for _, p := range loadRFCProofs(f) {
		f.Add(p.Proof)
	}
	key := newProofKey(f)
	f.Add(key.proof("GET", testURL, testToken, testNow).sign(f))
	f.Add("e30.e30.")
	f.Add("eyJ0eXAiOiJkcG9wK2p3dCIsImFsZyI6IkVTMjU2IiwiandrIjp7fX0.e30.AA")
	d, err := runtimeid.NewDPoP(runtimeid.DPoPOptions{
		Now: fixedClock(testNow.Unix()), Replay: &stubReplay{}})
	require.NoError(f, err)
	f.Fuzz(func(t *testing.T, header string) {
		r := httptest.NewRequest("GET", testURL, nil)
		r.Header["Dpop"] = []string{header}
		err := d.Validate(context.Background(), dpopEval(r, testToken, key.jkt))
		if err != nil {
			var te *runtimeid.TokenError
			require.ErrorAs(t, err, &te)
		}
	})
}

func BenchmarkDPoPValidate(b *testing.B) {
	key := newProofKey(b)
	d, err := runtimeid.NewDPoP(runtimeid.DPoPOptions{
		Now: fixedClock(testNow.Unix()), Replay: &noReplay{}})
	require.NoError(b, err)
	r := httptest.NewRequest("GET", testURL, nil)
	r.Header.Set("DPoP", key.proof("GET", testURL, testToken, testNow).sign(b))
	ev := dpopEval(r, testToken, key.jkt)
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		if err := d.Validate(ctx, ev); err != nil {
			b.Fatal(err)
		}
	}
}

// noReplay sees nothing, so that a benchmark can reuse one proof.
type noReplay struct{}

func (noReplay) Seen(context.Context, string, time.Time) (bool, error) { return false, nil }

// popStack is an engine with proof-of-possession validators and the
// decision enforcer, served over HTTP.
type popStack struct {
	t      *testing.T
	issuer jwk.Key
	now    time.Time
	srv    *httptest.Server
}

const popIssuer = "https://idp.pop.example"

func newPopStack(t *testing.T, v runtimeid.IdentityValidator,
	dpop decision.DPoPChallenger, tlsSrv bool) *popStack {
	t.Helper()
	s := &popStack{t: t, now: testNow}
	priv, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	require.NoError(t, err)
	s.issuer, err = jwk.FromRaw(priv)
	require.NoError(t, err)
	require.NoError(t, s.issuer.Set(jwk.KeyIDKey, "pop"))
	pub, err := s.issuer.PublicKey()
	require.NoError(t, err)
	set := jwk.NewSet()
	require.NoError(t, set.AddKey(pub))
	keys, err := runtimeid.StaticKeys(set)
	require.NoError(t, err)

	enf, err := decision.NewEnforcer(decision.Options{Realm: "api", DPoP: dpop})
	require.NoError(t, err)
	eng, err := runtimeid.New(runtimeid.Config{
		Token: runtimeid.TokenConfig{Issuer: popIssuer,
			Audience: []string{"api"}, Keys: keys},
		Validators: []runtimeid.IdentityValidator{v},
		Policy:     policy.Default(),
		Enforcer:   enf,
		Now:        func() time.Time { return s.now },
	})
	require.NoError(t, err)
	ok := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Write([]byte(runtimeid.IdentityFrom(r.Context()).Subject))
	})
	h := eng.Protect("orders.list", runtimeid.Low)(ok)
	if tlsSrv {
		s.srv = httptest.NewUnstartedServer(h)
		s.srv.TLS = &tls.Config{ClientAuth: tls.RequestClientCert}
		s.srv.StartTLS()
	} else {
		s.srv = httptest.NewServer(h)
	}
	t.Cleanup(s.srv.Close)
	return s
}

// token mints an access token with the given cnf, or none.
func (s *popStack) token(cnf map[string]any) string {
	tok := jwt.New()
	tok.Set(jwt.IssuerKey, popIssuer)
	tok.Set(jwt.AudienceKey, "api")
	tok.Set(jwt.SubjectKey, "alice")
	tok.Set(jwt.IssuedAtKey, s.now)
	tok.Set(jwt.ExpirationKey, s.now.Add(time.Hour))
	if cnf != nil {
		tok.Set("cnf", cnf)
	}
	signed, err := jwt.Sign(tok, jwt.WithKey(jwa.ES256, s.issuer))
	require.NoError(s.t, err)
	return string(signed)
}

type popResult struct {
	status int
	auth   string
	nonce  string
	body   string
}

func (s *popStack) do(client *http.Client, method string, header ...string) popResult {
	req, err := http.NewRequest(method, s.srv.URL+"/v1/orders", nil)
	require.NoError(s.t, err)
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Add(header[i], header[i+1])
	}
	if client == nil {
		client = s.srv.Client()
	}
	resp, err := client.Do(req)
	require.NoError(s.t, err)
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return popResult{status: resp.StatusCode, auth: resp.Header.Get("WWW-Authenticate"),
		nonce: resp.Header.Get("DPoP-Nonce"), body: string(body)}
}

const allAlgs = `algs="ES256 ES384 ES512 EdDSA PS256 PS384 PS512 RS256 RS384 RS512"`

func TestDPoPEndToEnd(t *testing.T) {
	key := newProofKey(t)
	nonces := mustNonces(t, "0123456789abcdef0123456789abcdef")
	var s *popStack
	d, err := runtimeid.NewDPoP(runtimeid.DPoPOptions{
		Now: func() time.Time { return s.now }, Nonces: nonces})
	require.NoError(t, err)
	s = newPopStack(t, d, d, false)
	url := s.srv.URL + "/v1/orders"
	bound := s.token(map[string]any{"jkt": key.jkt})
	plain := s.token(nil)
	nonce := nonces.Nonce(s.now)
	proofFor := func(method, tok string, edit ...func(*proof)) string {
		p := key.proof(method, url, tok, s.now)
		p.claims["nonce"] = nonce
		for _, e := range edit {
			e(p)
		}
		return p.sign(t)
	}

	tests := []struct {
		name   string
		method string
		header []string
		status int
		auth   string
		nonce  bool
	}{
		{name: "valid proof", method: "GET", status: 200, nonce: true,
			header: []string{"Authorization", "DPoP " + bound, "DPoP", proofFor("GET", bound)}},
		{name: "HEAD with htm HEAD", method: "HEAD", status: 200, nonce: true,
			header: []string{"Authorization", "DPoP " + bound, "DPoP", proofFor("HEAD", bound)}},
		{name: "no token", method: "GET", status: 401,
			auth: `Bearer realm="api", DPoP realm="api", ` + allAlgs},
		{name: "bad proof", method: "GET", status: 401,
			header: []string{"Authorization", "DPoP " + bound, "DPoP",
				proofFor("GET", bound, func(p *proof) { p.claims["htm"] = "PUT" })},
			auth: `Bearer realm="api", DPoP realm="api", ` + allAlgs +
				`, error="invalid_dpop_proof", ` +
				`error_description="DPoP htm does not match the request method"`},
		{name: "no nonce", method: "GET", status: 401, nonce: true,
			header: []string{"Authorization", "DPoP " + bound, "DPoP",
				proofFor("GET", bound, func(p *proof) { delete(p.claims, "nonce") })},
			auth: `Bearer realm="api", DPoP realm="api", ` + allAlgs +
				`, error="use_dpop_nonce", ` +
				`error_description="DPoP proof needs a current server nonce"`},
		{name: "bound token as bearer", method: "GET", status: 401,
			header: []string{"Authorization", "Bearer " + bound},
			auth: `Bearer realm="api", DPoP realm="api", ` + allAlgs +
				`, error="invalid_token", ` +
				`error_description="DPoP-bound token sent without the DPoP scheme"`},
		{name: "DPoP scheme, unbound token", method: "GET", status: 401,
			header: []string{"Authorization", "DPoP " + plain, "DPoP", proofFor("GET", plain)},
			auth: `Bearer realm="api", DPoP realm="api", ` + allAlgs +
				`, error="invalid_token", error_description="token is not bound to a DPoP key"`},
		{name: "plain bearer still passes", method: "GET", status: 200,
			header: []string{"Authorization", "Bearer " + plain}},
		{name: "malformed DPoP token", method: "GET", status: 401,
			header: []string{"Authorization", "DPoP x.y.z", "DPoP", proofFor("GET", "x.y.z")},
			auth: `Bearer realm="api", DPoP realm="api", ` + allAlgs +
				`, error="invalid_token", error_description="bad header encoding"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := s.do(nil, tt.method, tt.header...)
			assert.Equal(t, tt.status, got.status, got.body)
			assert.Equal(t, tt.auth, got.auth)
			if tt.nonce {
				assert.Equal(t, nonce, got.nonce)
			} else {
				assert.Empty(t, got.nonce)
			}
		})
	}

	// The proof of the first request cannot be used again.
	proof := proofFor("GET", bound)
	hdr := []string{"Authorization", "DPoP " + bound, "DPoP", proof}
	assert.Equal(t, 200, s.do(nil, "GET", hdr...).status)
	got := s.do(nil, "GET", hdr...)
	assert.Equal(t, 401, got.status)
	assert.Equal(t, `Bearer realm="api", DPoP realm="api", `+allAlgs+
		`, error="invalid_dpop_proof", error_description="DPoP proof already used"`, got.auth)
}

func TestDPoPRequiredEndToEnd(t *testing.T) {
	var s *popStack
	d, err := runtimeid.NewDPoP(runtimeid.DPoPOptions{Algs: []string{"ES256", "PS256"},
		Now: func() time.Time { return s.now }, Required: true})
	require.NoError(t, err)
	s = newPopStack(t, d, d, false)

	got := s.do(nil, "GET")
	assert.Equal(t, 401, got.status)
	assert.Equal(t, `DPoP realm="api", algs="ES256 PS256"`, got.auth)

	got = s.do(nil, "GET", "Authorization", "Bearer "+s.token(nil))
	assert.Equal(t, 401, got.status)
	assert.Equal(t, `DPoP realm="api", algs="ES256 PS256", error="invalid_token", `+
		`error_description="DPoP proof required"`, got.auth)
}
