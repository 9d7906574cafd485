package runtimeid_test

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/go-chi/chi/v5"
	"github.com/lestrrat-go/jwx/v2/jwa"
	"github.com/lestrrat-go/jwx/v2/jwk"
	"github.com/lestrrat-go/jwx/v2/jws"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/runtimeid/runtimeid"
	chiadapter "github.com/runtimeid/runtimeid/adapters/chi"
	"github.com/runtimeid/runtimeid/adapters/servemux"
	"github.com/runtimeid/runtimeid/decision"
	"github.com/runtimeid/runtimeid/policy"
	"github.com/runtimeid/runtimeid/signals"
)

// The hostile tests: one per class of input an attacker controls, run
// through the real engine with ES256 keys, the default policy, the real
// client address collector and the decision enforcer, each asserting
// the exact safe outcome.

var hostileNow = time.Date(2026, 12, 4, 12, 0, 0, 0, time.UTC)

// hostile is an engine over an ES256 key, with the handler that reports
// what the protected route saw.
type hostile struct {
	t    *testing.T
	priv *ecdsa.PrivateKey
	key  jwk.Key
	eng  *runtimeid.Engine
	h    http.Handler
	logs *bytes.Buffer
}

type hostileOpts struct {
	trusted string
	maxSize int
	keys    runtimeid.KeySource
}

func newHostile(t *testing.T, o hostileOpts) *hostile {
	t.Helper()
	s := &hostile{t: t, logs: &bytes.Buffer{}}
	var err error
	s.priv, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	require.NoError(t, err)
	s.key, err = jwk.FromRaw(s.priv)
	require.NoError(t, err)
	require.NoError(t, s.key.Set(jwk.KeyIDKey, "k1"))
	keys := o.keys
	if keys == nil {
		pub, err := s.key.PublicKey()
		require.NoError(t, err)
		set := jwk.NewSet()
		require.NoError(t, set.AddKey(pub))
		keys, err = runtimeid.StaticKeys(set)
		require.NoError(t, err)
	}
	trusted, err := signals.ParsePrefixes(o.trusted)
	require.NoError(t, err)
	enforcer, err := decision.NewEnforcer(decision.Options{StepUpURL: "/stepup", Realm: "api"})
	require.NoError(t, err)
	s.eng, err = runtimeid.New(runtimeid.Config{
		Token: runtimeid.TokenConfig{Issuer: testIssuer, Audience: []string{testAudience},
			Keys: keys, MaxSize: o.maxSize},
		Collectors: []runtimeid.SignalCollector{signals.NewClientIP(trusted)},
		Policy:     policy.Default(),
		Enforcer:   enforcer,
		Logger:     slog.New(slog.NewJSONHandler(s.logs, nil)),
		Now:        func() time.Time { return hostileNow },
	})
	require.NoError(t, err)
	s.h = s.eng.Protect("orders.list", runtimeid.Low)(http.HandlerFunc(seen))
	return s
}

// seen writes the subject, action and client address the handler got.
func seen(w http.ResponseWriter, r *http.Request) {
	ev := runtimeid.FromContext(r.Context())
	fmt.Fprintf(w, "%s %s %s", ev.Identity.Subject, ev.Action.Name, ev.Signals.ClientIP)
}

func b64(v any) string {
	b, _ := json.Marshal(v)
	return base64.RawURLEncoding.EncodeToString(b)
}

func (s *hostile) claims(edit map[string]any) map[string]any {
	c := map[string]any{
		"iss": testIssuer, "aud": testAudience, "sub": "alice",
		"iat": hostileNow.Unix(), "exp": hostileNow.Add(time.Hour).Unix(),
		"auth_time": hostileNow.Add(-time.Minute).Unix(),
	}
	for k, v := range edit {
		if v == nil {
			delete(c, k)
			continue
		}
		c[k] = v
	}
	return c
}

// sign makes an ES256 token with the claims edited; a nil value removes
// a claim.
func (s *hostile) sign(edit map[string]any) string {
	payload, err := json.Marshal(s.claims(edit))
	require.NoError(s.t, err)
	hdr := jws.NewHeaders()
	require.NoError(s.t, hdr.Set(jws.KeyIDKey, "k1"))
	out, err := jws.Sign(payload, jws.WithKey(jwa.ES256, s.priv, jws.WithProtectedHeaders(hdr)))
	require.NoError(s.t, err)
	return string(out)
}

