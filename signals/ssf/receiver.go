package ssf

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"mime"
	"net/http"
	"slices"
	"sync"
	"time"

	"github.com/hashicorp/golang-lru/v2/simplelru"

	"github.com/runtimeid/runtimeid"
)

// Defaults for the zero values of [ReceiverOptions].
const (
	DefaultMaxBodySize = 64 << 10
	DefaultMaxAge      = 24 * time.Hour
	DefaultClockSkew   = time.Minute
	DefaultMaxSeen     = 100_000
)

// ReceiverOptions configure [NewReceiver]. Issuer, Audience, Keys and
// State are required; the zero value of every other field means its
// default.
type ReceiverOptions struct {
	// Issuer must equal the SET's iss: the transmitter's issuer.
	Issuer string

	// Audience must be one of the SET's aud: this receiver.
	Audience string

	// Keys verify the SETs: the transmitter's JWKS, through
	// [runtimeid.RemoteKeys], [runtimeid.KeysFromFile] or
	// [runtimeid.StaticKeys]. Each key is pinned to one algorithm.
	Keys runtimeid.KeySource

	// State keeps what the events say; [NewState] builds one.
	State Store

	// AuthorizationToken, when set, is the bearer token the transmitter
	// must send in Authorization with each push (SSF 1.0
	// authorization_header). It is compared in constant time.
	AuthorizationToken runtimeid.Secret

	// Logger receives refused SETs at Warn and applied events at Info.
	// Nil discards them. Subjects are never logged.
	Logger *slog.Logger

	// Now is the clock. Nil means [time.Now].
	Now func() time.Time

	// MaxBodySize is the largest push body read, in bytes. Zero means
	// [DefaultMaxBodySize].
	MaxBodySize int64

	// MaxAge refuses SETs whose iat is older. Zero means
	// [DefaultMaxAge]. It bounds how long a captured SET can be
	// replayed; seen jtis are remembered for as long.
	MaxAge time.Duration

	// ClockSkew is the tolerance on iat in the future and on exp. Zero
	// means [DefaultClockSkew].
	ClockSkew time.Duration

	// MaxSeen bounds the jtis remembered to drop duplicates. Zero means
	// [DefaultMaxSeen].
	MaxSeen int
}

// Receiver receives Security Event Tokens: over push delivery as an
// [http.Handler] (RFC 8935), or from a [Poller] (RFC 8936). It verifies
// each SET and applies its events to the state. It is safe for
// concurrent use.
//
// A SET is accepted when it is a compact JWS with typ secevent+jwt,
// signed by a key of Keys with the algorithm that key is pinned to, with
// the configured iss, an aud holding Audience, an iat no older than
// MaxAge and not in the future, a jti, and an events object. A SET whose
// jti was seen is accepted again without being applied, so that a
// transmitter's retry does no harm. Events of unknown types are
// accepted and ignored; the package doc says what each known type does.
//
// What it does not do: it manages no stream (SSF 1.0 stream management), so the
// stream is configured at the transmitter; and it decrypts no JWE.
type Receiver struct {
	opts ReceiverOptions

	// mu guards the fields below it.
	mu           sync.Mutex
	seen         *simplelru.LRU[string, time.Time]
	verification Verification
	stream       StreamStatus
}

// Verification is the last SSF 1.0 verification event received.
type Verification struct {
	State string
	At    time.Time // when it was received
}

// StreamStatus is the last SSF 1.0 stream-updated event received.
type StreamStatus struct {
	Status string // "enabled", "paused" or "disabled"
	Reason string
	At     time.Time
}

// NewReceiver checks opts and builds a receiver. Errors wrap
// [ErrOptions].
func NewReceiver(opts ReceiverOptions) (*Receiver, error) {
	switch {
	case opts.Issuer == "":
		return nil, fmt.Errorf("%w: Issuer required", ErrOptions)
	case opts.Audience == "":
		return nil, fmt.Errorf("%w: Audience required", ErrOptions)
	case opts.Keys == nil:
		return nil, fmt.Errorf("%w: Keys required", ErrOptions)
	case opts.State == nil:
		return nil, fmt.Errorf("%w: State required", ErrOptions)
	case opts.MaxBodySize < 0 || opts.MaxAge < 0 || opts.ClockSkew < 0 || opts.MaxSeen < 0:
		return nil, fmt.Errorf("%w: sizes and durations must not be negative", ErrOptions)
	}
	setDefault(&opts.MaxBodySize, DefaultMaxBodySize)
	setDefault(&opts.MaxAge, DefaultMaxAge)
	setDefault(&opts.ClockSkew, DefaultClockSkew)
	setDefault(&opts.MaxSeen, DefaultMaxSeen)
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	r := &Receiver{opts: opts}
	r.seen, _ = simplelru.NewLRU[string, time.Time](opts.MaxSeen, nil)
	return r, nil
}

