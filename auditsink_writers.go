package runtimeid

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"math"
	"os"
	"slices"
	"strconv"
	"time"
	"unicode/utf8"
)

// SlogAuditWriter writes audit records to a [slog.Handler]: the same
// event, message and attributes as [Config.Logger] gets when no queue
// is set. Build one with [NewSlogAuditWriter].
type SlogAuditWriter struct {
	h     slog.Handler
	attrs []slog.Attr
}

var _ AuditWriter = (*SlogAuditWriter)(nil)

// NewSlogAuditWriter returns a writer that hands each record to h. The
// record's time is the end of the evaluation by [Config.Now], not when
// the writer gets to it.
func NewSlogAuditWriter(h slog.Handler) *SlogAuditWriter {
	return &SlogAuditWriter{h: h}
}

// Enabled reports whether h takes records of the level; the queue asks
// before it captures one.
func (w *SlogAuditWriter) Enabled(ctx context.Context, l slog.Level) bool {
	return w.h.Enabled(ctx, l)
}

// WriteAudit implements [AuditWriter].
func (w *SlogAuditWriter) WriteAudit(r *AuditRecord) error {
	w.attrs = r.appendAttrs(w.attrs[:0])
	rec := slog.NewRecord(r.Time, r.Level, AuditMessage, 0)
	rec.AddAttrs(w.attrs...)
	clear(w.attrs)
	return w.h.Handle(context.Background(), rec)
}

// Flush implements [AuditWriter]; a handler has nothing to flush.
func (w *SlogAuditWriter) Flush() error { return nil }

// appendAttrs appends the attributes [Engine] logs for an evaluation
// (see appendAudit). The lists are cloned, since a handler may keep
// what it is given and r goes back to its pool.
func (r *AuditRecord) appendAttrs(attrs []slog.Attr) []slog.Attr {
	findings := noFindings
	if len(r.Findings) > 0 {
		findings = slog.Any("findings", slices.Clone(r.Findings))
	}
	attrs = append(attrs,
		slog.String("outcome", r.Outcome.String()),
		slog.String("rule", r.Rule),
		slog.String("reason", r.Reason),
		slog.Float64("score", r.Score),
		slog.String("risk_level", r.RiskLevel.String()),
		findings,
		slog.String("action", r.Action),
		slog.String("sensitivity", r.Sensitivity.String()),
	)
	if r.HasIdentity {
		attrs = append(attrs, slog.String("sub", r.Subject),
			slog.String("sid", r.SessionID))
		if r.ClientID != "" {
			attrs = append(attrs, slog.String("client_id", r.ClientID))
		}
	}
	if r.HasActor {
		attrs = append(attrs, slog.String("act", r.Actor))
		if len(r.ActorChain) > 0 {
			attrs = append(attrs,
				slog.Any("act_chain", slices.Clone(r.ActorChain)))
		}
	}
	if r.ClientIP.IsValid() {
		attrs = append(attrs, slog.String("client_ip", r.ClientIP.String()))
	}
	if r.Country != "" {
		attrs = append(attrs, slog.String("country", r.Country))
	}
	return r.appendOutcomeAttrs(attrs)
}

func (r *AuditRecord) appendOutcomeAttrs(attrs []slog.Attr) []slog.Attr {
	if r.HasStepUp {
		attrs = append(attrs,
			slog.Any("acr_values", slices.Clone(r.ACRValues)),
			slog.Duration("max_age", r.MaxAge))
	}
	if r.SteppedUp {
		attrs = append(attrs, slog.Bool("stepped_up", true))
	}
	if r.FailedOpen {
		attrs = append(attrs, slog.Bool("failed_open", true))
	}
	if r.Recheck {
		attrs = append(attrs, slog.Bool("recheck", true))
	}
	if r.Nested {
		attrs = append(attrs, slog.Bool("nested", true))
	}
	for _, m := range r.ReportOnly {
		attrs = append(attrs, slog.Group("report_only",
			slog.String("rule", m.Rule),
			slog.String("outcome", m.Outcome.String())))
	}
	if r.Error != "" {
		attrs = append(attrs, slog.String("error", r.Error))
	}
	return append(attrs, slog.Duration("elapsed", r.Elapsed))
}

// DefaultJSONLinesBuffer is how many bytes a [JSONLinesSink] gathers
// before it writes them, when [JSONLinesOptions.BufferSize] is zero.
const DefaultJSONLinesBuffer = 64 << 10

// JSONLinesOptions configures a [JSONLinesSink]. The zero value
// buffers [DefaultJSONLinesBuffer] bytes and does not fsync.
type JSONLinesOptions struct {
	// BufferSize is how many bytes are gathered before they are
	// written to the underlying writer. Records still wait for a
	// Flush to count as written. Zero means [DefaultJSONLinesBuffer].
	BufferSize int

	// Sync calls the writer's Sync method (an [*os.File] has one) on
	// every Flush, so that a flushed record survives a crash of the
	// machine, not only of the process. It costs a disk round trip
	// per flush: see [AuditQueueOptions.FlushEvery] and Interval.
	Sync bool
}

