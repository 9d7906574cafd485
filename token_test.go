package runtimeid

import (
	"context"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"errors"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/lestrrat-go/jwx/v2/jwa"
	"github.com/lestrrat-go/jwx/v2/jwk"
	"github.com/lestrrat-go/jwx/v2/jws"
	"github.com/lestrrat-go/jwx/v2/jwt"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

const (
	testIssuer   = "https://issuer.test"
	testAudience = "api://orders"
)

// testNow is the injected clock of every token test.
var testNow = time.Date(2026, 3, 4, 5, 6, 7, 0, time.UTC)

// fixture holds real key pairs, made once for the package's tests.
type fixture struct {
	rsa *rsa.PrivateKey
	ec  *ecdsa.PrivateKey
	ed  ed25519.PrivateKey
	set jwk.Set // the public keys, kids "rsa1", "ec1", "ed1"
}

var (
	fixtureOnce sync.Once
	fix         fixture
)

func keys(tb testing.TB) *fixture {
	tb.Helper()
	fixtureOnce.Do(func() {
		var err error
		fix.rsa, err = rsa.GenerateKey(rand.Reader, 2048)
		must(err)
		fix.ec, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		must(err)
		_, fix.ed, err = ed25519.GenerateKey(rand.Reader)
		must(err)
		fix.set = publicSet(tb, map[string]any{
			"rsa1": fix.rsa.Public(), "ec1": fix.ec.Public(), "ed1": fix.ed.Public(),
		})
	})
	return &fix
}

func must(err error) {
	if err != nil {
		panic(err)
	}
}

func publicSet(tb testing.TB, byKID map[string]any) jwk.Set {
	tb.Helper()
	set := jwk.NewSet()
	for kid, raw := range byKID {
		k, err := jwk.FromRaw(raw)
		require.NoError(tb, err)
		require.NoError(tb, k.Set(jwk.KeyIDKey, kid))
		require.NoError(tb, set.AddKey(k))
	}
	return set
}

// signToken signs payload under a header built from hdr, with jwx's own
// signer, so tests can send any header and any payload.
func signToken(tb testing.TB, alg jwa.SignatureAlgorithm, key any, hdr map[string]any, payload []byte) string {
	tb.Helper()
	h := map[string]any{"alg": alg.String()}
	for k, v := range hdr {
		h[k] = v
	}
	hj, err := json.Marshal(h)
	require.NoError(tb, err)
	input := b64(hj) + "." + b64(payload)
	signer, err := jws.NewSigner(alg)
	require.NoError(tb, err)
	sig, err := signer.Sign([]byte(input), key)
	require.NoError(tb, err)
	return input + "." + b64(sig)
}

func b64(b []byte) string { return base64.RawURLEncoding.EncodeToString(b) }

func claimsJSON(tb testing.TB, c map[string]any) []byte {
	tb.Helper()
	b, err := json.Marshal(c)
	require.NoError(tb, err)
	return b
}

// baseClaims are valid at testNow.
func baseClaims() map[string]any {
	return map[string]any{
		"iss": testIssuer,
		"aud": testAudience,
		"sub": "alice",
		"exp": testNow.Add(5 * time.Minute).Unix(),
		"iat": testNow.Add(-10 * time.Second).Unix(),
	}
}

func es256(tb testing.TB, c map[string]any) string {
	f := keys(tb)
	return signToken(tb, jwa.ES256, f.ec, map[string]any{"kid": "ec1"}, claimsJSON(tb, c))
}

func newVerifier(tb testing.TB, src KeySource) *tokenVerifier {
	tb.Helper()
	if src == nil {
		var err error
		src, err = StaticKeys(keys(tb).set)
		require.NoError(tb, err)
	}
	v, err := newTokenVerifier(&TokenConfig{
		Issuer: testIssuer, Audience: []string{"other", testAudience}, Keys: src,
	})
	require.NoError(tb, err)
	return v
}

func with(c map[string]any, kv ...any) map[string]any {
	for i := 0; i < len(kv); i += 2 {
		k := kv[i].(string)
		if kv[i+1] == nil {
			delete(c, k)
		} else {
			c[k] = kv[i+1]
		}
	}
	return c
}

func TestNewTokenVerifierConfig(t *testing.T) {
	src, err := StaticKeys(keys(t).set)
	require.NoError(t, err)
	tests := []struct {
		name  string
		cfg   TokenConfig
		field string
	}{
		{"no issuer", TokenConfig{Audience: []string{"a"}, Keys: src}, "Token.Issuer"},
		{"no audience", TokenConfig{Issuer: "i", Keys: src}, "Token.Audience"},
		{"empty audience", TokenConfig{Issuer: "i", Audience: []string{"a", ""}, Keys: src}, "Token.Audience"},
		{"no keys", TokenConfig{Issuer: "i", Audience: []string{"a"}}, "Token.Keys"},
		{"skew too big", TokenConfig{Issuer: "i", Audience: []string{"a"}, Keys: src,
			ClockSkew: MaxClockSkew + 1}, "Token.ClockSkew"},
		{"negative skew", TokenConfig{Issuer: "i", Audience: []string{"a"}, Keys: src,
			ClockSkew: -1}, "Token.ClockSkew"},
		{"negative size", TokenConfig{Issuer: "i", Audience: []string{"a"}, Keys: src,
			MaxSize: -1}, "Token.MaxSize"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := newTokenVerifier(&tt.cfg)
			var ce *ConfigError
			require.ErrorAs(t, err, &ce)
			assert.Equal(t, tt.field, ce.Field)
			assert.ErrorIs(t, err, ErrConfig)
		})
	}

	t.Run("defaults written back", func(t *testing.T) {
		cfg := TokenConfig{Issuer: "i", Audience: []string{"a"}, Keys: src}
		_, err := newTokenVerifier(&cfg)
		require.NoError(t, err)
		assert.Equal(t, DefaultClockSkew, cfg.ClockSkew)
		assert.Equal(t, DefaultMaxTokenSize, cfg.MaxSize)
	})
}

