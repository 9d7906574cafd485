package runtimeid

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"go.opentelemetry.io/otel/metric"
	metricnoop "go.opentelemetry.io/otel/metric/noop"
)

// Defaults for the zero values of [AuditQueueOptions].
const (
	DefaultAuditQueueSize      = 4096
	DefaultAuditInterval       = 10 * time.Millisecond
	DefaultAuditFlushEvery     = 256
	DefaultAuditReportInterval = 10 * time.Second

	// MaxAuditFlushEvery bounds [AuditQueueOptions.FlushEvery], and
	// with it how many encoded records a writer buffers.
	MaxAuditFlushEvery = 65_536
)

// ErrAuditQueueClosed means a record reached an [AuditQueue] after
// [AuditQueue.Close]. The record is counted as dropped and logged.
var ErrAuditQueueClosed = errors.New("runtimeid: audit queue closed")

// AuditOverflow says what an [AuditQueue] does with a record when the
// queue is full.
type AuditOverflow int

const (
	// AuditBlock makes the request wait until the writer has room:
	// back-pressure, and no record is ever lost. It is the zero value.
	// A writer that hangs (a stalled disk or network share) hangs
	// every request once the queue is full: that is the price of
	// keeping every record.
	AuditBlock AuditOverflow = iota

	// AuditDrop drops the record and counts it: the request never
	// waits for the audit trail. Drops are logged at most once per
	// [AuditQueueOptions.ReportInterval].
	AuditDrop
)

// AuditRecord is one decision's audit event captured as plain values:
// who, what, where and why, never a token, a claim value beyond the
// subject and session ids, or a header. An [AuditQueue] reuses records:
// an [AuditWriter] must not keep one, or any of its slices, after
// WriteAudit returns.
type AuditRecord struct {
	// Time is when the evaluation finished, by [Config.Now].
	Time time.Time

	// Level is Info for an allow, Warn for the rest and for an allow
	// that failed open.
	Level slog.Level

	Outcome     Outcome
	Rule        string
	Reason      string
	Score       float64 // rounded to three decimals
	RiskLevel   Level
	Findings    []string // the findings' codes
	Action      string
	Sensitivity Sensitivity

	// HasIdentity says the evaluation had an identity: Subject and
	// SessionID are then written even when empty.
	HasIdentity bool
	Subject     string
	SessionID   string
	ClientID    string

	// HasActor says someone acts for the subject; Actor is its
	// subject, and ActorChain the earlier actors, current first, when
	// there are several.
	HasActor   bool
	Actor      string
	ActorChain []string

	ClientIP netip.Addr
	Country  string

	// HasStepUp says the outcome is a challenge with a requirement.
	HasStepUp bool
	ACRValues []string
	MaxAge    time.Duration

	SteppedUp  bool
	FailedOpen bool
	Recheck    bool // see [Evaluation.Recheck]
	Nested     bool // see [Evaluation.Nested]
	ReportOnly []RuleMatch
	Error      string
	Elapsed    time.Duration
}

// reset empties r, keeping its slices' storage.
func (r *AuditRecord) reset() {
	findings, chain := r.Findings[:0], r.ActorChain[:0]
	acr, ro := r.ACRValues[:0], r.ReportOnly[:0]
	clear(r.ReportOnly)
	*r = AuditRecord{Findings: findings, ActorChain: chain,
		ACRValues: acr, ReportOnly: ro}
}