func setDefault[T comparable](v *T, def T) {
	var zero T
	if *v == zero {
		*v = def
	}
}

// LastVerification returns the last verification event, and ok false
// when none arrived.
func (r *Receiver) LastVerification() (v Verification, ok bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.verification, !r.verification.At.IsZero()
}

// Stream returns the last stream-updated event, and ok false when none
// arrived.
func (r *Receiver) Stream() (s StreamStatus, ok bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.stream, !r.stream.At.IsZero()
}

// ServeHTTP implements push delivery (RFC 8935 section 2). It answers
// 202 Accepted with no body when the SET was accepted; 400 with a JSON
// body {"err": code, "description": text} when it was refused (section
// 2.3); 401 with the code authentication_failed when the Authorization
// header is wrong; 405 for a method other than POST; and 503 when the
// state could not be updated, so that the transmitter retries.
func (r *Receiver) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	if req.Method != http.MethodPost {
		w.Header().Set("Allow", http.MethodPost)
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		return
	}
	if !r.authorized(req) {
		w.Header().Set("WWW-Authenticate", "Bearer")
		r.refuse(w, req, http.StatusUnauthorized,
			setErr(CodeAuthenticationFailed, "missing or wrong authorization"))
		return
	}
	mt, _, _ := mime.ParseMediaType(req.Header.Get("Content-Type"))
	if mt != "application/"+TypeSET {
		r.refuse(w, req, http.StatusBadRequest,
			setErr(CodeInvalidRequest, "content type must be application/secevent+jwt"))
		return
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, req.Body, r.opts.MaxBodySize))
	if err != nil {
		r.refuse(w, req, http.StatusBadRequest,
			setErr(CodeInvalidRequest, "unreadable or too large body"))
		return
	}

	err = r.Process(req.Context(), body)
	var se *SETError
	switch {
	case err == nil:
		w.WriteHeader(http.StatusAccepted)
	case errors.As(err, &se):
		r.refuse(w, req, http.StatusBadRequest, se)
	default:
		r.opts.Logger.LogAttrs(req.Context(), slog.LevelError,
			"ssf: cannot record SET", slog.String("error", err.Error()))
		http.Error(w, "temporarily unavailable", http.StatusServiceUnavailable)
	}
}

// authorized compares the Authorization header with the configured
// token in constant time: hashing both first keeps the length secret.
func (r *Receiver) authorized(req *http.Request) bool {
	want := r.opts.AuthorizationToken.Reveal()
	if want == "" {
		return true
	}
	got := sha256.Sum256([]byte(req.Header.Get("Authorization")))
	exp := sha256.Sum256([]byte("Bearer " + want))
	return subtle.ConstantTimeCompare(got[:], exp[:]) == 1
}

// errorBody is the body of a refusal (RFC 8935 section 2.3).
type errorBody struct {
	Err         string `json:"err"`
	Description string `json:"description"`
}

func (r *Receiver) refuse(w http.ResponseWriter, req *http.Request, status int, se *SETError) {
	r.opts.Logger.LogAttrs(req.Context(), slog.LevelWarn, "ssf: SET refused",
		slog.String("err", se.Code), slog.String("description", se.Description))
	body, _ := json.Marshal(errorBody{Err: se.Code, Description: se.Description})
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_, _ = w.Write(append(body, '\n'))
}

