package runtimeid_test

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/json"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/lestrrat-go/jwx/v2/jwa"
	"github.com/lestrrat-go/jwx/v2/jwk"
	"github.com/lestrrat-go/jwx/v2/jwt"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"

	"github.com/runtimeid/runtimeid"
	"github.com/runtimeid/runtimeid/decision"
	"github.com/runtimeid/runtimeid/policy"
	"github.com/runtimeid/runtimeid/risk"
)

// The end-to-end tests run the real pipeline over a real HTTP server:
// ES256 tokens, the default policy, the risk evaluator and the enforcer.

const (
	testIssuer   = "https://idp.test.example"
	testAudience = "orders-api"
)

// places stands in for the network collector: peer address to location.
var places = map[string]runtimeid.NetworkSignals{
	"127.0.0.1": {Country: "GB", City: "London", Latitude: 51.5142, Longitude: -0.0931, HasLocation: true},
}

type fakeNetwork struct{ anonymous atomic.Bool }

func (f *fakeNetwork) Collect(_ context.Context, ev *runtimeid.Evaluation) error {
	host, _, _ := net.SplitHostPort(ev.Request.RemoteAddr)
	ev.Signals.ClientIP = netip.MustParseAddr(host)
	ev.Signals.Network = places[host]
	if f.anonymous.Load() {
		ev.Signals.Network.Anonymous, ev.Signals.Network.Tor = true, true
	}
	return nil
}

type stack struct {
	t      *testing.T
	key    jwk.Key
	now    atomic.Int64
	srv    *httptest.Server
	logs   *bytes.Buffer
	net    *fakeNetwork
	spans  *tracetest.InMemoryExporter
	reader *sdkmetric.ManualReader
}

func newStack(t *testing.T) *stack {
	t.Helper()
	s := &stack{t: t, logs: &bytes.Buffer{}, net: &fakeNetwork{}}
	s.now.Store(time.Date(2026, 12, 4, 12, 0, 0, 0, time.UTC).UnixNano())

	priv, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	require.NoError(t, err)
	s.key, err = jwk.FromRaw(priv)
	require.NoError(t, err)
	require.NoError(t, s.key.Set(jwk.KeyIDKey, "k1"))
	pub, err := s.key.PublicKey()
	require.NoError(t, err)
	set := jwk.NewSet()
	require.NoError(t, set.AddKey(pub))
	keys, err := runtimeid.StaticKeys(set)
	require.NoError(t, err)

	evaluator, err := risk.NewEvaluator(risk.NewMemoryStore(), risk.Options{})
	require.NoError(t, err)
	enforcer, err := decision.NewEnforcer(decision.Options{StepUpURL: "/stepup", Realm: "api"})
	require.NoError(t, err)

	s.spans = tracetest.NewInMemoryExporter()
	s.reader = sdkmetric.NewManualReader()
	eng, err := runtimeid.New(runtimeid.Config{
		Token:          runtimeid.TokenConfig{Issuer: testIssuer, Audience: []string{testAudience}, Keys: keys},
		Collectors:     []runtimeid.SignalCollector{s.net},
		Evaluators:     []runtimeid.RiskEvaluator{evaluator},
		Policy:         policy.Default(),
		Enforcer:       enforcer,
		Logger:         slog.New(slog.NewJSONHandler(s.logs, nil)),
		Now:            func() time.Time { return time.Unix(0, s.now.Load()) },
		TracerProvider: sdktrace.NewTracerProvider(sdktrace.WithSyncer(s.spans)),
		MeterProvider:  sdkmetric.NewMeterProvider(sdkmetric.WithReader(s.reader)),
	})
	require.NoError(t, err)

	mux := http.NewServeMux()
	ok := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		id := runtimeid.IdentityFrom(r.Context())
		w.Write([]byte(id.Subject + " " + runtimeid.FromContext(r.Context()).Action.Name))
	})
	mux.Handle("GET /api/orders", eng.Protect("orders.list", runtimeid.Low)(ok))
	mux.Handle("POST /api/transfers", eng.Protect("transfers.create", runtimeid.High)(ok))
	mux.Handle("GET /api/export", eng.Protect("export", runtimeid.High)(ok))
	mux.Handle("GET /api/feed", eng.Protect("feed", runtimeid.Low, runtimeid.AllowQueryToken())(ok))
	s.srv = httptest.NewServer(mux)
	t.Cleanup(s.srv.Close)
	return s
}

func (s *stack) clock() time.Time { return time.Unix(0, s.now.Load()) }

func (s *stack) advance(d time.Duration) { s.now.Add(int64(d)) }

