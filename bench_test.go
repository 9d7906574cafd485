package runtimeid_test

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/go-chi/chi/v5"
	"github.com/lestrrat-go/jwx/v2/jwa"
	"github.com/lestrrat-go/jwx/v2/jwk"
	"github.com/lestrrat-go/jwx/v2/jwt"
	"github.com/stretchr/testify/require"

	"github.com/runtimeid/runtimeid"
	"github.com/runtimeid/runtimeid/decision"
	"github.com/runtimeid/runtimeid/policy"
	"github.com/runtimeid/runtimeid/risk"
	"github.com/runtimeid/runtimeid/signals"
)

// benchSetup says which pipeline to build.
type benchSetup struct {
	alg      jwa.SignatureAlgorithm
	key      any // the private key
	skipAuth bool
	policy   runtimeid.PolicyEngine // nil for policy.Default()
	noAudit  bool                   // a logger that discards, so no event is built
	queue    bool                   // the audit event goes through an AuditQueue
}

// benchPipeline builds the full pipeline the README describes behind a
// chi route: token, client IP through a trusted proxy, GeoIP (MaxMind
// test databases), device, baseline, risk, the policy, the enforcer and
// an audit event written to a discarding JSON handler, or, with
// s.queue, captured for an [runtimeid.AuditQueue] whose goroutine writes
// it as a JSON line to a discarding writer. The request is sent again
// and again, so after the first one its token is cached.
func benchPipeline(b *testing.B, s benchSetup) (http.Handler, *http.Request) {
	keys, signer := benchKeys(b, s.alg, s.key)

	trusted, err := signals.ParsePrefixes("10.0.0.0/8")
	require.NoError(b, err)
	geo, err := signals.OpenGeoIP(signals.GeoIPConfig{
		CityPath:        "signals/testdata/maxmind/GeoIP2-City-Test.mmdb",
		ASNPath:         "signals/testdata/maxmind/GeoLite2-ASN-Test.mmdb",
		AnonymousIPPath: "signals/testdata/maxmind/GeoIP2-Anonymous-IP-Test.mmdb",
	})
	require.NoError(b, err)
	b.Cleanup(func() { geo.Close() })
	store, err := risk.NewLRUStore(10_000)
	require.NoError(b, err)
	evaluator, err := risk.NewEvaluator(store, risk.Options{})
	require.NoError(b, err)
	enforcer, err := decision.NewEnforcer(decision.Options{})
	require.NoError(b, err)
	pol := s.policy
	if pol == nil {
		pol = policy.Default()
	}
	logger := slog.New(slog.NewJSONHandler(discard{}, nil))
	if s.noAudit {
		logger = slog.New(slog.DiscardHandler)
	}

	var queue *runtimeid.AuditQueue
	if s.queue {
		queue, err = runtimeid.NewAuditQueue(runtimeid.AuditQueueOptions{
			Writer: runtimeid.NewJSONLinesSink(discard{}, runtimeid.JSONLinesOptions{}),
		})
		require.NoError(b, err)
		b.Cleanup(func() {
			queue.Close()
			if st := queue.Stats(); st.Dropped+st.Failed > 0 {
				b.Errorf("audit records lost: %+v", st)
			}
		})
	}

	now := time.Date(2026, 12, 4, 12, 0, 0, 0, time.UTC)
	eng, err := runtimeid.New(runtimeid.Config{
		Token: runtimeid.TokenConfig{Issuer: testIssuer, Audience: []string{testAudience},
			Keys: keys, InsecureSkipAuthentication: s.skipAuth},
		Collectors: []runtimeid.SignalCollector{
			signals.NewClientIP(trusted), geo, signals.NewDevice(),
		},
		Evaluators: []runtimeid.RiskEvaluator{evaluator},
		Policy:     pol,
		Enforcer:   enforcer,
		Logger:     logger,
		Audit:      queue,
		Now:        func() time.Time { return now },
	})
	require.NoError(b, err)

	h := chiRoute(eng.Protect("orders.list", runtimeid.Low))
	req := benchRequest(benchToken(b, signer, s.alg, now))
	return h, req
}

