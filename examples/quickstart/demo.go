package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"hash/fnv"
	"io"
	"log/slog"
	"net"
	"net/http"
	"regexp"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"text/tabwriter"
	"time"

	"github.com/pquerna/otp/totp"

	"github.com/runtimeid/runtimeid"
	"github.com/runtimeid/runtimeid/signals/ssf"
)

// The demo replays the real access log through the quickstart API over a
// real HTTP server on loopback, then plays the attack scenarios. Its
// client stands in for a load balancer: it sends each log line's client
// address in X-Forwarded-For, and the engine trusts loopback as a proxy.

const (
	demoIssuer   = "https://idp.quickstart.example"
	demoAudience = "quickstart-api"

	// The identity provider's Shared Signals transmitter, for the
	// revocation scenario.
	demoSSFIssuer   = "https://idp.quickstart.example/ssf"
	demoSSFAudience = "https://api.quickstart.example/ssf/events"
)

// row is one request of the demo as the audit trail saw it.
type row struct {
	Scenario string
	Time     time.Time
	Subject  string
	Action   string
	ClientIP string
	Country  string
	Status   int
	Outcome  string
	Rule     string
	Findings string
}

// report is what the demo did.
type report struct {
	Replayed  int
	Outcomes  map[string]int // replay only, by outcome
	Rules     map[string]int // replay only, non-allow rules
	Refused   []row          // replay rows that were not allowed
	Scenarios []row
}

var logLine = regexp.MustCompile(
	`^(\S+) \S+ \S+ \[([^\]]+)\] "(\S+) (\S+)[^"]*" \d{3} \S+ "[^"]*" "([^"]*)"`)

// entry is one parsed access-log line.
type entry struct {
	ip, path, ua string
	at           time.Time
}

func parseLog(r io.Reader) ([]entry, error) {
	var out []entry
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		m := logLine.FindStringSubmatch(sc.Text())
		if m == nil {
			continue
		}
		at, err := time.Parse("02/Jan/2006:15:04:05 -0700", m[2])
		if err != nil {
			continue
		}
		out = append(out, entry{ip: m[1], at: at.UTC(), path: m[4], ua: m[5]})
	}
	return out, sc.Err()
}

// routeFor maps a log line's path onto one of the API's routes, stably:
// most traffic reads orders, some updates profiles, a little moves money
// or exports.
func routeFor(path string) (method, target string) {
	h := fnv.New32a()
	h.Write([]byte(path))
	switch v := h.Sum32() % 400; {
	case v < 2:
		return http.MethodPost, "/api/transfers"
	case v < 3:
		return http.MethodGet, "/api/export"
	case v < 20:
		return http.MethodPatch, "/api/profile"
	default:
		return http.MethodGet, "/api/orders"
	}
}

// demo holds the running server and the clock it controls.
type demo struct {
	iss    *issuer
	ssf    *ssf.Transmitter // signs the identity provider's events
	clock  atomic.Int64
	url    string
	client *http.Client
	audit  *lastAudit
}

func (d *demo) now() time.Time { return time.Unix(0, d.clock.Load()).UTC() }

