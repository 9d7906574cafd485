package stepup

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/runtimeid/runtimeid"
	"github.com/runtimeid/runtimeid/decision"
	"github.com/runtimeid/runtimeid/policy"
)

// app is a protected API whose engine takes step-ups from the service.
func (h *harness) app(stepUpURL string) http.Handler {
	h.t.Helper()
	enf, err := decision.NewEnforcer(decision.Options{StepUpURL: stepUpURL, Realm: "test"})
	require.NoError(h.t, err)
	eng, err := runtimeid.New(runtimeid.Config{
		Token: h.tokenConfig(), Policy: policy.Default(), Enforcer: enf,
		StepUps: h.svc, Now: h.clock.Now,
	})
	require.NoError(h.t, err)
	mux := http.NewServeMux()
	mux.Handle("POST /api/transfers", eng.Protect("POST /api/transfers", runtimeid.High)(
		http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			d := runtimeid.DecisionFrom(r.Context())
			_ = json.NewEncoder(w).Encode(map[string]any{"transfer": "accepted",
				"stepped_up": d.SteppedUp})
		})))
	mux.Handle("/stepup/", h.h)
	return mux
}

// TestAPIFlow: an API client gets an RFC 9470 challenge, answers it with
// a code at the JSON endpoint, retries with the same token and passes.
func TestAPIFlow(t *testing.T) {
	h := newHarness(t)
	secret := h.enrollOTP(h.token("alice", "s1", 0))
	h.clock.Add(time.Hour)
	app := h.app("")
	stale := h.token("alice", "s1", time.Hour)
	transfer := func() *httptest.ResponseRecorder {
		r := httptest.NewRequest("POST", "/api/transfers", nil)
		r.Header.Set("Authorization", "Bearer "+stale)
		w := httptest.NewRecorder()
		app.ServeHTTP(w, r)
		return w
	}

	w := transfer()
	require.Equal(t, 401, w.Code)
	assert.Equal(t, `Bearer realm="test", error="insufficient_user_authentication", `+
		`error_description="step-up authentication required: stale_authentication", `+
		`max_age=300`, w.Header().Get("WWW-Authenticate"))

	w = h.do("POST", "/stepup/otp/verify", stale, map[string]string{"code": h.code(secret)})
	require.Equal(t, 200, w.Code, w.Body.String())

	w = transfer()
	assert.Equal(t, 200, w.Code)
	assert.JSONEq(t, `{"transfer":"accepted","stepped_up":true}`, w.Body.String())

	// Five minutes on, max_age=300 is no longer met.
	h.clock.Add(5*time.Minute + time.Second)
	assert.Equal(t, 401, transfer().Code)
}

// TestAPIFlowACRValues: a rule that demands a passkey is not met by a
// code, and the endpoint says so before checking the code.
func TestAPIFlowACRValues(t *testing.T) {
	h := newHarness(t)
	tok := h.token("alice", "s1", 0)
	secret := h.enrollOTP(tok)
	h.clock.Add(time.Minute)
	w := h.do("POST", "/stepup/otp/verify", tok, map[string]string{
		"code": h.code(secret), "acr_values": ACRPasskey + " " + ACRPasskeyPresence})
	assert.Equal(t, 400, w.Code)
	assert.Equal(t, CodeMethodNotAccepted, errorCode(t, w))

	w = h.do("POST", "/stepup/otp/verify", tok, map[string]string{
		"code": h.code(secret), "acr_values": "urn:other " + ACROTP})
	assert.Equal(t, 200, w.Code)
	su := runtimeid.StepUp{ACRValues: []string{ACRPasskey}}
	acr, at, ok := h.svc.StepUp(t.Context(),
		&runtimeid.Identity{Issuer: testIssuer, Subject: "alice", SessionID: "s1"}, &su)
	require.True(t, ok)
	assert.False(t, su.SatisfiedBy(&runtimeid.Identity{ACR: acr, AuthTime: at}, h.clock.Now()))
}

func TestEndpointsRequireIdentity(t *testing.T) {
	h := newHarness(t)
	paths := []string{"/stepup/otp/verify", "/stepup/enroll/otp", "/stepup/enroll/otp/confirm"}
	for _, p := range paths {
		for _, tok := range []string{"", "garbage", h.token("alice", "s1", 0) + "x"} {
			w := h.do("POST", p, tok, map[string]string{"code": "123456"})
			assert.Equal(t, 401, w.Code, p)
			assert.Equal(t, CodeUnauthenticated, errorCode(t, w))
		}
	}
	w := h.do("GET", "/stepup/status", "", nil)
	assert.Equal(t, 401, w.Code)
	w = h.do("GET", "/stepup/", "", nil)
	assert.Equal(t, 401, w.Code)

	// A token with neither sid nor jti names no session.
	w = h.do("POST", "/stepup/otp/verify", h.token("alice", "", 0), map[string]string{})
	assert.Equal(t, 409, w.Code, "jti stands in for a missing sid")
}

func TestRequestShape(t *testing.T) {
	h := newHarness(t)
	tok := h.token("alice", "s1", 0)
	tests := []struct {
		name, ctype, body string
		status            int
		code              string
	}{
		{"form post", "application/x-www-form-urlencoded", "code=1", 415, CodeUnsupportedMedia},
		{"no type", "", `{}`, 415, CodeUnsupportedMedia},
		{"bad json", "application/json", `{"code":`, 400, CodeInvalidRequest},
		{"wrong type", "application/json", `{"code":5}`, 400, CodeInvalidRequest},
		{"too large", "application/json", `{"code":"` + string(make([]byte, 70<<10)) + `"}`,
			400, CodeInvalidRequest},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := httptest.NewRequest("POST", "/stepup/otp/verify",
				stringsReader(tt.body))
			r.Header.Set("Authorization", "Bearer "+tok)
			if tt.ctype != "" {
				r.Header.Set("Content-Type", tt.ctype)
			}
			w := httptest.NewRecorder()
			h.h.ServeHTTP(w, r)
			assert.Equal(t, tt.status, w.Code)
			assert.Equal(t, tt.code, errorCode(t, w))
			assert.Equal(t, "no-store", w.Header().Get("Cache-Control"))
		})
	}
}
