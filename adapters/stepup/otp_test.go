package stepup

import (
	"encoding/json"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/pquerna/otp"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/runtimeid/runtimeid"
)

func TestOTPEnrollAndVerify(t *testing.T) {
	h := newHarness(t)
	fresh := h.token("alice", "s1", 0)
	w := h.do("POST", "/stepup/enroll/otp", fresh, map[string]any{})
	require.Equal(t, 200, w.Code, w.Body.String())
	var e OTPEnrollment
	require.NoError(t, json.Unmarshal(w.Body.Bytes(), &e))

	// The URI is a standard otpauth URI for the user, the QR a PNG.
	key, err := otp.NewKeyFromURL(e.URI)
	require.NoError(t, err)
	assert.Equal(t, "totp", key.Type())
	assert.Equal(t, "runtimeid", key.Issuer())
	assert.Equal(t, "alice", key.AccountName())
	assert.Equal(t, e.Secret, key.Secret())
	assert.Equal(t, uint64(30), key.Period())
	assert.True(t, strings.HasPrefix(e.QR, "data:image/png;base64,iVBORw0KGgo"))

	// Not active before it is confirmed.
	w = h.do("POST", "/stepup/otp/verify", fresh, map[string]string{"code": h.code(e.Secret)})
	assert.Equal(t, 409, w.Code)
	assert.Equal(t, CodeNotEnrolled, errorCode(t, w))
	confirm := map[string]string{"code": h.code(e.Secret)}
	w = h.do("POST", "/stepup/enroll/otp/confirm", fresh, confirm)
	require.Equal(t, 200, w.Code, w.Body.String())
	assert.JSONEq(t, `{"enrolled":"otp"}`, w.Body.String())

	// The confirming code is used: the next step's code steps up.
	h.clock.Add(30 * time.Second)
	stale := h.token("alice", "s1", time.Hour)
	w = h.do("POST", "/stepup/otp/verify", stale,
		map[string]string{"code": h.code(e.Secret), "return_to": "/api/export?x=1"})
	require.Equal(t, 200, w.Code, w.Body.String())
	assert.JSONEq(t, `{"acr":"urn:runtimeid:acr:otp","method":"otp",`+
		`"auth_time":"2026-05-01T12:00:30Z","device":"otp","return_to":"/api/export?x=1"}`,
		w.Body.String())

	// The session has stepped up; another session of alice has not.
	id := &runtimeid.Identity{Issuer: testIssuer, Subject: "alice", SessionID: "s1"}
	acr, at, ok := h.svc.StepUp(t.Context(), id, nil)
	assert.True(t, ok)
	assert.Equal(t, ACROTP, acr)
	assert.Equal(t, h.clock.Now(), at)
	other := &runtimeid.Identity{Issuer: testIssuer, Subject: "alice", SessionID: "s2"}
	_, _, ok = h.svc.StepUp(t.Context(), other, nil)
	assert.False(t, ok)
	h.noSecretsLogged(e.Secret, fresh, stale)
}

func TestOTPReplayRefused(t *testing.T) {
	h := newHarness(t)
	tok := h.token("alice", "s1", 0)
	secret := h.enrollOTP(tok)
	h.clock.Add(time.Minute)

	code := h.code(secret)
	w := h.do("POST", "/stepup/otp/verify", tok, map[string]string{"code": code})
	require.Equal(t, 200, w.Code, w.Body.String())

	// The same code again, from the same or another session, in the
	// same step or the next (within the skew): refused.
	other := h.token("alice", "s2", 0)
	for _, tk := range []string{tok, other} {
		w = h.do("POST", "/stepup/otp/verify", tk, map[string]string{"code": code})
		assert.Equal(t, 403, w.Code)
		assert.Equal(t, CodeVerification, errorCode(t, w))
	}
	h.clock.Add(30 * time.Second)
	w = h.do("POST", "/stepup/otp/verify", tok, map[string]string{"code": code})
	assert.Equal(t, 403, w.Code, "a used code one step late is still a replay")

	// A code of the step before the last accepted one is refused too.
	prev, err := totpAt(secret, h.clock.Now().Add(-60*time.Second))
	require.NoError(t, err)
	w = h.do("POST", "/stepup/otp/verify", tok, map[string]string{"code": prev})
	assert.Equal(t, 403, w.Code)

	// The new step's code is fresh.
	w = h.do("POST", "/stepup/otp/verify", tok, map[string]string{"code": h.code(secret)})
	assert.Equal(t, 200, w.Code, w.Body.String())
}

func TestOTPSkew(t *testing.T) {
	h := newHarness(t)
	tok := h.token("alice", "s1", 0)
	secret := h.enrollOTP(tok)
	h.clock.Add(10 * time.Minute)
	tests := []struct {
		name   string
		offset time.Duration
		want   int
	}{
		{"two steps early", -60 * time.Second, 403},
		{"one step early", -30 * time.Second, 200},
		{"one step late", 30 * time.Second, 200},
		{"two steps late", 60 * time.Second, 403},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h.clock.Add(5 * time.Minute) // a fresh step for each case
			code, err := totpAt(secret, h.clock.Now().Add(tt.offset))
			require.NoError(t, err)
			w := h.do("POST", "/stepup/otp/verify", tok, map[string]string{"code": code})
			assert.Equal(t, tt.want, w.Code, w.Body.String())
		})
	}
}

