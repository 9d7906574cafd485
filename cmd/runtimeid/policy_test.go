package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// runCmd runs the command and returns its exit status and output.
func runCmd(t *testing.T, args ...string) (int, string, string) {
	t.Helper()
	var out, errOut bytes.Buffer
	code := run(context.Background(), args, &out, &errOut)
	return code, out.String(), errOut.String()
}

const defaultPolicy = "../../policy/default.yaml"

func TestPolicyCheckReportsEveryError(t *testing.T) {
	code, out, _ := runCmd(t, "policy", "check", "testdata/broken-policy.yaml", defaultPolicy)
	assert.Equal(t, exitFail, code)
	want := `policy: testdata/broken-policy.yaml:8: rules[1] "typo-in-field": when: 1:16: undefined field 'contry'
policy: testdata/broken-policy.yaml:11: rules[2] "bad-outcome": outcome: unknown outcome "deny"
policy: testdata/broken-policy.yaml:15: rules[3] "good": name: duplicate name, first used by rules[0]
policy: testdata/broken-policy.yaml:20: rules[4] "syntax": when: 1:13: Syntax error: ` +
		`mismatched input '<EOF>' expecting {'[', '{', '(', '.', '-', '!', 'true', 'false', ` +
		`'null', NUM_FLOAT, NUM_INT, NUM_UINT, STRING, BYTES, IDENTIFIER}
testdata/broken-policy.yaml: 4 errors
../../policy/default.yaml: ok, 7 rules (0 report-only), default allow
`
	assert.Equal(t, want, out)
}

func TestPolicyCheck(t *testing.T) {
	dir := t.TempDir()
	write := func(name, body string) string {
		p := filepath.Join(dir, name)
		require.NoError(t, os.WriteFile(p, []byte(body), 0o600))
		return p
	}
	tests := []struct {
		name, file, body string
		code             int
		want             string
	}{
		{"ok", "ok.yaml", "version: 1\ndefault: block\nrules:\n" +
			"  - {name: a, when: 'true', outcome: allow}\n" +
			"  - {name: b, when: 'false', outcome: block, report_only: true}\n",
			exitOK, "ok.yaml: ok, 2 rules (1 report-only), default block\n"},
		{"version", "v.yaml", "version: 2\nrules: []\n",
			exitFail, "policy: v.yaml: version: unsupported version 2, want 1\nv.yaml: 1 error\n"},
		{"unknown field", "u.yaml", "version: 1\nrulez: []\n", exitFail,
			"policy: u.yaml: cannot decode: yaml: unmarshal errors:\n" +
				"  line 2: field rulez not found in type policy.fileSpec\nu.yaml: 1 error\n"},
		{"flow style keeps the first", "f.yaml",
			"version: 1\nrules: [{name: a, when: 'x', outcome: block}, {name: b, when: 'y', outcome: block}]\n",
			exitFail, "policy: f.yaml:2: rules[0] \"a\": when: 1:1: undeclared reference to 'x'\n" +
				"f.yaml: 1 error\n"},
		{"json", "j.json", `{"version": 1, "rules": [{"name": "a", "when": "1", "outcome": "block"}]}`,
			exitFail, "policy: j.json: rules[0] \"a\": when: has type int, want bool " +
				"(compare a dynamic value explicitly, as in x == true)\nj.json: 1 error\n"},
		{"missing", "", "", exitFail,
			"policy: nope.yaml: cannot read: open nope.yaml: no such file or directory\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := "nope.yaml"
			if tt.file != "" {
				path = write(tt.file, tt.body)
			}
			t.Chdir(dir)
			code, out, _ := runCmd(t, "policy", "check", filepath.Base(path))
			assert.Equal(t, tt.code, code)
			assert.Equal(t, tt.want, out)
		})
	}
}

