package live

import (
	"cmp"
	"slices"
	"time"
)

// Snapshot is the view's state at one moment, as the JSON endpoint
// serves it.
type Snapshot struct {
	Now      time.Time      `json:"now"`
	Total    int            `json:"total"`
	Outcomes map[string]int `json:"outcomes"`

	// Rules counts decisions by rule and outcome, most first.
	Rules []Count `json:"rules"`

	// Series has one step per bucket, oldest first, ending at Now.
	Series []Step `json:"series"`

	// Scores is the histogram of risk scores: Scores[i] counts the
	// scores in [i/10, (i+1)/10), the last bin including 1.
	Scores [ScoreBins]int `json:"scores"`

	// Recent holds the latest decisions, newest first.
	Recent []Entry `json:"recent"`
}

// Count is how many decisions one rule made with one outcome.
type Count struct {
	Key
	Count int `json:"count"`
}

// Step is one bucket of the time series.
type Step struct {
	Start    time.Time      `json:"start"`
	Outcomes map[string]int `json:"outcomes"`
	Rules    []Count        `json:"rules,omitempty"`
}

// Snapshot returns a copy of the view's state.
func (v *View) Snapshot() Snapshot {
	now := v.now()
	v.mu.Lock()
	defer v.mu.Unlock()

	s := Snapshot{Now: now, Total: v.total, Scores: v.scores,
		Outcomes: outcomes(v.totals), Rules: counts(v.totals)}
	s.Series = v.series(now)

	// The ring holds the oldest entry at next once it is full.
	n := len(v.recent)
	s.Recent = make([]Entry, 0, n)
	for i := 1; i <= n; i++ {
		s.Recent = append(s.Recent, v.recent[(v.next-i+n)%n])
	}
	return s
}

func (v *View) series(now time.Time) []Step {
	n := int64(len(v.buckets))
	last := floorDiv(now.Unix(), v.width) * v.width
	steps := make([]Step, 0, n)
	for i := n - 1; i >= 0; i-- {
		start := last - i*v.width
		st := Step{Start: time.Unix(start, 0).UTC(), Outcomes: map[string]int{}}
		b := &v.buckets[floorDiv(start, v.width)%n]
		if b.start == start {
			st.Outcomes = outcomes(b.counts)
			st.Rules = counts(b.counts)
		}
		steps = append(steps, st)
	}
	return steps
}

func outcomes(m map[Key]int) map[string]int {
	out := map[string]int{"allow": 0, "challenge": 0, "block": 0}
	for k, c := range m {
		out[k.Outcome] += c
	}
	return out
}

// counts sorts by count, then rule and outcome, so output is stable.
func counts(m map[Key]int) []Count {
	out := make([]Count, 0, len(m))
	for k, c := range m {
		out = append(out, Count{Key: k, Count: c})
	}
	slices.SortFunc(out, func(a, b Count) int {
		return cmp.Or(cmp.Compare(b.Count, a.Count),
			cmp.Compare(a.Rule, b.Rule), cmp.Compare(a.Outcome, b.Outcome))
	})
	return out
}
