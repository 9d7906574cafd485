package risk

import (
	"context"
	"fmt"
	"hash/maphash"
	"math"
	"slices"
	"sync"
	"time"

	"github.com/hashicorp/golang-lru/v2/simplelru"

	"github.com/runtimeid/runtimeid"
)

// The finding codes of an [AgentEvaluator]. They are stable across
// releases: policies and audit logs match on them.
const (
	CodeAgentRateHigh    = "agent_rate_high"
	CodeAgentVolumeSpike = "agent_volume_spike"
	CodeAgentScopeDrift  = "agent_scope_drift"
)

// Defaults for the zero values of [AgentOptions].
const (
	// DefaultMaxAgents bounds the (agent, subject) pairs tracked.
	DefaultMaxAgents = 10_000

	// DefaultAgentRatePerMinute is the action rate at which
	// agent_rate_high starts.
	DefaultAgentRatePerMinute = 30

	// DefaultAgentHalfLife is the half-life of the decayed action
	// counts behind the rate and the high-sensitivity share.
	DefaultAgentHalfLife = time.Minute

	// DefaultAgentWindow is the length of a usage window.
	DefaultAgentWindow = time.Minute

	// DefaultAgentVolumeFactor is how many times its baseline an
	// agent must read in one window for agent_volume_spike.
	DefaultAgentVolumeFactor = 10

	// DefaultAgentMinRecords and DefaultAgentMinBytes are the least
	// a window must hold for agent_volume_spike, whatever the
	// baseline, so an agent that usually reads 2 records may read 20.
	DefaultAgentMinRecords = 100
	DefaultAgentMinBytes   = 1 << 20

	// DefaultAgentBaselineWindows is how many windows with usage an
	// agent needs before its own baseline is trusted.
	DefaultAgentBaselineWindows = 3

	// DefaultAgentMinHistory is how many allowed actions an agent
	// needs before agent_scope_drift is reported.
	DefaultAgentMinHistory = 20

	// DefaultAgentMaxActions bounds the distinct actions learned per
	// agent.
	DefaultAgentMaxActions = 64

	// DefaultAgentHighShare is the share of high-sensitivity actions
	// among recent ones at which an agent drifts.
	DefaultAgentHighShare = 0.5
)

// baselineAlpha is the weight of the newest window in the usage
// baseline, an exponentially weighted mean: the last four windows
// make up about two thirds of it.
const baselineAlpha = 0.25

// AgentOptions configure an [AgentEvaluator]. The zero value means the
// defaults.
type AgentOptions struct {
	// MaxAgents is how many (agent, subject) pairs are tracked; the
	// least recently used is forgotten first. Each takes about 200
	// bytes plus its learned actions. Zero means [DefaultMaxAgents].
	MaxAgents int

	// ClientIDs lists clients that are agents even when their tokens
	// carry no act claim. Nil means only delegated identities
	// ([runtimeid.Identity.IsDelegated]) are agents.
	ClientIDs []string

	// RatePerMinute is the rate at which agent_rate_high starts. Zero
	// means [DefaultAgentRatePerMinute].
	RatePerMinute float64

	// HalfLife is the half-life of the decayed action counts. Zero
	// means [DefaultAgentHalfLife].
	HalfLife time.Duration

	// Window is the length of a usage window. Zero means
	// [DefaultAgentWindow].
	Window time.Duration

	// VolumeFactor, MinRecords and MinBytes set when a window's usage
	// is a spike. Zero means the defaults.
	VolumeFactor float64
	MinRecords   int64
	MinBytes     int64

	// BaselineWindows is how many windows with usage the baseline
	// needs. Zero means [DefaultAgentBaselineWindows].
	BaselineWindows int

	// MinHistory is how many allowed actions an agent needs before
	// agent_scope_drift. Zero means [DefaultAgentMinHistory].
	MinHistory int

	// MaxActions bounds the distinct actions learned per agent. Zero
	// means [DefaultAgentMaxActions].
	MaxActions int

	// HighShare is the share of high-sensitivity actions at which an
	// agent drifts. Zero means [DefaultAgentHighShare].
	HighShare float64

	// Weights are the findings' weights.
	Weights AgentWeights
}

