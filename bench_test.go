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

// benchPipeline builds the full pipeline the README describes: token,
// client IP through a trusted proxy, GeoIP (MaxMind test databases),
// device, baseline, risk, the default policy, the enforcer and an audit
// event written to a discarding JSON handler.
func benchPipeline(b *testing.B, alg jwa.SignatureAlgorithm, raw any, skipAuth bool) (http.Handler, *http.Request) {
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

	now := time.Date(2026, 12, 4, 12, 0, 0, 0, time.UTC)
	eng, err := runtimeid.New(runtimeid.Config{
		Token: runtimeid.TokenConfig{Issuer: testIssuer, Audience: []string{testAudience}, Keys: keys,
			InsecureSkipAuthentication: skipAuth},
		Collectors: []runtimeid.SignalCollector{signals.NewClientIP(trusted), geo, signals.NewDevice()},
		Evaluators: []runtimeid.RiskEvaluator{evaluator},
		Policy:     policy.Default(),
		Enforcer:   enforcer,
		Logger:     slog.New(slog.NewJSONHandler(discard{}, nil)),
		Now:        func() time.Time { return now },
	})
	require.NoError(b, err)

	tok := jwt.New()
	tok.Set(jwt.IssuerKey, testIssuer)
	tok.Set(jwt.AudienceKey, testAudience)
	tok.Set(jwt.SubjectKey, "alice")
	tok.Set(jwt.IssuedAtKey, now.Add(-time.Minute))
	tok.Set(jwt.ExpirationKey, now.Add(time.Hour))
	tok.Set("auth_time", now.Add(-time.Minute).Unix())
	tok.Set("sid", "s1")
	signed, err := jwt.Sign(tok, jwt.WithKey(alg, key))
	require.NoError(b, err)

	h := eng.Protect("orders.list", runtimeid.Low)(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.WriteHeader(http.StatusNoContent)
	}))
	req := httptest.NewRequest(http.MethodGet, "/api/orders", nil)
	req.RemoteAddr = "10.1.2.3:5555"
	req.Header.Set("X-Forwarded-For", "2.125.160.216")
	req.Header.Set("User-Agent", "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/537.36 "+
		"(KHTML, like Gecko) Chrome/124.0.0.0 Safari/537.36")
	req.Header.Set("Authorization", "Bearer "+string(signed))
	return h, req
}

type discard struct{}

func (discard) Write(p []byte) (int, error) { return len(p), nil }

func runPipeline(b *testing.B, h http.Handler, req *http.Request) {
	b.ReportAllocs()
	for b.Loop() {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		if rec.Code != http.StatusNoContent {
			b.Fatalf("status %d: %s", rec.Code, rec.Body)
		}
	}
}

// BenchmarkMiddleware is the full pipeline with an ES256 token verified on
// every request.
func BenchmarkMiddleware(b *testing.B) {
	priv, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	require.NoError(b, err)
	h, req := benchPipeline(b, jwa.ES256, priv, false)
	runPipeline(b, h, req)
}

// BenchmarkMiddlewareRS256 is the same with an RSA-2048 token.
func BenchmarkMiddlewareRS256(b *testing.B) {
	priv, err := rsa.GenerateKey(rand.Reader, 2048)
	require.NoError(b, err)
	h, req := benchPipeline(b, jwa.RS256, priv, false)
	runPipeline(b, h, req)
}

// BenchmarkMiddlewareNoToken is every stage but token verification: what
// the rest of the pipeline costs.
func BenchmarkMiddlewareNoToken(b *testing.B) {
	priv, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	require.NoError(b, err)
	h, req := benchPipeline(b, jwa.ES256, priv, true)
	runPipeline(b, h, req)
}
