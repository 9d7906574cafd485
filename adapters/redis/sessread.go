package redisstore

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/golang-lru/v2/simplelru"
	"github.com/redis/go-redis/v9"
)

// sessionReads queues the keys a lookup missed, for the background
// read, and remembers the keys queued lately, so that a key missing
// everywhere is not read again at each miss.
type sessionReads struct {
	queue  chan string
	window time.Duration

	// dropped counts the keys not queued because the queue was full.
	dropped atomic.Int64

	// failing is set while reads fail, so that the log says it once.
	failing atomic.Bool

	// mu guards recent: when each key was last queued.
	mu     sync.Mutex
	recent *simplelru.LRU[string, time.Time]
}

func newSessionReads(o *Options) *sessionReads {
	// NewLRU fails only for a size below one.
	recent, _ := simplelru.NewLRU[string, time.Time](o.MaxRecentSessionReads, nil)
	return &sessionReads{queue: make(chan string, o.MaxSessionReads),
		window: o.SessionReadWindow, recent: recent}
}

// ask queues k unless it was queued within the window, without
// waiting. When the queue is full, k is not remembered, so that its
// next miss may queue it; ask reports whether k was dropped.
func (r *sessionReads) ask(k string, now time.Time) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	if at, ok := r.recent.Peek(k); ok && now.Sub(at) < r.window {
		return false
	}
	select {
	case r.queue <- k:
		r.recent.Add(k, now)
		return false
	default:
		r.dropped.Add(1)
		return true
	}
}

// forget lets keys be queued again at their next miss.
func (r *sessionReads) forget(keys []string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, k := range keys {
		r.recent.Remove(k)
	}
}

func (r *sessionReads) recentLen() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.recent.Len()
}

// next waits for a queued key, then takes what else is queued, up to
// n keys in all. It returns nil once ctx is done.
func (r *sessionReads) next(ctx context.Context, n int) []string {
	var keys []string
	select {
	case <-ctx.Done():
		return nil
	case k := <-r.queue:
		keys = append(keys, k)
	}
	for len(keys) < n {
		select {
		case k := <-r.queue:
			keys = append(keys, k)
		default:
			return keys
		}
	}
	return keys
}

// readLoop reads the keys lookups missed, FlushBatch at a time, and
// caches the uses Redis holds. After a failure it waits, longer each
// time; the failed keys are forgotten, so their next miss reads them.
func (ss *sessions) readLoop(ctx context.Context) {
	defer ss.s.done.Done()
	backoff := newBackoff(ss.s.opts.MaxBackoff)
	for {
		keys := ss.reads.next(ctx, ss.s.opts.FlushBatch)
		if keys == nil {
			return
		}
		err := ss.readBack(ctx, keys)
		if ctx.Err() != nil {
			return
		}
		ss.readState(ctx, err)
		if err != nil {
			ss.reads.forget(keys)
			backoff.wait(ctx)
			continue
		}
		backoff.reset()
	}
}

// maxSessionUse is the most bytes of a stored session use read back.
const maxSessionUse = 4096

// readBack reads some keys in one pipeline and caches the uses found.
func (ss *sessions) readBack(ctx context.Context, keys []string) error {
	ctx, cancel := context.WithTimeout(ctx, ss.s.opts.Timeout)
	defer cancel()
	cmds := make([]*redis.StringCmd, len(keys))
	_, err := ss.s.client.Pipelined(ctx, func(p redis.Pipeliner) error {
		for i, k := range keys {
			// A use is a few hundred bytes: a larger value, written by
			// something else, is read only in part and fails to parse.
			cmds[i] = p.GetRange(ctx, ss.s.key("s", k), 0, maxSessionUse-1)
		}
		return nil
	})
	// A reply error (a key of another type, written by something
	// else) fails that key only: its data is empty and ignored.
	var reply redis.Error
	if err != nil && !errors.Is(err, redis.Nil) && !errors.As(err, &reply) {
		return fmt.Errorf("redisstore: read session uses: %w", err)
	}
	data := make([][]byte, len(cmds))
	for i, c := range cmds {
		data[i], _ = c.Bytes()
	}
	ss.installAll(keys, data)
	return nil
}

// rereadCached reads every cached key again, in pipelines of
// FlushBatch, after a (re)subscription: the uses published while the
// subscription was down replace the older ones cached.
func (ss *sessions) rereadCached(ctx context.Context) error {
	ss.mu.Lock()
	keys := ss.uses.Keys()
	ss.mu.Unlock()
	for batch := range slices.Chunk(keys, ss.s.opts.FlushBatch) {
		if err := ss.readBack(ctx, batch); err != nil {
			return err
		}
	}
	return nil
}

// readState counts a failed read, and logs each change between
// failing and working reads once. A failed read does not mark the
// store down, as a failed write does not.
func (ss *sessions) readState(ctx context.Context, err error) {
	failing := err != nil
	if failing {
		ss.s.tel.error(ctx, "sessions_read")
	}
	if ss.reads.failing.Swap(failing) == failing {
		return
	}
	if failing {
		ss.s.opts.Logger.LogAttrs(ctx, slog.LevelWarn,
			"redisstore: session uses not read back",
			slog.String("error", err.Error()))
		return
	}
	ss.s.opts.Logger.LogAttrs(ctx, slog.LevelInfo,
		"redisstore: session uses read back again")
}