func TestVerifyIdentity(t *testing.T) {
	v := newVerifier(t, nil)
	c := with(baseClaims(),
		"aud", []string{"x", testAudience},
		"exp", float64(testNow.Unix())+300.5,
		"nbf", testNow.Add(-time.Minute).Unix(),
		"sid", "s-1", "jti", "j-1", "azp", "web",
		"scope", "read  write",
		"acr", "urn:mfa", "amr", []string{"pwd", "otp"},
		"auth_time", testNow.Add(-time.Hour).Unix(),
		"act", map[string]any{"sub": "agent", "client_id": "bot",
			"act": map[string]any{"sub": "older", "iss": "https://other"}},
		"may_act", map[string]any{"sub": "agent"},
		"cnf", map[string]any{"jkt": "0ZcOCORZNYy-DWpqq30jZyJGHTN0d2HglBV3uiguA4I"},
	)
	id, terr := v.verify(context.Background(), es256(t, c), testNow)
	require.Nil(t, terr)

	assert.Equal(t, "alice", id.Subject)
	assert.Equal(t, "s-1", id.SessionID)
	assert.Equal(t, testIssuer, id.Issuer)
	assert.Equal(t, []string{"x", testAudience}, id.Audience)
	assert.Equal(t, "j-1", id.TokenID)
	assert.Equal(t, "web", id.ClientID)
	assert.Equal(t, []string{"read", "write"}, id.Scopes)
	assert.Equal(t, "urn:mfa", id.ACR)
	assert.Equal(t, []string{"pwd", "otp"}, id.AMR)
	assert.Equal(t, testNow.Add(-10*time.Second), id.IssuedAt)
	assert.Equal(t, testNow.Add(-time.Minute), id.NotBefore)
	assert.Equal(t, testNow.Add(300*time.Second+500*time.Millisecond), id.Expiry)
	assert.Equal(t, testNow.Add(-time.Hour), id.AuthTime)

	require.NotNil(t, id.Actor)
	assert.Equal(t, "agent", id.Actor.Subject)
	assert.Equal(t, "bot", id.Actor.ClientID)
	require.NotNil(t, id.Actor.Actor)
	assert.Equal(t, "older", id.Actor.Actor.Subject)
	assert.Equal(t, "https://other", id.Actor.Actor.Issuer)
	assert.Nil(t, id.Actor.Actor.Actor)
	assert.True(t, id.IsDelegated())

	assert.Equal(t, map[string]any{"sub": "agent"}, id.MayAct)
	require.NotNil(t, id.Confirmation)
	assert.Equal(t, "0ZcOCORZNYy-DWpqq30jZyJGHTN0d2HglBV3uiguA4I", id.Confirmation.JKT)
	assert.Equal(t, "alice", id.Claims["sub"])
	assert.Equal(t, "s-1", id.Claims["sid"])
}