// JSONLinesSink writes audit records as JSON lines: one object per
// line with the keys time (RFC 3339, nanoseconds), level, msg and the
// attributes [SlogAuditWriter] writes, in that order. It encodes them
// itself, several times faster than [slog.JSONHandler]. Two shapes
// differ from slog's: report_only is one array of objects instead of a
// repeated key, and a duration is in nanoseconds as slog writes it.
//
// It is an [AuditWriter]: an [AuditQueue] calls it from one goroutine.
// It is not safe for concurrent use on its own.
type JSONLinesSink struct {
	w     io.Writer
	sync  bool
	owned io.Closer // the file OpenJSONLinesFile opened
	limit int

	buf   []byte // encoded records not yet written to w
	err   error  // a write error that lost records in buf
	dirty bool   // written to w since the last sync
}

var _ AuditWriter = (*JSONLinesSink)(nil)

// syncer is a writer that can make its writes durable.
type syncer interface{ Sync() error }

// NewJSONLinesSink returns a sink that writes to w. The caller keeps
// w: closing the sink flushes it but does not close w.
func NewJSONLinesSink(w io.Writer, opts JSONLinesOptions) *JSONLinesSink {
	limit := opts.BufferSize
	if limit <= 0 {
		limit = DefaultJSONLinesBuffer
	}
	return &JSONLinesSink{w: w, sync: opts.Sync, limit: limit,
		buf: make([]byte, 0, limit)}
}

// OpenJSONLinesFile opens (or creates, mode 0600) the file at path for
// appending and returns a sink that writes to it and closes it on
// Close. The error wraps the [os.OpenFile] error.
func OpenJSONLinesFile(path string, opts JSONLinesOptions) (*JSONLinesSink, error) {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("runtimeid: audit file: %w", err)
	}
	s := NewJSONLinesSink(f, opts)
	s.owned = f
	return s, nil
}

// WriteAudit implements [AuditWriter]: it encodes r into the buffer,
// and writes the buffer out when it is full.
func (s *JSONLinesSink) WriteAudit(r *AuditRecord) error {
	s.buf = appendJSONRecord(s.buf, r)
	if len(s.buf) < s.limit {
		return nil
	}
	return s.writeOut()
}

// writeOut writes the buffer to w. A failed write loses what it held,
// and the next Flush reports it, so that those records count as failed.
func (s *JSONLinesSink) writeOut() error {
	if len(s.buf) == 0 {
		return nil
	}
	_, err := s.w.Write(s.buf)
	s.buf = s.buf[:0]
	s.dirty = true
	if err != nil && s.err == nil {
		s.err = fmt.Errorf("runtimeid: audit write: %w", err)
	}
	return nil
}

// Flush implements [AuditWriter]: it writes what is buffered and, with
// [JSONLinesOptions.Sync], syncs the writer. It returns the first
// error since the last Flush, and the queue then counts every record
// since the last Flush as failed: some of them may have reached the
// writer before the failure, so the count errs on the side of loss.
func (s *JSONLinesSink) Flush() error {
	_ = s.writeOut()
	err := s.err
	s.err = nil
	if err != nil {
		return err
	}
	if sy, ok := s.w.(syncer); ok && s.sync && s.dirty {
		s.dirty = false
		if err := sy.Sync(); err != nil {
			return fmt.Errorf("runtimeid: audit sync: %w", err)
		}
	}
	return nil
}

// Close flushes the sink and closes the file when the sink opened it.
func (s *JSONLinesSink) Close() error {
	err := s.Flush()
	if s.owned != nil {
		if cerr := s.owned.Close(); cerr != nil && err == nil {
			err = fmt.Errorf("runtimeid: audit file: %w", cerr)
		}
		s.owned = nil
	}
	return err
}

// appendJSONRecord appends r as one JSON line.
func appendJSONRecord(b []byte, r *AuditRecord) []byte {
	b = append(b, `{"time":"`...)
	b = r.Time.AppendFormat(b, time.RFC3339Nano)
	b = append(b, `","level":"`...)
	b = append(b, r.Level.String()...)
	b = append(b, `","msg":"`+AuditMessage+`"`...)
	b = jsonField(b, "outcome", r.Outcome.String())
	b = jsonField(b, "rule", r.Rule)
	b = jsonField(b, "reason", r.Reason)
	b = append(b, `,"score":`...)
	b = appendJSONFloat(b, r.Score)
	b = jsonField(b, "risk_level", r.RiskLevel.String())
	b = jsonList(b, "findings", r.Findings)
	b = jsonField(b, "action", r.Action)
	b = jsonField(b, "sensitivity", r.Sensitivity.String())
	b = r.appendJSONWho(b)
	b = r.appendJSONOutcome(b)
	b = append(b, `,"elapsed":`...)
	b = strconv.AppendInt(b, int64(r.Elapsed), 10)
	return append(b, "}\n"...)
}

