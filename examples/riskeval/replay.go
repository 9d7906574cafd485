package main

import (
	"context"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"time"

	"github.com/runtimeid/runtimeid"
	"github.com/runtimeid/runtimeid/risk"
)

// Weeks is how many weeks each client's four days of real traffic are
// replayed for, one copy per week.
const Weeks = 4

// request is one evaluation of the replay.
type request struct {
	time   time.Time
	addr   netip.Addr
	ua     string
	id     runtimeid.Identity
	attack string // empty for a legitimate request
}

// The attack kinds.
const (
	attackForeign   = "stolen token from another country"
	attackAnonymous = "stolen token from an anonymous network"
	attackLocal     = "stolen token, same country, new AS and device"
	attackStuffing  = "credential stuffing burst"
)

var attackKinds = []string{attackForeign, attackAnonymous, attackLocal, attackStuffing}

// population is the replay: every request in time order, and the
// synthetic geolocation of every address in it.
type population struct {
	requests []request
	geo      map[netip.Addr]runtimeid.NetworkSignals
	devices  map[string]runtimeid.DeviceSignals
	users    int
	bots     int
	lines    int
}

// loadPopulation builds the replay from the access log at path.
func loadPopulation(path string) (*population, error) {
	f, err := os.Open(filepath.Clean(path))
	if err != nil {
		return nil, fmt.Errorf("riskeval: %w", err)
	}
	defer f.Close()
	hits, err := parseLog(f)
	if err != nil {
		return nil, err
	}
	clients, bots := buildClients(hits)
	p := &population{geo: map[netip.Addr]runtimeid.NetworkSignals{},
		users: len(clients), bots: bots, lines: len(hits)}
	for _, c := range clients {
		p.geo[c.addr] = homeNetwork(c.addr)
	}
	for i, c := range clients {
		p.legitimate(c, i)
	}
	p.sort()
	p.devices = map[string]runtimeid.DeviceSignals{}
	p.attacks(clients)
	p.sort()
	for _, r := range p.requests {
		p.device(r.ua)
	}
	return p, nil
}

func (p *population) sort() {
	sort.SliceStable(p.requests, func(i, j int) bool {
		return p.requests[i].time.Before(p.requests[j].time)
	})
}

func chance(percent uint64, parts ...string) bool {
	return hash(parts...)%100 < percent
}

// legitimate replays one client's actions every week, with drift: a
// browser update from week 2 for 30% of users, a phone on a mobile
// network from week 1 for 15%, and a trip abroad in week 3 for 10%.
func (p *population) legitimate(c *client, idx int) {
	user := "user-" + c.addr.String()
	home := p.geo[c.addr]
	updates := chance(30, user, "update")
	phone := chance(15, user, "phone")
	travels := chance(10, user, "travel")
	for w := range Weeks {
		for i, a := range c.actions {
			jitter := time.Duration(hash(user, fmt.Sprint(w, i))%600) * time.Second
			r := request{time: a.time.AddDate(0, 0, 7*w).Add(jitter - 5*time.Minute),
				addr: c.addr, ua: a.ua}
			if updates && w >= 2 {
				r.ua = bumpMajor(r.ua)
			}
			if phone && w >= 1 && i%3 == 2 {
				r.ua = iPhone
				r.addr = p.synthetic(mobileNetwork(home, user, r.time))
			}
			if travels && w == 3 {
				r.addr = p.synthetic(abroad(home, idx))
			}
			r.id = identity(user, r.ua, r.time)
			p.requests = append(p.requests, r)
		}
	}
}

const iPhone = "Mozilla/5.0 (iPhone; CPU iPhone OS 7_0 like Mac OS X) " +
	"AppleWebKit/537.51.1 (KHTML, like Gecko) Version/7.0 Mobile/11A465 Safari/9537.53"

// synthetic gives a made-up network an address in 198.18.0.0/15, the
// range reserved for benchmarks, and records its geolocation.
func (p *population) synthetic(n runtimeid.NetworkSignals, key string) netip.Addr {
	h := hash("synthetic", key)
	a := netip.AddrFrom4([4]byte{198, 18 + byte(h>>16&1), byte(h >> 8), byte(h)})
	p.geo[a] = n
	return a
}

