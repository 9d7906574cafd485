package redisstore

import (
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/runtimeid/runtimeid"
	"github.com/runtimeid/runtimeid/decision"
	"github.com/runtimeid/runtimeid/policy"
	"github.com/runtimeid/runtimeid/risk"
	"github.com/runtimeid/runtimeid/signals"
	"github.com/runtimeid/runtimeid/signals/ssf"
)

// stores are the three kinds of state one benchmark runs on.
type stores struct {
	baselines risk.Store
	facts     ssf.Store
	replay    runtimeid.ReplayCache
}

func memoryStores(b *testing.B) stores {
	lru, err := risk.NewLRUStore(10_000)
	require.NoError(b, err)
	return stores{baselines: lru, facts: ssf.NewState(ssf.StateOptions{}),
		replay: runtimeid.NewMemoryReplayCache(0, clock)}
}

func redisStores(b *testing.B) stores {
	s := newStore(b, newClient(b, redisAddr(b)), testPrefix(b), func(o *Options) {
		o.Now, o.FlushInterval = clock, DefaultFlushInterval
	})
	return stores{baselines: s.Baselines(), facts: s.Revocations(), replay: s.Replay()}
}

// benchHandler is the full pipeline of the root package's benchmark
// (client IP, GeoIP with MaxMind's test databases, device, baseline,
// default policy, enforcer) with the SSF validator and DPoP added.
func benchHandler(b *testing.B, w *world, st stores) http.Handler {
	geo, err := signals.OpenGeoIP(signals.GeoIPConfig{
		CityPath:        "../../signals/testdata/maxmind/GeoIP2-City-Test.mmdb",
		ASNPath:         "../../signals/testdata/maxmind/GeoLite2-ASN-Test.mmdb",
		AnonymousIPPath: "../../signals/testdata/maxmind/GeoIP2-Anonymous-IP-Test.mmdb",
	})
	require.NoError(b, err)
	b.Cleanup(func() { geo.Close() })
	rv, err := risk.NewEvaluator(st.baselines, risk.Options{})
	require.NoError(b, err)
	dpop, err := runtimeid.NewDPoP(runtimeid.DPoPOptions{Now: clock, Replay: st.replay})
	require.NoError(b, err)
	enf, err := decision.NewEnforcer(decision.Options{})
	require.NoError(b, err)
	eng, err := runtimeid.New(runtimeid.Config{
		Token: runtimeid.TokenConfig{Issuer: testIssuer, Audience: []string{"api"},
			Keys: w.keys},
		Validators: []runtimeid.IdentityValidator{ssf.NewValidator(st.facts), dpop},
		Collectors: []runtimeid.SignalCollector{signals.NewClientIP(nil), geo,
			signals.NewDevice()},
		Evaluators: []runtimeid.RiskEvaluator{rv},
		Policy:     policy.Default(),
		Enforcer:   enf,
		Now:        clock,
	})
	require.NoError(b, err)
	return eng.Protect("orders.list", runtimeid.Low)(
		http.HandlerFunc(func(rw http.ResponseWriter, _ *http.Request) {
			rw.WriteHeader(http.StatusNoContent)
		}))
}

// BenchmarkRequestPath serves one request per iteration on the
// in-memory stores and on the Redis store: a bearer token (no Redis
// round trip: baseline and revocations are local), and a DPoP-bound
// one with a new proof each time, signed outside the timer (one SET NX
// per proof).
func BenchmarkRequestPath(b *testing.B) {
	for _, bc := range []struct {
		name string
		st   func(*testing.B) stores
		dpop bool
	}{
		{"bearer/memory", memoryStores, false}, {"bearer/redis", redisStores, false},
		{"dpop/memory", memoryStores, true}, {"dpop/redis", redisStores, true},
	} {
		b.Run(bc.name, func(b *testing.B) {
			w := newWorld(b)
			h := benchHandler(b, w, bc.st(b))
			tok := w.mint("s-1", bc.dpop)
			scheme := "Bearer "
			if bc.dpop {
				scheme = "DPoP "
			}
			const n = 4096
			proofs := make([]string, n)
			for i := range proofs {
				proofs[i] = w.proof(tok)
			}
			b.ReportAllocs()
			b.ResetTimer()
			i := 0
			for b.Loop() {
				if bc.dpop && i == n {
					b.StopTimer()
					for j := range proofs {
						proofs[j] = w.proof(tok)
					}
					i = 0
					b.StartTimer()
				}
				req := httptest.NewRequest(http.MethodGet, testURL, nil)
				req.RemoteAddr = "2.125.160.216:5555"
				req.Header.Set("User-Agent", chromeUA)
				req.Header.Set("Authorization", scheme+tok)
				if bc.dpop {
					req.Header.Set("DPoP", proofs[i])
					i++
				}
				rec := httptest.NewRecorder()
				h.ServeHTTP(rec, req)
				if rec.Code != http.StatusNoContent {
					b.Fatalf("status %d: %s", rec.Code, rec.Header())
				}
			}
		})
	}
}
