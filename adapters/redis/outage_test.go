package redisstore

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/runtimeid/runtimeid/risk"
	"github.com/runtimeid/runtimeid/signals/ssf"
)

// learn is what risk's learning does to a profile, for one request
// from device dev.
func learn(dev uint64) func(*risk.Profile) {
	return func(p *risk.Profile) {
		p.Requests++
		for i := range p.Devices {
			if p.Devices[i].Key == dev {
				p.Devices[i].Count++
				return
			}
		}
		p.Devices = append(p.Devices, risk.Seen[uint64]{Key: dev, Count: 1, Last: testNow})
	}
}

func requests(t testing.TB, s *Store, subject string) uint64 {
	p, err := s.Baselines().Get(context.Background(), subject)
	if err != nil || p == nil {
		return 0
	}
	return p.Requests
}

func revoke(reason string) func(*ssf.Facts) {
	return func(f *ssf.Facts) { f.Blocked, f.BlockedAt = reason, testNow }
}

func blocked(s *Store, k ssf.Key) string {
	f, ok := s.Revocations().Lookup(k, testNow)
	if !ok {
		return ""
	}
	return f.Blocked
}

// TestRedisStoppedAndRestarted stops the Redis two instances share in
// the middle: learning during the outage is flushed after it and
// nothing is lost; revocations kept locally are shared, and those
// published after recovery arrive. X continues on local state; Y
// fails closed for revocations and replay.
func TestRedisStoppedAndRestarted(t *testing.T) {
	srv := startServer(t)
	prefix := testPrefix(t)
	x := newStore(t, newClient(t, srv.addr), prefix, func(o *Options) {
		o.Now = clock
		o.Revocations, o.Replay = ContinueLocal, ContinueLocal
	})
	y := newStore(t, newClient(t, srv.addr), prefix, func(o *Options) { o.Now = clock })
	ctx := t.Context()

	// As the engine does: read the baseline, then learn.
	assert.Equal(t, 0, int(requests(t, x, "u1")))
	require.NoError(t, x.Baselines().Update(ctx, "u1", learn(1)))
	eventually(t, 2*time.Second, "u1 on y", func() bool { return requests(t, y, "u1") == 1 })

	srv.stop()
	eventually(t, 5*time.Second, "both down", func() bool {
		return !x.Healthy() && !y.Healthy()
	})
	anyKey := ssf.Key{Kind: ssf.KindSub, ID: "bob"}
	assert.Equal(t, "", blocked(x, anyKey), "x continues on local state")
	assert.Equal(t, ReasonUnavailable, blocked(y, anyKey), "y fails closed")
	seen, err := x.Replay().Seen(ctx, "jti-1", testNow.Add(time.Minute))
	assert.NoError(t, err)
	assert.False(t, seen)
	_, err = y.Replay().Seen(ctx, "jti-2", testNow.Add(time.Minute))
	assert.ErrorIs(t, err, ErrUnavailable)

	// Learning and revocations during the outage.
	for range 5 {
		require.NoError(t, x.Baselines().Update(ctx, "u1", learn(2)))
	}
	for range 3 {
		require.NoError(t, x.Baselines().Update(ctx, "u2", learn(1)))
	}
	for range 2 {
		require.NoError(t, y.Baselines().Update(ctx, "u1", learn(1)))
	}
	kx := ssf.Key{Kind: ssf.KindSession, ID: "sx"}
	ky := ssf.Key{Kind: ssf.KindSession, ID: "sy"}
	require.NoError(t, x.Revocations().Update(kx, testNow, revoke("from x")))
	err = y.Revocations().Update(ky, testNow, revoke("from y"))
	assert.ErrorIs(t, err, ErrUnavailable, "the transmitter is told to retry")
	assert.Equal(t, "from x", blocked(x, kx), "applied locally")
	assert.Equal(t, 6, int(requests(t, x, "u1")), "x's view has its own learning")

	srv.start()
	eventually(t, 10*time.Second, "both up", func() bool { return x.Healthy() && y.Healthy() })

	// Nothing learned is lost: 1 before, 5 + 2 during the outage.
	for _, s := range []*Store{x, y} {
		eventually(t, 2*time.Second, "u1 merged", func() bool { return requests(t, s, "u1") == 8 })
		eventually(t, 2*time.Second, "u2 merged", func() bool { return requests(t, s, "u2") == 3 })
	}
	p, err := y.Baselines().Get(ctx, "u1")
	require.NoError(t, err)
	assert.Equal(t, []risk.Seen[uint64]{
		{Key: 1, Count: 3, Last: testNow}, {Key: 2, Count: 5, Last: testNow},
	}, sortedDevices(p.Devices))

	// Revocations kept locally were shared on recovery.
	eventually(t, 2*time.Second, "kx on y", func() bool { return blocked(y, kx) == "from x" })
	eventually(t, 2*time.Second, "ky on x", func() bool { return blocked(x, ky) == "from y" })

	// A revocation published after recovery arrives.
	kz := ssf.Key{Kind: ssf.KindSession, ID: "sz"}
	require.NoError(t, y.Revocations().Update(kz, testNow, revoke("after")))
	eventually(t, 2*time.Second, "kz on x", func() bool { return blocked(x, kz) == "after" })

	// The DPoP proof y could not check is checked now; x's proof was
	// recorded only locally during the outage.
	seen, err = y.Replay().Seen(ctx, "jti-3", testNow.Add(time.Minute))
	assert.NoError(t, err)
	assert.False(t, seen)
	seen, err = x.Replay().Seen(ctx, "jti-3", testNow.Add(time.Minute))
	assert.NoError(t, err)
	assert.True(t, seen)
}

