package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"net/netip"
	"slices"
	"strings"
	"time"

	"github.com/runtimeid/runtimeid"
	"github.com/runtimeid/runtimeid/policy"
	"github.com/runtimeid/runtimeid/policy/config"
)

// thresholds are the risk level thresholds and the default step-up of
// the engine the cases stand for.
type thresholds struct {
	medium, high float64
	stepUp       runtimeid.StepUp
}

var defaultThresholds = thresholds{
	medium: runtimeid.DefaultMediumRisk,
	high:   runtimeid.DefaultHighRisk,
	stepUp: runtimeid.StepUp{MaxAge: runtimeid.DefaultStepUpMaxAge},
}

// policyTest runs the cases file against the policy and prints one line
// per case and a summary.
func policyTest(args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("policy test", flag.ContinueOnError)
	fs.SetOutput(stderr)
	cfgPath := fs.String("config", "", "configuration file, for the risk thresholds")
	if err := fs.Parse(args); err != nil {
		return fmt.Errorf("%w: %w", errUsage, err)
	}
	if fs.NArg() != 2 {
		return fmt.Errorf("%w: policy test needs POLICY and CASES", errUsage)
	}
	th := defaultThresholds
	if *cfgPath != "" {
		cfg, err := config.Load(*cfgPath)
		if err != nil {
			return err
		}
		th.medium, th.high = cfg.Risk.MediumRisk, cfg.Risk.HighRisk
		th.medium = cmpOr(th.medium, runtimeid.DefaultMediumRisk)
		th.high = cmpOr(th.high, runtimeid.DefaultHighRisk)
	}
	p, err := policy.Load(fs.Arg(0))
	if err != nil {
		return err
	}
	cases, err := loadCases(fs.Arg(1))
	if err != nil {
		return err
	}

	failed := 0
	for i := range cases {
		line := runCase(p, &cases[i], th)
		if line != "" {
			failed++
			fmt.Fprintln(stdout, "FAIL "+cases[i].Name+": "+line)
		} else {
			fmt.Fprintln(stdout, "PASS "+cases[i].Name)
		}
	}
	fmt.Fprintf(stdout, "%d passed, %d failed\n", len(cases)-failed, failed)
	if failed > 0 {
		return errFailed
	}
	return nil
}

func cmpOr(v, def float64) float64 {
	if v == 0 {
		return def
	}
	return v
}

// runCase decides the case as the engine would, and returns why it
// failed, or "" when it passed.
func runCase(p *policy.Policy, c *testCase, th thresholds) string {
	ev := c.evaluation(th)
	d, err := decide(p, ev, th)
	want := c.Expect.Outcome
	if c.Expect.Rule != "" {
		want += "/" + c.Expect.Rule
	}
	var why []string
	if d.Outcome.String() != c.Expect.Outcome ||
		c.Expect.Rule != "" && d.Rule != c.Expect.Rule {
		why = append(why, fmt.Sprintf("got %s/%s, want %s", d.Outcome, d.Rule, want))
	}
	if r := c.Expect.Reason; r != "" && r != d.Reason {
		why = append(why, fmt.Sprintf("got reason %s, want %s", d.Reason, r))
	}
	if c.Expect.ReportOnly != nil {
		gotRO := reportOnly(d)
		if !slices.Equal(gotRO, c.Expect.ReportOnly) {
			why = append(why, fmt.Sprintf("got report-only [%s], want [%s]",
				strings.Join(gotRO, " "), strings.Join(c.Expect.ReportOnly, " ")))
		}
	}
	if err != nil && len(why) > 0 {
		why = append(why, "("+err.Error()+")")
	}
	return strings.Join(why, "; ")
}

func reportOnly(d runtimeid.Decision) []string {
	out := []string{}
	for _, m := range d.ReportOnly {
		out = append(out, m.Rule)
	}
	return out
}

// decide is the engine's decision step: the policy, a failure blocking
// with the rule "error", and a challenge the identity already meets
// turned into an allow.
func decide(p *policy.Policy, ev *runtimeid.Evaluation, th thresholds) (runtimeid.Decision, error) {
	d, err := p.Decide(context.Background(), ev)
	if err != nil {
		return runtimeid.Decision{Outcome: runtimeid.Block, Rule: "error",
			Reason: runtimeid.CodeEvaluationError}, err
	}
	if d.Outcome == runtimeid.Challenge {
		su := d.StepUp
		if su == nil {
			su = &th.stepUp
		}
		if su.SatisfiedBy(ev.Identity, ev.Time) {
			d.Outcome, d.SteppedUp = runtimeid.Allow, true
		}
	}
	return d, nil
}

