package main

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	_ "embed"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"time"

	"github.com/cedar-policy/cedar-go"
	"github.com/go-chi/chi/v5"
	"github.com/go-chi/jwtauth/v5"
	"github.com/lestrrat-go/jwx/v2/jwa"
	"github.com/lestrrat-go/jwx/v2/jwk"
	"github.com/lestrrat-go/jwx/v2/jwt"
	"github.com/open-policy-agent/opa/v1/rego"

	"github.com/runtimeid/runtimeid"
	"github.com/runtimeid/runtimeid/decision"
	"github.com/runtimeid/runtimeid/policy"
	"github.com/runtimeid/runtimeid/risk"
	"github.com/runtimeid/runtimeid/signals"
)

//go:embed policy.rego
var regoPolicy string

//go:embed policy.cedar
var cedarPolicy []byte

const (
	issuer   = "https://idp.example.test"
	audience = "orders-api"
	route    = "/api/orders"
	browser  = "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) " +
		"AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.0.0 Safari/537.36"
)

// fixture is what every contender shares: one ES256 key pair, one
// token signed with it and the clock that token is valid at.
type fixture struct {
	priv  *ecdsa.PrivateKey
	pub   jwk.Key
	token string
	now   time.Time
	root  string // the runtimeid repository, for its test data
}

func newFixture(root string) (*fixture, error) {
	priv, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	key, err := jwk.FromRaw(priv)
	if err != nil {
		return nil, err
	}
	if err := key.Set(jwk.KeyIDKey, "k1"); err != nil {
		return nil, err
	}
	pub, err := key.PublicKey()
	if err != nil {
		return nil, err
	}
	f := &fixture{priv: priv, pub: pub, now: time.Now().UTC(), root: root}
	f.token, err = f.sign(key)
	return f, err
}

func (f *fixture) sign(key jwk.Key) (string, error) {
	tok := jwt.New()
	claims := map[string]any{
		jwt.IssuerKey:     issuer,
		jwt.AudienceKey:   audience,
		jwt.SubjectKey:    "alice",
		jwt.IssuedAtKey:   f.now.Add(-time.Minute),
		jwt.ExpirationKey: f.now.Add(time.Hour),
		"auth_time":       f.now.Add(-time.Minute).Unix(),
		"sid":             "s1",
		"client_id":       "web",
		"scope":           "orders:read orders:write",
	}
	for k, v := range claims {
		if err := tok.Set(k, v); err != nil {
			return "", err
		}
	}
	signed, err := jwt.Sign(tok, jwt.WithKey(jwa.ES256, key))
	return string(signed), err
}

// request is the one request every contender serves: a browser behind
// a proxy at 10.1.2.3, with the bearer token.
func (f *fixture) request() *http.Request {
	req := httptest.NewRequest(http.MethodGet, route, nil)
	req.RemoteAddr = "10.1.2.3:5555"
	req.Header.Set("X-Forwarded-For", "2.125.160.216")
	req.Header.Set("User-Agent", browser)
	req.Header.Set("Authorization", "Bearer "+f.token)
	return req
}

// router is a chi router with the one route, behind mws.
func router(mws ...func(http.Handler) http.Handler) http.Handler {
	r := chi.NewRouter()
	r.Use(mws...)
	r.Get(route, func(w http.ResponseWriter, _ *http.Request) {
		w.WriteHeader(http.StatusNoContent)
	})
	return r
}

// contender is one stack under test.
type contender struct {
	name    string
	handler http.Handler
}

