package ssf

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"sync"
	"time"

	"github.com/runtimeid/runtimeid"
)

// Defaults for the zero values of [PollOptions].
const (
	DefaultMaxEvents       = 25
	DefaultPollInterval    = 10 * time.Second
	DefaultMinBackoff      = time.Second
	DefaultMaxBackoff      = 5 * time.Minute
	DefaultPollTimeout     = 60 * time.Second
	DefaultMaxResponseSize = 1 << 20
)

// PollOptions configure [NewPoller]. Endpoint and Receiver are
// required; the zero value of every other field means its default.
type PollOptions struct {
	// Endpoint is the transmitter's poll endpoint (SSF 1.0 delivery
	// method urn:ietf:rfc:8936). It must be https, or http to a
	// loopback host.
	Endpoint string

	// Receiver verifies and applies each SET polled.
	Receiver *Receiver

	// AuthorizationToken is sent as a bearer token with each poll.
	AuthorizationToken runtimeid.Secret

	// Client sends the polls. Nil means a client with a timeout of
	// [DefaultPollTimeout]. With long polling, its timeout must exceed
	// how long the transmitter holds a poll.
	Client *http.Client

	// MaxEvents is the most SETs asked for in one poll. Zero means
	// [DefaultMaxEvents].
	MaxEvents int

	// ReturnImmediately asks the transmitter to answer at once even
	// when it has no SET; false is long polling (RFC 8936).
	ReturnImmediately bool

	// Interval is the wait after a poll that returned no SET. Zero
	// means [DefaultPollInterval].
	Interval time.Duration

	// MinBackoff and MaxBackoff bound the wait after a failed poll,
	// which doubles with each failure in a row. Zero means
	// [DefaultMinBackoff] and [DefaultMaxBackoff].
	MinBackoff time.Duration
	MaxBackoff time.Duration

	// Wait is the clock of the loop: it returns after d, or with the
	// context's error when ctx ends first. Nil means a timer.
	Wait func(ctx context.Context, d time.Duration) error

	// MaxResponseSize bounds a poll response, in bytes. Zero means
	// [DefaultMaxResponseSize].
	MaxResponseSize int64

	// Logger receives failed polls at Warn. Nil discards them.
	Logger *slog.Logger
}

// Poller fetches SETs from a transmitter by poll delivery (RFC 8936)
// and hands each to its [Receiver]. Each poll acknowledges the SETs the
// previous one applied and reports those refused, with their error
// codes, in setErrs. A SET the state could not record is neither
// acknowledged nor refused, so the transmitter delivers it again.
//
// Run polls until its context ends or Close is called. Acknowledgements
// not yet sent when it stops are lost, and the transmitter delivers
// those SETs again; the receiver drops them as duplicates.
type Poller struct {
	opts PollOptions

	stop chan struct{}

	// life guards stopped and every running.Add: a WaitGroup must not
	// gain a member while Close waits on it.
	life    sync.Mutex
	stopped bool
	running sync.WaitGroup

	// mu serialises polls and guards the fields below it.
	mu      sync.Mutex
	acks    []string
	setErrs map[string]errorBody
}

