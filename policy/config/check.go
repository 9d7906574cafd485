package config

import (
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"

	"github.com/runtimeid/runtimeid"
	"github.com/runtimeid/runtimeid/decision"
	"github.com/runtimeid/runtimeid/signals"
)

// Defaults of the fields that have one.
const (
	DefaultListen       = "127.0.0.1:8080"
	DefaultLiveListen   = "127.0.0.1:9090"
	DefaultLivePath     = "/debug/runtimeid/"
	DefaultHeaderPrefix = "X-Runtimeid-"
)

// check validates what can be validated without opening a file.
func (f *File) check() error {
	if f.Version != 1 {
		return f.fieldError("version", fmt.Sprintf("is %d, want 1", f.Version), nil)
	}
	checks := []func() error{
		f.checkToken, f.checkProxies, f.checkRisk, f.checkEnforcement,
		f.checkRoutes, f.checkAudit, f.checkServe, f.checkLive,
	}
	for _, c := range checks {
		if err := c(); err != nil {
			return err
		}
	}
	return nil
}

func (f *File) checkToken() error {
	t := &f.Token
	switch {
	case t.ClockSkew < 0 || t.ClockSkew > runtimeid.MaxClockSkew:
		return f.fieldError("token.clock_skew",
			fmt.Sprintf("%v is outside [0, %v]", t.ClockSkew, runtimeid.MaxClockSkew), nil)
	case t.JWKSFile != "" && t.JWKSURL != "":
		return f.fieldError("token.jwks_url", "give jwks_file or jwks_url, not both", nil)
	}
	return nil
}

func (f *File) checkProxies() error {
	for i, p := range f.TrustedProxies {
		field := fmt.Sprintf("trusted_proxies[%d]", i)
		_, err := signals.ParsePrefixes(p)
		switch {
		case errors.Is(err, signals.ErrTrustsEveryone):
			return f.fieldError(field, fmt.Sprintf("%q trusts every address, so any "+
				"client could choose its own; list your proxies' prefixes", p),
				signals.ErrTrustsEveryone)
		case err != nil || strings.Contains(p, ","):
			return f.fieldError(field, fmt.Sprintf("%q is not a CIDR prefix or address", p), nil)
		}
	}
	return nil
}

func (f *File) checkRisk() error {
	r := &f.Risk
	switch {
	case r.StoreSize < 0:
		return f.fieldError("risk.store_size", "must not be negative", nil)
	case r.MediumRisk < 0 || r.MediumRisk > 1 || r.MediumRisk != r.MediumRisk:
		return f.fieldError("risk.medium_risk", "must be in [0,1]", nil)
	case r.HighRisk < 0 || r.HighRisk > 1 || r.HighRisk != r.HighRisk:
		return f.fieldError("risk.high_risk", "must be in [0,1]", nil)
	}
	med, high := r.thresholds()
	if med >= high {
		return f.fieldError("risk.medium_risk",
			fmt.Sprintf("%v is not below high_risk %v", med, high), nil)
	}
	return nil
}

// thresholds returns the level thresholds with the engine's defaults.
func (r *Risk) thresholds() (medium, high float64) {
	medium, high = r.MediumRisk, r.HighRisk
	if medium == 0 {
		medium = runtimeid.DefaultMediumRisk
	}
	if high == 0 {
		high = runtimeid.DefaultHighRisk
	}
	return medium, high
}

func (f *File) checkEnforcement() error {
	e := &f.Enforcement
	if _, err := f.defaultSensitivity(); err != nil {
		return err
	}
	_, err := decision.NewEnforcer(decision.Options{StepUpURL: e.StepUpURL, Realm: e.Realm})
	if err != nil {
		field := "enforcement.step_up_url"
		if e.StepUpURL == "" {
			field = "enforcement.realm"
		}
		return f.fieldError(field, "invalid", err)
	}
	return nil
}

func (f *File) defaultSensitivity() (runtimeid.Sensitivity, error) {
	s := f.Enforcement.DefaultSensitivity
	if s == "" {
		return runtimeid.Medium, nil
	}
	v, err := runtimeid.ParseSensitivity(s)
	if err != nil {
		return 0, f.fieldError("enforcement.default_sensitivity",
			fmt.Sprintf("%q: want low, medium or high", s), nil)
	}
	return v, nil
}

func (f *File) checkRoutes() error {
	seen := map[string]int{}
	for i, r := range f.Routes {
		field := fmt.Sprintf("routes[%d]", i)
		if r.Pattern == "" {
			return f.fieldError(field+".pattern", "required", nil)
		}
		if j, dup := seen[r.Pattern]; dup {
			return f.fieldError(field+".pattern",
				fmt.Sprintf("%q already given in routes[%d]", r.Pattern, j), nil)
		}
		seen[r.Pattern] = i
		if err := validPattern(r.Pattern); err != nil {
			return f.fieldError(field+".pattern", "invalid", err)
		}
		if _, err := runtimeid.ParseSensitivity(r.Sensitivity); err != nil {
			return f.fieldError(field+".sensitivity",
				fmt.Sprintf("%q: want low, medium or high", r.Sensitivity), nil)
		}
	}
	if _, err := NewRoutes(f.Routes, runtimeid.Medium); err != nil {
		return f.fieldError("routes", "conflicting patterns", err)
	}
	return nil
}

// validPattern reports whether ServeMux accepts the pattern; it panics
// on a bad one, which this turns into an error.
func validPattern(p string) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("%v", r)
		}
	}()
	http.NewServeMux().Handle(p, http.NotFoundHandler())
	return nil
}

func (f *File) checkAudit() error {
	switch f.Audit.Format {
	case "", "json", "text":
		return nil
	}
	return f.fieldError("audit.format",
		fmt.Sprintf("%q: want json or text", f.Audit.Format), nil)
}

func (f *File) checkServe() error {
	s := &f.Serve
	if s.Upstream != "" {
		u, err := url.Parse(s.Upstream)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return f.fieldError("serve.upstream",
				fmt.Sprintf("%q is not an http(s) URL", s.Upstream), nil)
		}
	}
	if p := s.HeaderPrefix; p != "" && !validHeaderPrefix(p) {
		return f.fieldError("serve.header_prefix",
			fmt.Sprintf("%q: want letters, digits and dashes, starting with X-", p), nil)
	}
	return nil
}

func validHeaderPrefix(p string) bool {
	if len(p) < 3 || len(p) > 64 || !strings.EqualFold(p[:2], "x-") {
		return false
	}
	for _, c := range []byte(p) {
		ok := c == '-' || '0' <= c && c <= '9' || 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z'
		if !ok {
			return false
		}
	}
	return true
}

func (f *File) checkLive() error {
	l := &f.Live
	switch {
	case l.Path != "" && !strings.HasPrefix(l.Path, "/"):
		return f.fieldError("live.path", fmt.Sprintf("%q must start with /", l.Path), nil)
	case l.Recent < 0:
		return f.fieldError("live.recent", "must not be negative", nil)
	}
	return nil
}