// Process verifies one SET and applies its events. It returns nil when
// the SET was accepted (or was a duplicate), a [*SETError] when it was
// refused, and any other error when the state could not be updated.
func (r *Receiver) Process(ctx context.Context, raw []byte) error {
	now := r.opts.Now()
	set, err := r.verify(ctx, raw, now)
	if err != nil {
		return err
	}

	// Validate every subject before applying anything, so that a SET
	// is applied whole or not at all.
	for i := range set.Events {
		if err := checkSubject(&set.Events[i]); err != nil {
			return err
		}
	}

	// A jti seen before is a retry or a replay: accept, do nothing.
	seenKey := set.Issuer + "\x00" + set.JTI
	if !r.reserve(seenKey, now) {
		r.opts.Logger.LogAttrs(ctx, slog.LevelDebug, "ssf: duplicate SET",
			slog.String("jti", set.JTI))
		return nil
	}
	for i := range set.Events {
		if err := r.applyEvent(ctx, set, &set.Events[i], now); err != nil {
			r.release(seenKey)
			return err
		}
	}
	return nil
}

func (r *Receiver) verify(ctx context.Context, raw []byte, now time.Time) (*SET, error) {
	if int64(len(raw)) > r.opts.MaxBodySize {
		return nil, setErr(CodeInvalidRequest, "SET too large")
	}
	payload, err := verifySignature(ctx, r.opts.Keys, string(raw))
	if err != nil {
		return nil, err
	}
	set, err := ParsePayload(payload)
	if err != nil {
		return nil, err
	}
	skew := r.opts.ClockSkew
	switch {
	case set.Issuer != r.opts.Issuer:
		return nil, setErr(CodeInvalidIssuer, "issuer not accepted")
	case !slices.Contains(set.Audience, r.opts.Audience):
		return nil, setErr(CodeInvalidAudience, "audience not accepted")
	case set.IssuedAt.After(now.Add(skew)):
		return nil, setErr(CodeInvalidRequest, "iat is in the future")
	case now.Sub(set.IssuedAt) > r.opts.MaxAge:
		return nil, setErr(CodeInvalidRequest, "SET too old")
	case !set.Expiry.IsZero() && !now.Before(set.Expiry.Add(skew)):
		return nil, setErr(CodeInvalidRequest, "SET expired")
	}
	return set, nil
}

func checkSubject(ev *Event) error {
	h, ok := handlers[normalType(ev.Type)]
	if !ok {
		return nil
	}
	if _, err := ev.Subject.keys(h.role); err != nil {
		return setErr(CodeInvalidRequest, "event "+quote(ev.Type)+": subject: "+err.Error())
	}
	return nil
}

// reserve records a jti and reports whether it was new. Entries older
// than MaxAge no longer count: such a SET fails the iat check anyway.
func (r *Receiver) reserve(key string, now time.Time) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	if at, ok := r.seen.Peek(key); ok && now.Sub(at) <= r.opts.MaxAge {
		return false
	}
	r.seen.Add(key, now)
	return true
}

func (r *Receiver) release(key string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.seen.Remove(key)
}

func (r *Receiver) applyEvent(ctx context.Context, set *SET, ev *Event, now time.Time) error {
	log := r.opts.Logger
	attrs := []slog.Attr{slog.String("type", ev.Type), slog.String("jti", set.JTI)}
	switch normalType(ev.Type) {
	case SSFVerification:
		r.mu.Lock()
		r.verification = Verification{State: str(ev.Claims, "state"), At: now}
		r.mu.Unlock()
		log.LogAttrs(ctx, slog.LevelInfo, "ssf: verification received", attrs...)
		return nil
	case SSFStreamUpdated:
		r.mu.Lock()
		r.stream = StreamStatus{Status: str(ev.Claims, "status"),
			Reason: str(ev.Claims, "reason"), At: now}
		r.mu.Unlock()
		log.LogAttrs(ctx, slog.LevelWarn, "ssf: stream updated",
			append(attrs, slog.String("status", str(ev.Claims, "status")))...)
		return nil
	}

	handled, err := apply(r.opts.State, ev, now)
	switch {
	case errors.Is(err, errNoSubject):
		log.LogAttrs(ctx, slog.LevelWarn,
			"ssf: event names no subject this receiver matches", attrs...)
		return nil
	case err != nil:
		return err
	case !handled:
		log.LogAttrs(ctx, slog.LevelDebug, "ssf: event type ignored", attrs...)
		return nil
	}
	log.LogAttrs(ctx, slog.LevelInfo, "ssf: event applied", attrs...)
	return nil
}
