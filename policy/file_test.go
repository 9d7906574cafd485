package policy

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/runtimeid/runtimeid"
)

func TestLoadExample(t *testing.T) {
	want := []Rule{{
		Name:        "stepup-high-stale",
		Description: "High-sensitivity actions need a recent login.",
		When: `action.sensitivity == "high" && (!signals.session.has_auth_time ||` +
			` signals.session.since_auth > duration("5m"))`,
		Outcome: runtimeid.Challenge,
		Reason:  "stale_authentication",
		StepUp:  &runtimeid.StepUp{ACRValues: []string{"urn:example:mfa"}, MaxAge: 5 * time.Minute},
	}}
	for _, path := range []string{"testdata/example.yaml", "testdata/example.json"} {
		t.Run(path, func(t *testing.T) {
			p, err := Load(path)
			require.NoError(t, err)
			assert.Equal(t, want, p.Rules())
			assert.Equal(t, runtimeid.Allow, p.DefaultOutcome())

			ev := evaluation()
			ev.Action.Sensitivity = runtimeid.High
			ev.Signals.Session.SinceAuth = 6 * time.Minute
			d, err := p.Decide(context.Background(), ev)
			require.NoError(t, err)
			assert.Equal(t, runtimeid.Decision{Outcome: runtimeid.Challenge,
				Rule: "stepup-high-stale", Reason: "stale_authentication", StepUp: want[0].StepUp}, d)
		})
	}
}

func TestLoadErrors(t *testing.T) {
	_, err := Load(filepath.Join(t.TempDir(), "missing.yaml"))
	require.ErrorIs(t, err, ErrInvalid)
	require.ErrorIs(t, err, os.ErrNotExist)

	big := filepath.Join(t.TempDir(), "big.yaml")
	require.NoError(t, os.WriteFile(big, make([]byte, MaxPolicySize+1), 0o600))
	_, err = Load(big)
	assert.EqualError(t, err, "policy: "+big+": 1048577 bytes, at most 1048576")
}

func TestParseDefaults(t *testing.T) {
	p, err := Parse([]byte("version: 1\nrules: []\n"), "p.yaml")
	require.NoError(t, err)
	assert.Equal(t, runtimeid.Allow, p.DefaultOutcome())
	assert.Empty(t, p.Rules())

	p, err = Parse([]byte(`{"version": 1, "default": "BLOCK"}`), "p.json")
	require.NoError(t, err)
	assert.Equal(t, runtimeid.Block, p.DefaultOutcome())
}

func TestParseMaxAge(t *testing.T) {
	tests := []struct {
		in   string
		want time.Duration
	}{
		{"5m", 5 * time.Minute},
		{"300", 5 * time.Minute},
		{`"90s"`, 90 * time.Second},
		{"0", 0},
	}
	for _, tt := range tests {
		doc := "version: 1\nrules:\n- name: r\n  when: 'true'\n  outcome: challenge\n" +
			"  step_up: {max_age: " + tt.in + "}\n"
		p, err := Parse([]byte(doc), "p.yaml")
		require.NoError(t, err, tt.in)
		assert.Equal(t, tt.want, p.Rules()[0].StepUp.MaxAge, tt.in)

		js := `{"version":1,"rules":[{"name":"r","when":"true","outcome":"challenge",` +
			`"step_up":{"max_age":` + jsonValue(tt.in) + `}}]}`
		p, err = Parse([]byte(js), "p.json")
		require.NoError(t, err, js)
		assert.Equal(t, tt.want, p.Rules()[0].StepUp.MaxAge, js)
	}
}

func jsonValue(s string) string {
	if strings.HasPrefix(s, `"`) || strings.Trim(s, "0123456789") == "" {
		return s
	}
	return `"` + s + `"`
}