// AgentWeights are the weights of an [AgentEvaluator]'s findings, each
// in [0,1]. Zero means the default; [Off] turns a finding off.
type AgentWeights struct {
	RateHigh       float64 // default 0.50, times a confidence
	VolumeSpike    float64 // default 0.80
	ScopeDrift     float64 // default 0.30, low or medium action
	ScopeDriftHigh float64 // default 0.60, high-sensitivity action
}

var defaultAgentWeights = AgentWeights{
	RateHigh:       0.50,
	VolumeSpike:    0.80,
	ScopeDrift:     0.30,
	ScopeDriftHigh: 0.60,
}

// AgentEvaluator holds each AI agent to its own behaviour: how fast it
// acts, how much it reads and which actions it takes, per agent and per
// user it acts for. It is a [runtimeid.RiskEvaluator], a
// [runtimeid.Learner] and a [runtimeid.UsageRecorder], safe for
// concurrent use.
//
// An agent is an identity someone acts through (an RFC 8693 act claim:
// the agent is the current actor, the user is the subject) or one of
// [AgentOptions.ClientIDs]. Other identities get no findings and cost
// nothing. The agent is keyed by its actor's sub and client_id and the
// subject, so one agent acting for two users has two baselines.
//
// Findings, in this order:
//
//	code                 default  when
//	agent_rate_high      0.50×c   RatePerMinute or more actions a minute
//	                              (decayed, half-life HalfLife), counting
//	                              refused ones; c = rate/(2·limit), ≤ 1
//	agent_volume_spike   0.80     records (or bytes) reported in the
//	                              current window above max(MinRecords,
//	                              VolumeFactor × baseline); before
//	                              BaselineWindows windows, above
//	                              VolumeFactor × MinRecords
//	agent_scope_drift    0.60     a high-sensitivity action this agent
//	                              never had allowed, after MinHistory
//	                     0.30     such a low or medium action, or at
//	                              least HighShare of recent actions high
//	                              while under HighShare/2 of learned ones
//
// The usage baseline is the mean records and bytes per window, weighted
// 1/4 to the newest window, over windows with usage; a spiking window
// adds at most the spike threshold, so a burst does not teach itself.
// Usage comes from [runtimeid.ReportUsage], after the handler ran, so a
// spike is seen on the agent's next action.
//
// Memory is bounded by MaxAgents and MaxActions whatever the traffic;
// keys are 64-bit keyed hashes (hash/maphash, random seed).
//
// BUG: once an agent has learned MaxActions distinct actions, any
// further action stays unfamiliar and is reported as drift.
type AgentEvaluator struct {
	opts AgentOptions
	seed maphash.Seed

	// mu guards agents: the LRU changes even on a read.
	mu     sync.Mutex
	agents *simplelru.LRU[uint64, *agentState]
}

var (
	_ runtimeid.RiskEvaluator = (*AgentEvaluator)(nil)
	_ runtimeid.Learner       = (*AgentEvaluator)(nil)
	_ runtimeid.UsageRecorder = (*AgentEvaluator)(nil)
)

// agentState is what is known about one (agent, subject) pair.
type agentState struct {
	actions Rate // every assessed action
	high    Rate // the high-sensitivity ones

	// The current usage window and the baseline per window.
	windowStart     time.Time
	records, bytes  int64
	baseRecords     float64
	baseBytes       float64
	baselineWindows int

	// What allowed actions looked like.
	learned     int
	learnedHigh int
	known       map[string]int
}

