package risk

import (
	"context"
	"fmt"
	"log/slog"
	"math"
	"time"

	"github.com/runtimeid/runtimeid"
)

// The finding codes. They are stable across releases: policies and
// audit logs match on them.
const (
	CodeFirstSeen           = "first_seen"
	CodeNewDevice           = "new_device"
	CodeNewCountry          = "new_country"
	CodeNewASN              = "new_asn"
	CodeImpossibleTravel    = "impossible_travel"
	CodeAnonymousNetwork    = "anonymous_network"
	CodeBotUserAgent        = "bot_user_agent"
	CodeStaleAuthentication = "stale_authentication"
	CodeUnusualHour         = "unusual_hour"
)

// Defaults for the zero values of [Options].
const (
	// DefaultMaxSpeedKMH is about an airliner's cruising speed.
	DefaultMaxSpeedKMH = 1000

	// DefaultMinTravelKM is the distance below which no travel is
	// reported at all: city-level IP geolocation is often off by tens
	// of kilometres, and mobile carriers route a whole region through
	// one gateway.
	DefaultMinTravelKM = 100

	// DefaultStaleAfter is how old an authentication may be for a
	// high-sensitivity action.
	DefaultStaleAfter = 12 * time.Hour

	// DefaultUnusualHourHistory is how many learned requests a
	// subject needs before an hour can be unusual for it.
	DefaultUnusualHourHistory = 20
)

// minInterval is the shortest time between two requests the travel
// check divides by, so that two requests in the same instant from far
// apart give a large finite speed rather than an infinite one.
const minInterval = time.Minute

// Off is a weight that turns a finding off, for [Weights].
const Off = -1

// Options configure an [Evaluator]. The zero value means the defaults.
type Options struct {
	// MaxSpeedKMH is the fastest believable travel between two
	// requests. Zero means [DefaultMaxSpeedKMH].
	MaxSpeedKMH float64

	// MinTravelKM is the shortest distance reported as travel, on top
	// of both locations' radius of uncertainty. Zero means
	// [DefaultMinTravelKM].
	MinTravelKM float64

	// StaleAfter is how long ago the user may have authenticated
	// (auth_time) for a high-sensitivity action. Zero means
	// [DefaultStaleAfter].
	StaleAfter time.Duration

	// UnusualHourHistory is how many learned requests a subject needs
	// before unusual_hour is reported. Zero means
	// [DefaultUnusualHourHistory].
	UnusualHourHistory int

	// Weights are the findings' weights.
	Weights Weights

	// Logger receives errors of [Evaluator.Learn], which has no other
	// way to report them. Nil discards them.
	Logger *slog.Logger
}

// Weights are the findings' weights, each in [0,1]. Zero means the
// default given in the package documentation; [Off] (any negative
// value) turns the finding off. The anonymous network weights are for
// the one anonymous_network finding: the strongest flag set wins.
type Weights struct {
	FirstSeen           float64 // default 0.10
	NewDevice           float64 // default 0.25
	NewCountry          float64 // default 0.35
	NewASN              float64 // default 0.15
	ImpossibleTravel    float64 // default 0.90
	Tor                 float64 // default 0.80
	PublicProxy         float64 // default 0.60
	ResidentialProxy    float64 // default 0.60
	Anonymous           float64 // default 0.60, any other anonymizer
	VPN                 float64 // default 0.50
	Hosting             float64 // default 0.40
	Bot                 float64 // default 0.50
	StaleAuthentication float64 // default 0.30
	UnusualHour         float64 // default 0.30, times a confidence
}

var defaultWeights = Weights{
	FirstSeen:           0.10,
	NewDevice:           0.25,
	NewCountry:          0.35,
	NewASN:              0.15,
	ImpossibleTravel:    0.90,
	Tor:                 0.80,
	PublicProxy:         0.60,
	ResidentialProxy:    0.60,
	Anonymous:           0.60,
	VPN:                 0.50,
	Hosting:             0.40,
	Bot:                 0.50,
	StaleAuthentication: 0.30,
	UnusualHour:         0.30,
}