// TestParseErrors covers every class of malformed policy file, with the
// exact message: where, which rule, which field, why.
func TestParseErrors(t *testing.T) {
	rule := func(lines ...string) string {
		return "version: 1\nrules:\n  - name: ok\n    when: 'true'\n    outcome: allow\n" +
			"  - " + strings.Join(lines, "\n    ") + "\n"
	}
	tests := []struct {
		name, doc, want string
	}{
		{"empty", "", `policy: p.yaml: cannot decode: empty policy`},
		{"bad yaml", "version: 1\nrules: [\n",
			`policy: p.yaml: cannot decode: yaml: line 2: did not find expected node content`},
		{"tab indent", "version: 1\nrules:\n\t- name: x\n",
			`policy: p.yaml: cannot decode: yaml: line 3: found character that cannot start any token`},
		{"two documents", "version: 1\n---\nversion: 1\n",
			`policy: p.yaml: cannot decode: more than one YAML document`},
		{"unknown top field", "version: 1\nrulez: []\n",
			`policy: p.yaml: cannot decode: yaml: unmarshal errors:` + "\n" +
				`  line 2: field rulez not found in type policy.fileSpec`},
		{"unknown rule field", rule("name: r", "when: 'true'", "outcome: block", "severity: 3"),
			`policy: p.yaml: cannot decode: yaml: unmarshal errors:` + "\n" +
				`  line 9: field severity not found in type policy.fileRule`},
		{"unknown step_up field", rule("name: r", "when: 'true'", "outcome: challenge",
			"step_up: {acr: x}"),
			`policy: p.yaml: cannot decode: yaml: unmarshal errors:` + "\n" +
				`  line 9: field acr not found in type policy.fileStepUp`},
		{"no version", "rules: []\n", `policy: p.yaml: version: required: version: 1`},
		{"version 2", "version: 2\n", `policy: p.yaml: version: unsupported version 2, want 1`},
		{"bad default", "version: 1\ndefault: maybe\n",
			`policy: p.yaml: default: unknown outcome "maybe"`},
		{"duplicate name", rule("name: ok", "when: 'true'", "outcome: block"),
			`policy: p.yaml:6: rules[1] "ok": name: duplicate name, first used by rules[0]`},
		{"no outcome", rule("name: r", "when: 'true'"),
			`policy: p.yaml:6: rules[1] "r": outcome: required: allow, challenge or block`},
		{"bad outcome", rule("name: r", "when: 'true'", "outcome: deny"),
			`policy: p.yaml:6: rules[1] "r": outcome: unknown outcome "deny"`},
		{"non-bool", rule("name: r", "when: risk.level", "outcome: block"),
			`policy: p.yaml:7: rules[1] "r": when: has type string, want bool` +
				` (compare a dynamic value explicitly, as in x == true)`},
		{"syntax error", rule("name: r", `when: risk.score > 0.5 &&`, "outcome: block"),
			`policy: p.yaml:7: rules[1] "r": when: 1:20: Syntax error: mismatched input '<EOF>'`},
		{"syntax error on line 2", rule("name: r", "when: |", "  risk.score > 0.5 &&", "  == 1",
			"outcome: block"),
			`policy: p.yaml:7: rules[1] "r": when: 2:1: Syntax error: extraneous input '=='`},
		{"unknown variable", rule("name: r", `when: request.ip == "x"`, "outcome: block"),
			`policy: p.yaml:7: rules[1] "r": when: 1:1: undeclared reference to 'request'`},
		{"unknown function", rule("name: r", `when: geo(signals.client_ip)`, "outcome: block"),
			`policy: p.yaml:7: rules[1] "r": when: 1:4: undeclared reference to 'geo'`},
		{"step_up on block", rule("name: r", "when: 'true'", "outcome: block",
			"step_up: {max_age: 5m}"),
			`policy: p.yaml:6: rules[1] "r": step_up: only a challenge has a step-up, not block`},
		{"bad max_age", rule("name: r", "when: 'true'", "outcome: challenge",
			"step_up: {max_age: soon}"),
			`policy: p.yaml: cannot decode: line 9: max_age: time: invalid duration "soon"`},
		{"fractional max_age", rule("name: r", "when: 'true'", "outcome: challenge",
			"step_up: {max_age: 1.5}"),
			`policy: p.yaml: cannot decode: line 9: max_age: time: missing unit in duration "1.5"`},
		{"huge expression", rule("name: r", "when: "+strings.Repeat("true || ", 1000)+"true",
			"outcome: block"),
			`policy: p.yaml:7: rules[1] "r": when: 8004 bytes, at most 4096`},
		{"deep expression", rule("name: r", "when: "+strings.Repeat("(", 300)+"true"+
			strings.Repeat(")", 300), "outcome: block"),
			`policy: p.yaml:7: rules[1] "r": when: expression recursion limit exceeded: 250`},
		{"json unknown field", `{"version": 1, "rulez": []}`,
			`policy: p.yaml: cannot decode: json: unknown field "rulez"`},
		{"json trailing data", `{"version": 1} {}`,
			`policy: p.yaml: cannot decode: data after the policy object`},
		{"json syntax error", `{"version": 1,`,
			`policy: p.yaml: cannot decode: unexpected EOF`},
		{"json rule error", `{"version":1,"rules":[{"name":"r","when":"1","outcome":"block"}]}`,
			`policy: p.yaml: rules[0] "r": when: has type int, want bool`},
		{"json bad max_age", `{"version":1,"rules":[{"name":"r","when":"true",` +
			`"outcome":"challenge","step_up":{"max_age":1.5}}]}`,
			`policy: p.yaml: cannot decode: max_age: "1.5" is not a whole number of seconds`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Parse([]byte(tt.doc), "p.yaml")
			require.Error(t, err)
			assert.True(t, strings.HasPrefix(err.Error(), tt.want), "got  %s\nwant %s", err, tt.want)
			require.ErrorIs(t, err, ErrInvalid)
		})
	}
}

func TestParseTooLarge(t *testing.T) {
	_, err := Parse(make([]byte, MaxPolicySize+1), "p.yaml")
	assert.EqualError(t, err, "policy: p.yaml: 1048577 bytes, at most 1048576")
}

func FuzzParse(f *testing.F) {
	for _, path := range []string{"testdata/example.yaml", "testdata/example.json"} {
		data, err := os.ReadFile(path)
		require.NoError(f, err)
		f.Add(data)
	}
	f.Add(DefaultYAML)
	f.Add([]byte("version: 1\nrules: [{name: a, when: 'x', outcome: block}]"))
	f.Add([]byte(`{"version":1,"rules":[{"name":"a","when":"[1,2].all(x, x > 0)","outcome":"allow"}]}`))
	f.Add([]byte("a: &a [*a, *a]\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		start := time.Now()
		defer func() {
			// Loading is bounded too: no input may take long.
			if d := time.Since(start); d > 2*time.Second {
				t.Fatalf("took %v", d)
			}
		}()
		p, err := Parse(data, "fuzz.yaml")
		if err != nil {
			require.ErrorIs(t, err, ErrInvalid)
			return
		}
		// A policy that loads decides without panicking, within its
		// cost limits.
		_, _ = p.Decide(context.Background(), evaluation())
	})
}
