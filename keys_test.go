package runtimeid

import (
	"context"
	"crypto/ecdh"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"math/big"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/lestrrat-go/jwx/v2/jwa"
	"github.com/lestrrat-go/jwx/v2/jwk"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func writeFile(t *testing.T, name string, data []byte) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	require.NoError(t, os.WriteFile(p, data, 0o600))
	return p
}

func pemBlock(typ string, der []byte) []byte {
	return pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der})
}

func jwksJSON(t *testing.T, set jwk.Set) []byte {
	t.Helper()
	b, err := json.Marshal(set)
	require.NoError(t, err)
	return b
}

func selfSigned(t *testing.T, key *ecdsa.PrivateKey) []byte {
	t.Helper()
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "issuer"},
		NotBefore: testNow, NotAfter: testNow.Add(time.Hour)}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	require.NoError(t, err)
	return der
}

func TestKeysFromFile(t *testing.T) {
	f := keys(t)
	ecDER, err := x509.MarshalPKIXPublicKey(f.ec.Public())
	require.NoError(t, err)
	rsaDER, err := x509.MarshalPKIXPublicKey(f.rsa.Public())
	require.NoError(t, err)
	pkcs1 := x509.MarshalPKCS1PublicKey(&f.rsa.PublicKey)
	edDER, err := x509.MarshalPKIXPublicKey(f.ed.Public())
	require.NoError(t, err)
	payload := claimsJSON(t, baseClaims())

	tests := []struct {
		name  string
		data  []byte
		token string // verifies with the loaded keys
	}{
		{"jwks", jwksJSON(t, f.set),
			signToken(t, jwa.ES256, f.ec, map[string]any{"kid": "ec1"}, payload)},
		{"single jwk", jwksJSONKey(t, f.set, "ed1"),
			signToken(t, jwa.EdDSA, f.ed, map[string]any{"kid": "ed1"}, payload)},
		{"pem public key, token with kid", pemBlock("PUBLIC KEY", ecDER),
			signToken(t, jwa.ES256, f.ec, map[string]any{"kid": "anything"}, payload)},
		{"pem rsa public key", pemBlock("RSA PUBLIC KEY", pkcs1),
			signToken(t, jwa.RS256, f.rsa, nil, payload)},
		{"pem certificate", pemBlock("CERTIFICATE", selfSigned(t, f.ec)),
			signToken(t, jwa.ES256, f.ec, nil, payload)},
		{"pem several keys", append(pemBlock("PUBLIC KEY", rsaDER), pemBlock("PUBLIC KEY", edDER)...),
			""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			src, err := KeysFromFile(writeFile(t, "keys", tt.data))
			require.NoError(t, err)
			if tt.token == "" {
				return
			}
			_, terr := newVerifier(t, src).verify(context.Background(), tt.token, testNow)
			assert.Nil(t, terr)
		})
	}
}

func jwksJSONKey(t *testing.T, set jwk.Set, kid string) []byte {
	k, ok := set.LookupKeyID(kid)
	require.True(t, ok)
	b, err := json.Marshal(k)
	require.NoError(t, err)
	return b
}

