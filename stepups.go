package runtimeid

import (
	"context"
	"slices"
	"time"
)

// StepUpSources combines several sources into one for
// [Config.StepUps]: it asks every source, in order, with the
// challenge's requirement, and reports the most recent step-up whose
// acr the requirement accepts; when no source has one, the most recent
// step-up of any acr. On a tie, the earlier source's. Nil sources are
// skipped.
//
// Every source is asked on every challenge: a source that uses up what
// it reports, such as [Approvals], is used up even when another
// source's answer is the one reported.
func StepUpSources(srcs ...StepUpSource) StepUpSource {
	var list stepUpSources
	for _, s := range srcs {
		if s != nil {
			list = append(list, s)
		}
	}
	return list
}

type stepUpSources []StepUpSource

// StepUp implements [StepUpSource].
func (l stepUpSources) StepUp(ctx context.Context, id *Identity,
	want *StepUp) (string, time.Time, bool) {
	var best, latest recordedStepUp
	for _, s := range l {
		acr, at, ok := s.StepUp(ctx, id, want)
		if !ok {
			continue
		}
		got := recordedStepUp{acr, at, true}
		latest = latest.or(got)
		if acceptsACR(want, acr) {
			best = best.or(got)
		}
	}
	if !best.ok {
		best = latest
	}
	return best.acr, best.at, best.ok
}

// recordedStepUp is one source's answer.
type recordedStepUp struct {
	acr string
	at  time.Time
	ok  bool
}

// or returns the more recent of r and o, r on a tie.
func (r recordedStepUp) or(o recordedStepUp) recordedStepUp {
	if !r.ok || o.at.After(r.at) {
		return o
	}
	return r
}

// acceptsACR reports whether want admits a step-up of acr, whatever its
// age. A nil want, or one without acr values, admits any.
func acceptsACR(want *StepUp, acr string) bool {
	return want == nil || len(want.ACRValues) == 0 ||
		slices.Contains(want.ACRValues, acr)
}
