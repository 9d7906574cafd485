package ssf

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/json"
	"testing"
	"time"

	"github.com/lestrrat-go/jwx/v2/jwa"
	"github.com/lestrrat-go/jwx/v2/jwk"
	"github.com/lestrrat-go/jwx/v2/jws"
	"github.com/stretchr/testify/require"

	"github.com/runtimeid/runtimeid"
)

const (
	txIssuer   = "https://idp.test.example/"
	rxAudience = "https://app.test.example/ssf"
	tokIssuer  = "https://idp.test.example"
)

// t0 is the tests' fixed now.
var t0 = time.Date(2026, 12, 4, 12, 0, 0, 0, time.UTC)

// signer holds a transmitter's ES256 key.
type signer struct {
	priv jwk.Key
	set  jwk.Set // public
	keys runtimeid.KeySource
}

func newSigner(t testing.TB, kid string) *signer {
	t.Helper()
	ec, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	require.NoError(t, err)
	priv, err := jwk.FromRaw(ec)
	require.NoError(t, err)
	require.NoError(t, priv.Set(jwk.KeyIDKey, kid))
	require.NoError(t, priv.Set(jwk.AlgorithmKey, jwa.ES256))
	pub, err := priv.PublicKey()
	require.NoError(t, err)
	set := jwk.NewSet()
	require.NoError(t, set.AddKey(pub))
	keys, err := runtimeid.StaticKeys(set)
	require.NoError(t, err)
	return &signer{priv: priv, set: set, keys: keys}
}

// sign makes a SET of claims with header typ (empty: secevent+jwt).
func (s *signer) sign(t testing.TB, typ string, claims map[string]any) []byte {
	t.Helper()
	if typ == "" {
		typ = TypeSET
	}
	payload, err := json.Marshal(claims)
	require.NoError(t, err)
	h := jws.NewHeaders()
	require.NoError(t, h.Set(jws.TypeKey, typ))
	out, err := jws.Sign(payload, jws.WithKey(jwa.ES256, s.priv, jws.WithProtectedHeaders(h)))
	require.NoError(t, err)
	return out
}

// claims returns SET claims for one event about sub, issued at t0.
func claims(jti, typ string, sub SubjectID, event map[string]any) map[string]any {
	if event == nil {
		event = map[string]any{}
	}
	return map[string]any{
		"iss":    txIssuer,
		"aud":    rxAudience,
		"iat":    t0.Unix(),
		"jti":    jti,
		"sub_id": sub,
		"events": map[string]any{typ: event},
	}
}

// identity is a verified identity as the engine would pass it.
func identity(sub, sid string, iat time.Time) *runtimeid.Identity {
	return &runtimeid.Identity{
		Subject: sub, SessionID: sid, Issuer: tokIssuer, IssuedAt: iat,
		Claims: map[string]any{"email": "Alice@Example.com"},
	}
}

func evaluation(id *runtimeid.Identity) *runtimeid.Evaluation {
	return &runtimeid.Evaluation{Time: t0, Identity: id}
}
