package redisstore

import (
	"context"
	"encoding/json"
	"log/slog"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/metric/noop"

	"github.com/runtimeid/runtimeid"
	"github.com/runtimeid/runtimeid/risk"
)

// readHook counts the session keys a client reads with GET, and holds
// those reads while hold is open.
type readHook struct {
	prefix  string
	hold    chan struct{} // nil: reads go through
	entered chan struct{} // a read is held

	mu   sync.Mutex
	gets map[string]int
}

func newReadHook(prefix string, hold bool) *readHook {
	h := &readHook{prefix: prefix + "s:", gets: map[string]int{},
		entered: make(chan struct{}, 1)}
	if hold {
		h.hold = make(chan struct{})
	}
	return h
}

func (h *readHook) DialHook(next redis.DialHook) redis.DialHook { return next }

func (h *readHook) ProcessHook(next redis.ProcessHook) redis.ProcessHook { return next }

func (h *readHook) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error {
		if h.count(cmds) && h.hold != nil {
			select {
			case h.entered <- struct{}{}:
			default:
			}
			<-h.hold
		}
		return next(ctx, cmds)
	}
}

// count counts the session reads among cmds, and reports whether
// there were any.
func (h *readHook) count(cmds []redis.Cmder) bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	any := false
	for _, c := range cmds {
		k, ok := c.Args()[1].(string)
		if c.Name() == "getrange" && ok && strings.HasPrefix(k, h.prefix) {
			h.gets[strings.TrimPrefix(k, h.prefix)]++
			any = true
		}
	}
	return any
}

// hookedStore builds a store on the shared Redis whose reads of
// session keys go through a readHook; edit changes its options.
func hookedStore(t testing.TB, hold bool, edit func(*Options)) (*Store, *readHook) {
	prefix := testPrefix(t)
	hook := newReadHook(prefix, hold)
	c := newClient(t, redisAddr(t))
	c.AddHook(hook)
	return newStore(t, c, prefix, edit), hook
}

// reads returns how often kind:key was read.
func (h *readHook) reads(kind, key string) int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.gets[kind+":"+key]
}

func (h *readHook) total() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	n := 0
	for _, v := range h.gets {
		n += v
	}
	return n
}

// counted is a MeterProvider whose counters add up what the store
// counts, by instrument and attributes, as in
// "runtimeid.redis.errors op=sessions_read".
type counted struct {
	noop.MeterProvider
	mu sync.Mutex
	n  map[string]int64
}

func newCounted() *counted { return &counted{n: map[string]int64{}} }

func (c *counted) Meter(string, ...metric.MeterOption) metric.Meter {
	return countedMeter{c: c}
}

func (c *counted) get(what string) int64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.n[what]
}

type countedMeter struct {
	noop.Meter
	c *counted
}

func (m countedMeter) Int64Counter(name string,
	_ ...metric.Int64CounterOption) (metric.Int64Counter, error) {
	return countedCounter{name: name, c: m.c}, nil
}

type countedCounter struct {
	noop.Int64Counter
	name string
	c    *counted
}

func (k countedCounter) Add(_ context.Context, n int64, opts ...metric.AddOption) {
	attrs := metric.NewAddConfig(opts).Attributes()
	what := k.name + " " + attrs.Encoded(attribute.DefaultEncoder())
	k.c.mu.Lock()
	defer k.c.mu.Unlock()
	k.c.n[what] += n
}

const (
	readErrors   = "runtimeid.redis.errors op=sessions_read"
	readsDropped = "runtimeid.redis.dropped kind=session_reads"
)

func findingCodes(t testing.TB, e *risk.SessionEvaluator, ev *runtimeid.Evaluation) []string {
	t.Helper()
	got, err := e.Assess(context.Background(), ev)
	require.NoError(t, err)
	codes := []string{}
	for _, f := range got {
		codes = append(codes, f.Code)
	}
	return codes
}

