package risk

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
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

	// Shared, when set, shares the latest use of each session and token
	// with the other instances of the service, so that a token replayed
	// on another instance is token_replay and a session used from two
	// distant places on two instances is concurrent_session_far_apart.
	// Nil keeps the state in this evaluator only. Request rates are
	// never shared: request_burst counts this instance's requests.
	Shared SessionStore
}

// The kinds of [SessionStore] key.
const (
	SessionKindSID = "sid" // a session (sid)
	SessionKindJTI = "jti" // a token (jti)
)

// SessionStore shares the latest allowed use of each session and token
// between the [SessionEvaluator]s of a service's instances.
//
// kind is [SessionKindSID] or [SessionKindJTI]. key is a stable hash of
// the subject and the sid or jti, 32 hexadecimal digits, the same on
// every instance; the raw identifiers never reach the store.
//
// Both methods are called on the request path, concurrently, and must
// not block: Lookup answers from memory, Record hands the use to
// background work and returns. A store that cannot reach its backend
// answers from what it holds, and Lookup reports false for what it
// does not hold. SessionUse is a plain value the store may keep.
type SessionStore interface {
	// Lookup returns the latest use of a session or token recorded
	// by any instance, as far as the store knows it.
	Lookup(kind, key string) (SessionUse, bool)

	// Record records an allowed use of a session or token.
	Record(kind, key string, use SessionUse)
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
// With [SessionOptions.Shared], the latest uses are shared with the
// other instances of the service through a [SessionStore]; request
// rates stay per instance, so request_burst sees only this instance's
// share of a burst spread by a load balancer.
//
// The findings trust the identity as the engine verified it and the
// signals as the collectors set them. A request without sid and jti
// gets only request_burst.
type SessionEvaluator struct {
	opts SessionOptions
	seed maphash.Seed

	// mu guards sessions and rates: each LRU changes even on a read.
	mu       sync.Mutex
	sessions *simplelru.LRU[uint64, SessionUse]
	rates    *simplelru.LRU[uint64, Rate]
}

var (
	_ runtimeid.RiskEvaluator = (*SessionEvaluator)(nil)
	_ runtimeid.Learner       = (*SessionEvaluator)(nil)
)

// SessionUse is the latest allowed use of a session or token: what a
// [SessionStore] keeps. The zero value is no use.
type SessionUse struct {
	Time        time.Time  // of the request, in UTC
	IP          netip.Addr // the client address; zero when unknown
	ASN         uint32     // the client's network; zero when unknown
	Device      uint64     // the device's key (a SHA-256 prefix)
	HasDevice   bool       // Device is set
	Location    Location   // the client's estimated position
	HasLocation bool       // Location is set
}

// NewSessionEvaluator returns a [SessionEvaluator]. Invalid options
// give a [*runtimeid.ConfigError].
func NewSessionEvaluator(opts SessionOptions) (*SessionEvaluator, error) {
	if err := opts.setDefaults(); err != nil {
		return nil, err
	}
	sessions, err := simplelru.NewLRU[uint64, SessionUse](opts.MaxSessions, nil)
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
//
// With [SessionOptions.Shared], a session or token is compared with
// the later of its last use here and its last use anywhere.
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

	// The shared store is asked outside the lock: it may take a lock
	// of its own.
	if s.opts.Shared != nil {
		sid, hasSID = s.lookupShared(ev.Identity, kindSID, sid, hasSID)
		jti, hasJTI = s.lookupShared(ev.Identity, kindJTI, jti, hasJTI)
	}

	if hasSID {
		s.addressChange(&fs, &sid, &now)
	}
	replay := hasJTI && jti.HasDevice && now.HasDevice &&
		jti.Device != now.Device
	switch {
	case replay:
		fs.add(CodeTokenReplay, s.opts.Weights.TokenReplay,
			"the same token (jti) was presented by another device")
	case hasSID && sid.HasDevice && now.HasDevice && sid.Device != now.Device:
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
// latest use, here and, with [SessionOptions.Shared], in the shared
// store.
func (s *SessionEvaluator) Learn(_ context.Context, ev *runtimeid.Evaluation) {
	id := ev.Identity
	if id == nil || id.SessionID == "" && id.TokenID == "" {
		return
	}
	u := s.use(ev)
	s.mu.Lock()
	if id.SessionID != "" {
		s.sessions.Add(s.key(kindSID, id.Subject, id.SessionID), u)
	}
	if id.TokenID != "" {
		s.sessions.Add(s.key(kindJTI, id.Subject, id.TokenID), u)
	}
	s.mu.Unlock()

	if sh := s.opts.Shared; sh != nil {
		if id.SessionID != "" {
			sh.Record(SessionKindSID, SharedSessionKey(id.Subject, id.SessionID), u)
		}
		if id.TokenID != "" {
			sh.Record(SessionKindJTI, SharedSessionKey(id.Subject, id.TokenID), u)
		}
	}
}

// Len returns the number of sessions and tokens, and of subjects and
// addresses with a rate, currently tracked.
func (s *SessionEvaluator) Len() (sessions, sources int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.sessions.Len(), s.rates.Len()
}

func (s *SessionEvaluator) use(ev *runtimeid.Evaluation) SessionUse {
	o := observe(ev)
	return SessionUse{
		Time: o.time, IP: ev.Signals.ClientIP.Unmap(), ASN: o.asn,
		Device: o.device, HasDevice: o.hasDevice,
		Location: o.location, HasLocation: o.hasLocation,
	}
}

// value returns the identity's sid or jti, by kind.
func value(id *runtimeid.Identity, kind byte) string {
	switch {
	case id == nil:
		return ""
	case kind == kindJTI:
		return id.TokenID
	}
	return id.SessionID
}

// lookup returns the latest allowed use of the identity's session or
// token. The caller holds mu.
func (s *SessionEvaluator) lookup(id *runtimeid.Identity, kind byte) (SessionUse, bool) {
	v := value(id, kind)
	if v == "" {
		return SessionUse{}, false
	}
	return s.sessions.Get(s.key(kind, id.Subject, v))
}

// lookupShared returns the later of the local use and the shared
// store's; the local one when they are as recent.
func (s *SessionEvaluator) lookupShared(id *runtimeid.Identity, kind byte,
	local SessionUse, ok bool) (SessionUse, bool) {
	v := value(id, kind)
	if v == "" {
		return local, ok
	}
	name := SessionKindSID
	if kind == kindJTI {
		name = SessionKindJTI
	}
	shared, found := s.opts.Shared.Lookup(name, SharedSessionKey(id.Subject, v))
	if found && (!ok || shared.Time.After(local.Time)) {
		return shared, true
	}
	return local, ok
}

// SharedSessionKey is the [SessionStore] key of a subject's session or
// token id: the first 128 bits of SHA-256 over the subject, a zero byte
// and the id, in hexadecimal. Unlike the evaluator's own keys it has
// no secret seed, so every instance computes the same one; it keeps
// identifiers out of the store and bounds the key's length.
func SharedSessionKey(subject, id string) string {
	b := make([]byte, 0, len(subject)+1+len(id))
	b = append(append(append(b, subject...), 0), id...)
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:16])
}

// countRequest counts the request for its subject and its client
// address, and returns the higher of the two rates per minute. An
// evaluation that reuses an earlier one of the same request
// ([runtimeid.Evaluation.Reused]) reads the rates without counting it
// again. The caller holds mu.
func (s *SessionEvaluator) countRequest(ev *runtimeid.Evaluation) float64 {
	var best float64
	add := !ev.Reused()
	if id := ev.Identity; id != nil && id.Subject != "" {
		best = s.count(s.key(kindSubject, id.Subject, ""), ev.Time, add)
	}
	if ip := ev.Signals.ClientIP; ip.IsValid() {
		b := ip.Unmap().As16()
		best = max(best, s.count(s.key(kindAddr, "", string(b[:])), ev.Time, add))
	}
	return best
}

func (s *SessionEvaluator) count(k uint64, t time.Time, add bool) float64 {
	hl := s.opts.BurstHalfLife
	r, _ := s.rates.Get(k)
	if add {
		r.add(t, hl)
		s.rates.Add(k, r)
	}
	return r.PerMinute(t, hl)
}

// addressChange reports a session that moved to another address in
// its middle; more when it moved to another network (AS), which a
// phone moving between cells seldom does.
func (s *SessionEvaluator) addressChange(fs *findings, last, now *SessionUse) {
	if !last.IP.IsValid() || !now.IP.IsValid() || last.IP == now.IP {
		return
	}
	w := &s.opts.Weights
	if last.ASN != 0 && now.ASN != 0 && last.ASN != now.ASN {
		fs.add(CodeSessionIPChange, w.ASNChange, fmt.Sprintf(
			"the session moved from AS%d to AS%d", last.ASN, now.ASN))
		return
	}
	fs.add(CodeSessionIPChange, w.IPChange,
		"the session moved to another address in the same network")
}

// concurrent reports a session used from two places within
// [SessionOptions.ConcurrentWindow] that no one could travel between
// in the time, with the same allowance for uncertain positions as
// impossible_travel.
func (s *SessionEvaluator) concurrent(fs *findings, last, now *SessionUse) {
	if !last.HasLocation || !now.HasLocation {
		return
	}
	dt := now.Time.Sub(last.Time)
	if dt < 0 {
		dt = -dt
	}
	if dt > s.opts.ConcurrentWindow {
		return
	}
	a, b := &last.Location, &now.Location
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
