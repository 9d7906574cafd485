package risk

import (
	"context"
	"fmt"
	"math"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/runtimeid/runtimeid"
)

func inf() float64 { return math.Inf(1) }
func nan() float64 { return math.NaN() }

func newLRU(t testing.TB, n int) *LRUStore {
	s, err := NewLRUStore(n)
	require.NoError(t, err)
	return s
}

func stores(t *testing.T) map[string]Store {
	return map[string]Store{
		"memory": NewMemoryStore(),
		"lru":    newLRU(t, 100),
	}
}

func TestStoreUnknownSubject(t *testing.T) {
	for name, s := range stores(t) {
		t.Run(name, func(t *testing.T) {
			p, err := s.Get(context.Background(), "nobody")
			require.NoError(t, err)
			assert.Nil(t, p)
		})
	}
}

func TestStoreCopyOnWrite(t *testing.T) {
	ctx := context.Background()
	for name, s := range stores(t) {
		t.Run(name, func(t *testing.T) {
			o := observe(req{net: london, dev: chrome}.eval())
			require.NoError(t, s.Update(ctx, "alice", func(p *Profile) { p.learn(&o) }))
			before, err := s.Get(ctx, "alice")
			require.NoError(t, err)

			o2 := observe(req{at: time.Hour, net: paris}.eval())
			require.NoError(t, s.Update(ctx, "alice", func(p *Profile) { p.learn(&o2) }))

			// The snapshot read before the update is unchanged.
			assert.Equal(t, uint64(1), before.Requests)
			assert.Len(t, before.Countries, 1)

			after, err := s.Get(ctx, "alice")
			require.NoError(t, err)
			assert.Equal(t, uint64(2), after.Requests)
			assert.Len(t, after.Countries, 2)
		})
	}
}

// TestConcurrentLearning checks that no learned request is lost: 100
// goroutines learn 100 requests each for one subject.
func TestConcurrentLearning(t *testing.T) {
	for name, s := range stores(t) {
		t.Run(name, func(t *testing.T) {
			ctx := context.Background()
			e, err := NewEvaluator(s, Options{})
			require.NoError(t, err)

			var wg sync.WaitGroup
			for g := range 100 {
				wg.Go(func() {
					for i := range 100 {
						r := req{at: time.Duration(g*100+i) * time.Second, net: london, dev: chrome}
						ev := r.eval()
						_, err := e.Assess(ctx, ev)
						assert.NoError(t, err)
						e.Learn(ctx, ev)
					}
				})
			}
			wg.Wait()

			p, err := s.Get(ctx, "alice")
			require.NoError(t, err)
			assert.Equal(t, uint64(10000), p.Requests)
			require.Len(t, p.Devices, 1)
			assert.Equal(t, uint32(10000), p.Devices[0].Count)
			require.Len(t, p.Countries, 1)
			assert.Equal(t, uint32(10000), p.Countries[0].Count)
			assert.Equal(t, t0, p.FirstSeen)
			assert.Equal(t, t0.Add(9999*time.Second), p.LastSeen)
			assert.Equal(t, t0.Add(9999*time.Second), p.Location.Time)
		})
	}
}

func TestLRUStoreBound(t *testing.T) {
	ctx := context.Background()
	s := newLRU(t, 10)
	for i := range 1000 {
		sub := fmt.Sprintf("user-%d", i)
		require.NoError(t, s.Update(ctx, sub, func(p *Profile) { p.Requests++ }))
	}
	assert.Equal(t, 10, s.Len())

	// The ten most recent subjects are the ones kept.
	for i := range 1000 {
		p, err := s.Get(ctx, fmt.Sprintf("user-%d", i))
		require.NoError(t, err)
		assert.Equal(t, i >= 990, p != nil, "user-%d", i)
	}
}

func TestNewLRUStoreErrors(t *testing.T) {
	for _, n := range []int{0, -1} {
		s, err := NewLRUStore(n)
		assert.Nil(t, s)
		require.ErrorIs(t, err, runtimeid.ErrConfig)
		assert.EqualError(t, err, fmt.Sprintf(
			"runtimeid: config risk.NewLRUStore maxSubjects: must be positive, not %d", n))
	}
}