// TestSessionsReadBack: an instance started after A recorded a
// session's and a token's uses, so it received no publication, misses
// them once, then finds them in Redis.
func TestSessionsReadBack(t *testing.T) {
	addr := redisAddr(t)
	prefix := testPrefix(t)
	ctx := t.Context()
	c := newClient(t, addr)
	a := newStore(t, newClient(t, addr), prefix, withClock)
	first := sessionEval(0, "81.2.69.142", london, chrome, "s1", "t1")
	newSessionEvaluator(t, a).Learn(ctx, first)
	sid := risk.SharedSessionKey("alice", "s1")
	jti := risk.SharedSessionKey("alice", "t1")
	want, ok := a.Sessions().Lookup(risk.SessionKindSID, sid)
	require.True(t, ok)
	eventually(t, 2*time.Second, "written", func() bool {
		return c.Exists(ctx, prefix+"s:sid:"+sid, prefix+"s:jti:"+jti).Val() == 2
	})

	late := newStore(t, newClient(t, addr), prefix, withClock)
	_, ok = late.Sessions().Lookup(risk.SessionKindSID, sid)
	assert.False(t, ok, "the first lookup misses")
	var got risk.SessionUse
	took := eventually(t, 2*time.Second, "session read back", func() bool {
		got, ok = late.Sessions().Lookup(risk.SessionKindSID, sid)
		return ok
	})
	t.Logf("session read back after %v", took)
	assert.Equal(t, want, got)

	// The token from another device: its first lookup misses too.
	e := newSessionEvaluator(t, late)
	then := sessionEval(time.Minute, "81.2.69.142", london, firefox, "s1", "t1")
	assert.Equal(t, []string{risk.CodeSessionDeviceChange}, findingCodes(t, e, then))
	eventually(t, 2*time.Second, "token read back", func() bool {
		return slices.Equal(findingCodes(t, e, then), []string{risk.CodeTokenReplay})
	})
}

// TestSessionsReadOnce: a key missing everywhere is read once per
// SessionReadWindow, however often it is looked up.
func TestSessionsReadOnce(t *testing.T) {
	now, clk := movableClock()
	s, hook := hookedStore(t, false, func(o *Options) { o.Now = clk })
	ss := s.Sessions()
	lookups := func(n int) {
		for range n {
			_, ok := ss.Lookup(risk.SessionKindJTI, "missing")
			require.False(t, ok)
		}
	}
	// The reader takes keys in order: once a key looked up after
	// them is read, the lookups before were all handled.
	probe := 0
	settle := func() {
		probe++
		k := "probe" + strconv.Itoa(probe)
		ss.Lookup(risk.SessionKindJTI, k)
		eventually(t, 2*time.Second, k+" read", func() bool {
			return hook.reads(risk.SessionKindJTI, k) == 1
		})
	}

	lookups(100)
	settle()
	assert.Equal(t, 1, hook.reads(risk.SessionKindJTI, "missing"))

	now.Add(int64(DefaultSessionReadWindow - time.Millisecond))
	lookups(100)
	settle()
	assert.Equal(t, 1, hook.reads(risk.SessionKindJTI, "missing"), "within the window")

	now.Add(int64(time.Millisecond))
	lookups(100)
	settle()
	assert.Equal(t, 2, hook.reads(risk.SessionKindJTI, "missing"), "after the window")
	assert.Equal(t, 5, hook.total(), "2 reads of missing, 3 of the probes")
}

// TestSessionsReadQueueBound holds the background reader inside Redis
// and looks up 100,000 distinct missing keys: every lookup answers,
// MaxSessionReads keys wait, MaxRecentSessionReads are remembered, and
// the rest are dropped and counted; the reader then reads what waits.
func TestSessionsReadQueueBound(t *testing.T) {
	meters := newCounted()
	s, hook := hookedStore(t, true, func(o *Options) {
		o.Now, o.MeterProvider = clock, meters
		o.MaxRecentSessionReads = 2000
		o.Timeout = time.Minute // the held read is not a failed one
	})
	released := false
	release := func() {
		if !released {
			released = true
			close(hook.hold)
		}
	}
	t.Cleanup(release) // before the store's Close, which waits for the reader
	ss := s.Sessions()

	ss.Lookup(risk.SessionKindSID, "k0")
	<-hook.entered // the reader holds k0
	const n = 100_000
	start := time.Now()
	for i := 1; i < n; i++ {
		_, ok := ss.Lookup(risk.SessionKindSID, "k"+strconv.Itoa(i))
		require.False(t, ok)
	}
	t.Logf("%d missing lookups with the reader held: %v", n-1, time.Since(start))

	dropped := int64(n - 1 - DefaultMaxSessionReads)
	assert.Equal(t, DefaultMaxSessionReads, len(s.sessions.reads.queue))
	assert.Equal(t, 2000, s.sessions.reads.recentLen())
	assert.Equal(t, dropped, s.sessions.reads.dropped.Load())
	assert.Equal(t, dropped, meters.get(readsDropped))

	release()
	eventually(t, 5*time.Second, "queue read", func() bool {
		return hook.total() == 1+DefaultMaxSessionReads
	})
	assert.Equal(t, 0, len(s.sessions.reads.queue))
	assert.Equal(t, int64(0), meters.get(readErrors))
}