func TestKeysFromFileBad(t *testing.T) {
	f := keys(t)
	ecPriv, err := x509.MarshalPKCS8PrivateKey(f.ec)
	require.NoError(t, err)
	x25519, err := ecdh.X25519().GenerateKey(rand.Reader)
	require.NoError(t, err)
	xDER, err := x509.MarshalPKIXPublicKey(x25519.Public())
	require.NoError(t, err)
	ecDER, err := x509.MarshalPKIXPublicKey(f.ec.Public())
	require.NoError(t, err)

	tests := []struct {
		name string
		data string
		want string
	}{
		{"empty", "", "unmarshal"},
		{"garbage", "not json", "unmarshal"},
		{"pem private key", string(pemBlock("PRIVATE KEY", ecPriv)), "private keys are refused"},
		{"pem ec private key", string(pemBlock("EC PRIVATE KEY", []byte{1})), "private keys are refused"},
		{"pem unknown type", string(pemBlock("FOO", []byte{1})), "unsupported PEM type"},
		{"pem bad der", string(pemBlock("PUBLIC KEY", []byte{1, 2})), "pem block 1"},
		{"pem x25519", string(pemBlock("PUBLIC KEY", xDER)), "unsupported public key type"},
		{"jwk x25519", `{"kty":"OKP","crv":"X25519",` +
			`"x":"hSDwCYkwp1R0i33ctD73Wg2_Og0mOBr066SpjqqbTmo"}`, "unsupported OKP curve"},
		{"pem trailing junk", string(pemBlock("PUBLIC KEY", ecDER)) + "junk", "trailing data"},
		{"pem header only", "-----BEGIN PUBLIC KEY-----\n", "trailing data"},
		{"oct key", `{"keys":[{"kty":"oct","k":"c2VjcmV0"}]}`, "symmetric"},
		{"empty set", `{"keys":[]}`, "no signature verification keys"},
		{"only enc keys", encOnly(t), "no signature verification keys"},
		{"alg HS256 on rsa", withMember(t, "rsa1", "alg", "HS256"), "does not fit"},
		{"alg ES256 on rsa", withMember(t, "rsa1", "alg", "ES256"), "does not fit"},
		{"alg ES384 on P-256", withMember(t, "ec1", "alg", "ES384"), "does not fit"},
		{"alg none", withMember(t, "ec1", "alg", "none"), "does not fit"},
		{"duplicate kid", `{"keys":[` + string(jwksJSONKey(t, f.set, "ec1")) + "," +
			string(jwksJSONKey(t, f.set, "ec1")) + `]}`, "duplicate kid"},
		{"secp256k1", `{"kty":"EC","crv":"secp256k1",` +
			`"x":"Tc6bAqsbrTjVTK8GZJEWBjK7JALSzRQ3tnD7ncmtMm8",` +
			`"y":"VLTJdwCy-rfmSBa7BpQkb6Nx_7XBSDF48nYgO4gQxx4"}`, "unsupported curve"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := KeysFromFile(writeFile(t, "keys", []byte(tt.data)))
			require.ErrorIs(t, err, ErrKeys)
			assert.Contains(t, err.Error(), tt.want)
		})
	}

	t.Run("missing file", func(t *testing.T) {
		_, err := KeysFromFile(filepath.Join(t.TempDir(), "nope"))
		require.ErrorIs(t, err, ErrKeys)
		assert.ErrorIs(t, err, os.ErrNotExist)
	})
	t.Run("too large", func(t *testing.T) {
		big := strings.Repeat(" ", MaxKeysFileSize) + string(jwksJSON(t, f.set))
		_, err := KeysFromFile(writeFile(t, "keys", []byte(big)))
		require.ErrorIs(t, err, ErrKeys)
		assert.Contains(t, err.Error(), "larger than")
	})
}

func withMember(t *testing.T, kid, name string, val any) string {
	var m map[string]any
	require.NoError(t, json.Unmarshal(jwksJSONKey(t, keys(t).set, kid), &m))
	m[name] = val
	b, err := json.Marshal(m)
	require.NoError(t, err)
	return string(b)
}

func encOnly(t *testing.T) string {
	return `{"keys":[` + withMember(t, "ec1", "use", "enc") + `]}`
}

