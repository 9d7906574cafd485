package ssf

import (
	"context"
	"encoding/base64"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/runtimeid/runtimeid"
)

// capture is a receiver on loopback that answers each push with the
// next status of its script (202 once the script is done) and hands
// each SET's payload to the test.
type capture struct {
	srv    *httptest.Server
	sets   chan *SET
	script chan int
	hold   chan struct{} // when not nil, each push waits for it
}

func newCapture(t *testing.T, hold bool, script ...int) *capture {
	c := &capture{sets: make(chan *SET, 16), script: make(chan int, len(script))}
	for _, s := range script {
		c.script <- s
	}
	if hold {
		c.hold = make(chan struct{})
	}
	c.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		parts := strings.Split(string(body), ".")
		payload, _ := base64.RawURLEncoding.DecodeString(parts[1])
		set, err := ParsePayload(payload)
		if err != nil {
			t.Errorf("transmitter sent a bad SET: %v", err)
		}
		c.sets <- set
		if c.hold != nil {
			<-c.hold
		}
		status := http.StatusAccepted
		select {
		case status = <-c.script:
		default:
		}
		w.WriteHeader(status)
		if status == http.StatusBadRequest {
			w.Write([]byte(`{"err":"invalid_request","description":"no"}`))
		}
	}))
	t.Cleanup(c.srv.Close)
	return c
}

func (c *capture) next(t *testing.T) *SET {
	t.Helper()
	select {
	case s := <-c.sets:
		return s
	case <-time.After(10 * time.Second):
		t.Fatal("no SET arrived")
		return nil
	}
}

func newTestTransmitter(t *testing.T, c *capture, edit func(*TransmitterOptions)) *Transmitter {
	s := newSigner(t, "tx-1")
	opts := TransmitterOptions{Issuer: txIssuer, Audience: rxAudience, Key: s.priv,
		PushURL: c.srv.URL, Client: c.srv.Client(), Now: func() time.Time { return t0 },
		TokenIssuer: tokIssuer}
	if edit != nil {
		edit(&opts)
	}
	tr, err := NewTransmitter(opts)
	require.NoError(t, err)
	t.Cleanup(func() { tr.Close() })
	return tr
}

func TestTransmitterSignsSET(t *testing.T) {
	c := newCapture(t, false)
	s := newSigner(t, "tx-1")
	tr := newTestTransmitter(t, c, func(o *TransmitterOptions) { o.Key = s.priv })

	ev := RiskLevelChangeEvent(IssSub(tokIssuer, "alice"), "USER", "high", "low", t0.Add(-time.Minute), "new_device")
	raw, err := tr.Sign(ev)
	require.NoError(t, err)

	// The transmitter's SET passes the receiver's checks.
	r := newTestReceiver(t, s, nil)
	require.NoError(t, r.Process(context.Background(), raw))
	f, ok := r.opts.State.Lookup(Key{Kind: KindIssSub, Issuer: tokIssuer, ID: "alice"}, t0)
	require.True(t, ok)
	assert.Equal(t, "high", f.RiskLevel)
	assert.Equal(t, t0.Add(-time.Minute), f.RiskAt)

	require.NoError(t, tr.Emit(context.Background(), ev))
	set := c.next(t)
	assert.Equal(t, CAEPRiskLevelChange, set.Events[0].Type)
	assert.Equal(t, map[string]any{"principal": "USER", "current_level": "HIGH", "previous_level": "LOW",
		"risk_reason": "new_device", "event_timestamp": float64(t0.Add(-time.Minute).Unix())},
		set.Events[0].Claims)
	assert.Len(t, set.JTI, 32)
}

func TestTransmitterRetries(t *testing.T) {
	c := newCapture(t, false, 503, 500, 202, 400)
	var mu sync.Mutex
	var waits []time.Duration
	tr := newTestTransmitter(t, c, func(o *TransmitterOptions) {
		o.Wait = func(_ context.Context, d time.Duration) error {
			mu.Lock()
			defer mu.Unlock()
			waits = append(waits, d)
			return nil
		}
	})
	ctx := context.Background()
	require.NoError(t, tr.Emit(ctx, SessionRevokedEvent(Opaque("s-1"), t0, "a")))
	require.NoError(t, tr.Emit(ctx, SessionRevokedEvent(Opaque("s-2"), t0, "b")))
	require.NoError(t, tr.Emit(ctx, SessionRevokedEvent(Opaque("s-3"), t0, "c")))
	for range 5 {
		c.next(t)
	}
	// s-1: 503, 500, 202 with waits of 1s and 2s; s-2: 400, dropped
	// without retry; s-3: 202. Its arrival means s-2 was accounted.
	mu.Lock()
	defer mu.Unlock()
	assert.Equal(t, []time.Duration{time.Second, 2 * time.Second}, waits)
	assert.Equal(t, int64(1), tr.Dropped())
}

func TestTransmitterQueueFull(t *testing.T) {
	c := newCapture(t, true)
	tr := newTestTransmitter(t, c, func(o *TransmitterOptions) { o.QueueSize = 1 })
	ctx := context.Background()
	require.NoError(t, tr.Emit(ctx, SessionRevokedEvent(Opaque("s-1"), t0, "")))
	c.next(t) // the sender holds s-1
	require.NoError(t, tr.Emit(ctx, SessionRevokedEvent(Opaque("s-2"), t0, "")))
	assert.ErrorIs(t, tr.Emit(ctx, SessionRevokedEvent(Opaque("s-3"), t0, "")), ErrQueueFull)
	assert.Equal(t, int64(1), tr.Dropped())

	close(c.hold)
	c.next(t)
	require.NoError(t, tr.Close())
	assert.ErrorIs(t, tr.Emit(ctx, SessionRevokedEvent(Opaque("s-4"), t0, "")), ErrClosed)
}

