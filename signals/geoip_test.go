package signals

import (
	"context"
	"net/netip"
	"os"
	"path/filepath"
	"testing"

	maxminddb "github.com/oschwald/maxminddb-golang/v2"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/runtimeid/runtimeid"
)

const mmdbDir = "testdata/maxmind"

func mmdb(name string) string { return filepath.Join(mmdbDir, name) }

func fullGeoIPConfig() GeoIPConfig {
	return GeoIPConfig{
		CityPath:        mmdb("GeoIP2-City-Test.mmdb"),
		CountryPath:     mmdb("GeoIP2-Country-Test.mmdb"),
		ASNPath:         mmdb("GeoLite2-ASN-Test.mmdb"),
		AnonymousIPPath: mmdb("GeoIP2-Anonymous-IP-Test.mmdb"),
		ISPPath:         mmdb("GeoIP2-ISP-Test.mmdb"),
	}
}

func openGeoIP(t testing.TB, cfg GeoIPConfig) *GeoIP {
	t.Helper()
	g, err := OpenGeoIP(cfg)
	require.NoError(t, err)
	t.Cleanup(func() { require.NoError(t, g.Close()) })
	return g
}

// allFlags is what GeoIP2-Anonymous-IP-Test says of 81.2.69.0/24.
func allFlags(n runtimeid.NetworkSignals) runtimeid.NetworkSignals {
	n.Anonymous, n.VPN, n.Tor = true, true, true
	n.Hosting, n.PublicProxy, n.ResidentialProxy = true, true, true
	return n
}

func TestGeoIPLookup(t *testing.T) {
	london := runtimeid.NetworkSignals{
		Country: "GB", City: "London",
		Latitude: 51.5142, Longitude: -0.0931, AccuracyKM: 10,
		HasLocation: true,
	}
	tests := []struct {
		name string
		cfg  GeoIPConfig
		addr string
		want runtimeid.NetworkSignals
	}{
		{
			name: "london all databases", cfg: fullGeoIPConfig(),
			addr: "81.2.69.142", want: allFlags(london),
		},
		{
			name: "london mapped", cfg: fullGeoIPConfig(),
			addr: "::ffff:81.2.69.142", want: allFlags(london),
		},
		{
			name: "linkoping", cfg: fullGeoIPConfig(),
			addr: "89.160.20.130",
			want: runtimeid.NetworkSignals{
				Country: "SE", City: "Linköping",
				Latitude: 58.4167, Longitude: 15.6167, AccuracyKM: 76,
				HasLocation: true, ASN: 29518, ASOrg: "Bredband2 AB",
			},
		},
		{
			name: "japan ipv6 without city", cfg: fullGeoIPConfig(),
			addr: "2001:218::1",
			want: runtimeid.NetworkSignals{
				Country: "JP", Latitude: 35.68536, Longitude: 139.75309,
				AccuracyKM: 100, HasLocation: true,
			},
		},
		{
			name: "telstra asn and isp", cfg: fullGeoIPConfig(),
			addr: "1.128.0.1",
			want: runtimeid.NetworkSignals{
				ASN: 1221, ASOrg: "Telstra Pty Ltd", ISP: "Telstra Internet",
			},
		},
		{
			name: "asn from isp only",
			cfg:  GeoIPConfig{ISPPath: mmdb("GeoIP2-ISP-Test.mmdb")},
			addr: "1.128.0.1",
			want: runtimeid.NetworkSignals{
				ASN: 1221, ASOrg: "Telstra Pty Ltd", ISP: "Telstra Internet",
			},
		},
		{
			name: "tor exit and vpn", cfg: fullGeoIPConfig(),
			addr: "1.124.213.1",
			want: runtimeid.NetworkSignals{Anonymous: true, VPN: true, Tor: true},
		},
		{
			name: "public proxy ipv6", cfg: fullGeoIPConfig(),
			addr: "2001:480:3a::1",
			want: runtimeid.NetworkSignals{Anonymous: true, PublicProxy: true},
		},
		{
			name: "country only",
			cfg:  GeoIPConfig{CountryPath: mmdb("GeoIP2-Country-Test.mmdb")},
			addr: "81.2.69.142",
			want: runtimeid.NetworkSignals{Country: "GB"},
		},
		{
			name: "city wins over country",
			cfg: GeoIPConfig{
				CityPath:    mmdb("GeoIP2-City-Test.mmdb"),
				CountryPath: "testdata/does-not-matter.mmdb",
			},
			addr: "81.2.69.142", want: london,
		},
		{
			name: "unknown address", cfg: fullGeoIPConfig(),
			addr: "192.0.2.1",
		},
		{name: "private", cfg: fullGeoIPConfig(), addr: "10.1.2.3"},
		{name: "loopback", cfg: fullGeoIPConfig(), addr: "127.0.0.1"},
		{name: "ula", cfg: fullGeoIPConfig(), addr: "fd00::1"},
		{name: "link local", cfg: fullGeoIPConfig(), addr: "fe80::1%eth0"},
		{name: "invalid", cfg: fullGeoIPConfig(), addr: ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			g := openGeoIP(t, tt.cfg)
			var addr netip.Addr
			if tt.addr != "" {
				addr = netip.MustParseAddr(tt.addr)
			}

			got, err := g.Lookup(addr)
			require.NoError(t, err)
			assert.Equal(t, tt.want, got)

			ev := &runtimeid.Evaluation{}
			ev.Signals.ClientIP = addr
			require.NoError(t, g.Collect(context.Background(), ev))
			assert.Equal(t, tt.want, ev.Signals.Network)
		})
	}
}