func TestStaticKeysPinning(t *testing.T) {
	p384, err := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	require.NoError(t, err)
	p521, err := ecdsa.GenerateKey(elliptic.P521(), rand.Reader)
	require.NoError(t, err)
	f := keys(t)
	set := publicSet(t, map[string]any{
		"rsa": f.rsa.Public(), "p256": f.ec.Public(), "p384": p384.Public(),
		"p521": p521.Public(), "ed": f.ed.Public(),
	})
	k, _ := set.LookupKeyID("rsa")
	require.NoError(t, k.Set(jwk.AlgorithmKey, jwa.PS384))
	enc, err := jwk.FromRaw(p384.Public())
	require.NoError(t, err)
	require.NoError(t, enc.Set(jwk.KeyIDKey, "enc"))
	require.NoError(t, enc.Set(jwk.KeyUsageKey, "enc"))
	require.NoError(t, set.AddKey(enc))

	src, err := StaticKeys(set)
	require.NoError(t, err)
	want := map[string]jwa.SignatureAlgorithm{
		"rsa": jwa.PS384, "p256": jwa.ES256, "p384": jwa.ES384, "p521": jwa.ES512, "ed": jwa.EdDSA,
	}
	for kid, alg := range want {
		_, got, err := src.VerificationKey(context.Background(), kid)
		require.NoError(t, err, kid)
		assert.Equal(t, alg, got, kid)
	}
	_, _, err = src.VerificationKey(context.Background(), "enc")
	assert.ErrorIs(t, err, ErrUnknownKey)
	_, _, err = src.VerificationKey(context.Background(), "")
	assert.ErrorIs(t, err, ErrUnknownKey)

	_, err = StaticKeys(nil)
	assert.ErrorIs(t, err, ErrKeys)
}

// fakeClock is the injected clock of the remote tests.
type fakeClock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	c.now = c.now.Add(d)
	c.mu.Unlock()
}

// jwksServer serves a key set, or fails as told.
type jwksServer struct {
	*httptest.Server
	hits atomic.Int64

	mu      sync.Mutex
	body    []byte
	status  int
	headers map[string]string
	block   chan struct{} // when set, requests wait for it to close
	entered chan struct{}
}

func newJWKSServer(t *testing.T, body []byte) *jwksServer {
	s := &jwksServer{body: body, status: http.StatusOK}
	s.Server = httptest.NewServer(http.HandlerFunc(s.serve))
	t.Cleanup(s.Close)
	return s
}

func (s *jwksServer) serve(w http.ResponseWriter, r *http.Request) {
	s.hits.Add(1)
	s.mu.Lock()
	body, status, block, entered := s.body, s.status, s.block, s.entered
	for k, v := range s.headers {
		w.Header().Set(k, v)
	}
	s.mu.Unlock()
	if block != nil {
		entered <- struct{}{}
		<-block
	}
	w.WriteHeader(status)
	_, _ = w.Write(body)
}

func (s *jwksServer) set(status int, body []byte) {
	s.mu.Lock()
	s.status, s.body = status, body
	s.mu.Unlock()
}

func remote(t *testing.T, srv *jwksServer, clock *fakeClock, opts RemoteKeysOptions) *RemoteKeySource {
	t.Helper()
	opts.Client = srv.Client()
	opts.Now = clock.Now
	src, err := RemoteKeys(context.Background(), srv.URL+"/jwks", opts)
	require.NoError(t, err)
	t.Cleanup(func() { _ = src.Close() })
	return src
}

func TestRemoteKeysVerifies(t *testing.T) {
	f := keys(t)
	srv := newJWKSServer(t, jwksJSON(t, f.set))
	src := remote(t, srv, &fakeClock{now: testNow}, RemoteKeysOptions{})
	_, terr := newVerifier(t, src).verify(context.Background(), es256(t, baseClaims()), testNow)
	assert.Nil(t, terr)
	key, alg, err := src.VerificationKey(context.Background(), "rsa1")
	require.NoError(t, err)
	assert.Equal(t, jwa.RS256, alg)
	assert.Equal(t, "rsa1", key.KeyID())
	assert.Equal(t, int64(1), srv.hits.Load())
}

