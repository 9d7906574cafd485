package config

import (
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/runtimeid/runtimeid"
)

func TestLoadExample(t *testing.T) {
	f, err := Load("../../cmd/runtimeid/runtimeid.example.yaml")
	require.NoError(t, err)
	assert.Equal(t, "https://idp.example.com", f.Token.Issuer)
	assert.Equal(t, time.Minute, f.Token.ClockSkew)
	assert.Equal(t, []string{"10.0.0.0/8"}, f.TrustedProxies)
	assert.Equal(t, 100_000, f.Risk.StoreSize)
	assert.Len(t, f.Routes, 3)
	assert.Equal(t, Route{Pattern: "POST /api/transfers", Sensitivity: "high"}, f.Routes[2])
	assert.Equal(t, "../../cmd/runtimeid", f.Dir)
	assert.Equal(t, "../../cmd/runtimeid/policy.yaml", f.path(f.Policy))
	assert.True(t, f.Live.Enabled)
}

func TestParseErrors(t *testing.T) {
	tests := []struct{ name, body, want string }{
		{"empty", "", "config: c.yaml: empty file"},
		{"version", "version: 2\n", "config: c.yaml:1: version: is 2, want 1"},
		{"no version", "token: {}\n", "config: c.yaml: version: is 0, want 1"},
		{"unknown top", "version: 1\ntokn: {}\n", "config: c.yaml:2: tokn: unknown field"},
		{"unknown nested", "version: 1\ntoken:\n  clock_skw: 5s\n",
			"config: c.yaml:3: token.clock_skw: unknown field"},
		{"unknown in list", "version: 1\nroutes:\n  - pattern: /a\n    sensitivity: low\n    sens: x\n",
			"config: c.yaml:5: routes[0].sens: unknown field"},
		{"twice", "version: 1\npolicy: a\npolicy: b\n", "config: c.yaml:3: policy: given twice"},
		{"type", "version: 1\nrisk: {store_size: many}\n",
			"config: c.yaml:2: cannot unmarshal !!str `many` into int"},
		{"skew", "version: 1\ntoken: {clock_skew: 10m}\n",
			"config: c.yaml:2: token.clock_skew: 10m0s is outside [0, 5m0s]"},
		{"both keys", "version: 1\ntoken: {jwks_file: a, jwks_url: b}\n",
			"config: c.yaml:2: token.jwks_url: give jwks_file or jwks_url, not both"},
		{"proxy", "version: 1\ntrusted_proxies: [10.0.0.0/8, nope]\n",
			"config: c.yaml:2: trusted_proxies[1]: \"nope\" is not a CIDR prefix or address"},
		{"proxy trusts everyone", "version: 1\ntrusted_proxies: [0.0.0.0/0]\n",
			"config: c.yaml:2: trusted_proxies[0]: \"0.0.0.0/0\" trusts every address, so any " +
				"client could choose its own; list your proxies' prefixes: " +
				"signals: trusted proxy list trusts every address"},
		{"thresholds", "version: 1\nrisk: {medium_risk: 0.8}\n",
			"config: c.yaml:2: risk.medium_risk: 0.8 is not below high_risk 0.7"},
		{"sensitivity", "version: 1\nenforcement: {default_sensitivity: extreme}\n",
			"config: c.yaml:2: enforcement.default_sensitivity: \"extreme\": want low, medium or high"},
		{"step-up url", "version: 1\nenforcement: {step_up_url: 'javascript:x'}\n",
			"config: c.yaml:2: enforcement.step_up_url: invalid: decision: invalid options: " +
				"StepUpURL \"javascript:x\": want an http(s) URL or an absolute path, without fragment or user"},
		{"route pattern", "version: 1\nroutes: [{pattern: 'GET api', sensitivity: low}]\n",
			"config: c.yaml:2: routes[0].pattern: invalid: parsing \"GET api\": " +
				"at offset 4: host/path missing /"},
		{"route duplicate", "version: 1\nroutes:\n  - {pattern: /a, sensitivity: low}\n" +
			"  - {pattern: /a, sensitivity: high}\n",
			"config: c.yaml:4: routes[1].pattern: \"/a\" already given in routes[0]"},
		{"route sensitivity", "version: 1\nroutes: [{pattern: /a}]\n",
			"config: c.yaml:2: routes[0].sensitivity: \"\": want low, medium or high"},
		{"audit format", "version: 1\naudit: {format: xml}\n",
			"config: c.yaml:2: audit.format: \"xml\": want json or text"},
		{"upstream", "version: 1\nserve: {upstream: 'ftp://x'}\n",
			"config: c.yaml:2: serve.upstream: \"ftp://x\" is not an http(s) URL"},
		{"prefix", "version: 1\nserve: {header_prefix: 'Runtimeid: '}\n",
			"config: c.yaml:2: serve.header_prefix: \"Runtimeid: \": " +
				"want letters, digits and dashes, starting with X-"},
		{"live path", "version: 1\nlive: {path: debug}\n",
			"config: c.yaml:2: live.path: \"debug\" must start with /"},
		{"alias", "version: 1\nx: &a 1\n", "config: c.yaml:2: x: unknown field"},
		{"two docs", "version: 1\n---\nversion: 1\n", "config: c.yaml: more than one YAML document"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Parse([]byte(tt.body), "c.yaml")
			require.Error(t, err)
			assert.Equal(t, tt.want, err.Error())
			assert.ErrorIs(t, err, ErrInvalid)
			assert.ErrorIs(t, err, runtimeid.ErrConfig)
			var ce *Error
			assert.True(t, errors.As(err, &ce))
		})
	}
}

