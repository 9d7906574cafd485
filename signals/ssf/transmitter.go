package ssf

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/golang-lru/v2/simplelru"
	"github.com/lestrrat-go/jwx/v2/jwa"
	"github.com/lestrrat-go/jwx/v2/jwk"
	"github.com/lestrrat-go/jwx/v2/jws"

	"github.com/runtimeid/runtimeid"
)

// Defaults for the zero values of [TransmitterOptions].
const (
	DefaultQueueSize      = 1024
	DefaultMaxAttempts    = 5
	DefaultReportInterval = 10 * time.Minute
	DefaultPushTimeout    = 10 * time.Second
)

// maxRecentReports bounds the decisions remembered to report each
// session or subject once per ReportInterval.
const maxRecentReports = 10_000

// TransmitterOptions configure [NewTransmitter]. Issuer, Audience, Key
// and PushURL are required; the zero value of every other field means
// its default.
type TransmitterOptions struct {
	// Issuer is the iss of the SETs: this application, as the
	// receiver knows it.
	Issuer string

	// Audience is the aud of the SETs: the receiver.
	Audience string

	// Key signs the SETs: a private key with its alg member set to an
	// asymmetric algorithm (RS*, PS*, ES*, EdDSA). Its kid, if any, is
	// sent. The receiver verifies with its public part.
	Key jwk.Key

	// PushURL is the receiver's push endpoint (RFC 8935). It must be
	// https, or http to a loopback host.
	PushURL string

	// AuthorizationToken, when set, is sent as a bearer token.
	AuthorizationToken runtimeid.Secret

	// Client sends the SETs. Nil means a client with a timeout of
	// [DefaultPushTimeout].
	Client *http.Client

	// Logger receives dropped and refused SETs. Nil discards them.
	Logger *slog.Logger

	// Now is the clock. Nil means [time.Now].
	Now func() time.Time

	// QueueSize bounds the events waiting to be sent. Zero means
	// [DefaultQueueSize].
	QueueSize int

	// MaxAttempts is how often a SET is tried before it is dropped.
	// Zero means [DefaultMaxAttempts]. A SET the receiver refuses with
	// 400 is not retried.
	MaxAttempts int

	// MinBackoff and MaxBackoff bound the wait between attempts, which
	// doubles each time. Zero means [DefaultMinBackoff] and
	// [DefaultMaxBackoff].
	MinBackoff time.Duration
	MaxBackoff time.Duration

	// Wait is the clock of the retries, as in [PollOptions]. Nil means
	// a timer.
	Wait func(ctx context.Context, d time.Duration) error

	// ReportInterval is how often [Transmitter.OnDecision] reports the
	// same session or subject at most. Zero means
	// [DefaultReportInterval].
	ReportInterval time.Duration

	// BlockReasons limits the blocks that OnDecision reports as a
	// revoked session to those with one of these reasons. Nil reports
	// every block.
	BlockReasons []string

	// TokenIssuer is the access tokens' issuer, for decisions whose
	// identity has none (those [AuditHandler] rebuilds from a log
	// record).
	TokenIssuer string
}

// Transmitter sends CAEP events of this application to a receiver by
// push delivery (RFC 8935): a bounded queue and one background sender
// that signs each event as a SET and retries failed pushes. It is safe
// for concurrent use. Stop it with Close.
type Transmitter struct {
	opts  TransmitterOptions
	alg   jwa.SignatureAlgorithm
	queue chan Event

	ctx    context.Context
	cancel context.CancelFunc
	done   chan struct{}

	dropped atomic.Int64
	sent    atomic.Int64

	// mu guards recent: when each session or subject was last
	// reported by OnDecision.
	mu     sync.Mutex
	recent *simplelru.LRU[string, time.Time]
}

// NewTransmitter checks opts and starts the sender. Errors wrap
// [ErrOptions].
func NewTransmitter(opts TransmitterOptions) (*Transmitter, error) {
	alg, err := opts.check()
	if err != nil {
		return nil, err
	}
	opts.setDefaults()
	t := &Transmitter{
		opts:  opts,
		alg:   alg,
		queue: make(chan Event, opts.QueueSize),
		done:  make(chan struct{}),
	}
	t.recent, _ = simplelru.NewLRU[string, time.Time](maxRecentReports, nil)
	t.ctx, t.cancel = context.WithCancel(context.Background())
	go t.run()
	return t, nil
}

