package main

import (
	"context"
	"embed"
	"encoding/json"
	"fmt"
	"io/fs"
	"log/slog"
	"math"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/runtimeid/runtimeid"
	redisstore "github.com/runtimeid/runtimeid/adapters/redis"
	"github.com/runtimeid/runtimeid/adapters/stepup"
	"github.com/runtimeid/runtimeid/decision"
	"github.com/runtimeid/runtimeid/policy"
	"github.com/runtimeid/runtimeid/risk"
	"github.com/runtimeid/runtimeid/signals"
	"github.com/runtimeid/runtimeid/signals/ssf"
)

//go:embed data/apache_logs data/maxmind/*.mmdb
var embedded embed.FS

// options are the quickstart's flags.
type options struct {
	addr           string
	jwks           string
	issuer         string
	audience       string
	policy         string
	geoCity        string
	geoASN         string
	geoAnonymous   string
	trustedProxies string
	stepUpURL      string
	demo           bool
	ssfIssuer      string
	ssfJWKS        string
	ssfAudience    string
	ssfToken       string
	redis          string

	// ssfKeys are the transmitter's keys when -ssf-jwks was loaded
	// already (the demo passes its own).
	ssfKeys runtimeid.KeySource

	// signer is the built-in issuer, nil with -jwks. On a loopback
	// -addr, with the built-in step-up, it signs browsers in at /signin.
	signer *issuer
}

// service is the protected API and everything behind it.
type service struct {
	engine  *runtimeid.Engine
	handler http.Handler
	geo     *signals.GeoIP
	tmpDir  string
	ssf     *ssf.Receiver     // nil without -ssf-issuer
	shared  *redisstore.Store // nil without -redis
	stepUp  *stepup.Service   // nil with -stepup-url
	signIn  *signIn           // nil unless mounted: see options.signer
}

func (s *service) Close() {
	if s.shared != nil {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		s.shared.Close(ctx)
		cancel()
	}
	if s.geo != nil {
		s.geo.Close()
	}
	if s.tmpDir != "" {
		os.RemoveAll(s.tmpDir)
	}
}

// newService wires the engine: keys, collectors, risk, policy, enforcer.
func newService(ctx context.Context, o options, keys runtimeid.KeySource,
	now func() time.Time, logger *slog.Logger) (*service, error) {
	s := &service{}
	geo, err := s.openGeoIP(o)
	if err != nil {
		s.Close()
		return nil, err
	}
	s.geo = geo

	trusted, err := signals.ParsePrefixes(o.trustedProxies)
	if err != nil {
		s.Close()
		return nil, fmt.Errorf("-trusted-proxies: %w", err)
	}

	pol := policy.Default()
	if o.policy != "" {
		if pol, err = policy.Load(o.policy); err != nil {
			s.Close()
			return nil, err
		}
	}

	st, err := s.openState(ctx, o, now, logger)
	if err != nil {
		s.Close()
		return nil, err
	}
	evaluator, err := risk.NewEvaluator(st.baselines, risk.Options{})
	if err != nil {
		s.Close()
		return nil, err
	}
	sessions, err := risk.NewSessionEvaluator(risk.SessionOptions{Shared: st.sessions})
	if err != nil {
		s.Close()
		return nil, err
	}
	model, err := risk.NewModel(risk.ModelOptions{})
	if err != nil {
		s.Close()
		return nil, err
	}
	// Proof of possession: DPoP-bound tokens (RFC 9449) are accepted on
	// every route, and a bound token without its proof is refused.
	dpop, err := runtimeid.NewDPoP(runtimeid.DPoPOptions{Now: now, TrustedProxies: trusted,
		Replay: st.replay})
	if err != nil {
		s.Close()
		return nil, err
	}
	// Step-up: an external page (-stepup-url), or passkeys and codes
	// answered right here.
	tok := runtimeid.TokenConfig{Issuer: o.issuer, Audience: []string{o.audience}, Keys: keys}
	stepUpURL := o.stepUpURL
	var stepUps runtimeid.StepUpSource
	if stepUpURL == "" {
		if s.stepUp, err = newStepUp(o, tok, st.secrets, now, logger); err != nil {
			s.Close()
			return nil, err
		}
		stepUpURL, stepUps = "/stepup/", s.stepUp
		s.signIn = newSignIn(o.signer, o.addr, now)
	}
	enforcer, err := decision.NewEnforcer(decision.Options{StepUpURL: stepUpURL,
		Realm: "quickstart", DPoP: dpop})
	if err != nil {
		s.Close()
		return nil, err
	}

	collectors := []runtimeid.SignalCollector{
		signals.NewClientIP(trusted), geo, signals.NewDevice(),
	}
	evaluators := []runtimeid.RiskEvaluator{evaluator, sessions, model}
	validators := []runtimeid.IdentityValidator{dpop}

	// Pushed revocation: events from the identity provider change what
	// the next request meets.
	rx, err := newSSF(ctx, o, st.revocations, now, logger)
	if err != nil {
		s.Close()
		return nil, err
	}
	if rx != nil {
		s.ssf = rx
		validators = append(validators, ssf.NewValidator(st.revocations))
		collectors = append(collectors, ssf.NewCollector(st.revocations))
		evaluators = append(evaluators, ssf.NewEvaluator(st.revocations))
	}

	s.engine, err = runtimeid.New(runtimeid.Config{
		Token:      tok,
		StepUps:    stepUps,
		Validators: validators,
		Collectors: collectors,
		Evaluators: evaluators,
		Policy:     pol,
		Enforcer:   enforcer,
		Logger:     logger,
		Now:        now,
	})
	if err != nil {
		s.Close()
		return nil, err
	}
	s.handler = s.routes()
	return s, nil
}

