package risk

import (
	"context"
	"fmt"
	"hash/maphash"
	"math"
	"net/netip"
	"sync"
	"time"

	"github.com/hashicorp/golang-lru/v2/simplelru"

	"github.com/runtimeid/runtimeid"
)

// The finding codes of a [SessionEvaluator]. They are stable across
// releases: policies and audit logs match on them.
const (
	CodeSessionIPChange           = "session_ip_change"
	CodeSessionDeviceChange       = "session_device_change"
	CodeConcurrentSessionFarApart = "concurrent_session_far_apart"
	CodeTokenReplay               = "token_replay"
	CodeRequestBurst              = "request_burst"
)

// Defaults for the zero values of [SessionOptions].
const (
	// DefaultMaxSessions bounds the sessions and tokens tracked.
	DefaultMaxSessions = 100_000

	// DefaultMaxSources bounds the subjects and client addresses
	// whose request rates are tracked.
	DefaultMaxSources = 100_000

	// DefaultConcurrentWindow is how close in time two uses of one
	// session must be to count as concurrent.
	DefaultConcurrentWindow = 10 * time.Minute

	// DefaultBurstPerMinute is the request rate, per subject or per
	// client address, at which request_burst starts.
	DefaultBurstPerMinute = 30

	// DefaultBurstHalfLife is the half-life of the request rates: a
	// burst is forgotten within a few of them.
	DefaultBurstHalfLife = time.Minute
)

// SessionOptions configure a [SessionEvaluator]. The zero value means
// the defaults.
type SessionOptions struct {
	// MaxSessions is how many sessions (sid) and tokens (jti) are
	// tracked; the least recently used is forgotten first. Each takes
	// about 150 bytes. Zero means [DefaultMaxSessions].
	MaxSessions int

	// MaxSources is how many subjects and client addresses have a
	// request rate tracked, about 100 bytes each. Zero means
	// [DefaultMaxSources].
	MaxSources int

	// ConcurrentWindow is the longest time between two uses of a
	// session for concurrent_session_far_apart. Zero means
	// [DefaultConcurrentWindow].
	ConcurrentWindow time.Duration

	// MaxSpeedKMH and MinTravelKM mean what they mean in [Options],
	// with the same defaults.
	MaxSpeedKMH float64
	MinTravelKM float64

	// BurstPerMinute is the rate at which request_burst starts. Zero
	// means [DefaultBurstPerMinute].
	BurstPerMinute float64

	// BurstHalfLife is the half-life of the decayed request counts.
	// Zero means [DefaultBurstHalfLife].
	BurstHalfLife time.Duration

	// Weights are the findings' weights.
	Weights SessionWeights
}

// SessionWeights are the weights of a [SessionEvaluator]'s findings,
// each in [0,1]. Zero means the default; [Off] turns a finding off.
type SessionWeights struct {
	IPChange           float64 // default 0.10, same network (AS)
	ASNChange          float64 // default 0.40, session_ip_change to another AS
	DeviceChange       float64 // default 0.60
	ConcurrentFarApart float64 // default 0.90
	TokenReplay        float64 // default 0.80
	RequestBurst       float64 // default 0.80, times a confidence
}

var defaultSessionWeights = SessionWeights{
	IPChange:           0.10,
	ASNChange:          0.40,
	DeviceChange:       0.60,
	ConcurrentFarApart: 0.90,
	TokenReplay:        0.80,
	RequestBurst:       0.80,
}

// SessionEvaluator watches sessions and tokens across requests: a
// session (sid) that changes address, network or device in its
// middle, one used from two distant places at once, a token (jti)
// presented by two devices, and bursts of requests for one subject or
// from one client address. It is safe for concurrent use.
//
// Sessions and tokens are learned from allowed requests only, like a
// baseline: a blocked replay does not become the session's state, so
// the legitimate user is compared with their own last request. Request
// rates count every assessed request, allowed or not, because a
// credential-stuffing burst is mostly refused requests.
//
// Memory is bounded by [SessionOptions.MaxSessions] and
// [SessionOptions.MaxSources] whatever the traffic: sid, jti, subject
// and address are kept as 64-bit keyed hashes (hash/maphash with a
// random seed per evaluator), so no one can choose values that
// collide, and evicting the least recently used makes room.
//
// The findings trust the identity as the engine verified it and the
// signals as the collectors set them. A request without sid and jti
// gets only request_burst.
type SessionEvaluator struct {
	opts SessionOptions
	seed maphash.Seed

	// mu guards sessions and rates: each LRU changes even on a read.
	mu       sync.Mutex
	sessions *simplelru.LRU[uint64, sessionUse]
	rates    *simplelru.LRU[uint64, Rate]
}

var (
	_ runtimeid.RiskEvaluator = (*SessionEvaluator)(nil)
	_ runtimeid.Learner       = (*SessionEvaluator)(nil)
)

// sessionUse is the latest allowed use of a session or token.
type sessionUse struct {
	time      time.Time
	ip        netip.Addr
	asn       uint32
	device    uint64
	hasDevice bool
	loc       Location
	hasLoc    bool
}

