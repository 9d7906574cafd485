package shop

import (
	"fmt"
	"time"

	"github.com/lestrrat-go/jwx/v2/jwa"
	"github.com/lestrrat-go/jwx/v2/jwk"
	"github.com/lestrrat-go/jwx/v2/jwt"

	"github.com/runtimeid/runtimeid/internal/conformance/demo"
)

// Issuer plays the identity provider of the examples: it holds a fresh
// ES256 key and mints access tokens, for users and for agents acting
// for them (RFC 8693 act claim).
type Issuer struct {
	Issuer, Audience string
	Public           jwk.Set
	key              jwk.Key
}

// NewIssuer makes a key.
func NewIssuer(iss, aud string) (*Issuer, error) {
	key, set, err := demo.SigningKey("shop-1")
	if err != nil {
		return nil, err
	}
	return &Issuer{Issuer: iss, Audience: aud, Public: set, key: key}, nil
}

// Grant describes a token.
type Grant struct {
	Subject, SessionID string
	Issued, AuthTime   time.Time // AuthTime zero: no auth_time claim

	// Actor and ActorClient make a delegated token: the agent acting
	// for Subject.
	Actor, ActorClient string
}

// Mint signs a token valid for one hour.
func (is *Issuer) Mint(g Grant) (string, error) {
	b := jwt.NewBuilder().Issuer(is.Issuer).Audience([]string{is.Audience}).
		Subject(g.Subject).IssuedAt(g.Issued).Expiration(g.Issued.Add(time.Hour)).
		JwtID(fmt.Sprintf("%s-%d", g.SessionID, g.Issued.UnixNano())).
		Claim("sid", g.SessionID).Claim("scope", "orders profile customers transfers")
	if !g.AuthTime.IsZero() {
		b = b.Claim("auth_time", g.AuthTime.Unix())
	}
	if g.Actor != "" {
		b = b.Claim("act", map[string]any{"sub": g.Actor, "client_id": g.ActorClient})
		b = b.Claim("client_id", g.ActorClient)
	}
	tok, err := b.Build()
	if err != nil {
		return "", err
	}
	signed, err := jwt.Sign(tok, jwt.WithKey(jwa.ES256, is.key))
	return string(signed), err
}