// capture fills r from a finished evaluation. Every slice is copied,
// so r stays valid whatever happens to ev afterwards.
func (r *AuditRecord) capture(ev *Evaluation, level slog.Level) {
	d := &ev.Decision
	r.Time = ev.Time.Add(ev.Duration)
	r.Level = level
	r.Outcome, r.Rule, r.Reason = d.Outcome, d.Rule, d.Reason
	r.Score = round3(ev.Assessment.Score)
	r.RiskLevel = ev.Assessment.Level
	for i := range ev.Assessment.Findings {
		r.Findings = append(r.Findings, ev.Assessment.Findings[i].Code)
	}
	r.Action, r.Sensitivity = ev.Action.Name, ev.Action.Sensitivity
	r.captureIdentity(ev.Identity)

	r.ClientIP = ev.Signals.ClientIP
	r.Country = ev.Signals.Network.Country
	if d.StepUp != nil && d.Outcome == Challenge {
		r.HasStepUp = true
		r.ACRValues = append(r.ACRValues, d.StepUp.ACRValues...)
		r.MaxAge = d.StepUp.MaxAge
	}
	r.SteppedUp, r.FailedOpen = d.SteppedUp, d.FailedOpen
	r.Recheck, r.Nested = ev.Recheck, ev.Nested
	r.ReportOnly = append(r.ReportOnly, d.ReportOnly...)
	if ev.Err != nil {
		r.Error = ev.Err.Error()
	}
	r.Elapsed = ev.Duration
}

func (r *AuditRecord) captureIdentity(id *Identity) {
	if id == nil {
		return
	}
	r.HasIdentity = true
	r.Subject, r.SessionID = id.Subject, id.SessionID
	r.ClientID = id.ClientID
	if id.Actor == nil {
		return
	}
	r.HasActor, r.Actor = true, id.Actor.Subject
	if id.Actor.Actor == nil {
		return
	}
	for a := id.Actor; a != nil; a = a.Actor {
		r.ActorChain = append(r.ActorChain, a.Subject)
	}
}

// recordPool holds the records between a request and the writer.
var recordPool = sync.Pool{New: func() any { return new(AuditRecord) }}

// maxPooledList keeps a record with a rare long list from pinning it
// in the pool.
const maxPooledList = 64

func putRecord(r *AuditRecord) {
	if cap(r.Findings) > maxPooledList ||
		cap(r.ActorChain) > maxPooledList ||
		cap(r.ReportOnly) > maxPooledList {
		return
	}
	r.reset()
	recordPool.Put(r)
}

// AuditWriter writes audit records for an [AuditQueue]. The queue calls
// its methods from one goroutine only, so an implementation needs no
// locking of its own.
//
// WriteAudit writes or buffers one record; an error means that record
// is lost. It must not keep rec after it returns. Flush makes every
// record written since the last Flush durable, as far as the writer
// goes; an error means they are lost. When the writer also implements
// [io.Closer], [AuditQueue.Close] closes it after the last Flush.
type AuditWriter interface {
	WriteAudit(rec *AuditRecord) error
	Flush() error
}

// AuditQueueOptions configures an [AuditQueue]. Only Writer is
// required; the zero value of every other field is a documented
// default.
type AuditQueueOptions struct {
	// Writer receives the records: [NewSlogAuditWriter] for a
	// [slog.Handler], [NewJSONLinesSink] or [OpenJSONLinesFile] for a
	// file of JSON lines. Required.
	Writer AuditWriter

	// Size is how many records wait for the writer at most. Zero
	// means [DefaultAuditQueueSize].
	Size int

	// Overflow says what happens to a record when Size records are
	// already waiting. The zero value is [AuditBlock]: nothing is ever
	// lost, and a slow writer slows the requests down.
	Overflow AuditOverflow

	// Interval is how often the writer goroutine wakes to write what
	// is waiting and to flush what it wrote. It also wakes whenever
	// the queue is half full. Zero means [DefaultAuditInterval].
	Interval time.Duration

	// FlushEvery flushes the writer after that many records, besides
	// each Interval and on Close. Zero means [DefaultAuditFlushEvery];
	// it is at most [MaxAuditFlushEvery].
	FlushEvery int

	// Logger receives the queue's own problems: dropped records and
	// failed writes, each at most once per ReportInterval, and their
	// totals on Close. It must not be a logger that writes into this
	// queue. Nil discards them.
	Logger *slog.Logger

	// ReportInterval spaces the reports to Logger. Zero means
	// [DefaultAuditReportInterval].
	ReportInterval time.Duration

	// MeterProvider receives the counters runtimeid.audit.dropped and
	// runtimeid.audit.failed. Nil means none.
	MeterProvider metric.MeterProvider

	// Now is the clock of the reports. Nil means [time.Now].
	Now func() time.Time

	// Tick, when set, replaces the Interval's ticker: the writer wakes
	// each time it delivers. Tests use it to decide when.
	Tick <-chan time.Time
}