func (r *AuditRecord) appendJSONWho(b []byte) []byte {
	if r.HasIdentity {
		b = jsonField(b, "sub", r.Subject)
		b = jsonField(b, "sid", r.SessionID)
		if r.ClientID != "" {
			b = jsonField(b, "client_id", r.ClientID)
		}
	}
	if r.HasActor {
		b = jsonField(b, "act", r.Actor)
		if len(r.ActorChain) > 0 {
			b = jsonList(b, "act_chain", r.ActorChain)
		}
	}
	if r.ClientIP.IsValid() {
		b = append(b, `,"client_ip":"`...)
		b = r.ClientIP.AppendTo(b)
		b = append(b, '"')
	}
	if r.Country != "" {
		b = jsonField(b, "country", r.Country)
	}
	return b
}

func (r *AuditRecord) appendJSONOutcome(b []byte) []byte {
	if r.HasStepUp {
		b = jsonList(b, "acr_values", r.ACRValues)
		b = append(b, `,"max_age":`...)
		b = strconv.AppendInt(b, int64(r.MaxAge), 10)
	}
	if r.SteppedUp {
		b = append(b, `,"stepped_up":true`...)
	}
	if r.FailedOpen {
		b = append(b, `,"failed_open":true`...)
	}
	if r.Recheck {
		b = append(b, `,"recheck":true`...)
	}
	if r.Nested {
		b = append(b, `,"nested":true`...)
	}
	if len(r.ReportOnly) > 0 {
		b = append(b, `,"report_only":[`...)
		for i, m := range r.ReportOnly {
			if i > 0 {
				b = append(b, ',')
			}
			b = append(b, `{"rule":`...)
			b = appendJSONString(b, m.Rule)
			b = append(b, `,"outcome":`...)
			b = appendJSONString(b, m.Outcome.String())
			b = append(b, '}')
		}
		b = append(b, ']')
	}
	if r.Error != "" {
		b = jsonField(b, "error", r.Error)
	}
	return b
}

// jsonField appends ,"key":"value". Keys are constants that need no
// escaping.
func jsonField(b []byte, key, value string) []byte {
	b = append(b, `,"`...)
	b = append(b, key...)
	b = append(b, `":`...)
	return appendJSONString(b, value)
}

func jsonList(b []byte, key string, values []string) []byte {
	b = append(b, `,"`...)
	b = append(b, key...)
	b = append(b, `":[`...)
	for i, v := range values {
		if i > 0 {
			b = append(b, ',')
		}
		b = appendJSONString(b, v)
	}
	return append(b, ']')
}

// appendJSONFloat appends f as a JSON number, or null for NaN and the
// infinities, which JSON cannot hold.
func appendJSONFloat(b []byte, f float64) []byte {
	if math.IsNaN(f) || math.IsInf(f, 0) {
		return append(b, "null"...)
	}
	return strconv.AppendFloat(b, f, 'f', -1, 64)
}

const hexDigits = "0123456789abcdef"

// appendJSONString appends s as a quoted JSON string. The values are
// untrusted (a subject, an action name, an error message), so every
// control character is escaped, invalid UTF-8 becomes U+FFFD, and
// U+2028 and U+2029 are escaped for JavaScript readers.
func appendJSONString(b []byte, s string) []byte {
	b = append(b, '"')
	start := 0
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			if c >= 0x20 && c != '"' && c != '\\' {
				i++
				continue
			}
			b = append(b, s[start:i]...)
			b = appendJSONEscape(b, c)
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			b = append(b, s[start:i]...)
			b = append(b, `\ufffd`...)
			i += size
			start = i
			continue
		}
		if r == '\u2028' || r == '\u2029' {
			b = append(b, s[start:i]...)
			b = append(b, `\u202`...)
			b = append(b, hexDigits[r&0xF])
			i += size
			start = i
			continue
		}
		i += size
	}
	b = append(b, s[start:]...)
	return append(b, '"')
}

// appendJSONEscape appends the escape of an ASCII byte.
func appendJSONEscape(b []byte, c byte) []byte {
	switch c {
	case '"', '\\':
		return append(b, '\\', c)
	case '\n':
		return append(b, '\\', 'n')
	case '\r':
		return append(b, '\\', 'r')
	case '\t':
		return append(b, '\\', 't')
	}
	return append(b, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xF])
}
