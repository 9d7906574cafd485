package signals

import (
	"net/netip"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// mmdbSlots maps the fuzzer's slot byte to the config field a database
// is opened as, so every record decoder is reached.
var mmdbSlots = []func(path string) GeoIPConfig{
	func(p string) GeoIPConfig { return GeoIPConfig{CityPath: p} },
	func(p string) GeoIPConfig { return GeoIPConfig{CountryPath: p} },
	func(p string) GeoIPConfig { return GeoIPConfig{ASNPath: p} },
	func(p string) GeoIPConfig { return GeoIPConfig{AnonymousIPPath: p} },
	func(p string) GeoIPConfig { return GeoIPConfig{ISPPath: p} },
}

// mmdbSeeds are the test databases and the slot each is opened as.
var mmdbSeeds = map[string]uint8{
	"GeoIP2-City-Test.mmdb":                      0,
	"GeoLite2-Country-Test.mmdb":                 1,
	"GeoLite2-ASN-Test.mmdb":                     2,
	"GeoIP2-Anonymous-IP-Test.mmdb":              3,
	"GeoIP2-City-Test-Broken-Double-Format.mmdb": 0,
	"GeoIP2-City-Test-Invalid-Node-Count.mmdb":   0,
	"MaxMind-DB-test-broken-pointers-24.mmdb":    0,
	"MaxMind-DB-test-broken-search-tree-24.mmdb": 0,
}

// fuzzAddrs are looked up in every database that opens: addresses the
// test databases hold, and a few they do not.
var fuzzAddrs = []netip.Addr{
	netip.MustParseAddr("81.2.69.142"),
	netip.MustParseAddr("2.125.160.216"),
	netip.MustParseAddr("89.160.20.128"),
	netip.MustParseAddr("1.128.0.1"),
	netip.MustParseAddr("2001:218::1"),
	netip.MustParseAddr("2a02:ff80::1"),
	netip.MustParseAddr("8.8.8.8"),
}

// FuzzOpenGeoIP opens arbitrary bytes as each kind of MaxMind database
// and looks addresses up in what opens: a corrupt or hostile database
// must give an error at open or at lookup, never a panic or a hang.
func FuzzOpenGeoIP(f *testing.F) {
	for name, slot := range mmdbSeeds {
		data, err := os.ReadFile(mmdb(name))
		if err != nil {
			f.Fatal(err)
		}
		f.Add(data, slot, false)
		f.Add(data, slot, true)
	}
	bad, _ := filepath.Glob(filepath.Join(mmdbDir, "bad-data", "*", "*.mmdb"))
	for _, name := range bad {
		data, err := os.ReadFile(name)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(data, uint8(0), true)
	}
	f.Fuzz(func(t *testing.T, data []byte, slot uint8, skipVerify bool) {
		// A hang is a failure too: crash the worker so the fuzzer
		// keeps the input.
		hang := time.AfterFunc(10*time.Second, func() { panic("hang") })
		defer hang.Stop()
		path := filepath.Join(t.TempDir(), "db.mmdb")
		if err := os.WriteFile(path, data, 0o600); err != nil {
			t.Fatal(err)
		}
		cfg := mmdbSlots[int(slot)%len(mmdbSlots)](path)
		cfg.SkipVerify = skipVerify
		g, err := OpenGeoIP(cfg)
		if err != nil {
			return
		}
		defer g.Close()
		for _, a := range fuzzAddrs {
			_, _ = g.Lookup(a)
		}
	})
}
