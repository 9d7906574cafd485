package main

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pquerna/otp/totp"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/runtimeid/runtimeid"
)

// The browser flow is driven here with a cookie jar, not a browser:
// the headless-Chromium helpers of adapters/stepup live in its test
// files, which another module cannot import.

// signInServer is the quickstart as run with no flags, listening on a
// loopback port, with an injected clock.
type signInServer struct {
	iss   *issuer
	base  string // the origin browsers use: http://localhost:port
	addr  string // the listener: 127.0.0.1:port
	clock atomic.Int64
}

func (s *signInServer) now() time.Time { return time.Unix(0, s.clock.Load()) }

func (s *signInServer) advance(d time.Duration) { s.clock.Add(int64(d)) }

func startSignIn(t *testing.T) *signInServer {
	t.Helper()
	s := &signInServer{}
	s.clock.Store(time.Date(2026, 5, 21, 12, 0, 0, 0, time.UTC).UnixNano())
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	s.addr = ln.Addr().String()
	_, port, err := net.SplitHostPort(s.addr)
	require.NoError(t, err)
	s.base = "http://localhost:" + port

	o, err := parseFlags([]string{"-addr", s.addr}, io.Discard)
	require.NoError(t, err)
	s.iss, err = newIssuer(o.issuer, o.audience)
	require.NoError(t, err)
	o.signer = s.iss
	keys, err := runtimeid.StaticKeys(s.iss.public)
	require.NoError(t, err)
	svc, err := newService(context.Background(), o, keys, s.now,
		slog.New(slog.DiscardHandler))
	require.NoError(t, err)

	srv := httptest.NewUnstartedServer(svc.handler)
	srv.Listener.Close()
	srv.Listener = ln
	srv.Start()
	t.Cleanup(func() { srv.Close(); svc.Close() })
	return s
}

// browser is a client with a cookie jar that does not follow
// redirects, so that each answer is seen.
func browser(t *testing.T) *http.Client {
	jar, err := cookiejar.New(nil)
	require.NoError(t, err)
	return &http.Client{Jar: jar,
		CheckRedirect: func(*http.Request, []*http.Request) error {
			return http.ErrUseLastResponse
		}}
}

// call sends a request and returns the answer with its body read.
func call(t *testing.T, c *http.Client, req *http.Request) (*http.Response, string) {
	t.Helper()
	resp, err := c.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	return resp, string(body)
}

// navigate is a browser's GET of a page.
func navigate(t *testing.T, c *http.Client, url string) (*http.Response, string) {
	t.Helper()
	req, err := http.NewRequest("GET", url, nil)
	require.NoError(t, err)
	req.Header.Set("Accept", "text/html,application/xhtml+xml")
	return call(t, c, req)
}

// submit posts the sign-in form as a page of origin does.
func submit(t *testing.T, c *http.Client, url, origin string,
	form url.Values) (*http.Response, string) {
	t.Helper()
	req, err := http.NewRequest("POST", url, strings.NewReader(form.Encode()))
	require.NoError(t, err)
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	if origin != "" {
		req.Header.Set("Origin", origin)
	}
	return call(t, c, req)
}

// stepUpAPI posts JSON to the step-up module: with a bearer token, as
// the demo does, or with the cookie and the page's Origin.
func stepUpAPI(t *testing.T, c *http.Client, s *signInServer, path, token string,
	body any) (int, map[string]any) {
	t.Helper()
	data, err := json.Marshal(body)
	require.NoError(t, err)
	req, err := http.NewRequest("POST", s.base+path, bytes.NewReader(data))
	require.NoError(t, err)
	req.Header.Set("Content-Type", "application/json")
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	} else {
		req.Header.Set("Origin", s.base)
	}
	resp, text := call(t, c, req)
	var out map[string]any
	require.NoError(t, json.Unmarshal([]byte(text), &out), text)
	return resp.StatusCode, out
}

var signInHeaders = map[string]string{
	"Content-Security-Policy": "default-src 'none'; base-uri 'none'; " +
		"form-action 'self'; frame-ancestors 'none'",
	"Content-Type":           "text/html; charset=utf-8",
	"Cache-Control":          "no-store",
	"Referrer-Policy":        "no-referrer",
	"X-Content-Type-Options": "nosniff",
}

func assertPage(t *testing.T, resp *http.Response) {
	t.Helper()
	assert.Equal(t, http.StatusOK, resp.StatusCode)
	for k, v := range signInHeaders {
		assert.Equal(t, v, resp.Header.Get(k), k)
	}
}