func (o *TransmitterOptions) check() (jwa.SignatureAlgorithm, error) {
	switch {
	case o.Issuer == "":
		return "", fmt.Errorf("%w: Issuer required", ErrOptions)
	case o.Audience == "":
		return "", fmt.Errorf("%w: Audience required", ErrOptions)
	case o.Key == nil:
		return "", fmt.Errorf("%w: Key required", ErrOptions)
	}
	alg := jwa.SignatureAlgorithm(o.Key.Algorithm().String())
	found := false
	for _, a := range signatureAlgs {
		found = found || a == alg
	}
	if !found {
		return "", fmt.Errorf("%w: Key must have an asymmetric alg, not %s",
			ErrOptions, quote(alg.String()))
	}
	if err := checkEndpoint(o.PushURL); err != nil {
		return "", fmt.Errorf("%w: PushURL: %w", ErrOptions, err)
	}
	return alg, nil
}

func (o *TransmitterOptions) setDefaults() {
	if o.Client == nil {
		o.Client = &http.Client{Timeout: DefaultPushTimeout}
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Wait == nil {
		o.Wait = wait
	}
	setDefault(&o.QueueSize, DefaultQueueSize)
	setDefault(&o.MaxAttempts, DefaultMaxAttempts)
	setDefault(&o.MinBackoff, DefaultMinBackoff)
	setDefault(&o.MaxBackoff, DefaultMaxBackoff)
	setDefault(&o.ReportInterval, DefaultReportInterval)
}

// Emit queues ev and returns at once. When the queue is full it drops
// ev, counts and logs it, and returns [ErrQueueFull]; after Close it
// returns [ErrClosed].
func (t *Transmitter) Emit(ctx context.Context, ev Event) error {
	if t.ctx.Err() != nil {
		return ErrClosed
	}
	select {
	case t.queue <- ev:
		return nil
	default:
		t.dropped.Add(1)
		t.opts.Logger.LogAttrs(ctx, slog.LevelWarn, "ssf: event dropped, queue full",
			slog.String("type", ev.Type))
		return ErrQueueFull
	}
}

// Dropped returns how many events were dropped: queue full, too many
// failed attempts, refused by the receiver, or left at Close.
func (t *Transmitter) Dropped() int64 { return t.dropped.Load() }

// Sent returns how many SETs the receiver accepted.
func (t *Transmitter) Sent() int64 { return t.sent.Load() }

// Close stops the sender and waits for it. Events still queued are
// dropped. It is safe to call more than once.
func (t *Transmitter) Close() error {
	t.cancel()
	<-t.done
	return nil
}

func (t *Transmitter) run() {
	defer close(t.done)
	for {
		select {
		case <-t.ctx.Done():
			t.dropped.Add(int64(len(t.queue)))
			return
		case ev := <-t.queue:
			t.deliver(ev)
		}
	}
}

// deliver signs ev and pushes it, retrying transient failures.
func (t *Transmitter) deliver(ev Event) {
	set, err := t.Sign(ev)
	if err != nil {
		t.drop(ev, "cannot sign", err)
		return
	}
	d := t.opts.MinBackoff
	for attempt := 1; ; attempt++ {
		retry, err := t.push(set)
		if err == nil {
			t.sent.Add(1)
			return
		}
		if !retry || attempt >= t.opts.MaxAttempts {
			t.drop(ev, "push failed", err)
			return
		}
		if t.opts.Wait(t.ctx, d) != nil {
			t.drop(ev, "closed", err)
			return
		}
		d = min(2*d, t.opts.MaxBackoff)
	}
}

func (t *Transmitter) drop(ev Event, why string, err error) {
	t.dropped.Add(1)
	t.opts.Logger.LogAttrs(t.ctx, slog.LevelWarn, "ssf: event dropped: "+why,
		slog.String("type", ev.Type), slog.String("error", err.Error()))
}

// push sends one SET. retry is false when the receiver refused it
// (RFC 8935 section 2.3): sending it again would not help.
func (t *Transmitter) push(set []byte) (retry bool, err error) {
	req, err := http.NewRequestWithContext(t.ctx, http.MethodPost,
		t.opts.PushURL, bytes.NewReader(set))
	if err != nil {
		return false, fmt.Errorf("%w: %w", ErrDelivery, err)
	}
	req.Header.Set("Content-Type", "application/"+TypeSET)
	req.Header.Set("Accept", "application/json")
	if tok := t.opts.AuthorizationToken.Reveal(); tok != "" {
		req.Header.Set("Authorization", "Bearer "+tok)
	}
	res, err := t.opts.Client.Do(req)
	if err != nil {
		return true, fmt.Errorf("%w: %w", ErrDelivery, err)
	}
	defer res.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(res.Body, 4<<10))
	switch {
	case res.StatusCode == http.StatusAccepted || res.StatusCode == http.StatusOK:
		return false, nil
	case res.StatusCode == http.StatusBadRequest:
		var eb errorBody
		_ = json.Unmarshal(body, &eb)
		return false, fmt.Errorf("%w: refused: %s: %s", ErrDelivery, eb.Err, eb.Description)
	case res.StatusCode >= 500 || res.StatusCode == http.StatusTooManyRequests:
		return true, fmt.Errorf("%w: push answered %d", ErrDelivery, res.StatusCode)
	}
	return false, fmt.Errorf("%w: push answered %d", ErrDelivery, res.StatusCode)
}