// runDemo replays the log and the scenarios and writes the tables to out.
func runDemo(ctx context.Context, out io.Writer) (*report, error) {
	d := &demo{audit: &lastAudit{}}
	iss, err := newIssuer(demoIssuer, demoAudience)
	if err != nil {
		return nil, err
	}
	d.iss = iss
	keys, err := runtimeid.StaticKeys(iss.public)
	if err != nil {
		return nil, err
	}
	ssfKey, err := newIssuer(demoSSFIssuer, demoSSFAudience)
	if err != nil {
		return nil, err
	}
	ssfKeys, err := runtimeid.StaticKeys(ssfKey.public)
	if err != nil {
		return nil, err
	}
	o := options{issuer: demoIssuer, audience: demoAudience, trustedProxies: "127.0.0.0/8,::1",
		ssfIssuer: demoSSFIssuer, ssfAudience: demoSSFAudience, ssfKeys: ssfKeys}
	svc, err := newService(ctx, o, keys, d.now, slog.New(d.audit))
	if err != nil {
		return nil, err
	}
	defer svc.Close()

	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	srv := &http.Server{Handler: svc.handler, ReadHeaderTimeout: 5 * time.Second}
	go srv.Serve(ln)
	defer srv.Close()
	d.url = "http://" + ln.Addr().String()
	d.client = &http.Client{Timeout: 10 * time.Second}
	d.ssf, err = ssf.NewTransmitter(ssf.TransmitterOptions{Issuer: demoSSFIssuer,
		Audience: demoSSFAudience, Key: ssfKey.key, PushURL: d.url + "/ssf/events", Now: d.now})
	if err != nil {
		return nil, err
	}
	defer d.ssf.Close()

	data, err := embedded.ReadFile("data/apache_logs")
	if err != nil {
		return nil, err
	}
	entries, err := parseLog(bytes.NewReader(data))
	if err != nil {
		return nil, err
	}
	rep := &report{Outcomes: map[string]int{}, Rules: map[string]int{}}
	if err := d.replay(ctx, entries, rep); err != nil {
		return nil, err
	}
	last := entries[len(entries)-1].at
	if rep.Scenarios, err = d.scenarios(ctx, last.Add(time.Hour)); err != nil {
		return nil, err
	}
	otpRows, err := d.otpStepUp(ctx, last.Add(time.Duration(len(rep.Scenarios)+1)*time.Hour))
	if err != nil {
		return nil, err
	}
	rep.Scenarios = append(rep.Scenarios, otpRows...)
	printReport(out, rep)
	return rep, nil
}

func (d *demo) replay(ctx context.Context, entries []entry, rep *report) error {
	subjects := map[string]string{}
	tokens := map[string]string{} // by session: client and day
	for _, e := range entries {
		// A client is an address and a user agent: several browsers
		// behind one NAT address are several users, each with its token.
		client := e.ip + " " + e.ua
		sub, ok := subjects[client]
		if !ok {
			sub = fmt.Sprintf("user-%04d", len(subjects)+1)
			subjects[client] = sub
		}
		sid := sub + "-" + e.at.Format("0102")
		tok, ok := tokens[sid]
		if !ok {
			// A session starts with a login at the first request of the day.
			var err error
			tok, err = d.iss.mint(grant{
				sub: sub, sid: sid,
				issued: e.at, authTime: e.at,
				ttl: 24 * time.Hour,
			})
			if err != nil {
				return err
			}
			tokens[sid] = tok
		}
		method, target := routeFor(e.path)
		r, err := d.send(ctx, e.at, method, target, tok, e.ip, e.ua)
		if err != nil {
			return err
		}
		rep.Replayed++
		rep.Outcomes[r.Outcome]++
		if r.Outcome != "allow" {
			rep.Rules[r.Rule]++
			rep.Refused = append(rep.Refused, r)
		}
	}
	return nil
}

// A browser on a Mac and one on Windows, for the scenarios.
const (
	macChrome = "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) " +
		"AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.0.0 Safari/537.36"
	winFirefox = "Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:125.0) Gecko/20100101 Firefox/125.0"
)

// Addresses of the MaxMind test databases.
const (
	boxfordGB   = "2.125.160.216"
	linkopingSE = "89.160.20.128"
	miltonUS    = "216.160.83.56"
	torExit     = "1.124.213.1"
)

// step is one request of a scenario.
type step struct {
	after    time.Duration // since the scenario's start
	method   string
	target   string
	ip, ua   string
	authAgo  time.Duration // auth_time this long before the request
	newToken bool          // mint a fresh token (a new login or step-up)
	revoke   bool          // first, the identity provider revokes the session
}