func contenders(ctx context.Context, f *fixture) ([]contender, error) {
	ja := jwtauth.New("ES256", nil, f.pub,
		jwt.WithIssuer(issuer), jwt.WithAudience(audience),
		jwt.WithAcceptableSkew(time.Minute))
	jwtMW := []func(http.Handler) http.Handler{
		jwtauth.Verifier(ja), jwtauth.Authenticator(ja),
	}
	opa, err := opaMiddleware(ctx)
	if err != nil {
		return nil, err
	}
	cedarMW, err := cedarMiddleware()
	if err != nil {
		return nil, err
	}
	ridSync, err := runtimeidMiddleware(f, false)
	if err != nil {
		return nil, err
	}
	rid, err := runtimeidMiddleware(f, true)
	if err != nil {
		return nil, err
	}
	return []contender{
		{"chi (bare route)", router()},
		{"jwtauth", router(jwtMW...)},
		{"jwtauth + OPA", router(append(jwtMW, opa)...)},
		{"cedar-go", router(cedarMW)},
		{"runtimeid (sync audit)", router(ridSync)},
		{"runtimeid", router(rid)},
	}, nil
}

// opaMiddleware decides with the Rego policy, embedded: its input is the
// token jwtauth verified and the request. It has no signal collectors,
// so network, device and risk are empty, which only makes it cheaper.
func opaMiddleware(ctx context.Context) (func(http.Handler) http.Handler, error) {
	pq, err := prepareOPA(ctx)
	if err != nil {
		return nil, err
	}
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			tok, claims, err := jwtauth.FromContext(r.Context())
			if err != nil || tok == nil {
				http.Error(w, "unauthorized", http.StatusUnauthorized)
				return
			}
			rs, err := pq.Eval(r.Context(), rego.EvalInput(opaInput(r, claims)))
			if err != nil || len(rs) != 1 || rs[0].Expressions[0].Value != "allow" {
				http.Error(w, "forbidden", http.StatusForbidden)
				return
			}
			next.ServeHTTP(w, r)
		})
	}, nil
}

func prepareOPA(ctx context.Context) (rego.PreparedEvalQuery, error) {
	pq, err := rego.New(
		rego.Query("data.runtimeid.outcome"),
		rego.Module("policy.rego", regoPolicy),
	).PrepareForEval(ctx)
	if err != nil {
		return pq, fmt.Errorf("opa: %w", err)
	}
	return pq, nil
}

func opaInput(r *http.Request, claims map[string]any) map[string]any {
	scope, _ := claims["scope"].(string)
	clientID, _ := claims["client_id"].(string)
	since := -1.0
	if at, ok := claims["auth_time"].(float64); ok {
		since = time.Since(time.Unix(int64(at), 0)).Seconds()
	}
	_, delegated := claims["act"]
	return map[string]any{
		"identity": map[string]any{
			"sub":       claims["sub"],
			"scopes":    strings.Fields(scope),
			"client_id": clientID,
			"delegated": delegated,
		},
		"action": map[string]any{"method": r.Method, "sensitivity": "low"},
		"signals": map[string]any{
			"network": map[string]any{"anonymous": false, "country": ""},
			"device":  map[string]any{"bot": false},
			"session": map[string]any{
				"has_auth_time":      since >= 0,
				"since_auth_seconds": since,
			},
		},
		"risk": map[string]any{"level": "low", "findings": []string{}},
	}
}

// cedarMiddleware decides with the Cedar policy over a context built
// from the request. It verifies no token: the principal is fixed.
func cedarMiddleware() (func(http.Handler) http.Handler, error) {
	ps, err := cedar.NewPolicySetFromBytes("policy.cedar", cedarPolicy)
	if err != nil {
		return nil, fmt.Errorf("cedar: %w", err)
	}
	entities := cedar.EntityMap{}
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			req := cedar.Request{
				Principal: cedar.NewEntityUID("User", "alice"),
				Action:    cedar.NewEntityUID("Action", cedar.String(r.Method)),
				Resource:  cedar.NewEntityUID("Route", route),
				Context:   cedarContext(r),
			}
			if d, _ := cedar.Authorize(ps, entities, req); d != cedar.Allow {
				http.Error(w, "forbidden", http.StatusForbidden)
				return
			}
			next.ServeHTTP(w, r)
		})
	}, nil
}