// evaluation builds what the policy sees from the case.
func (c *testCase) evaluation(th thresholds) *runtimeid.Evaluation {
	ev := &runtimeid.Evaluation{Time: defaultCaseTime}
	if c.Now != nil {
		ev.Time = c.Now.UTC()
	}
	ev.Identity = c.Identity.identity(ev.Time)
	ev.Action = c.Action.action()
	ev.Signals = c.Signals.signals()
	ev.Signals.Session = session(ev.Identity, ev.Time)
	ev.Assessment = c.Risk.assessment(th)
	return ev
}

func (ci *caseIdentity) identity(now time.Time) *runtimeid.Identity {
	if ci == nil {
		return nil
	}
	id := &runtimeid.Identity{
		Subject: ci.Sub, SessionID: ci.Sid, Issuer: ci.Iss, Audience: ci.Aud,
		ClientID: ci.ClientID, Scopes: ci.Scopes, ACR: ci.ACR, AMR: ci.AMR,
		Claims: ci.Claims, Expiry: now.Add(time.Hour),
	}
	switch {
	case ci.AuthTime != nil:
		id.AuthTime = ci.AuthTime.UTC()
	case ci.AuthAge != nil:
		id.AuthTime = now.Add(-*ci.AuthAge)
	}
	switch {
	case ci.IssuedAt != nil:
		id.IssuedAt = ci.IssuedAt.UTC()
	case ci.TokenAge != nil:
		id.IssuedAt = now.Add(-*ci.TokenAge)
	}
	if ci.Actor != "" {
		id.Actor = &runtimeid.Actor{Subject: ci.Actor}
	}
	return id
}

func (ca *caseAction) action() runtimeid.Action {
	s, err := runtimeid.ParseSensitivity(ca.Sensitivity)
	if err != nil {
		s = runtimeid.Medium
	}
	return runtimeid.Action{Name: ca.Name, Sensitivity: s, Method: ca.Method,
		Route: ca.Route, Attributes: ca.Attributes}
}

func (cs *caseSignals) signals() runtimeid.Signals {
	n, d := &cs.Network, &cs.Device
	s := runtimeid.Signals{
		Network: runtimeid.NetworkSignals{
			Country: n.Country, City: n.City, HasLocation: n.HasLocation,
			ASN: n.ASN, ASOrg: n.ASOrg, ISP: n.ISP,
			Anonymous: n.Anonymous || n.VPN || n.Tor || n.Hosting ||
				n.PublicProxy || n.ResidentialProxy,
			VPN: n.VPN, Tor: n.Tor, Hosting: n.Hosting,
			PublicProxy: n.PublicProxy, ResidentialProxy: n.ResidentialProxy,
		},
		Device: runtimeid.DeviceSignals{
			UserAgent: d.UserAgent, Browser: d.Browser, BrowserVersion: d.BrowserVersion,
			OS: d.OS, OSVersion: d.OSVersion, Type: d.Type, Bot: d.Bot, ID: d.ID,
		},
		Custom: cs.Custom,
	}
	s.ClientIP, _ = netip.ParseAddr(cs.ClientIP)
	return s
}

// session computes the session signals as the engine does.
func session(id *runtimeid.Identity, now time.Time) runtimeid.SessionSignals {
	var s runtimeid.SessionSignals
	if id == nil {
		return s
	}
	if !id.IssuedAt.IsZero() {
		s.TokenAge = max(now.Sub(id.IssuedAt), 0)
	}
	if !id.AuthTime.IsZero() {
		s.HasAuthTime = true
		s.SinceAuth = max(now.Sub(id.AuthTime), 0)
	}
	return s
}

func (cr *caseRisk) assessment(th thresholds) runtimeid.Assessment {
	a := runtimeid.Assessment{Score: cr.Score}
	for _, code := range cr.Findings {
		a.Findings = append(a.Findings, runtimeid.Finding{Code: code})
	}
	switch {
	case cr.Level == "high", cr.Level == "" && cr.Score >= th.high:
		a.Level = runtimeid.LevelHigh
	case cr.Level == "medium", cr.Level == "" && cr.Score >= th.medium:
		a.Level = runtimeid.LevelMedium
	}
	return a
}