func TestProfileBounds(t *testing.T) {
	p := &Profile{}
	for i := range 100 {
		o := observation{
			time:      t0.Add(time.Duration(i) * time.Minute),
			device:    uint64(i),
			hasDevice: true,
			country:   fmt.Sprintf("%c%c", 'A'+i/26, 'A'+i%26),
			asn:       uint32(i + 1),
		}
		p.learn(&o)
	}
	require.Len(t, p.Countries, MaxCountries)
	require.Len(t, p.Devices, MaxDevices)
	require.Len(t, p.ASNs, MaxASNs)

	// The sixteen most recent are kept: i from 84 to 99.
	for i := 84; i < 100; i++ {
		assert.True(t, contains(p.Countries, fmt.Sprintf("%c%c", 'A'+i/26, 'A'+i%26)), i)
		assert.True(t, contains(p.Devices, uint64(i)), i)
		assert.True(t, contains(p.ASNs, uint32(i+1)), i)
	}
	assert.Equal(t, uint64(100), p.Requests)
}

func TestEvictionPrefersStaleThenRare(t *testing.T) {
	list := []Seen[string]{
		{Key: "AA", Count: 9, Last: t0},
		{Key: "BB", Count: 1, Last: t0},
		{Key: "CC", Count: 1, Last: t0.Add(time.Hour)},
	}
	list = touch(list, "DD", t0.Add(2*time.Hour), 3)
	assert.Equal(t, []Seen[string]{
		{Key: "AA", Count: 9, Last: t0},
		{Key: "DD", Count: 1, Last: t0.Add(2 * time.Hour)},
		{Key: "CC", Count: 1, Last: t0.Add(time.Hour)},
	}, list)

	// A known key is counted, and its time never goes back.
	list = touch(list, "AA", t0.Add(-time.Hour), 3)
	assert.Equal(t, Seen[string]{Key: "AA", Count: 10, Last: t0}, list[0])
}

func TestCountSaturates(t *testing.T) {
	list := []Seen[uint32]{{Key: 1, Count: math.MaxUint32, Last: t0}}
	list = touch(list, 1, t0, MaxASNs)
	assert.Equal(t, uint32(math.MaxUint32), list[0].Count)
}

func TestLearnKeepsLatestLocation(t *testing.T) {
	p := &Profile{}
	late := observe(req{at: time.Hour, net: paris}.eval())
	early := observe(req{net: london}.eval())
	p.learn(&late)
	p.learn(&early)

	assert.Equal(t, "FR", p.Location.Country)
	assert.Equal(t, t0, p.FirstSeen)
	assert.Equal(t, t0.Add(time.Hour), p.LastSeen)
}

func TestObserve(t *testing.T) {
	tests := []struct {
		name    string
		net     runtimeid.NetworkSignals
		country string
		asn     uint32
		hasLoc  bool
		acc     float64
	}{
		{"lower-case country", runtimeid.NetworkSignals{Country: "gb"}, "GB", 0, false, 0},
		{"long country", runtimeid.NetworkSignals{Country: "GBR"}, "", 0, false, 0},
		{"digits", runtimeid.NetworkSignals{Country: "G1"}, "", 0, false, 0},
		{"huge ASN", runtimeid.NetworkSignals{ASN: math.MaxUint32 + 1}, "", 0, false, 0},
		{"ASN", runtimeid.NetworkSignals{ASN: 1221}, "", 1221, false, 0},
		{"location", london, "GB", 2856, true, 0},
		{"latitude out of range", with(london, func(n *runtimeid.NetworkSignals) {
			n.Latitude = 91
		}), "GB", 2856, false, 0},
		{"NaN longitude", with(london, func(n *runtimeid.NetworkSignals) {
			n.Longitude = nan()
		}), "GB", 2856, false, 0},
		{"location not flagged", with(london, func(n *runtimeid.NetworkSignals) {
			n.HasLocation = false
		}), "GB", 2856, false, 0},
		{"NaN accuracy", with(london, func(n *runtimeid.NetworkSignals) {
			n.AccuracyKM = nan()
		}), "GB", 2856, true, 0},
		{"infinite accuracy", with(london, func(n *runtimeid.NetworkSignals) {
			n.AccuracyKM = inf()
		}), "GB", 2856, true, maxAccuracyKM},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			o := observe(req{net: tt.net}.eval())
			assert.Equal(t, tt.country, o.country)
			assert.Equal(t, tt.asn, o.asn)
			assert.Equal(t, tt.hasLoc, o.hasLocation)
			assert.Equal(t, tt.acc, o.location.AccuracyKM)
		})
	}
}

