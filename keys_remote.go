package runtimeid

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/lestrrat-go/jwx/v2/jwa"
	"github.com/lestrrat-go/jwx/v2/jwk"
)

// Defaults for the zero values of [RemoteKeysOptions].
const (
	DefaultRefreshInterval    = 15 * time.Minute
	DefaultMinRefreshInterval = 30 * time.Second
	DefaultUnknownKeyWait     = 2 * time.Second
	DefaultFetchTimeout       = 10 * time.Second
)

// RemoteKeysOptions configures [RemoteKeys]. The zero value of every field
// is safe and means its default.
type RemoteKeysOptions struct {
	// Client fetches the key set. Nil means a client of its own with no
	// settings beyond [RemoteKeysOptions.FetchTimeout].
	Client *http.Client

	// Now is the clock that schedules refreshes. Nil means [time.Now].
	Now func() time.Time

	// RefreshInterval is how often the key set is fetched again. Zero
	// means [DefaultRefreshInterval]. A Cache-Control max-age in the
	// response shortens it, down to MinRefreshInterval, never lengthens
	// it.
	RefreshInterval time.Duration

	// MinRefreshInterval is the least time between two fetches that a
	// token with an unknown kid triggers, and the wait before retrying a
	// failed fetch. Zero means [DefaultMinRefreshInterval].
	MinRefreshInterval time.Duration

	// UnknownKeyWait is how long the request whose unknown kid triggered
	// a refresh waits for it, so that a key rotated in a moment ago is
	// found on the first request. Zero means [DefaultUnknownKeyWait];
	// a negative value means never wait: the request fails with an
	// unknown key and the refresh helps the next one.
	UnknownKeyWait time.Duration

	// FetchTimeout bounds each fetch. Zero means [DefaultFetchTimeout].
	FetchTimeout time.Duration

	// MaxResponseSize is the largest key set accepted, in bytes. Zero
	// means [MaxKeysFileSize].
	MaxResponseSize int64

	// Logger receives failed refreshes at Warn. Nil discards them.
	Logger *slog.Logger
}

