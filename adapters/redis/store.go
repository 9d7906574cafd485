package redisstore

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"
)

// ErrUnavailable means Redis could not be reached, or this instance's
// subscription is down so it may be missing changes.
var ErrUnavailable = errors.New("redisstore: redis unavailable")

// Store is the shared state of one service. Build it with [New], take
// the views it offers, and [Store.Close] it when the service stops. It
// is safe for concurrent use.
type Store struct {
	opts   Options
	client redis.UniversalClient
	origin string // this instance, so it skips its own messages
	tel    *telemetry

	baselines *baselines
	facts     *facts
	replay    *replay
	sessions  *sessions

	// up is set while the subscription is live and the last resync
	// succeeded; while it is clear the local state may be stale.
	up atomic.Bool

	cancel context.CancelFunc
	done   sync.WaitGroup
}

// New connects the store, loads the current revocations and starts
// the subscription and the flush in the background. It fails when
// Redis cannot be reached within ctx: an instance that started without
// the revocations could let a revoked token through.
func New(ctx context.Context, opts Options) (*Store, error) {
	if err := opts.setDefaults(); err != nil {
		return nil, err
	}
	tel, err := newTelemetry(opts.MeterProvider)
	if err != nil {
		return nil, fmt.Errorf("redisstore: instruments: %w", err)
	}
	s := &Store{opts: opts, client: opts.Client, origin: newOrigin(), tel: tel}
	s.baselines = newBaselines(s)
	s.facts = newFacts(s)
	s.replay = newReplay(s)
	s.sessions = newSessions(s)
	if err := tel.observe(s); err != nil {
		return nil, fmt.Errorf("redisstore: instruments: %w", err)
	}

	bg, cancel := context.WithCancel(context.Background())
	s.cancel = cancel
	ps := s.client.Subscribe(ctx, s.channel())
	if err := s.waitSubscribed(ctx, ps); err != nil {
		cancel()
		ps.Close()
		return nil, err
	}
	s.done.Add(4)
	go s.subscribe(bg, ps)
	go s.flushLoop(bg)
	go s.sessions.loop(bg)
	go s.sessions.readLoop(bg)
	return s, nil
}

// waitSubscribed waits for the first subscription, then loads the
// facts: subscribed first, so no change falls between the two.
func (s *Store) waitSubscribed(ctx context.Context, ps *redis.PubSub) error {
	for {
		msg, err := ps.Receive(ctx)
		if err != nil {
			return fmt.Errorf("%w: subscribe: %w", ErrUnavailable, err)
		}
		if _, ok := msg.(*redis.Subscription); ok {
			break
		}
	}
	if err := s.facts.load(ctx); err != nil {
		return fmt.Errorf("%w: load revocations: %w", ErrUnavailable, err)
	}
	s.up.Store(true)
	return nil
}

// Close stops the background work after a last flush of the learned
// baselines and the queued session uses, bounded by ctx. It does not
// close the client.
func (s *Store) Close(ctx context.Context) error {
	s.cancel()
	s.done.Wait()
	return errors.Join(s.baselines.flush(ctx), s.sessions.flush(ctx))
}

// Healthy reports whether the subscription is live and this instance
// has every change published so far.
func (s *Store) Healthy() bool { return s.up.Load() }

func (s *Store) key(kind, id string) string { return s.opts.Prefix + kind + ":" + id }
func (s *Store) channel() string            { return s.opts.Prefix + "events" }