func (d *demo) scenarios(ctx context.Context, start time.Time) ([]row, error) {
	plays := []struct {
		name  string
		sub   string
		steps []step
	}{
		{"stolen-token", "bob", []step{
			{0, "GET", "/api/orders", boxfordGB, macChrome, time.Minute, true, false},
			{2 * time.Minute, "GET", "/api/orders", boxfordGB, macChrome,
				3 * time.Minute, false, false},
			{12 * time.Minute, "GET", "/api/orders", linkopingSE, macChrome,
				13 * time.Minute, false, false},
		}},
		// carol signs in on a new device through her single sign-on
		// session of an hour ago: a new token, an old login.
		{"new-device", "carol", []step{
			{0, "GET", "/api/orders", miltonUS, macChrome, time.Hour, true, false},
			{5 * time.Minute, "POST", "/api/transfers", miltonUS, winFirefox,
				time.Hour, true, false},
		}},
		{"tor-exit", "dave", []step{
			{0, "GET", "/api/orders", boxfordGB, winFirefox, time.Minute, true, false},
			{20 * time.Minute, "GET", "/api/export", torExit, winFirefox,
				21 * time.Minute, false, false},
		}},
		{"step-up", "erin", []step{
			{0, "GET", "/api/orders", miltonUS, macChrome, time.Hour, true, false},
			{time.Minute, "POST", "/api/transfers", miltonUS, macChrome, time.Hour, false, false},
			{2 * time.Minute, "POST", "/api/transfers", miltonUS, macChrome, 0, true, false},
		}},
		// gina's freshly issued token is copied to another machine: it
		// meets any max_age, so only the replay gives it away.
		{"copied-token", "gina", []step{
			{0, "GET", "/api/orders", boxfordGB, macChrome, 0, true, false},
			{time.Minute, "POST", "/api/transfers", boxfordGB, winFirefox,
				time.Minute, false, false},
		}},
		{"revoked", "frank", []step{
			{0, "GET", "/api/orders", boxfordGB, macChrome, time.Minute, true, false},
			{time.Minute, "GET", "/api/orders", boxfordGB, macChrome,
				2 * time.Minute, false, false},
			{2 * time.Minute, "GET", "/api/orders", boxfordGB, macChrome,
				3 * time.Minute, false, true},
		}},
	}

	var rows []row
	for i, p := range plays {
		base := start.Add(time.Duration(i) * time.Hour)
		var tok string
		for _, s := range p.steps {
			at := base.Add(s.after)
			if s.newToken {
				var err error
				tok, err = d.iss.mint(grant{sub: p.sub, sid: sessionOf(p.sub, s.ua), issued: at,
					authTime: at.Add(-s.authAgo), acr: "urn:quickstart:mfa"})
				if err != nil {
					return nil, err
				}
			}
			if s.revoke {
				if err := d.revoke(ctx, p.sub, sessionOf(p.sub, s.ua), at); err != nil {
					return nil, err
				}
			}
			r, err := d.send(ctx, at, s.method, s.target, tok, s.ip, s.ua)
			if err != nil {
				return nil, err
			}
			r.Scenario = p.name
			rows = append(rows, r)
		}
	}
	return rows, nil
}

// sessionOf names a scenario's session: one per subject and device.
func sessionOf(sub, ua string) string {
	h := fnv.New32a()
	h.Write([]byte(ua))
	return fmt.Sprintf("%s-%08x", sub, h.Sum32())
}

