package redisstore

import (
	"context"
	"net/netip"
	"slices"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/runtimeid/runtimeid"
	"github.com/runtimeid/runtimeid/risk"
)

var (
	chrome = runtimeid.DeviceSignals{Browser: "Chrome", BrowserVersion: "124",
		OS: "macOS", Type: "desktop"}
	firefox = runtimeid.DeviceSignals{Browser: "Firefox", BrowserVersion: "123",
		OS: "Windows", Type: "desktop"}
	london = runtimeid.NetworkSignals{Country: "GB", Latitude: 51.5074,
		Longitude: -0.1278, HasLocation: true, ASN: 2856}
	linkoping = runtimeid.NetworkSignals{Country: "SE", Latitude: 58.4108,
		Longitude: 15.6214, HasLocation: true, ASN: 3301}
)

// sessionEval is one request of alice's session sid with token jti.
func sessionEval(at time.Duration, ip string, net runtimeid.NetworkSignals,
	dev runtimeid.DeviceSignals, sid, jti string) *runtimeid.Evaluation {
	ev := &runtimeid.Evaluation{Time: testNow.Add(at), Identity: &runtimeid.Identity{
		Subject: "alice", SessionID: sid, TokenID: jti}}
	ev.Signals.ClientIP = netip.MustParseAddr(ip)
	ev.Signals.Network = net
	ev.Signals.Device = dev
	return ev
}

func newSessionEvaluator(t testing.TB, s *Store) *risk.SessionEvaluator {
	t.Helper()
	ev, err := risk.NewSessionEvaluator(risk.SessionOptions{Shared: s.Sessions()})
	require.NoError(t, err)
	return ev
}

// TestSessionsAcrossInstances is two session evaluators over two
// stores sharing one Redis: what A learns, B compares with at once.
func TestSessionsAcrossInstances(t *testing.T) {
	addr := redisAddr(t)
	prefix := testPrefix(t)
	tests := []struct {
		name string
		then *runtimeid.Evaluation
		want []string
	}{
		{
			name: "token replayed from another device",
			then: sessionEval(time.Minute, "81.2.69.142", london, firefox, "s1", "t1"),
			want: []string{risk.CodeTokenReplay},
		},
		{
			name: "session used far away at once",
			then: sessionEval(5*time.Minute, "198.51.100.1", linkoping, chrome, "s2", "t3"),
			want: []string{risk.CodeSessionIPChange, risk.CodeConcurrentSessionFarApart},
		},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx := t.Context()
			a := newStore(t, newClient(t, addr), prefix+strconv.Itoa(i), withClock)
			b := newStore(t, newClient(t, addr), prefix+strconv.Itoa(i), withClock)
			ea, eb := newSessionEvaluator(t, a), newSessionEvaluator(t, b)
			first := sessionEval(0, "81.2.69.142", london, chrome, "s"+strconv.Itoa(i+1),
				"t"+strconv.Itoa(2*i+1))

			start := time.Now()
			ea.Learn(ctx, first)
			// The session's and the token's uses are published one after
			// the other: wait for both.
			var codes []string
			took := eventually(t, 2*time.Second, "shared use on B", func() bool {
				got, err := eb.Assess(ctx, tt.then)
				require.NoError(t, err)
				codes = codes[:0]
				for _, f := range got {
					codes = append(codes, f.Code)
				}
				return slices.Equal(codes, tt.want)
			})
			t.Logf("seen on B %v after A learned it", took)
			// Typically a few ms; the bound leaves room for a loaded machine.
			assert.Less(t, time.Since(start), time.Second)
			assert.Equal(t, tt.want, codes)
		})
	}
}

func withClock(o *Options) { o.Now = clock }

// TestSessionsWrittenToRedis: a recorded use is stored under its key
// with the session TTL.
func TestSessionsWrittenToRedis(t *testing.T) {
	addr := redisAddr(t)
	c := newClient(t, addr)
	prefix := testPrefix(t)
	s := newStore(t, c, prefix, func(o *Options) {
		o.Now, o.SessionTTL = clock, 3*time.Minute
	})
	use := risk.SessionUse{Time: testNow, IP: netip.MustParseAddr("192.0.2.1"),
		ASN: 2856, Device: 42, HasDevice: true}
	s.Sessions().Record(risk.SessionKindJTI, "k1", use)

	got, ok := s.Sessions().Lookup(risk.SessionKindJTI, "k1")
	require.True(t, ok)
	assert.Equal(t, use, got)
	_, ok = s.Sessions().Lookup(risk.SessionKindSID, "k1")
	assert.False(t, ok, "kinds are apart")

	key := prefix + "s:jti:k1"
	eventually(t, 2*time.Second, "written", func() bool {
		return c.Exists(context.Background(), key).Val() == 1
	})
	ttl := c.PTTL(context.Background(), key).Val()
	assert.InDelta(t, (3 * time.Minute).Seconds(), ttl.Seconds(), 5)
}