func TestVerifyClientIDAndScopes(t *testing.T) {
	v := newVerifier(t, nil)
	tests := []struct {
		name   string
		extra  []any
		client string
		scopes []string
	}{
		{"client_id beats azp", []any{"client_id", "c", "azp", "a"}, "c", nil},
		{"scp list", []any{"scp", []string{"a", "b"}}, "", []string{"a", "b"}},
		{"scp string", []any{"scp", "a b"}, "", []string{"a", "b"}},
		{"scope beats scp", []any{"scope", "x", "scp", "y"}, "", []string{"x"}},
		{"cnf x5t", []any{"cnf", map[string]any{"x5t#S256": "abc"}}, "", nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			id, terr := v.verify(context.Background(), es256(t, with(baseClaims(), tt.extra...)), testNow)
			require.Nil(t, terr)
			assert.Equal(t, tt.client, id.ClientID)
			assert.Equal(t, tt.scopes, id.Scopes)
		})
	}
}

func TestVerifyAlgorithms(t *testing.T) {
	f := keys(t)
	v := newVerifier(t, nil)
	payload := claimsJSON(t, baseClaims())
	tests := []struct {
		name string
		alg  jwa.SignatureAlgorithm
		key  any
		kid  string
	}{
		{"RS256", jwa.RS256, f.rsa, "rsa1"},
		{"ES256", jwa.ES256, f.ec, "ec1"},
		{"EdDSA", jwa.EdDSA, f.ed, "ed1"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tok := signToken(t, tt.alg, tt.key, map[string]any{"kid": tt.kid}, payload)
			id, terr := v.verify(context.Background(), tok, testNow)
			require.Nil(t, terr)
			assert.Equal(t, "alice", id.Subject)
		})
	}
}