// AuditStats counts what happened to the records of an [AuditQueue].
// Once the queue is closed, Written + Dropped + Failed is every record
// it was given.
type AuditStats struct {
	Written uint64 // written and flushed
	Dropped uint64 // the queue was full (AuditDrop) or closed
	Failed  uint64 // the writer returned an error
	Blocked uint64 // requests that waited for room (AuditBlock)
}

// AuditQueue moves audit events off the request path: the request
// captures its record (a few plain values, no encoding) and one
// background goroutine encodes and writes it. Set it as [Config.Audit].
//
// A record is never lost silently: with [AuditBlock] the request waits
// for room; with [AuditDrop] it is counted ([AuditQueue.Stats], the
// runtimeid.audit.dropped metric) and logged. A failed write is counted
// and logged too.
//
// The engine does not own the queue: call [AuditQueue.Close] once the
// server has stopped, so that every queued record is written. AuditQueue
// is safe for concurrent use.
type AuditQueue struct {
	opts    AuditQueueOptions
	ch      chan *AuditRecord
	wake    chan struct{}
	stop    chan struct{}
	done    chan struct{}
	enabled func(slog.Level) bool
	reports reporter

	// mu guards closed: senders hold it for reading while they send,
	// so Close cannot close ch under them.
	mu     sync.RWMutex
	closed bool

	written, dropped, failed, blocked atomic.Uint64
	droppedMetric, failedMetric       metric.Int64Counter
}

// NewAuditQueue checks opts and starts the queue's writer goroutine.
// Without a Writer, or with a negative Size, Interval, FlushEvery or
// ReportInterval, it returns a [*ConfigError].
func NewAuditQueue(opts AuditQueueOptions) (*AuditQueue, error) {
	if err := opts.setDefaults(); err != nil {
		return nil, err
	}
	q := &AuditQueue{
		opts:    opts,
		ch:      make(chan *AuditRecord, opts.Size),
		wake:    make(chan struct{}, 1),
		stop:    make(chan struct{}),
		done:    make(chan struct{}),
		enabled: writerEnabled(opts.Writer),
	}
	q.reports = reporter{log: opts.Logger, now: opts.Now,
		every: opts.ReportInterval}
	if err := q.instruments(opts.MeterProvider); err != nil {
		return nil, err
	}
	go q.run()
	return q, nil
}