// AgentStats is a snapshot of one agent's state, for tests, debugging
// and dashboards.
type AgentStats struct {
	ActionsPerMinute float64
	HighShare        float64 // of recent actions
	WindowRecords    int64
	WindowBytes      int64
	BaselineRecords  float64
	BaselineBytes    float64
	BaselineWindows  int
	Learned          int
	Actions          []string // learned, sorted
}

// NewAgentEvaluator returns an [AgentEvaluator]. Invalid options give a
// [*runtimeid.ConfigError].
func NewAgentEvaluator(opts AgentOptions) (*AgentEvaluator, error) {
	if err := opts.setDefaults(); err != nil {
		return nil, err
	}
	agents, err := simplelru.NewLRU[uint64, *agentState](opts.MaxAgents, nil)
	if err != nil {
		return nil, fmt.Errorf("risk: agent lru: %w", err)
	}
	return &AgentEvaluator{opts: opts, seed: maphash.MakeSeed(), agents: agents}, nil
}

func (o *AgentOptions) setDefaults() error {
	if err := o.check(); err != nil {
		return err
	}
	setDefault(&o.MaxAgents, DefaultMaxAgents)
	setDefault(&o.RatePerMinute, DefaultAgentRatePerMinute)
	setDefault(&o.HalfLife, DefaultAgentHalfLife)
	setDefault(&o.Window, DefaultAgentWindow)
	setDefault(&o.VolumeFactor, DefaultAgentVolumeFactor)
	setDefault(&o.MinRecords, DefaultAgentMinRecords)
	setDefault(&o.MinBytes, DefaultAgentMinBytes)
	setDefault(&o.BaselineWindows, DefaultAgentBaselineWindows)
	setDefault(&o.MinHistory, DefaultAgentMinHistory)
	setDefault(&o.MaxActions, DefaultAgentMaxActions)
	setDefault(&o.HighShare, DefaultAgentHighShare)
	return o.Weights.setDefaults()
}

func (o *AgentOptions) check() error {
	positive := func(x float64) bool { return finite(x) && x >= 0 }
	switch {
	case o.MaxAgents < 0 || o.BaselineWindows < 0 || o.MinHistory < 0 ||
		o.MaxActions < 0 || o.MinRecords < 0 || o.MinBytes < 0:
		return configError("AgentOptions", "counts must not be negative")
	case o.HalfLife < 0 || o.Window < 0:
		return configError("AgentOptions", "durations must not be negative")
	case !positive(o.RatePerMinute) || !positive(o.VolumeFactor):
		return configError("AgentOptions", "rates must be positive numbers")
	case !positive(o.HighShare) || o.HighShare > 1:
		return configError("AgentOptions.HighShare", "must be in [0,1]")
	}
	return nil
}

func (w *AgentWeights) setDefaults() error {
	d := &defaultAgentWeights
	fields := []struct {
		name string
		v    *float64
		def  float64
	}{
		{"RateHigh", &w.RateHigh, d.RateHigh},
		{"VolumeSpike", &w.VolumeSpike, d.VolumeSpike},
		{"ScopeDrift", &w.ScopeDrift, d.ScopeDrift},
		{"ScopeDriftHigh", &w.ScopeDriftHigh, d.ScopeDriftHigh},
	}
	for _, f := range fields {
		switch {
		case math.IsNaN(*f.v) || *f.v > 1:
			return configError("AgentOptions.Weights."+f.name,
				"must be at most 1, or negative for off")
		case *f.v == 0:
			*f.v = f.def
		}
	}
	return nil
}

// key names the (agent, subject) pair of id, or reports false when id
// is not an agent.
func (a *AgentEvaluator) key(id *runtimeid.Identity) (uint64, bool) {
	if id == nil {
		return 0, false
	}
	var actor, client string
	switch {
	case id.Actor != nil:
		actor, client = id.Actor.Subject, id.Actor.ClientID
	case id.ClientID != "" && slices.Contains(a.opts.ClientIDs, id.ClientID):
		client = id.ClientID
	default:
		return 0, false
	}
	var h maphash.Hash
	h.SetSeed(a.seed)
	for _, s := range []string{actor, client, id.Issuer, id.Subject} {
		h.WriteString(s)
		h.WriteByte(0)
	}
	return h.Sum64(), true
}

