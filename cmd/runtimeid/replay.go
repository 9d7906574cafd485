package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"os"
	"time"

	"github.com/runtimeid/runtimeid"
	"github.com/runtimeid/runtimeid/decision/live"
	"github.com/runtimeid/runtimeid/policy"
	"github.com/runtimeid/runtimeid/policy/config"
)

type replayOptions struct {
	config    string
	candidate string
	format    string
	top       int
	logs      []string
}

func parseReplay(args []string, stderr io.Writer) (replayOptions, error) {
	var o replayOptions
	fs := flag.NewFlagSet("replay", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&o.config, "config", "", "configuration file (routes, geoip, policy)")
	fs.StringVar(&o.candidate, "candidate", "", "candidate policy to compare with the current one")
	fs.StringVar(&o.format, "format", formatAuto, "log format: auto, combined or json")
	fs.IntVar(&o.top, "top", 10, "how many findings and subjects to list")
	if err := fs.Parse(args); err != nil {
		return o, fmt.Errorf("%w: %w", errUsage, err)
	}
	o.logs = fs.Args()
	switch {
	case len(o.logs) == 0:
		return o, fmt.Errorf("%w: replay needs a LOG", errUsage)
	case o.format != formatAuto && o.format != formatCombined && o.format != formatJSON:
		return o, fmt.Errorf("%w: -format %q: want auto, combined or json", errUsage, o.format)
	case o.top < 1:
		return o, fmt.Errorf("%w: -top must be positive", errUsage)
	}
	return o, nil
}

func runReplay(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	o, err := parseReplay(args, stderr)
	if err != nil {
		return err
	}
	r, err := newReplayer(o)
	if err != nil {
		return err
	}
	defer r.Close()
	for _, path := range o.logs {
		if err := r.replayFile(ctx, path); err != nil {
			return err
		}
	}
	r.report(stdout, o.top)
	return nil
}

// loadConfig reads the configuration file, or returns an empty one.
func loadConfig(path string) (*config.File, error) {
	if path == "" {
		return config.Parse([]byte("version: 1\n"), "(none)")
	}
	return config.Load(path)
}

// replayer runs recorded requests through one engine per policy, in
// report-only mode: decisions are counted, never enforced.
type replayer struct {
	cfg      *config.File
	format   string
	now      time.Time
	engines  []*replayEngine
	subjects map[string]string // generated subject by client address
	sessions map[string]time.Time

	requests, skipped int
	first, last       time.Time
	changes           map[[2]outcomeRule]int

	// live, when set, receives the current policy's decisions.
	live *live.View
}

// outcomeRule is one decision, as compared between policies.
type outcomeRule struct{ outcome, rule string }

// maxSubjects bounds the subjects invented for client addresses, and
// the sessions tracked; beyond it, addresses share "user-other".
const maxSubjects = 1_000_000

func (r *replayer) clock() time.Time { return r.now }

func newReplayer(o replayOptions) (*replayer, error) {
	return newReplayerLive(o, nil)
}

// newReplayerLive is newReplayer with a live view of the current
// policy's decisions.
func newReplayerLive(o replayOptions, view *live.View) (*replayer, error) {
	cfg, err := loadConfig(o.config)
	if err != nil {
		return nil, err
	}
	r := &replayer{cfg: cfg, format: o.format, subjects: map[string]string{},
		sessions: map[string]time.Time{}, changes: map[[2]outcomeRule]int{},
		live: view}
	current, err := cfg.LoadPolicy()
	if err != nil {
		return nil, err
	}
	name := cfg.Policy
	if name == "" {
		name = "the default policy"
	}
	if err := r.addEngine("Current policy: "+name, current); err != nil {
		return nil, err
	}
	if o.candidate != "" {
		cand, err := policy.Load(o.candidate)
		if err != nil {
			return nil, err
		}
		if err := r.addEngine("Candidate policy: "+o.candidate, cand); err != nil {
			r.Close()
			return nil, err
		}
	}
	return r, nil
}

func (r *replayer) addEngine(title string, p runtimeid.PolicyEngine) error {
	log := slog.New(slog.DiscardHandler)
	if r.live != nil && len(r.engines) == 0 {
		log = slog.New(r.live.Handler())
	}
	b, err := r.cfg.Build(config.BuildOptions{
		Policy: p, Now: r.clock, Logger: log,
		InsecureSkipAuthentication: true,
	})
	if err != nil {
		return err
	}
	r.engines = append(r.engines, newReplayEngine(title, b))
	return nil
}

// Close closes every engine.
func (r *replayer) Close() {
	for _, e := range r.engines {
		e.built.Close()
	}
}

func (r *replayer) replayFile(ctx context.Context, path string) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	skipped, err := readLog(f, r.format, func(rec record) error {
		return r.replay(ctx, rec)
	})
	r.skipped += skipped
	if err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	return nil
}

// replay evaluates one request on every engine.
func (r *replayer) replay(ctx context.Context, rec record) error {
	req, err := requestFor(rec)
	if err != nil {
		r.skipped++
		return nil
	}
	r.requests++
	if r.first.IsZero() || rec.Time.Before(r.first) {
		r.first = rec.Time
	}
	if rec.Time.After(r.last) {
		r.last = rec.Time
	}
	r.now = rec.Time

	id := r.identity(rec)
	var got []outcomeRule
	for _, e := range r.engines {
		action, _ := e.built.Routes.Match(req)
		route, _ := e.built.Routes.Lookup(action.Name)
		action.Method = req.Method
		ev, _ := e.built.Engine.Evaluate(ctx, runtimeid.Input{
			Identity: id, Action: action, ClientIP: rec.IP,
			UserAgent: rec.UserAgent, FailOpen: route.FailOpen,
		})
		e.count(ev)
		got = append(got, outcomeRule{ev.Decision.Outcome.String(), ev.Decision.Rule})
	}
	if len(got) == 2 && got[0] != got[1] {
		r.changes[[2]outcomeRule{got[0], got[1]}]++
	}
	return nil
}

// requestFor builds the request the routes are matched against.
func requestFor(rec record) (*http.Request, error) {
	u, err := url.ParseRequestURI(rec.Path)
	if err != nil {
		return nil, err
	}
	method := rec.Method
	if method == http.MethodHead {
		method = http.MethodGet
	}
	return &http.Request{Method: method, URL: u, Header: http.Header{},
		Host: "replay.invalid", RequestURI: rec.Path}, nil
}

// identity is the log's subject, or one invented per client address,
// with one session per subject and day that starts with a login at its
// first request.
func (r *replayer) identity(rec record) *runtimeid.Identity {
	sub := rec.Subject
	if sub == "" {
		key := rec.IP.String()
		sub = r.subjects[key]
		if sub == "" {
			sub = "user-other"
			if len(r.subjects) < maxSubjects {
				sub = fmt.Sprintf("user-%04d", len(r.subjects)+1)
				r.subjects[key] = sub
			}
		}
	}
	sid := sub + "-" + rec.Time.Format("20060102")
	start, ok := r.sessions[sid]
	if !ok && len(r.sessions) < maxSubjects {
		start = rec.Time
		r.sessions[sid] = start
	}
	if start.IsZero() {
		start = rec.Time
	}
	return &runtimeid.Identity{Subject: sub, SessionID: sid, IssuedAt: start,
		AuthTime: start, Expiry: rec.Time.Add(time.Hour)}
}
