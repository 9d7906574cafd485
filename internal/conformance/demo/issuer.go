// Package demo mints tokens and builds engines for the adapter examples
// and the conformance suite: a fresh ES256 key per run, never a real
// identity provider.
package demo

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"fmt"
	"time"

	"github.com/lestrrat-go/jwx/v2/jwa"
	"github.com/lestrrat-go/jwx/v2/jwk"
	"github.com/lestrrat-go/jwx/v2/jwt"
)

// The issuer and audience of the suite's tokens.
const (
	IssuerURL = "https://issuer.test"
	Audience  = "api"
)

// Issuer plays the identity provider: it holds a fresh ES256 key and
// mints access tokens.
type Issuer struct {
	key jwk.Key

	// Public is the key set that verifies the tokens.
	Public jwk.Set
}

// NewIssuer makes a fresh P-256 key.
func NewIssuer() (*Issuer, error) {
	key, set, err := SigningKey("demo-1")
	if err != nil {
		return nil, err
	}
	return &Issuer{key: key, Public: set}, nil
}

// SigningKey makes a fresh P-256 key pinned to ES256 with the key id
// kid, and the key set of its public half, for an example that plays
// the identity provider.
func SigningKey(kid string) (jwk.Key, jwk.Set, error) {
	priv, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, fmt.Errorf("demo: %w", err)
	}
	key, err := jwk.FromRaw(priv)
	if err != nil {
		return nil, nil, fmt.Errorf("demo: %w", err)
	}
	if err := key.Set(jwk.KeyIDKey, kid); err != nil {
		return nil, nil, fmt.Errorf("demo: %w", err)
	}
	if err := key.Set(jwk.AlgorithmKey, jwa.ES256); err != nil {
		return nil, nil, fmt.Errorf("demo: %w", err)
	}
	pub, err := key.PublicKey()
	if err != nil {
		return nil, nil, fmt.Errorf("demo: %w", err)
	}
	set := jwk.NewSet()
	if err := set.AddKey(pub); err != nil {
		return nil, nil, fmt.Errorf("demo: %w", err)
	}
	return key, set, nil
}

// Grant describes a token to mint.
type Grant struct {
	Subject  string
	Session  string
	Issued   time.Time
	AuthTime time.Time     // zero: no auth_time claim
	TTL      time.Duration // zero: one hour
}

// Mint signs an access token for g.
func (is *Issuer) Mint(g Grant) (string, error) {
	if g.TTL == 0 {
		g.TTL = time.Hour
	}
	b := jwt.NewBuilder().
		Issuer(IssuerURL).
		Audience([]string{Audience}).
		Subject(g.Subject).
		IssuedAt(g.Issued).
		Expiration(g.Issued.Add(g.TTL)).
		Claim("sid", g.Session)
	if !g.AuthTime.IsZero() {
		b = b.Claim("auth_time", g.AuthTime.Unix())
	}
	tok, err := b.Build()
	if err != nil {
		return "", fmt.Errorf("demo: %w", err)
	}
	signed, err := jwt.Sign(tok, jwt.WithKey(jwa.ES256, is.key))
	if err != nil {
		return "", fmt.Errorf("demo: %w", err)
	}
	return string(signed), nil
}

// Tokens mints the two sample tokens the examples print, valid for an
// hour from now: FRESH (alice, authenticated just now) and STALE (alice,
// authenticated an hour ago).
func (is *Issuer) Tokens(now time.Time) (fresh, stale string, err error) {
	fresh, err = is.Mint(Grant{Subject: "alice", Session: "alice-1", Issued: now, AuthTime: now})
	if err != nil {
		return "", "", err
	}
	stale, err = is.Mint(Grant{Subject: "alice", Session: "alice-1", Issued: now,
		AuthTime: now.Add(-time.Hour)})
	return fresh, stale, err
}
