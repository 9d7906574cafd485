package redisstore

import (
	"fmt"
	"log/slog"
	"time"

	"github.com/redis/go-redis/v9"
	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/metric/noop"

	"github.com/runtimeid/runtimeid"
	"github.com/runtimeid/runtimeid/risk"
	"github.com/runtimeid/runtimeid/signals/ssf"
)

// FailureMode is what one kind of state does while Redis is
// unreachable.
type FailureMode uint8

// The failure modes.
const (
	// FailDefault means the kind's default: FailClosed for
	// revocations and replay, ContinueLocal for baselines.
	FailDefault FailureMode = iota

	// FailClosed refuses what cannot be checked against the shared
	// state: every token while revocations may be missing, every DPoP
	// proof that cannot be checked, every request whose baseline
	// cannot be read.
	FailClosed

	// ContinueLocal decides on this instance's own state and catches
	// up when Redis returns: revocations received elsewhere in the
	// meantime are not enforced here, and a DPoP proof can be replayed
	// once on each instance.
	ContinueLocal
)

// String returns "default", "fail-closed" or "continue-local".
func (m FailureMode) String() string {
	switch m {
	case FailClosed:
		return "fail-closed"
	case ContinueLocal:
		return "continue-local"
	}
	return "default"
}

// Defaults for the zero values of [Options].
const (
	DefaultPrefix        = "runtimeid:"
	DefaultMaxSubjects   = 100_000
	DefaultMaxPending    = 100_000
	DefaultFlushInterval = 50 * time.Millisecond
	DefaultFlushBatch    = 256
	DefaultBaselineTTL   = 90 * 24 * time.Hour
	DefaultTimeout       = 250 * time.Millisecond
	DefaultProbeInterval = 500 * time.Millisecond
	DefaultMaxBackoff    = 2 * time.Second

	// DefaultMaxSessions bounds the session uses cached locally.
	DefaultMaxSessions = risk.DefaultMaxSessions

	// DefaultMaxPendingSessions bounds the session uses waiting to
	// be written.
	DefaultMaxPendingSessions = 10_000

	// DefaultMaxListedApprovals bounds the approvals listed per
	// subject.
	DefaultMaxListedApprovals = 100

	// DefaultSessionTTL is how long a session use is kept: the
	// session evaluator's default concurrent window.
	DefaultSessionTTL = risk.DefaultConcurrentWindow

	// DefaultMaxSessionReads bounds the session keys waiting to be
	// read from Redis after a cache miss.
	DefaultMaxSessionReads = 4096

	// DefaultMaxRecentSessionReads bounds the session keys
	// remembered as read lately.
	DefaultMaxRecentSessionReads = 100_000

	// DefaultSessionReadWindow is how long a session key read from
	// Redis is not read again.
	DefaultSessionReadWindow = time.Minute
)

// Options configure [New]. Only Client is required; the zero value of
// every other field means its default.
type Options struct {
	// Client reaches Redis. Build it with redis.NewUniversalClient: one
	// address, a Cluster or a Sentinel. The store does not close it.
	Client redis.UniversalClient

	// Prefix starts every key and the pub/sub channel, so several
	// services can share one Redis. Instances that must behave as one
	// use the same prefix. Default [DefaultPrefix].
	Prefix string

	// MaxSubjects bounds the baselines cached locally, each a few
	// hundred bytes. Default [DefaultMaxSubjects].
	MaxSubjects int

	// MaxFacts bounds the revocation keys kept locally. Default
	// ssf.DefaultMaxEntries.
	MaxFacts int

	// Retention is how long revocation facts are kept after their last
	// update, locally and in Redis. Default ssf.DefaultRetention; it
	// must be at least the longest access token lifetime.
	Retention time.Duration

	// MaxPending bounds the subjects whose learning waits to be
	// flushed. Learning for one subject merges into one entry, so the
	// bound is reached only when this many distinct subjects learn
	// during an outage; beyond it, learning for new subjects is
	// dropped and counted. Default [DefaultMaxPending].
	MaxPending int

	// FlushInterval is how often learned baselines are written.
	// Default [DefaultFlushInterval].
	FlushInterval time.Duration

	// FlushBatch is the most subjects written, or session keys read,
	// in one pipeline. Default [DefaultFlushBatch].
	FlushBatch int

	// BaselineTTL is how long Redis keeps a baseline no instance
	// learned into. Default [DefaultBaselineTTL].
	BaselineTTL time.Duration

	// MaxSessions bounds the session and token uses cached locally,
	// each about 200 bytes. Default [DefaultMaxSessions].
	MaxSessions int

	// MaxPendingSessions bounds the session uses waiting to be
	// written, which grow only while Redis is unreachable; beyond it,
	// the uses of further sessions are dropped and counted. Default
	// [DefaultMaxPendingSessions].
	MaxPendingSessions int

	// SessionTTL is how long a session use is kept, locally and in
	// Redis. Set it to at least [risk.SessionOptions.ConcurrentWindow].
	// Default [DefaultSessionTTL].
	SessionTTL time.Duration

	// MaxSessionReads bounds the session and token keys waiting to be
	// read from Redis after a lookup missed them locally; beyond it,
	// further misses are not read, and counted. Default
	// [DefaultMaxSessionReads].
	MaxSessionReads int

	// MaxRecentSessionReads bounds the keys remembered as queued for a
	// read within SessionReadWindow, each about 180 bytes; beyond it,
	// the oldest are forgotten and may be read again at their next
	// miss. Default [DefaultMaxRecentSessionReads].
	MaxRecentSessionReads int

	// SessionReadWindow is how long a key queued for a read, whether
	// Redis had it or not, is not queued again: within it, a session
	// or token still missing is read at most once. Default
	// [DefaultSessionReadWindow].
	SessionReadWindow time.Duration

	// MaxListedApprovals bounds the approvals of one subject that
	// [Store.Approvals] lists for the approval endpoint: beyond it,
	// the oldest are left out of the list (they can still be decided
	// by id until they expire). Default [DefaultMaxListedApprovals].
	MaxListedApprovals int

	// ReplaySize bounds the local pre-check of the replay cache.
	// Default runtimeid.DefaultReplayCacheSize.
	ReplaySize int

	// Timeout bounds each Redis call made on the request path or by
	// an update. Default [DefaultTimeout].
	Timeout time.Duration

	// ProbeInterval is how often the subscription is checked while
	// idle. Default [DefaultProbeInterval].
	ProbeInterval time.Duration

	// MaxBackoff is the longest wait between reconnection attempts.
	// Default [DefaultMaxBackoff].
	MaxBackoff time.Duration

	// Baselines, Revocations and Replay are the failure modes of each
	// kind of state; see [FailureMode] for the defaults.
	Baselines   FailureMode
	Revocations FailureMode
	Replay      FailureMode

	// Logger receives state changes and errors. Default: discard.
	Logger *slog.Logger

	// MeterProvider makes the store's instruments. Default: none.
	MeterProvider metric.MeterProvider

	// Now is the clock. Default time.Now.
	Now func() time.Time
}