// NewSessionEvaluator returns a [SessionEvaluator]. Invalid options
// give a [*runtimeid.ConfigError].
func NewSessionEvaluator(opts SessionOptions) (*SessionEvaluator, error) {
	if err := opts.setDefaults(); err != nil {
		return nil, err
	}
	sessions, err := simplelru.NewLRU[uint64, sessionUse](opts.MaxSessions, nil)
	if err != nil {
		return nil, fmt.Errorf("risk: session lru: %w", err)
	}
	rates, err := simplelru.NewLRU[uint64, Rate](opts.MaxSources, nil)
	if err != nil {
		return nil, fmt.Errorf("risk: rate lru: %w", err)
	}
	return &SessionEvaluator{
		opts: opts, seed: maphash.MakeSeed(),
		sessions: sessions, rates: rates,
	}, nil
}

func (o *SessionOptions) setDefaults() error {
	switch {
	case o.MaxSessions < 0:
		return configError("SessionOptions.MaxSessions", "must not be negative")
	case o.MaxSources < 0:
		return configError("SessionOptions.MaxSources", "must not be negative")
	case o.ConcurrentWindow < 0:
		return configError("SessionOptions.ConcurrentWindow", "must not be negative")
	case !finite(o.MaxSpeedKMH) || o.MaxSpeedKMH < 0:
		return configError("SessionOptions.MaxSpeedKMH", "must be a positive number")
	case !finite(o.MinTravelKM) || o.MinTravelKM < 0:
		return configError("SessionOptions.MinTravelKM", "must be a positive number")
	case !finite(o.BurstPerMinute) || o.BurstPerMinute < 0:
		return configError("SessionOptions.BurstPerMinute", "must be a positive number")
	case o.BurstHalfLife < 0:
		return configError("SessionOptions.BurstHalfLife", "must not be negative")
	}
	setDefault(&o.MaxSessions, DefaultMaxSessions)
	setDefault(&o.MaxSources, DefaultMaxSources)
	setDefault(&o.ConcurrentWindow, DefaultConcurrentWindow)
	setDefault(&o.MaxSpeedKMH, DefaultMaxSpeedKMH)
	setDefault(&o.MinTravelKM, DefaultMinTravelKM)
	setDefault(&o.BurstPerMinute, DefaultBurstPerMinute)
	setDefault(&o.BurstHalfLife, DefaultBurstHalfLife)
	return o.Weights.setDefaults()
}

func setDefault[T comparable](v *T, def T) {
	var zero T
	if *v == zero {
		*v = def
	}
}

func (w *SessionWeights) setDefaults() error {
	d := &defaultSessionWeights
	fields := []struct {
		name string
		v    *float64
		def  float64
	}{
		{"IPChange", &w.IPChange, d.IPChange},
		{"ASNChange", &w.ASNChange, d.ASNChange},
		{"DeviceChange", &w.DeviceChange, d.DeviceChange},
		{"ConcurrentFarApart", &w.ConcurrentFarApart, d.ConcurrentFarApart},
		{"TokenReplay", &w.TokenReplay, d.TokenReplay},
		{"RequestBurst", &w.RequestBurst, d.RequestBurst},
	}
	for _, f := range fields {
		switch {
		case math.IsNaN(*f.v) || *f.v > 1:
			return configError("SessionOptions.Weights."+f.name,
				"must be at most 1, or negative for off")
		case *f.v == 0:
			*f.v = f.def
		}
	}
	return nil
}

// The kinds of key, hashed in front of the value so a sid never lands
// on the key of an equal jti.
const (
	kindSID byte = iota + 1
	kindJTI
	kindSubject
	kindAddr
)

func (s *SessionEvaluator) key(kind byte, sub, v string) uint64 {
	var h maphash.Hash
	h.SetSeed(s.seed)
	h.WriteByte(kind)
	h.WriteString(sub)
	h.WriteByte(0)
	h.WriteString(v)
	return h.Sum64()
}

// Assess reports what this request's session, token and request rate
// say. Its findings come in a fixed order: session_ip_change,
// session_device_change or token_replay, concurrent_session_far_apart,
// request_burst. It never fails.
func (s *SessionEvaluator) Assess(
	_ context.Context, ev *runtimeid.Evaluation,
) ([]runtimeid.Finding, error) {
	now := s.use(ev)
	var fs findings

	s.mu.Lock()
	sid, hasSID := s.lookup(ev.Identity, kindSID)
	jti, hasJTI := s.lookup(ev.Identity, kindJTI)
	rate := s.countRequest(ev)
	s.mu.Unlock()

	if hasSID {
		s.addressChange(&fs, &sid, &now)
	}
	replay := hasJTI && jti.hasDevice && now.hasDevice &&
		jti.device != now.device
	switch {
	case replay:
		fs.add(CodeTokenReplay, s.opts.Weights.TokenReplay,
			"the same token (jti) was presented by another device")
	case hasSID && sid.hasDevice && now.hasDevice && sid.device != now.device:
		fs.add(CodeSessionDeviceChange, s.opts.Weights.DeviceChange,
			"the device changed in the middle of the session")
	}
	switch {
	case hasSID:
		s.concurrent(&fs, &sid, &now)
	case hasJTI:
		s.concurrent(&fs, &jti, &now)
	}
	s.burst(&fs, rate)
	return fs.list, nil
}