// TestSignInStepUp walks the browser flow a newcomer walks by hand:
// sign in with an hour-old login, get sent from a high-sensitivity page
// to the step-up page, answer with an authenticator code and land back
// on the page, which now answers.
func TestSignInStepUp(t *testing.T) {
	s := startSignIn(t)
	c := browser(t)

	// The form, with its warning.
	resp, body := navigate(t, c, s.base+"/signin")
	assertPage(t, resp)
	assert.Contains(t, body, "never run in production")
	assert.Contains(t, body, `<form method="post" action="/signin">`)
	assert.Contains(t, body, `value="stale"> an hour ago</label>`)

	// Signing in sets the cookie and lists what to try.
	resp, body = submit(t, c, s.base+"/signin", s.base,
		url.Values{"user": {"alice"}, "login": {"stale"}})
	require.Equal(t, http.StatusSeeOther, resp.StatusCode, body)
	assert.Equal(t, "/signin/next?login=stale&user=alice", resp.Header.Get("Location"))
	cookies := resp.Cookies()
	require.Len(t, cookies, 1)
	token := cookies[0].Value
	assert.Equal(t, tokenCookie+"="+token+"; Path=/; Max-Age=3600; HttpOnly; SameSite=Lax",
		resp.Header.Get("Set-Cookie"))
	resp, body = navigate(t, c, s.base+resp.Header.Get("Location"))
	assertPage(t, resp)
	assert.Contains(t, body, "Signed in as alice, logged in an hour ago")
	assert.Contains(t, body, `<a href="/api/export">GET /api/export</a>`)

	// A low-sensitivity page answers; a high one sends the browser to
	// the step-up page.
	resp, body = navigate(t, c, s.base+"/api/orders")
	assert.Equal(t, http.StatusOK, resp.StatusCode)
	assert.Contains(t, body, `"subject":"alice"`)
	resp, _ = navigate(t, c, s.base+"/api/export")
	require.Equal(t, http.StatusSeeOther, resp.StatusCode)
	stepUpPage := "/stepup/?max_age=300&return_to=%2Fapi%2Fexport"
	assert.Equal(t, stepUpPage, resp.Header.Get("Location"))
	resp, body = navigate(t, c, s.base+stepUpPage)
	assert.Equal(t, http.StatusOK, resp.StatusCode)
	assert.Equal(t, "text/html; charset=utf-8", resp.Header.Get("Content-Type"))
	assert.Contains(t, body, "alice")

	// An hour-old login cannot add the first factor.
	status, out := stepUpAPI(t, c, s, "/stepup/enroll/otp", "", map[string]any{})
	assert.Equal(t, http.StatusForbidden, status)
	assert.Equal(t, "step_up_required", out["error"])

	// Enroll an authenticator app as the demo does: a fresh login of
	// alice, by bearer token.
	fresh, err := s.iss.login("alice", "alice-enroll", s.now(), 0)
	require.NoError(t, err)
	status, out = stepUpAPI(t, c, s, "/stepup/enroll/otp", fresh, map[string]any{})
	require.Equal(t, http.StatusOK, status, "%v", out)
	secret, _ := out["secret"].(string)
	require.NotEmpty(t, secret)
	code := func() string {
		c, err := totp.GenerateCode(secret, s.now())
		require.NoError(t, err)
		return c
	}
	status, out = stepUpAPI(t, c, s, "/stepup/enroll/otp/confirm", fresh,
		map[string]string{"code": code()})
	require.Equal(t, http.StatusOK, status, "%v", out)

	// The browser answers with the app's next code, as the page does.
	s.advance(30 * time.Second)
	status, out = stepUpAPI(t, c, s, "/stepup/otp/verify", "",
		map[string]string{"code": code(), "return_to": "/api/export"})
	require.Equal(t, http.StatusOK, status, "%v", out)
	assert.Equal(t, "/api/export", out["return_to"])
	assert.Equal(t, "urn:runtimeid:acr:otp", out["acr"])

	// Back on the page: it answers.
	resp, body = navigate(t, c, s.base+"/api/export")
	assert.Equal(t, http.StatusOK, resp.StatusCode, body)
	assert.Contains(t, body, `"export":"customers.csv"`)
	assert.Contains(t, body, `"subject":"alice"`)
}

// TestSignInRefused: the sign-in sets no cookie for a cross-site or
// malformed request.
func TestSignInRefused(t *testing.T) {
	s := startSignIn(t)
	good := url.Values{"user": {"alice"}, "login": {"fresh"}}
	tests := []struct {
		name, url, origin string
		form              url.Values
		status            int
		body              string
	}{
		{"another site", "/signin", "http://evil.example", good, 403,
			"quickstart: cross-site sign-in refused\n"},
		{"no origin", "/signin", "", good, 403,
			"quickstart: cross-site sign-in refused\n"},
		{"opaque origin", "/signin", "null", good, 403,
			"quickstart: cross-site sign-in refused\n"},
		{"the address, not localhost", "http://" + s.addr + "/signin", s.base, good, 403,
			"quickstart: cross-site sign-in refused\n"},
		{"unknown user", "/signin", s.base,
			url.Values{"user": {"mallory"}, "login": {"fresh"}}, 400,
			"quickstart: unknown user or login age\n"},
		{"unknown age", "/signin", s.base,
			url.Values{"user": {"bob"}, "login": {"yesterday"}}, 400,
			"quickstart: unknown user or login age\n"},
		{"too large", "/signin", s.base,
			url.Values{"user": {"bob"}, "login": {strings.Repeat("x", 2000)}}, 400,
			"quickstart: unreadable sign-in form\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			target := tt.url
			if strings.HasPrefix(target, "/") {
				target = s.base + target
			}
			resp, body := submit(t, browser(t), target, tt.origin, tt.form)
			assert.Equal(t, tt.status, resp.StatusCode)
			assert.Equal(t, tt.body, body)
			assert.Empty(t, resp.Header.Values("Set-Cookie"))
		})
	}
}

