package runtimeid

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/json"
	"strings"
	"testing"

	"github.com/lestrrat-go/jwx/v2/jwa"
	"github.com/lestrrat-go/jwx/v2/jwk"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func publicJWKJSON(t *testing.T) json.RawMessage {
	t.Helper()
	priv, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	require.NoError(t, err)
	k, err := jwk.FromRaw(priv.Public())
	require.NoError(t, err)
	data, err := json.Marshal(k)
	require.NoError(t, err)
	return data
}

func TestProofKeysCache(t *testing.T) {
	c := newProofKeys()
	data := publicJWKJSON(t)

	first, terr := c.get(data, jwa.ES256)
	require.Nil(t, terr)
	again, terr := c.get(data, jwa.ES256)
	require.Nil(t, terr)
	assert.Same(t, first, again, "the same JSON is parsed once")
	key, err := jwk.ParseKey(data)
	require.NoError(t, err)
	want, err := JWKThumbprint(key)
	require.NoError(t, err)
	assert.Equal(t, want, first.jkt)

	// The algorithm is part of the entry: the key does not suit ES384.
	_, terr = c.get(data, jwa.ES384)
	require.NotNil(t, terr)
	assert.Equal(t, "DPoP jwk does not suit the algorithm", terr.Detail)

	// Refused keys are never cached; nor is an oversized one.
	_, terr = c.get(json.RawMessage(`{"kty":"oct","k":"c2VjcmV0"}`), jwa.ES256)
	assert.Equal(t, "DPoP jwk holds a private key", terr.Detail)
	var m map[string]any
	require.NoError(t, json.Unmarshal(data, &m))
	m["pad"] = strings.Repeat("x", maxCachedProofKey)
	big, err := json.Marshal(m)
	require.NoError(t, err)
	_, terr = c.get(big, jwa.ES256)
	require.Nil(t, terr)
	assert.Equal(t, 1, c.len())

	// Many keys leave the cache at its bound.
	for range proofKeyCacheSize + 10 {
		_, terr := c.get(publicJWKJSON(t), jwa.ES256)
		require.Nil(t, terr)
	}
	assert.Equal(t, proofKeyCacheSize, c.len())
}
