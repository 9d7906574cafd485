package redisstore

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"strconv"
	"sync"
	"time"

	"github.com/hashicorp/golang-lru/v2/simplelru"
	"github.com/redis/go-redis/v9"

	"github.com/runtimeid/runtimeid/signals/ssf"
)

// ReasonUnavailable is the reason every token is refused for while
// revocations fail closed and this instance may be missing some.
const ReasonUnavailable = "revocation state unavailable"

// unavailable are the facts every key has while revocations fail
// closed: a block that refuses any token.
var unavailable = &ssf.Facts{Blocked: ReasonUnavailable}

// Revocations returns the store's [ssf.Store] of pushed facts: see the
// package documentation.
//
// Lookup never leaves the process. While the store is down (see
// [Store.Healthy]) and revocations fail closed, every key is blocked
// for [ReasonUnavailable], so every token is refused.
//
// Update writes to Redis and publishes before it returns, bounded by
// [Options.Timeout]. When it cannot, the change is applied locally all
// the same and queued, to be written when Redis returns; FailClosed
// also returns an error wrapping [ErrUnavailable], so that the
// receiver answers 503 and the transmitter delivers again.
func (s *Store) Revocations() ssf.Store { return s.facts }

var _ ssf.Store = (*facts)(nil)

type facts struct {
	s *Store

	// mu guards entries. Lookups share it; updates replace whole
	// values, so a reader never sees one change.
	mu      sync.RWMutex
	entries *simplelru.LRU[ssf.Key, factEntry]

	// qmu guards queued: updates applied here only.
	qmu    sync.Mutex
	queued []queuedUpdate
}

type factEntry struct {
	f   *ssf.Facts
	ver int64
}

type queuedUpdate struct {
	key   ssf.Key
	now   time.Time
	apply func(*ssf.Facts)
}

func newFacts(s *Store) *facts {
	// NewLRU fails only for a size below one.
	entries, _ := simplelru.NewLRU[ssf.Key, factEntry](s.opts.MaxFacts, nil)
	return &facts{s: s, entries: entries}
}

// Lookup implements [ssf.Store].
func (f *facts) Lookup(key ssf.Key, now time.Time) (*ssf.Facts, bool) {
	if f.s.opts.Revocations == FailClosed && !f.s.Healthy() {
		return unavailable, true
	}
	f.mu.RLock()
	e, ok := f.entries.Peek(key)
	f.mu.RUnlock()
	if !ok || now.Sub(e.f.Updated) > f.s.opts.Retention {
		return nil, false
	}
	return e.f, true
}

// Update implements [ssf.Store].
func (f *facts) Update(key ssf.Key, now time.Time, apply func(*ssf.Facts)) error {
	ctx, cancel := context.WithTimeout(context.Background(), f.s.opts.Timeout)
	defer cancel()
	err := f.write(ctx, key, now, apply)
	if err == nil {
		return nil
	}
	f.s.tel.error(ctx, "revocation")
	f.applyLocal(key, now, apply)
	f.queue(ctx, queuedUpdate{key: key, now: now, apply: apply})
	f.s.opts.Logger.LogAttrs(ctx, slog.LevelWarn, "redisstore: revocation kept locally",
		slog.String("key", key.String()), slog.String("error", err.Error()))
	if f.s.opts.Revocations == FailClosed {
		return fmt.Errorf("%w: revocation not shared: %w", ErrUnavailable, err)
	}
	f.s.tel.fallback(ctx, "revocations")
	return nil
}

// write applies an update to the Redis copy of key, publishes it and
// installs it here.
func (f *facts) write(ctx context.Context, key ssf.Key, now time.Time,
	apply func(*ssf.Facts)) error {
	enc := encodeKey(key)
	rk := f.s.key("f", enc)
	for range maxConflicts {
		vals, err := f.s.client.HMGet(ctx, rk, "v", "p").Result()
		if err != nil {
			return fmt.Errorf("redisstore: read revocation: %w", err)
		}
		cur, err := readVersioned(vals)
		if err != nil {
			return err
		}
		next := f.current(cur, now)
		apply(&next)
		next.Updated = now
		data, err := json.Marshal(&next)
		if err != nil {
			return fmt.Errorf("redisstore: encode revocation: %w", err)
		}
		n, err := casScript.Run(ctx, f.s.client, []string{rk},
			cur.Ver, data, ms(f.s.opts.Retention)).Int64()
		if err != nil {
			return fmt.Errorf("redisstore: write revocation: %w", err)
		}
		if n < 0 {
			continue
		}
		f.install(key, &next, n)
		return f.announce(ctx, enc, n, data, now)
	}
	return fmt.Errorf("redisstore: revocation of %s kept changing", key)
}

// current is the starting point of an update: the Redis copy, unless
// it is unreadable or older than Retention.
func (f *facts) current(cur versioned, now time.Time) ssf.Facts {
	var out ssf.Facts
	if len(cur.Data) == 0 || json.Unmarshal(cur.Data, &out) != nil ||
		now.Sub(out.Updated) > f.s.opts.Retention {
		return ssf.Facts{}
	}
	return out
}

