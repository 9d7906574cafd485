package runtimeid

import (
	"context"
	"log/slog"
	"sync"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"
	metricnoop "go.opentelemetry.io/otel/metric/noop"
	"go.opentelemetry.io/otel/trace"
	tracenoop "go.opentelemetry.io/otel/trace/noop"
)

// AuditMessage is the message of every audit event, so log pipelines can
// select decisions with one match.
const AuditMessage = "runtimeid.decision"

const scope = "github.com/runtimeid/runtimeid"

// audit writes the one event of a decision. It names who, what, where and
// why, never a token, a claim value beyond the names, or a header. With
// [Config.Audit] set, it only captures the event for the queue's writer.
func (e *Engine) audit(ctx context.Context, ev *Evaluation) {
	level := slog.LevelInfo
	if ev.Decision.Outcome != Allow || ev.Decision.FailedOpen {
		level = slog.LevelWarn
	}
	if q := e.cfg.Audit; q != nil {
		q.submit(ctx, ev, level)
		return
	}
	log := e.cfg.Logger
	if !log.Enabled(ctx, level) {
		return
	}

	// The attributes go in a pooled slice: the record copies them, and
	// a fresh slice of twenty would be most of the event's garbage.
	buf := attrPool.Get().(*[]slog.Attr)
	attrs := appendAudit((*buf)[:0], ev)
	log.LogAttrs(ctx, level, AuditMessage, attrs...)
	if cap(attrs) <= maxPooledAttrs {
		clear(attrs)
		*buf = attrs[:0]
		attrPool.Put(buf)
	}
}

// attrPool holds the attribute slices of audit events.
var attrPool = sync.Pool{New: func() any {
	s := make([]slog.Attr, 0, 24)
	return &s
}}

// maxPooledAttrs keeps the rare event with many report-only matches from
// pinning a large slice in the pool.
const maxPooledAttrs = 64

// noFindings is the findings attribute of a quiet evaluation, made once.
var noFindings = slog.Any("findings", []string{})

// appendAudit appends the audit event's attributes to attrs.
func appendAudit(attrs []slog.Attr, ev *Evaluation) []slog.Attr {
	d := &ev.Decision
	findings := noFindings
	if len(ev.Assessment.Findings) > 0 {
		findings = slog.Any("findings", ev.Assessment.Codes())
	}
	attrs = append(attrs,
		slog.String("outcome", d.Outcome.String()),
		slog.String("rule", d.Rule),
		slog.String("reason", d.Reason),
		slog.Float64("score", round3(ev.Assessment.Score)),
		slog.String("risk_level", ev.Assessment.Level.String()),
		findings,
		slog.String("action", ev.Action.Name),
		slog.String("sensitivity", ev.Action.Sensitivity.String()),
	)
	if id := ev.Identity; id != nil {
		attrs = append(attrs, slog.String("sub", id.Subject), slog.String("sid", id.SessionID))
		if id.ClientID != "" {
			attrs = append(attrs, slog.String("client_id", id.ClientID))
		}
		if id.Actor != nil {
			attrs = append(attrs, slog.String("act", id.Actor.Subject))
			if id.Actor.Actor != nil {
				// The earlier actors of the chain, current first: who
				// delegated to whom, for the investigation.
				attrs = append(attrs, slog.Any("act_chain", actorSubjects(id)))
			}
		}
	}
	if ev.Signals.ClientIP.IsValid() {
		attrs = append(attrs, slog.String("client_ip", ev.Signals.ClientIP.String()))
	}
	if c := ev.Signals.Network.Country; c != "" {
		attrs = append(attrs, slog.String("country", c))
	}
	if d.StepUp != nil && d.Outcome == Challenge {
		attrs = append(attrs, slog.Any("acr_values", d.StepUp.ACRValues),
			slog.Duration("max_age", d.StepUp.MaxAge))
	}
	if d.SteppedUp {
		attrs = append(attrs, slog.Bool("stepped_up", true))
	}
	if d.FailedOpen {
		attrs = append(attrs, slog.Bool("failed_open", true))
	}
	if ev.Recheck {
		attrs = append(attrs, slog.Bool("recheck", true))
	}
	if ev.Nested {
		attrs = append(attrs, slog.Bool("nested", true))
	}
	for _, m := range d.ReportOnly {
		attrs = append(attrs, slog.Group("report_only",
			slog.String("rule", m.Rule), slog.String("outcome", m.Outcome.String())))
	}
	if ev.Err != nil {
		attrs = append(attrs, slog.String("error", ev.Err.Error()))
	}
	return append(attrs, slog.Duration("elapsed", ev.Duration))
}

func round3(f float64) float64 { return float64(int64(f*1000+0.5)) / 1000 }

// telemetry holds the OpenTelemetry instruments. Without a provider the
// engine skips them altogether: no span is started and no attribute set
// is built for a meter that would drop it.
type telemetry struct {
	tracer    trace.Tracer
	decisions metric.Int64Counter
	latency   metric.Float64Histogram
	tracing   bool // a TracerProvider was configured
	metering  bool // a MeterProvider was configured
}

// spanKind is the option of every evaluation span, made once.
var spanKind = trace.WithSpanKind(trace.SpanKindInternal)

// noSpan is the span of an evaluation when tracing is off: it records
// nothing.
var noSpan = trace.SpanFromContext(context.Background())

// start starts the evaluation's span, or returns ctx and noSpan when
// tracing is off.
func (t *telemetry) start(ctx context.Context) (context.Context, trace.Span) {
	if !t.tracing {
		return ctx, noSpan
	}
	return t.tracer.Start(ctx, "runtimeid.evaluate", spanKind)
}

func newTelemetry(tp trace.TracerProvider, mp metric.MeterProvider) (*telemetry, error) {
	tracing, metering := tp != nil, mp != nil
	if tp == nil {
		tp = tracenoop.NewTracerProvider()
	}
	if mp == nil {
		mp = metricnoop.NewMeterProvider()
	}
	meter := mp.Meter(scope)
	decisions, err := meter.Int64Counter("runtimeid.decisions",
		metric.WithDescription("Decisions by outcome, rule and reason."),
		metric.WithUnit("{decision}"))
	if err != nil {
		return nil, err
	}
	latency, err := meter.Float64Histogram("runtimeid.evaluation.duration",
		metric.WithDescription("Time to evaluate one action."),
		metric.WithUnit("s"),
		metric.WithExplicitBucketBoundaries(
			1e-6, 5e-6, 1e-5, 2.5e-5, 5e-5, 1e-4, 2.5e-4, 1e-3, 1e-2))
	if err != nil {
		return nil, err
	}
	return &telemetry{tracer: tp.Tracer(scope), decisions: decisions, latency: latency,
		tracing: tracing, metering: metering}, nil
}

func (t *telemetry) record(ctx context.Context, ev *Evaluation) {
	if !t.metering {
		return
	}
	set := attribute.NewSet(
		attribute.String("outcome", ev.Decision.Outcome.String()),
		attribute.String("rule", ev.Decision.Rule),
		attribute.String("reason", ev.Decision.Reason),
	)
	t.decisions.Add(ctx, 1, metric.WithAttributeSet(set))
	t.latency.Record(ctx, ev.Duration.Seconds(), metric.WithAttributeSet(set))
}

func actorSubjects(id *Identity) []string {
	var subs []string
	for _, a := range id.ActorChain() {
		subs = append(subs, a.Subject)
	}
	return subs
}
