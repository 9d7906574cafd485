package upstream

import (
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

var (
	key = []byte("0123456789abcdef0123456789abcdef")
	t0  = time.Date(2025, 3, 1, 10, 0, 0, 0, time.UTC)
)

func signed(t *testing.T, v Values) *http.Request {
	t.Helper()
	s, err := NewSigner(key, "")
	require.NoError(t, err)
	r := httptest.NewRequest("POST", "/api/transfers?x=1", nil)
	r.Header.Set("X-Runtimeid-Subject", "mallory")
	s.Sign(r.Header, r.Method, r.URL.RequestURI(), v)
	return r
}

func verifier(t *testing.T, now time.Time) *Verifier {
	v, err := NewVerifier(key, VerifierOptions{Now: func() time.Time { return now }})
	require.NoError(t, err)
	return v
}

func TestRoundTrip(t *testing.T) {
	in := Values{Subject: "zoë%\n", Session: "s", Outcome: "allow", Rule: "default",
		Score: 0.1234, Findings: []string{"new_device", "first_seen"}, ACR: "mfa", Time: t0}
	r := signed(t, in)
	assert.Equal(t, "zo%C3%AB%25%0A", r.Header.Get("X-Runtimeid-Subject"))
	assert.Equal(t, "0.123", r.Header.Get("X-Runtimeid-Score"))
	assert.Equal(t, "1740823200", r.Header.Get("X-Runtimeid-Timestamp"))

	got, err := verifier(t, t0.Add(time.Minute)).Verify(r)
	require.NoError(t, err)
	in.Score = 0.123
	assert.Equal(t, in, got)
}

func TestVerifyRefuses(t *testing.T) {
	tests := []struct {
		name   string
		change func(r *http.Request)
		now    time.Time
		want   string
	}{
		{"other path", func(r *http.Request) { r.URL.Path = "/api/other" }, t0,
			"upstream: invalid signature: signature does not match"},
		{"other method", func(r *http.Request) { r.Method = "GET" }, t0,
			"upstream: invalid signature: signature does not match"},
		{"changed value", func(r *http.Request) { r.Header.Set("X-Runtimeid-Rule", "x") }, t0,
			"upstream: invalid signature: signature does not match"},
		{"repeated", func(r *http.Request) { r.Header.Add("X-Runtimeid-Subject", "bob") }, t0,
			"upstream: invalid signature: 2 X-Runtimeid-Subject headers, want 1"},
		{"missing", func(r *http.Request) { r.Header.Del("X-Runtimeid-Signature") }, t0,
			"upstream: invalid signature: 0 X-Runtimeid-Signature headers, want 1"},
		{"old", func(*http.Request) {}, t0.Add(3 * time.Minute),
			"upstream: invalid signature: signed 3m0s ago, at most 2m0s"},
		{"future", func(*http.Request) {}, t0.Add(-3 * time.Minute),
			"upstream: invalid signature: signed -3m0s ago, at most 2m0s"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := signed(t, Values{Subject: "alice", Outcome: "allow", Time: t0})
			tt.change(r)
			_, err := verifier(t, tt.now).Verify(r)
			assert.ErrorIs(t, err, ErrSignature)
			assert.EqualError(t, err, tt.want)
		})
	}

	other, err := NewVerifier([]byte("another key of at least 32 bytes!!"), VerifierOptions{
		Now: func() time.Time { return t0 }})
	require.NoError(t, err)
	_, err = other.Verify(signed(t, Values{Time: t0}))
	assert.ErrorIs(t, err, ErrSignature)

	_, err = NewSigner([]byte("short"), "")
	assert.ErrorIs(t, err, ErrKey)
	_, err = NewVerifier([]byte("short"), VerifierOptions{})
	assert.ErrorIs(t, err, ErrKey)
}

func TestStrip(t *testing.T) {
	h := http.Header{"X-Runtimeid-A": {"1"}, "X-Other": {"2"}, "X-Runtime": {"3"}}
	h["x-runtimeid-raw"] = []string{"4"}
	Strip(h, "")
	assert.Equal(t, http.Header{"X-Other": {"2"}, "X-Runtime": {"3"}}, h)
	h = http.Header{"X-Gw-A": {"1"}, "X-Runtimeid-A": {"2"}}
	Strip(h, "x-gw-")
	assert.Equal(t, http.Header{"X-Runtimeid-A": {"2"}}, h)
}

func FuzzUnescape(f *testing.F) {
	f.Add("a%25b")
	f.Add("%")
	f.Add("%zz%4")
	f.Fuzz(func(t *testing.T, s string) {
		if u, err := unescape(escape(s)); err != nil || u != s {
			t.Fatalf("round trip of %q gave %q, %v", s, u, err)
		}
		unescape(s)
	})
}