// announce indexes a written key for [facts.load] and publishes it.
func (f *facts) announce(ctx context.Context, enc string, ver int64,
	data []byte, now time.Time) error {
	idx := f.s.key("f", "index")
	_, err := f.s.client.Pipelined(ctx, func(p redis.Pipeliner) error {
		p.ZAdd(ctx, idx, redis.Z{Score: float64(now.UnixMilli()), Member: enc})
		old := strconv.FormatInt(now.Add(-f.s.opts.Retention).UnixMilli(), 10)
		p.ZRemRangeByScore(ctx, idx, "-inf", "("+old)
		return nil
	})
	if err != nil {
		return fmt.Errorf("redisstore: index revocation: %w", err)
	}
	err = f.s.publish(ctx, "f", []item{{Key: enc, Ver: ver, Data: data}})
	if err != nil {
		return fmt.Errorf("redisstore: publish revocation: %w", err)
	}
	return nil
}

// install keeps facts of version ver for key, unless newer ones are
// kept. A change applied only here keeps the version it changed, so
// a copy of that same version does not undo it.
func (f *facts) install(key ssf.Key, v *ssf.Facts, ver int64) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if old, ok := f.entries.Peek(key); ok && old.ver >= ver {
		return
	}
	f.entries.Add(key, factEntry{f: v, ver: ver})
}

func (f *facts) applyLocal(key ssf.Key, now time.Time, apply func(*ssf.Facts)) {
	f.mu.Lock()
	defer f.mu.Unlock()
	var next ssf.Facts
	old, ok := f.entries.Peek(key)
	if ok && now.Sub(old.f.Updated) <= f.s.opts.Retention {
		next = *old.f
	}
	apply(&next)
	next.Updated = now
	f.entries.Add(key, factEntry{f: &next, ver: old.ver})
}

// queue keeps an update for [facts.replayQueued]; at most MaxFacts
// are kept, dropping the oldest, which stays applied here.
func (f *facts) queue(ctx context.Context, q queuedUpdate) {
	f.qmu.Lock()
	defer f.qmu.Unlock()
	if len(f.queued) >= f.s.opts.MaxFacts {
		f.queued = f.queued[1:]
		f.s.tel.drop(ctx)
	}
	f.queued = append(f.queued, q)
}

// replayQueued writes the updates applied only here, in order.
func (f *facts) replayQueued(ctx context.Context) error {
	f.qmu.Lock()
	q := f.queued
	f.queued = nil
	f.qmu.Unlock()
	for i, u := range q {
		wctx, cancel := context.WithTimeout(ctx, f.s.opts.Timeout)
		err := f.write(wctx, u.key, u.now, u.apply)
		cancel()
		if err != nil {
			f.qmu.Lock()
			f.queued = append(q[i:len(q):len(q)], f.queued...)
			f.qmu.Unlock()
			return err
		}
	}
	return nil
}

// load reads every revocation kept in Redis.
func (f *facts) load(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, 10*f.s.opts.Timeout)
	defer cancel()
	from := f.s.opts.Now().Add(-f.s.opts.Retention).UnixMilli()
	keys, err := f.s.client.ZRangeByScore(ctx, f.s.key("f", "index"),
		&redis.ZRangeBy{Min: strconv.FormatInt(from, 10), Max: "+inf"}).Result()
	if err != nil {
		return fmt.Errorf("redisstore: list revocations: %w", err)
	}
	for chunk := range chunks(keys, f.s.opts.FlushBatch) {
		if err := f.loadChunk(ctx, chunk); err != nil {
			return err
		}
	}
	return nil
}

func (f *facts) loadChunk(ctx context.Context, encs []string) error {
	cmds := make([]*redis.SliceCmd, len(encs))
	_, err := f.s.client.Pipelined(ctx, func(p redis.Pipeliner) error {
		for i, e := range encs {
			cmds[i] = p.HMGet(ctx, f.s.key("f", e), "v", "p")
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("redisstore: load revocations: %w", err)
	}
	items := make([]item, 0, len(encs))
	for i, c := range cmds {
		v, err := readVersioned(c.Val())
		if err == nil && v.Ver > 0 {
			items = append(items, item{Key: encs[i], Ver: v.Ver, Data: v.Data})
		}
	}
	f.receive(items)
	return nil
}

// receive installs facts written elsewhere.
func (f *facts) receive(items []item) {
	for _, it := range items {
		key, err := decodeKey(it.Key)
		if err != nil {
			continue
		}
		var v ssf.Facts
		if json.Unmarshal(it.Data, &v) != nil {
			continue
		}
		f.install(key, &v, it.Ver)
	}
}

// encodeKey writes a key as a JSON array, kind first: unambiguous
// whatever the issuer and id hold.
func encodeKey(k ssf.Key) string {
	b, _ := json.Marshal([]any{uint8(k.Kind), k.Issuer, k.ID})
	return string(b)
}

func decodeKey(s string) (ssf.Key, error) {
	var parts []json.RawMessage
	if err := json.Unmarshal([]byte(s), &parts); err != nil || len(parts) != 3 {
		return ssf.Key{}, fmt.Errorf("redisstore: malformed key %q", s)
	}
	var k ssf.Key
	var kind uint8
	errs := []error{json.Unmarshal(parts[0], &kind),
		json.Unmarshal(parts[1], &k.Issuer), json.Unmarshal(parts[2], &k.ID)}
	for _, err := range errs {
		if err != nil {
			return ssf.Key{}, fmt.Errorf("redisstore: malformed key %q: %w", s, err)
		}
	}
	k.Kind = ssf.Kind(kind)
	return k, nil
}