func TestOnDecision(t *testing.T) {
	c := newCapture(t, false)
	tr := newTestTransmitter(t, c, nil)
	ctx := context.Background()
	id := identity("alice", "s-1", t0)
	blocked := &runtimeid.Evaluation{Time: t0, Identity: id,
		Decision: runtimeid.Decision{Outcome: runtimeid.Block, Reason: "impossible_travel"}}

	tr.OnDecision(ctx, blocked)
	set := c.next(t)
	assert.Equal(t, CAEPSessionRevoked, set.Events[0].Type)
	keys, err := set.Events[0].Subject.keys(roleSession)
	require.NoError(t, err)
	want := []Key{
		{Kind: KindIssSub, Issuer: tokIssuer, ID: "alice"},
		{Kind: KindSession, ID: "s-1"},
	}
	assert.Equal(t, want, keys.all())
	assert.Equal(t, map[string]any{"en": "impossible_travel"}, set.Events[0].Claims["reason_admin"])

	// Reported once per interval; failed evaluations and risks the
	// identity provider raised itself are not reported.
	tr.OnDecision(ctx, blocked)
	tr.OnDecision(ctx, &runtimeid.Evaluation{Time: t0, Identity: identity("bob", "", t0),
		Err: runtimeid.ErrToken, Decision: runtimeid.Decision{Outcome: runtimeid.Block}})
	tr.OnDecision(ctx, &runtimeid.Evaluation{Time: t0, Identity: identity("carol", "", t0),
		Assessment: runtimeid.Assessment{Level: runtimeid.LevelHigh,
			Findings: []runtimeid.Finding{{Code: FindingRiskLevel}}}})
	tr.OnDecision(ctx, &runtimeid.Evaluation{Time: t0, Identity: identity("dave", "", t0),
		Assessment: runtimeid.Assessment{Level: runtimeid.LevelHigh,
			Findings: []runtimeid.Finding{{Code: "new_device"}, {Code: "unusual_hour"}}}})
	set = c.next(t)
	assert.Equal(t, CAEPRiskLevelChange, set.Events[0].Type)
	assert.Equal(t, IssSub(tokIssuer, "dave"), set.Events[0].Subject)
	assert.Equal(t, "new_device,unusual_hour", set.Events[0].Claims["risk_reason"])

	blocked.Time = t0.Add(DefaultReportInterval)
	tr.OnDecision(ctx, blocked)
	assert.Equal(t, CAEPSessionRevoked, c.next(t).Events[0].Type)
	assert.Equal(t, int64(0), tr.Dropped())
}

func TestAuditHandler(t *testing.T) {
	c := newCapture(t, false)
	tr := newTestTransmitter(t, c, func(o *TransmitterOptions) { o.BlockReasons = []string{"impossible_travel"} })
	log := slog.New(AuditHandler(slog.DiscardHandler, tr))
	ctx := context.Background()

	log.LogAttrs(ctx, slog.LevelWarn, runtimeid.AuditMessage, slog.String("outcome", "block"),
		slog.String("reason", "bot"), slog.String("sub", "alice"), slog.String("sid", "s-1"))
	log.LogAttrs(ctx, slog.LevelWarn, runtimeid.AuditMessage, slog.String("outcome", "block"),
		slog.String("reason", "impossible_travel"), slog.String("risk_level", "low"),
		slog.Any("findings", []string{"impossible_travel"}),
		slog.String("sub", "alice"), slog.String("sid", "s-1"))
	set := c.next(t)
	assert.Equal(t, CAEPSessionRevoked, set.Events[0].Type)
	assert.Equal(t, "alice", set.Events[0].Subject.User.Sub)
	assert.Equal(t, tokIssuer, set.Events[0].Subject.User.Iss)
	assert.Equal(t, "s-1", set.Events[0].Subject.Session.ID)
}

func TestNewTransmitterErrors(t *testing.T) {
	s := newSigner(t, "k")
	noAlg := newSigner(t, "k").priv
	require.NoError(t, noAlg.Remove("alg"))
	tests := []struct {
		edit func(*TransmitterOptions)
		want string
	}{
		{func(o *TransmitterOptions) { o.Issuer = "" }, "Issuer required"},
		{func(o *TransmitterOptions) { o.Audience = "" }, "Audience required"},
		{func(o *TransmitterOptions) { o.Key = nil }, "Key required"},
		{func(o *TransmitterOptions) { o.Key = noAlg }, "Key must have an asymmetric alg"},
		{func(o *TransmitterOptions) { o.PushURL = "http://idp.example/ssf" }, "PushURL"},
	}
	for _, tt := range tests {
		opts := TransmitterOptions{
			Issuer:   txIssuer,
			Audience: rxAudience,
			Key:      s.priv,
			PushURL:  "https://idp.example/ssf",
		}
		tt.edit(&opts)
		_, err := NewTransmitter(opts)
		assert.ErrorIs(t, err, ErrOptions)
		assert.ErrorContains(t, err, tt.want)
	}
}
