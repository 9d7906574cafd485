package redisstore

import (
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"slices"

	"github.com/redis/go-redis/v9"

	"github.com/runtimeid/runtimeid/risk"
)

// written is one subject's merged baseline as it was written.
type written struct {
	subject string
	p       *risk.Profile
	ver     int64
	data    []byte
}

// flush merges the pending learning into the Redis copies, in
// pipelines of FlushBatch subjects, and publishes the results. What
// could not be written goes back to pending, merged with what was
// learned meanwhile, for the next flush.
func (b *baselines) flush(ctx context.Context) error {
	subjects := b.takeOff()
	for len(subjects) > 0 {
		k := min(b.s.opts.FlushBatch, len(subjects))
		done, err := b.writeChunk(ctx, subjects[:k])
		b.commit(done)
		if len(done) > 0 {
			b.announce(ctx, done)
		}
		if err != nil {
			b.land(subjects)
			return err
		}
		subjects = subjects[k:]
	}
	return nil
}

// takeOff moves the pending learning into flight.
func (b *baselines) takeOff() []string {
	b.mu.Lock()
	defer b.mu.Unlock()
	for s, d := range b.pending {
		v, ok := b.views.Peek(s)
		b.inflight[s] = flight{delta: d, gen: v.gen, seen: ok}
	}
	clear(b.pending)
	return slices.Collect(maps.Keys(b.inflight))
}

// writeChunk merges and writes some subjects' learning, retrying the
// subjects another instance wrote between the read and the write.
func (b *baselines) writeChunk(ctx context.Context, subjects []string) ([]written, error) {
	var done []written
	todo := subjects
	for range maxConflicts {
		got, err := b.read(ctx, todo)
		if err != nil {
			return done, err
		}
		w, err := b.merge(todo, got)
		if err != nil {
			return done, err
		}
		var lost []string
		ok, err := b.write(ctx, w, got)
		for i := range w {
			switch {
			case err != nil:
			case ok[i]:
				done = append(done, w[i])
			default:
				lost = append(lost, w[i].subject)
			}
		}
		if err != nil || len(lost) == 0 {
			return done, err
		}
		todo = lost
	}
	return done, fmt.Errorf("redisstore: flush: %d subjects kept changing", len(todo))
}

// merge puts each subject's flight on top of its Redis copy.
func (b *baselines) merge(subjects []string, got []versioned) ([]written, error) {
	b.mu.Lock()
	deltas := make([]*risk.Profile, len(subjects))
	for i, s := range subjects {
		deltas[i] = b.inflight[s].delta
	}
	b.mu.Unlock()
	out := make([]written, len(subjects))
	for i, s := range subjects {
		cur, err := decodeProfile(got[i].Data)
		if err != nil {
			// An unreadable copy is replaced rather than blocking
			// the subject's learning for ever.
			cur = nil
		}
		m := mergeProfiles(cur, deltas[i])
		data, err := json.Marshal(m)
		if err != nil {
			return nil, fmt.Errorf("redisstore: encode baseline: %w", err)
		}
		out[i] = written{subject: s, p: m, data: data}
	}
	return out, nil
}

// write runs the compare-and-set of each merged baseline in one
// pipeline; ok[i] reports whether w[i] was written, and sets its ver.
func (b *baselines) write(ctx context.Context, w []written, got []versioned) ([]bool, error) {
	ctx, cancel := context.WithTimeout(ctx, b.s.opts.Timeout)
	defer cancel()
	ttl := ms(b.s.opts.BaselineTTL)
	cmds := make([]*redis.Cmd, len(w))
	_, err := b.s.client.Pipelined(ctx, func(p redis.Pipeliner) error {
		for i := range w {
			cmds[i] = casScript.Eval(ctx, p, []string{b.s.key("b", w[i].subject)},
				got[i].Ver, w[i].data, ttl)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("redisstore: write baselines: %w", err)
	}
	ok := make([]bool, len(w))
	for i, c := range cmds {
		n, err := c.Int64()
		if err != nil {
			return nil, fmt.Errorf("redisstore: write baselines: %w", err)
		}
		w[i].ver, ok[i] = n, n > 0
	}
	return ok, nil
}

// commit ends the flight of what was written: each cached view
// becomes the written copy with what was learned meanwhile on top.
func (b *baselines) commit(done []written) {
	b.mu.Lock()
	defer b.mu.Unlock()
	for _, w := range done {
		delete(b.inflight, w.subject)
		v, ok := b.views.Peek(w.subject)
		if !ok || v.ver >= w.ver {
			continue
		}
		b.gen++
		b.views.Add(w.subject, view{p: mergeProfiles(w.p, b.pending[w.subject]),
			ver: w.ver, gen: b.gen})
	}
}

// land returns the flight of subjects not written to pending. A view
// rebuilt from Redis during the flight lacks it, and gets it back.
func (b *baselines) land(subjects []string) {
	b.mu.Lock()
	defer b.mu.Unlock()
	for _, s := range subjects {
		f, ok := b.inflight[s]
		if !ok {
			continue
		}
		delete(b.inflight, s)
		b.pending[s] = mergeProfiles(f.delta, b.pending[s])
		if v, ok := b.views.Peek(s); ok && (!f.seen || v.gen != f.gen) {
			v.p = mergeProfiles(v.p, f.delta)
			b.views.Add(s, v)
		}
	}
}

// announce publishes written baselines; an instance that misses the
// message reads the subject on its next cache miss or resync.
func (b *baselines) announce(ctx context.Context, done []written) {
	items := make([]item, len(done))
	for i, w := range done {
		items[i] = item{Key: w.subject, Ver: w.ver, Data: w.data}
	}
	ctx, cancel := context.WithTimeout(ctx, b.s.opts.Timeout)
	defer cancel()
	if err := b.s.publish(ctx, "b", items); err != nil {
		b.s.tel.error(ctx, "publish")
	}
}
