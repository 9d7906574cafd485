package signals

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"os"
	"strings"
	"sync"
	"sync/atomic"

	maxminddb "github.com/oschwald/maxminddb-golang/v2"

	"github.com/runtimeid/runtimeid"
)

// ErrGeoIP means a MaxMind database could not be opened or read: it is
// missing, corrupt, or of the wrong type for the field it was given in.
// Errors from [OpenGeoIP], [GeoIP.Lookup] and [GeoIP.Collect] wrap it and
// name the file.
var ErrGeoIP = errors.New("signals: geoip database")

// GeoIPConfig names the MaxMind databases (.mmdb files) to read. Every
// path is optional, but at least one must be set.
type GeoIPConfig struct {
	// CityPath is a GeoIP2 or GeoLite2 City database (or Enterprise):
	// country, city and location.
	CityPath string

	// CountryPath is a GeoIP2 or GeoLite2 Country database, read only when
	// CityPath is empty, since a City database holds the country too.
	CountryPath string

	// ASNPath is a GeoLite2 ASN database: autonomous system number and
	// organisation.
	ASNPath string

	// AnonymousIPPath is a GeoIP2 Anonymous IP database: VPN, Tor,
	// hosting provider and proxy flags.
	AnonymousIPPath string

	// ISPPath is a GeoIP2 ISP database: the ISP's name, and the ASN when
	// ASNPath is empty.
	ISPPath string

	// SkipVerify skips the integrity check of every database at open.
	// The check walks the whole file (a few milliseconds for the test
	// databases, longer for a full City database); without it, a
	// corrupt record is only found when an address falls in it, and that
	// evaluation fails.
	SkipVerify bool

	// Logger receives what [GeoIP.Watch] does: each reload, and each
	// failed one. Nil discards it.
	Logger *slog.Logger

	// CacheSize bounds the cache of answers by address: an address
	// seen again is answered without reading the databases. Each set
	// of databases has its own cache, so a reload never serves an
	// answer of the old files. Zero means [DefaultGeoIPCacheSize]; a
	// negative value turns the cache off.
	CacheSize int
}

// DefaultGeoIPCacheSize is how many addresses a [GeoIP] remembers when
// [GeoIPConfig.CacheSize] is zero: at about 300 bytes an address, some
// 20 MiB when full.
const DefaultGeoIPCacheSize = 65_536

// GeoIP looks the client's address up in MaxMind databases and stores
// what they say in [runtimeid.Signals.Network].
//
// What it trusts: [runtimeid.Signals.ClientIP], so it must run after
// [ClientIP], and the databases, which are only as current as the files.
// An invalid, private, loopback, link-local or multicast address is not
// looked up and leaves the network signals empty: a policy must not read
// an empty Country as "allowed country". An address no database knows
// also leaves them empty.
//
// How it fails: a record that cannot be decoded makes Collect return an
// error, which fails the evaluation closed.
//
// The files can be replaced while serving: [GeoIP.Reload] opens and
// checks the new files and swaps them in atomically, and [GeoIP.Watch]
// does so when a file changes on disk. A lookup always reads one
// consistent set of databases, old or new; the old set is closed when
// its last lookup is done. Answers are cached by address
// ([GeoIPConfig.CacheSize]) until the next reload.
//
// GeoIP is safe for concurrent use, [GeoIP.Close] and [GeoIP.Reload]
// included.
type GeoIP struct {
	cfg GeoIPConfig
	log *slog.Logger

	// cur is the set lookups use. It holds one reference of its
	// own, dropped when a reload replaces it or Close runs.
	cur atomic.Pointer[geoSet]

	// mu serialises Reload and Close, and guards closed.
	mu     sync.Mutex
	closed bool
}

var _ runtimeid.SignalCollector = (*GeoIP)(nil)

// The database types each field accepts, matched against the prefix of
// the file's metadata database_type.
var (
	cityTypes = []string{
		"GeoIP2-City", "GeoLite2-City", "GeoIP2-Enterprise",
		"GeoIP2-Precision-Enterprise", "GeoIP2-Precision-City",
	}
	countryTypes = []string{"GeoIP2-Country", "GeoLite2-Country"}
	asnTypes     = []string{"GeoLite2-ASN", "GeoIP2-ASN"}
	ispTypes     = []string{"GeoIP2-ISP", "GeoIP2-Precision-ISP"}
	anonTypes    = []string{"GeoIP2-Anonymous-IP", "GeoIP-Anonymous-Plus"}
)

