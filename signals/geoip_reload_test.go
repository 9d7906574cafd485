package signals

import (
	"bytes"
	"context"
	"log/slog"
	"net/netip"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/runtimeid/runtimeid"
)

var (
	// london is in every City test database.
	london = netip.MustParseAddr("81.2.69.142")
	// boxford is in GeoIP2-City-Test but not in GeoLite2-City-Test,
	// which tells the two apart.
	boxford = netip.MustParseAddr("2.2.3.0")
)

// replaceFile puts a copy of src at dst the way geoipupdate does:
// written to a temporary file, then renamed over dst.
func replaceFile(t *testing.T, src, dst string) {
	t.Helper()
	b, err := os.ReadFile(src)
	require.NoError(t, err)
	tmp := dst + ".tmp"
	require.NoError(t, os.WriteFile(tmp, b, 0o600))
	require.NoError(t, os.Rename(tmp, dst))
}

// copyToTemp copies a test database into a fresh directory.
func copyToTemp(t *testing.T, name string) string {
	t.Helper()
	dst := filepath.Join(t.TempDir(), name)
	replaceFile(t, mmdb(name), dst)
	return dst
}

func cityOf(t *testing.T, g *GeoIP, a netip.Addr) string {
	t.Helper()
	n, err := g.Lookup(a)
	require.NoError(t, err)
	return n.City
}

// lookupLoop runs lookups of london on several goroutines until stop
// is closed, and counts the ones that failed or answered wrong.
func lookupLoop(g *GeoIP, stop chan struct{}) (wait func() int64) {
	var bad, total atomic.Int64
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			for {
				select {
				case <-stop:
					return
				default:
				}
				n, err := g.Lookup(london)
				total.Add(1)
				if err != nil || n.City != "London" {
					bad.Add(1)
				}
			}
		})
	}
	return func() int64 {
		wg.Wait()
		return bad.Load()
	}
}

func TestGeoIPReloadWhileServing(t *testing.T) {
	city := copyToTemp(t, "GeoIP2-City-Test.mmdb")
	g := openGeoIP(t, GeoIPConfig{CityPath: city})
	require.Equal(t, "Boxford", cityOf(t, g, boxford))

	stop := make(chan struct{})
	wait := lookupLoop(g, stop)

	// A new valid file: the new data is served.
	replaceFile(t, mmdb("GeoLite2-City-Test.mmdb"), city)
	reloaded, err := g.ReloadIfChanged()
	require.NoError(t, err)
	require.True(t, reloaded)
	assert.Equal(t, "", cityOf(t, g, boxford))

	// Unchanged files: nothing to do.
	reloaded, err = g.ReloadIfChanged()
	require.NoError(t, err)
	require.False(t, reloaded)

	// A corrupt file: the reload fails, the old data stays.
	bad := mmdb("MaxMind-DB-test-broken-search-tree-24.mmdb")
	replaceFile(t, bad, city)
	reloaded, err = g.ReloadIfChanged()
	require.ErrorIs(t, err, ErrGeoIP)
	assert.Contains(t, err.Error(), city)
	require.False(t, reloaded)
	assert.Equal(t, "London", cityOf(t, g, london))

	// Many swaps under load.
	replaceFile(t, mmdb("GeoIP2-City-Test.mmdb"), city)
	for range 20 {
		require.NoError(t, g.Reload())
	}
	assert.Equal(t, "Boxford", cityOf(t, g, boxford))

	close(stop)
	assert.Zero(t, wait(), "failed lookups")
}

// Every corrupt database fails a reload with a clear error, and the
// database in use keeps serving.
func TestGeoIPReloadBadData(t *testing.T) {
	files, err := filepath.Glob(mmdb("bad-data/*/*.mmdb"))
	require.NoError(t, err)
	require.Len(t, files, 21)
	city := copyToTemp(t, "GeoIP2-City-Test.mmdb")
	g := openGeoIP(t, GeoIPConfig{CityPath: city})

	for _, f := range files {
		t.Run(filepath.Base(f), func(t *testing.T) {
			replaceFile(t, f, city)
			err := g.Reload()
			require.ErrorIs(t, err, ErrGeoIP)
			assert.Contains(t, err.Error(), "signals: geoip database: ")
			assert.Contains(t, err.Error(), city)
			assert.Equal(t, "Boxford", cityOf(t, g, boxford))
		})
	}
}

