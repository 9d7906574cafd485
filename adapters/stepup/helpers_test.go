package stepup

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/json"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/lestrrat-go/jwx/v2/jwa"
	"github.com/lestrrat-go/jwx/v2/jwk"
	"github.com/lestrrat-go/jwx/v2/jwt"
	"github.com/pquerna/otp/totp"
	"github.com/stretchr/testify/require"

	"github.com/runtimeid/runtimeid"
)

const (
	testIssuer   = "https://issuer.test"
	testAudience = "api"
)

// clock is a settable clock.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }

func (c *clock) Add(d time.Duration) { c.mu.Lock(); c.t = c.t.Add(d); c.mu.Unlock() }

// harness is a service with its own issuer, clock, store and log.
type harness struct {
	t     *testing.T
	clock *clock
	priv  jwk.Key
	keys  runtimeid.KeySource
	svc   *Service
	h     http.Handler
	store *MemoryStore
	logs  *bytes.Buffer
}

func newHarness(t *testing.T, change ...func(*Options)) *harness {
	t.Helper()
	ec, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	require.NoError(t, err)
	priv, err := jwk.FromRaw(ec)
	require.NoError(t, err)
	require.NoError(t, priv.Set(jwk.KeyIDKey, "k1"))
	require.NoError(t, priv.Set(jwk.AlgorithmKey, jwa.ES256))
	pub, err := priv.PublicKey()
	require.NoError(t, err)
	set := jwk.NewSet()
	require.NoError(t, set.AddKey(pub))
	keys, err := runtimeid.StaticKeys(set)
	require.NoError(t, err)

	h := &harness{t: t, priv: priv, keys: keys, logs: &bytes.Buffer{},
		clock: &clock{t: time.Date(2026, 5, 1, 12, 0, 0, 0, time.UTC)}}
	h.store = NewMemoryStore(0, h.clock.Now)
	opts := Options{
		Token: h.tokenConfig(),
		Store: h.store,
		Now:   h.clock.Now,
		Logger: slog.New(slog.NewTextHandler(h.logs,
			&slog.HandlerOptions{Level: slog.LevelDebug})),
		EncryptionKeys: []EncryptionKey{{ID: "k1", Secret: bytes.Repeat([]byte{7}, 32)}},
	}
	for _, c := range change {
		c(&opts)
	}
	h.svc, err = New(opts)
	require.NoError(t, err)
	h.h = h.svc.Handler()
	return h
}

func (h *harness) tokenConfig() runtimeid.TokenConfig {
	return runtimeid.TokenConfig{Issuer: testIssuer, Audience: []string{testAudience},
		Keys: h.keys}
}

// token mints a token for sub in session sid, authenticated authAge
// ago.
func (h *harness) token(sub, sid string, authAge time.Duration) string {
	h.t.Helper()
	now := h.clock.Now()
	b := jwt.NewBuilder().Issuer(testIssuer).Audience([]string{testAudience}).
		Subject(sub).IssuedAt(now).Expiration(now.Add(time.Hour)).
		JwtID(sub+sid+now.String()).Claim("auth_time", now.Add(-authAge).Unix())
	if sid != "" {
		b = b.Claim("sid", sid)
	}
	tok, err := b.Build()
	require.NoError(h.t, err)
	signed, err := jwt.Sign(tok, jwt.WithKey(jwa.ES256, h.priv))
	require.NoError(h.t, err)
	return string(signed)
}

// do sends a request with a Bearer token and a JSON body.
func (h *harness) do(method, path, token string, body any) *httptest.ResponseRecorder {
	h.t.Helper()
	var rd *bytes.Reader
	switch b := body.(type) {
	case nil:
		rd = bytes.NewReader(nil)
	case string:
		rd = bytes.NewReader([]byte(b))
	default:
		raw, err := json.Marshal(b)
		require.NoError(h.t, err)
		rd = bytes.NewReader(raw)
	}
	r := httptest.NewRequest(method, path, rd)
	if method == http.MethodPost {
		r.Header.Set("Content-Type", "application/json")
	}
	if token != "" {
		r.Header.Set("Authorization", "Bearer "+token)
	}
	w := httptest.NewRecorder()
	h.h.ServeHTTP(w, r)
	return w
}

// errorCode returns the "error" member of a JSON error body.
func errorCode(t *testing.T, w *httptest.ResponseRecorder) string {
	t.Helper()
	var out map[string]string
	require.NoError(t, json.Unmarshal(w.Body.Bytes(), &out), w.Body.String())
	return out["error"]
}

// enrollOTP enrolls a code secret for the token's user and returns it.
func (h *harness) enrollOTP(tok string) string {
	h.t.Helper()
	w := h.do("POST", "/stepup/enroll/otp", tok, map[string]any{})
	require.Equal(h.t, 200, w.Code, w.Body.String())
	var e OTPEnrollment
	require.NoError(h.t, json.Unmarshal(w.Body.Bytes(), &e))
	w = h.do("POST", "/stepup/enroll/otp/confirm", tok, map[string]string{"code": h.code(e.Secret)})
	require.Equal(h.t, 200, w.Code, w.Body.String())
	return e.Secret
}

// code is the real TOTP generator's code for now.
func (h *harness) code(secret string) string {
	h.t.Helper()
	c, err := totp.GenerateCode(secret, h.clock.Now())
	require.NoError(h.t, err)
	return c
}

func (h *harness) noSecretsLogged(secrets ...string) {
	h.t.Helper()
	for _, s := range secrets {
		require.False(h.t, strings.Contains(h.logs.String(), s), "log holds a secret")
	}
}

func totpGenerate(secret string, at time.Time) (string, error) {
	return totp.GenerateCode(secret, at)
}

func stringsReader(s string) *strings.Reader { return strings.NewReader(s) }

func httptestHandler(got *string) http.Handler {
	return http.HandlerFunc(func(_ http.ResponseWriter, r *http.Request) {
		*got = r.Header.Get("Authorization")
	})
}
