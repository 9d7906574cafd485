package runtimeid

import (
	"encoding/json"
	"sync"

	"github.com/hashicorp/golang-lru/v2/simplelru"
	"github.com/lestrrat-go/jwx/v2/jwa"
)

// DPoP proof keys are cached by their JSON: a client signs every proof
// with one key, and parsing it and computing its thumbprint cost about a
// fifth of a proof's check. Only keys that parsed, suit their algorithm
// and hold no private member are cached; the JSON is compared whole, so
// a hit is the same key.
const (
	// proofKeyCacheSize bounds the cache: the number of distinct client
	// keys whose parse is saved.
	proofKeyCacheSize = 1024

	// maxCachedProofKey is the largest jwk JSON cached, in bytes; an
	// RSA-4096 public key takes about 750.
	maxCachedProofKey = 2048
)

// checkedProofKey is a parsed, checked DPoP proof key.
type checkedProofKey struct {
	raw any    // the public key, for signature checks
	jkt string // its RFC 7638 thumbprint, base64url
}

// proofKeys is the cache. It is safe for concurrent use.
type proofKeys struct {
	mu  sync.Mutex
	lru *simplelru.LRU[string, *checkedProofKey]
}

func newProofKeys() *proofKeys {
	lru, err := simplelru.NewLRU[string, *checkedProofKey](proofKeyCacheSize, nil)
	if err != nil {
		panic("runtimeid: proof key cache: " + err.Error()) // size is a positive constant
	}
	return &proofKeys{lru: lru}
}

// get returns the checked key data holds for alg, from the cache or
// parsed afresh.
func (c *proofKeys) get(data json.RawMessage,
	alg jwa.SignatureAlgorithm) (*checkedProofKey, *TokenError) {
	id := string(alg) + "\x00" + string(data)
	c.mu.Lock()
	pk, ok := c.lru.Get(id)
	c.mu.Unlock()
	if ok {
		return pk, nil
	}
	key, raw, terr := publicJWK(data, alg)
	if terr != nil {
		return nil, terr
	}
	jkt, err := JWKThumbprint(key)
	if err != nil {
		return nil, invalidProof("bad DPoP jwk", err)
	}
	pk = &checkedProofKey{raw: raw, jkt: jkt}
	if len(data) <= maxCachedProofKey {
		c.mu.Lock()
		c.lru.Add(id, pk)
		c.mu.Unlock()
	}
	return pk, nil
}

// len returns the number of cached keys.
func (c *proofKeys) len() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.lru.Len()
}
