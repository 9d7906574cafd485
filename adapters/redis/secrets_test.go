package redisstore

import (
	"context"
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
}