func newOrigin() string {
	var b [8]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// setUp records a change between up and down, once, in the log.
func (s *Store) setUp(ctx context.Context, up bool, err error) {
	if s.up.Swap(up) == up {
		return
	}
	if up {
		s.opts.Logger.LogAttrs(ctx, slog.LevelInfo, "redisstore: redis back; state resynchronised")
		return
	}
	s.opts.Logger.LogAttrs(ctx, slog.LevelError, "redisstore: redis unreachable",
		slog.String("error", errString(err)),
		slog.String("baselines", s.opts.Baselines.String()),
		slog.String("revocations", s.opts.Revocations.String()),
		slog.String("replay", s.opts.Replay.String()))
}

func errString(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}

// message is one publication: the new versions of some keys of one
// kind ("b" baselines, "f" facts, "s" session uses, whose Ver is the
// use's time in unix milliseconds).
type message struct {
	Origin string `json:"o"`
	Sent   int64  `json:"t"` // unix milliseconds, for the lag metric
	Kind   string `json:"k"`
	Items  []item `json:"i"`
}

type item struct {
	Key  string          `json:"k"`
	Ver  int64           `json:"v"`
	Data json.RawMessage `json:"d"`
}

func (s *Store) publish(ctx context.Context, kind string, items []item) error {
	m := message{Origin: s.origin, Sent: s.opts.Now().UnixMilli(), Kind: kind, Items: items}
	b, err := json.Marshal(m)
	if err != nil {
		return fmt.Errorf("redisstore: encode message: %w", err)
	}
	return s.client.Publish(ctx, s.channel(), b).Err()
}

// subscribe applies what other instances publish, and resynchronises
// after each reconnection: whatever was published while the
// subscription was down was lost.
func (s *Store) subscribe(ctx context.Context, ps *redis.PubSub) {
	defer s.done.Done()
	defer ps.Close()
	backoff := newBackoff(s.opts.MaxBackoff)
	for ctx.Err() == nil {
		msg, err := ps.ReceiveTimeout(ctx, s.opts.ProbeInterval)
		switch m := msg.(type) {
		case *redis.Message:
			s.receive(ctx, m.Payload)
		case *redis.Subscription:
			if err := s.resync(ctx); err != nil {
				s.fail(ctx, "resync", err)
				backoff.wait(ctx)
				continue
			}
			backoff.reset()
			s.setUp(ctx, true, nil)
		case nil:
			if !s.probe(ctx, ps, err) {
				backoff.wait(ctx)
			}
		}
	}
}

// probe checks an idle or broken subscription. It reports whether
// the subscription looks live.
func (s *Store) probe(ctx context.Context, ps *redis.PubSub, err error) bool {
	if ctx.Err() != nil {
		return false
	}
	if isTimeout(err) {
		pctx, cancel := context.WithTimeout(ctx, s.opts.Timeout)
		err = ps.Ping(pctx)
		cancel()
		if err == nil {
			return true
		}
	}
	s.fail(ctx, "subscribe", err)
	return false
}

func isTimeout(err error) bool {
	var ne interface{ Timeout() bool }
	return errors.As(err, &ne) && ne.Timeout()
}

// fail counts an error of op and marks the store down.
func (s *Store) fail(ctx context.Context, op string, err error) {
	s.tel.error(ctx, op)
	s.opts.Logger.LogAttrs(ctx, slog.LevelDebug, "redisstore: "+op+" failed",
		slog.String("error", errString(err)))
	s.setUp(ctx, false, err)
}

func (s *Store) receive(ctx context.Context, payload string) {
	var m message
	if err := json.Unmarshal([]byte(payload), &m); err != nil {
		s.opts.Logger.LogAttrs(ctx, slog.LevelWarn, "redisstore: unreadable message",
			slog.String("error", err.Error()))
		return
	}
	if m.Origin == s.origin {
		return
	}
	s.tel.lag(ctx, s.opts.Now().Sub(time.UnixMilli(m.Sent)))
	switch m.Kind {
	case "b":
		s.baselines.receive(m.Items)
	case "f":
		s.facts.receive(m.Items)
	case "s":
		s.sessions.receive(m.Items)
	}
}

// resync brings the local state up to date after a (re)subscription:
// local-only revocations are written, every revocation is re-read and
// the cached baselines and session uses are refreshed.
func (s *Store) resync(ctx context.Context) error {
	if err := s.facts.replayQueued(ctx); err != nil {
		return err
	}
	if err := s.facts.load(ctx); err != nil {
		return err
	}
	if err := s.baselines.refreshAll(ctx); err != nil {
		return err
	}
	return s.sessions.rereadCached(ctx)
}

// flushLoop writes learned baselines every FlushInterval.
func (s *Store) flushLoop(ctx context.Context) {
	defer s.done.Done()
	t := time.NewTicker(s.opts.FlushInterval)
	defer t.Stop()
	backoff := newBackoff(s.opts.MaxBackoff)
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		if err := s.baselines.flush(ctx); err != nil {
			s.fail(ctx, "flush", err)
			backoff.wait(ctx)
			continue
		}
		backoff.reset()
	}
}

// backoff waits longer after each failure, up to a maximum.
type backoff struct {
	max, next time.Duration
}

func newBackoff(max time.Duration) *backoff {
	return &backoff{max: max, next: 10 * time.Millisecond}
}

func (b *backoff) reset() { b.next = 10 * time.Millisecond }

func (b *backoff) wait(ctx context.Context) {
	t := time.NewTimer(b.next)
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-t.C:
	}
	b.next = min(2*b.next, b.max)
}

// casScript writes a new value of a versioned key if its version is
// still the one read, and returns the new version, or -1 when another
// writer came first. Versions come from the server's clock, so they
// keep growing when a key expires and is written again.
var casScript = redis.NewScript(`
local v = redis.call('HGET', KEYS[1], 'v') or '0'
if v ~= ARGV[1] then return -1 end
local t = redis.call('TIME')
local n = math.max(tonumber(v) + 1, tonumber(t[1]) * 1000000 + tonumber(t[2]))
redis.call('HSET', KEYS[1], 'v', string.format('%d', n), 'p', ARGV[2])
redis.call('PEXPIRE', KEYS[1], ARGV[3])
return n
`)

// versioned is a value read from Redis with its version; zero Ver
// means absent.
type versioned struct {
	Ver  int64
	Data []byte
}

// readVersioned decodes the reply of HMGET key v p.
func readVersioned(vals []any) (versioned, error) {
	var out versioned
	if len(vals) != 2 || vals[0] == nil {
		return out, nil
	}
	v, ok0 := vals[0].(string)
	p, ok1 := vals[1].(string)
	if !ok0 || !ok1 {
		return out, fmt.Errorf("redisstore: malformed value")
	}
	ver, err := strconv.ParseInt(v, 10, 64)
	if err != nil {
		return out, fmt.Errorf("redisstore: malformed version: %w", err)
	}
	return versioned{Ver: ver, Data: []byte(p)}, nil
}

func ms(d time.Duration) int64 { return max(d.Milliseconds(), 1) }