func TestGeoIPReloadSingleDatabase(t *testing.T) {
	tests := []struct {
		name    string
		file    string
		cfg     func(path string) GeoIPConfig
		next    string // a valid replacement
		wrong   string // a database of another type
		addr    string
		want    runtimeid.NetworkSignals
		wantErr string
	}{
		{
			name: "country only", file: "GeoIP2-Country-Test.mmdb",
			cfg: func(p string) GeoIPConfig {
				return GeoIPConfig{CountryPath: p}
			},
			next:    "GeoLite2-Country-Test.mmdb",
			wrong:   "GeoIP2-City-Test.mmdb",
			addr:    "81.2.69.142",
			want:    runtimeid.NetworkSignals{Country: "GB"},
			wantErr: `database type "GeoIP2-City"`,
		},
		{
			name: "isp only", file: "GeoIP2-ISP-Test.mmdb",
			cfg: func(p string) GeoIPConfig {
				return GeoIPConfig{ISPPath: p}
			},
			next:  "GeoIP2-ISP-Test.mmdb",
			wrong: "GeoLite2-ASN-Test.mmdb",
			addr:  "1.128.0.1",
			want: runtimeid.NetworkSignals{
				ASN: 1221, ASOrg: "Telstra Pty Ltd",
				ISP: "Telstra Internet",
			},
			wantErr: `database type "GeoLite2-ASN"`,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := copyToTemp(t, tt.file)
			g := openGeoIP(t, tt.cfg(path))
			addr := netip.MustParseAddr(tt.addr)

			replaceFile(t, mmdb(tt.next), path)
			reloaded, err := g.ReloadIfChanged()
			require.NoError(t, err)
			require.True(t, reloaded)
			got, err := g.Lookup(addr)
			require.NoError(t, err)
			assert.Equal(t, tt.want, got)

			replaceFile(t, mmdb(tt.wrong), path)
			_, err = g.ReloadIfChanged()
			require.ErrorIs(t, err, ErrGeoIP)
			assert.Contains(t, err.Error(), tt.wantErr)
			got, err = g.Lookup(addr)
			require.NoError(t, err)
			assert.Equal(t, tt.want, got)
		})
	}
}

func TestGeoIPWatch(t *testing.T) {
	city := copyToTemp(t, "GeoIP2-City-Test.mmdb")
	var logs bytes.Buffer
	g := openGeoIP(t, GeoIPConfig{
		CityPath: city,
		Logger:   slog.New(slog.NewTextHandler(&logs, nil)),
	})

	tick := make(chan time.Time)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error)
	go func() { done <- g.Watch(ctx, WatchOptions{Tick: tick}) }()

	// tick is unbuffered and Watch handles one tick at a time, so
	// when the second send returns the first tick was handled.
	step := func() { tick <- time.Time{}; tick <- time.Time{} }

	step()
	assert.Equal(t, "Boxford", cityOf(t, g, boxford))

	replaceFile(t, mmdb("GeoLite2-City-Test.mmdb"), city)
	step()
	assert.Equal(t, "", cityOf(t, g, boxford))

	require.NoError(t, os.Remove(city))
	step()
	assert.Equal(t, "London", cityOf(t, g, london))

	cancel()
	require.ErrorIs(t, <-done, context.Canceled)
	out := logs.String()
	assert.Contains(t, out, `level=INFO msg="signals: geoip: reloaded" path=`+city)
	assert.Contains(t, out, `level=ERROR msg="signals: geoip: reload failed, `+
		`keeping the old databases" path=`+city)
	assert.Contains(t, out, "no such file or directory")
}

func TestGeoIPWatchStopsAfterClose(t *testing.T) {
	g, err := OpenGeoIP(GeoIPConfig{CityPath: mmdb("GeoIP2-City-Test.mmdb")})
	require.NoError(t, err)
	require.NoError(t, g.Close())

	tick := make(chan time.Time, 1)
	tick <- time.Time{}
	err = g.Watch(context.Background(), WatchOptions{Tick: tick})
	require.ErrorIs(t, err, ErrGeoIP)
	assert.EqualError(t, err, "signals: geoip database: closed")
}

func TestGeoIPAfterClose(t *testing.T) {
	g, err := OpenGeoIP(fullGeoIPConfig())
	require.NoError(t, err)
	require.NoError(t, g.Close())

	_, err = g.Lookup(london)
	require.ErrorIs(t, err, ErrGeoIP)
	require.ErrorIs(t, g.Reload(), ErrGeoIP)
	_, err = g.ReloadIfChanged()
	require.ErrorIs(t, err, ErrGeoIP)

	// A private address needs no database and still works.
	n, err := g.Lookup(netip.MustParseAddr("10.0.0.1"))
	require.NoError(t, err)
	assert.Zero(t, n)
}

// Close while lookups run: each lookup either completes on the open
// databases or reports that the GeoIP is closed; none reads an
// unmapped file.
func TestGeoIPCloseWhileServing(t *testing.T) {
	g, err := OpenGeoIP(fullGeoIPConfig())
	require.NoError(t, err)

	var wg sync.WaitGroup
	var wrong atomic.Int64
	for range 8 {
		wg.Go(func() {
			for range 200 {
				n, err := g.Lookup(london)
				switch {
				case err == nil && n.City == "London":
				case err != nil && err.Error() == errGeoIPClosed.Error():
				default:
					wrong.Add(1)
				}
			}
		})
	}
	require.NoError(t, g.Close())
	wg.Wait()
	assert.Zero(t, wrong.Load())
}