// NewPoller checks opts and builds a poller. Errors wrap [ErrOptions].
func NewPoller(opts PollOptions) (*Poller, error) {
	if opts.Receiver == nil {
		return nil, fmt.Errorf("%w: Receiver required", ErrOptions)
	}
	if err := checkEndpoint(opts.Endpoint); err != nil {
		return nil, fmt.Errorf("%w: Endpoint: %w", ErrOptions, err)
	}
	if opts.Client == nil {
		opts.Client = &http.Client{Timeout: DefaultPollTimeout}
	}
	setDefault(&opts.MaxEvents, DefaultMaxEvents)
	setDefault(&opts.Interval, DefaultPollInterval)
	setDefault(&opts.MinBackoff, DefaultMinBackoff)
	setDefault(&opts.MaxBackoff, DefaultMaxBackoff)
	setDefault(&opts.MaxResponseSize, DefaultMaxResponseSize)
	if opts.Wait == nil {
		opts.Wait = wait
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	return &Poller{opts: opts, stop: make(chan struct{}),
		setErrs: make(map[string]errorBody)}, nil
}

// checkEndpoint allows https, and http only to a loopback host: a
// bearer token and the events must not cross a network in the clear.
func checkEndpoint(raw string) error {
	u, err := url.Parse(raw)
	if err != nil {
		return err
	}
	switch {
	case u.Scheme == "https" && u.Host != "":
		return nil
	case u.Scheme == "http" && isLoopback(u.Hostname()):
		return nil
	}
	return errors.New("must be https (http only to loopback)")
}

func isLoopback(host string) bool {
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

func wait(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Run polls until ctx ends or Close is called, and returns nil then.
func (p *Poller) Run(ctx context.Context) error {
	p.life.Lock()
	if p.stopped {
		p.life.Unlock()
		return nil
	}
	p.running.Add(1)
	p.life.Unlock()
	defer p.running.Done()
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	go func() {
		select {
		case <-p.stop:
			cancel()
		case <-ctx.Done():
		}
	}()

	failures := 0
	for ctx.Err() == nil {
		got, more, err := p.Poll(ctx)
		var d time.Duration
		switch {
		case ctx.Err() != nil:
			return nil
		case err != nil:
			failures++
			d = p.backoff(failures)
			p.opts.Logger.LogAttrs(ctx, slog.LevelWarn, "ssf: poll failed",
				slog.String("error", err.Error()), slog.Duration("retry_in", d))
		case got == 0 && !more:
			failures = 0
			d = p.opts.Interval
		default:
			failures = 0
		}
		if d > 0 && p.opts.Wait(ctx, d) != nil {
			return nil
		}
	}
	return nil
}

// backoff doubles from MinBackoff up to MaxBackoff.
func (p *Poller) backoff(failures int) time.Duration {
	d := p.opts.MinBackoff
	for i := 1; i < failures && d < p.opts.MaxBackoff; i++ {
		d *= 2
	}
	return min(d, p.opts.MaxBackoff)
}

// Close stops Run and waits for it to return. It is safe to call more
// than once.
func (p *Poller) Close() error {
	p.life.Lock()
	if !p.stopped {
		p.stopped = true
		close(p.stop)
	}
	p.life.Unlock()
	p.running.Wait()
	return nil
}

// pollRequest is the body of a poll request (RFC 8936).
type pollRequest struct {
	Ack               []string             `json:"ack"`
	SetErrs           map[string]errorBody `json:"setErrs,omitempty"`
	MaxEvents         int                  `json:"maxEvents"`
	ReturnImmediately bool                 `json:"returnImmediately"`
}

// pollResponse is the transmitter's answer (RFC 8936).
type pollResponse struct {
	Sets          map[string]string `json:"sets"`
	MoreAvailable bool              `json:"moreAvailable"`
}

// Poll makes one poll: it sends the pending acknowledgements and
// errors, processes the SETs returned and keeps their outcome for the
// next poll. It returns how many SETs came back and whether the
// transmitter has more. Errors wrap [ErrDelivery]; the pending
// acknowledgements are then kept for the next poll.
func (p *Poller) Poll(ctx context.Context) (n int, more bool, err error) {
	p.mu.Lock()
	defer p.mu.Unlock()

	resp, err := p.exchange(ctx)
	if err != nil {
		return 0, false, err
	}
	// The transmitter has the acknowledgements now.
	p.acks = p.acks[:0]
	clear(p.setErrs)

	for jti, raw := range resp.Sets {
		err := p.opts.Receiver.Process(ctx, []byte(raw))
		var se *SETError
		switch {
		case err == nil:
			p.acks = append(p.acks, jti)
		case errors.As(err, &se):
			p.setErrs[jti] = errorBody{Err: se.Code, Description: se.Description}
		default:
			p.opts.Logger.LogAttrs(ctx, slog.LevelError, "ssf: cannot record polled SET",
				slog.String("jti", jti), slog.String("error", err.Error()))
		}
	}
	return len(resp.Sets), resp.MoreAvailable, nil
}

func (p *Poller) exchange(ctx context.Context) (*pollResponse, error) {
	body, err := json.Marshal(pollRequest{
		Ack:               append([]string{}, p.acks...),
		SetErrs:           p.setErrs,
		MaxEvents:         p.opts.MaxEvents,
		ReturnImmediately: p.opts.ReturnImmediately,
	})
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrDelivery, err)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost,
		p.opts.Endpoint, bytes.NewReader(body))
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrDelivery, err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json")
	if tok := p.opts.AuthorizationToken.Reveal(); tok != "" {
		req.Header.Set("Authorization", "Bearer "+tok)
	}

	res, err := p.opts.Client.Do(req)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrDelivery, err)
	}
	defer res.Body.Close()
	data, err := io.ReadAll(io.LimitReader(res.Body, p.opts.MaxResponseSize+1))
	switch {
	case err != nil:
		return nil, fmt.Errorf("%w: %w", ErrDelivery, err)
	case res.StatusCode != http.StatusOK:
		return nil, fmt.Errorf("%w: poll answered %d", ErrDelivery, res.StatusCode)
	case int64(len(data)) > p.opts.MaxResponseSize:
		return nil, fmt.Errorf("%w: poll response larger than %d bytes",
			ErrDelivery, p.opts.MaxResponseSize)
	}
	var out pollResponse
	if err := json.Unmarshal(data, &out); err != nil {
		return nil, fmt.Errorf("%w: bad poll response: %w", ErrDelivery, err)
	}
	return &out, nil
}
