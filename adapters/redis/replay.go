package redisstore

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"log/slog"
	"time"

	"github.com/runtimeid/runtimeid"
)

// Replay returns the store's [runtimeid.ReplayCache], shared by every
// instance: give it to [runtimeid.DPoPOptions.Replay].
//
// Seen first asks a local cache, so a proof this instance has seen is
// refused without a round trip; otherwise it records the key in Redis
// with SET NX PX, one round trip per new proof. It cannot be avoided:
// a replayed proof is sent to whichever instance the load balancer
// picks, so only the shared record can tell. Keys are stored as
// SHA-256 hashes, whatever their length. When Redis cannot answer
// within [Options.Timeout], Seen returns an error wrapping
// [ErrUnavailable] (FailClosed: the proof is refused), or the local
// answer (ContinueLocal: a proof can then be replayed once on each
// other instance).
func (s *Store) Replay() runtimeid.ReplayCache { return s.replay }

var _ runtimeid.ReplayCache = (*replay)(nil)

type replay struct {
	s     *Store
	local *runtimeid.MemoryReplayCache
}

func newReplay(s *Store) *replay {
	return &replay{s: s, local: runtimeid.NewMemoryReplayCache(s.opts.ReplaySize, s.opts.Now)}
}

// Seen implements [runtimeid.ReplayCache].
func (r *replay) Seen(ctx context.Context, key string, until time.Time) (bool, error) {
	// A full local cache only costs the round trip it would save.
	if seen, err := r.local.Seen(ctx, key, until); err == nil && seen {
		return true, nil
	}
	ttl := max(until.Sub(r.s.opts.Now()), time.Millisecond)
	h := sha256.Sum256([]byte(key))
	rk := r.s.key("r", hex.EncodeToString(h[:16]))

	ctx, cancel := context.WithTimeout(ctx, r.s.opts.Timeout)
	defer cancel()
	fresh, err := r.s.client.SetNX(ctx, rk, "1", ttl).Result()
	if err == nil {
		return !fresh, nil
	}
	r.s.tel.error(ctx, "replay")
	if r.s.opts.Replay == FailClosed {
		return false, fmt.Errorf("%w: replay check: %w", ErrUnavailable, err)
	}
	r.s.tel.fallback(ctx, "replay")
	r.s.opts.Logger.LogAttrs(ctx, slog.LevelWarn, "redisstore: replay checked locally only",
		slog.String("error", err.Error()))
	return false, nil
}