// forge makes a token with any header, signed by sig.
func (s *hostile) forge(hdr map[string]any, sig func(input string) []byte) string {
	input := b64(hdr) + "." + b64(s.claims(nil))
	return input + "." + base64.RawURLEncoding.EncodeToString(sig(input))
}

type reply struct {
	status int
	auth   string
	body   string
	code   string
}

func (s *hostile) serve(h http.Handler, r *http.Request) reply {
	w := httptest.NewRecorder()
	h.ServeHTTP(w, r)
	rep := reply{status: w.Code, auth: w.Header().Get("WWW-Authenticate"), body: w.Body.String()}
	if w.Header().Get("Content-Type") == "application/problem+json" && w.Body.Len() > 0 {
		var p struct{ Code string }
		require.NoError(s.t, json.Unmarshal(w.Body.Bytes(), &p))
		rep.code = p.Code
	}
	return rep
}

func get(target string, header ...string) *http.Request {
	r := httptest.NewRequest(http.MethodGet, target, nil)
	r.RemoteAddr = "127.0.0.1:40000"
	for i := 0; i+1 < len(header); i += 2 {
		r.Header.Add(header[i], header[i+1])
	}
	return r
}

// TestHostileForwardingHeaders: forwarding headers count only from a
// trusted peer, the two standards are never mixed, and an address is
// normalised (unmapped, zone dropped) before anything sees it.
func TestHostileForwardingHeaders(t *testing.T) {
	tests := []struct {
		name    string
		trusted string
		peer    string
		header  []string
		want    string
	}{
		{"XFF from an untrusted peer is ignored", "10.0.0.0/8", "127.0.0.1:1",
			[]string{"X-Forwarded-For", "1.2.3.4"}, "127.0.0.1"},
		{"Forwarded from an untrusted peer is ignored", "10.0.0.0/8", "127.0.0.1:1",
			[]string{"Forwarded", "for=1.2.3.4"}, "127.0.0.1"},
		{"XFF from a trusted peer", "127.0.0.1", "127.0.0.1:1",
			[]string{"X-Forwarded-For", "1.2.3.4"}, "1.2.3.4"},
		{"a client-written left hop loses to the proxy's", "127.0.0.1", "127.0.0.1:1",
			[]string{"X-Forwarded-For", "6.6.6.6, 1.2.3.4"}, "1.2.3.4"},
		{"two XFF lines are one list", "127.0.0.1", "127.0.0.1:1",
			[]string{"X-Forwarded-For", "6.6.6.6", "X-Forwarded-For", "1.2.3.4"}, "1.2.3.4"},
		{"Forwarded wins over a forged XFF", "127.0.0.1", "127.0.0.1:1",
			[]string{"X-Forwarded-For", "6.6.6.6", "Forwarded", "for=1.2.3.4"}, "1.2.3.4"},
		{"garbled Forwarded stops at the proxy", "127.0.0.1", "127.0.0.1:1",
			[]string{"Forwarded", "for=\"[::1"}, "127.0.0.1"},
		{"oversized XFF is ignored", "127.0.0.1", "127.0.0.1:1",
			[]string{"X-Forwarded-For", strings.Repeat("1.2.3.4,", 2000) + "5.6.7.8"}, "127.0.0.1"},
		{"IPv4-mapped peer is unmapped", "", "[::ffff:1.2.3.4]:1", nil, "1.2.3.4"},
		{"IPv4-mapped hop is unmapped", "127.0.0.1", "127.0.0.1:1",
			[]string{"X-Forwarded-For", "::ffff:1.2.3.4"}, "1.2.3.4"},
		{"zone of a peer is dropped", "", "[fe80::1%eth0]:1", nil, "fe80::1"},
		{"zone of a Forwarded hop is dropped", "127.0.0.1", "127.0.0.1:1",
			[]string{"Forwarded", `for="[fe80::1%25eth0]:80"`}, "fe80::1"},
		{"mapped peer matches an IPv4 trusted prefix", "127.0.0.1", "[::ffff:127.0.0.1]:1",
			[]string{"X-Forwarded-For", "1.2.3.4"}, "1.2.3.4"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := newHostile(t, hostileOpts{trusted: tt.trusted})
			r := get("/api/orders", append(bearer(s.sign(nil)), tt.header...)...)
			r.RemoteAddr = tt.peer
			rep := s.serve(s.h, r)
			assert.Equal(t, 200, rep.status)
			assert.Equal(t, "alice orders.list "+tt.want, rep.body)
		})
	}
}