func TestRemoteKeysFirstFetchMustSucceed(t *testing.T) {
	tests := []struct {
		name   string
		status int
		body   string
	}{
		{"500", http.StatusInternalServerError, "oops"},
		{"garbage", http.StatusOK, "<html>"},
		{"oct keys", http.StatusOK, `{"keys":[{"kty":"oct","k":"c2VjcmV0"}]}`},
		{"too large", http.StatusOK, strings.Repeat(" ", 2048) + "{}"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := newJWKSServer(t, []byte(tt.body))
			srv.set(tt.status, []byte(tt.body))
			_, err := RemoteKeys(context.Background(), srv.URL, RemoteKeysOptions{
				Client: srv.Client(), MaxResponseSize: 1024,
			})
			assert.ErrorIs(t, err, ErrKeys)
		})
	}
	t.Run("plain http to a remote host", func(t *testing.T) {
		_, err := RemoteKeys(context.Background(), "http://keys.example.invalid/jwks", RemoteKeysOptions{})
		assert.ErrorIs(t, err, ErrKeys)
	})
}

// TestRemoteKeysUnknownKidRateLimit presents 100 unknown kids within 30 s
// of fake time: one refresh, then none until the interval has passed.
func TestRemoteKeysUnknownKidRateLimit(t *testing.T) {
	f := keys(t)
	srv := newJWKSServer(t, jwksJSON(t, f.set))
	clock := &fakeClock{now: testNow}
	src := remote(t, srv, clock, RemoteKeysOptions{})
	require.Equal(t, int64(1), srv.hits.Load())

	for i := range 100 {
		_, _, err := src.VerificationKey(context.Background(), "unknown-"+string(rune('a'+i%26)))
		require.ErrorIs(t, err, ErrUnknownKey)
		clock.Advance(290 * time.Millisecond) // 100 kids in 29 s
	}
	assert.Equal(t, int64(2), srv.hits.Load())

	clock.Advance(time.Second) // 30 s after the first unknown kid
	_, _, err := src.VerificationKey(context.Background(), "unknown")
	require.ErrorIs(t, err, ErrUnknownKey)
	assert.Equal(t, int64(3), srv.hits.Load())
	started, _ := src.fetches()
	assert.Equal(t, 3, started)
}

// TestRemoteKeysRotation: a key published after start is found by the
// request that first uses it, which waits for the refresh.
func TestRemoteKeysRotation(t *testing.T) {
	f := keys(t)
	srv := newJWKSServer(t, jwksJSON(t, publicSet(t, map[string]any{"rsa1": f.rsa.Public()})))
	src := remote(t, srv, &fakeClock{now: testNow}, RemoteKeysOptions{})
	v := newVerifier(t, src)

	srv.set(http.StatusOK, jwksJSON(t, f.set))
	_, terr := v.verify(context.Background(), es256(t, baseClaims()), testNow)
	assert.Nil(t, terr)
	assert.Equal(t, int64(2), srv.hits.Load())
}

func TestRemoteKeysNoWait(t *testing.T) {
	f := keys(t)
	srv := newJWKSServer(t, jwksJSON(t, publicSet(t, map[string]any{"rsa1": f.rsa.Public()})))
	src := remote(t, srv, &fakeClock{now: testNow}, RemoteKeysOptions{UnknownKeyWait: -1})
	srv.mu.Lock()
	srv.block, srv.entered = make(chan struct{}), make(chan struct{}, 1)
	srv.mu.Unlock()

	_, _, err := src.VerificationKey(context.Background(), "ec1")
	assert.ErrorIs(t, err, ErrUnknownKey)
	<-srv.entered
	close(srv.block)
}

// TestRemoteKeysLastGoodSurvives: failed refreshes keep the last good
// set in use.
func TestRemoteKeysLastGoodSurvives(t *testing.T) {
	f := keys(t)
	srv := newJWKSServer(t, jwksJSON(t, f.set))
	src := remote(t, srv, &fakeClock{now: testNow}, RemoteKeysOptions{MaxResponseSize: 4096})
	v := newVerifier(t, src)
	tok := es256(t, baseClaims())

	bad := []struct {
		status int
		body   string
	}{
		{http.StatusInternalServerError, "oops"},
		{http.StatusOK, "garbage"},
		{http.StatusOK, `{"keys":[]}`},
		{http.StatusOK, strings.Repeat("x", 5000)},
	}
	for _, b := range bad {
		srv.set(b.status, []byte(b.body))
		require.ErrorIs(t, src.Refresh(context.Background()), ErrKeys)
		_, terr := v.verify(context.Background(), tok, testNow)
		assert.Nil(t, terr)
	}
	assert.Equal(t, int64(1+len(bad)), srv.hits.Load())
}