func TestBuild(t *testing.T) {
	dir := t.TempDir()
	body := `version: 1
token: {insecure_skip_authentication: true}
geoip:
  city: ../../signals/testdata/maxmind/GeoIP2-City-Test.mmdb
policy: p.yaml
routes:
  - {pattern: "POST /api/transfers", sensitivity: high, fail_open: true}
audit: {file: audit.log, format: text}
live: {enabled: true}
`
	wd, err := os.Getwd()
	require.NoError(t, err)
	body = replaceAll(body, "../../signals", filepath.Join(wd, "../../signals"))
	require.NoError(t, os.WriteFile(filepath.Join(dir, "c.yaml"), []byte(body), 0o600))
	require.NoError(t, os.WriteFile(filepath.Join(dir, "p.yaml"), []byte(
		"version: 1\nrules: [{name: high, when: 'action.sensitivity == \"high\"', outcome: block}]\n"), 0o600))
	f, err := Load(filepath.Join(dir, "c.yaml"))
	require.NoError(t, err)
	now := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
	b, err := f.Build(BuildOptions{Now: func() time.Time { return now }})
	require.NoError(t, err)
	defer b.Close()

	req := mustRequest(t, "POST", "/api/transfers")
	a, opts := b.Routes.Match(req)
	assert.Equal(t, runtimeid.Action{Name: "POST /api/transfers", Route: "POST /api/transfers",
		Sensitivity: runtimeid.High}, a)
	assert.Len(t, opts, 1)
	ev := b.Engine.EvaluateRequest(req, a)
	assert.Equal(t, "block", ev.Decision.Outcome.String())
	assert.Equal(t, "high", ev.Decision.Rule)

	a, _ = b.Routes.Match(mustRequest(t, "GET", "/api/transfers"))
	assert.Equal(t, runtimeid.Action{Name: Unmatched, Sensitivity: runtimeid.Medium}, a)

	assert.Equal(t, 1, b.Live.Snapshot().Total)
	require.NoError(t, b.Close())
	log, err := os.ReadFile(filepath.Join(dir, "audit.log"))
	require.NoError(t, err)
	assert.Contains(t, string(log), "msg=runtimeid.decision outcome=block rule=high")
}

func TestBuildErrors(t *testing.T) {
	tests := []struct{ body, want string }{
		{"version: 1\n", "config: c.yaml:0: token.issuer: required unless insecure_skip_authentication"},
		{"version: 1\ntoken: {issuer: i, audience: [a], jwks_file: nope.json}\n",
			"config: c.yaml:2: token.jwks_file: cannot load"},
		{"version: 1\ntoken: {insecure_skip_authentication: true}\npolicy: nope.yaml\n",
			"config: c.yaml:3: policy: cannot load: policy: nope.yaml: cannot read"},
		{"version: 1\ntoken: {insecure_skip_authentication: true}\ngeoip: {city: nope.mmdb}\n",
			"config: c.yaml:3: geoip: cannot open"},
	}
	for _, tt := range tests {
		f, err := Parse([]byte(tt.body), "c.yaml")
		require.NoError(t, err)
		_, err = f.Build(BuildOptions{})
		require.Error(t, err)
		assert.Contains(t, err.Error(), replaceAll(tt.want, "c.yaml:0:", "c.yaml:"))
	}
}

func FuzzParse(f *testing.F) {
	data, err := os.ReadFile("../../cmd/runtimeid/runtimeid.example.yaml")
	require.NoError(f, err)
	f.Add(data)
	f.Add([]byte("version: 1\nroutes: [{pattern: /a, sensitivity: low}]\n"))
	f.Add([]byte("version: 1\ntoken: {clock_skew: 5s}\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		Parse(data, "fuzz.yaml")
	})
}
