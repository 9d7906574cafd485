package stepup

import (
	"context"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestAttemptsCountedAcrossInstances: two instances sharing one store
// let exactly MaxAttempts of many concurrent wrong codes be checked,
// and refuse the rest.
func TestAttemptsCountedAcrossInstances(t *testing.T) {
	h := newHarness(t)
	tok := h.token("alice", "s1", 0)
	secret := h.enrollOTP(tok)
	if h.code(secret) == "000000" {
		t.Skip("the real code happens to be 000000")
	}
	other, err := New(h.svc.opts) // a second instance, same store and keys
	require.NoError(t, err)
	const n = 16
	codes := make([]int, n)
	var wg sync.WaitGroup
	for i := range n {
		hd := h.h
		if i%2 == 1 {
			hd = other.Handler()
		}
		wg.Go(func() {
			r := httptest.NewRequest("POST", "/stepup/otp/verify",
				strings.NewReader(`{"code":"000000"}`))
			r.Header.Set("Authorization", "Bearer "+tok)
			r.Header.Set("Content-Type", "application/json")
			w := httptest.NewRecorder()
			hd.ServeHTTP(w, r)
			codes[i] = w.Code
		})
	}
	wg.Wait()
	count := map[int]int{}
	for _, c := range codes {
		count[c]++
	}
	assert.Equal(t, map[int]int{403: DefaultMaxAttempts, 429: n - DefaultMaxAttempts}, count)

	// The count is shared: after the wait, one more attempt, on either
	// instance, and the next waits twice as long.
	h.clock.Add(DefaultBackOff)
	w := h.do("POST", "/stepup/otp/verify", tok, map[string]string{"code": "000000"})
	assert.Equal(t, 403, w.Code)
	w = h.do("POST", "/stepup/otp/verify", tok, map[string]string{"code": "000000"})
	assert.Equal(t, 429, w.Code)
	assert.Equal(t, "60", w.Header().Get("Retry-After"))
}

func TestMemoryStoreIncr(t *testing.T) {
	c := &clock{t: time.Date(2026, 5, 1, 12, 0, 0, 0, time.UTC)}
	s := NewMemoryStore(2, c.Now)
	ctx := context.Background()
	incr := func(key string, delta int64) int64 {
		t.Helper()
		n, err := s.Incr(ctx, key, delta, time.Minute)
		require.NoError(t, err)
		return n
	}
	assert.Equal(t, int64(1), incr("a", 1))
	assert.Equal(t, int64(2), incr("a", 1))
	assert.Equal(t, int64(1), incr("a", -1))
	got, err := s.Get(ctx, "a")
	require.NoError(t, err)
	assert.Equal(t, []byte("1"), got, "kept as decimal text")

	// Each change restarts the expiry.
	c.Add(59 * time.Second)
	assert.Equal(t, int64(2), incr("a", 1))
	c.Add(59 * time.Second)
	assert.Equal(t, int64(3), incr("a", 1))
	c.Add(time.Minute)
	assert.Equal(t, int64(1), incr("a", 1), "an expired count starts again")

	require.NoError(t, s.Put(ctx, "b", []byte("sealed"), 0))
	_, err = s.Incr(ctx, "b", 1, time.Minute)
	assert.EqualError(t, err, `stepup: memory store: "b" holds no count`)
	_, err = s.Incr(ctx, "c", 1, time.Minute)
	assert.ErrorIs(t, err, ErrStoreFull)
}

func TestMemoryStoreIncrConcurrent(t *testing.T) {
	s := NewMemoryStore(0, nil)
	var wg sync.WaitGroup
	seen := make([]int64, 100)
	for i := range seen {
		wg.Go(func() {
			seen[i], _ = s.Incr(context.Background(), "k", 1, time.Minute)
		})
	}
	wg.Wait()
	want := make([]int64, 100)
	for i := range want {
		want[i] = int64(i + 1)
	}
	assert.ElementsMatch(t, want, seen, "every increment gets its own number")
}