func TestRemoteKeysSingleFlight(t *testing.T) {
	f := keys(t)
	srv := newJWKSServer(t, jwksJSON(t, f.set))
	src := remote(t, srv, &fakeClock{now: testNow}, RemoteKeysOptions{})
	srv.mu.Lock()
	srv.block, srv.entered = make(chan struct{}), make(chan struct{}, 1)
	srv.mu.Unlock()

	first := make(chan error, 1)
	go func() { first <- src.Refresh(context.Background()) }()
	<-srv.entered

	const callers = 50
	var wg sync.WaitGroup
	for range callers {
		wg.Go(func() { assert.NoError(t, src.Refresh(context.Background())) })
	}
	require.Eventually(t, func() bool {
		_, joined := src.fetches()
		return joined == callers
	}, 5*time.Second, time.Millisecond)
	close(srv.block)
	wg.Wait()
	require.NoError(t, <-first)
	assert.Equal(t, int64(2), srv.hits.Load())
}

func TestRemoteKeysScheduledRefresh(t *testing.T) {
	f := keys(t)
	srv := newJWKSServer(t, jwksJSON(t, f.set))
	srv.headers = map[string]string{"Cache-Control": "public, max-age=120"}
	clock := &fakeClock{now: testNow}
	src := remote(t, srv, clock, RemoteKeysOptions{})

	// max-age 120 s shortens the 15 min interval: at 119 s nothing
	// happens, at 120 s a lookup starts a refresh without waiting.
	clock.Advance(119 * time.Second)
	_, _, err := src.VerificationKey(context.Background(), "ec1")
	require.NoError(t, err)
	assert.Equal(t, int64(1), srv.hits.Load())

	clock.Advance(time.Second)
	_, _, err = src.VerificationKey(context.Background(), "ec1")
	require.NoError(t, err)
	require.NoError(t, src.Refresh(context.Background())) // joins or follows it
	assert.GreaterOrEqual(t, srv.hits.Load(), int64(2))
}

func TestMaxAgeInterval(t *testing.T) {
	s := &RemoteKeySource{opts: RemoteKeysOptions{}}
	s.opts.setDefaults()
	tests := []struct {
		header string
		want   time.Duration
	}{
		{"", DefaultRefreshInterval},
		{"max-age=60", time.Minute},
		{"no-cache, Max-Age=5", DefaultMinRefreshInterval},
		{"max-age=86400", DefaultRefreshInterval},
		{"max-age=-3", DefaultRefreshInterval},
		{"max-age=abc", DefaultRefreshInterval},
		{`max-age="90"`, 90 * time.Second},
	}
	for _, tt := range tests {
		assert.Equal(t, tt.want, s.interval(maxAge(tt.header)), tt.header)
	}
}

func TestRemoteKeysClose(t *testing.T) {
	f := keys(t)
	srv := newJWKSServer(t, jwksJSON(t, f.set))
	ctx, cancel := context.WithCancel(context.Background())
	src, err := RemoteKeys(ctx, srv.URL, RemoteKeysOptions{Client: srv.Client()})
	require.NoError(t, err)
	cancel()
	require.NoError(t, src.Close())
	require.NoError(t, src.Close())

	// The last set still answers; refreshes fail without a request.
	_, _, err = src.VerificationKey(context.Background(), "ec1")
	require.NoError(t, err)
	require.ErrorIs(t, src.Refresh(context.Background()), ErrKeys)
	assert.Equal(t, int64(1), srv.hits.Load())
}
