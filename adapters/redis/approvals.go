package redisstore

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/runtimeid/runtimeid"
)

// Approvals returns the store's [runtimeid.ApprovalStore]: give it to
// [runtimeid.ApprovalsOptions.Store] on every instance, so that an
// approval an agent's challenge created on one instance can be decided
// through another and used on a third, once.
//
// Every call is one round trip to Redis (List, two), made only for
// agents' challenged actions that carry an approval, and by the
// approval endpoint. An approval is a hash under its SHA-256-hashed
// id; Redis keeps it for as long again after it expires, so a late
// decision is told closed rather than not found. Decisions and the
// single use are a Lua compare-and-swap of its state: of two instances
// racing to use one approval, one wins. Each subject's approvals are
// listed in a sorted set of at most [Options.MaxListedApprovals] ids.
//
// Approvals always fail closed, whatever the failure modes: when
// Redis cannot answer within [Options.Timeout], every call returns an
// error wrapping [ErrUnavailable], so no approval is created, decided
// or used and the agent's action stays challenged. Failures are
// counted as errors of op "approvals".
func (s *Store) Approvals() runtimeid.ApprovalStore { return &approvals{s: s} }

var _ runtimeid.ApprovalStore = (*approvals)(nil)

type approvals struct{ s *Store }

// swapScript sets the state and the record of an approval if its
// state is still ARGV[1]; it returns 1 if it did, 0 otherwise (also
// when the approval is gone).
var swapScript = redis.NewScript(`
if redis.call('HGET', KEYS[1], 's') ~= ARGV[1] then return 0 end
redis.call('HSET', KEYS[1], 's', ARGV[2], 'd', ARGV[3])
return 1
`)

// Add implements [runtimeid.ApprovalStore].
func (x *approvals) Add(ctx context.Context, a runtimeid.Approval) error {
	data, err := json.Marshal(a)
	if err != nil {
		return fmt.Errorf("redisstore: encode approval: %w", err)
	}
	now := x.s.opts.Now()
	ttl := 2 * max(a.Expires.Sub(now), time.Millisecond)
	idx := x.indexKey(a.Issuer, a.Subject)
	rk := x.key(a.ID)

	ctx, cancel := context.WithTimeout(ctx, x.s.opts.Timeout)
	defer cancel()
	_, err = x.s.client.Pipelined(ctx, func(p redis.Pipeliner) error {
		p.HSet(ctx, rk, "s", a.State.String(), "d", data)
		p.PExpire(ctx, rk, ttl)
		p.ZAdd(ctx, idx, redis.Z{Score: float64(a.Expires.UnixMicro()), Member: a.ID})
		p.ZRemRangeByScore(ctx, idx, "-inf", score(now))
		p.ZRemRangeByRank(ctx, idx, 0, -int64(x.s.opts.MaxListedApprovals)-1)
		p.PExpire(ctx, idx, ttl)
		return nil
	})
	return x.failed(ctx, "add", err)
}

// Get implements [runtimeid.ApprovalStore].
func (x *approvals) Get(ctx context.Context, id string) (runtimeid.Approval, bool, error) {
	ctx, cancel := context.WithTimeout(ctx, x.s.opts.Timeout)
	defer cancel()
	data, err := x.s.client.HGet(ctx, x.key(id), "d").Bytes()
	if errors.Is(err, redis.Nil) {
		return runtimeid.Approval{}, false, nil
	}
	if err != nil {
		return runtimeid.Approval{}, false, x.failed(ctx, "get", err)
	}
	return decodeApproval(id, data)
}