func (o *Options) setDefaults() error {
	if o.Client == nil {
		return &runtimeid.ConfigError{Field: "redisstore.Options.Client", Reason: "required"}
	}
	ints := []struct {
		name string
		v    *int
		def  int
	}{
		{"MaxSubjects", &o.MaxSubjects, DefaultMaxSubjects},
		{"MaxFacts", &o.MaxFacts, ssf.DefaultMaxEntries},
		{"MaxPending", &o.MaxPending, DefaultMaxPending},
		{"FlushBatch", &o.FlushBatch, DefaultFlushBatch},
		{"ReplaySize", &o.ReplaySize, runtimeid.DefaultReplayCacheSize},
		{"MaxSessions", &o.MaxSessions, DefaultMaxSessions},
		{"MaxPendingSessions", &o.MaxPendingSessions, DefaultMaxPendingSessions},
		{"MaxListedApprovals", &o.MaxListedApprovals, DefaultMaxListedApprovals},
		{"MaxSessionReads", &o.MaxSessionReads, DefaultMaxSessionReads},
		{"MaxRecentSessionReads", &o.MaxRecentSessionReads, DefaultMaxRecentSessionReads},
	}
	for _, f := range ints {
		if err := setPositive(f.name, f.v, f.def); err != nil {
			return err
		}
	}
	durations := []struct {
		name string
		v    *time.Duration
		def  time.Duration
	}{
		{"Retention", &o.Retention, ssf.DefaultRetention},
		{"FlushInterval", &o.FlushInterval, DefaultFlushInterval},
		{"BaselineTTL", &o.BaselineTTL, DefaultBaselineTTL},
		{"Timeout", &o.Timeout, DefaultTimeout},
		{"ProbeInterval", &o.ProbeInterval, DefaultProbeInterval},
		{"MaxBackoff", &o.MaxBackoff, DefaultMaxBackoff},
		{"SessionTTL", &o.SessionTTL, DefaultSessionTTL},
		{"SessionReadWindow", &o.SessionReadWindow, DefaultSessionReadWindow},
	}
	for _, f := range durations {
		if err := setPositive(f.name, f.v, f.def); err != nil {
			return err
		}
	}
	o.setModes()
	if o.Prefix == "" {
		o.Prefix = DefaultPrefix
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.MeterProvider == nil {
		o.MeterProvider = noop.NewMeterProvider()
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	return nil
}

func (o *Options) setModes() {
	if o.Baselines == FailDefault {
		o.Baselines = ContinueLocal
	}
	if o.Revocations == FailDefault {
		o.Revocations = FailClosed
	}
	if o.Replay == FailDefault {
		o.Replay = FailClosed
	}
}

func setPositive[T int | time.Duration](name string, v *T, def T) error {
	switch {
	case *v < 0:
		return &runtimeid.ConfigError{Field: "redisstore.Options." + name,
			Reason: fmt.Sprintf("must not be negative, not %v", *v)}
	case *v == 0:
		*v = def
	}
	return nil
}