func TestVerifyErrorCodes(t *testing.T) {
	f := keys(t)
	v := newVerifier(t, nil)
	ok := es256(t, baseClaims())
	payload := claimsJSON(t, baseClaims())
	hdr := func(kv ...any) map[string]any { return with(map[string]any{"kid": "ec1"}, kv...) }
	pubDER, err := x509.MarshalPKIXPublicKey(f.rsa.Public())
	require.NoError(t, err)

	tests := []struct {
		name  string
		token string
		code  string
	}{
		{"too large", ok + strings.Repeat("A", DefaultMaxTokenSize), CodeTokenTooLarge},
		{"two segments", "a.b", CodeTokenMalformed},
		{"five segments (JWE)", "a.b.c.d.e", CodeTokenMalformed},
		{"many segments", strings.Repeat("a.", 1000) + "a", CodeTokenMalformed},
		{"empty", "", CodeTokenMalformed},
		{"header not base64", "!!." + strings.SplitN(ok, ".", 2)[1], CodeTokenMalformed},
		{"header not JSON", b64([]byte("nope")) + ".e30.AA", CodeTokenMalformed},
		{"header alg number", b64([]byte(`{"alg":1}`)) + ".e30.AA", CodeTokenMalformed},
		{"no alg", b64([]byte(`{"kid":"ec1"}`)) + ".e30.AA", CodeTokenMalformed},
		{"crit", signToken(t, jwa.ES256, f.ec, hdr("crit", []string{"exp"}, "exp", 1), payload),
			CodeTokenMalformed},
		{"signature not base64", ok + "!", CodeTokenMalformed},
		{"payload not base64", signedInput(t, jwa.ES256, f.ec, "ec1", "!!"), CodeTokenMalformed},
		{"none", b64([]byte(`{"alg":"none"}`)) + "." + b64(payload) + ".", CodeTokenAlgorithm},
		{"NONE", b64([]byte(`{"alg":"NONE","kid":"ec1"}`)) + "." + b64(payload) + ".", CodeTokenAlgorithm},
		{"HS256 with public key as secret",
			signToken(t, jwa.HS256, pubDER, map[string]any{"kid": "rsa1"}, payload), CodeTokenAlgorithm},
		{"RS384 under an RS256 key",
			signToken(t, jwa.RS384, f.rsa, map[string]any{"kid": "rsa1"}, payload), CodeTokenAlgorithm},
		{"PS256 under an RS256 key",
			signToken(t, jwa.PS256, f.rsa, map[string]any{"kid": "rsa1"}, payload), CodeTokenAlgorithm},
		{"ES256 under the Ed25519 key",
			signToken(t, jwa.ES256, f.ec, map[string]any{"kid": "ed1"}, payload), CodeTokenAlgorithm},
		{"unknown kid", signToken(t, jwa.ES256, f.ec, hdr("kid", "nope"), payload), CodeTokenUnknownKey},
		{"no kid, several keys", signToken(t, jwa.ES256, f.ec, hdr("kid", nil), payload), CodeTokenUnknownKey},
		{"kid not a string", signToken(t, jwa.ES256, f.ec, hdr("kid", 7), payload), CodeTokenMalformed},
		{"tampered payload", tamperPayload(t, ok), CodeTokenSignature},
		{"wrong key", signToken(t, jwa.RS256, mustRSA(t), map[string]any{"kid": "rsa1"}, payload),
			CodeTokenSignature},
		{"empty signature", ok[:strings.LastIndex(ok, ".")+1], CodeTokenSignature},
		{"payload not JSON", signedInput(t, jwa.ES256, f.ec, "ec1", b64([]byte("hi"))), CodeTokenClaims},
		{"payload null", signedInput(t, jwa.ES256, f.ec, "ec1", b64([]byte("null"))), CodeTokenClaims},
		{"payload array", signedInput(t, jwa.ES256, f.ec, "ec1", b64([]byte("[]"))), CodeTokenClaims},
		{"issuer", es256(t, with(baseClaims(), "iss", "https://evil.test")), CodeTokenIssuer},
		{"issuer prefix", es256(t, with(baseClaims(), "iss", testIssuer+"/")), CodeTokenIssuer},
		{"no issuer", es256(t, with(baseClaims(), "iss", nil)), CodeTokenIssuer},
		{"audience", es256(t, with(baseClaims(), "aud", "api://other")), CodeTokenAudience},
		{"audience list", es256(t, with(baseClaims(), "aud", []string{"a", "b"})), CodeTokenAudience},
		{"no audience", es256(t, with(baseClaims(), "aud", nil)), CodeTokenAudience},
		{"expired", es256(t, with(baseClaims(), "exp", testNow.Add(-61*time.Second).Unix())), CodeTokenExpired},
		{"not yet valid", es256(t, with(baseClaims(), "nbf", testNow.Add(61*time.Second).Unix())),
			CodeTokenNotYetValid},
		{"issued later", es256(t, with(baseClaims(), "iat", testNow.Add(61*time.Second).Unix())),
			CodeTokenIssuedLater},
		{"no exp", es256(t, with(baseClaims(), "exp", nil)), CodeTokenClaims},
		{"no sub", es256(t, with(baseClaims(), "sub", nil)), CodeTokenClaims},
		{"empty sub", es256(t, with(baseClaims(), "sub", "")), CodeTokenClaims},
		{"sub number", es256(t, with(baseClaims(), "sub", 12)), CodeTokenClaims},
		{"iss number", es256(t, with(baseClaims(), "iss", 12)), CodeTokenClaims},
		{"aud number", es256(t, with(baseClaims(), "aud", 12)), CodeTokenClaims},
		{"aud mixed list", es256(t, with(baseClaims(), "aud", []any{testAudience, 1})), CodeTokenClaims},
		{"exp string", es256(t, with(baseClaims(), "exp", "tomorrow")), CodeTokenClaims},
		{"exp negative", es256(t, with(baseClaims(), "exp", -1)), CodeTokenClaims},
		{"exp huge", es256(t, with(baseClaims(), "exp", 1e300)), CodeTokenClaims},
		{"nbf bool", es256(t, with(baseClaims(), "nbf", true)), CodeTokenClaims},
		{"amr string", es256(t, with(baseClaims(), "amr", "pwd")), CodeTokenClaims},
		{"scope list", es256(t, with(baseClaims(), "scope", []string{"a"})), CodeTokenClaims},
		{"scp number", es256(t, with(baseClaims(), "scp", 3)), CodeTokenClaims},
		{"auth_time string", es256(t, with(baseClaims(), "auth_time", "x")), CodeTokenClaims},
		{"act string", es256(t, with(baseClaims(), "act", "bob")), CodeTokenClaims},
		{"act sub number", es256(t, with(baseClaims(), "act", map[string]any{"sub": 1})), CodeTokenClaims},
		{"act too deep", es256(t, with(baseClaims(), "act", nestedAct(maxActorDepth+1))), CodeTokenClaims},
		{"cnf string", es256(t, with(baseClaims(), "cnf", "k")), CodeTokenClaims},
		{"may_act list", es256(t, with(baseClaims(), "may_act", []string{"a"})), CodeTokenClaims},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			id, terr := v.verify(context.Background(), tt.token, testNow)
			assert.Nil(t, id)
			require.NotNil(t, terr)
			assert.Equal(t, tt.code, terr.Code, terr.Error())
			assert.NotEmpty(t, terr.Detail)
			if len(tt.token) > 8 {
				assert.NotContains(t, terr.Error(), tt.token)
			}
			assert.ErrorIs(t, terr, ErrToken)
		})
	}
}