// TestSessionsReadBackCache: what a read finds is cached only when it
// is the latest use known and within SessionTTL.
func TestSessionsReadBackCache(t *testing.T) {
	addr := redisAddr(t)
	prefix := testPrefix(t)
	c := newClient(t, addr)
	s := newStore(t, c, prefix, withClock)
	older := risk.SessionUse{Time: testNow.Add(-time.Minute), Device: 1, HasDevice: true}
	newer := risk.SessionUse{Time: testNow, Device: 2, HasDevice: true}
	expired := risk.SessionUse{Time: testNow.Add(-DefaultSessionTTL - time.Millisecond)}
	tests := []struct {
		name   string
		cached *risk.SessionUse
		stored string // in Redis; "" for none
		want   *risk.SessionUse
	}{
		{"found", nil, encodeUse(t, older), &older},
		{"not found", nil, "", nil},
		{"newer cached", &newer, encodeUse(t, older), &newer},
		{"older cached", &older, encodeUse(t, newer), &newer},
		{"older than SessionTTL", nil, encodeUse(t, expired), nil},
		{"unreadable", nil, "{", nil},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			key := "k" + strconv.Itoa(i)
			if tt.cached != nil {
				s.sessions.mu.Lock()
				s.sessions.install("sid:"+key, *tt.cached)
				s.sessions.mu.Unlock()
			}
			if tt.stored != "" {
				require.NoError(t, c.Set(t.Context(), prefix+"s:sid:"+key,
					tt.stored, time.Minute).Err())
			}
			require.NoError(t, s.sessions.readBack(t.Context(), []string{"sid:" + key}))
			got, ok := s.Sessions().Lookup(risk.SessionKindSID, key)
			if tt.want == nil {
				assert.False(t, ok)
				return
			}
			assert.True(t, ok)
			assert.Equal(t, *tt.want, got)
		})
	}
}

func encodeUse(t testing.TB, u risk.SessionUse) string {
	b, err := json.Marshal(u)
	require.NoError(t, err)
	return string(b)
}

// TestSessionsReadOutage stops Redis: lookups answer from the cache,
// failed reads are counted and logged once, and a use written before
// the outage is read back once Redis returns.
func TestSessionsReadOutage(t *testing.T) {
	srv := startServer(t)
	prefix := testPrefix(t)
	ctx := t.Context()
	c := newClient(t, srv.addr)
	a := newStore(t, newClient(t, srv.addr), prefix, withClock)
	use := risk.SessionUse{Time: testNow, IP: netip.MustParseAddr("192.0.2.1"),
		Device: 7, HasDevice: true}
	a.Sessions().Record(risk.SessionKindJTI, "before", use)
	eventually(t, 2*time.Second, "written", func() bool {
		return c.Exists(ctx, prefix+"s:jti:before").Val() == 1
	})

	meters, logs := newCounted(), &logged{}
	late := newStore(t, newClient(t, srv.addr), prefix, func(o *Options) {
		o.Now, o.MeterProvider, o.Logger = clock, meters, slog.New(logs)
	})
	late.Sessions().Record(risk.SessionKindJTI, "mine", use)
	srv.stop()
	eventually(t, 5*time.Second, "down", func() bool { return !late.Healthy() })

	got, ok := late.Sessions().Lookup(risk.SessionKindJTI, "mine")
	assert.True(t, ok, "answered from the cache")
	assert.Equal(t, use, got)
	// A failed key is read again at its next miss: keep missing.
	eventually(t, 5*time.Second, "3 failed reads", func() bool {
		_, ok := late.Sessions().Lookup(risk.SessionKindJTI, "before")
		require.False(t, ok)
		return meters.get(readErrors) >= 3
	})
	assert.Equal(t, 1, countOf(logs.messages(), "redisstore: session uses not read back"))

	srv.start()
	eventually(t, 10*time.Second, "read back after the outage", func() bool {
		got, ok = late.Sessions().Lookup(risk.SessionKindJTI, "before")
		return ok
	})
	assert.Equal(t, use, got)
	msgs := logs.messages()
	assert.Equal(t, 1, countOf(msgs, "redisstore: session uses not read back"))
	assert.Equal(t, 1, countOf(msgs, "redisstore: session uses read back again"))
}

func countOf(msgs []string, m string) int {
	n := 0
	for _, s := range msgs {
		if s == m {
			n++
		}
	}
	return n
}