func TestPolicyTest(t *testing.T) {
	code, out, _ := runCmd(t, "policy", "test", defaultPolicy, "testdata/cases.yaml")
	assert.Equal(t, exitFail, code)
	assert.Equal(t, `PASS read with an old login
PASS transfer with an old login
PASS transfer right after login
PASS export from tor
PASS high risk on a read
PASS bot reads a profile
FAIL a wrong expectation: got challenge/challenge-new-device-high, want block/block-bot
6 passed, 1 failed
`, out)
}

func TestPolicyTestCases(t *testing.T) {
	dir := t.TempDir()
	tests := []struct {
		name, cases string
		code        int
		out, err    string
	}{
		{"all pass", `
- name: stepped up
  identity: {sub: a, auth_age: 1m}
  action: {name: x, sensitivity: high}
  expect: {outcome: allow}
- name: report only listed
  action: {name: x, sensitivity: low}
  expect: {outcome: allow, rule: default, report_only: []}
- name: fails closed on an absent auth_time
  identity: {sub: a}
  action: {name: y, sensitivity: low}
  expect: {outcome: block, rule: error}
`, exitOK, "PASS stepped up\nPASS report only listed\nPASS fails closed on an absent auth_time\n" +
			"3 passed, 0 failed\n", ""},
		{"unknown field", "- name: a\n  expect: {outcome: allow}\n  identty: {}\n", exitUsage, "",
			"runtimeid: cases: CASES:1: case 0: field identty not found\n"},
		{"bad outcome", "- name: a\n  expect: {outcome: deny}\n", exitUsage, "",
			"runtimeid: cases: CASES:1: case 0: expect.outcome: \"deny\": want allow, challenge or block\n"},
		{"no name", "- expect: {outcome: allow}\n", exitUsage, "",
			"runtimeid: cases: CASES:1: case 0: name: required\n"},
		{"duplicate", "- {name: a, expect: {outcome: allow}}\n- {name: a, expect: {outcome: allow}}\n",
			exitUsage, "", "runtimeid: cases: CASES:2: case 1: name \"a\" already used by case 0\n"},
		{"not a list", "name: a\n", exitUsage, "", "runtimeid: cases: CASES: want a list of cases: " +
			"yaml: unmarshal errors:\n  line 1: cannot unmarshal !!map into []yaml.Node\n"},
		{"empty", "", exitUsage, "", "runtimeid: cases: CASES: no cases\n"},
		{"bad score", "- {name: a, risk: {score: 2}, expect: {outcome: allow}}\n", exitUsage, "",
			"runtimeid: cases: CASES:1: case 0: risk.score: 2 is outside [0,1]\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := filepath.Join(dir, "CASES")
			require.NoError(t, os.WriteFile(path, []byte(tt.cases), 0o600))
			pol := filepath.Join(dir, "p.yaml")
			require.NoError(t, os.WriteFile(pol, []byte(`version: 1
rules:
  - name: stale
    when: action.sensitivity == "high"
    outcome: challenge
  - name: needs-auth-time
    when: action.name == "y" && signals.session.since_auth > duration("1h")
    outcome: block
  - name: watch
    when: "false"
    outcome: block
    report_only: true
`), 0o600))
			t.Chdir(dir)
			code, out, errOut := runCmd(t, "policy", "test", "p.yaml", "CASES")
			assert.Equal(t, tt.code, code)
			assert.Equal(t, tt.out, out)
			assert.Equal(t, tt.err, errOut)
		})
	}
}

func TestUsage(t *testing.T) {
	tests := []struct {
		args []string
		err  string
	}{
		{nil, ""},
		{[]string{"nope"}, "runtimeid: usage: unknown command \"nope\"\n"},
		{[]string{"policy"}, "runtimeid: usage: policy needs check or test\n"},
		{[]string{"policy", "check"}, "runtimeid: usage: policy check needs a FILE\n"},
		{[]string{"policy", "test", "a"}, "runtimeid: usage: policy test needs POLICY and CASES\n"},
	}
	for _, tt := range tests {
		code, out, errOut := runCmd(t, tt.args...)
		assert.Equal(t, exitUsage, code)
		assert.Empty(t, out)
		assert.Equal(t, tt.err+usage, errOut)
	}
}