func (o *AuditQueueOptions) setDefaults() error {
	switch {
	case o.Writer == nil:
		return &ConfigError{Field: "Audit.Writer", Reason: "required"}
	case o.Size < 0 || o.Interval < 0 || o.FlushEvery < 0 ||
		o.ReportInterval < 0:
		return &ConfigError{Field: "Audit",
			Reason: "sizes and intervals must not be negative"}
	case o.FlushEvery > MaxAuditFlushEvery:
		return &ConfigError{Field: "Audit.FlushEvery",
			Reason: "more than MaxAuditFlushEvery"}
	}
	if o.Size == 0 {
		o.Size = DefaultAuditQueueSize
	}
	if o.Interval == 0 {
		o.Interval = DefaultAuditInterval
	}
	if o.FlushEvery == 0 {
		o.FlushEvery = DefaultAuditFlushEvery
	}
	if o.ReportInterval == 0 {
		o.ReportInterval = DefaultAuditReportInterval
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	return nil
}

func (q *AuditQueue) instruments(mp metric.MeterProvider) error {
	if mp == nil {
		mp = metricnoop.NewMeterProvider()
	}
	meter := mp.Meter(scope)
	var err error
	q.droppedMetric, err = meter.Int64Counter("runtimeid.audit.dropped",
		metric.WithDescription("Audit records dropped: queue full or closed."),
		metric.WithUnit("{record}"))
	if err != nil {
		return &ConfigError{Field: "Audit.MeterProvider",
			Reason: "cannot create instruments", Err: err}
	}
	q.failedMetric, err = meter.Int64Counter("runtimeid.audit.failed",
		metric.WithDescription("Audit records the writer failed to write."),
		metric.WithUnit("{record}"))
	if err != nil {
		return &ConfigError{Field: "Audit.MeterProvider",
			Reason: "cannot create instruments", Err: err}
	}
	return nil
}

// levelEnabler is a writer that can tell, before a record is captured,
// whether it would write a record of that level.
type levelEnabler interface {
	Enabled(ctx context.Context, level slog.Level) bool
}

func writerEnabled(w AuditWriter) func(slog.Level) bool {
	le, ok := w.(levelEnabler)
	if !ok {
		return func(slog.Level) bool { return true }
	}
	return func(l slog.Level) bool {
		return le.Enabled(context.Background(), l)
	}
}

// Stats returns the counts so far.
func (q *AuditQueue) Stats() AuditStats {
	return AuditStats{
		Written: q.written.Load(),
		Dropped: q.dropped.Load(),
		Failed:  q.failed.Load(),
		Blocked: q.blocked.Load(),
	}
}

// submit captures ev into a pooled record and queues it. It is the
// only part of the audit trail on the request path.
func (q *AuditQueue) submit(ctx context.Context, ev *Evaluation, level slog.Level) {
	if !q.enabled(level) {
		return
	}
	r := recordPool.Get().(*AuditRecord)
	r.capture(ev, level)

	q.mu.RLock()
	defer q.mu.RUnlock()
	if q.closed {
		q.drop(ctx, r, ErrAuditQueueClosed)
		return
	}
	select {
	case q.ch <- r:
	default:
		q.full(ctx, r)
		return
	}
	// The writer sleeps between ticks so that a request never pays
	// for waking it; past half full, the request wakes it early.
	if len(q.ch) >= cap(q.ch)/2 {
		q.nudge()
	}
}

// full handles a record that found the queue full.
func (q *AuditQueue) full(ctx context.Context, r *AuditRecord) {
	if q.opts.Overflow == AuditDrop {
		q.drop(ctx, r, errAuditQueueFull)
		return
	}
	q.blocked.Add(1)
	q.nudge()
	q.ch <- r
}

var errAuditQueueFull = errors.New("runtimeid: audit queue full")

func (q *AuditQueue) nudge() {
	select {
	case q.wake <- struct{}{}:
	default:
	}
}

// drop counts a record that will not be written, and reports it at
// most once per interval.
func (q *AuditQueue) drop(ctx context.Context, r *AuditRecord, why error) {
	putRecord(r)
	n := q.dropped.Add(1)
	q.droppedMetric.Add(ctx, 1)
	q.reports.dropped(ctx, n, why)
}

// run is the writer goroutine.
func (q *AuditQueue) run() {
	defer close(q.done)
	tick := q.opts.Tick
	if tick == nil {
		t := time.NewTicker(q.opts.Interval)
		defer t.Stop()
		tick = t.C
	}
	w := writeState{q: q}
	for {
		select {
		case <-tick:
		case <-q.wake:
		case <-q.stop:
			w.drainAll()
			return
		}
		w.drain()
		w.flush()
	}
}

// writeState is the writer goroutine's own bookkeeping.
type writeState struct {
	q *AuditQueue

	// pending counts the records written since the last flush: they
	// are counted as written or failed once the flush says which.
	pending uint64
}

// drain writes what is waiting now, without waiting for more.
func (w *writeState) drain() {
	for {
		select {
		case r, ok := <-w.q.ch:
			if !ok {
				return // closed: run sees stop next
			}
			w.write(r)
		default:
			return
		}
	}
}

// drainAll writes everything until the channel is closed, then
// flushes and closes the writer.
func (w *writeState) drainAll() {
	for r := range w.q.ch {
		w.write(r)
	}
	w.flush()
	if c, ok := w.q.opts.Writer.(io.Closer); ok {
		if err := c.Close(); err != nil {
			w.q.reports.closeFailed(err)
		}
	}
}

func (w *writeState) write(r *AuditRecord) {
	err := guardWriter(func() error { return w.q.opts.Writer.WriteAudit(r) })
	putRecord(r)
	if err != nil {
		w.fail(1, err)
		return
	}
	w.pending++
	if w.pending >= uint64(w.q.opts.FlushEvery) {
		w.flush()
	}
}

func (w *writeState) flush() {
	if w.pending == 0 {
		return
	}
	n := w.pending
	w.pending = 0
	if err := guardWriter(w.q.opts.Writer.Flush); err != nil {
		w.fail(n, err)
		return
	}
	w.q.written.Add(n)
}

// guardWriter calls f and turns a panic into an error: a broken writer
// loses its records, counted and logged, but not the process.
func guardWriter(f func() error) (err error) {
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("runtimeid: audit writer panicked: %v", p)
		}
	}()
	return f()
}

