package runtimeid

import (
	"context"
	"time"
)

// StepUpSources combines several sources into one for
// [Config.StepUps]: it asks every source, in order, and reports the
// most recent step-up any of them recorded for the session; on a tie,
// the earlier source's. Nil sources are skipped.
//
// The engine checks the one step-up reported against the challenge,
// so a more recent step-up of a weaker acr hides an older, stronger
// one. Every source is asked on every challenge: a source that uses up
// what it reports, such as [Approvals], is used up even when another
// source's answer is more recent.
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
func (l stepUpSources) StepUp(ctx context.Context, id *Identity) (string, time.Time, bool) {
	var acr string
	var at time.Time
	found := false
	for _, s := range l {
		a, t, ok := s.StepUp(ctx, id)
		if ok && (!found || t.After(at)) {
			acr, at, found = a, t, true
		}
	}
	return acr, at, found
}
