package redisstore

import (
	"time"

	"github.com/runtimeid/runtimeid/risk"
)

// maxHourCount is the bucket count at which risk halves an hour
// histogram; merged histograms halve the same way.
const maxHourCount = 1 << 15

// mergeProfiles returns what a and b learned together: counts add,
// first-seen takes the earlier time, last-seen the later, and the
// newer location wins. Lists keep their bounds, dropping the entries
// seen least recently, as risk does. Neither argument is changed; a
// nil argument is an empty profile.
func mergeProfiles(a, b *risk.Profile) *risk.Profile {
	switch {
	case a == nil:
		return b.Clone()
	case b == nil:
		return a.Clone()
	}
	m := &risk.Profile{
		FirstSeen: earlier(a.FirstSeen, b.FirstSeen),
		LastSeen:  later(a.LastSeen, b.LastSeen),
		Requests:  a.Requests + b.Requests,
		Devices:   mergeSeen(a.Devices, b.Devices, risk.MaxDevices),
		Countries: mergeSeen(a.Countries, b.Countries, risk.MaxCountries),
		ASNs:      mergeSeen(a.ASNs, b.ASNs, risk.MaxASNs),
		Location:  a.Location,
		Hours:     mergeHours(&a.Hours, &b.Hours),
	}
	if b.Location.Time.After(a.Location.Time) {
		m.Location = b.Location
	}
	return m
}

// mergeSeen adds b's counts to a's, then drops the weakest entries
// beyond limit.
func mergeSeen[K comparable](a, b []risk.Seen[K], limit int) []risk.Seen[K] {
	out := make([]risk.Seen[K], 0, len(a)+len(b))
	out = append(out, a...)
	for _, e := range b {
		i := indexOf(out, e.Key)
		if i < 0 {
			out = append(out, e)
			continue
		}
		out[i].Count = addSat(out[i].Count, e.Count)
		out[i].Last = later(out[i].Last, e.Last)
	}
	for len(out) > limit {
		w := weakest(out)
		out = append(out[:w], out[w+1:]...)
	}
	if len(out) == 0 {
		return nil
	}
	return out
}

func mergeHours(a, b *risk.HourHistogram) risk.HourHistogram {
	var sum [risk.HoursPerWeek]uint32
	top := uint32(0)
	for i := range sum {
		sum[i] = uint32(a[i]) + uint32(b[i])
		top = max(top, sum[i])
	}
	for top > maxHourCount {
		for i := range sum {
			sum[i] /= 2
		}
		top /= 2
	}
	var h risk.HourHistogram
	for i := range sum {
		h[i] = uint16(sum[i])
	}
	return h
}

func indexOf[K comparable](list []risk.Seen[K], key K) int {
	for i := range list {
		if list[i].Key == key {
			return i
		}
	}
	return -1
}

// weakest is the entry seen least recently, and of those the one seen
// least often: the one risk replaces first.
func weakest[K comparable](list []risk.Seen[K]) int {
	w := 0
	for i := 1; i < len(list); i++ {
		a, b := &list[i], &list[w]
		if a.Last.Before(b.Last) || a.Last.Equal(b.Last) && a.Count < b.Count {
			w = i
		}
	}
	return w
}

func addSat(a, b uint32) uint32 {
	if s := a + b; s >= a {
		return s
	}
	return ^uint32(0)
}

func earlier(a, b time.Time) time.Time {
	if a.IsZero() || !b.IsZero() && b.Before(a) {
		return b
	}
	return a
}

func later(a, b time.Time) time.Time {
	if b.After(a) {
		return b
	}
	return a
}