func TestVerifyActorDepthLimit(t *testing.T) {
	v := newVerifier(t, nil)
	id, terr := v.verify(context.Background(),
		es256(t, with(baseClaims(), "act", nestedAct(maxActorDepth))), testNow)
	require.Nil(t, terr)
	depth := 0
	for a := id.Actor; a != nil; a = a.Actor {
		depth++
	}
	assert.Equal(t, maxActorDepth, depth)
}

func nestedAct(depth int) map[string]any {
	act := map[string]any{"sub": "a1"}
	for i := 2; i <= depth; i++ {
		act = map[string]any{"sub": "a" + string(rune('0'+i)), "act": act}
	}
	return act
}

func signedInput(tb testing.TB, alg jwa.SignatureAlgorithm, key any, kid, p64 string) string {
	tb.Helper()
	h := b64([]byte(`{"alg":"` + alg.String() + `","kid":"` + kid + `"}`))
	signer, err := jws.NewSigner(alg)
	require.NoError(tb, err)
	sig, err := signer.Sign([]byte(h+"."+p64), key)
	require.NoError(tb, err)
	return h + "." + p64 + "." + b64(sig)
}

func tamperPayload(tb testing.TB, tok string) string {
	parts := strings.Split(tok, ".")
	c := with(baseClaims(), "sub", "mallory")
	parts[1] = b64(claimsJSON(tb, c))
	return strings.Join(parts, ".")
}

func mustRSA(tb testing.TB) *rsa.PrivateKey {
	k, err := rsa.GenerateKey(rand.Reader, 2048)
	require.NoError(tb, err)
	return k
}

// TestVerifySkew checks each time claim on both sides of the 60 s skew.
func TestVerifySkew(t *testing.T) {
	v := newVerifier(t, nil)
	at := testNow
	tests := []struct {
		name  string
		claim string
		now   time.Time
		code  string // "" when accepted
	}{
		{"exp just inside skew", "exp", at.Add(59 * time.Second), ""},
		{"exp at skew", "exp", at.Add(60 * time.Second), CodeTokenExpired},
		{"exp past skew", "exp", at.Add(61 * time.Second), CodeTokenExpired},
		{"nbf inside skew", "nbf", at.Add(-60 * time.Second), ""},
		{"nbf past skew", "nbf", at.Add(-61 * time.Second), CodeTokenNotYetValid},
		{"iat inside skew", "iat", at.Add(-60 * time.Second), ""},
		{"iat past skew", "iat", at.Add(-61 * time.Second), CodeTokenIssuedLater},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := with(baseClaims(), "exp", at.Add(time.Hour).Unix(), "iat", nil, tt.claim, at.Unix())
			_, terr := v.verify(context.Background(), es256(t, c), tt.now)
			if tt.code == "" {
				assert.Nil(t, terr)
				return
			}
			require.NotNil(t, terr)
			assert.Equal(t, tt.code, terr.Code)
		})
	}
}

func TestVerifySingleKeyWithoutKid(t *testing.T) {
	f := keys(t)
	src, err := StaticKeys(publicSet(t, map[string]any{"only": f.ec.Public()}))
	require.NoError(t, err)
	v := newVerifier(t, src)
	payload := claimsJSON(t, baseClaims())

	_, terr := v.verify(context.Background(), signToken(t, jwa.ES256, f.ec, nil, payload), testNow)
	assert.Nil(t, terr)
	_, terr = v.verify(context.Background(),
		signToken(t, jwa.ES256, f.ec, map[string]any{"kid": "other"}, payload), testNow)
	require.NotNil(t, terr)
	assert.Equal(t, CodeTokenUnknownKey, terr.Code)
}

// funcKeys is a KeySource from outside this package.
type funcKeys func(kid string) (jwk.Key, jwa.SignatureAlgorithm, error)

func (f funcKeys) VerificationKey(_ context.Context, kid string) (jwk.Key, jwa.SignatureAlgorithm, error) {
	return f(kid)
}

