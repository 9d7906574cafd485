package signals

import (
	"errors"
	"fmt"
	"net/netip"
	"os"
	"sync"
	"sync/atomic"

	"github.com/hashicorp/golang-lru/v2/simplelru"
	maxminddb "github.com/oschwald/maxminddb-golang/v2"

	"github.com/runtimeid/runtimeid"
)

var errGeoIPClosed = fmt.Errorf("%w: closed", ErrGeoIP)

// geoSet is one consistent set of open databases: those one OpenGeoIP
// or Reload opened together.
//
// A set is closed when its reference count drops to zero. The GeoIP
// that serves it holds one reference, and every lookup holds one while
// it reads, so a reader is never unmapped under a lookup:
// maxminddb.Reader.Close unmaps the file, and a read after that would
// crash the process.
type geoSet struct {
	location *geoDB // City, or Country when there is no City
	asn      *geoDB // ASN, or ISP when there is no ASN
	isp      *geoDB
	anon     *geoDB
	all      []*geoDB

	// cache holds this set's answers, so that a reload, which makes
	// a new set, starts with an empty one. Nil when turned off.
	cache *geoCache

	refs atomic.Int64
}

// geoCache remembers the network signals of recent addresses.
type geoCache struct {
	// mu guards entries: the LRU list is reordered by every read.
	mu      sync.Mutex
	entries *simplelru.LRU[netip.Addr, runtimeid.NetworkSignals]
}

// newGeoCache returns a cache of size entries, or nil for a size below
// one.
func newGeoCache(size int) *geoCache {
	if size < 1 {
		return nil
	}
	l, err := simplelru.NewLRU[netip.Addr, runtimeid.NetworkSignals](size, nil)
	if err != nil {
		return nil // only a size below one fails
	}
	return &geoCache{entries: l}
}

// get returns the remembered signals of addr. A nil cache has none.
func (c *geoCache) get(addr netip.Addr) (runtimeid.NetworkSignals, bool) {
	if c == nil {
		return runtimeid.NetworkSignals{}, false
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.entries.Get(addr)
}

// add remembers the signals of addr, evicting the least recently used
// address when full. It is a no-op on a nil cache.
func (c *geoCache) add(addr netip.Addr, n runtimeid.NetworkSignals) {
	if c == nil {
		return
	}
	c.mu.Lock()
	c.entries.Add(addr, n)
	c.mu.Unlock()
}

// len is how many addresses are remembered.
func (c *geoCache) len() int {
	if c == nil {
		return 0
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.entries.Len()
}

// geoDB is one open database, the path it came from (for errors) and
// what the file looked like before it was opened (for Watch).
type geoDB struct {
	path   string
	reader *maxminddb.Reader
	stat   os.FileInfo
}

// openGeoSet opens the databases cfg names. On error it closes what it
// opened and returns an error wrapping ErrGeoIP.
func openGeoSet(cfg GeoIPConfig) (*geoSet, error) {
	s := &geoSet{}
	var err error
	open := func(path string, types []string) *geoDB {
		if path == "" || err != nil {
			return nil
		}
		var db *geoDB
		db, err = openGeoDB(path, types, !cfg.SkipVerify)
		if db != nil {
			s.all = append(s.all, db)
		}
		return db
	}

	s.location = open(cfg.CityPath, cityTypes)
	if cfg.CityPath == "" {
		s.location = open(cfg.CountryPath, countryTypes)
	}
	s.asn = open(cfg.ASNPath, asnTypes)
	s.isp = open(cfg.ISPPath, ispTypes)
	if s.asn == nil {
		s.asn = s.isp
	}
	s.anon = open(cfg.AnonymousIPPath, anonTypes)

	if err == nil && len(s.all) == 0 {
		err = fmt.Errorf("%w: no database configured", ErrGeoIP)
	}
	if err != nil {
		_ = s.closeAll()
		return nil, err
	}
	size := cfg.CacheSize
	if size == 0 {
		size = DefaultGeoIPCacheSize
	}
	s.cache = newGeoCache(size)
	s.refs.Store(1)
	return s, nil
}

// acquire returns the current set with a reference taken, or nil after
// Close. The caller must release it.
func (g *GeoIP) acquire() *geoSet {
	for {
		s := g.cur.Load()
		if s == nil || s.tryRetain() {
			return s
		}
		// s lost its last reference between the load and the
		// retain: a reload has already stored its successor.
	}
}

// tryRetain takes a reference unless the count is already zero, which
// means the set is closed or closing and must not be used.
func (s *geoSet) tryRetain() bool {
	for {
		n := s.refs.Load()
		if n <= 0 {
			return false
		}
		if s.refs.CompareAndSwap(n, n+1) {
			return true
		}
	}
}

// release drops a reference and closes the set with the last one. It
// is a no-op on nil.
func (s *geoSet) release() error {
	if s == nil || s.refs.Add(-1) != 0 {
		return nil
	}
	return s.closeAll()
}

func (s *geoSet) closeAll() error {
	var errs []error
	for _, db := range s.all {
		if err := db.reader.Close(); err != nil {
			errs = append(errs, fmt.Errorf("%w: close %s: %w",
				ErrGeoIP, db.path, err))
		}
	}
	return errors.Join(errs...)
}
