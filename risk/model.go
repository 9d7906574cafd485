package risk

import (
	"context"
	"fmt"
	"hash/maphash"
	"log/slog"
	"math"
	"strconv"
	"sync"

	"github.com/hashicorp/golang-lru/v2/simplelru"

	"github.com/runtimeid/runtimeid"
)

// CodeUnfamiliarContext is the finding code of a [Model]: the
// request's network and device are more likely under attack than under
// the subject's history.
const CodeUnfamiliarContext = "unfamiliar_context"

// Defaults for the zero values of [ModelOptions].
const (
	// DefaultModelSubjects bounds the subjects with a history.
	DefaultModelSubjects = 100_000

	// DefaultModelValues bounds the values kept per feature level and
	// subject.
	DefaultModelValues = 16

	// DefaultSketchWidth is the width of the population's count-min
	// sketch: 4 rows of 2^16 counters, 1 MiB in all.
	DefaultSketchWidth = 1 << 16

	// DefaultHalfWeightRatio puts the finding's weight at 0.5 for a
	// likelihood ratio of 3, so that the model alone reaches the
	// engine's default high-risk score (0.7) at a ratio of 7 and the
	// medium one (0.3) at about 1.3. On the riskeval replay of real
	// traffic, 99.9% of legitimate requests score a ratio below 3.6.
	DefaultHalfWeightRatio = 3
)

// maxUserCount is the count of requests at which a subject's history
// halves every count, keeping its shape while letting new habits
// catch up with old ones.
const maxUserCount = 1 << 16

// ModelOptions configure a [Model]. The zero value means the defaults.
type ModelOptions struct {
	// MaxSubjects is how many subjects keep a history; the least
	// recently used is forgotten first and starts again cold. Zero
	// means [DefaultModelSubjects].
	MaxSubjects int

	// MaxValues is how many values a subject's history keeps per
	// feature level: countries, networks, addresses, device types,
	// OS versions, browser versions and user agents. The least
	// recently seen goes first. Zero means [DefaultModelValues].
	MaxValues int

	// SketchWidth is the number of counters per row of the population
	// sketch, a power of two. Zero means [DefaultSketchWidth].
	SketchWidth int

	// HalfWeightRatio is the likelihood ratio at which the finding
	// weighs 0.5. The weight of a ratio r is r/(r+HalfWeightRatio):
	// the posterior probability of an attack for prior odds of
	// 1/HalfWeightRatio. Lowering it challenges more. Zero means
	// [DefaultHalfWeightRatio].
	HalfWeightRatio float64

	// Logger is unused today; it is here so that a later store can
	// report errors of [Model.Learn]. Nil discards.
	Logger *slog.Logger
}

// Model is the statistical risk model: the likelihood ratio of a
// request's network and device under attack versus under the
// subject's own history, after Freeman et al. See the package
// documentation for the math. It is a [runtimeid.RiskEvaluator] and a
// [runtimeid.Learner], and safe for concurrent use.
//
// It trusts the signals as the collectors set them. It learns the
// population and the subjects from allowed requests only. Memory is
// bounded: the sketch takes 16·[ModelOptions.SketchWidth] bytes, and
// each of at most [ModelOptions.MaxSubjects] histories at most
// 7·[ModelOptions.MaxValues] values of 40 bytes.
type Model struct {
	opts     ModelOptions
	seed     maphash.Seed
	priorLog float64 // log prior odds, -log HalfWeightRatio

	// mu guards the population and the histories.
	mu        sync.Mutex
	total     uint64 // requests learned into the population
	sketch    *countMinSketch
	histories *simplelru.LRU[string, *history]
}

var (
	_ runtimeid.RiskEvaluator = (*Model)(nil)
	_ runtimeid.Learner       = (*Model)(nil)
)

