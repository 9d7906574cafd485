package main

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/pquerna/otp/totp"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/runtimeid/runtimeid"
)

func TestDemo(t *testing.T) {
	var out bytes.Buffer
	rep, err := runDemo(context.Background(), &out)
	require.NoError(t, err)

	// The log has 10,000 lines; one has an unterminated user agent.
	assert.Equal(t, 9999, rep.Replayed)
	assert.Equal(t, map[string]int{"allow": 9806, "challenge": 43, "block": 150}, rep.Outcomes)
	assert.Equal(t, map[string]int{"block-bot": 150, "challenge-high-risk": 36,
		"challenge-stale-auth-high": 7}, rep.Rules)

	type want struct {
		scenario, sub, action string
		status                int
		outcome, rule         string
		findings              string
	}
	wants := []want{
		{"stolen-token", "bob", "GET /api/orders", 200, "allow", "default", "first_seen"},
		{"stolen-token", "bob", "GET /api/orders", 200, "allow", "default", ""},
		{"stolen-token", "bob", "GET /api/orders", 403, "block", "block-impossible-travel",
			"new_country,new_asn,impossible_travel,session_ip_change,concurrent_session_far_apart"},
		{"new-device", "carol", "GET /api/orders", 200, "allow", "default", "first_seen"},
		{"new-device", "carol", "POST /api/transfers", 401, "challenge", "challenge-new-device-high",
			"new_device"},
		{"tor-exit", "dave", "GET /api/orders", 200, "allow", "default", "first_seen"},
		{"tor-exit", "dave", "GET /api/export", 403, "block", "block-anonymous-network-high",
			"anonymous_network,session_ip_change"},
		{"step-up", "erin", "GET /api/orders", 200, "allow", "default", "first_seen"},
		{"step-up", "erin", "POST /api/transfers", 401, "challenge", "challenge-stale-auth-high", ""},
		{"step-up", "erin", "POST /api/transfers", 200, "allow", "default", ""},
		{"copied-token", "gina", "GET /api/orders", 200, "allow", "default", "first_seen"},
		{"copied-token", "gina", "POST /api/transfers", 403, "block", "block-stolen-token",
			"new_device,token_replay"},
		{"revoked", "frank", "GET /api/orders", 200, "allow", "default", "first_seen"},
		{"revoked", "frank", "GET /api/orders", 200, "allow", "default", ""},
		{"revoked", "frank", "GET /api/orders", 401, "block", "token: token_revoked", ""},
		{"otp-step-up", "ivan", "GET /api/orders", 200, "allow", "default", "first_seen"},
		{"otp-step-up", "ivan", "POST /api/transfers", 401, "challenge", "challenge-stale-auth-high", ""},
		// The same token, after a code at /stepup/otp/verify: the
		// challenge is met by the recorded step-up.
		{"otp-step-up", "ivan", "POST /api/transfers", 200, "allow", "challenge-stale-auth-high", ""},
	}
	require.Len(t, rep.Scenarios, len(wants))
	for i, w := range wants {
		r := rep.Scenarios[i]
		got := want{r.Scenario, r.Subject, r.Action, r.Status, r.Outcome, r.Rule, r.Findings}
		assert.Equal(t, w, got, "scenario row %d", i)
	}
	assert.Equal(t, "SE", rep.Scenarios[2].Country)
	assert.Equal(t, "1.124.213.1", rep.Scenarios[6].ClientIP)
	assert.Equal(t, "GB", rep.Scenarios[11].Country)

	text := out.String()
	assert.Contains(t, text, "Replayed 9999 requests")
	assert.Regexp(t, `(?m)^  block\s+150$`, text)
	assert.Regexp(t, `(?m)^stolen-token\s+05-20 22:17\s+bob\s+`+
		`GET /api/orders\s+89\.160\.20\.128\s+SE\s+403\s+block`, text)
}