// state returns the pair's state, made when absent. The caller holds
// mu.
func (a *AgentEvaluator) state(k uint64) *agentState {
	s, ok := a.agents.Get(k)
	if !ok {
		s = &agentState{}
		a.agents.Add(k, s)
	}
	return s
}

// Assess counts the action and reports the agent's findings. It never
// fails; identities that are not agents get none.
func (a *AgentEvaluator) Assess(
	_ context.Context, ev *runtimeid.Evaluation,
) ([]runtimeid.Finding, error) {
	k, ok := a.key(ev.Identity)
	if !ok {
		return nil, nil
	}
	high := ev.Action.Sensitivity == runtimeid.High
	var fs findings

	a.mu.Lock()
	defer a.mu.Unlock()
	s := a.state(k)
	if !ev.Reused() { // a request is counted once
		s.actions.add(ev.Time, a.opts.HalfLife)
		if high {
			s.high.add(ev.Time, a.opts.HalfLife)
		}
	}
	a.roll(s, ev.Time)

	a.rate(&fs, s, ev.Time)
	a.volume(&fs, s)
	a.drift(&fs, s, ev, high)
	return fs.list, nil
}

// Learn records an allowed action as part of the agent's usual set. A
// request is counted once: a recheck teaches nothing, and a nested
// evaluation ([runtimeid.Evaluation.Nested]) adds only its action's name.
func (a *AgentEvaluator) Learn(_ context.Context, ev *runtimeid.Evaluation) {
	k, ok := a.key(ev.Identity)
	if !ok || ev.Recheck {
		return
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	s := a.state(k)
	if !ev.Nested {
		s.learned++
		if ev.Action.Sensitivity == runtimeid.High {
			s.learnedHigh++
		}
	}
	name := ev.Action.Name
	if _, ok := s.known[name]; !ok && len(s.known) >= a.opts.MaxActions {
		return
	}
	if s.known == nil {
		s.known = make(map[string]int)
	}
	s.known[name]++
}

// RecordUsage adds what an allowed action returned to the agent's
// current window. See [runtimeid.ReportUsage].
func (a *AgentEvaluator) RecordUsage(
	_ context.Context, ev *runtimeid.Evaluation, u runtimeid.Usage,
) {
	k, ok := a.key(ev.Identity)
	if !ok {
		return
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	s := a.state(k)
	a.roll(s, ev.Time)
	s.records = satAdd(s.records, int64(max(u.Records, 0)))
	s.bytes = satAdd(s.bytes, max(u.Bytes, 0))
}

func satAdd(a, b int64) int64 {
	if a > math.MaxInt64-b {
		return math.MaxInt64
	}
	return a + b
}

// Stats returns a snapshot of id's agent state, or false when id is
// not an agent or is not tracked.
func (a *AgentEvaluator) Stats(id *runtimeid.Identity, now time.Time) (AgentStats, bool) {
	k, ok := a.key(id)
	if !ok {
		return AgentStats{}, false
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	s, ok := a.agents.Peek(k)
	if !ok {
		return AgentStats{}, false
	}
	st := AgentStats{
		ActionsPerMinute: s.actions.PerMinute(now, a.opts.HalfLife),
		HighShare:        s.highShare(now, a.opts.HalfLife),
		WindowRecords:    s.records, WindowBytes: s.bytes,
		BaselineRecords: s.baseRecords, BaselineBytes: s.baseBytes,
		BaselineWindows: s.baselineWindows, Learned: s.learned,
	}
	for name := range s.known {
		st.Actions = append(st.Actions, name)
	}
	slices.Sort(st.Actions)
	return st, true
}

// Len returns the number of (agent, subject) pairs tracked.
func (a *AgentEvaluator) Len() int {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.agents.Len()
}

// roll closes the current window when t is past it, folding its usage
// into the baseline, and opens a new one at t. A window without usage
// is not folded: the baseline is usage per active window. The caller
// holds mu.
func (a *AgentEvaluator) roll(s *agentState, t time.Time) {
	if !s.windowStart.IsZero() && t.Sub(s.windowStart) < a.opts.Window {
		return
	}
	if s.records > 0 || s.bytes > 0 {
		rec, byt := a.thresholds(s)
		fold(&s.baseRecords, min(float64(s.records), rec), s.baselineWindows)
		fold(&s.baseBytes, min(float64(s.bytes), byt), s.baselineWindows)
		s.baselineWindows++
	}
	s.windowStart, s.records, s.bytes = t, 0, 0
}

func fold(base *float64, v float64, n int) {
	if n == 0 {
		*base = v
		return
	}
	*base += baselineAlpha * (v - *base)
}

// thresholds are the records and bytes above which a window spikes.
func (a *AgentEvaluator) thresholds(s *agentState) (records, bytes float64) {
	o := &a.opts
	minR, minB := float64(o.MinRecords), float64(o.MinBytes)
	if s.baselineWindows < o.BaselineWindows {
		return o.VolumeFactor * minR, o.VolumeFactor * minB
	}
	return max(minR, o.VolumeFactor*s.baseRecords),
		max(minB, o.VolumeFactor*s.baseBytes)
}

func (s *agentState) highShare(t time.Time, hl time.Duration) float64 {
	all := s.actions.at(t, hl)
	if all == 0 {
		return 0
	}
	return s.high.at(t, hl) / all
}

// rate reports an agent acting at or above the limit. Its confidence
// is rate/(2·limit), at most 1, as for request_burst.
func (a *AgentEvaluator) rate(fs *findings, s *agentState, t time.Time) {
	limit := a.opts.RatePerMinute
	perMinute := s.actions.PerMinute(t, a.opts.HalfLife)
	if perMinute < limit {
		return
	}
	conf := min(1, perMinute/(2*limit))
	fs.add(CodeAgentRateHigh, a.opts.Weights.RateHigh*conf, fmt.Sprintf(
		"about %.0f actions per minute, limit %.0f", perMinute, limit))
}

func (a *AgentEvaluator) volume(fs *findings, s *agentState) {
	rec, byt := a.thresholds(s)
	var detail string
	switch {
	case float64(s.records) > rec:
		detail = fmt.Sprintf("%d records read this window, threshold %.0f",
			s.records, rec)
	case float64(s.bytes) > byt:
		detail = fmt.Sprintf("%d bytes read this window, threshold %.0f",
			s.bytes, byt)
	default:
		return
	}
	fs.add(CodeAgentVolumeSpike, a.opts.Weights.VolumeSpike, detail)
}

func (a *AgentEvaluator) drift(fs *findings, s *agentState,
	ev *runtimeid.Evaluation, high bool) {
	o := &a.opts
	if s.learned < o.MinHistory {
		return
	}
	name := ev.Action.Name
	if _, ok := s.known[name]; !ok {
		w := o.Weights.ScopeDrift
		if high {
			w = o.Weights.ScopeDriftHigh
		}
		fs.add(CodeAgentScopeDrift, w, fmt.Sprintf(
			"%s action %q is outside this agent's %d usual actions",
			ev.Action.Sensitivity, name, len(s.known)))
		return
	}
	share := s.highShare(ev.Time, o.HalfLife)
	usual := float64(s.learnedHigh) / float64(s.learned)
	if share >= o.HighShare && usual < o.HighShare/2 {
		fs.add(CodeAgentScopeDrift, o.Weights.ScopeDrift, fmt.Sprintf(
			"%.0f%% of recent actions are high-sensitivity, usually %.0f%%",
			100*share, 100*usual))
	}
}
