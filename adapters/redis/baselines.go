package redisstore

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"

	"github.com/hashicorp/golang-lru/v2/simplelru"
	"github.com/redis/go-redis/v9"

	"github.com/runtimeid/runtimeid/risk"
)

// ErrPendingFull means [Options.MaxPending] subjects were waiting to be
// flushed, so one more subject's learning was dropped.
var ErrPendingFull = errors.New("redisstore: too many subjects waiting to be flushed")

// maxConflicts bounds the retries of a write that other instances keep
// overtaking.
const maxConflicts = 8

// Baselines returns the store's [risk.Store] of subject baselines: see
// the package documentation.
//
// Get answers from the local cache, reading a subject it does not hold
// from Redis once (bounded by [Options.Timeout]). While Redis is
// unreachable, a subject not cached locally gets what this instance
// learned of it since the outage began (ContinueLocal) or an error
// wrapping [ErrUnavailable] (FailClosed). Update never does I/O; it
// fails only with [ErrPendingFull].
func (s *Store) Baselines() risk.Store { return s.baselines }

var _ risk.Store = (*baselines)(nil)

// baselines keeps three things per subject: the view the request path
// reads (the last Redis copy with everything learned here since), the
// pending learning not yet flushed, and the learning being flushed.
type baselines struct {
	s *Store

	// mu guards the fields below it.
	mu       sync.Mutex
	views    *simplelru.LRU[string, view]
	pending  map[string]*risk.Profile
	inflight map[string]flight
	gen      uint64
}

// view is the profile of one subject as this instance sees it. ver is
// the version of the Redis copy it was built from; gen changes each
// time it is rebuilt from Redis.
type view struct {
	p   *risk.Profile
	ver int64
	gen uint64
}

// flight is learning being flushed, with the generation of the view
// when the flush began.
type flight struct {
	delta *risk.Profile
	gen   uint64
	seen  bool // the view existed
}

func newBaselines(s *Store) *baselines {
	// NewLRU fails only for a size below one.
	views, _ := simplelru.NewLRU[string, view](s.opts.MaxSubjects, nil)
	return &baselines{s: s, views: views,
		pending: make(map[string]*risk.Profile), inflight: make(map[string]flight)}
}

// Get implements [risk.Store].
func (b *baselines) Get(ctx context.Context, subject string) (*risk.Profile, error) {
	b.mu.Lock()
	v, ok := b.views.Get(subject)
	b.mu.Unlock()
	if ok {
		return v.p, nil
	}
	return b.readThrough(ctx, subject)
}

// Update implements [risk.Store]. It applies fn twice: to the view, and
// to the subject's pending learning, which starts empty; both are
// copies, so readers are never disturbed.
func (b *baselines) Update(ctx context.Context, subject string, fn func(*risk.Profile)) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if v, ok := b.views.Peek(subject); ok {
		v.p = change(v.p, fn)
		b.views.Add(subject, v)
	}
	d, ok := b.pending[subject]
	if !ok && len(b.pending) >= b.s.opts.MaxPending {
		b.s.tel.drop(ctx)
		return fmt.Errorf("%w: %d subjects", ErrPendingFull, len(b.pending))
	}
	b.pending[subject] = change(d, fn)
	return nil
}

func change(p *risk.Profile, fn func(*risk.Profile)) *risk.Profile {
	c := p.Clone()
	if c == nil {
		c = &risk.Profile{}
	}
	fn(c)
	return c
}

func (b *baselines) pendingLen() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return len(b.pending) + len(b.inflight)
}

