package ssf

import (
	"context"
	"time"

	"github.com/runtimeid/runtimeid"
)

// maxIdentityKeys is the most keys an identity is looked up by.
const maxIdentityKeys = 6

// Validator refuses tokens that pushed events revoked. It implements
// [runtimeid.IdentityValidator]: add it to [runtimeid.Config.Validators].
//
// It looks up the identity's keys (see [Key]) and refuses the token
// with [runtimeid.CodeTokenRevoked] when one of them is blocked
// (session revoked, account disabled or purged, credential compromised,
// token revoked), or when the token was issued at or before a credential
// change or a revocation of the user's sessions. A token without an iat
// is refused then too: nothing proves it is newer. The detail names the
// reason, such as "account disabled".
//
// It trusts the store, and does no I/O if the store does none. It
// never fails otherwise; an identity that matches nothing passes.
type Validator struct {
	store Store
}

var _ runtimeid.IdentityValidator = (*Validator)(nil)

// NewValidator returns a validator over store.
func NewValidator(store Store) *Validator {
	return &Validator{store: store}
}

// Validate implements [runtimeid.IdentityValidator].
func (v *Validator) Validate(_ context.Context, ev *runtimeid.Evaluation) error {
	id := ev.Identity
	if id == nil {
		return nil
	}
	var buf [maxIdentityKeys]Key
	for _, k := range identityKeys(id, buf[:0]) {
		f, ok := v.store.Lookup(k, ev.Time)
		if !ok {
			continue
		}
		if reason := refusal(f, id.IssuedAt); reason != "" {
			return &runtimeid.TokenError{
				Code:   runtimeid.CodeTokenRevoked,
				Detail: reason,
			}
		}
	}
	return nil
}

// refusal is why facts refuse a token issued at iat, or "".
func refusal(f *Facts, iat time.Time) string {
	switch {
	case f.Blocked != "":
		return f.Blocked
	case f.RevokedBefore.IsZero():
		return ""
	case iat.IsZero():
		return f.RevokeReason + "; token has no iat"
	case !iat.After(f.RevokedBefore):
		return f.RevokeReason
	}
	return ""
}
