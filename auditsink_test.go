package runtimeid

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// blockingWriter is an [AuditWriter] that stops in WriteAudit until
// release is closed, and says on entered each time it is called.
type blockingWriter struct {
	entered chan struct{}
	release chan struct{}
	mu      sync.Mutex
	actions []string
}

func newBlockingWriter() *blockingWriter {
	return &blockingWriter{entered: make(chan struct{}, 100),
		release: make(chan struct{})}
}

func (w *blockingWriter) WriteAudit(r *AuditRecord) error {
	w.entered <- struct{}{}
	<-w.release
	w.mu.Lock()
	w.actions = append(w.actions, r.Action)
	w.mu.Unlock()
	return nil
}

func (w *blockingWriter) Flush() error { return nil }

// syncBuffer is a bytes.Buffer safe for the writer goroutine and the
// test to use, with a count of Sync calls.
type syncBuffer struct {
	mu    sync.Mutex
	buf   bytes.Buffer
	syncs int
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) Sync() error {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.syncs++
	return nil
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// queueEngine is an engine whose audit events go to a queue built
// from opts.
func queueEngine(t *testing.T, opts AuditQueueOptions) (*Engine, *AuditQueue) {
	t.Helper()
	q, err := NewAuditQueue(opts)
	require.NoError(t, err)
	t.Cleanup(func() { q.Close() })
	e, err := New(Config{
		Token:  TokenConfig{InsecureSkipAuthentication: true},
		Policy: policyFunc(allow),
		Audit:  q,
		Now:    func() time.Time { return t0 },
	})
	require.NoError(t, err)
	return e, q
}

func evalAction(t testing.TB, e *Engine, name string) {
	_, err := e.Evaluate(context.Background(), Input{
		Identity: alice(), Action: Action{Name: name},
	})
	require.NoError(t, err)
}

func TestAuditQueueWritesEveryRecordOnce(t *testing.T) {
	out := &syncBuffer{}
	sink := NewJSONLinesSink(out, JSONLinesOptions{BufferSize: 512})
	// A small queue, so that requests also block and nudge.
	e, q := queueEngine(t, AuditQueueOptions{Writer: sink, Size: 8,
		FlushEvery: 7})

	const workers, each = 8, 300
	var wg sync.WaitGroup
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range each {
				evalAction(t, e, fmt.Sprintf("a-%d-%d", w, i))
			}
		}()
	}
	wg.Wait()
	require.NoError(t, q.Close())

	seen := map[string]int{}
	sc := bufio.NewScanner(strings.NewReader(out.String()))
	for sc.Scan() {
		var m map[string]any
		require.NoError(t, json.Unmarshal(sc.Bytes(), &m), sc.Text())
		seen[m["action"].(string)]++
	}
	require.Len(t, seen, workers*each)
	for name, n := range seen {
		require.Equal(t, 1, n, name)
	}
	s := q.Stats()
	assert.Equal(t, uint64(workers*each), s.Written)
	assert.Zero(t, s.Dropped)
	assert.Zero(t, s.Failed)
}

// reportLog is a logger for the queue's reports and what it wrote.
func reportLog() (*slog.Logger, *syncBuffer) {
	buf := &syncBuffer{}
	h := slog.NewJSONHandler(buf, &slog.HandlerOptions{
		ReplaceAttr: func(_ []string, a slog.Attr) slog.Attr {
			if a.Key == slog.TimeKey {
				return slog.Attr{}
			}
			return a
		},
	})
	return slog.New(h), buf
}

func TestAuditQueueDropCountsExactly(t *testing.T) {
	w := newBlockingWriter()
	log, logs := reportLog()
	var now atomic.Int64
	now.Store(t0.UnixNano())
	e, q := queueEngine(t, AuditQueueOptions{
		Writer: w, Size: 1, Overflow: AuditDrop,
		Tick: make(chan time.Time), Logger: log,
		ReportInterval: time.Minute,
		Now:            func() time.Time { return time.Unix(0, now.Load()) },
	})

	// The first record is taken by the writer, which then stops; the
	// second fills the queue; the next ten are dropped.
	evalAction(t, e, "first")
	<-w.entered
	evalAction(t, e, "second")
	for i := range 10 {
		evalAction(t, e, fmt.Sprintf("dropped-%d", i))
	}
	assert.Equal(t, AuditStats{Dropped: 10}, q.Stats())
	assert.Equal(t, 1, strings.Count(logs.String(), "audit records dropped"))
	assert.Contains(t, logs.String(), `"dropped_total":1,`)

	// A minute later the next drop is reported again.
	now.Add(int64(time.Minute))
	evalAction(t, e, "dropped-late")
	assert.Equal(t, 2, strings.Count(logs.String(), "audit records dropped"))
	assert.Contains(t, logs.String(), `"dropped_total":11,`)

	close(w.release)
	require.NoError(t, q.Close())
	assert.Equal(t, AuditStats{Written: 2, Dropped: 11}, q.Stats())
	assert.Equal(t, []string{"first", "second"}, w.actions)
	assert.Contains(t, logs.String(), "closed with records lost")
}