// state is where the service keeps what it learns and what it is told.
type state struct {
	baselines   risk.Store
	revocations ssf.Store
	replay      runtimeid.ReplayCache // nil: DPoP's in-memory default
	secrets     stepup.Store          // nil: the step-up module's memory store
	sessions    risk.SessionStore     // nil: per-process session state
}

// openState keeps state in this process or, with -redis, in Redis, so
// that several quickstart processes behave as one service: a device
// learned, a session revoked, a DPoP proof or a token's device seen by
// one holds on all.
func (s *service) openState(ctx context.Context, o options, now func() time.Time,
	logger *slog.Logger) (state, error) {
	if o.redis == "" {
		lru, err := risk.NewLRUStore(100_000)
		return state{baselines: lru, revocations: ssf.NewState(ssf.StateOptions{})}, err
	}
	client := redis.NewUniversalClient(&redis.UniversalOptions{Addrs: []string{o.redis}})
	shared, err := redisstore.New(ctx, redisstore.Options{Client: client, Logger: logger, Now: now})
	if err != nil {
		client.Close()
		return state{}, fmt.Errorf("-redis %s: %w", o.redis, err)
	}
	s.shared = shared
	return state{baselines: shared.Baselines(), revocations: shared.Revocations(),
		replay: shared.Replay(), secrets: shared.Secrets(),
		sessions: shared.Sessions()}, nil
}

// openGeoIP opens the databases named by flags, or the embedded MaxMind
// test databases for each one not named.
func (s *service) openGeoIP(o options) (*signals.GeoIP, error) {
	cfg := signals.GeoIPConfig{
		CityPath:        o.geoCity,
		ASNPath:         o.geoASN,
		AnonymousIPPath: o.geoAnonymous,
	}
	if cfg.CityPath != "" && cfg.ASNPath != "" && cfg.AnonymousIPPath != "" {
		return signals.OpenGeoIP(cfg)
	}
	dir, err := os.MkdirTemp("", "runtimeid-quickstart-")
	if err != nil {
		return nil, err
	}
	s.tmpDir = dir
	defaults := []struct {
		path *string
		name string
	}{
		{&cfg.CityPath, "GeoIP2-City-Test.mmdb"},
		{&cfg.ASNPath, "GeoLite2-ASN-Test.mmdb"},
		{&cfg.AnonymousIPPath, "GeoIP2-Anonymous-IP-Test.mmdb"},
	}
	for _, d := range defaults {
		if *d.path != "" {
			continue
		}
		data, err := fs.ReadFile(embedded, "data/maxmind/"+d.name)
		if err != nil {
			return nil, err
		}
		*d.path = filepath.Join(dir, d.name)
		if err := os.WriteFile(*d.path, data, 0o600); err != nil {
			return nil, err
		}
	}
	return signals.OpenGeoIP(cfg)
}

// routes is the example API. Each route names its own sensitivity; the
// action is the route pattern.
func (s *service) routes() http.Handler {
	mux := http.NewServeMux()
	protect := func(pattern string, level runtimeid.Sensitivity, h http.HandlerFunc) {
		mux.Handle(pattern, s.engine.Protect(pattern, level)(h))
	}
	protect("GET /api/orders", runtimeid.Low, reply("orders", []string{"A-1001", "A-1002"}))
	protect("PATCH /api/profile", runtimeid.Medium, reply("profile", "updated"))
	protect("POST /api/transfers", runtimeid.High, reply("transfer", "accepted"))
	protect("GET /api/export", runtimeid.High, reply("export", "customers.csv"))
	protect("POST /api/admin/roles", runtimeid.High, reply("roles", "granted"))
	if s.ssf != nil {
		// RFC 8935 push delivery: the identity provider's transmitter
		// posts its Security Event Tokens here.
		mux.Handle("POST /ssf/events", s.ssf)
	}
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		w.Write([]byte("ok\n"))
	})
	if s.stepUp == nil {
		return mux
	}
	mux.Handle("/stepup/", s.stepUp.Handler())
	if s.signIn != nil {
		s.signIn.register(mux)
	}
	// Browsers carry their token in a cookie, for the step-up page.
	return stepup.CookieToken(tokenCookie)(mux)
}

// reply answers with what was done and for whom, from the evaluation the
// middleware put in the context.
func reply(key string, value any) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		ev := runtimeid.FromContext(r.Context())
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(map[string]any{
			key:        value,
			"subject":  ev.Identity.Subject,
			"rule":     ev.Decision.Rule,
			"risk":     math.Round(ev.Assessment.Score*1000) / 1000,
			"country":  ev.Signals.Network.Country,
			"findings": strings.Join(ev.Assessment.Codes(), ","),
		})
	}
}