// Evaluator finds what is unusual about an action for its subject, and
// learns the subject's baseline from allowed actions. It is safe for
// concurrent use.
//
// It trusts the signals as the collectors set them and the identity as
// the engine verified it. Assess fails only when the [Store] does; a
// failed Learn is logged and otherwise ignored, which only makes later
// requests look less familiar.
type Evaluator struct {
	store  Store
	opts   Options
	logger *slog.Logger
}

var (
	_ runtimeid.RiskEvaluator = (*Evaluator)(nil)
	_ runtimeid.Learner       = (*Evaluator)(nil)
)

// NewEvaluator returns an evaluator that keeps baselines in store.
// Invalid options give a [*runtimeid.ConfigError].
func NewEvaluator(store Store, opts Options) (*Evaluator, error) {
	if store == nil {
		return nil, configError("NewEvaluator store", "is nil")
	}
	if err := opts.setDefaults(); err != nil {
		return nil, err
	}
	e := &Evaluator{store: store, opts: opts, logger: opts.Logger}
	if e.logger == nil {
		e.logger = slog.New(slog.DiscardHandler)
	}
	return e, nil
}

func (o *Options) setDefaults() error {
	switch {
	case !finite(o.MaxSpeedKMH) || o.MaxSpeedKMH < 0:
		return configError("Options.MaxSpeedKMH", "must be a positive number")
	case !finite(o.MinTravelKM) || o.MinTravelKM < 0:
		return configError("Options.MinTravelKM", "must be a positive number")
	case o.StaleAfter < 0:
		return configError("Options.StaleAfter", "must not be negative")
	case o.UnusualHourHistory < 0:
		return configError("Options.UnusualHourHistory", "must not be negative")
	}
	if o.UnusualHourHistory == 0 {
		o.UnusualHourHistory = DefaultUnusualHourHistory
	}
	if o.MaxSpeedKMH == 0 {
		o.MaxSpeedKMH = DefaultMaxSpeedKMH
	}
	if o.MinTravelKM == 0 {
		o.MinTravelKM = DefaultMinTravelKM
	}
	if o.StaleAfter == 0 {
		o.StaleAfter = DefaultStaleAfter
	}
	return o.Weights.setDefaults()
}

func (w *Weights) setDefaults() error {
	fields := []struct {
		name string
		v    *float64
		def  float64
	}{
		{"FirstSeen", &w.FirstSeen, defaultWeights.FirstSeen},
		{"NewDevice", &w.NewDevice, defaultWeights.NewDevice},
		{"NewCountry", &w.NewCountry, defaultWeights.NewCountry},
		{"NewASN", &w.NewASN, defaultWeights.NewASN},
		{"ImpossibleTravel", &w.ImpossibleTravel, defaultWeights.ImpossibleTravel},
		{"Tor", &w.Tor, defaultWeights.Tor},
		{"PublicProxy", &w.PublicProxy, defaultWeights.PublicProxy},
		{"ResidentialProxy", &w.ResidentialProxy, defaultWeights.ResidentialProxy},
		{"Anonymous", &w.Anonymous, defaultWeights.Anonymous},
		{"VPN", &w.VPN, defaultWeights.VPN},
		{"Hosting", &w.Hosting, defaultWeights.Hosting},
		{"Bot", &w.Bot, defaultWeights.Bot},
		{"StaleAuthentication", &w.StaleAuthentication, defaultWeights.StaleAuthentication},
		{"UnusualHour", &w.UnusualHour, defaultWeights.UnusualHour},
	}
	for _, f := range fields {
		switch {
		case math.IsNaN(*f.v) || *f.v > 1:
			return configError("Options.Weights."+f.name, "must be at most 1, or negative for off")
		case *f.v == 0:
			*f.v = f.def
		}
	}
	return nil
}

func configError(field, reason string) error {
	return &runtimeid.ConfigError{Field: "risk." + field, Reason: reason}
}

func finite(x float64) bool { return !math.IsNaN(x) && !math.IsInf(x, 0) }

