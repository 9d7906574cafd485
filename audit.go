package runtimeid

import (
	"context"
	"log/slog"

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
// why, never a token, a claim value beyond the names, or a header.
func (e *Engine) audit(ctx context.Context, ev *Evaluation) {
	level := slog.LevelInfo
	if ev.Decision.Outcome != Allow || ev.Decision.FailedOpen {
		level = slog.LevelWarn
	}
	log := e.cfg.Logger
	if !log.Enabled(ctx, level) {
		return
	}

	d := &ev.Decision
	attrs := make([]slog.Attr, 0, 20)
	attrs = append(attrs,
		slog.String("outcome", d.Outcome.String()),
		slog.String("rule", d.Rule),
		slog.String("reason", d.Reason),
		slog.Float64("score", round3(ev.Assessment.Score)),
		slog.String("risk_level", ev.Assessment.Level.String()),
		slog.Any("findings", ev.Assessment.Codes()),
		slog.String("action", ev.Action.Name),
		slog.String("sensitivity", ev.Action.Sensitivity.String()),
	)
	if id := ev.Identity; id != nil {
		attrs = append(attrs, slog.String("sub", id.Subject), slog.String("sid", id.SessionID))
		if id.Actor != nil {
			attrs = append(attrs, slog.String("act", id.Actor.Subject))
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
	for _, m := range d.ReportOnly {
		attrs = append(attrs, slog.Group("report_only",
			slog.String("rule", m.Rule), slog.String("outcome", m.Outcome.String())))
	}
	if ev.Err != nil {
		attrs = append(attrs, slog.String("error", ev.Err.Error()))
	}
	attrs = append(attrs, slog.Duration("elapsed", ev.Duration))
	log.LogAttrs(ctx, level, AuditMessage, attrs...)
}

func round3(f float64) float64 { return float64(int64(f*1000+0.5)) / 1000 }

// telemetry holds the OpenTelemetry instruments; with no providers they are
// no-ops that cost a call each.
type telemetry struct {
	tracer    trace.Tracer
	decisions metric.Int64Counter
	latency   metric.Float64Histogram
}

func newTelemetry(tp trace.TracerProvider, mp metric.MeterProvider) (*telemetry, error) {
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
		metric.WithExplicitBucketBoundaries(1e-6, 5e-6, 1e-5, 2.5e-5, 5e-5, 1e-4, 2.5e-4, 1e-3, 1e-2))
	if err != nil {
		return nil, err
	}
	return &telemetry{tracer: tp.Tracer(scope), decisions: decisions, latency: latency}, nil
}

func (t *telemetry) record(ctx context.Context, ev *Evaluation) {
	set := attribute.NewSet(
		attribute.String("outcome", ev.Decision.Outcome.String()),
		attribute.String("rule", ev.Decision.Rule),
		attribute.String("reason", ev.Decision.Reason),
	)
	t.decisions.Add(ctx, 1, metric.WithAttributeSet(set))
	t.latency.Record(ctx, ev.Duration.Seconds(), metric.WithAttributeSet(set))
}
