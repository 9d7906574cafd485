package risk

import (
	"context"
	"math"
	"net/netip"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/runtimeid/runtimeid"
)

var ua120 = "Mozilla/5.0 (Windows NT 10.0; Win64; x64) Chrome/120.0.6099.109"

func modelReq(sub, ip string, net runtimeid.NetworkSignals) *runtimeid.Evaluation {
	ev := &runtimeid.Evaluation{Time: t0, Identity: &runtimeid.Identity{Subject: sub}}
	ev.Signals.ClientIP = netip.MustParseAddr(ip)
	ev.Signals.Network = net
	ev.Signals.Device = with(chrome, func(d *runtimeid.DeviceSignals) {
		d.OSVersion, d.UserAgent = "10", ua120
	})
	return ev
}

// TestModelScore checks the likelihood ratio by hand. Alice made three
// requests from London, AS2856, one address, one device; nobody else
// was seen, so the population is her three requests. She now comes
// from Linköping with the same device.
//
// Network chain: Sweden was never seen. Population: (0+1)/(3+250) =
// 1/253. Alice: (0 + 1·(1/253))/(3+1) = 1/1012. Ratio 4. Alice never
// came from Sweden, so its AS and address give her the population's
// probability: ratio 1 each.
//
// Device chain, all seen three times of three: the population gives
// (3+1)/(3+V) for a vocabulary V, Alice (3 + pop)/(3+1):
//
//	type     V=5    pop 1/2     ratio (1/2)/(7/8)         = 4/7
//	OS       V=50   pop 4/53    ratio (4/53)/(163/212)    = 16/163
//	browser  V=100  pop 4/103   ratio (4/103)/(313/412)   = 16/313
//	UA       V=100  pop 4/103   ratio                       16/313
func TestModelScore(t *testing.T) {
	ctx := context.Background()
	m, err := NewModel(ModelOptions{})
	require.NoError(t, err)
	for range 3 {
		m.Learn(ctx, modelReq("alice", "192.0.2.1", london))
	}

	s := m.Score(modelReq("alice", "198.51.100.7", linkoping))
	want := 4.0 * 4 / 7 * 16 / 163 * 16 / 313 * 16 / 313
	assert.InDelta(t, want, s.LikelihoodRatio, 1e-15)
	assert.InDelta(t, want/(want+3), s.Probability, 1e-15)
	assert.Equal(t, "country", s.Feature)
	assert.InDelta(t, 4, s.Ratio, 1e-12)

	// With the device unknown, only the network speaks: ratio 4,
	// weight 4/(4+3).
	ev := modelReq("alice", "198.51.100.7", linkoping)
	ev.Signals.Device = runtimeid.DeviceSignals{}
	fs, err := m.Assess(ctx, ev)
	require.NoError(t, err)
	require.Len(t, fs, 1)
	assert.Equal(t, CodeUnfamiliarContext, fs[0].Code)
	assert.InDelta(t, 4.0/7, fs[0].Weight, 1e-12)
	assert.Equal(t, "likelihood ratio 4, most of all the country (4)", fs[0].Detail)
}

// TestModelColdStart: a subject with no history is indistinguishable
// from the population, so every ratio is exactly 1 and the weight is
// the prior, 1/(1+3); the model reports nothing.
func TestModelColdStart(t *testing.T) {
	ctx := context.Background()
	m, err := NewModel(ModelOptions{})
	require.NoError(t, err)
	m.Learn(ctx, modelReq("alice", "192.0.2.1", london))

	ev := modelReq("bob", "198.51.100.7", linkoping)
	s := m.Score(ev)
	assert.Equal(t, 1.0, s.LikelihoodRatio)
	assert.InDelta(t, 0.25, s.Probability, 1e-15)
	fs, err := m.Assess(ctx, ev)
	require.NoError(t, err)
	assert.Empty(t, fs)

	ev.Identity = nil
	assert.Equal(t, 1.0, m.Score(ev).LikelihoodRatio)
}

func TestModelBounds(t *testing.T) {
	ctx := context.Background()
	m, err := NewModel(ModelOptions{MaxSubjects: 2, MaxValues: 3, SketchWidth: 64})
	require.NoError(t, err)
	for i := range 50 {
		ev := modelReq("alice", "192.0.2.1", london)
		ev.Signals.ClientIP = netip.AddrFrom4([4]byte{192, 0, 2, byte(i)})
		ev.Signals.Device.UserAgent = ua120 + string(rune('a'+i))
		m.Learn(ctx, ev)
		m.Learn(ctx, modelReq(string(rune('a'+i)), "192.0.2.1", london))
	}
	assert.Equal(t, 2, m.Len())
	h, _ := m.histories.Peek("alice")
	require.NotNil(t, h)
	for c := range h.levels {
		for l := range h.levels[c] {
			assert.LessOrEqual(t, len(h.levels[c][l]), 3)
		}
	}
}

func TestNewModelErrors(t *testing.T) {
	for name, opts := range map[string]ModelOptions{
		"risk.ModelOptions.SketchWidth":     {SketchWidth: 100},
		"risk.ModelOptions.MaxSubjects":     {MaxSubjects: -1},
		"risk.ModelOptions.MaxValues":       {MaxValues: -1},
		"risk.ModelOptions.HalfWeightRatio": {HalfWeightRatio: math.NaN()},
	} {
		_, err := NewModel(opts)
		var ce *runtimeid.ConfigError
		require.ErrorAs(t, err, &ce, name)
		assert.Equal(t, name, ce.Field)
	}
}

func TestCountMinSketch(t *testing.T) {
	s := newCountMinSketch(1 << 10)
	for i := range 100 {
		for range i % 5 {
			s.add(uint64(i))
		}
	}
	for i := range 100 {
		assert.GreaterOrEqual(t, s.count(uint64(i)), uint32(i%5))
	}
	assert.Equal(t, uint32(4), s.count(4))
}
