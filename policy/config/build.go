package config

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net/netip"
	"os"
	"time"

	"github.com/runtimeid/runtimeid"
	"github.com/runtimeid/runtimeid/decision"
	"github.com/runtimeid/runtimeid/decision/live"
	"github.com/runtimeid/runtimeid/policy"
	"github.com/runtimeid/runtimeid/risk"
	"github.com/runtimeid/runtimeid/signals"
)

// BuildOptions change what [File.Build] builds. The zero value builds
// exactly what the file says.
type BuildOptions struct {
	// Context bounds the first fetch of remote keys (token.jwks_url) and
	// stops their refresh when done. Nil means [context.Background]; the
	// refresh then stops at [Built.Close].
	Context context.Context

	// Logger receives the audit events instead of audit.file.
	Logger *slog.Logger

	// Stdout is where audit.file "-" writes. Nil discards.
	Stdout io.Writer

	// Now is the engine's clock. Nil means [time.Now].
	Now func() time.Time

	// Policy replaces the file's policy, for trying a candidate.
	Policy runtimeid.PolicyEngine

	// Keys replaces the file's token keys.
	Keys runtimeid.KeySource

	// InsecureSkipAuthentication verifies no token whatever the file
	// says: for replays, whose identities come from the log.
	InsecureSkipAuthentication bool
}

// Built is an engine and its parts, built from a [File].
type Built struct {
	Engine   *runtimeid.Engine
	Config   runtimeid.Config
	Enforcer *decision.Enforcer
	Routes   *Routes

	// Live is the live view when live.enabled is set; it receives the
	// audit events.
	Live *live.View

	closers []func() error
}

// Close releases the GeoIP databases, the audit file and the key
// refresh.
func (b *Built) Close() error {
	var errs []error
	for i := len(b.closers) - 1; i >= 0; i-- {
		errs = append(errs, b.closers[i]())
	}
	b.closers = nil
	return errors.Join(errs...)
}

// Build opens what the file names (policy, keys, GeoIP databases, audit
// file) and builds the engine. Every problem is an [*Error] naming the
// field. Close the result when done.
func (f *File) Build(opts BuildOptions) (*Built, error) {
	b := &Built{}
	if err := f.build(b, &opts); err != nil {
		b.Close()
		return nil, err
	}
	return b, nil
}

func (f *File) build(b *Built, o *BuildOptions) error {
	cfg := &b.Config
	cfg.Now = o.Now
	cfg.MediumRisk, cfg.HighRisk = f.Risk.thresholds()

	var err error
	if cfg.Token, err = f.token(b, o); err != nil {
		return err
	}
	if cfg.Policy, err = f.policy(o); err != nil {
		return err
	}
	if cfg.Collectors, err = f.collectors(b); err != nil {
		return err
	}
	if cfg.Evaluators, err = f.evaluators(); err != nil {
		return err
	}
	if cfg.Logger, err = f.logger(b, o); err != nil {
		return err
	}
	e := &f.Enforcement
	b.Enforcer, err = decision.NewEnforcer(decision.Options{
		StepUpURL: e.StepUpURL, Realm: e.Realm})
	if err != nil {
		return f.fieldError("enforcement", "invalid", err)
	}
	cfg.Enforcer = b.Enforcer

	def, err := f.defaultSensitivity()
	if err != nil {
		return err
	}
	if b.Routes, err = NewRoutes(f.Routes, def); err != nil {
		return f.fieldError("routes", "invalid", err)
	}
	cfg.DefaultSensitivity = def
	cfg.Sensitivities = b.Routes.Sensitivities()
	cfg.RoutePattern = b.Routes.Pattern

	if b.Engine, err = runtimeid.New(*cfg); err != nil {
		return &Error{File: f.Name, Reason: "cannot build the engine", Err: err}
	}
	return nil
}