// readThrough reads a subject missing from the cache from Redis.
func (b *baselines) readThrough(ctx context.Context, subject string) (*risk.Profile, error) {
	if !b.s.Healthy() {
		return b.local(ctx, subject, ErrUnavailable)
	}
	rctx, cancel := context.WithTimeout(ctx, b.s.opts.Timeout)
	vals, err := b.s.client.HMGet(rctx, b.s.key("b", subject), "v", "p").Result()
	cancel()
	var r versioned
	if err == nil {
		r, err = readVersioned(vals)
	}
	var p *risk.Profile
	if err == nil {
		p, err = decodeProfile(r.Data)
	}
	if err != nil {
		b.s.tel.error(ctx, "read")
		return b.local(ctx, subject, err)
	}
	return b.install(subject, p, r.Ver, true), nil
}

// local answers for a subject Redis could not be asked about.
func (b *baselines) local(ctx context.Context, subject string, err error) (*risk.Profile, error) {
	if b.s.opts.Baselines == FailClosed {
		return nil, fmt.Errorf("%w: read baseline: %w", ErrUnavailable, err)
	}
	b.s.tel.fallback(ctx, "baselines")
	b.mu.Lock()
	defer b.mu.Unlock()
	return mergeProfiles(b.inflight[subject].delta, b.pending[subject]), nil
}

// install makes the Redis copy p at version ver the subject's view,
// with the pending learning on top, unless the view is as new already.
// A view being flushed is left without its flight: the flush's commit
// rebuilds it from the copy it wrote, which holds the flight. Only
// with create does it add a subject the cache does not hold.
func (b *baselines) install(subject string, p *risk.Profile, ver int64, create bool) *risk.Profile {
	b.mu.Lock()
	defer b.mu.Unlock()
	old, ok := b.views.Peek(subject)
	switch {
	case ok && old.ver >= ver:
		return old.p
	case !ok && !create:
		return nil
	}
	b.gen++
	v := view{p: mergeProfiles(p, b.pending[subject]), ver: ver, gen: b.gen}
	b.views.Add(subject, v)
	return v.p
}

// receive applies baselines other instances flushed, to the subjects
// cached here.
func (b *baselines) receive(items []item) {
	for _, it := range items {
		p, err := decodeProfile(it.Data)
		if err != nil {
			continue
		}
		b.install(it.Key, p, it.Ver, false)
	}
}

// refreshAll re-reads every cached subject, after an outage in which
// other instances' flushes were not received.
func (b *baselines) refreshAll(ctx context.Context) error {
	b.mu.Lock()
	subjects := b.views.Keys()
	b.mu.Unlock()
	for chunk := range chunks(subjects, b.s.opts.FlushBatch) {
		got, err := b.read(ctx, chunk)
		if err != nil {
			return err
		}
		for i, s := range chunk {
			p, err := decodeProfile(got[i].Data)
			if err == nil {
				b.install(s, p, got[i].Ver, false)
			}
		}
	}
	return nil
}

// read reads the Redis copies of subjects in one pipeline.
func (b *baselines) read(ctx context.Context, subjects []string) ([]versioned, error) {
	ctx, cancel := context.WithTimeout(ctx, b.s.opts.Timeout)
	defer cancel()
	cmds := make([]*redis.SliceCmd, len(subjects))
	_, err := b.s.client.Pipelined(ctx, func(p redis.Pipeliner) error {
		for i, s := range subjects {
			cmds[i] = p.HMGet(ctx, b.s.key("b", s), "v", "p")
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("redisstore: read baselines: %w", err)
	}
	out := make([]versioned, len(subjects))
	for i, c := range cmds {
		if out[i], err = readVersioned(c.Val()); err != nil {
			return nil, err
		}
	}
	return out, nil
}

func chunks[T any](all []T, n int) func(func([]T) bool) {
	return func(yield func([]T) bool) {
		for len(all) > 0 {
			k := min(n, len(all))
			if !yield(all[:k]) {
				return
			}
			all = all[k:]
		}
	}
}

func decodeProfile(data []byte) (*risk.Profile, error) {
	if len(data) == 0 {
		return nil, nil
	}
	var p risk.Profile
	if err := json.Unmarshal(data, &p); err != nil {
		return nil, fmt.Errorf("redisstore: decode baseline: %w", err)
	}
	return &p, nil
}