// NewModel returns an empty [Model]. Invalid options give a
// [*runtimeid.ConfigError].
func NewModel(opts ModelOptions) (*Model, error) {
	if err := opts.setDefaults(); err != nil {
		return nil, err
	}
	h, err := simplelru.NewLRU[string, *history](opts.MaxSubjects, nil)
	if err != nil {
		return nil, fmt.Errorf("risk: model lru: %w", err)
	}
	return &Model{
		opts:      opts,
		seed:      maphash.MakeSeed(),
		priorLog:  -math.Log(opts.HalfWeightRatio),
		sketch:    newCountMinSketch(opts.SketchWidth),
		histories: h,
	}, nil
}

func (o *ModelOptions) setDefaults() error {
	w := o.SketchWidth
	switch {
	case o.MaxSubjects < 0:
		return configError("ModelOptions.MaxSubjects", "must not be negative")
	case o.MaxValues < 0:
		return configError("ModelOptions.MaxValues", "must not be negative")
	case w < 0 || w&(w-1) != 0:
		return configError("ModelOptions.SketchWidth", "must be a power of two")
	case !finite(o.HalfWeightRatio) || o.HalfWeightRatio < 0:
		return configError("ModelOptions.HalfWeightRatio", "must be a positive number")
	}
	setDefault(&o.MaxSubjects, DefaultModelSubjects)
	setDefault(&o.MaxValues, DefaultModelValues)
	setDefault(&o.SketchWidth, DefaultSketchWidth)
	setDefault(&o.HalfWeightRatio, DefaultHalfWeightRatio)
	return nil
}

// ModelScore is the model's verdict on one request.
type ModelScore struct {
	// LikelihoodRatio is P(request | attack) / P(request | subject):
	// 1 for a subject with no history, above 1 when the request looks
	// more like the population than like the subject.
	LikelihoodRatio float64

	// Probability is the finding's weight: the posterior probability
	// of an attack for prior odds of 1/[ModelOptions.HalfWeightRatio].
	Probability float64

	// Feature names the level with the largest ratio, such as
	// "country" or "browser", and Ratio is that level's ratio.
	Feature string
	Ratio   float64
}

// Score scores ev without learning it. A request without an identity
// scores the prior: the model knows nothing about whom it is from.
func (m *Model) Score(ev *runtimeid.Evaluation) ModelScore {
	var paths [numChains]chain
	m.paths(ev, &paths)
	key, ok := subjectKey(ev.Identity)

	m.mu.Lock()
	var h *history
	if ok {
		h, _ = m.histories.Peek(key)
	}
	s := m.score(h, &paths)
	m.mu.Unlock()
	return s
}

// Assess reports unfamiliar_context when the likelihood ratio is above
// one, with the posterior probability as its weight and a detail that
// names the most surprising feature. It never fails.
func (m *Model) Assess(
	_ context.Context, ev *runtimeid.Evaluation,
) ([]runtimeid.Finding, error) {
	s := m.Score(ev)
	if !(s.LikelihoodRatio > 1) {
		return nil, nil
	}
	detail := fmt.Sprintf(
		"likelihood ratio %.3g, most of all the %s (%.3g)",
		s.LikelihoodRatio, s.Feature, s.Ratio)
	return []runtimeid.Finding{{
		Code: CodeUnfamiliarContext, Weight: s.Probability, Detail: detail,
	}}, nil
}

// Learn adds an allowed request to the population and to its
// subject's history. The population learns from unauthenticated
// requests too. A request is learned once: an evaluation that reuses an
// earlier one ([runtimeid.Evaluation.Reused]) teaches nothing.
func (m *Model) Learn(_ context.Context, ev *runtimeid.Evaluation) {
	if ev.Reused() {
		return
	}
	var paths [numChains]chain
	m.paths(ev, &paths)
	key, ok := subjectKey(ev.Identity)
	t := ev.Time.UTC()

	m.mu.Lock()
	defer m.mu.Unlock()
	m.total++
	for c := range paths {
		for _, k := range paths[c].keys[:paths[c].n] {
			m.sketch.add(k)
		}
	}
	if !ok {
		return
	}
	h, _ := m.histories.Get(key)
	if h == nil {
		h = &history{}
		m.histories.Add(key, h)
	}
	h.learn(&paths, t, m.opts.MaxValues)
}

