package stepup

import (
	"slices"
	"time"

	"github.com/runtimeid/runtimeid"
)

// maxSessionRecords bounds the step-ups one session keeps: one per
// acr, and the service records only a few acr values.
const maxSessionRecords = 8

// sessionRecords is what a session's key holds: its latest step-up,
// inline, so that a value written by a version that kept only the
// latest reads the same, and the latest earlier step-up of each other
// acr, newest first.
type sessionRecords struct {
	Record
	Earlier []Record `json:"earlier,omitempty"`
}

// all returns the step-ups, newest first.
func (r sessionRecords) all() []Record {
	if r.ACR == "" {
		return nil
	}
	return append([]Record{r.Record}, r.Earlier...)
}

// add makes rec the latest step-up, drops an earlier one of its acr
// and those before since, and keeps at most [maxSessionRecords].
func (r *sessionRecords) add(rec Record, since time.Time) {
	kept := []Record{rec}
	for _, e := range r.all() {
		dup := slices.ContainsFunc(kept, func(k Record) bool { return k.ACR == e.ACR })
		if !dup && e.Time.After(since) && len(kept) < maxSessionRecords {
			kept = append(kept, e)
		}
	}
	r.Record, r.Earlier = kept[0], kept[1:]
	if len(r.Earlier) == 0 {
		r.Earlier = nil
	}
}

// pick returns the latest step-up whose acr want accepts, else the
// latest. Of the step-ups of accepted acr values, the latest is the
// one most likely to meet want's max age.
func (r sessionRecords) pick(want *runtimeid.StepUp) Record {
	for _, rec := range r.all() {
		if want == nil || len(want.ACRValues) == 0 ||
			slices.Contains(want.ACRValues, rec.ACR) {
			return rec
		}
	}
	return r.Record
}