// TestQuickstartServer runs the API as a newcomer does with no flags and
// replays the printed sample commands.
func TestQuickstartServer(t *testing.T) {
	iss, srv := startDefault(t)

	var samples bytes.Buffer
	require.NoError(t, printSamples(&samples, iss, "127.0.0.1:8080"))
	tokens := map[string]string{}
	for _, m := range regexp.MustCompile(`export (\w+)=(\S+)`).FindAllStringSubmatch(samples.String(), -1) {
		tokens[m[1]] = m[2]
	}
	require.Len(t, tokens, 2)

	do := func(method, path, token string) (*http.Response, string) {
		req, err := http.NewRequest(method, srv.URL+path, nil)
		require.NoError(t, err)
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		resp, err := http.DefaultClient.Do(req)
		require.NoError(t, err)
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		return resp, string(body)
	}

	resp, body := do("GET", "/healthz", "")
	assert.Equal(t, 200, resp.StatusCode)
	assert.Equal(t, "ok\n", body)

	resp, body = do("GET", "/api/orders", tokens["STALE"])
	assert.Equal(t, 200, resp.StatusCode)
	assert.Contains(t, body, `"subject":"alice"`)

	resp, _ = do("POST", "/api/transfers", tokens["STALE"])
	assert.Equal(t, 401, resp.StatusCode)
	assert.Equal(t, `Bearer realm="quickstart", error="insufficient_user_authentication", `+
		`error_description="step-up authentication required: stale_authentication", max_age=300`,
		resp.Header.Get("WWW-Authenticate"))

	resp, body = do("POST", "/api/transfers", tokens["FRESH"])
	assert.Equal(t, 200, resp.StatusCode)
	assert.Contains(t, body, `"transfer":"accepted"`)

	resp, _ = do("GET", "/api/export", "")
	assert.Equal(t, 401, resp.StatusCode)
	// No token: both schemes are offered, without an error code.
	assert.Equal(t, `Bearer realm="quickstart", DPoP realm="quickstart", `+
		`algs="ES256 ES384 ES512 EdDSA PS256 PS384 PS512 RS256 RS384 RS512"`,
		resp.Header.Get("WWW-Authenticate"))

	resp, body = do("GET", "/api/orders", tokens["FRESH"]+"x")
	assert.Equal(t, 401, resp.StatusCode)
	assert.Contains(t, resp.Header.Get("WWW-Authenticate"), `error="invalid_token"`)
	assert.Contains(t, body, `"code":"token_signature"`)
	assert.False(t, strings.Contains(body, tokens["FRESH"]))

	// The printed step-up commands: enroll a code with the fresh login,
	// answer the stale session's challenge, retry with the same token.
	post := func(path, token string, body any) (int, map[string]any) {
		data, err := json.Marshal(body)
		require.NoError(t, err)
		req, err := http.NewRequest("POST", srv.URL+path, bytes.NewReader(data))
		require.NoError(t, err)
		req.Header.Set("Authorization", "Bearer "+token)
		req.Header.Set("Content-Type", "application/json")
		resp, err := http.DefaultClient.Do(req)
		require.NoError(t, err)
		defer resp.Body.Close()
		var out map[string]any
		json.NewDecoder(resp.Body).Decode(&out)
		return resp.StatusCode, out
	}
	code := func(secret string, at time.Time) string {
		c, err := totp.GenerateCode(secret, at)
		require.NoError(t, err)
		return c
	}
	status, enrolled := post("/stepup/enroll/otp", tokens["FRESH"], map[string]any{})
	require.Equal(t, 200, status, "%v", enrolled)
	secret, _ := enrolled["secret"].(string)
	require.NotEmpty(t, secret)
	now := time.Now()
	status, out := post("/stepup/enroll/otp/confirm", tokens["FRESH"], map[string]string{"code": code(secret, now)})
	require.Equal(t, 200, status, "%v", out)
	// The app's next code: the one just used is not accepted again.
	status, out = post("/stepup/otp/verify", tokens["STALE"], map[string]string{"code": code(secret, now)})
	assert.Equal(t, 403, status, "a code is accepted once: %v", out)
	status, out = post("/stepup/otp/verify", tokens["STALE"],
		map[string]string{"code": code(secret, now.Add(30*time.Second))})
	require.Equal(t, 200, status, "%v", out)
	assert.Equal(t, "urn:runtimeid:acr:otp", out["acr"])

	resp, body = do("POST", "/api/transfers", tokens["STALE"])
	assert.Equal(t, 200, resp.StatusCode, "the stale session stepped up: %s", body)
	assert.Contains(t, body, `"transfer":"accepted"`)
}

func TestBadFlags(t *testing.T) {
	var stderr bytes.Buffer
	err := run([]string{"-nope"}, io.Discard, &stderr)
	require.Error(t, err)
	assert.Contains(t, stderr.String(), "flag provided but not defined: -nope")

	err = run([]string{"-trusted-proxies", "10.0.0.0/33", "-addr", "127.0.0.1:0"}, io.Discard, io.Discard)
	require.Error(t, err)
	assert.Contains(t, err.Error(), "-trusted-proxies")

	err = run([]string{"-policy", "/does/not/exist.yaml"}, io.Discard, io.Discard)
	require.Error(t, err)
	assert.Contains(t, err.Error(), "/does/not/exist.yaml")
}

// startDefault serves the quickstart as it runs with no flags, with its
// own issuer; the server stops with the test.
func startDefault(t *testing.T) (*issuer, *httptest.Server) {
	t.Helper()
	o, err := parseFlags(nil, io.Discard)
	require.NoError(t, err)
	iss, err := newIssuer(o.issuer, o.audience)
	require.NoError(t, err)
	keys, err := runtimeid.StaticKeys(iss.public)
	require.NoError(t, err)
	svc, err := newService(context.Background(), o, keys, time.Now, slog.New(slog.DiscardHandler))
	require.NoError(t, err)
	srv := httptest.NewServer(svc.handler)
	t.Cleanup(func() { srv.Close(); svc.Close() })
	return iss, srv
}
