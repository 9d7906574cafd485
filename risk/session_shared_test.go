package risk

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/runtimeid/runtimeid"
)

// memorySessions is a [SessionStore] in memory, shared by the
// evaluators of the test as Redis is by instances.
type memorySessions struct {
	// mu guards uses.
	mu   sync.Mutex
	uses map[string]SessionUse
}

var _ SessionStore = (*memorySessions)(nil)

func newMemorySessions() *memorySessions {
	return &memorySessions{uses: make(map[string]SessionUse)}
}

func (m *memorySessions) Lookup(kind, key string) (SessionUse, bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	u, ok := m.uses[kind+":"+key]
	return u, ok
}

func (m *memorySessions) Record(kind, key string, use SessionUse) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.uses[kind+":"+key] = use
}

// TestSessionEvaluatorShared: alice's first request is learned on
// instance A; the second goes to instance B, which has never seen her.
func TestSessionEvaluatorShared(t *testing.T) {
	firefox := runtimeid.DeviceSignals{Browser: "Firefox", BrowserVersion: "123",
		OS: "Windows", Type: "desktop"}
	first := use{ip: "192.0.2.1", net: london, dev: chrome, jti: "t1"}
	tests := []struct {
		name string
		now  use
		want []runtimeid.Finding
	}{
		{name: "same address and device", now: with(first, func(u *use) { u.at = time.Minute })},
		{
			name: "token replayed on the other instance",
			now:  with(first, func(u *use) { u.at, u.dev = time.Minute, firefox }),
			want: []runtimeid.Finding{finding(CodeTokenReplay, 0.8,
				"the same token (jti) was presented by another device")},
		},
		{
			name: "session on another device on the other instance",
			now: with(first, func(u *use) {
				u.at, u.dev, u.jti = time.Hour, firefox, "t2"
			}),
			want: []runtimeid.Finding{finding(CodeSessionDeviceChange, 0.6,
				"the device changed in the middle of the session")},
		},
		{
			name: "session used far away on the other instance",
			now: use{at: 5 * time.Minute, ip: "198.51.100.1", net: with(linkoping,
				func(n *runtimeid.NetworkSignals) { n.ASN = 3301 }), dev: chrome, jti: "t1"},
			want: []runtimeid.Finding{
				finding(CodeSessionIPChange, 0.4, "the session moved from AS2856 to AS3301"),
				finding(CodeConcurrentSessionFarApart, 0.9,
					"the session was used 1260 km away 5 min earlier"),
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx := context.Background()
			shared := newMemorySessions()
			a := newSharedEvaluator(t, shared)
			b := newSharedEvaluator(t, shared)
			a.Learn(ctx, first.eval())

			got, err := b.Assess(ctx, tt.now.eval())
			require.NoError(t, err)
			assert.Equal(t, tt.want, got)
			sessions, _ := b.Len()
			assert.Equal(t, 0, sessions, "b learned nothing")
		})
	}
}

func newSharedEvaluator(t *testing.T, shared SessionStore) *SessionEvaluator {
	t.Helper()
	s, err := NewSessionEvaluator(SessionOptions{Shared: shared})
	require.NoError(t, err)
	return s
}

// TestSessionEvaluatorSharedNewest: an instance compares a token with
// its latest use anywhere, whether that is its own or another's.
func TestSessionEvaluatorSharedNewest(t *testing.T) {
	firefox := runtimeid.DeviceSignals{Browser: "Firefox", BrowserVersion: "123",
		OS: "Windows", Type: "desktop"}
	ctx := context.Background()
	shared := newMemorySessions()
	a := newSharedEvaluator(t, shared)
	b := newSharedEvaluator(t, shared)
	onChrome := use{ip: "192.0.2.1", net: london, dev: chrome, jti: "t1"}
	onFirefox := with(onChrome, func(u *use) { u.dev = firefox })

	// B saw the token on Chrome, then A on Firefox a minute later:
	// the shared use is newer than B's own.
	b.Learn(ctx, onChrome.eval())
	a.Learn(ctx, with(onFirefox, func(u *use) { u.at = time.Minute }).eval())
	got, err := b.Assess(ctx, with(onFirefox, func(u *use) { u.at = 2 * time.Minute }).eval())
	require.NoError(t, err)
	assert.Empty(t, got)

	// An older shared use, on Firefox, loses to B's own newer one on
	// Chrome.
	b.Learn(ctx, with(onChrome, func(u *use) { u.at = 2 * time.Minute }).eval())
	old := b.use(with(onFirefox, func(u *use) { u.at = -time.Minute }).eval())
	shared.Record(SessionKindJTI, SharedSessionKey("alice", "t1"), old)
	shared.Record(SessionKindSID, SharedSessionKey("alice", "s1"), old)
	got, err = b.Assess(ctx, with(onChrome, func(u *use) { u.at = 3 * time.Minute }).eval())
	require.NoError(t, err)
	assert.Empty(t, got)
}

// TestSessionEvaluatorSharedBurst: request rates are not shared.
func TestSessionEvaluatorSharedBurst(t *testing.T) {
	ctx := context.Background()
	shared := newMemorySessions()
	var evs [2]*SessionEvaluator
	for i := range evs {
		s, err := NewSessionEvaluator(SessionOptions{Shared: shared, BurstPerMinute: 2})
		require.NoError(t, err)
		evs[i] = s
	}
	u := use{ip: "192.0.2.1", net: london, dev: chrome}
	for i := range 4 {
		got, err := evs[i%2].Assess(ctx, u.eval())
		require.NoError(t, err)
		assert.Empty(t, got, "request %d", i)
	}
}

func TestSharedSessionKey(t *testing.T) {
	k := SharedSessionKey("alice", "s1")
	assert.Len(t, k, 32)
	assert.Equal(t, k, SharedSessionKey("alice", "s1"))
	assert.NotEqual(t, k, SharedSessionKey("alices", "1"))
	assert.NotEqual(t, k, SharedSessionKey("bob", "s1"))
}

// BenchmarkSessionEvaluator is one request's Assess and Learn, with
// the state in the evaluator only and with a shared store as well.
func BenchmarkSessionEvaluator(b *testing.B) {
	for _, shared := range []bool{false, true} {
		b.Run(map[bool]string{false: "local", true: "shared"}[shared], func(b *testing.B) {
			opts := SessionOptions{}
			if shared {
				opts.Shared = newMemorySessions()
			}
			s, err := NewSessionEvaluator(opts)
			require.NoError(b, err)
			ev := use{ip: "192.0.2.1", net: london, dev: chrome, jti: "t1"}.eval()
			ctx := context.Background()
			b.ReportAllocs()
			for b.Loop() {
				_, _ = s.Assess(ctx, ev)
				s.Learn(ctx, ev)
			}
		})
	}
}
