package decision

import (
	"errors"
	"net/http"
	"net/http/httptest"
	"strconv"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/runtimeid/runtimeid"
)

func enforcer(t testing.TB, opts Options) *Enforcer {
	t.Helper()
	e, err := NewEnforcer(opts)
	require.NoError(t, err)
	return e
}

func tokenErr(code, detail string) *runtimeid.Evaluation {
	return &runtimeid.Evaluation{
		Err: &runtimeid.TokenError{Code: code, Detail: detail,
			Err: errors.New("secret internals")},
		Decision: runtimeid.Decision{Outcome: runtimeid.Block, Rule: "token", Reason: code},
	}
}

func decided(o runtimeid.Outcome, reason string, s *runtimeid.StepUp) *runtimeid.Evaluation {
	return &runtimeid.Evaluation{
		Decision: runtimeid.Decision{Outcome: o, Rule: "r", Reason: reason, StepUp: s},
	}
}

type response struct {
	status int
	header http.Header
	body   string
}

func TestEnforce(t *testing.T) {
	stepUp := &runtimeid.StepUp{ACRValues: []string{"urn:a", "urn:b"},
		MaxAge: 5*time.Minute + 900*time.Millisecond}
	problem := func(status int, auth, body string) response {
		h := http.Header{
			"Content-Type":           {"application/problem+json"},
			"Cache-Control":          {"no-store"},
			"X-Content-Type-Options": {"nosniff"},
		}
		if auth != "" {
			h.Set("WWW-Authenticate", auth)
		}
		h.Set("Content-Length", strconv.Itoa(len(body)))
		return response{status: status, header: h, body: body}
	}
	evalErr := &runtimeid.Evaluation{
		Err: &runtimeid.EvaluationError{Stage: "policy", Err: errors.New("boom")},
		Decision: runtimeid.Decision{Outcome: runtimeid.Block, Rule: "error",
			Reason: runtimeid.CodeEvaluationError},
	}
	tests := []struct {
		name  string
		realm string
		ev    *runtimeid.Evaluation
		want  response
	}{
		{"missing token", "", tokenErr(runtimeid.CodeTokenMissing, "no access token"),
			problem(401, "Bearer",
				`{"type":"urn:runtimeid:problem:token_missing","title":"Unauthorized",`+
					`"status":401,"detail":"no access token","code":"token_missing"}`+"\n")},
		{"missing token with realm", "api", tokenErr(runtimeid.CodeTokenMissing, "no access token"),
			problem(401, `Bearer realm="api"`,
				`{"type":"urn:runtimeid:problem:token_missing","title":"Unauthorized",`+
					`"status":401,"detail":"no access token","code":"token_missing"}`+"\n")},
		{"invalid request", "api", tokenErr(runtimeid.CodeRequestInvalid,
			"more than one Authorization header"),
			problem(400, `Bearer realm="api", error="invalid_request",`+
				` error_description="more than one Authorization header"`,
				`{"type":"urn:runtimeid:problem:invalid_request","title":"Bad Request",`+
					`"status":400,"detail":"more than one Authorization header",`+
					`"code":"invalid_request"}`+"\n")},
		{"expired token", "", tokenErr(runtimeid.CodeTokenExpired, "token expired"),
			problem(401, `Bearer error="invalid_token", error_description="token expired"`,
				`{"type":"urn:runtimeid:problem:token_expired","title":"Unauthorized",`+
					`"status":401,"detail":"token expired","code":"token_expired"}`+"\n")},
		{"token error without detail", "", tokenErr(runtimeid.CodeTokenSignature, ""),
			problem(401, `Bearer error="invalid_token", error_description="The access token was refused."`,
				`{"type":"urn:runtimeid:problem:token_signature","title":"Unauthorized",`+
					`"status":401,"detail":"The access token was refused.",`+
					`"code":"token_signature"}`+"\n")},
		{"challenge", "api", decided(runtimeid.Challenge, "stale_authentication", stepUp),
			problem(401, `Bearer realm="api", error="insufficient_user_authentication",`+
				` error_description="step-up authentication required: stale_authentication",`+
				` acr_values="urn:a urn:b", max_age=300`,
				`{"type":"urn:runtimeid:problem:stale_authentication",`+
					`"title":"Step-up authentication required","status":401,`+
					`"detail":"A more recent or stronger authentication is required.",`+
					`"code":"stale_authentication"}`+"\n")},
		{"challenge without step-up", "", decided(runtimeid.Challenge, "high_risk", nil),
			problem(401, `Bearer error="insufficient_user_authentication",`+
				` error_description="step-up authentication required: high_risk"`,
				`{"type":"urn:runtimeid:problem:high_risk",`+
					`"title":"Step-up authentication required","status":401,`+
					`"detail":"A more recent or stronger authentication is required.",`+
					`"code":"high_risk"}`+"\n")},
		{"challenge with max_age only", "", decided(runtimeid.Challenge, "new_device",
			&runtimeid.StepUp{MaxAge: time.Minute}),
			problem(401, `Bearer error="insufficient_user_authentication",`+
				` error_description="step-up authentication required: new_device", max_age=60`,
				`{"type":"urn:runtimeid:problem:new_device",`+
					`"title":"Step-up authentication required","status":401,`+
					`"detail":"A more recent or stronger authentication is required.",`+
					`"code":"new_device"}`+"\n")},
		{"reason with quotes and CRLF", `a"b\c`, decided(runtimeid.Challenge,
			"say \"hi\"\\\r\nX-Evil: 1", nil),
			problem(401, `Bearer realm="a\"b\\c", error="insufficient_user_authentication",`+
				` error_description="step-up authentication required: say \"hi\"\\X-Evil: 1"`,
				`{"type":"urn:runtimeid:problem:say%20%22hi%22%5C%0D%0AX-Evil:%201",`+
					`"title":"Step-up authentication required","status":401,`+
					`"detail":"A more recent or stronger authentication is required.",`+
					`"code":"say \"hi\"\\\r\nX-Evil: 1"}`+"\n")},
		{"block", "", decided(runtimeid.Block, "impossible_travel", nil),
			problem(403, "",
				`{"type":"urn:runtimeid:problem:impossible_travel","title":"Forbidden",`+
					`"status":403,"detail":"The request was refused by policy.",`+
					`"code":"impossible_travel"}`+"\n")},
		{"evaluation error", "", evalErr,
			problem(403, "",
				`{"type":"urn:runtimeid:problem:evaluation_error","title":"Forbidden",`+
					`"status":403,"detail":"The request could not be evaluated.",`+
					`"code":"evaluation_error"}`+"\n")},
		{"nil evaluation", "", nil,
			problem(403, "",
				`{"type":"urn:runtimeid:problem:evaluation_error","title":"Forbidden",`+
					`"status":403,"detail":"The request could not be evaluated.",`+
					`"code":"evaluation_error"}`+"\n")},
		{"unset outcome", "", decided(runtimeid.OutcomeUnset, "", nil),
			problem(403, "",
				`{"type":"urn:runtimeid:problem:evaluation_error","title":"Forbidden",`+
					`"status":403,"detail":"The request could not be evaluated.",`+
					`"code":"evaluation_error"}`+"\n")},
		{"allow with an error", "", &runtimeid.Evaluation{Err: errors.New("x"),
			Decision: runtimeid.Decision{Outcome: runtimeid.Allow}},
			problem(403, "",
				`{"type":"urn:runtimeid:problem:evaluation_error","title":"Forbidden",`+
					`"status":403,"detail":"The request could not be evaluated.",`+
					`"code":"evaluation_error"}`+"\n")},
	}
	for _, tt := range tests {
		for _, method := range []string{http.MethodGet, http.MethodPost, http.MethodHead} {
			t.Run(tt.name+"/"+method, func(t *testing.T) {
				e := enforcer(t, Options{Realm: tt.realm})
				r := httptest.NewRequest(method, "/api/x", nil)
				r.Header.Set("Accept", "text/html")
				w := httptest.NewRecorder()
				require.False(t, e.Enforce(w, r, tt.ev))

				want := tt.want
				if method == http.MethodHead {
					want.body = ""
				}
				assert.Equal(t, want.status, w.Code)
				assert.Equal(t, want.header, w.Header())
				assert.Equal(t, want.body, w.Body.String())
				assert.NotContains(t, w.Body.String(), "secret internals")
			})
		}
	}
}

