package redisstore

import (
	"context"
	"errors"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"
)

const meterName = "github.com/runtimeid/runtimeid/adapters/redis"

// telemetry are the store's instruments:
//
//   - runtimeid.redis.errors: failed Redis operations, by op
//     ("approvals" for every call of [Store.Approvals], "sessions"
//     for the writes of session uses, "sessions_read" for their
//     background reads);
//   - runtimeid.redis.up: 1 while the shared state is live, 0 while
//     the store runs on local state or fails closed;
//   - runtimeid.redis.pending: subjects whose learning waits to be
//     flushed;
//   - runtimeid.redis.dropped: learning dropped because MaxPending
//     subjects were waiting, (kind "sessions") session uses
//     dropped because MaxPendingSessions were waiting, and (kind
//     "session_reads") session keys not read back because
//     MaxSessionReads were waiting;
//   - runtimeid.redis.fallbacks: decisions made on local state, by
//     kind;
//   - runtimeid.redis.pubsub.lag: seconds from publication to
//     receipt, as the two instances' clocks tell.
type telemetry struct {
	meter     metric.Meter
	errors    metric.Int64Counter
	dropped   metric.Int64Counter
	fallbacks metric.Int64Counter
	lagHist   metric.Float64Histogram
}

func newTelemetry(mp metric.MeterProvider) (*telemetry, error) {
	m := mp.Meter(meterName)
	t := &telemetry{meter: m}
	var errs [4]error
	t.errors, errs[0] = m.Int64Counter("runtimeid.redis.errors",
		metric.WithDescription("failed Redis operations"))
	t.dropped, errs[1] = m.Int64Counter("runtimeid.redis.dropped",
		metric.WithDescription("learned requests dropped: too many subjects pending"))
	t.fallbacks, errs[2] = m.Int64Counter("runtimeid.redis.fallbacks",
		metric.WithDescription("decisions made on local state while Redis was unreachable"))
	t.lagHist, errs[3] = m.Float64Histogram("runtimeid.redis.pubsub.lag",
		metric.WithUnit("s"), metric.WithDescription("time from publication to receipt"))
	return t, errors.Join(errs[:]...)
}

// observe registers the gauges that read the store.
func (t *telemetry) observe(s *Store) error {
	up, err := t.meter.Int64ObservableGauge("runtimeid.redis.up",
		metric.WithDescription("1 while the shared state is live"))
	if err != nil {
		return err
	}
	pending, err := t.meter.Int64ObservableGauge("runtimeid.redis.pending",
		metric.WithDescription("subjects whose learning waits to be flushed"))
	if err != nil {
		return err
	}
	_, err = t.meter.RegisterCallback(func(_ context.Context, o metric.Observer) error {
		v := int64(0)
		if s.Healthy() {
			v = 1
		}
		o.ObserveInt64(up, v)
		o.ObserveInt64(pending, int64(s.baselines.pendingLen()))
		return nil
	}, up, pending)
	return err
}

func (t *telemetry) error(ctx context.Context, op string) {
	t.errors.Add(ctx, 1, metric.WithAttributes(attribute.String("op", op)))
}

func (t *telemetry) fallback(ctx context.Context, kind string) {
	t.fallbacks.Add(ctx, 1, metric.WithAttributes(attribute.String("kind", kind)))
}

func (t *telemetry) drop(ctx context.Context) { t.dropped.Add(ctx, 1) }

func (t *telemetry) dropSessions(ctx context.Context, n int64) {
	t.dropped.Add(ctx, n, metric.WithAttributes(attribute.String("kind", "sessions")))
}

func (t *telemetry) dropSessionReads(ctx context.Context) {
	t.dropped.Add(ctx, 1, metric.WithAttributes(attribute.String("kind", "session_reads")))
}

func (t *telemetry) lag(ctx context.Context, d time.Duration) {
	t.lagHist.Record(ctx, max(d, 0).Seconds())
}