// TestHostileAudienceAndSkew: aud as a string or an array, and clock
// skew in both directions, at the edges of the default 60 s tolerance.
func TestHostileAudienceAndSkew(t *testing.T) {
	now := hostileNow.Unix()
	tests := []struct {
		name   string
		edit   map[string]any
		status int
		code   string
	}{
		{"aud string", map[string]any{"aud": testAudience}, 200, ""},
		{"aud array with ours", map[string]any{"aud": []string{"x", testAudience}}, 200, ""},
		{"aud array without ours", map[string]any{"aud": []string{"x"}}, 401, "token_audience"},
		{"aud empty array", map[string]any{"aud": []string{}}, 401, "token_audience"},
		{"aud missing", map[string]any{"aud": nil}, 401, "token_audience"},
		{"aud number", map[string]any{"aud": 7}, 401, "token_claims"},
		{"aud array of numbers", map[string]any{"aud": []int{7}}, 401, "token_claims"},
		{"aud case differs", map[string]any{"aud": strings.ToUpper(testAudience)}, 401, "token_audience"},
		{"expired within skew", map[string]any{"exp": now - 59}, 200, ""},
		{"expired beyond skew", map[string]any{"exp": now - 61}, 401, "token_expired"},
		{"nbf within skew", map[string]any{"nbf": now + 59}, 200, ""},
		{"nbf beyond skew", map[string]any{"nbf": now + 61}, 401, "token_not_yet_valid"},
		{"iat beyond skew", map[string]any{"iat": now + 61}, 401, "token_issued_in_future"},
		{"exp missing", map[string]any{"exp": nil}, 401, "token_claims"},
		{"exp as a string", map[string]any{"exp": fmt.Sprint(now + 60)}, 401, "token_claims"},
		{"exp far future", map[string]any{"exp": 1e300}, 401, "token_claims"},
		{"exp negative", map[string]any{"exp": -1}, 401, "token_claims"},
	}
	s := newHostile(t, hostileOpts{})
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rep := s.serve(s.h, get("/api/orders", bearer(s.sign(tt.edit))...))
			assert.Equal(t, tt.status, rep.status)
			assert.Equal(t, tt.code, rep.code)
		})
	}
}