// Sign returns ev as a signed SET: typ secevent+jwt, the configured
// iss and aud, iat now, a random jti, sub_id, and the event with its
// event_timestamp.
func (t *Transmitter) Sign(ev Event) ([]byte, error) {
	now := t.opts.Now()
	body := make(map[string]any, len(ev.Claims)+1)
	for k, v := range ev.Claims {
		body[k] = v
	}
	at := ev.Time
	if at.IsZero() {
		at = now
	}
	body["event_timestamp"] = at.Unix()

	payload, err := json.Marshal(map[string]any{
		"iss":    t.opts.Issuer,
		"aud":    t.opts.Audience,
		"iat":    now.Unix(),
		"jti":    newJTI(),
		"sub_id": ev.Subject,
		"events": map[string]any{ev.Type: body},
	})
	if err != nil {
		return nil, fmt.Errorf("ssf: encode SET: %w", err)
	}
	h := jws.NewHeaders()
	if err := h.Set(jws.TypeKey, TypeSET); err != nil {
		return nil, fmt.Errorf("ssf: SET header: %w", err)
	}
	out, err := jws.Sign(payload, jws.WithKey(t.alg, t.opts.Key, jws.WithProtectedHeaders(h)))
	if err != nil {
		return nil, fmt.Errorf("ssf: sign SET: %w", err)
	}
	return out, nil
}

func newJTI() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// SessionRevokedEvent is a CAEP 1.0 session-revoked event about sub,
// initiated by policy, with reason as reason_admin.
func SessionRevokedEvent(sub SubjectID, at time.Time, reason string) Event {
	c := map[string]any{"initiating_entity": "policy"}
	if reason != "" {
		c["reason_admin"] = map[string]string{"en": reason}
	}
	return Event{Type: CAEPSessionRevoked, Subject: sub, Time: at, Claims: c}
}

// RiskLevelChangeEvent is a CAEP risk-level-change event (CAEP
// 1.0). principal is such as "USER"; the levels are "LOW",
// "MEDIUM" or "HIGH", sent in upper case; previous may be empty.
func RiskLevelChangeEvent(sub SubjectID, principal, current, previous string,
	at time.Time, reason string) Event {
	c := map[string]any{
		"principal":     principal,
		"current_level": strings.ToUpper(current),
	}
	if previous != "" {
		c["previous_level"] = strings.ToUpper(previous)
	}
	if reason != "" {
		c["risk_reason"] = reason
	}
	return Event{Type: CAEPRiskLevelChange, Subject: sub, Time: at, Claims: c}
}