// mobileNetwork is the user's carrier: the home country's mobile
// network, with a new address every day as carrier NAT hands out.
func mobileNetwork(
	home runtimeid.NetworkSignals, user string, t time.Time,
) (runtimeid.NetworkSignals, string) {
	n := home
	n.ASN = uint(64000 + hash("mobile", home.Country)%100)
	n.AccuracyKM = 50
	return n, fmt.Sprint(user, "mobile", t.YearDay())
}

// abroad is a hotel network in another country.
func abroad(home runtimeid.NetworkSignals, idx int) (runtimeid.NetworkSignals, string) {
	c := countries[(idx%(len(countries)-1)+1+indexOf(home.Country))%len(countries)]
	n := runtimeid.NetworkSignals{Country: c.code, Latitude: c.lat, Longitude: c.lon,
		AccuracyKM: 20, HasLocation: true, ASN: uint(63000 + idx%500)}
	return n, fmt.Sprint("hotel", idx)
}

func indexOf(code string) int {
	for i, c := range countries {
		if c.code == code {
			return i
		}
	}
	return 0
}

// identity is the verified token of a legitimate request: one
// session per user, device and day, one token (jti) per hour of it.
func identity(user, ua string, t time.Time) runtimeid.Identity {
	day := t.Truncate(24 * time.Hour)
	sid := fmt.Sprintf("%x", hash(user, ua, day.String()))
	hour := t.Truncate(time.Hour)
	return runtimeid.Identity{
		Subject: user, SessionID: sid, ACR: "pwd",
		TokenID:  fmt.Sprintf("%s-%d", sid, hour.Hour()),
		IssuedAt: hour, Expiry: hour.Add(time.Hour), AuthTime: day,
	}
}

// attacks injects the attacks. Victims are users with at least two
// actions a week, attacked in weeks 2 and 3 with a token stolen from
// one of their own requests and replayed 5 to 40 minutes later.
func (p *population) attacks(clients []*client) {
	byUser := map[string][]request{}
	for _, r := range p.requests {
		if r.time.After(p.requests[0].time.AddDate(0, 0, 14)) {
			byUser[r.id.Subject] = append(byUser[r.id.Subject], r)
		}
	}
	var victims []string
	for _, c := range clients {
		if len(c.actions) >= 2 {
			victims = append(victims, "user-"+c.addr.String())
		}
	}
	for i, v := range victims {
		own := byUser[v]
		for k, kind := range attackKinds[:3] {
			stolen := own[hash(v, kind)%uint64(len(own))]
			delay := time.Duration(5+hash(v, kind, "delay")%36) * time.Minute
			r := request{time: stolen.time.Add(delay), id: stolen.id, attack: kind}
			r.addr, r.ua = p.attacker(kind, stolen, clients, i*3+k)
			p.requests = append(p.requests, r)
		}
	}
	p.stuffing(victims)
}

// device parses each user agent once, which keeps the replay fast.
func (p *population) device(ua string) runtimeid.DeviceSignals {
	d, ok := p.devices[ua]
	if !ok {
		d = device(ua)
		p.devices[ua] = d
	}
	return d
}

