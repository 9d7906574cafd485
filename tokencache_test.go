package runtimeid

import (
	"context"
	"fmt"
	"hash/maphash"
	"runtime"
	"testing"
	"time"

	"github.com/lestrrat-go/jwx/v2/jwa"
	"github.com/lestrrat-go/jwx/v2/jwk"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// cachedEngine is an engine over the fixture keys with a token cache,
// allowing everything.
func cachedEngine(t *testing.T, now *time.Time, vs ...IdentityValidator) *Engine {
	t.Helper()
	src, err := StaticKeys(keys(t).set)
	require.NoError(t, err)
	e, err := New(Config{
		Token:      TokenConfig{Issuer: testIssuer, Audience: []string{testAudience}, Keys: src},
		Validators: vs,
		Policy:     policyFunc(allow),
		Now:        func() time.Time { return *now },
	})
	require.NoError(t, err)
	require.NotNil(t, e.verifier.cache)
	return e
}

func evalToken(t *testing.T, e *Engine, tok string) (*Evaluation, *TokenError) {
	t.Helper()
	ev, err := e.Evaluate(context.Background(), Input{Token: tok})
	if err == nil {
		return ev, nil
	}
	te, ok := err.(*TokenError)
	require.True(t, ok, "error %v is not a token error", err)
	return ev, te
}

func TestTokenCacheHitSharesIdentity(t *testing.T) {
	now := testNow
	e := cachedEngine(t, &now)
	tok := es256(t, with(baseClaims(), "sid", "s1"))

	first, terr := evalToken(t, e, tok)
	require.Nil(t, terr)
	second, terr := evalToken(t, e, tok)
	require.Nil(t, terr)

	assert.Same(t, first.Identity, second.Identity)
	assert.Equal(t, 1, e.verifier.cache.entries.Len())
}

// TestTokenCacheLifetime checks that a cached token is refused exactly
// when a fresh verification would refuse it, on both sides of the skew.
func TestTokenCacheLifetime(t *testing.T) {
	exp := testNow.Add(5 * time.Minute)
	tests := []struct {
		name string
		now  time.Time
		code string // "" when accepted
	}{
		{"inside lifetime", testNow.Add(time.Minute), ""},
		{"exp within skew", exp.Add(59 * time.Second), ""},
		{"exp at skew", exp.Add(60 * time.Second), CodeTokenExpired},
		{"before iat beyond skew", testNow.Add(-2 * time.Minute), CodeTokenIssuedLater},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			now := testNow
			e := cachedEngine(t, &now)
			tok := es256(t, baseClaims())
			_, terr := evalToken(t, e, tok)
			require.Nil(t, terr)

			now = tt.now
			_, terr = evalToken(t, e, tok)
			if tt.code == "" {
				assert.Nil(t, terr)
				assert.Equal(t, 1, e.verifier.cache.entries.Len())
				return
			}
			require.NotNil(t, terr)
			assert.Equal(t, tt.code, terr.Code)
			assert.Equal(t, 0, e.verifier.cache.entries.Len())
		})
	}
}

// TestTokenCacheKeyRemoved checks that a token verified by a key which
// is no longer in the key source is refused, cache or not.
func TestTokenCacheKeyRemoved(t *testing.T) {
	now := testNow
	e := cachedEngine(t, &now)
	tok := es256(t, baseClaims())
	_, terr := evalToken(t, e, tok)
	require.Nil(t, terr)

	f := keys(t)
	src, err := StaticKeys(publicSet(t, map[string]any{"rsa1": f.rsa.Public()}))
	require.NoError(t, err)
	e.verifier.cfg.Keys = src

	_, terr = evalToken(t, e, tok)
	require.NotNil(t, terr)
	assert.Equal(t, CodeTokenUnknownKey, terr.Code)
	assert.Equal(t, 0, e.verifier.cache.entries.Len())
}

// TestTokenCacheValidatorsRunOnHit checks that a revocation seen by a
// validator refuses a token the cache already holds.
func TestTokenCacheValidatorsRunOnHit(t *testing.T) {
	now := testNow
	calls := 0
	revokeSecond := validatorFunc(func(*Evaluation) error {
		calls++
		if calls > 1 {
			return &TokenError{Code: CodeTokenRevoked, Detail: "revoked"}
		}
		return nil
	})
	e := cachedEngine(t, &now, revokeSecond)
	tok := es256(t, baseClaims())

	_, terr := evalToken(t, e, tok)
	require.Nil(t, terr)
	ev, terr := evalToken(t, e, tok)
	require.NotNil(t, terr)
	assert.Equal(t, CodeTokenRevoked, terr.Code)
	assert.Equal(t, Decision{Outcome: Block, Rule: "token", Reason: CodeTokenRevoked}, ev.Decision)
	assert.Equal(t, 2, calls)
}