func sortedDevices(d []risk.Seen[uint64]) []risk.Seen[uint64] {
	out := append([]risk.Seen[uint64](nil), d...)
	for i := range out {
		for j := i + 1; j < len(out); j++ {
			if out[j].Key < out[i].Key {
				out[i], out[j] = out[j], out[i]
			}
		}
	}
	return out
}

// TestConcurrentLearningLosesNothing learns one subject on two
// instances at once: the Redis copy counts every request.
func TestConcurrentLearningLosesNothing(t *testing.T) {
	addr := redisAddr(t)
	prefix := testPrefix(t)
	x := newStore(t, newClient(t, addr), prefix, nil)
	y := newStore(t, newClient(t, addr), prefix, nil)
	done := make(chan struct{})
	for _, s := range []*Store{x, y} {
		go func() {
			defer func() { done <- struct{}{} }()
			for range 200 {
				if err := s.Baselines().Update(context.Background(), "alice", learn(1)); err != nil {
					t.Error(err)
				}
			}
		}()
	}
	<-done
	<-done
	for _, s := range []*Store{x, y} {
		eventually(t, 2*time.Second, "400 requests", func() bool {
			return requests(t, s, "alice") == 400
		})
	}
}

func TestNewOptions(t *testing.T) {
	tests := []struct {
		name string
		opts Options
		want string
	}{
		{"no client", Options{}, "runtimeid: config redisstore.Options.Client: required"},
		{"negative", Options{Client: newClient(t, "127.0.0.1:1"), MaxPending: -1},
			"runtimeid: config redisstore.Options.MaxPending: must not be negative, not -1"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := New(t.Context(), tt.opts)
			require.EqualError(t, err, tt.want)
		})
	}
}

func TestNewFailsWithoutRedis(t *testing.T) {
	ctx, cancel := context.WithTimeout(t.Context(), 300*time.Millisecond)
	defer cancel()
	_, err := New(ctx, Options{Client: newClient(t, "127.0.0.1:1")})
	require.Error(t, err)
	assert.True(t, errors.Is(err, ErrUnavailable), err.Error())
}