func (o *RemoteKeysOptions) setDefaults() {
	if o.Client == nil {
		o.Client = &http.Client{}
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.RefreshInterval <= 0 {
		o.RefreshInterval = DefaultRefreshInterval
	}
	if o.MinRefreshInterval <= 0 {
		o.MinRefreshInterval = DefaultMinRefreshInterval
	}
	o.MinRefreshInterval = min(o.MinRefreshInterval, o.RefreshInterval)
	if o.UnknownKeyWait == 0 {
		o.UnknownKeyWait = DefaultUnknownKeyWait
	}
	if o.FetchTimeout <= 0 {
		o.FetchTimeout = DefaultFetchTimeout
	}
	if o.MaxResponseSize <= 0 {
		o.MaxResponseSize = MaxKeysFileSize
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
}

// RemoteKeySource is a [KeySource] over a JWK set fetched over HTTP(S) and
// refreshed in the background. Keys are pinned as [StaticKeys] pins them.
// It is safe for concurrent use. Build one with [RemoteKeys] and stop it
// with [RemoteKeySource.Close] or by cancelling the context given to
// [RemoteKeys].
type RemoteKeySource struct {
	url  string
	opts RemoteKeysOptions

	ctx    context.Context // lives until Close
	cancel context.CancelFunc
	loop   sync.WaitGroup

	// mu guards the fields below it.
	mu           sync.Mutex
	set          *keySet
	next         time.Time  // when the next scheduled refresh is due
	lastUnknown  time.Time  // when an unknown kid last caused a fetch
	inflight     *fetchCall // the fetch running now, if any
	wake         chan struct{}
	fetchesTotal int
}

// fetchCall is one fetch that any number of callers may wait for.
type fetchCall struct {
	done   chan struct{}
	err    error
	joined int // callers that found it running; guarded by the source's mu
}

var (
	_ KeySource       = (*RemoteKeySource)(nil)
	_ pinnedKeySource = (*RemoteKeySource)(nil)
)

// RemoteKeys fetches the JWK set at rawURL and returns a source that keeps
// it fresh until ctx is cancelled or Close is called. The first fetch must
// succeed: otherwise RemoteKeys returns an error wrapping [ErrKeys]. Later
// failed fetches are logged and the last good set stays in use.
//
// The URL must be https, or http to a loopback host: keys fetched over
// plain HTTP could be replaced by anyone on the path.
//
// A token whose kid is not in the set triggers a refresh at most once per
// MinRefreshInterval, and the request waits for it up to UnknownKeyWait;
// requests for known kids never wait on the network.
func RemoteKeys(
	ctx context.Context, rawURL string, opts RemoteKeysOptions,
) (*RemoteKeySource, error) {
	if err := checkKeysURL(rawURL); err != nil {
		return nil, err
	}
	opts.setDefaults()
	s := &RemoteKeySource{url: rawURL, opts: opts, wake: make(chan struct{}, 1)}
	s.ctx, s.cancel = context.WithCancel(ctx)

	if err := s.Refresh(ctx); err != nil {
		s.cancel()
		return nil, err
	}
	s.loop.Add(1)
	go s.refreshLoop()
	return s, nil
}

func checkKeysURL(rawURL string) error {
	u, err := url.Parse(rawURL)
	if err != nil {
		return fmt.Errorf("%w: bad JWKS URL: %w", ErrKeys, err)
	}
	switch {
	case u.Scheme == "https" && u.Host != "":
		return nil
	case u.Scheme == "http" && isLoopback(u.Hostname()):
		return nil
	}
	return fmt.Errorf("%w: JWKS URL must be https (http only to loopback)", ErrKeys)
}

func isLoopback(host string) bool {
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// Close stops the background refresh and waits for it to end. It is safe
// to call more than once.
func (s *RemoteKeySource) Close() error {
	s.cancel()
	s.loop.Wait()
	return nil
}

// VerificationKey implements [KeySource]. A known kid is answered from
// memory; see [RemoteKeys] for an unknown one.
func (s *RemoteKeySource) VerificationKey(
	ctx context.Context, kid string,
) (jwk.Key, jwa.SignatureAlgorithm, error) {
	pk, err := s.pinnedKey(ctx, kid)
	if err != nil {
		return nil, "", err
	}
	return pk.key, pk.alg, nil
}

func (s *RemoteKeySource) pinnedKey(ctx context.Context, kid string) (*pinnedKey, error) {
	now := s.opts.Now()
	s.mu.Lock()
	set := s.set
	if !now.Before(s.next) {
		// Overdue by the injected clock: refresh without waiting.
		s.startLocked()
	}
	s.mu.Unlock()

	pk, err := set.lookup(kid)
	if err == nil || !errors.Is(err, ErrUnknownKey) {
		return pk, err
	}

	call := s.refreshForUnknown(now)
	if call == nil || s.opts.UnknownKeyWait < 0 {
		return nil, err
	}
	if !s.wait(ctx, call) {
		return nil, err
	}
	s.mu.Lock()
	set = s.set
	s.mu.Unlock()
	return set.lookup(kid)
}

// refreshForUnknown starts or joins a refresh for an unknown kid, at most
// once per MinRefreshInterval, so that a flood of made-up kids costs the
// key server one request per interval. It returns nil when rate-limited.
func (s *RemoteKeySource) refreshForUnknown(now time.Time) *fetchCall {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.inflight != nil {
		return s.inflight
	}
	if !s.lastUnknown.IsZero() &&
		now.Sub(s.lastUnknown) < s.opts.MinRefreshInterval {
		return nil
	}
	s.lastUnknown = now
	return s.startLocked()
}

// wait waits for call up to UnknownKeyWait and reports whether it ended.
func (s *RemoteKeySource) wait(ctx context.Context, call *fetchCall) bool {
	t := time.NewTimer(s.opts.UnknownKeyWait)
	defer t.Stop()
	select {
	case <-call.done:
		return true
	case <-t.C:
	case <-ctx.Done():
	}
	return false
}

// Refresh fetches the key set now, or waits for the fetch already running,
// and returns its error, which wraps [ErrKeys]. The last good set stays in
// use when it fails.
func (s *RemoteKeySource) Refresh(ctx context.Context) error {
	s.mu.Lock()
	call := s.startLocked()
	s.mu.Unlock()
	select {
	case <-call.done:
		return call.err
	case <-ctx.Done():
		return fmt.Errorf("%w: %w", ErrKeys, ctx.Err())
	}
}

// startLocked returns the running fetch, or starts one: only one fetch
// ever runs at a time. s.mu must be held.
func (s *RemoteKeySource) startLocked() *fetchCall {
	if s.inflight != nil {
		s.inflight.joined++
		return s.inflight
	}
	call := &fetchCall{done: make(chan struct{})}
	if err := s.ctx.Err(); err != nil {
		// Closed: nothing is fetched any more.
		call.err = fmt.Errorf("%w: key source closed: %w", ErrKeys, err)
		close(call.done)
		return call
	}
	s.inflight = call
	s.fetchesTotal++
	go s.run(call)
	return call
}

func (s *RemoteKeySource) run(call *fetchCall) {
	set, maxAge, err := s.fetch()
	now := s.opts.Now()

	s.mu.Lock()
	if err != nil {
		call.err = err
		s.next = now.Add(s.opts.MinRefreshInterval)
	} else {
		s.set = set
		s.next = now.Add(s.interval(maxAge))
	}
	s.inflight = nil
	s.mu.Unlock()
	close(call.done)

	if err != nil {
		s.opts.Logger.LogAttrs(s.ctx, slog.LevelWarn,
			"runtimeid: JWKS refresh failed; keeping the last good keys",
			slog.String("url", s.url), slog.String("error", err.Error()))
	}
	select {
	case s.wake <- struct{}{}:
	default:
	}
}

// interval is the time to the next refresh: a max-age shortens it but
// never below MinRefreshInterval.
func (s *RemoteKeySource) interval(maxAge time.Duration) time.Duration {
	d := s.opts.RefreshInterval
	if maxAge >= 0 && maxAge < d {
		d = max(maxAge, s.opts.MinRefreshInterval)
	}
	return d
}

// fetch gets and pins the key set. maxAge is the response's Cache-Control
// max-age, or -1.
func (s *RemoteKeySource) fetch() (*keySet, time.Duration, error) {
	ctx, cancel := context.WithTimeout(s.ctx, s.opts.FetchTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, s.url, nil)
	if err != nil {
		return nil, -1, fmt.Errorf("%w: %w", ErrKeys, err)
	}
	req.Header.Set("Accept", "application/jwk-set+json, application/json")

	resp, err := s.opts.Client.Do(req)
	if err != nil {
		return nil, -1, fmt.Errorf("%w: fetch: %w", ErrKeys, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, -1, fmt.Errorf("%w: fetch: status %d", ErrKeys, resp.StatusCode)
	}

	limit := s.opts.MaxResponseSize
	body, err := io.ReadAll(io.LimitReader(resp.Body, limit+1))
	if err != nil {
		return nil, -1, fmt.Errorf("%w: fetch: %w", ErrKeys, err)
	}
	if int64(len(body)) > limit {
		return nil, -1, fmt.Errorf("%w: fetch: key set larger than %d bytes", ErrKeys, limit)
	}
	parsed, err := jwk.Parse(body)
	if err != nil {
		return nil, -1, fmt.Errorf("%w: fetch: %w", ErrKeys, err)
	}
	ks, err := newKeySet(parsed)
	if err != nil {
		return nil, -1, err
	}
	return ks, maxAge(resp.Header.Get("Cache-Control")), nil
}

// maxAge returns the max-age directive of a Cache-Control header, or -1.
func maxAge(cc string) time.Duration {
	for _, dir := range strings.Split(cc, ",") {
		name, val, ok := strings.Cut(strings.TrimSpace(dir), "=")
		if !ok || !strings.EqualFold(name, "max-age") {
			continue
		}
		n, err := strconv.ParseInt(strings.Trim(val, `"`), 10, 64)
		if err != nil || n < 0 || n > 1<<31 {
			return -1
		}
		return time.Duration(n) * time.Second
	}
	return -1
}

// refreshLoop refreshes the key set when it is due. It sleeps on real
// timers, and checks the injected clock when it wakes.
func (s *RemoteKeySource) refreshLoop() {
	defer s.loop.Done()
	for {
		s.mu.Lock()
		due := s.next.Sub(s.opts.Now())
		if due <= 0 {
			s.startLocked()
			due = s.opts.RefreshInterval
		}
		s.mu.Unlock()

		t := time.NewTimer(due)
		select {
		case <-s.ctx.Done():
			t.Stop()
			return
		case <-s.wake:
		case <-t.C:
		}
		t.Stop()
	}
}

// fetches returns how many fetches were started, and how many callers
// joined the one running now, for tests.
func (s *RemoteKeySource) fetches() (started, joined int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.inflight != nil {
		joined = s.inflight.joined
	}
	return s.fetchesTotal, joined
}
