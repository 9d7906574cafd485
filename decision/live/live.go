// Package live shows what the engine decides, as it decides it: an
// [http.Handler] with the recent decisions, the counts per rule and
// outcome over time and the distribution of risk scores, like
// net/http/pprof shows a program's profile.
//
// A [View] learns of decisions through the audit log: wire its
// [View.Handler] into the engine's logger, next to your own handler:
//
//	view := live.New(live.Options{})
//	cfg.Logger = slog.New(slog.NewMultiHandler(view.Handler(), yours))
//	mux.Handle("/debug/runtimeid/", view)
//
// The page is plain server-rendered HTML with inline SVG charts: no
// external asset, no framework, a few lines of inline script that reload
// it when new decisions arrive. It shows subjects, client addresses and
// countries, never a token or a claim, since audit events hold none.
// Subjects and addresses are still personal data: mount the view on an
// operator-only listener or behind authentication, as you would pprof.
package live

import (
	"context"
	"log/slog"
	"slices"
	"sync"
	"time"

	"github.com/runtimeid/runtimeid"
)

// Defaults of [Options].
const (
	DefaultRecent  = 100
	DefaultBucket  = time.Minute
	DefaultBuckets = 60

	// MaxRecent bounds [Options.Recent].
	MaxRecent = 10_000

	// MaxKeys bounds the distinct rule and outcome pairs counted; later
	// ones are counted under the rule "other". Rules come from the
	// policy, so only a policy of hundreds of rules reaches it.
	MaxKeys = 1000

	// ScoreBins is the number of bins of the score histogram, each a
	// tenth of [0,1].
	ScoreBins = 10
)

// Options configure a [View]. The zero value means the defaults.
type Options struct {
	// Recent is how many decisions are kept for the table, newest
	// first. Zero means [DefaultRecent]; at most [MaxRecent].
	Recent int

	// Bucket is the width of one step of the time series, and Buckets
	// how many steps are kept. Zero means [DefaultBucket] and
	// [DefaultBuckets]: the last hour by minute.
	Bucket  time.Duration
	Buckets int

	// Now is the clock that dates each decision and ends the time
	// series. Nil means the audit record's own time, and [time.Now].
	// Set it to the engine's clock when that clock is not the wall's,
	// as in a replay.
	Now func() time.Time

	// Title heads the page. Empty means "runtimeid decisions".
	Title string
}

// Entry is one decision as the view shows it.
type Entry struct {
	Time     time.Time `json:"time"`
	Outcome  string    `json:"outcome"`
	Rule     string    `json:"rule"`
	Reason   string    `json:"reason"`
	Action   string    `json:"action"`
	Subject  string    `json:"subject,omitempty"`
	ClientIP string    `json:"client_ip,omitempty"`
	Country  string    `json:"country,omitempty"`
	Score    float64   `json:"score"`
	Findings []string  `json:"findings"`
}

// Key is a rule and the outcome it chose.
type Key struct {
	Rule    string `json:"rule"`
	Outcome string `json:"outcome"`
}

type bucket struct {
	start  int64 // unix seconds of the bucket's start; 0 when empty
	counts map[Key]int
}

// View collects decisions and serves them. It is safe for concurrent
// use; its memory is bounded by [Options.Recent], [Options.Buckets] and
// [MaxKeys].
type View struct {
	opts   Options
	width  int64 // bucket width in seconds
	handle slog.Handler

	// mu guards everything below.
	mu      sync.Mutex
	recent  []Entry // ring of opts.Recent entries
	next    int     // where the next entry goes in recent
	buckets []bucket
	totals  map[Key]int
	scores  [ScoreBins]int
	total   int
}

// New returns an empty view.
func New(opts Options) *View {
	if opts.Recent <= 0 {
		opts.Recent = DefaultRecent
	}
	opts.Recent = min(opts.Recent, MaxRecent)
	if opts.Bucket < time.Second {
		opts.Bucket = DefaultBucket
	}
	if opts.Buckets <= 0 {
		opts.Buckets = DefaultBuckets
	}
	opts.Buckets = min(opts.Buckets, 24*60)
	if opts.Title == "" {
		opts.Title = "runtimeid decisions"
	}
	v := &View{
		opts:    opts,
		width:   int64(opts.Bucket / time.Second),
		recent:  make([]Entry, 0, opts.Recent),
		buckets: make([]bucket, opts.Buckets),
		totals:  map[Key]int{},
	}
	v.handle = &handler{v: v}
	return v
}