func TestAllow(t *testing.T) {
	e := enforcer(t, Options{StepUpURL: "/login"})
	for name, ev := range map[string]*runtimeid.Evaluation{
		"allow":      decided(runtimeid.Allow, "default", nil),
		"stepped up": {Decision: runtimeid.Decision{Outcome: runtimeid.Allow, SteppedUp: true}},
		"failed open": {Err: &runtimeid.EvaluationError{Stage: "risk"},
			Decision: runtimeid.Decision{Outcome: runtimeid.Allow, FailedOpen: true}},
	} {
		w := httptest.NewRecorder()
		assert.True(t, e.Enforce(w, httptest.NewRequest("GET", "/", nil), ev), name)
		assert.Empty(t, w.Header(), name)
		assert.Equal(t, 200, w.Code, name)
		assert.False(t, w.Flushed || w.Body.Len() > 0, name)
	}
}

func TestRedirect(t *testing.T) {
	stepUp := &runtimeid.StepUp{ACRValues: []string{"urn:a", "urn:b"}, MaxAge: 5 * time.Minute}
	tests := []struct {
		name, stepUpURL, param, target, accept string
		step                                   *runtimeid.StepUp
		want                                   string
	}{
		{"path", "/login", "", "/account/delete?confirm=1&x=a%20b", "text/html", stepUp,
			"/login?acr_values=urn%3Aa+urn%3Ab&max_age=300" +
				"&return_to=%2Faccount%2Fdelete%3Fconfirm%3D1%26x%3Da%2520b"},
		{"absolute with query", "https://login.test/step-up?client=web", "next", "/a",
			"text/html,application/xhtml+xml;q=0.9", &runtimeid.StepUp{MaxAge: time.Minute},
			"https://login.test/step-up?client=web&max_age=60&next=%2Fa"},
		{"no step-up", "/login", "", "/a", "TEXT/HTML", nil, "/login?return_to=%2Fa"},
		{"protocol-relative path", "/login", "", "//evil.test/x", "text/html", nil,
			"/login?return_to=%2Fevil.test%2Fx"},
		{"absolute-form request", "/login", "", "http://evil.test/x?y=1", "text/html", nil,
			"/login?return_to=%2Fx%3Fy%3D1"},
	}
	for _, tt := range tests {
		for _, method := range []string{http.MethodGet, http.MethodHead} {
			t.Run(tt.name+"/"+method, func(t *testing.T) {
				e := enforcer(t, Options{StepUpURL: tt.stepUpURL, ReturnParam: tt.param})
				r := httptest.NewRequest(method, tt.target, nil)
				r.Header.Set("Accept", tt.accept)
				w := httptest.NewRecorder()
				require.False(t, e.Enforce(w, r, decided(runtimeid.Challenge, "x", tt.step)))
				assert.Equal(t, http.StatusSeeOther, w.Code)
				assert.Equal(t, http.Header{
					"Location":       {tt.want},
					"Vary":           {"Accept"},
					"Cache-Control":  {"no-store"},
					"Content-Length": {"0"},
				}, w.Header())
				assert.Empty(t, w.Body.String())
			})
		}
	}
}

