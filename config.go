package runtimeid

import (
	"context"
	"log/slog"
	"net/http"
	"time"

	"github.com/lestrrat-go/jwx/v2/jwa"
	"github.com/lestrrat-go/jwx/v2/jwk"
	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/trace"
)

// Defaults for the zero values of [Config] and [TokenConfig].
const (
	DefaultClockSkew    = 60 * time.Second
	MaxClockSkew        = 5 * time.Minute
	DefaultMaxTokenSize = 8 << 10
	DefaultMediumRisk   = 0.3
	DefaultHighRisk     = 0.7
	DefaultStepUpMaxAge = 5 * time.Minute

	// MaxUserAgent is how much of a User-Agent header the engine keeps.
	MaxUserAgent = 512
)

// Config configures an [Engine]. The zero value of every field is safe;
// [New] rejects a config that leaves a required field empty.
type Config struct {
	// Token says how access tokens are verified. Required.
	Token TokenConfig

	// Validators run in order right after the token is verified; they
	// can refuse it. Proof of possession and pushed revocations live here.
	Validators []IdentityValidator

	// StepUps reports step-ups recorded for a session outside the token.
	// Nil means only the token's acr and auth_time count.
	StepUps StepUpSource

	// Collectors run in order and fill [Evaluation.Signals].
	Collectors []SignalCollector

	// Evaluators run in order after the collectors; their findings make
	// up the [Assessment].
	Evaluators []RiskEvaluator

	// Policy decides the outcome. Required: the policy package builds one
	// from CEL rules.
	Policy PolicyEngine

	// Enforcer writes refusals for [Engine.Middleware] and
	// [Engine.Protect]. Required for HTTP use; the decision package has
	// one for APIs and browsers.
	Enforcer Enforcer

	// Logger receives one audit event per decision, at Info for allow and
	// Warn for challenge and block, unless Audit is set. Nil discards
	// them. The event is encoded on the request path.
	Logger *slog.Logger

	// Audit, when set, receives the audit events instead of Logger: the
	// request only captures its event, and the queue's goroutine
	// encodes and writes it (see [AuditQueue] for what happens when the
	// writer falls behind). The caller closes the queue after the server
	// stops. Nil means Logger.
	Audit *AuditQueue

	// TracerProvider and MeterProvider receive a span per evaluation and
	// the decision metrics. Nil means no-op.
	TracerProvider trace.TracerProvider
	MeterProvider  metric.MeterProvider

	// OnDecision, when set, is called with every finished evaluation,
	// after its audit event: to emit a Shared Signals event for a blocked
	// session, to feed a live view, to count. It runs on the request
	// path, must not block and must not change ev; a panic in it is
	// recovered and logged.
	OnDecision func(ctx context.Context, ev *Evaluation)

	// Now is the clock. Nil means [time.Now].
	Now func() time.Time

	// DefaultSensitivity applies to actions that do not state one.
	// The zero value means [Medium].
	DefaultSensitivity Sensitivity

	// Sensitivities maps route patterns, as [Engine.Middleware] sees
	// them ("POST /api/transfers"), to their sensitivity.
	Sensitivities map[string]Sensitivity

	// RoutePattern returns the matched route pattern of a request for
	// [Engine.Middleware]. Nil means [http.Request.Pattern], which the
	// standard ServeMux sets only for handlers it routed to: wrap each
	// route's handler, or use an adapter that knows the router. A request
	// without a pattern is evaluated as the action "unmatched".
	RoutePattern func(*http.Request) string

	// MediumRisk and HighRisk are the score thresholds of the levels.
	// Zero means [DefaultMediumRisk] and [DefaultHighRisk].
	MediumRisk float64
	HighRisk   float64

	// DefaultStepUp is the requirement of a challenge whose rule states
	// none. Its zero value means an authentication within
	// [DefaultStepUpMaxAge], so that a user who steps up is not
	// challenged again by the same rule.
	DefaultStepUp StepUp
}

// TokenConfig says which access tokens are accepted.
type TokenConfig struct {
	// Issuer must equal the token's iss. Required.
	Issuer string

	// Audience lists the accepted audiences; the token's aud, a string or
	// an array, must contain one of them. Required.
	Audience []string

	// Keys provides the verification keys. Required: see [StaticKeys],
	// [KeysFromFile] and [RemoteKeys].
	Keys KeySource

	// ClockSkew is the tolerance on exp, nbf and iat. Zero means
	// [DefaultClockSkew]; more than [MaxClockSkew] is refused.
	ClockSkew time.Duration

	// MaxSize is the largest token accepted, in bytes, checked before
	// parsing. Zero means [DefaultMaxTokenSize].
	MaxSize int

	// Types, when set, lists the accepted values of the token header's
	// typ, such as "at+jwt" (RFC 9068 section 2.1: it tells an access
	// token from an ID token the same issuer signed). A token without
	// typ, or with another, is then refused with [CodeTokenType]. Case
	// and an "application/" prefix do not matter (RFC 7515 section
	// 4.1.9). Empty accepts any typ but those naming another kind of JWT
	// the issuer's keys may sign: "secevent+jwt" (RFC 8417),
	// "logout+jwt" (OpenID back-channel logout) and "dpop+jwt" (RFC 9449).
	Types []string

	// CacheSize bounds the verified-token cache: a token presented again
	// skips its signature check (its lifetime, issuer, audience and key
	// are checked again; validators run every time). Zero means
	// [DefaultTokenCacheSize]; a negative value turns the cache off.
	CacheSize int

	// InsecureSkipAuthentication turns verification off: every request
	// gets a nil identity. For local experiments only.
	InsecureSkipAuthentication bool
}

// KeySource finds the public key that verifies a token, and the one
// algorithm that key is pinned to. The algorithm never comes from the
// token's header.
//
// VerificationKey must be safe for concurrent use and must not block on the
// network when the key is known: remote sources refresh in the background.
// kid is the token's key id and may be empty; a source then returns its
// only key, or an error when it holds several. Errors wrap [ErrKeys], or
// [ErrUnknownKey] when the source has no key with that id.
type KeySource interface {
	VerificationKey(ctx context.Context, kid string) (jwk.Key, jwa.SignatureAlgorithm, error)
}