// token mints a token; authAgo < 0 leaves auth_time out.
func (s *stack) token(sub string, authAgo time.Duration, edit ...func(jwt.Token)) string {
	now := s.clock()
	tok := jwt.New()
	tok.Set(jwt.IssuerKey, testIssuer)
	tok.Set(jwt.AudienceKey, testAudience)
	tok.Set(jwt.SubjectKey, sub)
	tok.Set(jwt.IssuedAtKey, now)
	tok.Set(jwt.ExpirationKey, now.Add(time.Hour))
	tok.Set("sid", sub+"-session")
	if authAgo >= 0 {
		tok.Set("auth_time", now.Add(-authAgo).Unix())
	}
	for _, e := range edit {
		e(tok)
	}
	signed, err := jwt.Sign(tok, jwt.WithKey(jwa.ES256, s.key))
	require.NoError(s.t, err)
	return string(signed)
}

type result struct {
	status  int
	auth    string
	ctype   string
	loc     string
	body    string
	problem map[string]any
}

func (s *stack) do(method, path string, header ...string) result {
	req, err := http.NewRequest(method, s.srv.URL+path, nil)
	require.NoError(s.t, err)
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Add(header[i], header[i+1])
	}
	client := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error {
		return http.ErrUseLastResponse
	}}
	resp, err := client.Do(req)
	require.NoError(s.t, err)
	defer resp.Body.Close()
	var buf bytes.Buffer
	buf.ReadFrom(resp.Body)
	r := result{status: resp.StatusCode, auth: resp.Header.Get("WWW-Authenticate"),
		ctype: resp.Header.Get("Content-Type"), loc: resp.Header.Get("Location"), body: buf.String()}
	if r.ctype == "application/problem+json" && buf.Len() > 0 {
		require.NoError(s.t, json.Unmarshal(buf.Bytes(), &r.problem))
	}
	return r
}

func bearer(tok string) []string { return []string{"Authorization", "Bearer " + tok} }

func TestEndToEndTokenErrors(t *testing.T) {
	s := newStack(t)
	good := s.token("alice", time.Minute)
	expired := s.token("alice", time.Minute, func(tok jwt.Token) {
		tok.Set(jwt.ExpirationKey, s.clock().Add(-2*time.Minute))
	})
	wrongAud := s.token("alice", time.Minute, func(tok jwt.Token) { tok.Set(jwt.AudienceKey, "other") })
	parts := strings.Split(good, ".")
	tampered := parts[0] + "." + parts[1] + "." + strings.Repeat("A", len(parts[2]))

	tests := []struct {
		name   string
		header []string
		path   string
		status int
		auth   string
		code   string
	}{
		{"missing", nil, "/api/orders", 401, `Bearer realm="api"`, "token_missing"},
		{"expired", bearer(expired), "/api/orders", 401,
			`Bearer realm="api", error="invalid_token", error_description="token expired"`, "token_expired"},
		{"audience", bearer(wrongAud), "/api/orders", 401,
			`Bearer realm="api", error="invalid_token", error_description="audience not accepted"`,
			"token_audience"},
		{"tampered", bearer(tampered), "/api/orders", 401,
			`Bearer realm="api", error="invalid_token", error_description="invalid signature"`,
			"token_signature"},
		{"garbage", bearer("not-a-jwt"), "/api/orders", 401,
			`Bearer realm="api", error="invalid_token", error_description="not a compact JWS"`,
			"token_malformed"},
		{"basic scheme", []string{"Authorization", "Basic YWxpY2U6cHc="}, "/api/orders", 401,
			`Bearer realm="api", error="invalid_token", error_description="authorization scheme is not Bearer"`,
			"token_malformed"},
		{"DPoP scheme without a proof", []string{"Authorization", "DPoP " + good}, "/api/orders", 401,
			`Bearer realm="api", DPoP realm="api", error="invalid_token", error_description="DPoP proof not verified"`,
			"token_binding"},
		{"two headers", append(bearer(good), bearer(good)...), "/api/orders", 400,
			`Bearer realm="api", error="invalid_request", error_description="more than one Authorization header"`,
			"invalid_request"},
		{"query token refused", nil, "/api/orders?access_token=" + good, 400,
			`Bearer realm="api", error="invalid_request", error_description="access token in query string refused"`,
			"invalid_request"},
		{"too large", bearer(strings.Repeat("a", 9000)), "/api/orders", 401,
			`Bearer realm="api", error="invalid_token", error_description="authorization header too large"`,
			"token_too_large"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := s.do("GET", tt.path, tt.header...)
			assert.Equal(t, tt.status, r.status)
			assert.Equal(t, tt.auth, r.auth)
			assert.Equal(t, "application/problem+json", r.ctype)
			assert.Equal(t, tt.code, r.problem["code"])
			assert.NotContains(t, r.body, good)
		})
	}
	assert.NotContains(t, s.logs.String(), parts[1], "no token reaches the audit log")

	// Scheme case and surrounding whitespace are tolerated; the query
	// token works on the route that opted in.
	r := s.do("GET", "/api/orders", "Authorization", "  bEaReR   "+good+" ")
	assert.Equal(t, 200, r.status)
	assert.Equal(t, "alice orders.list", r.body)
	r = s.do("GET", "/api/feed?access_token="+good)
	assert.Equal(t, 200, r.status)
}

