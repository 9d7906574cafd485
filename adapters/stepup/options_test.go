package stepup

import (
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestOptionsRefused(t *testing.T) {
	cases := map[string]func(*Options){
		"no token":          func(o *Options) { o.Token.Issuer = "" },
		"relative base":     func(o *Options) { o.BasePath = "stepup" },
		"trailing slash":    func(o *Options) { o.BasePath = "/stepup/" },
		"odd base":          func(o *Options) { o.BasePath = "/step up" },
		"negative tries":    func(o *Options) { o.MaxAttempts = -1 },
		"back-off over max": func(o *Options) { o.BackOff, o.MaxBackOff = time.Hour, time.Minute },
		"negative ttl":      func(o *Options) { o.ChallengeTTL = -time.Second },
		"rpid, no origins":  func(o *Options) { o.RPID = "localhost" },
		"bad key":           func(o *Options) { o.EncryptionKeys = []EncryptionKey{{ID: "k"}} },
	}
	h := newHarness(t)
	for name, change := range cases {
		t.Run(name, func(t *testing.T) {
			o := Options{Token: h.tokenConfig()}
			change(&o)
			_, err := New(o)
			assert.ErrorIs(t, err, ErrOptions)
		})
	}
	_, err := New(Options{Token: h.tokenConfig()})
	assert.NoError(t, err, "every other field has a default")
}

func TestCookieAuthenticatedPostNeedsOrigin(t *testing.T) {
	h := newHarness(t, func(o *Options) { o.TokenCookie = "tok" })
	tok := h.token("alice", "s1", 0)
	cases := []struct {
		name, origin string
		status       int
	}{
		{"no origin", "", 403},
		{"another site", "https://evil.example", 403},
		{"this site", "http://example.com", 200},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r := httptest.NewRequest("POST", "/stepup/enroll/otp", strings.NewReader(`{}`))
			r.Header.Set("Content-Type", "application/json")
			r.Header.Set("Cookie", "tok="+tok)
			if c.origin != "" {
				r.Header.Set("Origin", c.origin)
			}
			w := httptest.NewRecorder()
			h.h.ServeHTTP(w, r)
			assert.Equal(t, c.status, w.Code, w.Body.String())
		})
	}

	// A GET with the cookie needs no Origin.
	r := httptest.NewRequest("GET", "/stepup/status", nil)
	r.Header.Set("Cookie", "tok="+tok)
	w := httptest.NewRecorder()
	h.h.ServeHTTP(w, r)
	assert.Equal(t, 200, w.Code)
	assert.JSONEq(t, `{"factors":{"passkeys":0,"otp":false},"step_up":null}`, w.Body.String())
}

func TestCookieToken(t *testing.T) {
	var got string
	h := CookieToken("tok")(httptestHandler(&got))
	cases := []struct{ header, cookie, want string }{
		{"", "abc", "Bearer abc"},
		{"Bearer own", "abc", "Bearer own"},
		{"", "", ""},
	}
	for _, c := range cases {
		r := httptest.NewRequest("GET", "/", nil)
		if c.header != "" {
			r.Header.Set("Authorization", c.header)
		}
		if c.cookie != "" {
			r.Header.Set("Cookie", "tok="+c.cookie)
		}
		h.ServeHTTP(httptest.NewRecorder(), r)
		assert.Equal(t, c.want, got)
	}
}

func TestPage(t *testing.T) {
	h := newHarness(t)
	tok := h.token("alice", "s1", 0)
	h.enrollOTP(tok)

	w := h.do("GET", "/stepup/?return_to=%2Fapi%2Fexport&max_age=300", tok, nil)
	require.Equal(t, 200, w.Code)
	body := w.Body.String()
	csp := w.Header().Get("Content-Security-Policy")
	assert.Contains(t, csp, "default-src 'none'")
	assert.Contains(t, csp, "frame-ancestors 'none'")
	assert.Equal(t, 2, strings.Count(body, `nonce="`), "one style, one script")
	assert.Contains(t, body, `data-return="/api/export"`)
	assert.Contains(t, body, `(within 5 minutes)`)
	assert.Contains(t, body, `id="otp"`)
	assert.NotContains(t, body, `id="passkey"`, "passkeys are not configured")
	assert.NotContains(t, body, "<script>", "no external or unnonced script")

	// Hostile acr_values are shown escaped, never as markup.
	w = h.do("GET", `/stepup/?acr_values=%22%3E%3Cscript%3Ealert(1)%3C/script%3E`, tok, nil)
	require.Equal(t, 200, w.Code)
	assert.NotContains(t, w.Body.String(), "<script>alert(1)")
	assert.Contains(t, w.Body.String(), "cannot meet the authentication")

	w = h.do("GET", "/stepup/?max_age=soon", tok, nil)
	assert.Equal(t, 400, w.Code)
}
