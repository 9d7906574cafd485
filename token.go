package runtimeid

import (
	"context"
	"time"
)

// tokenVerifier verifies access tokens. STUB: being written.
type tokenVerifier struct{ cfg *TokenConfig }

func newTokenVerifier(cfg *TokenConfig) (*tokenVerifier, error) {
	return &tokenVerifier{cfg: cfg}, nil
}

func (v *tokenVerifier) verify(ctx context.Context, raw string, now time.Time) (*Identity, *TokenError) {
	return nil, &TokenError{Code: CodeTokenMalformed}
}