func TestVerifyForeignKeySource(t *testing.T) {
	f := keys(t)
	ecKey, _ := f.set.LookupKeyID("ec1")
	payload := claimsJSON(t, baseClaims())
	tok := signToken(t, jwa.ES256, f.ec, map[string]any{"kid": "ec1"}, payload)
	hsTok := signToken(t, jwa.HS256, []byte("secret"), map[string]any{"kid": "ec1"}, payload)

	tests := []struct {
		name  string
		src   funcKeys
		token string
		code  string
	}{
		{"good", func(string) (jwk.Key, jwa.SignatureAlgorithm, error) {
			return ecKey, jwa.ES256, nil
		}, tok, ""},
		{"keys down", func(string) (jwk.Key, jwa.SignatureAlgorithm, error) {
			return nil, "", ErrKeys
		}, tok, CodeTokenUnknownKey},
		{"nil key", func(string) (jwk.Key, jwa.SignatureAlgorithm, error) {
			return nil, jwa.ES256, nil
		}, tok, CodeTokenUnknownKey},
		{"pinned to HS256", func(string) (jwk.Key, jwa.SignatureAlgorithm, error) {
			k, err := jwk.FromRaw([]byte("secret"))
			return k, jwa.HS256, err
		}, hsTok, CodeTokenAlgorithm},
		{"key of another type", func(string) (jwk.Key, jwa.SignatureAlgorithm, error) {
			k, _ := f.set.LookupKeyID("rsa1")
			return k, jwa.ES256, nil
		}, tok, CodeTokenSignature},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			v := newVerifier(t, tt.src)
			_, terr := v.verify(context.Background(), tt.token, testNow)
			if tt.code == "" {
				assert.Nil(t, terr)
				return
			}
			require.NotNil(t, terr)
			assert.Equal(t, tt.code, terr.Code)
		})
	}
}

// vector is one entry of testdata/tokens/rfc7515-vectors.json.
type vector struct {
	ID      string          `json:"id"`
	JWK     json.RawMessage `json:"jwk"`
	Compact string          `json:"compact"`
}

func loadVectors(t *testing.T) map[string]vector {
	data, err := os.ReadFile("testdata/tokens/rfc7515-vectors.json")
	require.NoError(t, err)
	var file struct{ JWS []vector }
	require.NoError(t, json.Unmarshal(data, &file))
	out := make(map[string]vector)
	for _, v := range file.JWS {
		out[v.ID] = v
	}
	return out
}

func vectorVerifier(t *testing.T, keyJSON []byte) *tokenVerifier {
	t.Helper()
	set, err := jwk.Parse(keyJSON)
	require.NoError(t, err)
	src, err := StaticKeys(set)
	require.NoError(t, err)
	v, err := newTokenVerifier(&TokenConfig{Issuer: "joe", Audience: []string{"x"}, Keys: src})
	require.NoError(t, err)
	return v
}

// TestRFC7515Vectors: A.2 and A.3 carry no aud, so a verified signature
// and lifetime end at the audience check; with the real clock their 2011
// exp ends them first.
func TestRFC7515Vectors(t *testing.T) {
	vecs := loadVectors(t)
	before := time.Unix(1300819380, 0).Add(-time.Hour)

	for _, id := range []string{"RFC7515-A.2", "RFC7515-A.3"} {
		t.Run(id, func(t *testing.T) {
			vec := vecs[id]
			v := vectorVerifier(t, vec.JWK)
			_, terr := v.verify(context.Background(), vec.Compact, before)
			require.NotNil(t, terr)
			assert.Equal(t, CodeTokenAudience, terr.Code)

			_, terr = v.verify(context.Background(), vec.Compact, time.Now())
			require.NotNil(t, terr)
			assert.Equal(t, CodeTokenExpired, terr.Code)

			_, terr = v.verify(context.Background(), tamperSig(vec.Compact), before)
			require.NotNil(t, terr)
			assert.Equal(t, CodeTokenSignature, terr.Code)
		})
	}

	t.Run("A.1 HS256 key refused", func(t *testing.T) {
		set, err := jwk.Parse(vecs["RFC7515-A.1"].JWK)
		require.NoError(t, err)
		_, err = StaticKeys(set)
		require.ErrorIs(t, err, ErrKeys)
		assert.Contains(t, err.Error(), "symmetric")
	})

	t.Run("A.1 under the A.2 key", func(t *testing.T) {
		v := vectorVerifier(t, vecs["RFC7515-A.2"].JWK)
		_, terr := v.verify(context.Background(), vecs["RFC7515-A.1"].Compact, time.Now())
		require.NotNil(t, terr)
		assert.Equal(t, CodeTokenAlgorithm, terr.Code)
	})

	t.Run("A.5 none", func(t *testing.T) {
		v := vectorVerifier(t, vecs["RFC7515-A.2"].JWK)
		_, terr := v.verify(context.Background(), vecs["RFC7515-A.5 / RFC7519-6.1"].Compact, before)
		require.NotNil(t, terr)
		assert.Equal(t, CodeTokenAlgorithm, terr.Code)
	})
}

func tamperSig(tok string) string {
	i := strings.LastIndex(tok, ".") + 1
	sig, _ := base64.RawURLEncoding.DecodeString(tok[i:])
	sig[0] ^= 1
	return tok[:i] + b64(sig)
}

