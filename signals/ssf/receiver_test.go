package ssf

import (
	"bytes"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/runtimeid/runtimeid"
)

func newTestReceiver(t testing.TB, s *signer, edit func(*ReceiverOptions)) *Receiver {
	t.Helper()
	opts := ReceiverOptions{
		Issuer: txIssuer, Audience: rxAudience, Keys: s.keys,
		State: NewState(StateOptions{}),
		Now:   func() time.Time { return t0 },
	}
	if edit != nil {
		edit(&opts)
	}
	r, err := NewReceiver(opts)
	require.NoError(t, err)
	return r
}

func push(r http.Handler, body []byte, edit func(*http.Request)) *httptest.ResponseRecorder {
	req := httptest.NewRequest(http.MethodPost, "/ssf/events", bytes.NewReader(body))
	req.Header.Set("Content-Type", "application/secevent+jwt")
	if edit != nil {
		edit(req)
	}
	w := httptest.NewRecorder()
	r.ServeHTTP(w, req)
	return w
}

func errBody(t *testing.T, w *httptest.ResponseRecorder) errorBody {
	t.Helper()
	var b errorBody
	require.NoError(t, json.Unmarshal(w.Body.Bytes(), &b), w.Body.String())
	return b
}

func TestReceiverAccepts(t *testing.T) {
	s := newSigner(t, "k1")
	r := newTestReceiver(t, s, nil)
	set := s.sign(t, "", claims("j1", RISCAccountDisabled, IssSub(tokIssuer, "alice"), nil))

	w := push(r, set, nil)
	assert.Equal(t, http.StatusAccepted, w.Code)
	assert.Empty(t, w.Body.String())
	assert.Equal(t, ReasonAccountDisabled, validate(t, r.opts.State, identity("alice", "", t0)))

	// The same SET again, after the account was enabled: a retry is
	// accepted and not applied a second time.
	enable := s.sign(t, "", claims("j2", RISCAccountEnabled, IssSub(tokIssuer, "alice"), nil))
	assert.Equal(t, http.StatusAccepted, push(r, enable, nil).Code)
	assert.Equal(t, http.StatusAccepted, push(r, set, nil).Code)
	assert.Equal(t, "", validate(t, r.opts.State, identity("alice", "", t0)))
}

func TestReceiverVerification(t *testing.T) {
	s := newSigner(t, "k1")
	r := newTestReceiver(t, s, nil)
	_, ok := r.LastVerification()
	assert.False(t, ok)

	set := s.sign(t, "", claims("v1", SSFVerification, Opaque("stream-1"), map[string]any{"state": "abc"}))
	assert.Equal(t, http.StatusAccepted, push(r, set, nil).Code)
	v, ok := r.LastVerification()
	assert.True(t, ok)
	assert.Equal(t, Verification{State: "abc", At: t0}, v)

	set = s.sign(t, "", claims("u1", SSFStreamUpdated, Opaque("stream-1"),
		map[string]any{"status": "paused", "reason": "Internal error"}))
	assert.Equal(t, http.StatusAccepted, push(r, set, nil).Code)
	st, ok := r.Stream()
	assert.True(t, ok)
	assert.Equal(t, StreamStatus{Status: "paused", Reason: "Internal error", At: t0}, st)
}

