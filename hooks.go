package runtimeid

import (
	"context"
	"log/slog"
	"time"
)

// IdentityValidator checks the verified identity against the request
// before any signal is collected: proof of possession (DPoP, mTLS),
// revocations pushed by the identity provider, a session's state.
//
// Validate runs once per evaluation, in the order of [Config.Validators],
// right after the token's signature and claims were verified. It returns
// a [*TokenError] to refuse the token (the client gets 401 and no later
// stage runs); any other error, or a panic, fails the evaluation closed.
// A validator that verified the token's key binding (the cnf claim) sets
// [Credential.BindingVerified]. It also runs for an evaluation that
// reuses an earlier one's identity ([Evaluation.Reused]); a validator of
// a single-use proof then returns nil. It must be safe for concurrent use and should do no I/O
// on the request path.
type IdentityValidator interface {
	Validate(ctx context.Context, ev *Evaluation) error
}

// StepUpSource reports step-ups completed outside the token: a passkey or
// one-time code answered in a step-up page that records its result for the
// session instead of issuing a new token.
//
// StepUp returns the acr achieved and when, for the identity's session:
// a recorded step-up that meets want when the source has one, else the
// latest it has, else ok false. want is the challenge's requirement; a
// source that keeps several step-ups per session uses it so that a later,
// weaker step-up (a code) does not hide an earlier, stronger one (a
// passkey). Among step-ups whose acr want accepts, the latest is the one
// most likely to meet want.MaxAge. A nil want accepts any step-up.
//
// The engine accepts a recorded step-up for a challenge exactly as it
// would accept the token's own acr and auth_time. It must be safe for
// concurrent use and must not block.
type StepUpSource interface {
	StepUp(ctx context.Context, id *Identity, want *StepUp) (acr string, at time.Time, ok bool)
}

// Credential is how the access token was presented.
type Credential struct {
	// Scheme is the Authorization scheme in canonical case, "Bearer" or
	// "DPoP", or "" when the token did not come from a header.
	Scheme string

	// Token is the raw access token. It is a [Secret]: it never prints.
	Token Secret

	// BindingVerified is set by the [IdentityValidator] that checked the
	// token's cnf claim against the request (RFC 9449 DPoP, RFC 8705
	// mTLS). A token with a cnf claim that no validator verified is
	// refused with [CodeTokenBinding]: a bound token whose binding is not
	// checked would be as easy to replay as a bearer token.
	BindingVerified bool
}

// Secret is a string that must not reach a log: it formats as
// "[redacted]" with fmt and slog. Reveal returns the value.
type Secret string

// String returns "[redacted]".
func (Secret) String() string { return "[redacted]" }

// LogValue returns "[redacted]".
func (Secret) LogValue() slog.Value { return slog.StringValue("[redacted]") }

// Reveal returns the secret itself.
func (s Secret) Reveal() string { return string(s) }
