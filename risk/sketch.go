package risk

import "math"

// sketchDepth is the number of rows of a [countMinSketch]. With width
// w, a count is overestimated by more than 2N/w (N the total) with
// probability at most 2^-4.
const sketchDepth = 4

// countMinSketch counts keys in fixed memory (Cormode and
// Muthukrishnan, "An Improved Data Stream Summary: The Count-Min
// Sketch and its Applications"): each key has one counter per row,
// and its count is the smallest of them, which is never below the
// true count. It takes 4·depth·width bytes. Updates are conservative:
// only the counters at the current minimum grow, which makes the
// overestimate smaller.
type countMinSketch struct {
	mask uint64
	rows [sketchDepth][]uint32
}

func newCountMinSketch(width int) *countMinSketch {
	s := &countMinSketch{mask: uint64(width - 1)}
	for i := range s.rows {
		s.rows[i] = make([]uint32, width)
	}
	return s
}

func (s *countMinSketch) index(key uint64, row int) uint64 {
	return mix64(key+uint64(row)*0x9e3779b97f4a7c15) & s.mask
}

// count returns the key's estimated count.
func (s *countMinSketch) count(key uint64) uint32 {
	c := uint32(math.MaxUint32)
	for i := range s.rows {
		c = min(c, s.rows[i][s.index(key, i)])
	}
	return c
}

// add counts the key once; counts stop at the largest uint32.
func (s *countMinSketch) add(key uint64) {
	c := s.count(key)
	if c == math.MaxUint32 {
		return
	}
	for i := range s.rows {
		j := s.index(key, i)
		if s.rows[i][j] == c {
			s.rows[i][j]++
		}
	}
}

// mix64 is the finaliser of SplitMix64: every input bit changes every
// output bit with probability near one half.
func mix64(x uint64) uint64 {
	x ^= x >> 30
	x *= 0xbf58476d1ce4e5b9
	x ^= x >> 27
	x *= 0x94d049bb133111eb
	x ^= x >> 31
	return x
}