// Assess reports what is unusual about ev, reading the subject's
// profile from the store once. Its findings come in a fixed order:
// the baseline's (first_seen or the new_* ones), impossible_travel,
// unusual_hour, anonymous_network, bot_user_agent,
// stale_authentication. An
// unauthenticated evaluation (nil identity) gets only the findings
// that need no baseline.
func (e *Evaluator) Assess(
	ctx context.Context, ev *runtimeid.Evaluation,
) ([]runtimeid.Finding, error) {
	o := observe(ev)
	var fs findings
	if key, ok := subjectKey(ev.Identity); ok {
		p, err := e.store.Get(ctx, key)
		if err != nil {
			return nil, fmt.Errorf("risk: read profile: %w", err)
		}
		e.baseline(&fs, p, &o, &ev.Signals.Device)
		e.travel(&fs, p, &o)
		e.unusualHour(&fs, p, o.time)
	}
	e.network(&fs, &ev.Signals.Network)
	e.bot(&fs, &ev.Signals.Device)
	e.staleAuth(&fs, ev)
	return fs.list, nil
}

// Learn adds an allowed action to its subject's baseline. It does
// nothing for an unauthenticated evaluation, or one that reuses an
// earlier evaluation of the same request ([runtimeid.Evaluation.Reused]):
// a request is learned once.
func (e *Evaluator) Learn(ctx context.Context, ev *runtimeid.Evaluation) {
	key, ok := subjectKey(ev.Identity)
	if !ok || ev.Reused() {
		return
	}
	o := observe(ev)
	if err := e.update(ctx, key, &o); err != nil {
		e.logger.LogAttrs(ctx, slog.LevelWarn, "risk: learn failed",
			slog.String("error", err.Error()))
	}
}

// update learns o into the subject's profile. The stores of this
// package are called directly, which keeps o and the callback off the
// heap; any other store gets a closure through [Store.Update].
func (e *Evaluator) update(ctx context.Context, key string, o *observation) error {
	switch s := e.store.(type) {
	case *LRUStore:
		s.learn(key, o)
		return nil
	case *MemoryStore:
		s.learn(key, o)
		return nil
	}
	c := *o
	return e.store.Update(ctx, key, func(p *Profile) { p.learn(&c) })
}

// findings collects findings, leaving out those turned off.
type findings struct {
	list []runtimeid.Finding
}

func (f *findings) add(code string, w float64, detail string) {
	if w < 0 {
		return
	}
	f.list = append(f.list, runtimeid.Finding{Code: code, Weight: w, Detail: detail})
}

// baseline compares the request with what the subject's allowed
// requests looked like.
func (e *Evaluator) baseline(fs *findings, p *Profile, o *observation, d *runtimeid.DeviceSignals) {
	w := &e.opts.Weights
	if p.empty() {
		fs.add(CodeFirstSeen, w.FirstSeen, "no baseline for this subject yet")
		return
	}
	if o.hasDevice && !contains(p.Devices, o.device) {
		fs.add(CodeNewDevice, w.NewDevice, describeDevice(d)+" not seen for this subject")
	}
	if o.country != "" && !contains(p.Countries, o.country) {
		fs.add(CodeNewCountry, w.NewCountry, "country "+o.country+" not seen for this subject")
	}
	if o.asn != 0 && !contains(p.ASNs, o.asn) {
		fs.add(CodeNewASN, w.NewASN, fmt.Sprintf("AS%d not seen for this subject", o.asn))
	}
}

func describeDevice(d *runtimeid.DeviceSignals) string {
	if d.ID != "" {
		// The ID may be a device cookie: never quote it.
		return "device ID"
	}
	s := label(d.Browser)
	if v := major(d.BrowserVersion); v != "" {
		s += " " + label(v)
	}
	if d.OS != "" {
		s += " on " + label(d.OS)
	}
	if d.Type != "" {
		s += " (" + label(d.Type) + ")"
	}
	if s == "" || s[0] == ' ' {
		s = "device" + s
	}
	return s
}

