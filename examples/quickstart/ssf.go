package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/runtimeid/runtimeid"
	"github.com/runtimeid/runtimeid/signals/ssf"
)

// newSSF builds the push receiver of -ssf-issuer, -ssf-jwks and
// -ssf-audience, writing into state, or nil when none is given.
func newSSF(ctx context.Context, o options, state ssf.Store, now func() time.Time,
	logger *slog.Logger) (*ssf.Receiver, error) {
	if o.ssfIssuer == "" && o.ssfJWKS == "" && o.ssfAudience == "" && o.ssfKeys == nil {
		return nil, nil
	}
	if o.ssfIssuer == "" || o.ssfAudience == "" || o.ssfJWKS == "" && o.ssfKeys == nil {
		return nil, errors.New("-ssf-issuer, -ssf-jwks and -ssf-audience go together")
	}
	keys := o.ssfKeys
	var err error
	switch {
	case keys != nil:
	case isURL(o.ssfJWKS):
		opts := runtimeid.RemoteKeysOptions{Logger: logger}
		keys, err = runtimeid.RemoteKeys(ctx, o.ssfJWKS, opts)
	default:
		keys, err = runtimeid.KeysFromFile(o.ssfJWKS)
	}
	if err != nil {
		return nil, fmt.Errorf("-ssf-jwks: %w", err)
	}
	// The receiver and the engine share one clock, so the demo can replay
	// the past.
	rx, err := ssf.NewReceiver(ssf.ReceiverOptions{
		Issuer:             o.ssfIssuer,
		Audience:           o.ssfAudience,
		Keys:               keys,
		State:              state,
		AuthorizationToken: runtimeid.Secret(o.ssfToken),
		Logger:             logger,
		Now:                now,
	})
	if err != nil {
		return nil, err
	}
	return rx, nil
}