func cedarContext(r *http.Request) cedar.Record {
	return cedar.NewRecord(cedar.RecordMap{
		"method":             cedar.String(r.Method),
		"sensitivity":        cedar.String("low"),
		"anonymous":          cedar.False,
		"bot":                cedar.False,
		"findings":           cedar.NewSet(),
		"has_auth_time":      cedar.True,
		"since_auth_seconds": cedar.Long(60),
		"risk_level":         cedar.String("low"),
		"scopes":             cedar.NewSet(cedar.String("orders:read")),
		"country":            cedar.String("GB"),
		"client_id":          cedar.String("web"),
		"delegated":          cedar.False,
	})
}

// runtimeidMiddleware is the full pipeline: the token (cached after the
// first request), the client IP through the trusted proxy, GeoIP on the
// MaxMind test databases, the device, the risk baseline, the ten-rule
// CEL policy, the enforcer and an audit event as JSON. With queue, the
// request only captures the audit event and an [runtimeid.AuditQueue]
// writes it as a JSON line (blocking when full, so none is lost), as a
// deployment that cares for latency would; without it, the event goes
// through slog's JSON handler on the request path. The queue is never
// closed: the process ends with the measurement.
func runtimeidMiddleware(f *fixture, queue bool) (func(http.Handler) http.Handler, error) {
	set := jwk.NewSet()
	pub, err := f.pub.Clone()
	if err != nil {
		return nil, err
	}
	if err := pub.Set(jwk.AlgorithmKey, jwa.ES256); err != nil {
		return nil, err
	}
	if err := set.AddKey(pub); err != nil {
		return nil, err
	}
	keys, err := runtimeid.StaticKeys(set)
	if err != nil {
		return nil, err
	}
	collectors, err := runtimeidCollectors(f.root)
	if err != nil {
		return nil, err
	}
	store, err := risk.NewLRUStore(100_000)
	if err != nil {
		return nil, err
	}
	evaluator, err := risk.NewEvaluator(store, risk.Options{})
	if err != nil {
		return nil, err
	}
	pol, err := policy.Load(filepath.Join(f.root, "testdata/bench/policy10.yaml"))
	if err != nil {
		return nil, err
	}
	enforcer, err := decision.NewEnforcer(decision.Options{})
	if err != nil {
		return nil, err
	}
	cfg := runtimeid.Config{
		Token: runtimeid.TokenConfig{
			Issuer: issuer, Audience: []string{audience}, Keys: keys,
		},
		Collectors: collectors,
		Evaluators: []runtimeid.RiskEvaluator{evaluator},
		Policy:     pol,
		Enforcer:   enforcer,
		Logger:     slog.New(slog.NewJSONHandler(discard{}, nil)),
	}
	if queue {
		sink := runtimeid.NewJSONLinesSink(discard{}, runtimeid.JSONLinesOptions{})
		cfg.Audit, err = runtimeid.NewAuditQueue(runtimeid.AuditQueueOptions{Writer: sink})
		if err != nil {
			return nil, err
		}
	}
	eng, err := runtimeid.New(cfg)
	if err != nil {
		return nil, err
	}
	return eng.Protect("orders.list", runtimeid.Low), nil
}

func runtimeidCollectors(root string) ([]runtimeid.SignalCollector, error) {
	trusted, err := signals.ParsePrefixes("10.0.0.0/8, 127.0.0.1")
	if err != nil {
		return nil, err
	}
	mm := filepath.Join(root, "signals/testdata/maxmind")
	geo, err := signals.OpenGeoIP(signals.GeoIPConfig{
		CityPath:        filepath.Join(mm, "GeoIP2-City-Test.mmdb"),
		ASNPath:         filepath.Join(mm, "GeoLite2-ASN-Test.mmdb"),
		AnonymousIPPath: filepath.Join(mm, "GeoIP2-Anonymous-IP-Test.mmdb"),
	})
	if err != nil {
		return nil, err
	}
	return []runtimeid.SignalCollector{
		signals.NewClientIP(trusted), geo, signals.NewDevice(),
	}, nil
}

type discard struct{}

func (discard) Write(p []byte) (int, error) { return len(p), nil }
