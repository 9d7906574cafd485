package risk

import "time"

// history is one subject's feature history for a [Model]: per chain
// and level, the values seen with their parent, a count and when they
// were last seen. Values are hashes of the value's whole path, so no
// raw user agent or address is kept.
type history struct {
	levels [numChains][maxLevels][]valueCount
}

type valueCount struct {
	key    uint64
	parent uint64
	count  uint32
	last   time.Time
}

// prob is the subject's probability of value key at level lvl of
// chain c, given its parent: Witten-Bell interpolation with the
// population's probability pop of the same step,
//
//	p(v | parent) = (c(v) + T·pop) / (c(parent) + T)
//
// where c(parent) is how often the subject was seen under the parent
// and T how many distinct values it showed there. A subject never
// seen under the parent gives pop itself: nothing to tell it apart
// from anyone.
func (h *history) prob(c, lvl int, parent, key uint64, pop float64) float64 {
	if h == nil {
		return pop
	}
	var total, own float64
	var distinct int
	for _, v := range h.levels[c][lvl] {
		if v.parent != parent {
			continue
		}
		total += float64(v.count)
		distinct++
		if v.key == key {
			own = float64(v.count)
		}
	}
	if total == 0 {
		return pop
	}
	t := float64(distinct)
	return (own + t*pop) / (total + t)
}

// learn counts one request's paths.
func (h *history) learn(paths *[numChains]chain, t time.Time, limit int) {
	for c := range paths {
		p := &paths[c]
		var parent uint64
		for lvl := range p.n {
			k := p.keys[lvl]
			h.levels[c][lvl] = touchValue(h.levels[c][lvl], k, parent, t, limit)
			parent = k
		}
	}
	if h.requests() >= maxUserCount {
		h.halve()
	}
}

// requests returns the count at the top of the largest chain.
func (h *history) requests() uint32 {
	var n uint32
	for c := range h.levels {
		var s uint32
		for _, v := range h.levels[c][0] {
			s += v.count
		}
		n = max(n, s)
	}
	return n
}

// halve halves every count and drops values that reach zero.
func (h *history) halve() {
	for c := range h.levels {
		for l := range h.levels[c] {
			kept := h.levels[c][l][:0]
			for _, v := range h.levels[c][l] {
				if v.count /= 2; v.count > 0 {
					kept = append(kept, v)
				}
			}
			h.levels[c][l] = kept
		}
	}
}

func touchValue(list []valueCount, key, parent uint64, t time.Time, limit int) []valueCount {
	for i := range list {
		if list[i].key == key {
			list[i].count++
			list[i].last = later(list[i].last, t)
			return list
		}
	}
	v := valueCount{key: key, parent: parent, count: 1, last: t}
	if len(list) < limit {
		return append(list, v)
	}
	w := 0
	for i := 1; i < len(list); i++ {
		a, b := &list[i], &list[w]
		if a.last.Before(b.last) || a.last.Equal(b.last) && a.count < b.count {
			w = i
		}
	}
	list[w] = v
	return list
}
