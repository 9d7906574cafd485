package risk

import (
	"context"
	"fmt"
	"runtime"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/runtimeid/runtimeid"
)

// memSubjects is the LRU bound of the memory benchmarks, and
// memOverflow how many more subjects they send, so that the bound
// evicts and the heap is the steady state.
const (
	memSubjects = 1_000_000
	memOverflow = 200_000
)

// BenchmarkMemoryPerSubject reports the heap held per tracked subject
// (B/subject) by an [Evaluator] over an [LRUStore] bounded to one
// million subjects, after 1.2 million subjects each learned a typical
// history (two devices, two countries, two networks). One iteration
// takes seconds: run it with -benchtime 1x.
func BenchmarkMemoryPerSubject(b *testing.B) {
	ctx := context.Background()
	for b.Loop() {
		before := heap()
		s := newLRU(b, memSubjects)
		e, err := NewEvaluator(s, Options{})
		require.NoError(b, err)
		for i := range memSubjects + memOverflow {
			typical(ctx, e, fmt.Sprintf("user-%08d", i))
		}
		held := heap() - before
		require.Equal(b, memSubjects, s.Len())
		b.ReportMetric(float64(held)/memSubjects, "B/subject")
		b.ReportMetric(float64(held)/(1<<20), "MiB-total")
		runtime.KeepAlive(s)
	}
}

// BenchmarkModelMemoryPerSubject is the same for the statistical
// [Model]'s histories, bounded to one million subjects; its population
// sketch (1 MiB) is counted in the total.
func BenchmarkModelMemoryPerSubject(b *testing.B) {
	ctx := context.Background()
	hist := []req{
		{net: london, dev: chrome},
		{net: london, dev: phone},
		{net: paris, dev: phone},
	}
	evs := make([]*runtimeid.Evaluation, len(hist))
	for i, h := range hist {
		evs[i] = h.eval()
		evs[i].Signals.Device.UserAgent = fmt.Sprintf("agent %d", i)
	}
	for b.Loop() {
		before := heap()
		m, err := NewModel(ModelOptions{MaxSubjects: memSubjects})
		require.NoError(b, err)
		for i := range memSubjects + memOverflow {
			sub := fmt.Sprintf("user-%08d", i)
			for _, ev := range evs {
				ev.Identity.Subject = sub
				m.Learn(ctx, ev)
			}
		}
		held := heap() - before
		b.ReportMetric(float64(held)/memSubjects, "B/subject")
		b.ReportMetric(float64(held)/(1<<20), "MiB-total")
		runtime.KeepAlive(m)
	}
}