func (w *writeState) fail(n uint64, err error) {
	total := w.q.failed.Add(n)
	w.q.failedMetric.Add(context.Background(), int64(n))
	w.q.reports.failed(total, err)
}

// Close stops taking records, writes every record already queued,
// flushes the writer and closes it when it is an [io.Closer]. Requests
// that arrive after Close are counted as dropped. It reports the total
// of dropped and failed records, if any, and returns once the writer
// goroutine is done. Closing twice is a no-op.
func (q *AuditQueue) Close() error {
	q.mu.Lock()
	if q.closed {
		q.mu.Unlock()
		<-q.done
		return nil
	}
	q.closed = true
	close(q.ch)
	close(q.stop)
	q.mu.Unlock()

	<-q.done
	q.reports.final(q.Stats())
	return nil
}

// reporter logs the queue's problems at most once per interval each.
type reporter struct {
	log   *slog.Logger
	now   func() time.Time
	every time.Duration

	// lastDrop is the unix nanos of the last drop report; senders race
	// for it with a compare-and-swap.
	lastDrop atomic.Int64

	// lastFail is the time of the last failure report; only the
	// writer goroutine touches it.
	lastFail time.Time
}

func (p *reporter) dropped(ctx context.Context, total uint64, why error) {
	now := p.now().UnixNano()
	last := p.lastDrop.Load()
	if last != 0 && now-last < int64(p.every) {
		return
	}
	if !p.lastDrop.CompareAndSwap(last, now) {
		return // another request reports it
	}
	p.log.LogAttrs(ctx, slog.LevelError, "runtimeid: audit records dropped",
		slog.Uint64("dropped_total", total),
		slog.String("reason", why.Error()))
}

func (p *reporter) failed(total uint64, err error) {
	now := p.now()
	if !p.lastFail.IsZero() && now.Sub(p.lastFail) < p.every {
		return
	}
	p.lastFail = now
	p.log.LogAttrs(context.Background(), slog.LevelError,
		"runtimeid: audit records not written",
		slog.Uint64("failed_total", total),
		slog.String("error", err.Error()))
}

func (p *reporter) closeFailed(err error) {
	p.log.LogAttrs(context.Background(), slog.LevelError,
		"runtimeid: audit writer close failed",
		slog.String("error", err.Error()))
}

// final reports the totals on Close when any record was lost.
func (p *reporter) final(s AuditStats) {
	if s.Dropped == 0 && s.Failed == 0 {
		return
	}
	p.log.LogAttrs(context.Background(), slog.LevelError,
		"runtimeid: audit queue closed with records lost",
		slog.Uint64("written_total", s.Written),
		slog.Uint64("dropped_total", s.Dropped),
		slog.Uint64("failed_total", s.Failed))
}