// TestHostileTokenShape: oversized headers, tokens with a huge number of
// segments, algorithm confusion and none, odd scheme case and
// whitespace, two Authorization headers and tokens in the query.
func TestHostileTokenShape(t *testing.T) {
	s := newHostile(t, hostileOpts{})
	big := newHostile(t, hostileOpts{maxSize: 64 << 10})
	good := s.sign(nil)
	pubDER, err := x509.MarshalPKIXPublicKey(&s.priv.PublicKey)
	require.NoError(t, err)
	hs256 := func(secret []byte) func(string) []byte {
		return func(in string) []byte {
			m := hmac.New(sha256.New, secret)
			m.Write([]byte(in))
			return m.Sum(nil)
		}
	}
	empty := func(string) []byte { return nil }
	es256 := func(in string) []byte {
		tok, err := jws.Sign([]byte("x"), jws.WithKey(jwa.ES256, s.priv))
		require.NoError(t, err)
		_ = in
		sig, _ := base64.RawURLEncoding.DecodeString(strings.Split(string(tok), ".")[2])
		return sig
	}

	tests := []struct {
		name   string
		s      *hostile
		header []string
		target string
		status int
		code   string
	}{
		{"good", s, bearer(good), "/", 200, ""},
		{"10,000 segments", s, bearer(strings.Repeat("a.", 9999) + "a"), "/", 401, "token_too_large"},
		{"10,000 segments, large limit", big, bearer(strings.Repeat("a.", 9999) + "a"), "/",
			401, "token_malformed"},
		{"10,000 empty segments, large limit", big, bearer(strings.Repeat(".", 9999)), "/",
			401, "token_malformed"},
		{"header of 1 MiB", s, bearer(strings.Repeat("a", 1<<20)), "/", 401, "token_too_large"},
		{"alg none", s, bearer(s.forge(map[string]any{"alg": "none", "kid": "k1"}, empty)), "/",
			401, "token_algorithm"},
		{"alg NoNe", s, bearer(s.forge(map[string]any{"alg": "NoNe", "kid": "k1"}, empty)), "/",
			401, "token_algorithm"},
		{"alg HS256 keyed with the public key", s,
			bearer(s.forge(map[string]any{"alg": "HS256", "kid": "k1"}, hs256(pubDER))), "/",
			401, "token_algorithm"},
		{"alg ES384 on an ES256 key", s,
			bearer(s.forge(map[string]any{"alg": "ES384", "kid": "k1"}, es256)), "/",
			401, "token_algorithm"},
		{"alg missing", s, bearer(s.forge(map[string]any{"kid": "k1"}, es256)), "/",
			401, "token_malformed"},
		{"crit header", s, bearer(s.forge(map[string]any{"alg": "ES256", "kid": "k1",
			"crit": []string{"exp"}}, es256)), "/", 401, "token_malformed"},
		{"embedded jwk is not trusted", s, bearer(s.forge(map[string]any{"alg": "ES256",
			"jwk": map[string]any{"kty": "EC"}}, es256)), "/", 401, "token_signature"},
		{"scheme case", s, []string{"Authorization", "bEaReR " + good}, "/", 200, ""},
		{"surrounding spaces", s, []string{"Authorization", "  Bearer    " + good + "  "}, "/", 200, ""},
		{"tab after the scheme", s, []string{"Authorization", "Bearer\t" + good}, "/",
			401, "token_malformed"},
		{"scheme alone", s, []string{"Authorization", "Bearer"}, "/", 401, "token_malformed"},
		{"two tokens in one header", s, []string{"Authorization", "Bearer " + good + ", Bearer " + good},
			"/", 401, "token_malformed"},
		{"two Authorization headers", s, append(bearer(good), bearer(good)...), "/",
			400, "invalid_request"},
		{"token in the query", s, nil, "/?access_token=" + good, 400, "invalid_request"},
		{"token in the query and header", s, bearer(good), "/?access_token=" + good,
			400, "invalid_request"},
		{"query parameter case is not a token", s, bearer(good), "/?Access_Token=x", 200, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			start := time.Now()
			rep := tt.s.serve(tt.s.h, get(tt.target, tt.header...))
			assert.Equal(t, tt.status, rep.status)
			assert.Equal(t, tt.code, rep.code)
			assert.Less(t, time.Since(start), 5*time.Second, "bounded time")
		})
	}
}

// TestHostileQueryTokenRoute: a route that accepts query tokens still
// refuses two of them, and a token both ways.
func TestHostileQueryTokenRoute(t *testing.T) {
	s := newHostile(t, hostileOpts{})
	good := s.sign(nil)
	h := s.eng.Protect("feed", runtimeid.Low, runtimeid.AllowQueryToken())(http.HandlerFunc(seen))
	tests := []struct {
		name   string
		target string
		header []string
		status int
		code   string
	}{
		{"one query token", "/?access_token=" + good, nil, 200, ""},
		{"two query tokens", "/?access_token=" + good + "&access_token=" + good, nil, 400, "invalid_request"},
		{"query and header", "/?access_token=" + good, bearer(good), 400, "invalid_request"},
		{"empty query token", "/?access_token=", nil, 401, "token_missing"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rep := s.serve(h, get(tt.target, tt.header...))
			assert.Equal(t, tt.status, rep.status)
			assert.Equal(t, tt.code, rep.code)
		})
	}
}

