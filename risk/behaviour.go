package risk

import (
	"math"
	"time"
)

// HoursPerWeek is the number of buckets of an [HourHistogram].
const HoursPerWeek = 7 * 24

// maxHourCount is the count at which an [HourHistogram] halves every
// bucket before adding, so a bucket never overflows and old habits fade
// as new ones are learned.
const maxHourCount = 1 << 15

// HourHistogram counts learned requests by hour of the week, in UTC:
// bucket 0 is Sunday 00:00-00:59, bucket 167 Saturday 23:00-23:59.
// It takes 336 bytes whatever the traffic. When a bucket would pass
// 32768, every bucket is halved first, which keeps the shape of the
// histogram and lets recent weeks count more than old ones.
type HourHistogram [HoursPerWeek]uint16

// HourOfWeek returns t's bucket in an [HourHistogram], in UTC.
func HourOfWeek(t time.Time) int {
	t = t.UTC()
	return int(t.Weekday())*24 + t.Hour()
}

// add counts one request at t.
func (h *HourHistogram) add(t time.Time) {
	i := HourOfWeek(t)
	if h[i] >= maxHourCount {
		for j := range h {
			h[j] /= 2
		}
	}
	h[i]++
}

// Total returns the sum of the buckets.
func (h *HourHistogram) Total() int {
	n := 0
	for _, c := range h {
		n += int(c)
	}
	return n
}

// near returns the requests learned within an hour of t's bucket: in
// the same hour of the week, and in the same hour of the day on any
// day. Both windows are three hours wide, so that a user who is
// usually active at 09:00 is not unusual at 10:00.
func (h *HourHistogram) near(t time.Time) (week, day int) {
	i := HourOfWeek(t)
	for d := -1; d <= 1; d++ {
		week += int(h[mod(i+d, HoursPerWeek)])
	}
	hour := i % 24
	for wd := range 7 {
		for d := -1; d <= 1; d++ {
			day += int(h[wd*24+mod(hour+d, 24)])
		}
	}
	return week, day
}

func mod(a, n int) int { return ((a % n) + n) % n }

// Rate is an exponentially decayed count of events: each event adds
// one, and the count halves every half-life. A steady stream of r
// events per minute holds the count near r·halfLife/ln 2 minutes, so
// [Rate.PerMinute] recovers r. It takes 32 bytes, whatever the rate.
type Rate struct {
	Count float64   // decayed count as of Time
	Time  time.Time // of the latest event, in UTC
}

// at returns the count decayed to t. An event earlier than the latest
// one decays nothing: clocks of concurrent requests may disagree.
func (r *Rate) at(t time.Time, halfLife time.Duration) float64 {
	dt := t.Sub(r.Time)
	if r.Time.IsZero() || dt <= 0 {
		return r.Count
	}
	return r.Count * math.Exp2(-float64(dt)/float64(halfLife))
}

// add counts one event at t.
func (r *Rate) add(t time.Time, halfLife time.Duration) {
	r.Count = r.at(t, halfLife) + 1
	r.Time = later(r.Time, t.UTC())
}

// PerMinute estimates events per minute as of t, for a rate kept with
// the given half-life.
func (r *Rate) PerMinute(t time.Time, halfLife time.Duration) float64 {
	return r.at(t, halfLife) * math.Ln2 / halfLife.Minutes()
}