func benchKeys(b testing.TB, alg jwa.SignatureAlgorithm, raw any) (runtimeid.KeySource, jwk.Key) {
	key, err := jwk.FromRaw(raw)
	require.NoError(b, err)
	require.NoError(b, key.Set(jwk.KeyIDKey, "k1"))
	require.NoError(b, key.Set(jwk.AlgorithmKey, alg))
	pub, err := key.PublicKey()
	require.NoError(b, err)
	set := jwk.NewSet()
	require.NoError(b, set.AddKey(pub))
	keys, err := runtimeid.StaticKeys(set)
	require.NoError(b, err)
	return keys, key
}

func benchToken(b *testing.B, key jwk.Key, alg jwa.SignatureAlgorithm, now time.Time) string {
	tok := jwt.New()
	tok.Set(jwt.IssuerKey, testIssuer)
	tok.Set(jwt.AudienceKey, testAudience)
	tok.Set(jwt.SubjectKey, "alice")
	tok.Set(jwt.IssuedAtKey, now.Add(-time.Minute))
	tok.Set(jwt.ExpirationKey, now.Add(time.Hour))
	tok.Set("auth_time", now.Add(-time.Minute).Unix())
	tok.Set("sid", "s1")
	tok.Set("client_id", "web")
	tok.Set("scope", "orders:read orders:write")
	signed, err := jwt.Sign(tok, jwt.WithKey(alg, key))
	require.NoError(b, err)
	return string(signed)
}

// benchRequest is a browser's request through a proxy at 10.1.2.3.
func benchRequest(token string) *http.Request {
	req := httptest.NewRequest(http.MethodGet, "/api/orders", nil)
	req.RemoteAddr = "10.1.2.3:5555"
	req.Header.Set("X-Forwarded-For", "2.125.160.216")
	req.Header.Set("User-Agent", "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) "+
		"AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.0.0 Safari/537.36")
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	return req
}

// chiRoute is a chi router with the one route GET /api/orders, whose
// handler answers 204 behind mw, or bare when mw is nil.
func chiRoute(mw func(http.Handler) http.Handler) http.Handler {
	var h http.Handler = http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.WriteHeader(http.StatusNoContent)
	})
	if mw != nil {
		h = mw(h)
	}
	r := chi.NewRouter()
	r.Method(http.MethodGet, "/api/orders", h)
	return r
}

type discard struct{}

func (discard) Write(p []byte) (int, error) { return len(p), nil }

// recorder is a reusable [http.ResponseWriter], so that the benchmarks
// measure the handlers and not httptest.
type recorder struct {
	header http.Header
	code   int
}

func (r *recorder) Header() http.Header         { return r.header }
func (r *recorder) Write(p []byte) (int, error) { return len(p), nil }
func (r *recorder) WriteHeader(code int)        { r.code = code }

func (r *recorder) reset() {
	clear(r.header)
	r.code = http.StatusOK
}

func serveOnce(b *testing.B, rec *recorder, h http.Handler, req *http.Request) {
	rec.reset()
	h.ServeHTTP(rec, req)
	if rec.code != http.StatusNoContent {
		b.Fatalf("status %d", rec.code)
	}
}

func runPipeline(b *testing.B, h http.Handler, req *http.Request) {
	rec := &recorder{header: http.Header{}}
	serveOnce(b, rec, h, req) // the first request verifies the token
	b.ReportAllocs()
	for b.Loop() {
		serveOnce(b, rec, h, req)
	}
}

func policy10(b *testing.B) runtimeid.PolicyEngine {
	p, err := policy.Load("testdata/bench/policy10.yaml")
	require.NoError(b, err)
	require.Len(b, p.Rules(), 10)
	return p
}

func es256Key(b *testing.B) *ecdsa.PrivateKey {
	priv, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	require.NoError(b, err)
	return priv
}

// BenchmarkChiBare is the chi route alone, the baseline of the others.
func BenchmarkChiBare(b *testing.B) {
	runPipeline(b, chiRoute(nil), benchRequest(""))
}

