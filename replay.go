package runtimeid

import (
	"container/heap"
	"context"
	"errors"
	"fmt"
	"sync"
	"time"
)

// DefaultReplayCacheSize is the capacity of the in-memory replay cache
// that [NewDPoP] builds when [DPoPOptions.Replay] is nil.
const DefaultReplayCacheSize = 100_000

// ErrReplayCacheFull means a [MemoryReplayCache] holds its maximum of
// unexpired entries and refuses to record another.
var ErrReplayCacheFull = errors.New("runtimeid: replay cache full")

// ReplayCache remembers one-time identifiers, such as the jti of DPoP
// proofs, until they expire.
//
// Seen records key until the given time and reports false, or reports
// true when key is already recorded and unexpired. The check and the
// record must be one atomic step, so that two requests racing with the
// same key never both see false. An error means the key could not be
// checked; the caller refuses the request. Implementations must be safe
// for concurrent use. To stop replays across several instances of a
// service, they must share one cache (a later release adds one backed by
// a shared store).
type ReplayCache interface {
	Seen(ctx context.Context, key string, until time.Time) (bool, error)
}

// MemoryReplayCache is a [ReplayCache] held in this process's memory,
// bounded to a maximum number of entries. It protects one instance only.
//
// When it is full of unexpired entries it fails closed: Seen returns
// [ErrReplayCacheFull] and the proof is refused, rather than evicting
// an entry whose key could then be replayed within its lifetime. Size
// it for the request rate times the lifetime of an entry: 100,000
// entries hold about 1,500 proofs a second for a 65-second window, in
// roughly 15 MB.
type MemoryReplayCache struct {
	max int
	now func() time.Time

	// mu guards keys and order.
	mu    sync.Mutex
	keys  map[string]time.Time
	order expiryHeap
}

var _ ReplayCache = (*MemoryReplayCache)(nil)

// NewMemoryReplayCache returns an empty cache that holds at most max
// entries; max <= 0 means [DefaultReplayCacheSize]. now is the clock
// that decides when entries expire; nil means [time.Now].
func NewMemoryReplayCache(max int, now func() time.Time) *MemoryReplayCache {
	if max <= 0 {
		max = DefaultReplayCacheSize
	}
	if now == nil {
		now = time.Now
	}
	return &MemoryReplayCache{max: max, now: now, keys: make(map[string]time.Time)}
}

// Seen implements [ReplayCache]. Expired entries are dropped as new ones
// arrive, oldest expiry first.
func (c *MemoryReplayCache) Seen(_ context.Context, key string, until time.Time) (bool, error) {
	now := c.now()
	c.mu.Lock()
	defer c.mu.Unlock()

	c.expire(now)
	if exp, ok := c.keys[key]; ok && exp.After(now) {
		return true, nil
	}
	if len(c.keys) >= c.max {
		return false, fmt.Errorf("%w: %d unexpired entries", ErrReplayCacheFull, c.max)
	}
	c.keys[key] = until
	heap.Push(&c.order, expiry{key: key, until: until})
	return false, nil
}

// Len returns the number of entries held, expired or not.
func (c *MemoryReplayCache) Len() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.keys)
}

// expire drops every entry whose time has passed. The caller holds mu.
func (c *MemoryReplayCache) expire(now time.Time) {
	for len(c.order) > 0 && !c.order[0].until.After(now) {
		e := heap.Pop(&c.order).(expiry)
		if exp, ok := c.keys[e.key]; ok && exp.Equal(e.until) {
			delete(c.keys, e.key)
		}
	}
}

type expiry struct {
	key   string
	until time.Time
}

// expiryHeap orders entries by expiry, soonest first.
type expiryHeap []expiry

func (h expiryHeap) Len() int           { return len(h) }
func (h expiryHeap) Less(i, j int) bool { return h[i].until.Before(h[j].until) }
func (h expiryHeap) Swap(i, j int)      { h[i], h[j] = h[j], h[i] }
func (h *expiryHeap) Push(x any)        { *h = append(*h, x.(expiry)) }

func (h *expiryHeap) Pop() any {
	old := *h
	e := old[len(old)-1]
	*h = old[:len(old)-1]
	return e
}