// TestSessionsRereadAfterResubscribe: a use written to Redis while an
// instance was not subscribed replaces the older use it cached, once
// its subscription comes back.
func TestSessionsRereadAfterResubscribe(t *testing.T) {
	srv := startServer(t)
	prefix := testPrefix(t)
	ctx := t.Context()
	c := newClient(t, srv.addr)
	now, clk := movableClock()
	late := newStore(t, newClient(t, srv.addr), prefix, func(o *Options) { o.Now = clk })
	old := risk.SessionUse{Time: testNow, IP: netip.MustParseAddr("192.0.2.1"),
		Device: 7, HasDevice: true}
	late.Sessions().Record(risk.SessionKindSID, "s", old)
	eventually(t, 2*time.Second, "written", func() bool {
		return c.Exists(ctx, prefix+"s:sid:s").Val() == 1
	})

	// Written straight into Redis, without a publish, as by an instance
	// whose publish this one missed while its subscription was down.
	newer := old
	newer.Time, newer.Device = testNow.Add(time.Minute), 9
	data, err := json.Marshal(newer)
	require.NoError(t, err)
	require.NoError(t, c.Set(ctx, prefix+"s:sid:s", data, time.Hour).Err())
	now.Add(int64(time.Minute)) // the newer use is not from the future
	got, _ := late.Sessions().Lookup(risk.SessionKindSID, "s")
	require.Equal(t, old, got, "nothing was published")

	// The server keeps its data across a restart; the resubscription
	// reads the cached key again.
	srv.stop()
	eventually(t, 5*time.Second, "down", func() bool { return !late.Healthy() })
	srv.start()
	eventually(t, 10*time.Second, "reread", func() bool {
		got, ok := late.Sessions().Lookup(risk.SessionKindSID, "s")
		return ok && got.Device == 9
	})
	got, _ = late.Sessions().Lookup(risk.SessionKindSID, "s")
	assert.Equal(t, newer, got)
}

// TestSessionsFutureUse: a use stamped in the future, as a peer with a
// fast clock or another writer may store it, is cached as of now, so
// that the uses recorded after it replace it. Kept with its own time,
// it stayed the latest use and hid every later one.
func TestSessionsFutureUse(t *testing.T) {
	addr := redisAddr(t)
	prefix := testPrefix(t)
	c := newClient(t, addr)
	now, clk := movableClock()
	s := newStore(t, c, prefix, func(o *Options) { o.Now = clk })
	future := risk.SessionUse{Time: testNow.Add(365 * 24 * time.Hour),
		Device: 1, HasDevice: true}
	require.NoError(t, c.Set(t.Context(), prefix+"s:sid:k",
		encodeUse(t, future), time.Minute).Err())
	require.NoError(t, s.sessions.readBack(t.Context(), []string{"sid:k"}))
	got, ok := s.Sessions().Lookup(risk.SessionKindSID, "k")
	require.True(t, ok)
	assert.Equal(t, testNow, got.Time, "cached as of now")

	now.Add(int64(time.Second))
	later := risk.SessionUse{Time: testNow.Add(time.Second), Device: 2, HasDevice: true}
	s.Sessions().Record(risk.SessionKindSID, "k", later)
	got, ok = s.Sessions().Lookup(risk.SessionKindSID, "k")
	require.True(t, ok)
	assert.Equal(t, later, got)
}

// TestSessionsReadBackForeignValues: a huge value or a key of another
// type, written by something else, is ignored without failing the
// other keys read in the same pipeline.
func TestSessionsReadBackForeignValues(t *testing.T) {
	addr := redisAddr(t)
	prefix := testPrefix(t)
	c := newClient(t, addr)
	s := newStore(t, c, prefix, withClock)
	use := risk.SessionUse{Time: testNow, Device: 3, HasDevice: true}
	ctx := t.Context()
	require.NoError(t, c.Set(ctx, prefix+"s:sid:good", encodeUse(t, use), time.Minute).Err())
	huge := `{"time":"` + strings.Repeat("9", 1<<20) + `"}`
	require.NoError(t, c.Set(ctx, prefix+"s:sid:huge", huge, time.Minute).Err())
	require.NoError(t, c.HSet(ctx, prefix+"s:sid:hash", "f", "v").Err())
	t.Cleanup(func() { c.Del(context.Background(), prefix+"s:sid:hash") })

	require.NoError(t, s.sessions.readBack(ctx, []string{"sid:huge", "sid:hash", "sid:good"}))
	got, ok := s.Sessions().Lookup(risk.SessionKindSID, "good")
	require.True(t, ok)
	assert.Equal(t, use, got)
	for _, k := range []string{"huge", "hash"} {
		_, ok := s.Sessions().Lookup(risk.SessionKindSID, k)
		assert.False(t, ok, k)
	}
}