func TestDeviceKey(t *testing.T) {
	base, ok := deviceKey(&chrome)
	require.True(t, ok)

	same := []runtimeid.DeviceSignals{
		with(chrome, func(d *runtimeid.DeviceSignals) { d.BrowserVersion = "120" }),
		with(chrome, func(d *runtimeid.DeviceSignals) { d.BrowserVersion = "120.1" }),
		with(chrome, func(d *runtimeid.DeviceSignals) { d.UserAgent = "anything" }),
		with(chrome, func(d *runtimeid.DeviceSignals) { d.OSVersion = "11" }),
	}
	for _, d := range same {
		k, ok := deviceKey(&d)
		require.True(t, ok)
		assert.Equal(t, base, k, "%+v", d)
	}

	different := []runtimeid.DeviceSignals{
		with(chrome, func(d *runtimeid.DeviceSignals) { d.BrowserVersion = "121" }),
		with(chrome, func(d *runtimeid.DeviceSignals) { d.OS = "Mac OS X" }),
		with(chrome, func(d *runtimeid.DeviceSignals) { d.Type = "mobile" }),
		with(chrome, func(d *runtimeid.DeviceSignals) { d.ID = "dev-1" }),
		// The length prefix keeps shifted boundaries apart.
		with(chrome, func(d *runtimeid.DeviceSignals) {
			d.Browser, d.BrowserVersion = "Chrome1", "20"
		}),
	}
	for _, d := range different {
		k, ok := deviceKey(&d)
		require.True(t, ok)
		assert.NotEqual(t, base, k, "%+v", d)
	}

	_, ok = deviceKey(&runtimeid.DeviceSignals{UserAgent: "curl/8"})
	assert.False(t, ok)
}

func TestHaversine(t *testing.T) {
	tests := []struct {
		name                   string
		lat1, lon1, lat2, lon2 float64
		want                   float64
	}{
		{"same point", 51.5074, -0.1278, 51.5074, -0.1278, 0},
		{"London-Linköping", 51.5074, -0.1278, 58.4108, 15.6214, 1259.8847},
		{"London-Paris", 51.5074, -0.1278, 48.8566, 2.3522, 343.5561},
		// Half the circumference: π × 6371.
		{"antipodes", 0, 0, 0, 180, 20015.0868},
		{"pole to pole", 90, 0, -90, 0, 20015.0868},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := haversineKM(tt.lat1, tt.lon1, tt.lat2, tt.lon2)
			assert.InDelta(t, tt.want, got, 0.0001)
		})
	}
}

func TestClone(t *testing.T) {
	var nilProfile *Profile
	assert.Nil(t, nilProfile.Clone())

	p := &Profile{Countries: []Seen[string]{{Key: "GB", Count: 1}}}
	c := p.Clone()
	c.Countries[0].Count = 2
	assert.Equal(t, uint32(1), p.Countries[0].Count)
}

// TestLRUStoreShards checks how the bound is shared out among shards,
// and that a sharded store holds exactly its bound when full.
func TestLRUStoreShards(t *testing.T) {
	tests := []struct {
		max    int
		shards int
		first  int // the first shard's bound
	}{
		{1, 1, 1},
		{2047, 1, 2047},
		{2048, 2, 1024},
		{10_001, 9, 1112},
		{100_000, 16, 6250},
		{1_000_003, 16, 62_501},
	}
	for _, tt := range tests {
		s := newLRU(t, tt.max)
		require.Len(t, s.shards, tt.shards, "max %d", tt.max)
		assert.Equal(t, tt.first, s.shards[0].size, "max %d", tt.max)
		total := 0
		for i := range s.shards {
			total += s.shards[i].size
		}
		assert.Equal(t, tt.max, total)
	}

	ctx := context.Background()
	s := newLRU(t, 4096)
	for i := range 3 * 4096 {
		require.NoError(t, s.Update(ctx, fmt.Sprint("user-", i), func(*Profile) {}))
	}
	assert.Equal(t, 4096, s.Len())
	p, err := s.Get(ctx, fmt.Sprint("user-", 3*4096-1))
	require.NoError(t, err)
	assert.NotNil(t, p, "the latest subject is kept")
}
