package runtimeid_test

import (
	"context"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/runtimeid/runtimeid"
)

func TestMemoryReplayCache(t *testing.T) {
	var now atomic.Int64
	clock := func() time.Time { return time.Unix(now.Load(), 0) }
	c := runtimeid.NewMemoryReplayCache(2, clock)
	ctx := context.Background()
	at := func(s int64) time.Time { return time.Unix(s, 0) }

	seen, err := c.Seen(ctx, "a", at(60))
	require.NoError(t, err)
	assert.False(t, seen)
	seen, err = c.Seen(ctx, "a", at(60))
	require.NoError(t, err)
	assert.True(t, seen, "second use is a replay")

	_, err = c.Seen(ctx, "b", at(30))
	require.NoError(t, err)

	// Full of unexpired entries: refuse rather than evict.
	_, err = c.Seen(ctx, "c", at(90))
	require.ErrorIs(t, err, runtimeid.ErrReplayCacheFull)
	assert.Equal(t, 2, c.Len())

	// Once b expires there is room again, and a is still remembered.
	now.Store(30)
	seen, err = c.Seen(ctx, "c", at(90))
	require.NoError(t, err)
	assert.False(t, seen)
	seen, _ = c.Seen(ctx, "a", at(60))
	assert.True(t, seen)

	// An expired key may be used again.
	now.Store(61)
	seen, err = c.Seen(ctx, "a", at(120))
	require.NoError(t, err)
	assert.False(t, seen)
	assert.Equal(t, 2, c.Len())
}

func TestMemoryReplayCacheConcurrent(t *testing.T) {
	c := runtimeid.NewMemoryReplayCache(0, nil)
	until := time.Now().Add(time.Minute)
	var fresh atomic.Int64
	var wg sync.WaitGroup
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 1000 {
				// Every goroutine races for the same 1000 keys.
				seen, err := c.Seen(context.Background(), strconv.Itoa(i), until)
				assert.NoError(t, err)
				if !seen {
					fresh.Add(1)
				}
			}
		}()
	}
	wg.Wait()
	assert.Equal(t, int64(1000), fresh.Load(), "each key is new exactly once")
}

func BenchmarkMemoryReplayCache(b *testing.B) {
	c := runtimeid.NewMemoryReplayCache(1<<20, nil)
	until := time.Now().Add(time.Minute)
	ctx := context.Background()
	i := 0
	for b.Loop() {
		i++
		if _, err := c.Seen(ctx, "dpop:"+strconv.Itoa(i%(1<<19)), until); err != nil {
			b.Fatal(err)
		}
	}
}
