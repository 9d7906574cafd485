package main

import (
	"flag"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

var update = flag.Bool("update", false, "rewrite the golden files")

// realLog is the Elastic sample Apache log the quickstart also replays
// (licence and source beside it).
const realLog = "../../examples/quickstart/data/apache_logs"

func TestReplayRealLog(t *testing.T) {
	if testing.Short() {
		t.Skip("replays 10,000 requests; skipped with -short")
	}
	code, out, errOut := runCmd(t, "replay", "-config", "testdata/replay.yaml",
		"-candidate", "testdata/candidate.yaml", realLog)
	require.Equal(t, exitOK, code, errOut)

	golden := "testdata/replay.golden"
	if *update {
		require.NoError(t, os.WriteFile(golden, []byte(out), 0o600))
	}
	want, err := os.ReadFile(golden)
	require.NoError(t, err)
	assert.Equal(t, string(want), out)

	// The numbers the README quotes.
	assert.Contains(t, out, "Replayed 9999 requests (1 malformed line skipped), "+
		"2015-05-17 10:05 to 2015-05-20 21:05 UTC")
	current, candidate, ok := strings.Cut(out, "Candidate policy:")
	require.True(t, ok)
	assert.Regexp(t, `(?m)^\s+allow  9451\n\s+challenge   181\n\s+block   367$`, current)
	assert.Regexp(t, `(?m)^  block-bot\s+block\s+367$`, current)
	assert.Regexp(t, `(?m)^  challenge-stale-auth-high\s+challenge\s+179$`, current)
	assert.Regexp(t, `(?m)^  user-0946\s+27$`, current)
	assert.Regexp(t, `(?m)^\s+allow  9576\n\s+challenge   237\n\s+block   186$`, candidate)
	assert.Regexp(t, `(?m)^  watch-first-seen-high\s+challenge\s+147$`, candidate)
	assert.Contains(t, candidate, "Changes from current to candidate: 235 requests")
	assert.Regexp(t, `(?m)^  block/block-bot\s+allow/default\s+169$`, candidate)
}

func TestReplayDefaultsAndJSONLines(t *testing.T) {
	dir := t.TempDir()
	log := filepath.Join(dir, "requests.jsonl")
	lines := []string{
		`{"time":"2025-03-01T10:00:00Z","ip":"2.125.160.216","method":"GET",` +
			`"path":"/a","user_agent":"curl/8.0","subject":"alice"}`,
		`{"time":"2025-03-01T10:01:00Z","ip":"2.125.160.216","path":"/b","subject":"alice","extra":1}`,
		`{"time":"2025-03-01T10:02:00Z","ip":"not-an-ip","path":"/c"}`,
		`{"time":"2025-03-01T10:02:00Z","ip":"1.2.3.4","path":"relative"}`,
		`{"ip":"1.2.3.4","path":"/no-time"}`,
		`{broken`,
		``,
		`1.2.3.4 - - [01/Mar/2025:10:03:00 +0000] "GET /x HTTP/1.1" 200 1 "-" "Googlebot/2.1"`,
		strings.Repeat("x", maxLine+10),
		`{"time":"2025-03-01T10:04:00Z","ip":"1.2.3.4","path":"/d","user_agent":"Googlebot/2.1"}`,
	}
	require.NoError(t, os.WriteFile(log, []byte(strings.Join(lines, "\n")), 0o600))

	code, out, errOut := runCmd(t, "replay", log)
	require.Equal(t, exitOK, code, errOut)
	assert.Equal(t, "Replayed 4 requests (5 malformed lines skipped), "+
		"2025-03-01 10:00 to 2025-03-01 10:04 UTC, "+
		"report-only: nothing was enforced.\n"+`
Current policy: the default policy
        allow  2
    challenge  0
        block  2
Outcomes per rule:
  RULE       OUTCOME  REQUESTS
  block-bot  block    2
  default    allow    2
Top findings:
  FINDING         REQUESTS
  first_seen      3
  bot_user_agent  2
  new_device      1
Subjects challenged most:
  (none)
`, out)

	code, _, errOut = runCmd(t, "replay", "-format", "combined", log)
	require.Equal(t, exitOK, code)
	assert.Empty(t, errOut)
}

func TestReplayErrors(t *testing.T) {
	tests := []struct {
		args []string
		err  string
	}{
		{[]string{"replay"}, "runtimeid: usage: replay needs a LOG\n" + usage},
		{[]string{"replay", "-format", "xml", "x"},
			"runtimeid: usage: -format \"xml\": want auto, combined or json\n" + usage},
		{[]string{"replay", "nope.log"}, "runtimeid: open nope.log: no such file or directory\n"},
		{[]string{"replay", "-candidate", "testdata/broken-policy.yaml", realLog},
			"runtimeid: policy: testdata/broken-policy.yaml:11: rules[2] \"bad-outcome\": " +
				"outcome: unknown outcome \"deny\"\n"},
		{[]string{"replay", "-config", "nope.yaml", realLog},
			"runtimeid: config: nope.yaml: cannot read: open nope.yaml: no such file or directory\n"},
	}
	for _, tt := range tests {
		code, out, errOut := runCmd(t, tt.args...)
		assert.Equal(t, exitUsage, code, tt.args)
		assert.Empty(t, out)
		assert.Equal(t, tt.err, errOut)
	}
}

func TestParseLine(t *testing.T) {
	at := time.Date(2015, 5, 17, 10, 5, 3, 0, time.UTC)
	tests := []struct {
		name, line string
		want       record
		ok         bool
	}{
		{
			name: "apache",
			line: `83.149.9.216 - - [17/May/2015:10:05:03 +0000] ` +
				`"GET /p/x.png HTTP/1.1" 200 1 "http://r/" "Mozilla/5.0"`,
			want: record{Time: at, Method: "GET", Path: "/p/x.png", UserAgent: "Mozilla/5.0"},
			ok:   true,
		},
		{
			name: "nginx escaped quote, offset",
			line: `::1 - u [17/May/2015:12:05:03 +0200] ` +
				`"POST /a?b=c HTTP/2.0" 201 - "-" "say \"hi\""`,
			want: record{Time: at, Method: "POST", Path: "/a?b=c", UserAgent: `say "hi"`},
			ok:   true,
		},
		{"truncated", `1.2.3.4 - - [17/May/2015:10:05:03 +0000] "GET / HTTP/1.1" 200 1 "-" "Moz`, record{}, false},
		{"bad time", `1.2.3.4 - - [17/Mai/2015:10:05:03 +0000] "GET / HTTP/1.1" 200 1 "-" "-"`, record{}, false},
		{"bad address", `host - - [17/May/2015:10:05:03 +0000] "GET / HTTP/1.1" 200 1 "-" "-"`, record{}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := parseLine([]byte(tt.line), formatAuto)
			if !tt.ok {
				assert.ErrorIs(t, err, errMalformed)
				return
			}
			require.NoError(t, err)
			got.IP = netip.Addr{}
			assert.Equal(t, tt.want, got)
		})
	}
}

func FuzzParseLine(f *testing.F) {
	f.Add([]byte(`83.149.9.216 - - [17/May/2015:10:05:03 +0000] "GET / HTTP/1.1" 200 1 "-" "M"`))
	f.Add([]byte(`{"time":"2025-03-01T10:00:00Z","ip":"::1","path":"/"}`))
	f.Add([]byte(`{"time":1}`))
	f.Fuzz(func(t *testing.T, line []byte) {
		rec, err := parseLine(line, formatAuto)
		if err != nil {
			return
		}
		if !rec.IP.IsValid() || rec.Time.IsZero() || rec.Method == "" {
			t.Fatalf("accepted an incomplete record %+v", rec)
		}
	})
}