// TestSignInPages: the form moves to the host name the step-up page
// accepts, and the next page shows only the form's own choices.
func TestSignInPages(t *testing.T) {
	s := startSignIn(t)
	c := browser(t)
	tests := []struct {
		url      string
		status   int
		location string
	}{
		{"http://" + s.addr + "/signin", 302, s.base + "/signin"},
		{s.base + "/signin/next?user=mallory&login=fresh", 303, "/signin"},
		{s.base + "/signin/next?user=bob&login=later", 303, "/signin"},
		{s.base + "/signin/next", 303, "/signin"},
	}
	for _, tt := range tests {
		resp, _ := navigate(t, c, tt.url)
		assert.Equal(t, tt.status, resp.StatusCode, tt.url)
		assert.Equal(t, tt.location, resp.Header.Get("Location"), tt.url)
	}

	resp, body := navigate(t, c, s.base+"/signin/next?user=bob&login=fresh")
	assertPage(t, resp)
	assert.Contains(t, body, "Signed in as bob, logged in just now")
	assert.Contains(t, body, `<a href="/stepup/">The step-up page</a>: add an authenticator app`)
}

// TestSignInMounted: tokens for anyone are handed out only on a
// loopback address, with the built-in issuer.
func TestSignInMounted(t *testing.T) {
	iss, err := newIssuer(demoIssuer, demoAudience)
	require.NoError(t, err)
	tests := []struct {
		addr   string
		signer *issuer
		url    string // "" when not mounted
	}{
		{"127.0.0.1:8080", iss, "http://localhost:8080/signin"},
		{"[::1]:8080", iss, "http://localhost:8080/signin"},
		{"localhost:9000", iss, "http://localhost:9000/signin"},
		{"127.0.0.2:8080", iss, "http://127.0.0.2:8080/signin"},
		{"127.0.0.1:8080", nil, ""}, // -jwks: no key to sign with
		{":8080", iss, ""},
		{"0.0.0.0:8080", iss, ""},
		{"192.0.2.10:8080", iss, ""},
		{"app.example:8080", iss, ""},
		{"no port", iss, ""},
	}
	for _, tt := range tests {
		si := newSignIn(tt.signer, tt.addr, time.Now)
		if tt.url == "" {
			assert.Nil(t, si, tt.addr)
			continue
		}
		require.NotNil(t, si, tt.addr)
		assert.Equal(t, tt.url, si.URL(), tt.addr)
	}

	// Through the service: not on every interface, and not with an
	// external step-up page, which the cookie would not reach.
	keys, err := runtimeid.StaticKeys(iss.public)
	require.NoError(t, err)
	services := []struct {
		args   []string
		status int // of GET /signin
	}{
		{[]string{"-addr", "127.0.0.1:8080"}, 200},
		{[]string{"-addr", ":8080"}, 404},
		{[]string{"-addr", "127.0.0.1:8080", "-stepup-url", "https://idp.example/up"}, 404},
	}
	for _, tt := range services {
		o, err := parseFlags(tt.args, io.Discard)
		require.NoError(t, err)
		o.signer = iss
		svc, err := newService(context.Background(), o, keys, time.Now,
			slog.New(slog.DiscardHandler))
		require.NoError(t, err)
		w := httptest.NewRecorder()
		svc.handler.ServeHTTP(w, httptest.NewRequest("GET", "http://localhost:8080/signin", nil))
		svc.Close()
		assert.Equal(t, tt.status, w.Code, "%v", tt.args)
	}
}

// TestSignInProxied: a sign-in that came through a proxy or tunnel
// (ngrok, cloudflared, nginx) to the loopback listener is refused,
// whatever Host and Origin the remote client wrote: the page hands out
// tokens for anyone, and loopback was its only guard.
func TestSignInProxied(t *testing.T) {
	s := startSignIn(t)
	good := url.Values{"user": {"alice"}, "login": {"fresh"}}
	for _, h := range []string{"Forwarded", "X-Forwarded-For",
		"X-Forwarded-Host", "X-Real-Ip"} {
		t.Run(h, func(t *testing.T) {
			req, err := http.NewRequest("POST", s.base+"/signin",
				strings.NewReader(good.Encode()))
			require.NoError(t, err)
			req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
			req.Header.Set("Origin", s.base)
			req.Header.Set(h, "203.0.113.9")
			resp, body := call(t, browser(t), req)
			assert.Equal(t, http.StatusForbidden, resp.StatusCode)
			assert.Equal(t, "quickstart: proxied sign-in refused\n", body)
			assert.Empty(t, resp.Header.Values("Set-Cookie"))
		})
	}
}