// attacker returns the address and user agent of a token thief.
func (p *population) attacker(
	kind string, stolen request, clients []*client, n int,
) (netip.Addr, string) {
	home := p.geo[stolen.addr]
	own := p.device(stolen.ua)
	for j := range clients {
		c := clients[(n*7919+j)%len(clients)]
		g := p.geo[c.addr]
		d := p.device(c.actions[0].ua)
		newDevice := d.Browser != own.Browser || d.OS != own.OS
		switch {
		case kind == attackForeign && g.Country != home.Country && newDevice:
			return c.addr, c.actions[0].ua
		case kind == attackLocal && g.Country == home.Country &&
			g.ASN != home.ASN && newDevice:
			return c.addr, c.actions[0].ua
		}
	}
	if kind == attackLocal || kind == attackForeign {
		n := home
		n.ASN = uint(62000 + n2(kind, stolen))
		return p.synthetic(n, fmt.Sprint("attacker", kind, stolen.id.TokenID)), windowsChrome
	}

	// An anonymous network, with the victim's own user agent copied:
	// a Tor exit, a VPN exit in the victim's country, or a cloud
	// server, in turn.
	n2 := runtimeid.NetworkSignals{Anonymous: true, HasLocation: true, AccuracyKM: 100}
	switch n % 3 {
	case 0:
		n2.Tor, n2.Country, n2.ASN = true, "DE", 60729
		n2.Latitude, n2.Longitude = 50.1, 8.7
	case 1:
		n2.VPN, n2.Country, n2.ASN = true, home.Country, 9009
		n2.Latitude, n2.Longitude = home.Latitude, home.Longitude
	default:
		n2.Hosting, n2.Country, n2.ASN = true, "US", 14061
		n2.Latitude, n2.Longitude = 40.7, -74.0
	}
	return p.synthetic(n2, fmt.Sprint("anon", n)), stolen.ua
}

func n2(kind string, r request) uint64 { return hash(kind, r.id.TokenID) % 1000 }

const windowsChrome = "Mozilla/5.0 (Windows NT 6.1; WOW64) AppleWebKit/537.36 " +
	"(KHTML, like Gecko) Chrome/32.0.1700.107 Safari/537.36"

// stuffing is a credential-stuffing burst: one cloud server logs in
// to up to 300 accounts with leaked passwords, one a second, each
// with a fresh session, with the most common user agent of the log.
func (p *population) stuffing(victims []string) {
	start := p.requests[0].time.AddDate(0, 0, 23).Truncate(24 * time.Hour).Add(3 * time.Hour)
	addr := p.synthetic(runtimeid.NetworkSignals{
		Country: "FR", Latitude: 50.7, Longitude: 3.2, AccuracyKM: 50,
		HasLocation: true, ASN: 16276, Hosting: true, Anonymous: true,
	}, "stuffing")
	for i, v := range victims[:min(300, len(victims))] {
		t := start.Add(time.Duration(i) * time.Second)
		sid := fmt.Sprintf("stuffed-%d", i)
		p.requests = append(p.requests, request{
			time: t, addr: addr, ua: windowsChrome, attack: attackStuffing,
			id: runtimeid.Identity{Subject: v, SessionID: sid, TokenID: sid + "-0",
				ACR: "pwd", IssuedAt: t, Expiry: t.Add(time.Hour), AuthTime: t},
		})
	}
}

// geoCollector is the synthetic GeoIP database and user agent parser
// of the replay, as a signal collector.
type geoCollector struct {
	geo     map[netip.Addr]runtimeid.NetworkSignals
	devices map[string]runtimeid.DeviceSignals
}

func (g geoCollector) Collect(_ context.Context, ev *runtimeid.Evaluation) error {
	ev.Signals.Network = g.geo[ev.Signals.ClientIP]
	ev.Signals.Device = g.devices[ev.Signals.Device.UserAgent]
	return nil
}

// thresholdPolicy challenges at the engine's high risk level, which
// is what the default policy does, and allows otherwise. A challenge
// asks for multi-factor authentication (acr "mfa").
type thresholdPolicy struct{}

func (thresholdPolicy) Decide(
	_ context.Context, ev *runtimeid.Evaluation,
) (runtimeid.Decision, error) {
	if ev.Assessment.Level == runtimeid.LevelHigh {
		return runtimeid.Decision{Outcome: runtimeid.Challenge, Rule: "high-risk",
			Reason: "risk_high", StepUp: &runtimeid.StepUp{ACRValues: []string{"mfa"}}}, nil
	}
	return runtimeid.Decision{Outcome: runtimeid.Allow, Rule: "default"}, nil
}

// Mode is one set of evaluators under test.
type Mode string

