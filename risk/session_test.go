package risk

import (
	"context"
	"math"
	"net/netip"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/runtimeid/runtimeid"
)

// use is one request of alice's session "s1".
type use struct {
	at  time.Duration
	ip  string
	net runtimeid.NetworkSignals
	dev runtimeid.DeviceSignals
	jti string
}

func (u use) eval() *runtimeid.Evaluation {
	ev := &runtimeid.Evaluation{Time: t0.Add(u.at), Identity: &runtimeid.Identity{
		Subject: "alice", SessionID: "s1", TokenID: u.jti}}
	ev.Signals.ClientIP = netip.MustParseAddr(u.ip)
	ev.Signals.Network = u.net
	ev.Signals.Device = u.dev
	return ev
}

func TestSessionEvaluator(t *testing.T) {
	firefox := runtimeid.DeviceSignals{Browser: "Firefox", BrowserVersion: "123",
		OS: "Windows", Type: "desktop"}
	first := use{ip: "192.0.2.1", net: london, dev: chrome, jti: "t1"}
	tests := []struct {
		name string
		now  use
		want []runtimeid.Finding
	}{
		{name: "same address and device", now: with(first, func(u *use) { u.at = time.Hour })},
		{
			name: "new address in the same network",
			now:  with(first, func(u *use) { u.at, u.ip = time.Hour, "192.0.2.9" }),
			want: []runtimeid.Finding{finding(CodeSessionIPChange, 0.1,
				"the session moved to another address in the same network")},
		},
		{
			name: "new network",
			now: with(first, func(u *use) {
				u.at, u.ip = time.Hour, "198.51.100.1"
				u.net.ASN = 3301
			}),
			want: []runtimeid.Finding{finding(CodeSessionIPChange, 0.4,
				"the session moved from AS2856 to AS3301")},
		},
		{
			name: "same token on another device",
			now:  with(first, func(u *use) { u.at, u.dev = time.Minute, firefox }),
			want: []runtimeid.Finding{finding(CodeTokenReplay, 0.8,
				"the same token (jti) was presented by another device")},
		},
		{
			name: "new token, session on another device",
			now: with(first, func(u *use) {
				u.at, u.dev, u.jti = time.Hour, firefox, "t2"
			}),
			want: []runtimeid.Finding{finding(CodeSessionDeviceChange, 0.6,
				"the device changed in the middle of the session")},
		},
		{
			// 1259.88 km in 5 minutes.
			name: "session used far away at once",
			now: use{at: 5 * time.Minute, ip: "198.51.100.1", net: with(linkoping,
				func(n *runtimeid.NetworkSignals) { n.ASN = 3301 }), dev: chrome, jti: "t1"},
			want: []runtimeid.Finding{
				finding(CodeSessionIPChange, 0.4, "the session moved from AS2856 to AS3301"),
				finding(CodeConcurrentSessionFarApart, 0.9,
					"the session was used 1260 km away 5 min earlier"),
			},
		},
		{
			// Eleven minutes is past the concurrent window.
			name: "far away later",
			now: use{at: 11 * time.Minute, ip: "192.0.2.1", net: linkoping,
				dev: chrome, jti: "t1"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx := context.Background()
			s, err := NewSessionEvaluator(SessionOptions{})
			require.NoError(t, err)
			_, err = s.Assess(ctx, first.eval())
			require.NoError(t, err)
			s.Learn(ctx, first.eval())

			got, err := s.Assess(ctx, tt.now.eval())
			require.NoError(t, err)
			assert.Equal(t, tt.want, got)
		})
	}
}

// TestRequestBurst: three requests at one instant make a decayed count
// of 3, which with a half-life of one minute is 3·ln 2 = 2.08 a
// minute: over a limit of 2, with confidence 2.08/4, so the weight is
// 0.8·3·ln 2/4.
func TestRequestBurst(t *testing.T) {
	ctx := context.Background()
	s, err := NewSessionEvaluator(SessionOptions{BurstPerMinute: 2})
	require.NoError(t, err)
	u := use{ip: "192.0.2.1", net: london, dev: chrome}
	var got []runtimeid.Finding
	for range 3 {
		got, err = s.Assess(ctx, u.eval())
		require.NoError(t, err)
	}
	require.Len(t, got, 1)
	assert.Equal(t, CodeRequestBurst, got[0].Code)
	assert.InDelta(t, 0.8*3*math.Ln2/4, got[0].Weight, 1e-12)
	assert.Equal(t, "about 2 requests per minute, limit 2", got[0].Detail)

	// Two half-lives later the count is 3/4 + 1.
	u.at = 2 * time.Minute
	got, err = s.Assess(ctx, u.eval())
	require.NoError(t, err)
	assert.Empty(t, got)
	sessions, sources := s.Len()
	assert.Equal(t, 0, sessions)
	assert.Equal(t, 2, sources) // alice and 192.0.2.1
}

func TestSessionBounds(t *testing.T) {
	ctx := context.Background()
	s, err := NewSessionEvaluator(SessionOptions{MaxSessions: 10, MaxSources: 5})
	require.NoError(t, err)
	for i := range 100 {
		ev := use{ip: "192.0.2.1", net: london, dev: chrome}.eval()
		ev.Identity.SessionID = string(rune('A' + i))
		ev.Identity.TokenID = string(rune('a' + i))
		ev.Signals.ClientIP = netip.AddrFrom4([4]byte{10, 0, 0, byte(i)})
		_, err := s.Assess(ctx, ev)
		require.NoError(t, err)
		s.Learn(ctx, ev)
	}
	sessions, sources := s.Len()
	assert.Equal(t, 10, sessions)
	assert.Equal(t, 5, sources)
}

func TestUnusualHour(t *testing.T) {
	ctx := context.Background()
	e, err := NewEvaluator(NewMemoryStore(), Options{UnusualHourHistory: 2})
	require.NoError(t, err)
	home := req{net: london, dev: chrome}
	for range 2 {
		e.Learn(ctx, home.eval()) // Monday 09:00
	}

	// Monday 21:00: nothing near in the week or the day. Confidence
	// 2/(2+2), weight 0.3·0.5.
	got, err := e.Assess(ctx, with(home, func(r *req) { r.at = 12 * time.Hour }).eval())
	require.NoError(t, err)
	assert.Equal(t, []runtimeid.Finding{finding(CodeUnusualHour, 0.15,
		"no activity near Monday 21:00 UTC in 2 requests")}, got)

	// Tuesday 10:00 is near Monday 09:00 in the hour of the day.
	got, err = e.Assess(ctx, with(home, func(r *req) { r.at = 25 * time.Hour }).eval())
	require.NoError(t, err)
	assert.Empty(t, got)
}

func TestHourHistogramHalves(t *testing.T) {
	var h HourHistogram
	h[HourOfWeek(t0)+1] = 3
	h[HourOfWeek(t0)] = maxHourCount
	h.add(t0)
	assert.Equal(t, uint16(maxHourCount/2+1), h[HourOfWeek(t0)])
	assert.Equal(t, uint16(1), h[HourOfWeek(t0)+1])
	assert.Equal(t, 1*24+9, HourOfWeek(t0)) // Monday 09:00
}