// Len returns the number of subjects with a history.
func (m *Model) Len() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.histories.Len()
}

// The feature chains, each from the most general level to the most
// specific.
const (
	chainNetwork = iota // country, AS, address
	chainDevice         // type, OS and version, browser and major, user agent
	numChains
)

const maxLevels = 4

var levelNames = [numChains][maxLevels]string{
	{"country", "network (AS)", "IP address"},
	{"device type", "OS", "browser", "user agent"},
}

// vocabulary is the nominal number of values a level can take under
// one parent, for the additive smoothing of population frequencies:
// about 250 countries, many networks per country, many addresses per
// network; a handful of device types, tens of OS versions per type,
// of browser versions per OS, and of user agents per browser version.
var vocabulary = [numChains][maxLevels]float64{
	{250, 1000, 1000},
	{5, 50, 100, 100},
}

// chain is the hashed path of one feature chain: keys[i] identifies
// the values of levels 0..i. A chain stops at the first unknown
// level.
type chain struct {
	keys [maxLevels]uint64
	n    int
}

func (m *Model) paths(ev *runtimeid.Evaluation, out *[numChains]chain) {
	n := &ev.Signals.Network
	d := &ev.Signals.Device
	var asn, ip string
	if n.ASN != 0 {
		asn = strconv.FormatUint(uint64(n.ASN), 10)
	}
	if a := ev.Signals.ClientIP; a.IsValid() {
		ip = a.Unmap().String()
	}
	m.hashChain(&out[chainNetwork], chainNetwork,
		countryCode(n.Country), asn, ip)

	var osv, browser string
	if d.OS != "" {
		osv = label(d.OS) + " " + major(d.OSVersion)
	}
	if d.Browser != "" {
		browser = label(d.Browser) + " " + major(d.BrowserVersion)
	}
	m.hashChain(&out[chainDevice], chainDevice,
		label(d.Type), osv, browser, d.UserAgent)
}

func (m *Model) hashChain(c *chain, id int, values ...string) {
	var prev uint64
	for i, v := range values {
		if v == "" {
			break
		}
		var h maphash.Hash
		h.SetSeed(m.seed)
		var b [10]byte
		b[0], b[1] = byte(id), byte(i)
		for j := range 8 {
			b[2+j] = byte(prev >> (8 * j))
		}
		h.Write(b[:])
		h.WriteString(v)
		prev = h.Sum64()
		c.keys[i] = prev
		c.n = i + 1
	}
}

// score computes the likelihood ratio of paths for history h, which
// may be nil. The caller holds mu.
func (m *Model) score(h *history, paths *[numChains]chain) ModelScore {
	s := ModelScore{LikelihoodRatio: 1, Ratio: 1}
	logLR := 0.0
	for c := range paths {
		p := &paths[c]
		parentCount := float64(m.total)
		for lvl := range p.n {
			k := p.keys[lvl]
			own := float64(m.sketch.count(k))

			// Additive smoothing keeps a value the population never
			// showed from having probability zero; the sketch may
			// overestimate a child past its parent, so the ratio is
			// capped at one.
			pop := (own + 1) / (parentCount + vocabulary[c][lvl])
			pop = min(pop, 1)
			parentCount = own

			var parent uint64
			if lvl > 0 {
				parent = p.keys[lvl-1]
			}
			lr := pop / h.prob(c, lvl, parent, k, pop)
			logLR += math.Log(lr)
			if lr > s.Ratio {
				s.Ratio, s.Feature = lr, levelNames[c][lvl]
			}
		}
	}
	s.LikelihoodRatio = math.Exp(logLR)
	s.Probability = 1 / (1 + math.Exp(-(logLR + m.priorLog)))
	return s
}