// TestRFC7520Signatures: the cookbook signs prose, not claims, so a good
// signature ends at the claims check. Its keys are private JWKs; only
// their public part is kept.
func TestRFC7520Signatures(t *testing.T) {
	for _, file := range []string{"rfc7520-4_1.json", "rfc7520-4_3.json"} {
		t.Run(file, func(t *testing.T) {
			data, err := os.ReadFile("testdata/tokens/" + file)
			require.NoError(t, err)
			var ex struct {
				Input  struct{ Key json.RawMessage }
				Output struct{ Compact string }
			}
			require.NoError(t, json.Unmarshal(data, &ex))
			v := vectorVerifier(t, ex.Input.Key)

			pk, err := v.cfg.Keys.(pinnedKeySource).pinnedKey(context.Background(),
				"bilbo.baggins@hobbiton.example")
			require.NoError(t, err)
			_, private := pk.key.(interface{ D() []byte })
			assert.False(t, private)

			_, terr := v.verify(context.Background(), ex.Output.Compact, testNow)
			require.NotNil(t, terr)
			assert.Equal(t, CodeTokenClaims, terr.Code)

			_, terr = v.verify(context.Background(), tamperSig(ex.Output.Compact), testNow)
			require.NotNil(t, terr)
			assert.Equal(t, CodeTokenSignature, terr.Code)
		})
	}
}

func TestVerifyConcurrent(t *testing.T) {
	v := newVerifier(t, nil)
	tok := es256(t, baseClaims())
	var wg sync.WaitGroup
	for range 16 {
		wg.Go(func() {
			for range 20 {
				_, terr := v.verify(context.Background(), tok, testNow)
				assert.Nil(t, terr)
			}
		})
	}
	wg.Wait()
}

func TestTokenErrorUnwrapsCause(t *testing.T) {
	v := newVerifier(t, nil)
	tok := signToken(t, jwa.ES256, keys(t).ec, map[string]any{"kid": "nope"},
		claimsJSON(t, baseClaims()))
	_, terr := v.verify(context.Background(), tok, testNow)
	require.NotNil(t, terr)
	assert.True(t, errors.Is(terr, ErrUnknownKey))
}

func FuzzVerifyToken(f *testing.F) {
	v := newVerifier(f, nil)
	good := es256(f, baseClaims())
	f.Add(good)
	f.Add(tamperPayload(f, good))
	f.Add("a.b.c")
	f.Add("..")
	f.Add(b64([]byte(`{"alg":"ES256","kid":"ec1"}`)) + ".e30.")
	f.Add(b64([]byte(`{"alg":"none"}`)) + "." + b64([]byte(`{"act":{"act":{}}}`)) + ".")
	f.Fuzz(func(t *testing.T, tok string) {
		id, terr := v.verify(context.Background(), tok, testNow)
		if terr == nil {
			require.NotNil(t, id)
			assert.Equal(t, testIssuer, id.Issuer)
		}
	})
}

func benchToken(b *testing.B, alg jwa.SignatureAlgorithm, key any, kid string) string {
	return benchTokenID(b, alg, key, kid, "j1")
}

func benchTokenID(b *testing.B, alg jwa.SignatureAlgorithm, key any, kid, jti string) string {
	return signToken(b, alg, key, map[string]any{"kid": kid, "typ": "at+jwt"},
		claimsJSON(b, with(baseClaims(), "scope", "read write", "sid", "s1", "jti", jti,
			"client_id", "web", "acr", "urn:mfa", "amr", []string{"pwd"})))
}

// benchVerify is a full verification, without the cache.
func benchVerify(b *testing.B, alg jwa.SignatureAlgorithm, key any, kid string) {
	v := newVerifier(b, nil)
	tok := benchToken(b, alg, key, kid)
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		if _, terr := v.verifyFull(ctx, tok, testNow, nil); terr != nil {
			b.Fatal(terr)
		}
	}
}

func BenchmarkVerifyES256(b *testing.B) { benchVerify(b, jwa.ES256, keys(b).ec, "ec1") }
func BenchmarkVerifyRS256(b *testing.B) { benchVerify(b, jwa.RS256, keys(b).rsa, "rsa1") }

// benchFirstSeen is what a token never seen before costs the engine's
// verifier: a cache miss, the full verification and the insertion that
// evicts another token. Two tokens alternate through a cache of one, so
// every lookup misses.
func benchFirstSeen(b *testing.B, alg jwa.SignatureAlgorithm, key any, kid string) {
	v := newVerifier(b, nil)
	v.cache = newTokenCache(1)
	toks := [2]string{
		benchTokenID(b, alg, key, kid, "j1"),
		benchTokenID(b, alg, key, kid, "j2"),
	}
	ctx := context.Background()
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		if _, terr := v.verify(ctx, toks[i&1], testNow); terr != nil {
			b.Fatal(terr)
		}
		i++
	}
}