func TestAttemptLimits(t *testing.T) {
	h := newHarness(t)
	tok := h.token("alice", "s1", 0)
	secret := h.enrollOTP(tok)
	wrong := func(tk string) (int, string) {
		w := h.do("POST", "/stepup/otp/verify", tk, map[string]string{"code": "000000"})
		return w.Code, w.Header().Get("Retry-After")
	}
	if h.code(secret) == "000000" {
		t.Skip("the real code happens to be 000000")
	}

	// Five failures of the session, then every attempt waits: 30 s,
	// then 60 s after the next failure, and so on.
	for i := range 5 {
		code, _ := wrong(tok)
		require.Equal(t, 403, code, "attempt %d", i+1)
	}
	code, retry := wrong(tok)
	assert.Equal(t, 429, code)
	assert.Equal(t, "30", retry)
	w := h.do("POST", "/stepup/otp/verify", tok, map[string]string{"code": h.code(secret)})
	assert.Equal(t, 429, w.Code, "even the right code waits")
	assert.Equal(t, CodeTooManyAttempts, errorCode(t, w))

	h.clock.Add(30 * time.Second)
	code, _ = wrong(tok)
	assert.Equal(t, 403, code)
	code, retry = wrong(tok)
	assert.Equal(t, 429, code)
	assert.Equal(t, "60", retry)

	// Another session of the same user has its own count, but the
	// user's limit (ten) is near: four more failures reach it.
	other := h.token("alice", "s2", 0)
	for range 3 {
		code, _ = wrong(other)
		require.Equal(t, 403, code)
	}
	code, _ = wrong(other)
	assert.Equal(t, 403, code)
	code, retry = wrong(other)
	assert.Equal(t, 429, code, "the user's limit applies to every session")
	assert.Equal(t, "30", retry)

	// A success clears the counts.
	h.clock.Add(time.Hour)
	w = h.do("POST", "/stepup/otp/verify", tok, map[string]string{"code": h.code(secret)})
	require.Equal(t, 200, w.Code, w.Body.String())
	code, _ = wrong(tok)
	assert.Equal(t, 403, code)
}

func TestBackOffCapped(t *testing.T) {
	h := newHarness(t, func(o *Options) {
		o.MaxAttempts, o.BackOff, o.MaxBackOff = 1, time.Second, 4*time.Second
	})
	tok := h.token("alice", "s1", 0)
	h.enrollOTP(tok)
	var got []string
	for range 5 {
		h.clock.Add(time.Minute)
		h.do("POST", "/stepup/otp/verify", tok, map[string]string{"code": "abcdef"})
		w := h.do("POST", "/stepup/otp/verify", tok, map[string]string{"code": "abcdef"})
		got = append(got, w.Header().Get("Retry-After"))
	}
	assert.Equal(t, []string{"1", "2", "4", "4", "4"}, got)
}

func TestEnrollmentNeedsFreshAuthentication(t *testing.T) {
	h := newHarness(t)

	// The first factor: only with a recent login.
	stale := h.token("bob", "s1", time.Hour)
	w := h.do("POST", "/stepup/enroll/otp", stale, map[string]any{})
	assert.Equal(t, 403, w.Code)
	assert.Equal(t, CodeStepUpRequired, errorCode(t, w))
	fresh := h.token("bob", "s1", time.Minute)
	secret := h.enrollOTP(fresh)

	// Another factor: a recent login is not enough, a step-up is.
	h.clock.Add(time.Minute)
	fresh = h.token("bob", "s1", 0)
	w = h.do("POST", "/stepup/enroll/otp", fresh, map[string]any{})
	assert.Equal(t, 403, w.Code)
	assert.Equal(t, CodeStepUpRequired, errorCode(t, w))
	w = h.do("POST", "/stepup/otp/verify", fresh, map[string]string{"code": h.code(secret)})
	require.Equal(t, 200, w.Code)
	w = h.do("POST", "/stepup/enroll/otp", fresh, map[string]any{})
	assert.Equal(t, 200, w.Code)

	// Five minutes later, the step-up is too old to enroll with.
	h.clock.Add(5*time.Minute + time.Second)
	w = h.do("POST", "/stepup/enroll/otp", fresh, map[string]any{})
	assert.Equal(t, 403, w.Code)
}

func TestOpenRedirectRefused(t *testing.T) {
	h := newHarness(t)
	tok := h.token("alice", "s1", 0)
	secret := h.enrollOTP(tok)
	bad := []string{
		"//evil.example/x", `/\evil.example`, `\\evil.example`, "https://evil.example/",
		"http:evil.example", "javascript:alert(1)", "evil.example", "/a\nb", "/a\tb",
		"/\u2028x", "//", "data:text/html,x", " /x", strings.Repeat("/a", 1100),
	}
	for _, rt := range bad {
		t.Run(rt, func(t *testing.T) {
			w := h.do("POST", "/stepup/otp/verify", tok,
				map[string]string{"code": "123456", "return_to": rt})
			assert.Equal(t, 400, w.Code)
			assert.Equal(t, CodeInvalidRequest, errorCode(t, w))
			w = h.do("GET", "/stepup/?return_to="+url.QueryEscape(rt), tok, nil)
			assert.Equal(t, 400, w.Code)
		})
	}
	good := []string{"/", "/api/export", "/a?b=c&d=%2F%2Fe", "/a#frag", "/%2F%2Fevil.example"}
	for i, rt := range good {
		h.clock.Add(time.Minute)
		w := h.do("POST", "/stepup/otp/verify", tok,
			map[string]string{"code": h.code(secret), "return_to": rt})
		require.Equal(t, 200, w.Code, "case %d: %s", i, w.Body.String())
		var out completed
		require.NoError(t, json.Unmarshal(w.Body.Bytes(), &out))
		assert.Equal(t, rt, out.ReturnTo)
	}
}

func totpAt(secret string, at time.Time) (string, error) {
	return totpGenerate(secret, at)
}
