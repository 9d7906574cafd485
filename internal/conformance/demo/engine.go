package demo

import (
	"fmt"
	"io"
	"log/slog"
	"time"

	"github.com/runtimeid/runtimeid"
	"github.com/runtimeid/runtimeid/decision"
	"github.com/runtimeid/runtimeid/policy"
)

// Sensitivities are the examples' route sensitivities.
var Sensitivities = map[string]runtimeid.Sensitivity{
	"GET /api/orders":     runtimeid.Low,
	"POST /api/transfers": runtimeid.High,
}

// NewEngine returns an engine that accepts the issuer's tokens, with the
// default policy, the decision package's enforcer and the examples'
// sensitivities. now nil means [time.Now]; logger nil discards audit
// events.
func NewEngine(is *Issuer, now func() time.Time, logger *slog.Logger) (*runtimeid.Engine, error) {
	keys, err := runtimeid.StaticKeys(is.Public)
	if err != nil {
		return nil, err
	}
	enf, err := decision.NewEnforcer(decision.Options{})
	if err != nil {
		return nil, err
	}
	return runtimeid.New(runtimeid.Config{
		Token: runtimeid.TokenConfig{
			Issuer:   IssuerURL,
			Audience: []string{Audience},
			Keys:     keys,
			// BUG: see the same field in the conformance fixture.
			MaxSize: runtimeid.DefaultMaxTokenSize,
		},
		Policy:        policy.Default(),
		Enforcer:      enf,
		Sensitivities: Sensitivities,
		Logger:        logger,
		Now:           now,
	})
}

// PrintSamples writes the sample tokens and curl commands against base,
// such as "http://127.0.0.1:8081".
func PrintSamples(w io.Writer, is *Issuer, base string) error {
	fresh, stale, err := is.Tokens(time.Now())
	if err != nil {
		return err
	}
	_, err = fmt.Fprintf(w, `export FRESH=%s
export STALE=%s

# allowed: a low-sensitivity read
curl -i %[3]s/api/orders/42 -H "Authorization: Bearer $STALE"
# 401 insufficient_user_authentication, max_age=300: a stale login
curl -i -X POST %[3]s/api/transfers -H "Authorization: Bearer $STALE"
# allowed: a fresh login
curl -i -X POST %[3]s/api/transfers -H "Authorization: Bearer $FRESH"
# 401: no token, even for a route that does not exist
curl -i %[3]s/nope
`, fresh, stale, base)
	return err
}