// Add records one decision. The engine's audit events reach it through
// [View.Handler]; call Add to feed it from elsewhere.
func (v *View) Add(e Entry) {
	if e.Time.IsZero() {
		e.Time = v.now()
	}
	e.Findings = slices.Clone(e.Findings)
	v.mu.Lock()
	defer v.mu.Unlock()

	v.total++
	if len(v.recent) < cap(v.recent) {
		v.recent = append(v.recent, e)
	} else {
		v.recent[v.next] = e
	}
	v.next = (v.next + 1) % cap(v.recent)

	k := v.key(e)
	v.totals[k]++
	v.scores[scoreBin(e.Score)]++
	v.count(e.Time, k)
}

// key returns the entry's key, or the overflow key once [MaxKeys]
// distinct keys are counted.
func (v *View) key(e Entry) Key {
	k := Key{Rule: e.Rule, Outcome: e.Outcome}
	if _, ok := v.totals[k]; !ok && len(v.totals) >= MaxKeys {
		k.Rule = "other"
	}
	return k
}

// count adds one to the time series, unless t is too old for it.
func (v *View) count(t time.Time, k Key) {
	start := floorDiv(t.Unix(), v.width) * v.width
	n := int64(len(v.buckets))
	b := &v.buckets[floorDiv(start, v.width)%n]
	switch {
	case b.start == start:
	case b.start > start:
		return // older than the window
	default:
		*b = bucket{start: start, counts: map[Key]int{}}
	}
	b.counts[k]++
}

func floorDiv(a, b int64) int64 {
	q := a / b
	if a%b < 0 {
		q--
	}
	return q
}

func scoreBin(s float64) int {
	if !(s > 0) {
		return 0
	}
	return min(int(s*ScoreBins), ScoreBins-1)
}

func (v *View) now() time.Time {
	if v.opts.Now != nil {
		return v.opts.Now()
	}
	return time.Now()
}

// Handler returns a [slog.Handler] that records the engine's audit
// events ([runtimeid.AuditMessage]) and ignores every other record. It
// writes nothing anywhere: combine it with your own handler through
// [slog.NewMultiHandler].
func (v *View) Handler() slog.Handler { return v.handle }

// handler is the [slog.Handler] of a view.
type handler struct{ v *View }

var _ slog.Handler = (*handler)(nil)

func (h *handler) Enabled(_ context.Context, l slog.Level) bool {
	return l >= slog.LevelInfo
}

func (h *handler) WithAttrs([]slog.Attr) slog.Handler { return h }
func (h *handler) WithGroup(string) slog.Handler      { return h }

// Handle implements [slog.Handler]. It reads the audit event's
// attributes by their names, as the engine writes them.
func (h *handler) Handle(_ context.Context, r slog.Record) error {
	if r.Message != runtimeid.AuditMessage {
		return nil
	}
	e := Entry{Time: r.Time}
	if h.v.opts.Now != nil {
		e.Time = h.v.opts.Now()
	}
	r.Attrs(func(a slog.Attr) bool {
		readAttr(&e, a)
		return true
	})
	h.v.Add(e)
	return nil
}

func readAttr(e *Entry, a slog.Attr) {
	v := a.Value.Resolve()
	fields := map[string]*string{
		"outcome": &e.Outcome, "rule": &e.Rule, "reason": &e.Reason,
		"action": &e.Action, "sub": &e.Subject, "client_ip": &e.ClientIP,
		"country": &e.Country,
	}
	if p, ok := fields[a.Key]; ok {
		*p = truncate(v.String(), 200)
		return
	}
	switch a.Key {
	case "score":
		if v.Kind() == slog.KindFloat64 {
			e.Score = v.Float64()
		}
	case "findings":
		if codes, ok := v.Any().([]string); ok {
			e.Findings = slices.Clone(codes[:min(len(codes), 32)])
		}
	}
}

func truncate(s string, n int) string {
	if len(s) > n {
		return s[:n]
	}
	return s
}