// BenchmarkMiddleware is the full pipeline with the default policy and an
// ES256 token that was verified before (a cache hit).
func BenchmarkMiddleware(b *testing.B) {
	h, req := benchPipeline(b, benchSetup{alg: jwa.ES256, key: es256Key(b)})
	runPipeline(b, h, req)
}

// BenchmarkMiddlewarePolicy10 is the pipeline the performance targets
// name: a cached token and the ten-rule policy of
// testdata/bench/policy10.yaml.
func BenchmarkMiddlewarePolicy10(b *testing.B) {
	h, req := benchPipeline(b, benchSetup{alg: jwa.ES256, key: es256Key(b), policy: policy10(b)})
	runPipeline(b, h, req)
}

// BenchmarkMiddlewarePolicy10NoAudit is BenchmarkMiddlewarePolicy10
// with a logger whose handler is disabled: what the audit event costs is
// the difference, almost all of it slog's JSON encoding.
func BenchmarkMiddlewarePolicy10NoAudit(b *testing.B) {
	h, req := benchPipeline(b, benchSetup{alg: jwa.ES256, key: es256Key(b),
		policy: policy10(b), noAudit: true})
	runPipeline(b, h, req)
}

// BenchmarkMiddlewarePolicy10Queue is BenchmarkMiddlewarePolicy10 with
// the audit event queued: the request captures it, another goroutine
// encodes and writes it.
func BenchmarkMiddlewarePolicy10Queue(b *testing.B) {
	h, req := benchPipeline(b, benchSetup{alg: jwa.ES256, key: es256Key(b),
		policy: policy10(b), queue: true})
	runPipeline(b, h, req)
}

// BenchmarkMiddlewareRS256 is the same with an RSA-2048 token.
func BenchmarkMiddlewareRS256(b *testing.B) {
	priv, err := rsa.GenerateKey(rand.Reader, 2048)
	require.NoError(b, err)
	h, req := benchPipeline(b, benchSetup{alg: jwa.RS256, key: priv})
	runPipeline(b, h, req)
}

// BenchmarkMiddlewareNoToken is every stage but token verification: what
// the rest of the pipeline costs.
func BenchmarkMiddlewareNoToken(b *testing.B) {
	h, req := benchPipeline(b, benchSetup{alg: jwa.ES256, key: es256Key(b), skipAuth: true})
	runPipeline(b, h, req)
}

// BenchmarkMiddlewareVsChi sends the same request to the bare chi route
// and to the full pipeline (cached token, ten rules, queued audit event)
// in turn, timing each separately, so that both see the same machine at
// the same moment. It reports chi-ns/op, runtimeid-ns/op and
// added-ns/op, the difference; the target is an added cost of at most
// 5000 ns.
func BenchmarkMiddlewareVsChi(b *testing.B) {
	vsChi(b, true)
}

// BenchmarkMiddlewareVsChiSyncAudit is BenchmarkMiddlewareVsChi with the
// audit event encoded by slog's JSON handler on the request path.
func BenchmarkMiddlewareVsChiSyncAudit(b *testing.B) {
	vsChi(b, false)
}

func vsChi(b *testing.B, queue bool) {
	bare, bareReq := chiRoute(nil), benchRequest("")
	full, fullReq := benchPipeline(b, benchSetup{alg: jwa.ES256,
		key: es256Key(b), policy: policy10(b), queue: queue})
	rec := &recorder{header: http.Header{}}
	serveOnce(b, rec, full, fullReq)

	var tBare, tFull time.Duration
	n := 0
	for b.Loop() {
		t0 := time.Now()
		serveOnce(b, rec, bare, bareReq)
		t1 := time.Now()
		serveOnce(b, rec, full, fullReq)
		tFull += time.Since(t1)
		tBare += t1.Sub(t0)
		n++
	}
	b.ReportMetric(float64(tBare.Nanoseconds())/float64(n), "chi-ns/op")
	b.ReportMetric(float64(tFull.Nanoseconds())/float64(n), "runtimeid-ns/op")
	b.ReportMetric(float64((tFull-tBare).Nanoseconds())/float64(n), "added-ns/op")
}