func TestEndToEndStepUpAndBlocks(t *testing.T) {
	s := newStack(t)
	stale := s.token("alice", time.Hour)

	// A read is allowed and teaches the baseline this device and place.
	r := s.do("GET", "/api/orders", bearer(stale)...)
	require.Equal(t, 200, r.status)

	// A transfer with an hour-old login is challenged (RFC 9470).
	r = s.do("POST", "/api/transfers", bearer(stale)...)
	assert.Equal(t, 401, r.status)
	assert.Equal(t, `Bearer realm="api", error="insufficient_user_authentication", `+
		`error_description="step-up authentication required: stale_authentication", max_age=300`, r.auth)
	assert.Equal(t, "stale_authentication", r.problem["code"])

	// A browser is redirected to the step-up page with the return URL.
	r = s.do("GET", "/api/export?fmt=csv", append(bearer(stale), "Accept", "text/html")...)
	assert.Equal(t, 303, r.status)
	assert.Equal(t, "/stepup?max_age=300&return_to=%2Fapi%2Fexport%3Ffmt%3Dcsv", r.loc)

	// After step-up the fresh token passes: no loop.
	s.advance(30 * time.Second)
	fresh := s.token("alice", 10*time.Second)
	r = s.do("POST", "/api/transfers", bearer(fresh)...)
	assert.Equal(t, 200, r.status)
	assert.Equal(t, "alice transfers.create", r.body)

	// The same fresh token from a Tor exit may not export.
	s.net.anonymous.Store(true)
	r = s.do("GET", "/api/export", bearer(fresh)...)
	assert.Equal(t, 403, r.status)
	assert.Equal(t, "anonymous_network", r.problem["code"])
	assert.Empty(t, r.auth)

	// HEAD gets the status and headers without a body.
	r = s.do("HEAD", "/api/export", bearer(fresh)...)
	assert.Equal(t, 403, r.status)
	assert.Empty(t, r.body)

	// Audit: one event per decision, the reasons in it.
	var events []map[string]any
	for _, line := range strings.Split(strings.TrimSpace(s.logs.String()), "\n") {
		var e map[string]any
		require.NoError(t, json.Unmarshal([]byte(line), &e))
		events = append(events, e)
	}
	require.Len(t, events, 6)
	assert.Equal(t, "challenge-stale-auth-high", events[1]["rule"])
	assert.Equal(t, "WARN", events[1]["level"])
	assert.Equal(t, "block-anonymous-network-high", events[4]["rule"])
	assert.Equal(t, []any{"anonymous_network"}, events[4]["findings"])
	assert.Equal(t, "alice", events[4]["sub"])
	assert.Equal(t, "GB", events[4]["country"])

	// Telemetry: one span per decision and the counter by outcome.
	assert.Len(t, s.spans.GetSpans(), 6)
	var rm metricdata.ResourceMetrics
	require.NoError(t, s.reader.Collect(context.Background(), &rm))
	counts := map[string]int64{}
	for _, sm := range rm.ScopeMetrics {
		for _, m := range sm.Metrics {
			if m.Name != "runtimeid.decisions" {
				continue
			}
			for _, dp := range m.Data.(metricdata.Sum[int64]).DataPoints {
				o, _ := dp.Attributes.Value("outcome")
				counts[o.AsString()] += dp.Value
			}
		}
	}
	assert.Equal(t, map[string]int64{"allow": 2, "challenge": 2, "block": 2}, counts)
}

type panickingKeys struct{}

func (panickingKeys) VerificationKey(context.Context, string) (jwk.Key, jwa.SignatureAlgorithm, error) {
	panic("key source bug")
}

func TestPanickingKeySourceRefusesToken(t *testing.T) {
	eng, err := runtimeid.New(runtimeid.Config{
		Token:  runtimeid.TokenConfig{Issuer: testIssuer, Audience: []string{testAudience}, Keys: panickingKeys{}},
		Policy: policy.Default(),
	})
	require.NoError(t, err)
	s := newStack(t)
	ev, err := eng.Evaluate(context.Background(), runtimeid.Input{Token: s.token("alice", 0)})
	var te *runtimeid.TokenError
	require.ErrorAs(t, err, &te)
	assert.Equal(t, runtimeid.CodeTokenUnknownKey, te.Code)
	assert.Equal(t, runtimeid.Block, ev.Decision.Outcome)
}
