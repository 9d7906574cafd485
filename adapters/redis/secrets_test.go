package redisstore

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// secretStore is the method set of adapters/stepup.Store, declared here so
// this module need not import the step-up module to prove it fits.
type secretStore interface {
	Get(ctx context.Context, key string) ([]byte, error)
	Put(ctx context.Context, key string, value []byte, ttl time.Duration) error
	Add(ctx context.Context, key string, value []byte, ttl time.Duration) (bool, error)
	Delete(ctx context.Context, key string) error
	Incr(ctx context.Context, key string, delta int64, ttl time.Duration) (int64, error)
}

var _ secretStore = (*Secrets)(nil)

func TestSecretsSharedAcrossInstances(t *testing.T) {
	addr := redisAddr(t)
	prefix := testPrefix(t)
	a := newStore(t, newClient(t, addr), prefix, nil).Secrets()
	b := newStore(t, newClient(t, addr), prefix, nil).Secrets()
	ctx := context.Background()

	got, err := b.Get(ctx, "enrolled:alice")
	require.NoError(t, err)
	assert.Nil(t, got, "a missing key reads as nil")

	require.NoError(t, a.Put(ctx, "enrolled:alice", []byte("sealed-secret"), 0))
	got, err = b.Get(ctx, "enrolled:alice")
	require.NoError(t, err)
	assert.Equal(t, []byte("sealed-secret"), got)

	// A single-use challenge: only the first Add, on any instance, wins.
	ok, err := a.Add(ctx, "challenge:1", []byte("x"), time.Minute)
	require.NoError(t, err)
	assert.True(t, ok)
	ok, err = b.Add(ctx, "challenge:1", []byte("y"), time.Minute)
	require.NoError(t, err)
	assert.False(t, ok)
	got, err = a.Get(ctx, "challenge:1")
	require.NoError(t, err)
	assert.Equal(t, []byte("x"), got)

	require.NoError(t, b.Delete(ctx, "challenge:1"))
	got, err = a.Get(ctx, "challenge:1")
	require.NoError(t, err)
	assert.Nil(t, got)

	// The expiry is Redis's own.
	client := newClient(t, addr)
	require.NoError(t, a.Put(ctx, "code:1", []byte("z"), 90*time.Second))
	ttl, err := client.PTTL(ctx, prefix+"secret:code:1").Result()
	require.NoError(t, err)
	assert.InDelta(t, float64(90*time.Second), float64(ttl), float64(2*time.Second))
}

func TestSecretsFailClosedWithoutRedis(t *testing.T) {
	addr := redisAddr(t)
	c := newClient(t, addr)
	s := newStore(t, c, testPrefix(t), nil).Secrets()
	require.NoError(t, c.Close())
	_, err := s.Get(context.Background(), "k")
	assert.ErrorContains(t, err, "redisstore: get secret")
	ok, err := s.Add(context.Background(), "k", []byte("v"), time.Minute)
	assert.False(t, ok)
	assert.ErrorContains(t, err, "redisstore: add secret")
	n, err := s.Incr(context.Background(), "k", 1, time.Minute)
	assert.Zero(t, n)
	assert.ErrorContains(t, err, "redisstore: incr secret")
}

func TestSecretsIncrSharedAcrossInstances(t *testing.T) {
	addr := redisAddr(t)
	prefix := testPrefix(t)
	// A generous timeout: this test measures counting, not latency.
	slow := func(o *Options) { o.Timeout = 10 * time.Second }
	stores := []*Secrets{
		newStore(t, newClient(t, addr), prefix, slow).Secrets(),
		newStore(t, newClient(t, addr), prefix, slow).Secrets(),
	}
	ctx := context.Background()

	// Concurrent increments from two instances: each gets its own
	// number, none is lost.
	const n = 100
	seen := make([]int64, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			seen[i], errs[i] = stores[i%2].Incr(ctx, "attempts:alice", 1, time.Hour)
		})
	}
	wg.Wait()
	want := make([]int64, n)
	for i := range want {
		want[i] = int64(i + 1)
	}
	assert.ElementsMatch(t, want, seen)
	assert.Equal(t, make([]error, n), errs)

	// A decrement gives a number back; every change restarts the expiry.
	got, err := stores[1].Incr(ctx, "attempts:alice", -1, 90*time.Second)
	require.NoError(t, err)
	assert.Equal(t, int64(n-1), got)
	client := newClient(t, addr)
	ttl, err := client.PTTL(ctx, prefix+"secret:attempts:alice").Result()
	require.NoError(t, err)
	assert.InDelta(t, float64(90*time.Second), float64(ttl), float64(2*time.Second))
	v, err := stores[0].Get(ctx, "attempts:alice")
	require.NoError(t, err)
	assert.Equal(t, []byte("99"), v, "kept as decimal text")

	// A ttl of zero keeps the counter.
	_, err = stores[0].Incr(ctx, "attempts:alice", 1, 0)
	require.NoError(t, err)
	ttl, err = client.PTTL(ctx, prefix+"secret:attempts:alice").Result()
	require.NoError(t, err)
	assert.Equal(t, time.Duration(-1), ttl)

	// A sealed value is no counter.
	require.NoError(t, stores[0].Put(ctx, "sealed", []byte("x"), 0))
	_, err = stores[0].Incr(ctx, "sealed", 1, time.Minute)
	assert.ErrorContains(t, err, "redisstore: incr secret")
}
