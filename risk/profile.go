package risk

import (
	"slices"
	"time"
)

// The bounds of a [Profile]'s lists. When a list is full, a new key
// replaces the entry seen least recently; among entries last seen at
// the same time, the one seen least often goes. Sixteen covers the
// devices, countries and networks of a frequent traveller while a
// typical profile stays well under 1 KiB.
const (
	MaxDevices   = 16
	MaxCountries = 16
	MaxASNs      = 16
)

// Profile is one subject's baseline: what its allowed requests looked
// like. [Evaluator.Learn] writes it from allowed requests only.
//
// A profile keeps no raw identifiers: devices are kept as hashes of
// their ID or description, never a device cookie's value.
type Profile struct {
	// FirstSeen and LastSeen are the times of the first and the latest
	// learned request, in UTC.
	FirstSeen time.Time
	LastSeen  time.Time

	// Requests counts the learned requests.
	Requests uint64

	// Devices are keyed by a hash of the device ID when one was
	// presented, otherwise of the browser family and major version, the
	// OS family and the device type. At most [MaxDevices].
	Devices []Seen[uint64]

	// Countries are ISO 3166-1 alpha-2 codes. At most [MaxCountries].
	Countries []Seen[string]

	// ASNs are autonomous system numbers. At most [MaxASNs].
	ASNs []Seen[uint32]

	// Location is where the latest geolocated learned request came
	// from. Its Time is zero when none was geolocated.
	Location Location

	// Hours counts the learned requests by hour of the week.
	Hours HourHistogram
}

// Seen is one key of a [Profile] list: how often and how lately it was
// part of a learned request.
type Seen[K comparable] struct {
	Key   K
	Count uint32    // stops at the largest uint32
	Last  time.Time // in UTC
}

// Location is a geolocated position at a moment.
type Location struct {
	Latitude   float64
	Longitude  float64
	AccuracyKM float64 // radius of the uncertainty
	Country    string
	Time       time.Time // in UTC; zero means no location
}

// Clone returns a deep copy of p, or nil when p is nil. Stores use it
// to hand [Store.Update] a private copy.
func (p *Profile) Clone() *Profile {
	if p == nil {
		return nil
	}
	c := *p
	c.Devices = slices.Clone(p.Devices)
	c.Countries = slices.Clone(p.Countries)
	c.ASNs = slices.Clone(p.ASNs)
	return &c
}

// empty reports whether nothing was learned yet.
func (p *Profile) empty() bool {
	return p == nil || p.Requests == 0
}

// learn records one allowed request.
func (p *Profile) learn(o *observation) {
	t := o.time
	if p.FirstSeen.IsZero() || t.Before(p.FirstSeen) {
		p.FirstSeen = t
	}
	p.LastSeen = later(p.LastSeen, t)
	p.Requests++
	p.Hours.add(t)

	if o.hasDevice {
		p.Devices = touch(p.Devices, o.device, t, MaxDevices)
	}
	if o.country != "" {
		p.Countries = touch(p.Countries, o.country, t, MaxCountries)
	}
	if o.asn != 0 {
		p.ASNs = touch(p.ASNs, o.asn, t, MaxASNs)
	}

	// Requests may be learned out of order under concurrency; the
	// travel check compares against the latest position, so an older
	// one never replaces it.
	if o.hasLocation && !t.Before(p.Location.Time) {
		p.Location = o.location
	}
}

// touch counts key in list, adding it when absent and replacing the
// weakest entry when the list holds limit entries already.
func touch[K comparable](list []Seen[K], key K, t time.Time, limit int) []Seen[K] {
	if i := indexOf(list, key); i >= 0 {
		if list[i].Count < ^uint32(0) {
			list[i].Count++
		}
		list[i].Last = later(list[i].Last, t)
		return list
	}

	e := Seen[K]{Key: key, Count: 1, Last: t}
	if len(list) < limit {
		return append(list, e)
	}
	list[weakest(list)] = e
	return list
}

func indexOf[K comparable](list []Seen[K], key K) int {
	for i := range list {
		if list[i].Key == key {
			return i
		}
	}
	return -1
}

func contains[K comparable](list []Seen[K], key K) bool {
	return indexOf(list, key) >= 0
}

// weakest returns the index of the entry seen least recently, and of
// those the one seen least often.
func weakest[K comparable](list []Seen[K]) int {
	w := 0
	for i := 1; i < len(list); i++ {
		a, b := &list[i], &list[w]
		if a.Last.Before(b.Last) ||
			a.Last.Equal(b.Last) && a.Count < b.Count {
			w = i
		}
	}
	return w
}

func later(a, b time.Time) time.Time {
	if b.After(a) {
		return b
	}
	return a
}