func (f *File) token(b *Built, o *BuildOptions) (runtimeid.TokenConfig, error) {
	t := &f.Token
	tc := runtimeid.TokenConfig{Issuer: t.Issuer, Audience: t.Audience,
		ClockSkew: t.ClockSkew, Keys: o.Keys,
		InsecureSkipAuthentication: t.InsecureSkipAuthentication || o.InsecureSkipAuthentication}
	if tc.InsecureSkipAuthentication {
		return tc, nil
	}
	switch {
	case t.Issuer == "":
		return tc, f.fieldError("token.issuer",
			"required unless insecure_skip_authentication", nil)
	case len(t.Audience) == 0:
		return tc, f.fieldError("token.audience",
			"required unless insecure_skip_authentication", nil)
	case tc.Keys != nil:
		return tc, nil
	case t.JWKSFile != "":
		keys, err := runtimeid.KeysFromFile(f.path(t.JWKSFile))
		if err != nil {
			return tc, f.fieldError("token.jwks_file", "cannot load", err)
		}
		tc.Keys = keys
	case t.JWKSURL != "":
		ctx := o.Context
		if ctx == nil {
			ctx = context.Background()
		}
		keys, err := runtimeid.RemoteKeys(ctx, t.JWKSURL, runtimeid.RemoteKeysOptions{})
		if err != nil {
			return tc, f.fieldError("token.jwks_url", "cannot load", err)
		}
		b.closers = append(b.closers, keys.Close)
		tc.Keys = keys
	default:
		return tc, f.fieldError("token.jwks_file", "give jwks_file or jwks_url", nil)
	}
	return tc, nil
}

// LoadPolicy loads the file's policy, or returns the default policy
// when none is named.
func (f *File) LoadPolicy() (*policy.Policy, error) {
	if f.Policy == "" {
		return policy.Default(), nil
	}
	p, err := policy.Load(f.path(f.Policy))
	if err != nil {
		return nil, f.fieldError("policy", "cannot load", err)
	}
	return p, nil
}

func (f *File) policy(o *BuildOptions) (runtimeid.PolicyEngine, error) {
	if o.Policy != nil {
		return o.Policy, nil
	}
	return f.LoadPolicy()
}

func (f *File) collectors(b *Built) ([]runtimeid.SignalCollector, error) {
	var trusted []netip.Prefix
	for _, p := range f.TrustedProxies {
		got, _ := signals.ParsePrefixes(p) // checked at parse
		trusted = append(trusted, got...)
	}
	cols := []runtimeid.SignalCollector{signals.NewClientIP(trusted)}

	g := &f.GeoIP
	if *g != (GeoIP{}) {
		geo, err := signals.OpenGeoIP(signals.GeoIPConfig{
			CityPath: f.path(g.City), CountryPath: f.path(g.Country),
			ASNPath: f.path(g.ASN), AnonymousIPPath: f.path(g.AnonymousIP),
			ISPPath: f.path(g.ISP),
		})
		if err != nil {
			return nil, f.fieldError("geoip", "cannot open", err)
		}
		b.closers = append(b.closers, geo.Close)
		cols = append(cols, geo)
	}
	return append(cols, signals.NewDevice()), nil
}

func (f *File) evaluators() ([]runtimeid.RiskEvaluator, error) {
	size := f.Risk.StoreSize
	if size == 0 {
		size = DefaultStoreSize
	}
	store, err := risk.NewLRUStore(size)
	if err != nil {
		return nil, f.fieldError("risk.store_size", "invalid", err)
	}
	ev, err := risk.NewEvaluator(store, risk.Options{})
	if err != nil {
		return nil, f.fieldError("risk", "invalid", err)
	}
	return []runtimeid.RiskEvaluator{ev}, nil
}

func (f *File) logger(b *Built, o *BuildOptions) (*slog.Logger, error) {
	var h slog.Handler
	switch {
	case o.Logger != nil:
		h = o.Logger.Handler()
	case f.Audit.File == "-" && o.Stdout != nil:
		h = f.auditHandler(o.Stdout)
	case f.Audit.File != "" && f.Audit.File != "-":
		file, err := os.OpenFile(f.path(f.Audit.File),
			os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o600)
		if err != nil {
			return nil, f.fieldError("audit.file", "cannot open", err)
		}
		b.closers = append(b.closers, file.Close)
		h = f.auditHandler(file)
	}
	if f.Live.Enabled {
		b.Live = live.New(live.Options{Recent: f.Live.Recent, Now: o.Now})
		if h == nil {
			return slog.New(b.Live.Handler()), nil
		}
		h = slog.NewMultiHandler(b.Live.Handler(), h)
	}
	if h == nil {
		return nil, nil
	}
	return slog.New(h), nil
}

func (f *File) auditHandler(w io.Writer) slog.Handler {
	if f.Audit.Format == "text" {
		return slog.NewTextHandler(w, nil)
	}
	return slog.NewJSONHandler(w, nil)
}