func TestTokenCacheRefusedTokensAreNotCached(t *testing.T) {
	now := testNow
	e := cachedEngine(t, &now)
	tok := es256(t, with(baseClaims(), "aud", "someone-else"))
	for range 2 {
		_, terr := evalToken(t, e, tok)
		require.NotNil(t, terr)
		assert.Equal(t, CodeTokenAudience, terr.Code)
	}
	assert.Equal(t, 0, e.verifier.cache.entries.Len())
}

func TestTokenCacheForget(t *testing.T) {
	now := testNow
	e := cachedEngine(t, &now)
	alice1 := es256(t, with(baseClaims(), "sid", "s1"))
	alice2 := es256(t, with(baseClaims(), "sid", "s2"))
	bob := es256(t, with(baseClaims(), "sub", "bob", "sid", "s3"))
	for _, tok := range []string{alice1, alice2, bob} {
		_, terr := evalToken(t, e, tok)
		require.Nil(t, terr)
	}
	c := e.verifier.cache

	assert.Equal(t, 0, e.ForgetSession(""))
	assert.Equal(t, 1, e.ForgetSession("s2"))
	assert.Nil(t, c.get(alice2))
	assert.Equal(t, 1, e.ForgetSubject("alice"))
	assert.Nil(t, c.get(alice1))
	assert.Equal(t, 0, e.ForgetSubject("alice"))

	e.ForgetToken(alice1) // absent: nothing happens
	require.NotNil(t, c.get(bob))
	e.ForgetToken(bob)
	assert.Equal(t, 0, c.entries.Len())
}

// TestTokenCacheHashCollision checks that an entry found under another
// token's hash is never taken for it.
func TestTokenCacheHashCollision(t *testing.T) {
	c := newTokenCache(4)
	c.add("token-a", "k", nil, &Identity{Subject: "alice"})
	h := maphash.String(c.seed, "token-b")
	e, _ := c.entries.Peek(maphash.String(c.seed, "token-a"))
	c.entries.Add(h, e)

	assert.Nil(t, c.get("token-b"))
	c.remove("token-b")
	assert.Equal(t, 2, c.entries.Len())
	require.NotNil(t, c.get("token-a"))
	assert.Equal(t, "alice", c.get("token-a").id.Subject)
}

func TestTokenCacheBounded(t *testing.T) {
	c := newTokenCache(2)
	for _, tok := range []string{"a", "b", "c"} {
		c.add(tok, "", nil, &Identity{Subject: tok})
	}
	assert.Equal(t, 2, c.entries.Len())
	assert.Nil(t, c.get("a"))
	assert.NotNil(t, c.get("c"))
}

func TestTokenCacheOnlyForPinnedSources(t *testing.T) {
	src := funcKeys(func(string) (jwk.Key, jwa.SignatureAlgorithm, error) {
		return nil, "", ErrKeys
	})
	v := newVerifier(t, src)
	assert.Nil(t, v.cache)
}

// BenchmarkTokenCacheMemory reports the heap held per cached token
// (B/token) when the cache is full of typical tokens. Run it with
// -benchtime 1x.
func BenchmarkTokenCacheMemory(b *testing.B) {
	const n = DefaultTokenCacheSize
	toks := make([]string, n)
	for i := range toks {
		toks[i] = benchTokenID(b, jwa.ES256, keys(b).ec, "ec1", fmt.Sprintf("jti-%06d", i))
	}
	ctx := context.Background()
	for b.Loop() {
		before := heapAlloc()
		v := newVerifier(b, nil)
		for _, tok := range toks {
			_, terr := v.verify(ctx, tok, testNow)
			require.Nil(b, terr)
		}
		held := heapAlloc() - before
		require.Equal(b, n, v.cache.entries.Len())
		b.ReportMetric(float64(held)/n, "B/token")
		runtime.KeepAlive(v)
	}
}

func heapAlloc() uint64 {
	var m runtime.MemStats
	runtime.GC()
	runtime.GC()
	runtime.ReadMemStats(&m)
	return m.HeapAlloc
}
