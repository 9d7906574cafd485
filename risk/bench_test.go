package risk

import (
	"context"
	"fmt"
	"runtime"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/runtimeid/runtimeid"
)

var phone = runtimeid.DeviceSignals{
	Browser: "Mobile Safari", BrowserVersion: "17", OS: "iOS", Type: "mobile",
}

// typical learns a typical history for sub: two devices, two
// countries, two networks.
func typical(ctx context.Context, e *Evaluator, sub string) {
	hist := []req{
		{net: london, dev: chrome},
		{at: time.Hour, net: london, dev: phone},
		{at: 2 * time.Hour, dev: phone,
			net: with(london, func(n *runtimeid.NetworkSignals) { n.ASN = 5089 })},
		{at: 48 * time.Hour, net: paris, dev: phone},
	}
	for _, h := range hist {
		ev := h.eval()
		ev.Identity.Subject = sub
		e.Learn(ctx, ev)
	}
}

func BenchmarkAssess(b *testing.B) {
	cases := map[string]req{
		"familiar": {at: 72 * time.Hour, net: london, dev: chrome},
		"travel":   {at: 48*time.Hour + 10*time.Minute, net: linkoping, dev: chrome},
	}
	for name, r := range cases {
		b.Run(name, func(b *testing.B) {
			ctx := context.Background()
			e, err := NewEvaluator(newLRU(b, 1000), Options{})
			require.NoError(b, err)
			typical(ctx, e, "alice")
			ev := r.eval()

			b.ReportAllocs()
			for b.Loop() {
				if _, err := e.Assess(ctx, ev); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkAssessParallel shows the cost of the store's one lock when
// every core assesses a different subject.
func BenchmarkAssessParallel(b *testing.B) {
	ctx := context.Background()
	e, err := NewEvaluator(newLRU(b, 10000), Options{})
	require.NoError(b, err)
	for i := range 1000 {
		typical(ctx, e, fmt.Sprint("user-", i))
	}

	evs := make([]*runtimeid.Evaluation, 1000)
	for i := range evs {
		evs[i] = req{at: 72 * time.Hour, net: london, dev: chrome}.eval()
		evs[i].Identity.Subject = fmt.Sprint("user-", i)
	}

	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		i := 0
		for pb.Next() {
			if _, err := e.Assess(ctx, evs[i%len(evs)]); err != nil {
				b.Fatal(err)
			}
			i++
		}
	})
}

func BenchmarkLearn(b *testing.B) {
	for name, s := range map[string]Store{
		"memory": NewMemoryStore(),
		"lru":    newLRU(b, 1000),
	} {
		b.Run(name, func(b *testing.B) {
			ctx := context.Background()
			e, err := NewEvaluator(s, Options{})
			require.NoError(b, err)
			typical(ctx, e, "alice")
			ev := req{at: 72 * time.Hour, net: london, dev: chrome}.eval()

			b.ReportAllocs()
			for b.Loop() {
				e.Learn(ctx, ev)
			}
		})
	}
}

// TestProfileMemory measures the heap held per subject with a typical
// profile, store overhead included.
func TestProfileMemory(t *testing.T) {
	if testing.Short() {
		t.Skip("allocates 100k profiles")
	}
	const n = 100_000
	for name, newStore := range map[string]func() Store{
		"memory": func() Store { return NewMemoryStore() },
		"lru":    func() Store { return newLRU(t, n) },
	} {
		t.Run(name, func(t *testing.T) {
			ctx := context.Background()
			subjects := make([]string, n)
			for i := range subjects {
				subjects[i] = fmt.Sprintf("user-%08d", i)
			}
			before := heap()

			s := newStore()
			e, err := NewEvaluator(s, Options{})
			require.NoError(t, err)
			for _, sub := range subjects {
				typical(ctx, e, sub)
			}
			perSubject := float64(heap()-before) / n
			runtime.KeepAlive(s)

			t.Logf("%s store: %.0f bytes per subject (%d subjects)", name, perSubject, n)
			assert.Less(t, perSubject, 2048.0)
		})
	}
}

func heap() uint64 {
	var m runtime.MemStats
	runtime.GC()
	runtime.GC()
	runtime.ReadMemStats(&m)
	return m.HeapAlloc
}
