package runtimeid

import (
	"context"
	"net/http"
)

// Usage is how much an allowed action returned to its caller: the
// records (rows, items, files) and the bytes. Handlers report it with
// [ReportUsage] so that an agent that reads far more than it usually
// does can be stopped on its next action.
type Usage struct {
	Records int
	Bytes   int64
}

// UsageRecorder receives the [Usage] of allowed actions. The risk
// package's AgentEvaluator is one: it compares what an agent reads
// with what it usually reads.
//
// RecordUsage is called from the handler, after the decision; ev is
// the action's evaluation and is read-only. It must be safe for
// concurrent use and must not block.
type UsageRecorder interface {
	RecordUsage(ctx context.Context, ev *Evaluation, u Usage)
}

type usageKey struct{}

// WithUsageRecorder returns a copy of ctx in which [ReportUsage]
// reports to rec. Adapters call it before the handler runs; see
// [UsageRecording] for net/http.
func WithUsageRecorder(ctx context.Context, rec UsageRecorder) context.Context {
	return context.WithValue(ctx, usageKey{}, rec)
}

// UsageRecording returns middleware that lets handlers behind it
// report usage to rec. Put it inside [Engine.Middleware] or
// [Engine.Protect], so that the evaluation is in the context:
//
//	h := engine.Protect("export", runtimeid.High)(
//		runtimeid.UsageRecording(agents)(exportHandler))
func UsageRecording(rec UsageRecorder) func(http.Handler) http.Handler {
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			ctx := WithUsageRecorder(r.Context(), rec)
			next.ServeHTTP(w, r.WithContext(ctx))
		})
	}
}

// ReportUsage tells the recorder in ctx how much the current action
// returned. It reports false, and does nothing, when ctx carries no
// recorder (see [WithUsageRecorder]) or no allowed evaluation (see
// [FromContext]). Negative values count as zero. Call it once per
// action, or once per chunk for a streamed answer: the counts add up.
func ReportUsage(ctx context.Context, u Usage) bool {
	rec, _ := ctx.Value(usageKey{}).(UsageRecorder)
	ev := FromContext(ctx)
	if rec == nil || ev == nil || ev.Decision.Outcome != Allow {
		return false
	}
	u.Records = max(u.Records, 0)
	u.Bytes = max(u.Bytes, 0)
	rec.RecordUsage(ctx, ev, u)
	return true
}

// ActorChain returns the RFC 8693 actor chain, the current actor
// first and the earliest last; nil when no one acts for the subject.
// Only the first is acting now: the others are history and grant
// nothing (RFC 8693 section 4.1).
func (id *Identity) ActorChain() []*Actor {
	if id == nil {
		return nil
	}
	var chain []*Actor
	for a := id.Actor; a != nil; a = a.Actor {
		chain = append(chain, a)
	}
	return chain
}

// ActingSubject returns who is performing the action: the current
// actor's subject when someone acts for the subject, else the
// subject. An actor without a sub is named by its client_id.
func (id *Identity) ActingSubject() string {
	switch {
	case id == nil:
		return ""
	case id.Actor == nil:
		return id.Subject
	case id.Actor.Subject != "":
		return id.Actor.Subject
	}
	return id.Actor.ClientID
}