// Learn records an allowed request as its session's and token's
// latest use.
func (s *SessionEvaluator) Learn(_ context.Context, ev *runtimeid.Evaluation) {
	id := ev.Identity
	if id == nil || id.SessionID == "" && id.TokenID == "" {
		return
	}
	u := s.use(ev)
	s.mu.Lock()
	defer s.mu.Unlock()
	if id.SessionID != "" {
		s.sessions.Add(s.key(kindSID, id.Subject, id.SessionID), u)
	}
	if id.TokenID != "" {
		s.sessions.Add(s.key(kindJTI, id.Subject, id.TokenID), u)
	}
}

// Len returns the number of sessions and tokens, and of subjects and
// addresses with a rate, currently tracked.
func (s *SessionEvaluator) Len() (sessions, sources int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.sessions.Len(), s.rates.Len()
}

func (s *SessionEvaluator) use(ev *runtimeid.Evaluation) sessionUse {
	o := observe(ev)
	return sessionUse{
		time: o.time, ip: ev.Signals.ClientIP.Unmap(), asn: o.asn,
		device: o.device, hasDevice: o.hasDevice,
		loc: o.location, hasLoc: o.hasLocation,
	}
}

// lookup returns the latest allowed use of the identity's session or
// token. The caller holds mu.
func (s *SessionEvaluator) lookup(id *runtimeid.Identity, kind byte) (sessionUse, bool) {
	if id == nil {
		return sessionUse{}, false
	}
	v := id.SessionID
	if kind == kindJTI {
		v = id.TokenID
	}
	if v == "" {
		return sessionUse{}, false
	}
	return s.sessions.Get(s.key(kind, id.Subject, v))
}

// countRequest counts the request for its subject and its client
// address, and returns the higher of the two rates per minute. The
// caller holds mu.
func (s *SessionEvaluator) countRequest(ev *runtimeid.Evaluation) float64 {
	var best float64
	if id := ev.Identity; id != nil && id.Subject != "" {
		best = s.count(s.key(kindSubject, id.Subject, ""), ev.Time)
	}
	if ip := ev.Signals.ClientIP; ip.IsValid() {
		b := ip.Unmap().As16()
		best = max(best, s.count(s.key(kindAddr, "", string(b[:])), ev.Time))
	}
	return best
}

func (s *SessionEvaluator) count(k uint64, t time.Time) float64 {
	hl := s.opts.BurstHalfLife
	r, _ := s.rates.Get(k)
	r.add(t, hl)
	s.rates.Add(k, r)
	return r.PerMinute(t, hl)
}

// addressChange reports a session that moved to another address in
// its middle; more when it moved to another network (AS), which a
// phone moving between cells seldom does.
func (s *SessionEvaluator) addressChange(fs *findings, last, now *sessionUse) {
	if !last.ip.IsValid() || !now.ip.IsValid() || last.ip == now.ip {
		return
	}
	w := &s.opts.Weights
	if last.asn != 0 && now.asn != 0 && last.asn != now.asn {
		fs.add(CodeSessionIPChange, w.ASNChange, fmt.Sprintf(
			"the session moved from AS%d to AS%d", last.asn, now.asn))
		return
	}
	fs.add(CodeSessionIPChange, w.IPChange,
		"the session moved to another address in the same network")
}

// concurrent reports a session used from two places within
// [SessionOptions.ConcurrentWindow] that no one could travel between
// in the time, with the same allowance for uncertain positions as
// impossible_travel.
func (s *SessionEvaluator) concurrent(fs *findings, last, now *sessionUse) {
	if !last.hasLoc || !now.hasLoc {
		return
	}
	dt := now.time.Sub(last.time)
	if dt < 0 {
		dt = -dt
	}
	if dt > s.opts.ConcurrentWindow {
		return
	}
	a, b := &last.loc, &now.loc
	km := haversineKM(a.Latitude, a.Longitude, b.Latitude, b.Longitude)
	km -= a.AccuracyKM + b.AccuracyKM
	if km < s.opts.MinTravelKM {
		return
	}
	speed := km / max(dt, minInterval).Hours()
	if speed <= s.opts.MaxSpeedKMH {
		return
	}
	fs.add(CodeConcurrentSessionFarApart, s.opts.Weights.ConcurrentFarApart,
		fmt.Sprintf("the session was used %.0f km away %.0f min earlier",
			km, dt.Minutes()))
}

// burst reports a request rate at or above the limit, for the subject
// or the client address. Its confidence is rate/(2·limit), at most 1:
// half the weight at the limit, the full weight at twice the limit.
func (s *SessionEvaluator) burst(fs *findings, perMinute float64) {
	limit := s.opts.BurstPerMinute
	if perMinute < limit {
		return
	}
	conf := min(1, perMinute/(2*limit))
	fs.add(CodeRequestBurst, s.opts.Weights.RequestBurst*conf, fmt.Sprintf(
		"about %.0f requests per minute, limit %.0f", perMinute, limit))
}