// TestHostileUnknownKidFlood: a thousand tokens with unknown kids,
// concurrently, against a remote key set make at most one extra fetch
// per MinRefreshInterval, and every one is refused.
func TestHostileUnknownKidFlood(t *testing.T) {
	var fetches atomic.Int32
	s0 := newHostile(t, hostileOpts{})
	pub, err := s0.key.PublicKey()
	require.NoError(t, err)
	set := jwk.NewSet()
	require.NoError(t, set.AddKey(pub))
	body, err := json.Marshal(set)
	require.NoError(t, err)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		fetches.Add(1)
		w.Write(body)
	}))
	t.Cleanup(srv.Close)
	keys, err := runtimeid.RemoteKeys(context.Background(), srv.URL, runtimeid.RemoteKeysOptions{
		Now: func() time.Time { return hostileNow },
	})
	require.NoError(t, err)
	t.Cleanup(func() { keys.Close() })
	s := newHostile(t, hostileOpts{keys: keys})

	var wg sync.WaitGroup
	var refused atomic.Int32
	for i := range 1000 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			tok := s.forge(map[string]any{"alg": "ES256", "kid": fmt.Sprintf("kid-%d", i)},
				func(string) []byte { return make([]byte, 64) })
			ev, _ := s.eng.Evaluate(context.Background(), runtimeid.Input{Token: tok})
			if ev.Decision.Outcome == runtimeid.Block && ev.Decision.Reason == "token_unknown_key" {
				refused.Add(1)
			}
		}()
	}
	wg.Wait()
	assert.Equal(t, int32(1000), refused.Load())
	// The first fetch at start, then one for the flood: the clock does
	// not move, so MinRefreshInterval never passes.
	assert.LessOrEqual(t, fetches.Load(), int32(2))
}

// TestHostilePaths: encoded slashes, dot segments, doubled slashes and
// case games never reach a handler under another action, through the
// ServeMux and chi adapters with the real enforcer; HEAD is evaluated
// as GET, an OPTIONS that is no preflight and a WebSocket upgrade need
// a token like any request.
func TestHostilePaths(t *testing.T) {
	s := newHostile(t, hostileOpts{})
	good := s.sign(nil)
	var mu sync.Mutex
	var ran []string
	record := func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		ran = append(ran, runtimeid.FromContext(r.Context()).Action.Name)
		mu.Unlock()
		w.Write([]byte("ran"))
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /api/export", record)
	mux.HandleFunc("GET /ws", record)
	mux.HandleFunc("OPTIONS /api/export", record)
	r := chi.NewRouter()
	r.Use(chiadapter.Middleware(s.eng))
	r.Get("/api/export", record)
	r.Head("/api/export", record)
	r.Get("/ws", record)
	r.Options("/api/export", record)
	routers := map[string]http.Handler{"servemux": servemux.Wrap(s.eng, mux), "chi": r}

	tricks := []string{"/api//export", "/api/./export", "/api/x/../export", "/API/export",
		"/api%2Fexport", "/api%2fexport", "/api/export/", "/api/export%00", "//api/export"}
	upgrade := []string{"Connection", "Upgrade", "Upgrade", "websocket",
		"Sec-WebSocket-Version", "13", "Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ=="}

	for name, h := range routers {
		t.Run(name, func(t *testing.T) {
			for _, p := range tricks {
				// Without a token, every spelling is refused alike.
				rep := s.serve(h, get(p))
				assert.Equal(t, 401, rep.status, p)
				assert.Equal(t, `Bearer realm="api"`, rep.auth, p)

				// With one, the handler runs only as the route's action.
				ran = nil
				s.serve(h, get(p, bearer(good)...))
				for _, a := range ran {
					assert.Equal(t, "GET /api/export", a, p)
				}
			}

			head := get("/api/export")
			head.Method = http.MethodHead
			rep := s.serve(h, head)
			assert.Equal(t, 401, rep.status)
			ran = nil
			head.Header.Set("Authorization", "Bearer "+good)
			rep = s.serve(h, head)
			assert.Equal(t, 200, rep.status)
			assert.Equal(t, []string{"GET /api/export"}, ran)

			opt := get("/api/export")
			opt.Method = http.MethodOptions
			rep = s.serve(h, opt)
			assert.Equal(t, 401, rep.status)
			assert.Equal(t, "token_missing", rep.code)

			rep = s.serve(h, get("/ws", upgrade...))
			assert.Equal(t, 401, rep.status)
			assert.Equal(t, "token_missing", rep.code)
			ran = nil
			rep = s.serve(h, get("/ws", append(upgrade, bearer(good)...)...))
			assert.Equal(t, 200, rep.status)
			assert.Equal(t, []string{"GET /ws"}, ran)
		})
	}
}
