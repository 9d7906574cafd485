package main

import (
	"context"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/runtimeid/runtimeid/decision/live"
)

// TestLiveViewInChromium replays the real access log into a live view
// and loads the page in headless Chromium: the DOM must hold the
// replay's counts, and the screenshot is kept for the README with
// -update.
func TestLiveViewInChromium(t *testing.T) {
	if testing.Short() {
		t.Skip("replays 10,000 requests; skipped with -short")
	}
	browser, err := exec.LookPath("chromium")
	if err != nil {
		// CI installs Chromium (.ci/run): there a missing browser is a
		// failure, not a reason to skip.
		if os.Getenv("CI") != "" {
			t.Fatal("chromium is not installed; .ci/run must install it")
		}
		t.Skip("chromium is not installed (apt-get install chromium); skipping the browser test")
	}
	var r *replayer
	view := live.New(live.Options{Bucket: time.Hour, Buckets: 84, Recent: 25,
		Now:   func() time.Time { return r.clock() },
		Title: "runtimeid decisions: replay of the real access log"})
	r, err = newReplayerLive(replayOptions{config: "testdata/replay.yaml", format: formatAuto}, view)
	require.NoError(t, err)
	defer r.Close()
	require.NoError(t, r.replayFile(context.Background(), realLog))

	srv := httptest.NewServer(view)
	defer srv.Close()

	dir := t.TempDir()
	flags := []string{"--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
		"--no-first-run", "--disable-background-networking", "--disable-component-update",
		"--disable-sync", "--user-data-dir=" + filepath.Join(dir, "profile")}
	chrome := func(args ...string) string {
		ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
		defer cancel()
		cmd := exec.CommandContext(ctx, browser, append(flags, args...)...)
		out, err := cmd.Output()
		require.NoError(t, err)
		return string(out)
	}

	dom := chrome("--dump-dom", srv.URL+"/")
	assert.Contains(t, dom, `<span><b>9999</b> decisions</span>`)
	assert.Contains(t, dom, `<span class="allow"><b>9451</b> allow</span>`)
	assert.Contains(t, dom, `<span class="challenge"><b>181</b> challenge</span>`)
	assert.Contains(t, dom, `<span class="block"><b>367</b> block</span>`)
	assert.Contains(t, dom, `<td>block-bot</td><td class="o-block">block</td><td class="num">367</td>`)
	assert.Contains(t, dom, `<td>challenge-stale-auth-high</td><td class="o-challenge">challenge</td>`+
		`<td class="num">179</td>`)
	assert.Equal(t, 2, strings.Count(dom, "<svg "))
	assert.Equal(t, 25, strings.Count(dom, "<tr><td>2015-05-"), "25 recent rows and none more")

	shot := filepath.Join(dir, "liveview.png")
	chrome("--screenshot="+shot, "--window-size=1280,900", "--hide-scrollbars", srv.URL+"/")
	png, err := os.ReadFile(shot)
	require.NoError(t, err)
	require.Greater(t, len(png), 10_000)
	assert.Equal(t, "\x89PNG", string(png[:4]))
	if *update {
		require.NoError(t, os.WriteFile("testdata/liveview.png", png, 0o644))
	}
}