// BenchmarkFirstSeenTokenES256 compares with BenchmarkJWXParseVerifyES256.
func BenchmarkFirstSeenTokenES256(b *testing.B) {
	benchFirstSeen(b, jwa.ES256, keys(b).ec, "ec1")
}

// BenchmarkFirstSeenTokenRS256 compares with BenchmarkJWXParseVerifyRS256.
func BenchmarkFirstSeenTokenRS256(b *testing.B) {
	benchFirstSeen(b, jwa.RS256, keys(b).rsa, "rsa1")
}

// BenchmarkCachedToken is a token verified before: a cache hit, the key
// looked up again and the lifetime, issuer and audience checked.
func BenchmarkCachedToken(b *testing.B) {
	v := newVerifier(b, nil)
	tok := benchToken(b, jwa.ES256, keys(b).ec, "ec1")
	ctx := context.Background()
	_, terr := v.verify(ctx, tok, testNow)
	require.Nil(b, terr)
	b.ReportAllocs()
	for b.Loop() {
		if _, terr := v.verify(ctx, tok, testNow); terr != nil {
			b.Fatal(terr)
		}
	}
}

// benchJWX is the same work with bare jwx, for comparison: jwt.Parse with
// the key set, validating iss, aud and the lifetime.
func benchJWX(b *testing.B, alg jwa.SignatureAlgorithm, key any, kid string) {
	f := keys(b)
	tok := []byte(benchToken(b, alg, key, kid))
	clock := jwt.ClockFunc(func() time.Time { return testNow })
	b.ReportAllocs()
	for b.Loop() {
		_, err := jwt.Parse(tok, jwt.WithKeySet(f.set, jws.WithInferAlgorithmFromKey(true)),
			jwt.WithIssuer(testIssuer), jwt.WithAudience(testAudience),
			jwt.WithClock(clock), jwt.WithAcceptableSkew(time.Minute))
		if err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkJWXParseVerifyES256(b *testing.B) { benchJWX(b, jwa.ES256, keys(b).ec, "ec1") }
func BenchmarkJWXParseVerifyRS256(b *testing.B) { benchJWX(b, jwa.RS256, keys(b).rsa, "rsa1") }

func TestVerifyType(t *testing.T) {
	f := keys(t)
	payload := claimsJSON(t, baseClaims())
	typed := func(typ string) string {
		hdr := map[string]any{"kid": "ec1"}
		if typ != "" {
			hdr["typ"] = typ
		}
		return signToken(t, jwa.ES256, f.ec, hdr, payload)
	}
	src, err := StaticKeys(f.set)
	require.NoError(t, err)
	strict, err := newTokenVerifier(&TokenConfig{Issuer: testIssuer,
		Audience: []string{testAudience}, Keys: src, Types: []string{"at+JWT"}})
	require.NoError(t, err)
	tests := []struct {
		typ            string
		lenient, exact string // "" accepted, else the refusal's detail
	}{
		{"", "", "token type not accepted"},
		{"JWT", "", "token type not accepted"},
		{"at+jwt", "", ""},
		{"application/AT+JWT", "", ""},
		{"secevent+jwt", "not an access token: typ secevent+jwt", "token type not accepted"},
		{"application/logout+JWT", "not an access token: typ logout+jwt",
			"token type not accepted"},
		{"dpop+jwt", "not an access token: typ dpop+jwt", "token type not accepted"},
	}
	for _, tt := range tests {
		t.Run(tt.typ, func(t *testing.T) {
			for _, c := range []struct {
				v    *tokenVerifier
				want string
			}{{newVerifier(t, nil), tt.lenient}, {strict, tt.exact}} {
				id, terr := c.v.verify(context.Background(), typed(tt.typ), testNow)
				if c.want == "" {
					require.Nil(t, terr)
					assert.Equal(t, "alice", id.Subject)
					continue
				}
				require.NotNil(t, terr)
				assert.Equal(t, CodeTokenType, terr.Code)
				assert.Equal(t, c.want, terr.Detail)
			}
		})
	}

	_, err = newTokenVerifier(&TokenConfig{Issuer: testIssuer,
		Audience: []string{testAudience}, Keys: src, Types: []string{""}})
	var ce *ConfigError
	require.ErrorAs(t, err, &ce)
	assert.Equal(t, "Token.Types", ce.Field)
}
