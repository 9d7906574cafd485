package redisstore

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/golang-lru/v2/simplelru"
	"github.com/redis/go-redis/v9"

	"github.com/runtimeid/runtimeid/risk"
)

// Sessions returns the store's [risk.SessionStore]: give it to
// [risk.SessionOptions.Shared], so that a token replayed on another
// instance is token_replay there and a session used from two distant
// places on two instances is concurrent_session_far_apart.
//
// Lookup answers from a local cache of at most [Options.MaxSessions]
// uses and never leaves the process. Record updates the cache and
// queues the use; a background writer stores the queued uses in Redis
// (one pipeline per [Options.FlushBatch], each expiring after
// [Options.SessionTTL]) and publishes them, and every instance puts
// the uses it receives into its own cache at once.
//
// A lookup that misses the cache queues its key, without waiting, for
// a background reader, which reads the queued keys from Redis in
// pipelines and caches the uses it finds, unless a later use of the
// same key is cached already. So an instance that starts late, or
// comes back from an outage, learns the uses published before: the
// first lookup of a session misses, those after the read find its
// use. A
// key queued once, found or not, is not queued again within
// [Options.SessionReadWindow] (at most [Options.MaxRecentSessionReads]
// keys are remembered); at most [Options.MaxSessionReads] keys wait,
// and the misses beyond are not read, and counted.
//
// While Redis is unreachable, each instance compares with the uses it
// holds; at most [Options.MaxPendingSessions] uses wait to be written,
// and the uses of further sessions are dropped and counted. Failed
// reads are counted, and a key whose read failed is read again at its
// next miss. When the subscription comes back, every cached key is read
// again, so the uses published while it was down replace older ones.
func (s *Store) Sessions() risk.SessionStore { return s.sessions }

var _ risk.SessionStore = (*sessions)(nil)

// sessions keeps the latest known use of each session and token, and
// the uses recorded here that wait to be written.
type sessions struct {
	s *Store

	// wake has room for one signal: a use is waiting.
	wake chan struct{}

	// dropped counts the uses dropped because the queue was full.
	dropped atomic.Int64

	// reads queues the keys lookups missed, for readLoop.
	reads *sessionReads

	// mu guards uses and pending, both keyed by kind:key.
	mu      sync.Mutex
	uses    *simplelru.LRU[string, risk.SessionUse]
	pending map[string]risk.SessionUse
}

func newSessions(s *Store) *sessions {
	// NewLRU fails only for a size below one.
	uses, _ := simplelru.NewLRU[string, risk.SessionUse](s.opts.MaxSessions, nil)
	return &sessions{s: s, uses: uses, wake: make(chan struct{}, 1),
		reads:   newSessionReads(&s.opts),
		pending: make(map[string]risk.SessionUse)}
}

// Lookup implements [risk.SessionStore]. A miss queues the key for
// the background read, and answers false at once.
func (ss *sessions) Lookup(kind, key string) (risk.SessionUse, bool) {
	ss.mu.Lock()
	u, ok := ss.uses.Get(kind + ":" + key)
	ss.mu.Unlock()
	now := ss.s.opts.Now()
	if ok && !ss.expired(u, now) {
		return u, true
	}
	ss.ask(kind+":"+key, now)
	return risk.SessionUse{}, false
}

// ask queues k for the background read. It is apart from Lookup so
// that k, which the queue keeps, is built on the heap on misses only.
func (ss *sessions) ask(k string, now time.Time) {
	if ss.reads.ask(k, now) {
		ss.s.tel.dropSessionReads(context.Background())
	}
}

func (ss *sessions) expired(u risk.SessionUse, now time.Time) bool {
	return now.Sub(u.Time) > ss.s.opts.SessionTTL
}

// Record implements [risk.SessionStore].
func (ss *sessions) Record(kind, key string, use risk.SessionUse) {
	k := kind + ":" + key
	ss.mu.Lock()
	ss.install(k, use)
	_, queued := ss.pending[k]
	full := !queued && len(ss.pending) >= ss.s.opts.MaxPendingSessions
	if !full {
		ss.pending[k] = newer(ss.pending[k], use)
	}
	ss.mu.Unlock()

	if full {
		ss.dropped.Add(1)
		ss.s.tel.dropSessions(context.Background(), 1)
		return
	}
	ss.signal()
}

// install keeps use for k unless a later one is kept. The caller
// holds mu.
func (ss *sessions) install(k string, use risk.SessionUse) {
	if old, ok := ss.uses.Peek(k); ok && !use.Time.After(old.Time) {
		return
	}
	ss.uses.Add(k, use)
}

func newer(a, b risk.SessionUse) risk.SessionUse {
	if a.Time.After(b.Time) {
		return a
	}
	return b
}