// List implements [runtimeid.ApprovalStore]: the subject's unexpired
// approvals, oldest first.
func (x *approvals) List(
	ctx context.Context, issuer, subject string,
) ([]runtimeid.Approval, error) {
	ctx, cancel := context.WithTimeout(ctx, x.s.opts.Timeout)
	defer cancel()
	after := "(" + score(x.s.opts.Now())
	ids, err := x.s.client.ZRangeByScore(ctx, x.indexKey(issuer, subject),
		&redis.ZRangeBy{Min: after, Max: "+inf"}).Result()
	if err != nil || len(ids) == 0 {
		return nil, x.failed(ctx, "list", err)
	}
	cmds := make([]*redis.StringCmd, len(ids))
	_, err = x.s.client.Pipelined(ctx, func(p redis.Pipeliner) error {
		for i, id := range ids {
			cmds[i] = p.HGet(ctx, x.key(id), "d")
		}
		return nil
	})
	if err != nil && !errors.Is(err, redis.Nil) {
		return nil, x.failed(ctx, "list", err)
	}
	return x.decodeAll(ctx, ids, cmds)
}

// decodeAll reads the records fetched for ids, skipping those gone
// from Redis.
func (x *approvals) decodeAll(ctx context.Context, ids []string,
	cmds []*redis.StringCmd) ([]runtimeid.Approval, error) {
	out := make([]runtimeid.Approval, 0, len(ids))
	for i, cmd := range cmds {
		data, err := cmd.Bytes()
		switch {
		case errors.Is(err, redis.Nil):
			continue
		case err != nil:
			return nil, x.failed(ctx, "list", err)
		}
		a, _, err := decodeApproval(ids[i], data)
		if err != nil {
			return nil, err
		}
		out = append(out, a)
	}
	return out, nil
}

// Swap implements [runtimeid.ApprovalStore] with one atomic script.
func (x *approvals) Swap(
	ctx context.Context, next runtimeid.Approval, from runtimeid.ApprovalState,
) (bool, error) {
	data, err := json.Marshal(next)
	if err != nil {
		return false, fmt.Errorf("redisstore: encode approval: %w", err)
	}
	ctx, cancel := context.WithTimeout(ctx, x.s.opts.Timeout)
	defer cancel()
	n, err := swapScript.Run(ctx, x.s.client, []string{x.key(next.ID)},
		from.String(), next.State.String(), data).Int()
	if err != nil {
		return false, x.failed(ctx, "swap", err)
	}
	return n == 1, nil
}

// decodeApproval reads one record, which must be the approval id's.
func decodeApproval(id string, data []byte) (runtimeid.Approval, bool, error) {
	var a runtimeid.Approval
	if err := json.Unmarshal(data, &a); err != nil {
		return a, false, fmt.Errorf("redisstore: malformed approval: %w", err)
	}
	if a.ID != id {
		return runtimeid.Approval{}, false, fmt.Errorf("redisstore: malformed approval")
	}
	return a, true, nil
}

// failed counts and logs a failed call of op, and wraps its error;
// nil stays nil.
func (x *approvals) failed(ctx context.Context, op string, err error) error {
	if err == nil {
		return nil
	}
	x.s.tel.error(ctx, "approvals")
	x.s.opts.Logger.LogAttrs(ctx, slog.LevelDebug, "redisstore: approvals "+op+" failed",
		slog.String("error", err.Error()))
	return fmt.Errorf("%w: approvals %s: %w", ErrUnavailable, op, err)
}

// score is where a time sorts in a subject's sorted set, which
// orders approvals by expiry, so oldest first.
func score(t time.Time) string { return strconv.FormatInt(t.UnixMicro(), 10) }

// key is the approval's key: its id hashed, whatever the agent sent.
func (x *approvals) key(id string) string {
	h := sha256.Sum256([]byte(id))
	return x.s.key("a", hex.EncodeToString(h[:16]))
}

// indexKey is the key of the sorted set of a subject's approvals.
func (x *approvals) indexKey(issuer, subject string) string {
	h := sha256.Sum256([]byte(strconv.Itoa(len(issuer)) + ":" + issuer + subject))
	return x.s.key("ai", hex.EncodeToString(h[:16]))
}
