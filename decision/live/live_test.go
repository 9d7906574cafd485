package live

import (
	"context"
	"encoding/json"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/runtimeid/runtimeid"
	"github.com/runtimeid/runtimeid/policy"
)

var t0 = time.Date(2025, 3, 1, 10, 0, 0, 0, time.UTC)

func TestSnapshot(t *testing.T) {
	now := t0.Add(2 * time.Minute)
	v := New(Options{Recent: 2, Buckets: 3, Now: func() time.Time { return now }})
	v.Add(Entry{Time: t0.Add(-time.Hour), Outcome: "allow", Rule: "default", Score: 0})
	v.Add(Entry{Time: t0, Outcome: "allow", Rule: "default", Score: 0.05})
	v.Add(Entry{Time: t0.Add(61 * time.Second), Outcome: "block", Rule: "bot", Score: 0.5})
	v.Add(Entry{Time: t0.Add(62 * time.Second), Outcome: "challenge", Rule: "stale", Score: 1})

	s := v.Snapshot()
	assert.Equal(t, 4, s.Total)
	assert.Equal(t, map[string]int{"allow": 2, "challenge": 1, "block": 1}, s.Outcomes)
	assert.Equal(t, []Count{{Key{"default", "allow"}, 2}, {Key{"bot", "block"}, 1},
		{Key{"stale", "challenge"}, 1}}, s.Rules)
	assert.Equal(t, [ScoreBins]int{2, 0, 0, 0, 0, 1, 0, 0, 0, 1}, s.Scores)

	// Three one-minute steps ending at now; the entry an hour old is
	// counted in the totals only.
	require.Len(t, s.Series, 3)
	assert.Equal(t, t0, s.Series[0].Start)
	assert.Equal(t, map[string]int{"allow": 1, "challenge": 0, "block": 0}, s.Series[0].Outcomes)
	assert.Equal(t, map[string]int{"allow": 0, "challenge": 1, "block": 1}, s.Series[1].Outcomes)
	assert.Equal(t, map[string]int{}, s.Series[2].Outcomes)

	// The ring keeps the newest two, newest first.
	require.Len(t, s.Recent, 2)
	assert.Equal(t, "stale", s.Recent[0].Rule)
	assert.Equal(t, "bot", s.Recent[1].Rule)
}

func TestMaxKeys(t *testing.T) {
	v := New(Options{})
	for i := range MaxKeys + 5 {
		v.Add(Entry{Time: t0, Outcome: "block", Rule: strings.Repeat("r", i%300) + string(rune('a'+i/300))})
	}
	s := v.Snapshot()
	assert.Len(t, s.Rules, MaxKeys+1)
	assert.Equal(t, Count{Key{"other", "block"}, 5}, s.Rules[0])
}

// TestHandlerReadsAuditEvents runs a real engine with the view as its
// logger.
func TestHandlerReadsAuditEvents(t *testing.T) {
	v := New(Options{Now: func() time.Time { return t0 }})
	p, err := policy.Parse([]byte(`version: 1
rules: [{name: high, when: 'action.sensitivity == "high"', outcome: block, reason: too_high}]
`), "p.yaml")
	require.NoError(t, err)
	eng, err := runtimeid.New(runtimeid.Config{
		Token:  runtimeid.TokenConfig{InsecureSkipAuthentication: true},
		Policy: p, Logger: slog.New(slog.NewMultiHandler(v.Handler(), slog.DiscardHandler)),
		Now: func() time.Time { return t0 },
	})
	require.NoError(t, err)
	_, err = eng.Evaluate(context.Background(), runtimeid.Input{
		Identity: &runtimeid.Identity{Subject: "<b>alice</b>"},
		Action:   runtimeid.Action{Name: "POST /x", Sensitivity: runtimeid.High},
		Token:    "",
	})
	require.NoError(t, err)
	slog.New(v.Handler()).Info("something else")

	s := v.Snapshot()
	require.Equal(t, 1, s.Total)
	assert.Equal(t, Entry{Time: t0, Outcome: "block", Rule: "high", Reason: "too_high",
		Action: "POST /x", Subject: "<b>alice</b>", Findings: []string{}}, s.Recent[0])
}

func TestServeHTTP(t *testing.T) {
	v := New(Options{Now: func() time.Time { return t0 }})
	v.Add(Entry{Time: t0, Outcome: "block", Rule: "r", Subject: `<script>alert(1)</script>`,
		Findings: []string{"new_device"}, Score: 0.42})

	rec := httptest.NewRecorder()
	v.ServeHTTP(rec, httptest.NewRequest("GET", "/debug/runtimeid/", nil))
	assert.Equal(t, http.StatusOK, rec.Code)
	h := rec.Header()
	assert.Equal(t, "text/html; charset=utf-8", h.Get("Content-Type"))
	assert.Equal(t, "no-store", h.Get("Cache-Control"))
	assert.Regexp(t, `^default-src 'none'; style-src 'unsafe-inline'; script-src 'nonce-[\w-]{22}'; `+
		`connect-src 'self'; frame-ancestors 'none'$`, h.Get("Content-Security-Policy"))
	body := rec.Body.String()
	assert.NotContains(t, body, "<script>alert")
	assert.Contains(t, body, "&lt;script&gt;alert(1)&lt;/script&gt;")
	assert.Contains(t, body, `<td class="num">0.42</td><td>new_device</td>`)
	assert.Contains(t, body, "<h2>Outcomes per 1m</h2>")

	rec = httptest.NewRecorder()
	v.ServeHTTP(rec, httptest.NewRequest("GET", "/debug/runtimeid/?format=json", nil))
	assert.Equal(t, "application/json", rec.Header().Get("Content-Type"))
	var s Snapshot
	require.NoError(t, json.Unmarshal(rec.Body.Bytes(), &s))
	assert.Equal(t, 1, s.Total)
	assert.Equal(t, `<script>alert(1)</script>`, s.Recent[0].Subject)

	rec = httptest.NewRecorder()
	v.ServeHTTP(rec, httptest.NewRequest("POST", "/debug/runtimeid/", nil))
	assert.Equal(t, http.StatusMethodNotAllowed, rec.Code)
	assert.Equal(t, "GET, HEAD", rec.Header().Get("Allow"))
}

func TestConcurrent(t *testing.T) {
	v := New(Options{})
	done := make(chan struct{})
	go func() {
		for range 1000 {
			v.Add(Entry{Outcome: "allow", Rule: "default"})
		}
		close(done)
	}()
	for range 50 {
		v.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest("GET", "/", nil))
	}
	<-done
	assert.Equal(t, 1000, v.Snapshot().Total)
}