func TestAuditQueueBlocksThenProceeds(t *testing.T) {
	w := newBlockingWriter()
	e, q := queueEngine(t, AuditQueueOptions{
		Writer: w, Size: 1, Tick: make(chan time.Time),
	})
	evalAction(t, e, "first")
	<-w.entered
	evalAction(t, e, "second")

	done := make(chan struct{})
	go func() {
		defer close(done)
		evalAction(t, e, "third")
	}()
	require.Eventually(t, func() bool { return q.Stats().Blocked == 1 },
		10*time.Second, time.Millisecond)
	select {
	case <-done:
		t.Fatal("the third request did not wait for room")
	default:
	}

	close(w.release)
	<-done
	require.NoError(t, q.Close())
	assert.Equal(t, AuditStats{Written: 3, Blocked: 1}, q.Stats())
	assert.Equal(t, []string{"first", "second", "third"}, w.actions)
}

func TestAuditQueueCloseDrains(t *testing.T) {
	out := &syncBuffer{}
	log, logs := reportLog()
	e, q := queueEngine(t, AuditQueueOptions{
		Writer: NewJSONLinesSink(out, JSONLinesOptions{Sync: true}),
		Size:   100, Tick: make(chan time.Time), Logger: log,
	})
	// Below half full nothing wakes the writer: all of them wait.
	for i := range 40 {
		evalAction(t, e, fmt.Sprintf("a%d", i))
	}
	assert.Zero(t, q.Stats().Written)
	assert.Empty(t, out.String())

	require.NoError(t, q.Close())
	assert.Equal(t, AuditStats{Written: 40}, q.Stats())
	assert.Equal(t, 40, strings.Count(out.String(), "\n"))
	assert.Equal(t, 1, out.syncs)

	// After Close a record is dropped, counted and reported.
	evalAction(t, e, "late")
	assert.Equal(t, AuditStats{Written: 40, Dropped: 1}, q.Stats())
	assert.Contains(t, logs.String(), "audit queue closed")
	require.NoError(t, q.Close())
}

// failingWriter fails WriteAudit for the actions in bad, and every
// Flush when flushErr is set.
type failingWriter struct {
	bad      map[string]bool
	flushErr error
	closed   bool
}

func (w *failingWriter) WriteAudit(r *AuditRecord) error {
	if w.bad[r.Action] {
		return errors.New("disk full")
	}
	return nil
}

func (w *failingWriter) Flush() error { return w.flushErr }
func (w *failingWriter) Close() error { w.closed = true; return nil }

// panicWriter is an [AuditWriter] with a bug.
type panicWriter struct{}

func (panicWriter) WriteAudit(*AuditRecord) error { panic("disk full") }
func (panicWriter) Flush() error                  { return nil }

// errWriter is an io.Writer that always fails.
type errWriter struct{}

func (errWriter) Write([]byte) (int, error) { return 0, errors.New("disk full") }

func TestAuditQueueWriterErrors(t *testing.T) {
	tests := []struct {
		name   string
		writer AuditWriter
		stats  AuditStats
	}{
		{"write fails", &failingWriter{bad: map[string]bool{"a1": true, "a3": true}},
			AuditStats{Written: 3, Failed: 2}},
		{"flush fails", &failingWriter{flushErr: errors.New("disk full")},
			AuditStats{Failed: 5}},
		{"file fails", NewJSONLinesSink(errWriter{}, JSONLinesOptions{}),
			AuditStats{Failed: 5}},
		{"writer panics", panicWriter{}, AuditStats{Failed: 5}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			log, logs := reportLog()
			e, q := queueEngine(t, AuditQueueOptions{Writer: tt.writer,
				Tick: make(chan time.Time), Logger: log})
			for i := range 5 {
				evalAction(t, e, fmt.Sprintf("a%d", i))
			}
			require.NoError(t, q.Close())
			assert.Equal(t, tt.stats, q.Stats())
			assert.Contains(t, logs.String(), "audit records not written")
			assert.Contains(t, logs.String(), "disk full")
			assert.Contains(t, logs.String(), "closed with records lost")
			if fw, ok := tt.writer.(*failingWriter); ok {
				assert.True(t, fw.closed)
			}
		})
	}
}