// travel reports a move from the last geolocated allowed request
// faster than anyone travels. Both positions are uncertain by their
// radius, so the distance used is the shortest one consistent with
// both: the great-circle distance less the two radii.
//
// TODO: a user who switches a VPN on or off moves, as far as
// geolocation knows, in an instant; the finding is then reported
// together with anonymous_network, and a policy may want to weigh the
// pair differently. The evaluator does not.
func (e *Evaluator) travel(fs *findings, p *Profile, o *observation) {
	if p == nil || p.Location.Time.IsZero() || !o.hasLocation {
		return
	}
	last, now := &p.Location, &o.location

	km := haversineKM(last.Latitude, last.Longitude, now.Latitude, now.Longitude)
	km -= last.AccuracyKM + now.AccuracyKM
	if km < e.opts.MinTravelKM {
		return
	}

	dt := max(o.time.Sub(last.Time), minInterval)
	speed := km / dt.Hours()
	if speed <= e.opts.MaxSpeedKMH {
		return
	}
	detail := fmt.Sprintf("%.0f km from %s to %s in %.0f min: %.0f km/h, limit %.0f km/h",
		km, place(last.Country), place(now.Country), dt.Minutes(), speed, e.opts.MaxSpeedKMH)
	fs.add(CodeImpossibleTravel, e.opts.Weights.ImpossibleTravel, detail)
}

func place(country string) string {
	if country == "" {
		return "unknown country"
	}
	return country
}

// network reports an anonymizing network, with the weight of the
// strongest specific flag set. Anonymous is set with any of them, so it
// counts only when no specific flag is.
func (e *Evaluator) network(fs *findings, n *runtimeid.NetworkSignals) {
	w := &e.opts.Weights
	flags := []struct {
		set  bool
		w    float64
		what string
	}{
		{n.Tor, w.Tor, "through a Tor exit node"},
		{n.PublicProxy, w.PublicProxy, "through a public proxy"},
		{n.ResidentialProxy, w.ResidentialProxy, "through a residential proxy"},
		{n.VPN, w.VPN, "through a VPN"},
		{n.Hosting, w.Hosting, "from a hosting provider"},
	}
	best := -1
	specific := false
	for i, f := range flags {
		specific = specific || f.set
		if f.set && f.w >= 0 && (best < 0 || f.w > flags[best].w) {
			best = i
		}
	}
	switch {
	case best >= 0:
		f := flags[best]
		fs.add(CodeAnonymousNetwork, f.w, "request comes "+f.what)
	case n.Anonymous && !specific:
		fs.add(CodeAnonymousNetwork, w.Anonymous, "request comes through an anonymizing network")
	}
}

func (e *Evaluator) bot(fs *findings, d *runtimeid.DeviceSignals) {
	if !d.Bot {
		return
	}
	detail := "user agent identifies as a bot"
	if d.Browser != "" {
		detail += ": " + label(d.Browser)
	}
	fs.add(CodeBotUserAgent, e.opts.Weights.Bot, detail)
}

// staleAuth reports a high-sensitivity action by a user who
// authenticated long ago, or whose token does not say when.
func (e *Evaluator) staleAuth(fs *findings, ev *runtimeid.Evaluation) {
	if ev.Action.Sensitivity != runtimeid.High {
		return
	}
	s := &ev.Signals.Session
	limit := e.opts.StaleAfter
	var detail string
	switch {
	case !s.HasAuthTime:
		detail = "token has no auth_time; high-sensitivity actions need one within " +
			limit.String()
	case s.SinceAuth > limit:
		detail = fmt.Sprintf("authenticated %s ago; high-sensitivity actions need one within %s",
			s.SinceAuth.Round(time.Minute), limit)
	default:
		return
	}
	fs.add(CodeStaleAuthentication, e.opts.Weights.StaleAuthentication, detail)
}

// unusualHour reports a request at an hour of the week, and an hour of
// the day, at which the subject was never active, once enough history
// says so. Its confidence grows with the history: n/(n+h) for n
// learned requests and h = [Options.UnusualHourHistory], so it is half
// the weight at the minimum history and nears the full weight after
// many requests.
//
// BUG: hours are in UTC, not the user's time zone, so a user who
// travels across time zones shifts their whole histogram; a policy
// sees unusual_hour together with new_country in that case.
func (e *Evaluator) unusualHour(fs *findings, p *Profile, t time.Time) {
	if p == nil {
		return
	}
	n, h := p.Hours.Total(), e.opts.UnusualHourHistory
	if n < h {
		return
	}
	if week, day := p.Hours.near(t); week > 0 || day > 0 {
		return
	}
	conf := float64(n) / float64(n+h)
	detail := fmt.Sprintf("no activity near %s %02d:00 UTC in %d requests",
		t.UTC().Weekday(), t.UTC().Hour(), n)
	fs.add(CodeUnusualHour, e.opts.Weights.UnusualHour*conf, detail)
}
