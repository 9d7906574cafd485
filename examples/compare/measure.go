package main

import (
	"fmt"
	"io"
	"net/http"
	"runtime"
	"slices"
	"text/tabwriter"
	"time"
)

// result is one contender's cost per request.
type result struct {
	name   string
	ns     float64 // median over the rounds
	allocs float64
	bytes  float64
}

// recorder is a reusable [http.ResponseWriter], so that every contender
// is measured without the cost of a fresh httptest.ResponseRecorder.
type recorder struct {
	header http.Header
	code   int
}

func (r *recorder) Header() http.Header         { return r.header }
func (r *recorder) Write(p []byte) (int, error) { return len(p), nil }
func (r *recorder) WriteHeader(code int)        { r.code = code }

func serve(h http.Handler, req *http.Request, rec *recorder) error {
	clear(rec.header)
	rec.code = http.StatusOK
	h.ServeHTTP(rec, req)
	if rec.code != http.StatusNoContent {
		return fmt.Errorf("status %d", rec.code)
	}
	return nil
}

// measure runs every contender in turn, rounds times, each for about
// per, and keeps the median time per request of each: the contenders
// share the machine's moments of load instead of one getting them all.
func measure(cs []contender, req *http.Request, rounds int, per time.Duration) ([]result, error) {
	rec := &recorder{header: http.Header{}}
	batch := make([]int, len(cs))
	for i, c := range cs {
		n, err := calibrate(c.handler, req, rec, per)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", c.name, err)
		}
		batch[i] = n
	}
	samples := make([][]float64, len(cs))
	out := make([]result, len(cs))
	for range rounds {
		for i, c := range cs {
			r, err := runBatch(c.handler, req, rec, batch[i])
			if err != nil {
				return nil, fmt.Errorf("%s: %w", c.name, err)
			}
			samples[i] = append(samples[i], r.ns)
			out[i] = r
			out[i].name = c.name
		}
	}
	for i := range out {
		out[i].ns = median(samples[i])
	}
	return out, nil
}

// calibrate returns how many requests take about per.
func calibrate(h http.Handler, req *http.Request, rec *recorder, per time.Duration) (int, error) {
	n := 1
	for {
		start := time.Now()
		for range n {
			if err := serve(h, req, rec); err != nil {
				return 0, err
			}
		}
		if el := time.Since(start); el >= per/4 || n >= 1<<24 {
			return max(1, int(float64(n)*float64(per)/float64(el))), nil
		}
		n *= 4
	}
}

func runBatch(h http.Handler, req *http.Request, rec *recorder, n int) (result, error) {
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	start := time.Now()
	for range n {
		if err := serve(h, req, rec); err != nil {
			return result{}, err
		}
	}
	el := time.Since(start)
	runtime.ReadMemStats(&after)
	return result{
		ns:     float64(el.Nanoseconds()) / float64(n),
		allocs: float64(after.Mallocs-before.Mallocs) / float64(n),
		bytes:  float64(after.TotalAlloc-before.TotalAlloc) / float64(n),
	}, nil
}

func median(xs []float64) float64 {
	s := slices.Clone(xs)
	slices.Sort(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

// report prints the table and the two targets.
func report(w io.Writer, rs []result) {
	base := rs[0].ns
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "stack\tns/op\tallocs/op\tB/op\tx chi\tadded ns\t")
	for _, r := range rs {
		fmt.Fprintf(tw, "%s\t%.0f\t%.1f\t%.0f\t%.1f\t%.0f\t\n",
			r.name, r.ns, r.allocs, r.bytes, r.ns/base, r.ns-base)
	}
	tw.Flush()

	byName := map[string]float64{}
	for _, r := range rs {
		byName[r.name] = r.ns
	}
	rid := byName["runtimeid"]
	ratio := byName["jwtauth + OPA"] / rid
	added := rid - base
	fmt.Fprintf(w, "\njwtauth + OPA / runtimeid: %.1fx (target >= 20x: %s)\n",
		ratio, verdict(ratio >= 20))
	fmt.Fprintf(w, "runtimeid - chi: %.0f ns (target <= 5000 ns: %s)\n",
		added, verdict(added <= 5000))
}

func verdict(ok bool) string {
	if ok {
		return "met"
	}
	return "NOT met"
}