// The modes.
const (
	Rules    Mode = "rules"
	Model    Mode = "model"
	Combined Mode = "combined"
)

func evaluators(m Mode) ([]runtimeid.RiskEvaluator, error) {
	var out []runtimeid.RiskEvaluator
	if m != Model {
		store, err := risk.NewLRUStore(100_000)
		if err != nil {
			return nil, err
		}
		e, err := risk.NewEvaluator(store, risk.Options{})
		if err != nil {
			return nil, err
		}
		s, err := risk.NewSessionEvaluator(risk.SessionOptions{})
		if err != nil {
			return nil, err
		}
		out = append(out, e, s)
	}
	if m != Rules {
		model, err := risk.NewModel(risk.ModelOptions{})
		if err != nil {
			return nil, err
		}
		out = append(out, model)
	}
	return out, nil
}

// Result is what one mode measured.
type Result struct {
	Mode            Mode
	Legit, Attacks  int
	LegitChallenged int
	Stopped         map[string][2]int // per attack kind: stopped, total
	AUC             float64
}

// AttackStopRate is the share of attacks challenged or blocked.
func (r *Result) AttackStopRate() float64 {
	n := 0
	for _, s := range r.Stopped {
		n += s[0]
	}
	return float64(n) / float64(r.Attacks)
}

// LegitChallengeRate is the share of legitimate requests challenged.
func (r *Result) LegitChallengeRate() float64 {
	return float64(r.LegitChallenged) / float64(r.Legit)
}

// Run replays the population through an engine with the mode's
// evaluators. A legitimate user who is challenged passes multi-factor
// authentication and retries, which the engine then allows and learns
// from; an attacker cannot.
func Run(p *population, m Mode) (*Result, error) {
	evs, err := evaluators(m)
	if err != nil {
		return nil, err
	}
	var now time.Time
	eng, err := runtimeid.New(runtimeid.Config{
		Token:      runtimeid.TokenConfig{InsecureSkipAuthentication: true},
		Collectors: []runtimeid.SignalCollector{geoCollector{p.geo, p.devices}},
		Evaluators: evs,
		Policy:     thresholdPolicy{},
		Now:        func() time.Time { return now },
	})
	if err != nil {
		return nil, err
	}

	res := &Result{Mode: m, Stopped: map[string][2]int{}}
	var legit, attack []float64
	ctx := context.Background()
	for i := range p.requests {
		r := &p.requests[i]
		now = r.time
		id := r.id
		in := runtimeid.Input{Identity: &id, ClientIP: r.addr, UserAgent: r.ua}
		ev, err := eng.Evaluate(ctx, in)
		if err != nil {
			return nil, fmt.Errorf("riskeval: evaluate: %w", err)
		}
		stopped := ev.Decision.Outcome != runtimeid.Allow
		if r.attack != "" {
			res.Attacks++
			s := res.Stopped[r.attack]
			s[1]++
			if stopped {
				s[0]++
			}
			res.Stopped[r.attack] = s
			attack = append(attack, ev.Assessment.Score)
			continue
		}
		res.Legit++
		legit = append(legit, ev.Assessment.Score)
		if stopped {
			res.LegitChallenged++
			stepped := id
			stepped.ACR = "mfa"
			in.Identity = &stepped
			if _, err := eng.Evaluate(ctx, in); err != nil {
				return nil, fmt.Errorf("riskeval: step up: %w", err)
			}
		}
	}
	res.AUC = auc(legit, attack)
	return res, nil
}

// auc is the area under the ROC curve: the probability that a random
// attack scores above a random legitimate request, ties counting half
// (the Mann-Whitney statistic).
func auc(legit, attack []float64) float64 {
	slices.Sort(legit)
	var sum float64
	for _, a := range attack {
		below, _ := slices.BinarySearch(legit, a)
		upTo := below
		for upTo < len(legit) && legit[upTo] == a {
			upTo++
		}
		sum += float64(below) + float64(upTo-below)/2
	}
	return sum / float64(len(legit)) / float64(len(attack))
}