func TestOpenGeoIPErrors(t *testing.T) {
	tests := []struct {
		name string
		cfg  GeoIPConfig
		want string
	}{
		{
			name: "empty config", cfg: GeoIPConfig{},
			want: "signals: geoip database: no database configured",
		},
		{
			name: "missing file",
			cfg:  GeoIPConfig{CityPath: "testdata/nope.mmdb"},
			want: "signals: geoip database: open testdata/nope.mmdb: " +
				"stat testdata/nope.mmdb: no such file or directory",
		},
		{
			name: "not a database",
			cfg:  GeoIPConfig{ASNPath: "geoip.go"},
			want: "signals: geoip database: open geoip.go: " +
				"error opening database: invalid MaxMind DB file",
		},
		{
			name: "asn file as city",
			cfg:  GeoIPConfig{CityPath: mmdb("GeoLite2-ASN-Test.mmdb")},
			want: "signals: geoip database: " + mmdb("GeoLite2-ASN-Test.mmdb") +
				`: database type "GeoLite2-ASN", want one of GeoIP2-City, ` +
				"GeoLite2-City, GeoIP2-Enterprise, " +
				"GeoIP2-Precision-Enterprise, GeoIP2-Precision-City",
		},
		{
			name: "city file as anonymous",
			cfg:  GeoIPConfig{AnonymousIPPath: mmdb("GeoIP2-City-Test.mmdb")},
			want: "signals: geoip database: " + mmdb("GeoIP2-City-Test.mmdb") +
				`: database type "GeoIP2-City", want one of ` +
				"GeoIP2-Anonymous-IP, GeoIP-Anonymous-Plus",
		},
		{
			name: "country file as isp",
			cfg:  GeoIPConfig{ISPPath: mmdb("GeoIP2-Country-Test.mmdb")},
			want: `database type "GeoIP2-Country"`,
		},
		{
			name: "good then bad closes the good",
			cfg: GeoIPConfig{
				CityPath: mmdb("GeoIP2-City-Test.mmdb"),
				ASNPath:  mmdb("GeoIP2-City-Test.mmdb"),
			},
			want: `database type "GeoIP2-City"`,
		},
		{
			name: "city with broken double",
			cfg: GeoIPConfig{
				CityPath: mmdb("GeoIP2-City-Test-Broken-Double-Format.mmdb"),
			},
			want: mmdb("GeoIP2-City-Test-Broken-Double-Format.mmdb") +
				": corrupt: received decoding error",
		},
		{
			name: "city with invalid node count",
			cfg: GeoIPConfig{
				CityPath: mmdb("GeoIP2-City-Test-Invalid-Node-Count.mmdb"),
			},
			want: "open " + mmdb("GeoIP2-City-Test-Invalid-Node-Count.mmdb") +
				": the MaxMind DB contains invalid metadata",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			g, err := OpenGeoIP(tt.cfg)
			require.ErrorIs(t, err, ErrGeoIP)
			assert.Contains(t, err.Error(), tt.want)
			assert.Nil(t, g)
		})
	}
}