// receive installs uses other instances published.
func (ss *sessions) receive(items []item) {
	keys := make([]string, len(items))
	data := make([][]byte, len(items))
	for i, it := range items {
		keys[i], data[i] = it.Key, it.Data
	}
	ss.installAll(keys, data)
}

// installAll installs the encoded use data[i] of each keys[i], unless
// it is empty, unreadable or older than SessionTTL.
//
// A use stamped after now (a peer's fast clock, another writer) is
// installed as of now: kept with its own time, it would stay the
// latest use, never expire, and hide every use recorded after it.
func (ss *sessions) installAll(keys []string, data [][]byte) {
	now := ss.s.opts.Now()
	uses := make([]risk.SessionUse, len(data))
	ok := make([]bool, len(data))
	for i, d := range data {
		ok[i] = len(d) > 0 && json.Unmarshal(d, &uses[i]) == nil &&
			!ss.expired(uses[i], now)
		if uses[i].Time.After(now) {
			uses[i].Time = now
		}
	}
	ss.mu.Lock()
	defer ss.mu.Unlock()
	for i, k := range keys {
		if ok[i] {
			ss.install(k, uses[i])
		}
	}
}

// loop writes and publishes the queued uses as they come. After a
// failure it waits, longer each time, and tries again.
func (ss *sessions) loop(ctx context.Context) {
	defer ss.s.done.Done()
	backoff := newBackoff(ss.s.opts.MaxBackoff)
	for {
		select {
		case <-ctx.Done():
			return
		case <-ss.wake:
		}
		// A failed write does not mark the store down: it says
		// nothing of the revocations this instance may be missing.
		if err := ss.flush(ctx); err != nil {
			ss.s.tel.error(ctx, "sessions")
			ss.s.opts.Logger.LogAttrs(ctx, slog.LevelDebug,
				"redisstore: session uses not written",
				slog.String("error", err.Error()))
			backoff.wait(ctx)
			ss.signal()
			continue
		}
		backoff.reset()
	}
}

// signal wakes the loop, without waiting.
func (ss *sessions) signal() {
	select {
	case ss.wake <- struct{}{}:
	default:
	}
}

// flush writes and publishes every queued use, FlushBatch at a time.
// What could not be written goes back to the queue, unless a later use
// of the same key was queued meanwhile or the queue is full.
func (ss *sessions) flush(ctx context.Context) error {
	ss.mu.Lock()
	batch := ss.pending
	ss.pending = make(map[string]risk.SessionUse)
	ss.mu.Unlock()

	keys := slices.Sorted(maps.Keys(batch))
	for len(keys) > 0 {
		n := min(ss.s.opts.FlushBatch, len(keys))
		if err := ss.write(ctx, keys[:n], batch); err != nil {
			ss.requeue(ctx, keys, batch)
			return err
		}
		keys = keys[n:]
	}
	return nil
}

// write stores some uses in one pipeline, then publishes them.
func (ss *sessions) write(ctx context.Context, keys []string,
	batch map[string]risk.SessionUse) error {
	items := make([]item, len(keys))
	for i, k := range keys {
		u := batch[k]
		data, err := json.Marshal(u)
		if err != nil {
			return fmt.Errorf("redisstore: encode session use: %w", err)
		}
		items[i] = item{Key: k, Ver: u.Time.UnixMilli(), Data: data}
	}
	ctx, cancel := context.WithTimeout(ctx, ss.s.opts.Timeout)
	defer cancel()
	ttl := ss.s.opts.SessionTTL
	_, err := ss.s.client.Pipelined(ctx, func(p redis.Pipeliner) error {
		for _, it := range items {
			p.Set(ctx, ss.s.key("s", it.Key), []byte(it.Data), ttl)
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("redisstore: write session uses: %w", err)
	}
	if err := ss.s.publish(ctx, "s", items); err != nil {
		return fmt.Errorf("redisstore: publish session uses: %w", err)
	}
	return nil
}

// requeue puts uses that were not written back in the queue, within
// its bound; the rest are dropped and counted.
func (ss *sessions) requeue(ctx context.Context, keys []string,
	batch map[string]risk.SessionUse) {
	ss.mu.Lock()
	dropped := 0
	for _, k := range keys {
		cur, ok := ss.pending[k]
		switch {
		case ok:
			ss.pending[k] = newer(cur, batch[k])
		case len(ss.pending) < ss.s.opts.MaxPendingSessions:
			ss.pending[k] = batch[k]
		default:
			dropped++
		}
	}
	ss.mu.Unlock()
	if dropped > 0 {
		ss.dropped.Add(int64(dropped))
		ss.s.tel.dropSessions(ctx, int64(dropped))
	}
}

func (ss *sessions) pendingLen() int {
	ss.mu.Lock()
	defer ss.mu.Unlock()
	return len(ss.pending)
}
