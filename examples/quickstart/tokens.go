package main

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/base64"
	"time"

	"github.com/lestrrat-go/jwx/v2/jwa"
	"github.com/lestrrat-go/jwx/v2/jwk"
	"github.com/lestrrat-go/jwx/v2/jwt"
)

// issuer plays the identity provider when no -jwks is given: it holds a
// fresh ES256 key and mints tokens for the sample commands and the demo.
type issuer struct {
	iss, aud string
	key      jwk.Key
	public   jwk.Set
}

func newIssuer(iss, aud string) (*issuer, error) {
	priv, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	key, err := jwk.FromRaw(priv)
	if err != nil {
		return nil, err
	}
	if err := key.Set(jwk.KeyIDKey, "quickstart-1"); err != nil {
		return nil, err
	}
	if err := key.Set(jwk.AlgorithmKey, jwa.ES256); err != nil {
		return nil, err
	}
	pub, err := key.PublicKey()
	if err != nil {
		return nil, err
	}
	set := jwk.NewSet()
	if err := set.AddKey(pub); err != nil {
		return nil, err
	}
	return &issuer{iss: iss, aud: aud, key: key, public: set}, nil
}

// grant describes a token to mint.
type grant struct {
	sub, sid, acr string
	issued        time.Time
	authTime      time.Time // zero: no auth_time claim
	ttl           time.Duration
	jkt           string // binds the token to a DPoP key (cnf.jkt)
}

// login mints the token of a login that happened age before now, as
// the sample commands and the sign-in page hand out: a fresh login
// (age zero) carries the quickstart's MFA acr, an older one none.
func (is *issuer) login(sub, sid string, now time.Time, age time.Duration) (string, error) {
	g := grant{sub: sub, sid: sid, issued: now, authTime: now.Add(-age)}
	if age == 0 {
		g.acr = "urn:quickstart:mfa"
	}
	return is.mint(g)
}

func (is *issuer) mint(g grant) (string, error) {
	if g.ttl == 0 {
		g.ttl = time.Hour
	}
	b := jwt.NewBuilder().
		Issuer(is.iss).
		Audience([]string{is.aud}).
		Subject(g.sub).
		IssuedAt(g.issued).
		Expiration(g.issued.Add(g.ttl)).
		JwtID(newJTI()).
		Claim("sid", g.sid).
		Claim("scope", "orders profile transfers")
	if !g.authTime.IsZero() {
		b = b.Claim("auth_time", g.authTime.Unix())
	}
	if g.jkt != "" {
		b = b.Claim("cnf", map[string]any{"jkt": g.jkt})
	}
	if g.acr != "" {
		b = b.Claim("acr", g.acr)
	}
	tok, err := b.Build()
	if err != nil {
		return "", err
	}
	signed, err := jwt.Sign(tok, jwt.WithKey(jwa.ES256, is.key))
	return string(signed), err
}

// newJTI returns a random token id: two tokens never share one.
func newJTI() string {
	var b [12]byte
	rand.Read(b[:])
	return base64.RawURLEncoding.EncodeToString(b[:])
}