func TestNewAuditQueueRejectsBadOptions(t *testing.T) {
	w := &failingWriter{}
	tests := []struct {
		name  string
		opts  AuditQueueOptions
		field string
	}{
		{"no writer", AuditQueueOptions{}, "Audit.Writer"},
		{"negative size", AuditQueueOptions{Writer: w, Size: -1}, "Audit"},
		{"negative interval", AuditQueueOptions{Writer: w, Interval: -1}, "Audit"},
		{"flush too large", AuditQueueOptions{Writer: w,
			FlushEvery: MaxAuditFlushEvery + 1}, "Audit.FlushEvery"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := NewAuditQueue(tt.opts)
			var ce *ConfigError
			require.ErrorAs(t, err, &ce)
			assert.Equal(t, tt.field, ce.Field)
			assert.ErrorIs(t, err, ErrConfig)
		})
	}
}

// auditCases are evaluations that exercise every optional attribute.
func auditCases() map[string]Input {
	agent := alice()
	agent.ClientID = "web"
	agent.Actor = &Actor{Subject: "agent-7", Actor: &Actor{Subject: "planner"}}
	return map[string]Input{
		"allow": {Identity: alice(), Action: Action{Name: "orders.list"},
			ClientIP: netip.MustParseAddr("2.125.160.216")},
		"agent": {Identity: agent, Action: Action{Name: "x\"\n\u2028é"}},
		"anonymous": {Action: Action{Name: "public",
			Sensitivity: High}},
	}
}

// decisions are the policies of the comparison: each sets other parts
// of the decision.
var decisions = map[string]policyFunc{
	"allow": allow,
	"challenge": func(*Evaluation) (Decision, error) {
		return Decision{Outcome: Challenge, Rule: "r1", Reason: "new_country",
			StepUp:     &StepUp{ACRValues: []string{"mfa"}, MaxAge: time.Minute},
			ReportOnly: []RuleMatch{{Rule: "r2", Outcome: Block}}}, nil
	},
	"error": func(*Evaluation) (Decision, error) {
		return Decision{}, errors.New("bad\x00policy")
	},
}

// auditJSON evaluates in with pol and returns the one event, as the
// Logger writes it and as each queue writer does.
func auditJSON(t *testing.T, pol policyFunc, in Input) (want, slogQ, lines map[string]any) {
	t.Helper()
	var logged bytes.Buffer
	risk := evaluatorFunc(func(*Evaluation) ([]Finding, error) {
		return []Finding{{Code: "new_device", Weight: 0.2}}, nil
	})
	base := Config{Token: TokenConfig{InsecureSkipAuthentication: true},
		Policy: pol, Now: func() time.Time { return t0 },
		Evaluators: []RiskEvaluator{risk}}

	cfg := base
	cfg.Logger = slog.New(slog.NewJSONHandler(&logged, nil))
	e, err := New(cfg)
	require.NoError(t, err)
	_, _ = e.Evaluate(context.Background(), in)

	run := func(w AuditWriter) {
		q, err := NewAuditQueue(AuditQueueOptions{Writer: w})
		require.NoError(t, err)
		cfg := base
		cfg.Audit = q
		e, err := New(cfg)
		require.NoError(t, err)
		_, _ = e.Evaluate(context.Background(), in)
		require.NoError(t, q.Close())
	}
	var viaSlog, viaLines bytes.Buffer
	run(NewSlogAuditWriter(slog.NewJSONHandler(&viaSlog, nil)))
	run(NewJSONLinesSink(&viaLines, JSONLinesOptions{}))
	return decode(t, &logged), decode(t, &viaSlog), decode(t, &viaLines)
}

func decode(t *testing.T, b *bytes.Buffer) map[string]any {
	t.Helper()
	require.Equal(t, 1, strings.Count(b.String(), "\n"), b.String())
	var m map[string]any
	require.NoError(t, json.Unmarshal(b.Bytes(), &m), b.String())
	delete(m, "time")
	return m
}

func TestAuditWritersMatchLogger(t *testing.T) {
	for pname, pol := range decisions {
		for iname, in := range auditCases() {
			t.Run(pname+"/"+iname, func(t *testing.T) {
				want, viaSlog, viaLines := auditJSON(t, pol, in)
				assert.Equal(t, want, viaSlog)

				// JSON lines write report_only as one array.
				if ro, ok := want["report_only"]; ok {
					want["report_only"] = []any{ro}
				}
				assert.Equal(t, want, viaLines)
			})
		}
	}
}