// TestSessionsTTL: a use older than SessionTTL is not returned.
func TestSessionsTTL(t *testing.T) {
	addr := redisAddr(t)
	var now atomic.Int64 // the background writer reads the clock too
	now.Store(testNow.UnixNano())
	s := newStore(t, newClient(t, addr), testPrefix(t), func(o *Options) {
		o.Now = func() time.Time { return time.Unix(0, now.Load()) }
	})
	s.Sessions().Record(risk.SessionKindSID, "k", risk.SessionUse{Time: testNow})
	now.Store(testNow.Add(DefaultSessionTTL).UnixNano())
	_, ok := s.Sessions().Lookup(risk.SessionKindSID, "k")
	assert.True(t, ok)
	now.Add(int64(time.Millisecond))
	_, ok = s.Sessions().Lookup(risk.SessionKindSID, "k")
	assert.False(t, ok)
}

// TestSessionsOutage stops Redis: uses stay local, the queue is
// bounded and counts what it drops, and sharing resumes when Redis is
// back.
func TestSessionsOutage(t *testing.T) {
	srv := startServer(t)
	prefix := testPrefix(t)
	edit := func(o *Options) { o.Now, o.MaxPendingSessions = clock, 3 }
	x := newStore(t, newClient(t, srv.addr), prefix, edit)
	y := newStore(t, newClient(t, srv.addr), prefix, edit)
	use := risk.SessionUse{Time: testNow, Device: 1, HasDevice: true}

	srv.stop()
	eventually(t, 5*time.Second, "both down", func() bool {
		return !x.Healthy() && !y.Healthy()
	})
	for i := range 5 {
		x.Sessions().Record(risk.SessionKindJTI, "down"+strconv.Itoa(i), use)
	}
	_, ok := x.Sessions().Lookup(risk.SessionKindJTI, "down4")
	assert.True(t, ok, "kept locally")
	// The writer keeps retrying: wait for it to be between attempts.
	eventually(t, 2*time.Second, "3 queued, 2 dropped", func() bool {
		return x.sessions.pendingLen() == 3 && x.sessions.dropped.Load() == 2
	})

	srv.start()
	eventually(t, 10*time.Second, "both up", func() bool {
		return x.Healthy() && y.Healthy()
	})
	eventually(t, 5*time.Second, "queue written", func() bool {
		return x.sessions.pendingLen() == 0
	})
	x.Sessions().Record(risk.SessionKindJTI, "up", use)
	eventually(t, 2*time.Second, "shared after the outage", func() bool {
		_, ok := y.Sessions().Lookup(risk.SessionKindJTI, "up")
		return ok
	})
}

func BenchmarkSessionsLookup(b *testing.B) {
	addr := redisAddr(b)
	s := newStore(b, newClient(b, addr), testPrefix(b), withClock)
	ss := s.Sessions()
	ss.Record(risk.SessionKindJTI, "k", risk.SessionUse{Time: testNow})
	b.ReportAllocs()
	for b.Loop() {
		ss.Lookup(risk.SessionKindJTI, "k")
	}
}

func BenchmarkSessionsRecord(b *testing.B) {
	addr := redisAddr(b)
	s := newStore(b, newClient(b, addr), testPrefix(b), withClock)
	ss := s.Sessions()
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		i++
		ss.Record(risk.SessionKindJTI, strconv.Itoa(i%1000),
			risk.SessionUse{Time: testNow.Add(time.Duration(i))})
	}
}

// BenchmarkSessionsLookupMiss looks up keys no instance recorded: each
// miss is queued for the background read, or dropped once
// MaxSessionReads wait.
func BenchmarkSessionsLookupMiss(b *testing.B) {
	addr := redisAddr(b)
	s := newStore(b, newClient(b, addr), testPrefix(b), withClock)
	ss := s.Sessions()
	keys := make([]string, 1<<16)
	for i := range keys {
		keys[i] = risk.SharedSessionKey("alice", strconv.Itoa(i))
	}
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		ss.Lookup(risk.SessionKindJTI, keys[i%len(keys)])
		i++
	}
}
