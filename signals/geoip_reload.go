package signals

import (
	"context"
	"errors"
	"os"
	"time"
)

// DefaultWatchInterval is how often [GeoIP.Watch] looks at the files
// when [WatchOptions.Interval] is zero.
const DefaultWatchInterval = time.Minute

// Reload opens every file of the configuration again, checks them as
// [OpenGeoIP] does, and swaps them in for the databases in use. Lookups
// that already started finish on the old databases, which are closed
// after the last of them; no lookup waits and none fails.
//
// A failed reload changes nothing: the old databases keep serving and
// the error wraps [ErrGeoIP] and names the file. Reload after
// [GeoIP.Close] returns such an error too.
//
// Replace a file by renaming a complete new file over it (as MaxMind's
// geoipupdate does), never by rewriting it in place: the databases are
// memory-mapped, and truncating a mapped file under a running lookup can
// crash the process with SIGBUS. Reload and Watch cannot guard against
// that.
func (g *GeoIP) Reload() error {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.closed {
		return errGeoIPClosed
	}
	s, err := openGeoSet(g.cfg)
	if err != nil {
		return err
	}
	return g.cur.Swap(s).release()
}

// release drops a lookup's reference; the last one closes the set.
func (g *GeoIP) release(s *geoSet) {
	if err := s.release(); err != nil {
		g.log.Warn("signals: geoip: close old databases",
			"error", err)
	}
}

// WatchOptions configures [GeoIP.Watch]. The zero value looks at the
// files every [DefaultWatchInterval].
type WatchOptions struct {
	// Interval is how often the files are looked at. Zero means
	// [DefaultWatchInterval].
	Interval time.Duration

	// Tick, when set, replaces the interval's ticker: the files are
	// looked at each time it delivers. Tests use it to decide when.
	Tick <-chan time.Time
}

// Watch looks at the configured files at each tick and calls
// [GeoIP.Reload] when any of them changed: replaced by another file, or
// its size or modification time differs from when it was opened. It
// logs each reload and each failure through [GeoIPConfig.Logger]; after
// a failure the old databases keep serving and the next change is
// tried again. Watch returns ctx.Err() when ctx is done, or an error
// wrapping [ErrGeoIP] once the GeoIP is closed.
//
// It polls instead of using file notifications, so a change is seen
// within one interval. Run it in its own goroutine.
func (g *GeoIP) Watch(ctx context.Context, opts WatchOptions) error {
	tick := opts.Tick
	if tick == nil {
		iv := opts.Interval
		if iv <= 0 {
			iv = DefaultWatchInterval
		}
		t := time.NewTicker(iv)
		defer t.Stop()
		tick = t.C
	}
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-tick:
		}
		if _, err := g.ReloadIfChanged(); errors.Is(err, errGeoIPClosed) {
			return err
		}
	}
}

// ReloadIfChanged reloads the databases when a file changed since it
// was opened (see [GeoIP.Watch]), and reports whether it did. The
// outcome is logged through [GeoIPConfig.Logger]. A file that cannot be
// looked at counts as changed, so the reload reports why.
func (g *GeoIP) ReloadIfChanged() (bool, error) {
	path, changed := g.changedFile()
	if !changed {
		if g.cur.Load() == nil {
			return false, errGeoIPClosed
		}
		return false, nil
	}
	if err := g.Reload(); err != nil {
		g.log.Error("signals: geoip: reload failed, "+
			"keeping the old databases", "path", path, "error", err)
		return false, err
	}
	g.log.Info("signals: geoip: reloaded", "path", path)
	return true, nil
}

// changedFile returns the first database file that differs from the
// one in use.
func (g *GeoIP) changedFile() (string, bool) {
	s := g.acquire()
	if s == nil {
		return "", false
	}
	defer g.release(s)
	for _, db := range s.all {
		now, err := os.Stat(db.path)
		if err != nil || fileChanged(db.stat, now) {
			return db.path, true
		}
	}
	return "", false
}

// fileChanged reports whether now is another file than was, or the
// same file rewritten. os.SameFile compares device and inode, which
// catches a rename over the old file even within the same second.
func fileChanged(was, now os.FileInfo) bool {
	return !os.SameFile(was, now) ||
		was.Size() != now.Size() ||
		!was.ModTime().Equal(now.ModTime())
}
