package runtimeid

import (
	"context"
	"hash/maphash"
	"strings"
	"sync"
	"time"

	"github.com/hashicorp/golang-lru/v2/simplelru"
)

// DefaultTokenCacheSize is how many verified tokens an [Engine]
// remembers, so that a token presented again skips its signature check.
// At about 2 KiB per token (the token, its claims and its [Identity]),
// the cache stays under 20 MiB. [TokenConfig.CacheSize] changes it.
const DefaultTokenCacheSize = 10_000

// tokenCache remembers tokens whose signature and claims were verified.
// A hit still checks, as of now, the lifetime, issuer and audience, and
// that the key which verified the token is still the one its kid names:
// a key removed from the set or replaced by a refresh refuses its tokens
// exactly as before. [IdentityValidator]s run on every request whatever
// the cache says, so pushed revocations and proof of possession are
// unaffected.
//
// Entries are found by a hash of the token under a random per-engine
// seed, but a hit is taken only when the whole token is equal: two
// tokens never share an entry, whatever the hash. The cached [Identity]
// is shared by every evaluation of the same token and must not be
// changed.
type tokenCache struct {
	seed maphash.Seed

	// mu guards entries: the LRU list is reordered by every read.
	mu      sync.Mutex
	entries *simplelru.LRU[uint64, *cachedToken]
}

// cachedToken is one verified token.
type cachedToken struct {
	raw string     // the whole token, compared on every hit
	id  *Identity  // shared and read-only
	key *pinnedKey // the key that verified the signature
	kid string     // the header's kid, to look the key up again
}

func newTokenCache(size int) *tokenCache {
	l, err := simplelru.NewLRU[uint64, *cachedToken](size, nil)
	if err != nil {
		// Only a size below one fails, and callers pass a constant.
		panic("runtimeid: token cache: " + err.Error())
	}
	return &tokenCache{seed: maphash.MakeSeed(), entries: l}
}

// get returns the entry for raw, or nil.
func (c *tokenCache) get(raw string) *cachedToken {
	h := maphash.String(c.seed, raw)
	c.mu.Lock()
	e, ok := c.entries.Get(h)
	c.mu.Unlock()
	if !ok || e.raw != raw {
		return nil
	}
	return e
}

// add remembers a verified token. The token is copied: raw may be a
// slice of a request header that would otherwise stay alive with it.
func (c *tokenCache) add(raw, kid string, pk *pinnedKey, id *Identity) {
	e := &cachedToken{raw: strings.Clone(raw), id: id, key: pk, kid: kid}
	h := maphash.String(c.seed, raw)
	c.mu.Lock()
	c.entries.Add(h, e)
	c.mu.Unlock()
}

// remove forgets raw.
func (c *tokenCache) remove(raw string) {
	h := maphash.String(c.seed, raw)
	c.mu.Lock()
	defer c.mu.Unlock()
	if e, ok := c.entries.Peek(h); ok && e.raw == raw {
		c.entries.Remove(h)
	}
}

// removeIf forgets every token whose identity matches, and returns how
// many it forgot. It walks the whole cache under the lock.
func (c *tokenCache) removeIf(match func(*Identity) bool) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	n := 0
	for _, h := range c.entries.Keys() {
		if e, ok := c.entries.Peek(h); ok && match(e.id) {
			c.entries.Remove(h)
			n++
		}
	}
	return n
}

// cached answers raw from the cache: ok is false when the token must be
// verified in full. A token that no longer passes the lifetime check is
// forgotten and refused with the same error as a full verification.
func (v *tokenVerifier) cached(
	ctx context.Context, raw string, now time.Time,
) (id *Identity, terr *TokenError, ok bool) {
	e := v.cache.get(raw)
	if e == nil {
		return nil, nil, false
	}

	// The kid must still name the very key that verified the token;
	// otherwise verify in full, which refuses it or caches it afresh.
	pk, err := v.lookup(ctx, e.kid)
	if err != nil || pk != e.key {
		v.cache.remove(raw)
		return nil, nil, false
	}

	if terr := v.check(e.id, now); terr != nil {
		v.cache.remove(raw)
		return nil, terr, true
	}
	return e.id, nil, true
}

// ForgetToken drops one access token from the engine's cache of
// verified tokens, so that its next use is verified in full. Revocation
// is still the job of an [IdentityValidator], which runs on every
// request, cached or not; forgetting only frees the memory early.
func (e *Engine) ForgetToken(token string) {
	if e.verifier != nil && e.verifier.cache != nil {
		e.verifier.cache.remove(token)
	}
}

// ForgetSubject drops every cached token of the subject and returns how
// many it dropped. It walks the whole cache while holding its lock, so
// call it on a revocation event, not per request.
func (e *Engine) ForgetSubject(subject string) int {
	return e.forget(func(id *Identity) bool { return id.Subject == subject })
}

// ForgetSession drops every cached token of the session (the sid claim)
// and returns how many it dropped, as [Engine.ForgetSubject] does.
func (e *Engine) ForgetSession(sid string) int {
	if sid == "" {
		return 0
	}
	return e.forget(func(id *Identity) bool { return id.SessionID == sid })
}

func (e *Engine) forget(match func(*Identity) bool) int {
	if e.verifier == nil || e.verifier.cache == nil {
		return 0
	}
	return e.verifier.cache.removeIf(match)
}