// Every corrupt database in MaxMind's bad-data set fails at open: most
// when the reader parses the metadata, the rest on the database type
// ("Test") and, with the type check out of the way, on Verify.
func TestOpenGeoIPBadData(t *testing.T) {
	files, err := filepath.Glob(mmdb("bad-data/*/*.mmdb"))
	require.NoError(t, err)
	extra := []string{
		"MaxMind-DB-test-broken-pointers-24.mmdb",
		"MaxMind-DB-test-broken-search-tree-24.mmdb",
		"GeoIP2-City-Test-Broken-Double-Format.mmdb",
		"GeoIP2-City-Test-Invalid-Node-Count.mmdb",
	}
	for _, f := range extra {
		files = append(files, mmdb(f))
	}
	require.Len(t, files, 25)

	for _, f := range files {
		t.Run(filepath.Base(f), func(t *testing.T) {
			for _, cfg := range []GeoIPConfig{
				{CityPath: f}, {CountryPath: f}, {ASNPath: f},
				{AnonymousIPPath: f}, {ISPPath: f},
			} {
				_, err := OpenGeoIP(cfg)
				require.ErrorIs(t, err, ErrGeoIP)
				assert.Contains(t, err.Error(), f)
			}

			// Any type accepted: Verify must still refuse the file.
			_, err := openGeoDB(f, []string{""}, true)
			require.ErrorIs(t, err, ErrGeoIP)
			assert.Contains(t, err.Error(), f)
		})
	}
}

// With SkipVerify, a corrupt record is found at lookup: Lookup and
// Collect return an error naming the file, and never panic.
func TestGeoIPCorruptRecordAtLookup(t *testing.T) {
	path := mmdb("GeoIP2-City-Test-Broken-Double-Format.mmdb")
	g := openGeoIP(t, GeoIPConfig{CityPath: path, SkipVerify: true})

	bad := firstUndecodable(t, path)
	_, err := g.Lookup(bad)
	require.ErrorIs(t, err, ErrGeoIP)
	assert.Contains(t, err.Error(), path+": lookup "+bad.String())

	ev := &runtimeid.Evaluation{}
	ev.Signals.ClientIP = bad
	require.ErrorIs(t, g.Collect(context.Background(), ev), ErrGeoIP)
}

// firstUndecodable finds a public address whose record fails to decode.
func firstUndecodable(t *testing.T, path string) netip.Addr {
	r, err := maxminddb.Open(path)
	require.NoError(t, err)
	defer r.Close()
	for res := range r.Networks() {
		var v locationRecord
		a := res.Prefix().Addr().Unmap()
		if res.Decode(&v) != nil && isPublic(a) {
			return a
		}
	}
	t.Fatal("no undecodable record")
	return netip.Addr{}
}

func TestGeoIPCloseTwice(t *testing.T) {
	g, err := OpenGeoIP(fullGeoIPConfig())
	require.NoError(t, err)
	require.NoError(t, g.Close())
	require.NoError(t, g.Close())
}

// The test database layout documented in testdata/maxmind/README.md
// must match the files.
func TestGeoIPTestdataLayout(t *testing.T) {
	for _, name := range []string{
		"GeoIP2-City-Test.mmdb", "GeoIP2-Country-Test.mmdb",
		"GeoLite2-ASN-Test.mmdb", "GeoIP2-Anonymous-IP-Test.mmdb",
		"GeoIP2-ISP-Test.mmdb", "LICENSE-APACHE", "LICENSE-MIT",
		"SOURCE.txt", "README.md",
	} {
		_, err := os.Stat(mmdb(name))
		assert.NoError(t, err, name)
	}
}

func BenchmarkGeoIPLookup(b *testing.B) {
	cases := []struct {
		name string
		cfg  GeoIPConfig
	}{
		{name: "city", cfg: GeoIPConfig{CityPath: mmdb("GeoIP2-City-Test.mmdb")}},
		{name: "all", cfg: fullGeoIPConfig()},
	}
	// The databases are read every time; BenchmarkGeoIPCache has the
	// cache.
	for i := range cases {
		cases[i].cfg.CacheSize = -1
	}
	addr := netip.MustParseAddr("81.2.69.142")
	for _, bc := range cases {
		b.Run(bc.name, func(b *testing.B) {
			g := openGeoIP(b, bc.cfg)
			b.ReportAllocs()
			for b.Loop() {
				if _, err := g.Lookup(addr); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