func TestNoRedirect(t *testing.T) {
	e := enforcer(t, Options{StepUpURL: "/login"})
	for _, tt := range []struct{ method, accept string }{
		{http.MethodGet, "application/json"},
		{http.MethodGet, ""},
		{http.MethodPost, "text/html"},
		{http.MethodDelete, "text/html"},
	} {
		r := httptest.NewRequest(tt.method, "/a", nil)
		r.Header.Set("Accept", tt.accept)
		w := httptest.NewRecorder()
		require.False(t, e.Enforce(w, r, decided(runtimeid.Challenge, "x", nil)))
		assert.Equal(t, http.StatusUnauthorized, w.Code, tt)
		assert.Equal(t, "Accept", w.Header().Get("Vary"), tt)
		assert.Equal(t, `Bearer error="insufficient_user_authentication",`+
			` error_description="step-up authentication required: x"`,
			w.Header().Get("WWW-Authenticate"), tt)
	}
}

func TestNewEnforcerErrors(t *testing.T) {
	for _, opts := range []Options{
		{StepUpURL: "login"},
		{StepUpURL: "javascript:alert(1)"},
		{StepUpURL: "//evil.test/login"},
		{StepUpURL: "https://user@login.test/"},
		{StepUpURL: "/login#frag"},
		{StepUpURL: "%zz"},
		{Realm: "a\r\nb"},
		{ReturnParam: "a b"},
	} {
		_, err := NewEnforcer(opts)
		require.ErrorIs(t, err, ErrOptions, "%+v", opts)
	}
}

func BenchmarkEnforceAllow(b *testing.B) {
	e := enforcer(b, Options{StepUpURL: "/login"})
	r := httptest.NewRequest("GET", "/", nil)
	w := httptest.NewRecorder()
	ev := decided(runtimeid.Allow, "default", nil)
	b.ReportAllocs()
	for b.Loop() {
		if !e.Enforce(w, r, ev) {
			b.Fatal("refused")
		}
	}
}

func BenchmarkEnforceChallenge(b *testing.B) {
	e := enforcer(b, Options{})
	r := httptest.NewRequest("GET", "/", nil)
	ev := decided(runtimeid.Challenge, "x", &runtimeid.StepUp{MaxAge: time.Minute})
	b.ReportAllocs()
	for b.Loop() {
		e.Enforce(httptest.NewRecorder(), r, ev)
	}
}