func TestReceiverRefuses(t *testing.T) {
	s := newSigner(t, "k1")
	other := newSigner(t, "k1") // same kid, another key
	alice := IssSub(tokIssuer, "alice")
	good := func() map[string]any { return claims("j1", RISCAccountDisabled, alice, nil) }
	with := func(k string, v any) map[string]any {
		c := good()
		if v == nil {
			delete(c, k)
		} else {
			c[k] = v
		}
		return c
	}
	hs256 := "eyJhbGciOiJIUzI1NiIsInR5cCI6InNlY2V2ZW50K2p3dCIsImtpZCI6ImsxIn0.e30.c2ln"
	none := "eyJhbGciOiJub25lIiwidHlwIjoic2VjZXZlbnQrand0In0.e30."

	tests := []struct {
		name   string
		body   []byte
		edit   func(*http.Request)
		status int
		code   string
		desc   string
	}{
		{"wrong typ", s.sign(t, "JWT", good()), nil, 400, CodeInvalidRequest, "typ header must be secevent+jwt"},
		{"typ at+jwt", s.sign(t, "at+jwt", good()), nil, 400, CodeInvalidRequest, "typ header must be secevent+jwt"},
		{"alg none", []byte(none), nil, 400, CodeInvalidKey, "unsigned SETs are refused"},
		{"alg HS256 with the public key", []byte(hs256), nil,
			400, CodeInvalidKey, "algorithm not allowed for this key"},
		{"unknown kid", newSigner(t, "k2").sign(t, "", good()), nil, 400, CodeInvalidKey, "unknown key"},
		{"bad signature", other.sign(t, "", good()), nil, 400, CodeAuthenticationFailed, "invalid signature"},
		{"JWE shape", []byte("a.b.c.d.e"), nil, 400, CodeInvalidRequest, "not a compact JWS"},
		{"garbage", []byte("hello"), nil, 400, CodeInvalidRequest, "not a compact JWS"},
		{"wrong issuer", s.sign(t, "", with("iss", "https://evil.example/")), nil,
			400, CodeInvalidIssuer, "issuer not accepted"},
		{"wrong audience", s.sign(t, "", with("aud", []string{"x", "y"})), nil,
			400, CodeInvalidAudience, "audience not accepted"},
		{"no audience", s.sign(t, "", with("aud", nil)), nil, 400, CodeInvalidAudience, "audience not accepted"},
		{"old iat", s.sign(t, "", with("iat", t0.Add(-25*time.Hour).Unix())), nil,
			400, CodeInvalidRequest, "SET too old"},
		{"future iat", s.sign(t, "", with("iat", t0.Add(2*time.Minute).Unix())), nil,
			400, CodeInvalidRequest, "iat is in the future"},
		{"expired", s.sign(t, "", with("exp", t0.Add(-2*time.Minute).Unix())), nil,
			400, CodeInvalidRequest, "SET expired"},
		{"no jti", s.sign(t, "", with("jti", nil)), nil, 400, CodeInvalidRequest, "jti claim required"},
		{"garbage events", s.sign(t, "", with("events", "x")), nil,
			400, CodeInvalidRequest, "events claim must be an object"},
		{"bad subject", s.sign(t, "", with("sub_id", map[string]any{"format": "iss_sub", "sub": "x"})), nil,
			400, CodeInvalidRequest, `event "` + RISCAccountDisabled + `": subject: iss_sub subject without iss`},
		{"oversized", bytes.Repeat([]byte("a"), DefaultMaxBodySize+1), nil,
			400, CodeInvalidRequest, "unreadable or too large body"},
		{"wrong content type", s.sign(t, "", good()),
			func(r *http.Request) { r.Header.Set("Content-Type", "application/json") },
			400, CodeInvalidRequest, "content type must be application/secevent+jwt"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := newTestReceiver(t, s, nil)
			w := push(r, tt.body, tt.edit)
			assert.Equal(t, tt.status, w.Code)
			assert.Equal(t, "application/json", w.Header().Get("Content-Type"))
			assert.Equal(t, errorBody{Err: tt.code, Description: tt.desc}, errBody(t, w))
			assert.Equal(t, 0, r.opts.State.(*State).Len(), "nothing applied")
		})
	}
}

func TestReceiverTypVariants(t *testing.T) {
	s := newSigner(t, "k1")
	for i, typ := range []string{"secevent+jwt", "application/secevent+jwt", "SECEVENT+JWT"} {
		r := newTestReceiver(t, s, nil)
		c := claims(string(rune('a'+i)), RISCAccountDisabled, IssSub(tokIssuer, "alice"), nil)
		assert.Equal(t, http.StatusAccepted, push(r, s.sign(t, typ, c), nil).Code, typ)
	}
}