// OpenGeoIP opens the databases cfg names. It checks that each file is
// a MaxMind database of the type its field expects and, unless
// cfg.SkipVerify, that it is intact. On error nothing stays open; the
// error wraps [ErrGeoIP] and names the path.
func OpenGeoIP(cfg GeoIPConfig) (*GeoIP, error) {
	s, err := openGeoSet(cfg)
	if err != nil {
		return nil, err
	}
	g := &GeoIP{cfg: cfg, log: cfg.Logger}
	if g.log == nil {
		g.log = slog.New(slog.DiscardHandler)
	}
	g.cur.Store(s)
	return g, nil
}

func openGeoDB(path string, types []string, verify bool) (*geoDB, error) {
	// The file is looked at before it is opened, so that a
	// replacement between the two shows as a change to Watch.
	stat, err := os.Stat(path)
	if err != nil {
		return nil, fmt.Errorf("%w: open %s: %w", ErrGeoIP, path, err)
	}
	r, err := maxminddb.Open(path)
	if err != nil {
		return nil, fmt.Errorf("%w: open %s: %w", ErrGeoIP, path, err)
	}
	db := &geoDB{path: path, reader: r, stat: stat}

	dbType := r.Metadata.DatabaseType
	if !hasAnyPrefix(dbType, types) {
		_ = r.Close()
		return nil, fmt.Errorf("%w: %s: database type %q, want one of %s",
			ErrGeoIP, path, dbType, strings.Join(types, ", "))
	}
	if verify {
		if err := r.Verify(); err != nil {
			_ = r.Close()
			return nil, fmt.Errorf("%w: %s: corrupt: %w", ErrGeoIP, path, err)
		}
	}
	return db, nil
}

func hasAnyPrefix(s string, prefixes []string) bool {
	for _, p := range prefixes {
		if strings.HasPrefix(s, p) {
			return true
		}
	}
	return false
}

// Close stops lookups and releases every database. A lookup in flight
// finishes first on the databases it started with; one that starts
// after Close returns an error wrapping [ErrGeoIP]. Closing twice is a
// no-op.
func (g *GeoIP) Close() error {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.closed {
		return nil
	}
	g.closed = true
	return g.cur.Swap(nil).release()
}

// Collect implements [runtimeid.SignalCollector]. It fills
// ev.Signals.Network from ev.Signals.ClientIP.
func (g *GeoIP) Collect(_ context.Context, ev *runtimeid.Evaluation) error {
	n, err := g.Lookup(ev.Signals.ClientIP)
	ev.Signals.Network = n
	return err
}

// Lookup returns what the databases say about addr. An address that is
// not publicly routable (see [GeoIP]) gives empty signals and no error.
// On a read error it returns what the other databases said, with the
// error.
func (g *GeoIP) Lookup(addr netip.Addr) (runtimeid.NetworkSignals, error) {
	var n runtimeid.NetworkSignals
	addr = addr.Unmap().WithZone("")
	if !isPublic(addr) {
		return n, nil
	}
	s := g.acquire()
	if s == nil {
		return n, errGeoIPClosed
	}
	defer g.release(s)
	if n, ok := s.cache.get(addr); ok {
		return n, nil
	}
	err := errors.Join(
		s.location.lookupLocation(addr, &n),
		s.asn.lookupASN(addr, &n),
		s.isp.lookupISP(addr, &n),
		s.anon.lookupAnonymous(addr, &n),
	)
	// A failed read is not remembered: it is tried, and reported,
	// again the next time.
	if err == nil {
		s.cache.add(addr, n)
	}
	return n, err
}

// isPublic reports whether addr can be on the public internet: valid,
// global unicast, and not in a private range (RFC 1918, RFC 4193).
func isPublic(a netip.Addr) bool {
	return a.IsValid() && a.IsGlobalUnicast() && !a.IsPrivate()
}

// decode looks addr up and decodes its record into v. It reports false
// when the database has no record for addr.
func (db *geoDB) decode(addr netip.Addr, v any) (bool, error) {
	res := db.reader.Lookup(addr)
	if err := res.Err(); err != nil {
		return false, db.err(addr, err)
	}
	if !res.Found() {
		return false, nil
	}
	if err := res.Decode(v); err != nil {
		return false, db.err(addr, err)
	}
	return true, nil
}

func (db *geoDB) err(addr netip.Addr, err error) error {
	return fmt.Errorf("%w: %s: lookup %s: %w", ErrGeoIP, db.path, addr, err)
}
