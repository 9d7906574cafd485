package stepup

import (
	"crypto/rand"
	"fmt"
	"io"
	"log/slog"
	"net/url"
	"strings"
	"time"

	"github.com/runtimeid/runtimeid"
)

// The acr values a completed step-up is recorded with. See the package
// documentation for what each one proves.
const (
	ACRPasskey         = "urn:runtimeid:acr:passkey"
	ACRPasskeyPresence = "urn:runtimeid:acr:passkey-presence"
	ACROTP             = "urn:runtimeid:acr:otp"
)

// Defaults for the zero values of [Options].
const (
	DefaultBasePath        = "/stepup"
	DefaultDisplayName     = "runtimeid"
	DefaultMaxAttempts     = 5
	DefaultMaxUserAttempts = 10
	DefaultBackOff         = 30 * time.Second
	DefaultMaxBackOff      = time.Hour
	DefaultChallengeTTL    = 2 * time.Minute
	DefaultRecordTTL       = 12 * time.Hour
	DefaultEnrollMaxAge    = 5 * time.Minute
)

// Options configure a [Service]. Token is required; the zero value of
// every other field means its default.
type Options struct {
	// Token says how the caller's access token is verified: the same
	// issuer, audience and keys as the engine's. Required.
	Token runtimeid.TokenConfig

	// Validators check the identity after its token, as the engine's
	// do: proof of possession, pushed revocations.
	Validators []runtimeid.IdentityValidator

	// TokenCookie names the cookie that holds a browser's access
	// token, read when the request has no Authorization header. Empty
	// means the header only. Cookie-authenticated POSTs must come from
	// one of RPOrigins (Origin header), against cross-site requests.
	TokenCookie string

	// BasePath is where the handler is mounted, without a trailing
	// slash. The step-up page is BasePath + "/". Empty means
	// [DefaultBasePath].
	BasePath string

	// RPID is the WebAuthn relying party id: the site's host name
	// ("localhost" in development, never an IP address). Empty turns
	// passkeys off; codes still work.
	RPID string

	// RPOrigins are the origins the browser may use, such as
	// "https://app.example". Required with RPID.
	RPOrigins []string

	// DisplayName names the service in passkey prompts and as the
	// issuer of code secrets. Empty means [DefaultDisplayName].
	DisplayName string

	// EncryptionKeys seal stored values; the first seals, all open, so
	// a key is rotated by putting the new one first and dropping the
	// old one once its values have been rewritten or have expired.
	// Empty means one random key made by [New]: nothing survives a
	// restart, and other instances cannot read what this one wrote.
	EncryptionKeys []EncryptionKey

	// Store keeps sealed enrollments, challenges, counters and
	// records. Nil means a [MemoryStore] of [DefaultMaxEntries].
	Store Store

	// MaxAttempts and MaxUserAttempts are how many failed proofs a
	// session and a user may make before each further attempt waits.
	// Zero means [DefaultMaxAttempts] and [DefaultMaxUserAttempts].
	MaxAttempts     int
	MaxUserAttempts int

	// BackOff is the first wait past the limit; it doubles with every
	// further failure, up to MaxBackOff. A success clears the count.
	// Zero means [DefaultBackOff] and [DefaultMaxBackOff].
	BackOff    time.Duration
	MaxBackOff time.Duration

	// ChallengeTTL is how long a passkey challenge may be answered.
	// Zero means [DefaultChallengeTTL].
	ChallengeTTL time.Duration

	// RecordTTL is how long a session's step-up is kept; challenges
	// still apply their own max_age. Zero means [DefaultRecordTTL].
	RecordTTL time.Duration

	// EnrollMaxAge is how recent an authentication enrollment needs
	// (see the package documentation). Zero means
	// [DefaultEnrollMaxAge].
	EnrollMaxAge time.Duration

	// Logger receives one event per step-up, failure and enrollment,
	// with the subject and session, never a code or a secret. Nil
	// discards them.
	Logger *slog.Logger

	// Now is the clock. Nil means [time.Now].
	Now func() time.Time

	// Rand makes ids, secrets and nonces. Nil means crypto/rand.
	Rand io.Reader
}

func (o *Options) setDefaults() error {
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Rand == nil {
		o.Rand = rand.Reader
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.Store == nil {
		o.Store = NewMemoryStore(0, o.Now)
	}
	if o.BasePath == "" {
		o.BasePath = DefaultBasePath
	}
	if o.DisplayName == "" {
		o.DisplayName = DefaultDisplayName
	}
	setDefault(&o.MaxAttempts, DefaultMaxAttempts)
	setDefault(&o.MaxUserAttempts, DefaultMaxUserAttempts)
	setDefault(&o.BackOff, DefaultBackOff)
	setDefault(&o.MaxBackOff, DefaultMaxBackOff)
	setDefault(&o.ChallengeTTL, DefaultChallengeTTL)
	setDefault(&o.RecordTTL, DefaultRecordTTL)
	setDefault(&o.EnrollMaxAge, DefaultEnrollMaxAge)
	if len(o.EncryptionKeys) == 0 {
		secret := make([]byte, KeySize)
		if _, err := io.ReadFull(o.Rand, secret); err != nil {
			return fmt.Errorf("stepup: encryption key: %w", err)
		}
		o.EncryptionKeys = []EncryptionKey{{ID: "ephemeral", Secret: secret}}
	}
	return o.check()
}

func (o *Options) check() error {
	bad := func(field, reason string) error {
		return fmt.Errorf("%w: %s: %s", ErrOptions, field, reason)
	}
	switch {
	case o.Token.Issuer == "" || len(o.Token.Audience) == 0 || o.Token.Keys == nil:
		return bad("Token", "Issuer, Audience and Keys are required")
	case !strings.HasPrefix(o.BasePath, "/") || strings.HasSuffix(o.BasePath, "/") ||
		url.PathEscape(strings.ReplaceAll(o.BasePath, "/", "")) !=
			strings.ReplaceAll(o.BasePath, "/", ""):
		return bad("BasePath", "want a plain absolute path without a trailing slash")
	case o.MaxAttempts < 0 || o.MaxUserAttempts < 0:
		return bad("MaxAttempts", "must not be negative")
	case o.BackOff < 0 || o.MaxBackOff < o.BackOff:
		return bad("BackOff", "want 0 <= BackOff <= MaxBackOff")
	case o.ChallengeTTL < 0 || o.RecordTTL < 0 || o.EnrollMaxAge < 0:
		return bad("ChallengeTTL", "durations must not be negative")
	case o.RPID != "" && len(o.RPOrigins) == 0:
		return bad("RPOrigins", "required with RPID")
	}
	return nil
}

func setDefault[T int | time.Duration](v *T, def T) {
	if *v == 0 {
		*v = def
	}
}