// revoke plays the identity provider: it pushes a CAEP session-revoked
// event for the session, as a signed SET (RFC 8417) over HTTP (RFC 8935).
func (d *demo) revoke(ctx context.Context, sub, sid string, at time.Time) error {
	d.clock.Store(at.UnixNano())
	user, session := ssf.IssSub(demoIssuer, sub), ssf.Opaque(sid)
	set, err := d.ssf.Sign(ssf.SessionRevokedEvent(
		ssf.SubjectID{Format: ssf.FormatComplex, User: &user, Session: &session}, at, "demo"))
	if err != nil {
		return err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost,
		d.url+"/ssf/events", bytes.NewReader(set))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/secevent+jwt")
	resp, err := d.client.Do(req)
	if err != nil {
		return err
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusAccepted {
		return fmt.Errorf("demo: pushing session-revoked: status %d", resp.StatusCode)
	}
	return nil
}

// send makes one request at the given moment and reads its audit event.
func (d *demo) send(
	ctx context.Context, at time.Time, method, target, token, ip, ua string,
) (row, error) {
	d.clock.Store(at.UnixNano())
	req, err := http.NewRequestWithContext(ctx, method, d.url+target, nil)
	if err != nil {
		return row{}, err
	}
	req.Header.Set("Authorization", "Bearer "+token)
	req.Header.Set("X-Forwarded-For", ip)
	req.Header.Set("User-Agent", ua)
	resp, err := d.client.Do(req)
	if err != nil {
		return row{}, err
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()

	a := d.audit.take()
	if a == nil {
		return row{}, errors.New("demo: no audit event for " + method + " " + target)
	}
	rule := a["rule"]
	if rule == "token" {
		// Refused before any rule ran: say why.
		rule = "token: " + a["reason"]
	}
	return row{
		Time: at, Subject: a["sub"], Action: a["action"], ClientIP: a["client_ip"],
		Country: a["country"], Status: resp.StatusCode, Outcome: a["outcome"],
		Rule: rule, Findings: a["findings"],
	}, nil
}

func printReport(out io.Writer, rep *report) {
	fmt.Fprintf(out,
		"Replayed %d requests of the real access log through the API.\n\n",
		rep.Replayed)
	shown := rep.Refused
	if len(shown) > 20 {
		shown = shown[:20]
	}
	fmt.Fprintf(out, "Refused during the replay (first %d of %d):\n", len(shown), len(rep.Refused))
	printRows(out, shown, false)

	fmt.Fprintln(out, "\nScenarios: stolen-token: the same token from another country minutes"+
		" later;\nnew-device: a transfer from a device never seen; tor-exit: an export from"+
		" a Tor exit;\nstep-up: a transfer with an hour-old login, then with a fresh one;\n"+
		"copied-token: a fresh token replayed from another machine;\n"+
		"revoked: the identity provider pushes session-revoked (CAEP) before the third request;\n"+
		"otp-step-up: a stale transfer is challenged, answered with an authenticator code at\n"+
		"/stepup/otp/verify, and retried with the same token.")
	printRows(out, rep.Scenarios, true)

	fmt.Fprintln(out, "\nSummary of the replay by outcome:")
	for _, o := range []string{"allow", "challenge", "block"} {
		fmt.Fprintf(out, "  %-9s %5d\n", o, rep.Outcomes[o])
	}
	rules := make([]string, 0, len(rep.Rules))
	for r := range rep.Rules {
		rules = append(rules, r)
	}
	sort.Strings(rules)
	fmt.Fprintln(out, "Refusals by rule:")
	for _, r := range rules {
		fmt.Fprintf(out, "  %-28s %5d\n", r, rep.Rules[r])
	}
}

func printRows(out io.Writer, rows []row, scenario bool) {
	tw := tabwriter.NewWriter(out, 0, 0, 2, ' ', 0)
	if scenario {
		fmt.Fprint(tw, "SCENARIO\t")
	}
	fmt.Fprintln(tw, "TIME\tSUBJECT\tACTION\tCLIENT\tCC\tSTATUS\tOUTCOME\tRULE\tFINDINGS")
	for _, r := range rows {
		if scenario {
			fmt.Fprintf(tw, "%s\t", r.Scenario)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%d\t%s\t%s\t%s\n",
			r.Time.Format("01-02 15:04"), r.Subject, r.Action, r.ClientIP,
			orDash(r.Country), r.Status, r.Outcome, r.Rule, orDash(r.Findings))
	}
	tw.Flush()
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// lastAudit is a slog.Handler that keeps the last audit event's
// attributes as strings, so the demo can print the trail.
type lastAudit struct {
	mu   sync.Mutex
	last map[string]string
}

func (h *lastAudit) Enabled(context.Context, slog.Level) bool { return true }
func (h *lastAudit) WithAttrs([]slog.Attr) slog.Handler       { return h }
func (h *lastAudit) WithGroup(string) slog.Handler            { return h }

func (h *lastAudit) Handle(_ context.Context, r slog.Record) error {
	if r.Message != runtimeid.AuditMessage {
		return nil
	}
	m := map[string]string{}
	r.Attrs(func(a slog.Attr) bool {
		v := a.Value.Resolve()
		if s, ok := v.Any().([]string); ok {
			m[a.Key] = strings.Join(s, ",")
		} else {
			m[a.Key] = v.String()
		}
		return true
	})
	h.mu.Lock()
	h.last = m
	h.mu.Unlock()
	return nil
}

func (h *lastAudit) take() map[string]string {
	h.mu.Lock()
	defer h.mu.Unlock()
	m := h.last
	h.last = nil
	return m
}

// otpStepUp answers a challenge inside the service: ivan enrolls an
// authenticator app right after signing in, is challenged on a transfer
// an hour later, answers with a code at the step-up endpoint, and retries
// with the same token, which now passes.
func (d *demo) otpStepUp(ctx context.Context, start time.Time) ([]row, error) {
	const name = "otp-step-up"
	tok, err := d.iss.mint(grant{sub: "ivan", sid: sessionOf("ivan", macChrome), issued: start,
		authTime: start, ttl: 2 * time.Hour})
	if err != nil {
		return nil, err
	}
	var rows []row
	add := func(at time.Time, method, target string) error {
		r, err := d.send(ctx, at, method, target, tok, miltonUS, macChrome)
		r.Scenario = name
		rows = append(rows, r)
		return err
	}
	if err := add(start, "GET", "/api/orders"); err != nil {
		return nil, err
	}
	var enrolled struct {
		Secret string `json:"secret"`
	}
	err = d.stepUpCall(ctx, start, "/stepup/enroll/otp", tok, map[string]any{}, &enrolled)
	if err != nil {
		return nil, err
	}
	err = d.stepUpCode(ctx, start, "/stepup/enroll/otp/confirm", tok, enrolled.Secret)
	if err != nil {
		return nil, err
	}

	later := start.Add(time.Hour)
	if err := add(later, "POST", "/api/transfers"); err != nil {
		return nil, err
	}
	answered := later.Add(30 * time.Second)
	if err := d.stepUpCode(ctx, answered, "/stepup/otp/verify", tok, enrolled.Secret); err != nil {
		return nil, err
	}
	if err := add(answered.Add(10*time.Second), "POST", "/api/transfers"); err != nil {
		return nil, err
	}
	return rows, nil
}

// stepUpCode sends the authenticator app's current code to a step-up
// endpoint.
func (d *demo) stepUpCode(ctx context.Context, at time.Time, path, token, secret string) error {
	code, err := totp.GenerateCode(secret, at)
	if err != nil {
		return err
	}
	return d.stepUpCall(ctx, at, path, token, map[string]string{"code": code}, nil)
}

// stepUpCall posts JSON to the step-up module as an API client would.
func (d *demo) stepUpCall(
	ctx context.Context, at time.Time, path, token string, body, out any,
) error {
	d.clock.Store(at.UnixNano())
	data, err := json.Marshal(body)
	if err != nil {
		return err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, d.url+path, bytes.NewReader(data))
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", "Bearer "+token)
	req.Header.Set("Content-Type", "application/json")
	resp, err := d.client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		msg, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
		return fmt.Errorf("demo: %s: status %d: %s", path, resp.StatusCode, msg)
	}
	if out == nil {
		return nil
	}
	return json.NewDecoder(resp.Body).Decode(out)
}