func TestAuditRecordHoldsNoToken(t *testing.T) {
	src, err := StaticKeys(keys(t).set)
	require.NoError(t, err)
	out := &syncBuffer{}
	q, err := NewAuditQueue(AuditQueueOptions{
		Writer: NewJSONLinesSink(out, JSONLinesOptions{})})
	require.NoError(t, err)
	e, err := New(Config{
		Token: TokenConfig{Issuer: testIssuer,
			Audience: []string{testAudience}, Keys: src},
		Policy: policyFunc(allow), Audit: q,
		Now: func() time.Time { return testNow },
	})
	require.NoError(t, err)

	good := es256(t, with(baseClaims(), "sid", "s1"))
	expired := es256(t, with(baseClaims(),
		"exp", testNow.Add(-time.Hour).Unix()))
	for _, tok := range []string{good, expired, tamperSig(good)} {
		_, _ = e.Evaluate(context.Background(),
			Input{Token: tok, Action: Action{Name: "a"}})
	}
	require.NoError(t, q.Close())
	require.Equal(t, AuditStats{Written: 3}, q.Stats())

	text := out.String()
	assert.Contains(t, text, `"sub":"alice"`)
	assert.Contains(t, text, CodeTokenExpired)
	for _, tok := range []string{good, expired} {
		for _, part := range strings.Split(tok, ".") {
			assert.NotContains(t, text, part)
		}
	}
}

func TestOpenJSONLinesFile(t *testing.T) {
	path := t.TempDir() + "/audit.jsonl"
	sink, err := OpenJSONLinesFile(path, JSONLinesOptions{Sync: true})
	require.NoError(t, err)
	e, q := queueEngine(t, AuditQueueOptions{Writer: sink})
	evalAction(t, e, "a1")
	evalAction(t, e, "a2")
	require.NoError(t, q.Close())

	_, err = OpenJSONLinesFile(t.TempDir()+"/missing/x", JSONLinesOptions{})
	require.Error(t, err)

	// Reopened, the file is appended to.
	sink, err = OpenJSONLinesFile(path, JSONLinesOptions{})
	require.NoError(t, err)
	e, q = queueEngine(t, AuditQueueOptions{Writer: sink})
	evalAction(t, e, "a3")
	require.NoError(t, q.Close())
	data := readFile(t, path)
	assert.Equal(t, 3, strings.Count(data, "\n"))
	assert.Contains(t, data, `"action":"a3"`)
}

func FuzzAppendJSONString(f *testing.F) {
	for _, s := range []string{"", "alice", "a\"b\\c", "\x00\x1f\x7f",
		"\u2028\u2029", "é€😀", "\xff\xfe", "bad\xe2\x82"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		b := appendJSONString(nil, s)
		var got string
		require.NoError(t, json.Unmarshal(b, &got), "%q", b)
		// Every invalid byte becomes one U+FFFD, as a []rune does.
		require.Equal(t, string([]rune(s)), got)
	})
}

// BenchmarkAuditSubmit is what the request pays with a queue: the
// capture of the record and the send. The writer drops every record.
func BenchmarkAuditSubmit(b *testing.B) {
	q, err := NewAuditQueue(AuditQueueOptions{Writer: &failingWriter{}})
	require.NoError(b, err)
	defer q.Close()
	ev := benchEvaluation()
	b.ReportAllocs()
	for b.Loop() {
		q.submit(context.Background(), ev, slog.LevelInfo)
	}
}

// BenchmarkAuditEncode compares the two writers' encoding of one
// record: slog's JSON handler and the JSON lines sink.
func BenchmarkAuditEncode(b *testing.B) {
	r := new(AuditRecord)
	r.capture(benchEvaluation(), slog.LevelInfo)
	writers := map[string]AuditWriter{
		"slogJSON":  NewSlogAuditWriter(slog.NewJSONHandler(discardW{}, nil)),
		"jsonLines": NewJSONLinesSink(discardW{}, JSONLinesOptions{}),
	}
	for name, w := range writers {
		b.Run(name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				_ = w.WriteAudit(r)
				_ = w.Flush()
			}
		})
	}
}

type discardW struct{}

func (discardW) Write(p []byte) (int, error) { return len(p), nil }

func benchEvaluation() *Evaluation {
	id := alice()
	id.ClientID = "web"
	ev := &Evaluation{Time: t0, Identity: id,
		Action:   Action{Name: "orders.list", Sensitivity: Low},
		Decision: Decision{Outcome: Allow, Rule: "default", Reason: "default"},
		Duration: 5 * time.Microsecond}
	ev.Signals.ClientIP = netip.MustParseAddr("2.125.160.216")
	ev.Signals.Network.Country = "GB"
	return ev
}

func readFile(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	require.NoError(t, err)
	return string(b)
}
