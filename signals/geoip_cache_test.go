package signals

import (
	"net/netip"
	"runtime"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/runtimeid/runtimeid"
)

// cached is how many addresses g's current set remembers.
func cached(g *GeoIP) int { return g.cur.Load().cache.len() }

func TestGeoIPCache(t *testing.T) {
	tests := []struct {
		name  string
		size  int
		addrs []string
		held  int
	}{
		{"default", 0, []string{"81.2.69.142", "81.2.69.142", "2.2.3.0"}, 2},
		{"off", -1, []string{"81.2.69.142", "2.2.3.0"}, 0},
		{"bounded", 2, []string{"81.2.69.142", "2.2.3.0", "2.125.160.216",
			"89.160.20.112"}, 2},
		{"private not looked up", 0, []string{"10.1.2.3", "::1"}, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := fullGeoIPConfig()
			cfg.CacheSize = tt.size
			g := openGeoIP(t, cfg)
			uncached := fullGeoIPConfig()
			uncached.CacheSize = -1
			ref := openGeoIP(t, uncached)
			for _, s := range tt.addrs {
				a := netip.MustParseAddr(s)
				want, err := ref.Lookup(a)
				require.NoError(t, err)
				// Twice: a miss, then (when cached) a hit.
				for range 2 {
					got, err := g.Lookup(a)
					require.NoError(t, err)
					assert.Equal(t, want, got, s)
				}
			}
			assert.Equal(t, tt.held, cached(g))
		})
	}
}

// A reload makes a new set with an empty cache: an address cached from
// the old files is answered from the new ones.
func TestGeoIPCacheReloadNotStale(t *testing.T) {
	city := copyToTemp(t, "GeoIP2-City-Test.mmdb")
	g := openGeoIP(t, GeoIPConfig{CityPath: city})
	require.Equal(t, "Boxford", cityOf(t, g, boxford))
	require.Equal(t, "Boxford", cityOf(t, g, boxford))
	require.Equal(t, 1, cached(g))

	replaceFile(t, mmdb("GeoLite2-City-Test.mmdb"), city)
	require.NoError(t, g.Reload())
	assert.Zero(t, cached(g))
	assert.Equal(t, "", cityOf(t, g, boxford))
	assert.Equal(t, "London", cityOf(t, g, london))

	// A failed reload keeps the set, and its cache, in use.
	replaceFile(t, mmdb("MaxMind-DB-test-broken-search-tree-24.mmdb"), city)
	require.ErrorIs(t, g.Reload(), ErrGeoIP)
	assert.Equal(t, 2, cached(g))
	assert.Equal(t, "", cityOf(t, g, boxford))
}

// An address whose record cannot be decoded is not cached: every
// lookup reports the error.
func TestGeoIPCacheKeepsNoErrors(t *testing.T) {
	path := mmdb("GeoIP2-City-Test-Broken-Double-Format.mmdb")
	addr := firstUndecodable(t, path)
	g := openGeoIP(t, GeoIPConfig{CityPath: path, SkipVerify: true})
	for range 2 {
		_, err := g.Lookup(addr)
		require.ErrorIs(t, err, ErrGeoIP)
	}
	assert.Zero(t, cached(g))
}

// benchAddrs are n public addresses, most of them in the test
// databases' networks.
func benchAddrs(n int) []netip.Addr {
	bases := []string{"81.2.69.0", "2.125.160.0", "89.160.20.0", "2.2.3.0"}
	addrs := make([]netip.Addr, 0, n)
	for i := 0; len(addrs) < n; i++ {
		b := netip.MustParseAddr(bases[i%len(bases)]).As4()
		b[3] = byte(i / len(bases))
		b[2] += byte(i / len(bases) / 256)
		addrs = append(addrs, netip.AddrFrom4(b))
	}
	return addrs
}

// BenchmarkGeoIPCache looks addresses up in all five databases through
// the cache: hit is one address again and again, miss cycles through
// more addresses than the cache holds, so every lookup reads the
// databases and evicts an entry.
func BenchmarkGeoIPCache(b *testing.B) {
	b.Run("hit", func(b *testing.B) {
		g := openGeoIP(b, fullGeoIPConfig())
		benchLookups(b, g, benchAddrs(1))
	})
	b.Run("miss", func(b *testing.B) {
		cfg := fullGeoIPConfig()
		cfg.CacheSize = 64
		g := openGeoIP(b, cfg)
		benchLookups(b, g, benchAddrs(1024))
	})
}

func benchLookups(b *testing.B, g *GeoIP, addrs []netip.Addr) {
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		if _, err := g.Lookup(addrs[i%len(addrs)]); err != nil {
			b.Fatal(err)
		}
		i++
	}
}

// BenchmarkGeoIPCacheMemory fills a cache of DefaultGeoIPCacheSize
// and reports the heap it holds per address (run with -benchtime 1x).
func BenchmarkGeoIPCacheMemory(b *testing.B) {
	for b.Loop() {
		c := newGeoCache(DefaultGeoIPCacheSize)
		n := runtimeid.NetworkSignals{Country: "GB", City: "London",
			ASN: 20712, ASOrg: "Andrews & Arnold Ltd", HasLocation: true}
		var before, after runtime.MemStats
		runtime.GC()
		runtime.ReadMemStats(&before)
		for _, a := range benchAddrs(DefaultGeoIPCacheSize) {
			// Decoded strings are fresh for every address.
			n.City = string([]byte("London"))
			n.ASOrg = string([]byte("Andrews & Arnold Ltd"))
			c.add(a, n)
		}
		runtime.GC()
		runtime.ReadMemStats(&after)
		require.Equal(b, DefaultGeoIPCacheSize, c.len())
		per := float64(after.HeapAlloc-before.HeapAlloc) /
			float64(DefaultGeoIPCacheSize)
		b.ReportMetric(per, "B/addr")
		runtime.KeepAlive(c)
	}
}
