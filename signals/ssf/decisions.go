package ssf

import (
	"context"
	"errors"
	"log/slog"
	"slices"
	"strings"
	"time"

	"github.com/runtimeid/runtimeid"
)

// OnDecision reports what the engine saw to the identity provider:
//
//   - a decision that blocked a verified identity, for one of
//     [TransmitterOptions.BlockReasons] (any, when nil), becomes a
//     session-revoked event for its session (or its subject, without a
//     sid), with the decision's reason as reason_admin;
//   - an assessment at the high level becomes a risk-level-change to
//     HIGH for the subject, with the finding codes as risk_reason.
//
// Evaluations that failed (ev.Err set, such as a revoked token) are
// not reported, nor is a high risk that an ssf_risk_level finding
// raised: the identity provider would hear its own words back. Each
// session or subject is reported at most once per ReportInterval.
// OnDecision only queues; it never blocks. Wire it as the engine's
// hook, runtimeid.Config{OnDecision: t.OnDecision}, or wrap the audit
// logger with [AuditHandler].
func (t *Transmitter) OnDecision(ctx context.Context, ev *runtimeid.Evaluation) {
	if ev == nil || ev.Identity == nil || ev.Err != nil {
		return
	}
	id := ev.Identity
	if id.Issuer == "" {
		cp := *id
		cp.Issuer = t.opts.TokenIssuer
		id = &cp
	}
	at := ev.Time
	if at.IsZero() {
		at = t.opts.Now()
	}

	d := &ev.Decision
	if d.Outcome == runtimeid.Block && t.reportsBlock(d.Reason) &&
		t.firstReport("revoked", id, at) {
		_ = t.Emit(ctx, SessionRevokedEvent(SubjectOf(id), at, d.Reason))
	}

	a := &ev.Assessment
	if a.Level == runtimeid.LevelHigh && !a.Has(FindingRiskLevel) &&
		t.firstReport("risk", id, at) {
		sub := IssSub(id.Issuer, id.Subject)
		reason := strings.Join(a.Codes(), ",")
		_ = t.Emit(ctx, RiskLevelChangeEvent(sub, "USER", "high", "", at, reason))
	}
}

func (t *Transmitter) reportsBlock(reason string) bool {
	return t.opts.BlockReasons == nil || slices.Contains(t.opts.BlockReasons, reason)
}

// firstReport reports whether kind was not reported for the identity's
// session (or subject) within ReportInterval, and records it.
func (t *Transmitter) firstReport(kind string, id *runtimeid.Identity, at time.Time) bool {
	key := kind + "\x00" + id.Issuer + "\x00" + id.Subject + "\x00" + id.SessionID
	t.mu.Lock()
	defer t.mu.Unlock()
	if last, ok := t.recent.Peek(key); ok && at.Sub(last) < t.opts.ReportInterval {
		return false
	}
	t.recent.Add(key, at)
	return true
}

// AuditHandler wraps the engine's audit logger so that each decision
// it logs also reaches [Transmitter.OnDecision]: give the result to
// [runtimeid.Config.Logger]. It rebuilds the decision from the record's
// attributes (outcome, reason, risk_level, findings, sub, sid, error),
// takes the issuer from [TransmitterOptions.TokenIssuer], and passes
// every record on to next unchanged.
//
// It reads records logged at Warn and above, whatever next's level,
// since those are the blocks and high risks; attributes added with
// WithGroup are not read.
func AuditHandler(next slog.Handler, t *Transmitter) slog.Handler {
	return &auditHandler{next: next, t: t}
}

type auditHandler struct {
	next slog.Handler
	t    *Transmitter
}

func (h *auditHandler) Enabled(ctx context.Context, l slog.Level) bool {
	return l >= slog.LevelWarn || h.next.Enabled(ctx, l)
}

func (h *auditHandler) Handle(ctx context.Context, r slog.Record) error {
	if r.Message == runtimeid.AuditMessage && r.Level >= slog.LevelWarn {
		h.t.OnDecision(ctx, fromRecord(&r))
	}
	if !h.next.Enabled(ctx, r.Level) {
		return nil
	}
	return h.next.Handle(ctx, r)
}

func (h *auditHandler) WithAttrs(attrs []slog.Attr) slog.Handler {
	return &auditHandler{next: h.next.WithAttrs(attrs), t: h.t}
}

func (h *auditHandler) WithGroup(name string) slog.Handler {
	return &auditHandler{next: h.next.WithGroup(name), t: h.t}
}

// fromRecord rebuilds the part of an evaluation OnDecision reads.
func fromRecord(r *slog.Record) *runtimeid.Evaluation {
	ev := &runtimeid.Evaluation{Time: r.Time, Identity: &runtimeid.Identity{}}
	r.Attrs(func(a slog.Attr) bool {
		v := a.Value.Resolve()
		switch a.Key {
		case "outcome":
			ev.Decision.Outcome, _ = runtimeid.ParseOutcome(v.String())
		case "reason":
			ev.Decision.Reason = v.String()
		case "risk_level":
			if v.String() == runtimeid.LevelHigh.String() {
				ev.Assessment.Level = runtimeid.LevelHigh
			}
		case "findings":
			if codes, ok := v.Any().([]string); ok {
				for _, c := range codes {
					ev.Assessment.Findings = append(ev.Assessment.Findings,
						runtimeid.Finding{Code: c})
				}
			}
		case "sub":
			ev.Identity.Subject = v.String()
		case "sid":
			ev.Identity.SessionID = v.String()
		case "error":
			ev.Err = errRecorded
		}
		return true
	})
	if ev.Identity.Subject == "" {
		ev.Identity = nil
	}
	return ev
}

// errRecorded stands for the error an audit record names.
var errRecorded = errors.New("ssf: evaluation failed")
