package redisstore

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/redis/go-redis/v9"
)

// Secrets is a key-value store of opaque, already encrypted values with
// expiry, shared by every instance: the step-up module's store
// (adapters/stepup.Store has exactly these methods) for enrolled
// passkeys, code secrets, single-use challenges and attempt counters.
// Keys are the step-up module's, already hashes; values other than
// counters are sealed before they arrive.
//
// Every call is a round trip to Redis; the step-up endpoints use it, not
// the request path. When Redis is unreachable every call fails, so a
// step-up cannot be answered and the challenge stands: fail closed.
type Secrets struct{ s *Store }

// Secrets returns the shared store of step-up secrets.
func (s *Store) Secrets() *Secrets { return &Secrets{s: s} }

// Get returns the value of key, or nil when there is none.
func (x *Secrets) Get(ctx context.Context, key string) ([]byte, error) {
	ctx, cancel := context.WithTimeout(ctx, x.s.opts.Timeout)
	defer cancel()
	v, err := x.s.client.Get(ctx, x.s.key("secret", key)).Bytes()
	if errors.Is(err, redis.Nil) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("redisstore: get secret: %w", err)
	}
	return v, nil
}

// Put sets key to value; a ttl of zero or less keeps it until deleted.
func (x *Secrets) Put(ctx context.Context, key string, value []byte, ttl time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, x.s.opts.Timeout)
	defer cancel()
	if err := x.s.client.Set(ctx, x.s.key("secret", key), value, keepTTL(ttl)).Err(); err != nil {
		return fmt.Errorf("redisstore: put secret: %w", err)
	}
	return nil
}

// Add sets key to value only if it has none (SET NX), atomically across
// instances: what makes a challenge or a code single-use everywhere.
func (x *Secrets) Add(
	ctx context.Context, key string, value []byte, ttl time.Duration,
) (bool, error) {
	ctx, cancel := context.WithTimeout(ctx, x.s.opts.Timeout)
	defer cancel()
	ok, err := x.s.client.SetNX(ctx, x.s.key("secret", key), value, keepTTL(ttl)).Result()
	if err != nil {
		return false, fmt.Errorf("redisstore: add secret: %w", err)
	}
	return ok, nil
}

// Delete removes key.
func (x *Secrets) Delete(ctx context.Context, key string) error {
	ctx, cancel := context.WithTimeout(ctx, x.s.opts.Timeout)
	defer cancel()
	if err := x.s.client.Del(ctx, x.s.key("secret", key)).Err(); err != nil {
		return fmt.Errorf("redisstore: delete secret: %w", err)
	}
	return nil
}

// Incr adds delta to the counter at key (an absent key counts as
// zero), makes it expire ttl from now (a ttl of zero or less keeps it)
// and returns the new count: INCRBY and PEXPIRE in one MULTI, so that
// instances sharing the store count attempts together and a counter
// never outlives its expiry. The counter is a plain integer in Redis.
func (x *Secrets) Incr(
	ctx context.Context, key string, delta int64, ttl time.Duration,
) (int64, error) {
	ctx, cancel := context.WithTimeout(ctx, x.s.opts.Timeout)
	defer cancel()
	rk := x.s.key("secret", key)
	var n *redis.IntCmd
	_, err := x.s.client.TxPipelined(ctx, func(p redis.Pipeliner) error {
		n = p.IncrBy(ctx, rk, delta)
		if ttl > 0 {
			p.PExpire(ctx, rk, ttl)
		} else {
			p.Persist(ctx, rk)
		}
		return nil
	})
	if err != nil {
		return 0, fmt.Errorf("redisstore: incr secret: %w", err)
	}
	return n.Val(), nil
}

// keepTTL maps "no expiry" to go-redis's zero expiration.
func keepTTL(ttl time.Duration) time.Duration {
	if ttl <= 0 {
		return 0
	}
	return ttl
}
