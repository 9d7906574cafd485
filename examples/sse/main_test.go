package main

import (
	"bufio"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/runtimeid/runtimeid"
	"github.com/runtimeid/runtimeid/internal/conformance/demo"
)

var t0 = time.Date(2026, 12, 4, 12, 0, 0, 0, time.UTC)

// open starts a stream for a token minted at t0 and returns its lines,
// the watch's tick channel and the clock to move.
func open(t *testing.T, g demo.Grant) (*bufio.Reader, chan time.Time, *atomic.Int64) {
	t.Helper()
	var offset atomic.Int64 // since t0
	now := func() time.Time { return t0.Add(time.Duration(offset.Load())) }
	is, err := demo.NewIssuer()
	require.NoError(t, err)
	eng, err := demo.NewEngine(is, now, nil)
	require.NoError(t, err)

	ticks := make(chan time.Time)
	s := &stream{eng: eng, watch: runtimeid.WatchOptions{Ticks: ticks}}
	srv := httptest.NewServer(s.routes())
	t.Cleanup(srv.Close)

	tok, err := is.Mint(g)
	require.NoError(t, err)
	req, err := http.NewRequest("GET", srv.URL+"/api/events", nil)
	require.NoError(t, err)
	req.Header.Set("Authorization", "Bearer "+tok)
	res, err := srv.Client().Do(req)
	require.NoError(t, err)
	t.Cleanup(func() { res.Body.Close() })
	require.Equal(t, http.StatusOK, res.StatusCode)
	assert.Equal(t, "text/event-stream", res.Header.Get("Content-Type"))

	lines := bufio.NewReader(res.Body)
	assert.Equal(t, "event: hello\ndata: alice\n\n", event(t, lines))
	return lines, ticks, &offset
}

// event reads one event, up to and including its blank line.
func event(t *testing.T, r *bufio.Reader) string {
	t.Helper()
	var ev string
	for {
		line, err := r.ReadString('\n')
		require.NoError(t, err)
		ev += line
		if line == "\n" {
			return ev
		}
	}
}

// endOf reads the stream's remaining events in the background, ticks
// the watch until the stream ends, and returns the last event. A tick is
// only taken once the watch finished its previous recheck, so the ticks
// sent before the clock moved settle before the ones after.
func endOf(t *testing.T, lines *bufio.Reader, ticks chan<- time.Time) string {
	t.Helper()
	last := make(chan string, 1)
	go func() {
		var ev string
		for {
			line, err := lines.ReadString('\n')
			if err != nil {
				last <- ev
				return
			}
			if ev += line; line == "\n" && !strings.HasPrefix(ev, "event: runtimeid") {
				ev = ""
			}
		}
	}()
	for {
		select {
		case ticks <- t0:
		case ev := <-last:
			return ev
		}
	}
}

// settle sends two ticks: when the second is taken, the recheck of the
// first has finished at the current time.
func settle(ticks chan<- time.Time) {
	ticks <- t0
	ticks <- t0
}

func TestStreamEndsWhenStepUpIsNeeded(t *testing.T) {
	lines, ticks, offset := open(t, demo.Grant{Subject: "alice", Issued: t0, AuthTime: t0})

	offset.Store(int64(4 * time.Minute))
	settle(ticks) // still fresh: the stream goes on
	offset.Store(int64(6 * time.Minute))

	assert.Equal(t, "event: runtimeid\ndata: step-up required\n\n", endOf(t, lines, ticks))
}

func TestStreamEndsWhenTokenExpires(t *testing.T) {
	lines, ticks, offset := open(t, demo.Grant{Subject: "alice", Issued: t0, AuthTime: t0,
		TTL: 2 * time.Minute})

	offset.Store(int64(2*time.Minute + 59*time.Second)) // within the 60s skew
	settle(ticks)
	offset.Store(int64(3 * time.Minute)) // exp + skew: expired

	assert.Equal(t, "event: runtimeid\ndata: session ended: token_expired\n\n",
		endOf(t, lines, ticks))
}

func TestStreamNeedsAFreshLogin(t *testing.T) {
	is, err := demo.NewIssuer()
	require.NoError(t, err)
	eng, err := demo.NewEngine(is, func() time.Time { return t0 }, nil)
	require.NoError(t, err)
	_, stale, err := is.Tokens(t0)
	require.NoError(t, err)

	r := httptest.NewRequest("GET", "/api/events", nil)
	r.Header.Set("Authorization", "Bearer "+stale)
	w := httptest.NewRecorder()
	(&stream{eng: eng}).routes().ServeHTTP(w, r)
	assert.Equal(t, http.StatusUnauthorized, w.Code)
}