func TestReceiverAuthorization(t *testing.T) {
	s := newSigner(t, "k1")
	r := newTestReceiver(t, s, func(o *ReceiverOptions) { o.AuthorizationToken = "s3cret" })
	set := s.sign(t, "", claims("j1", RISCAccountDisabled, IssSub(tokIssuer, "alice"), nil))

	for _, h := range []string{"", "Bearer wrong", "Bearer s3cret2", "bearer s3cret"} {
		w := push(r, set, func(req *http.Request) { req.Header.Set("Authorization", h) })
		assert.Equal(t, http.StatusUnauthorized, w.Code, h)
		assert.Equal(t, "Bearer", w.Header().Get("WWW-Authenticate"))
		assert.Equal(t, CodeAuthenticationFailed, errBody(t, w).Err)
	}
	w := push(r, set, func(req *http.Request) { req.Header.Set("Authorization", "Bearer s3cret") })
	assert.Equal(t, http.StatusAccepted, w.Code)
}

func TestReceiverMethod(t *testing.T) {
	r := newTestReceiver(t, newSigner(t, "k1"), nil)
	w := httptest.NewRecorder()
	r.ServeHTTP(w, httptest.NewRequest(http.MethodGet, "/ssf/events", nil))
	assert.Equal(t, http.StatusMethodNotAllowed, w.Code)
	assert.Equal(t, "POST", w.Header().Get("Allow"))
}

func TestReceiverUnknownEventIgnored(t *testing.T) {
	s := newSigner(t, "k1")
	r := newTestReceiver(t, s, nil)
	set := s.sign(t, "", claims("j1", "urn:example:event:unknown", Opaque("x"), map[string]any{"a": 1}))
	assert.Equal(t, http.StatusAccepted, push(r, set, nil).Code)
	assert.Equal(t, 0, r.opts.State.(*State).Len())
}

// failingStore fails every update, as a shared store might.
type failingStore struct{ State }

func (f *failingStore) Update(Key, time.Time, func(*Facts)) error {
	return assert.AnError
}

func TestReceiverStoreFailureIsRetried(t *testing.T) {
	s := newSigner(t, "k1")
	fs := &failingStore{State: *NewState(StateOptions{})}
	r := newTestReceiver(t, s, func(o *ReceiverOptions) { o.State = fs })
	set := s.sign(t, "", claims("j1", RISCAccountDisabled, IssSub(tokIssuer, "alice"), nil))
	assert.Equal(t, http.StatusServiceUnavailable, push(r, set, nil).Code)

	// The jti was released, so the retry is applied once the store
	// works again.
	r.opts.State = NewState(StateOptions{})
	assert.Equal(t, http.StatusAccepted, push(r, set, nil).Code)
	assert.Equal(t, ReasonAccountDisabled, validate(t, r.opts.State, identity("alice", "", t0)))
}

func TestNewReceiverErrors(t *testing.T) {
	s := newSigner(t, "k1")
	tests := []struct {
		edit func(*ReceiverOptions)
		want string
	}{
		{func(o *ReceiverOptions) { o.Issuer = "" }, "Issuer required"},
		{func(o *ReceiverOptions) { o.Audience = "" }, "Audience required"},
		{func(o *ReceiverOptions) { o.Keys = nil }, "Keys required"},
		{func(o *ReceiverOptions) { o.State = nil }, "State required"},
		{func(o *ReceiverOptions) { o.MaxAge = -1 }, "must not be negative"},
	}
	for _, tt := range tests {
		opts := ReceiverOptions{Issuer: txIssuer, Audience: rxAudience, Keys: s.keys, State: NewState(StateOptions{})}
		tt.edit(&opts)
		_, err := NewReceiver(opts)
		assert.ErrorIs(t, err, ErrOptions)
		assert.True(t, strings.Contains(err.Error(), tt.want), err.Error())
	}
	var _ runtimeid.KeySource = s.keys
}
