package risk

import (
	"context"
	"encoding/json"
	"math"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/runtimeid/runtimeid"
)

// FuzzLearnAssess feeds arbitrary signals through Learn and Assess: no
// panic, weights in [0,1], lists within bounds, and a profile that
// still encodes as JSON (no NaN or infinity kept).
func FuzzLearnAssess(f *testing.F) {
	f.Add("GB", 51.5074, -0.1278, 10.0, uint64(2856), "Chrome", "120.0.1", "dev", int64(0), true)
	f.Add("se", 58.4108, 15.6214, 0.0, uint64(0), "", "", "", int64(600), true)
	f.Add("", math.NaN(), math.Inf(1), math.Inf(-1), uint64(math.MaxUint64),
		"x", "..", "", int64(-1), true)
	f.Add("ÄÖ", 90.0, 180.0, -5.0, uint64(1), "\xff", "1.2", "", int64(math.MaxInt64), false)

	f.Fuzz(func(t *testing.T, country string, lat, lon, acc float64, asn uint64,
		browser, version, id string, seconds int64, hasLoc bool) {
		ctx := context.Background()
		s := NewMemoryStore()
		e, err := NewEvaluator(s, Options{})
		require.NoError(t, err)

		net := runtimeid.NetworkSignals{
			Country: country, Latitude: lat, Longitude: lon, AccuracyKM: acc,
			HasLocation: hasLoc, ASN: uint(asn), Tor: asn%2 == 0,
		}
		dev := runtimeid.DeviceSignals{Browser: browser, BrowserVersion: version, ID: id}
		for i := range 3 {
			ev := req{net: net, dev: dev, sens: runtimeid.High}.eval()
			ev.Time = ev.Time.Add(time.Duration(seconds) * time.Duration(i))
			fs, err := e.Assess(ctx, ev)
			require.NoError(t, err)
			for _, f := range fs {
				require.True(t, f.Weight >= 0 && f.Weight <= 1, f)
				require.NotEmpty(t, f.Detail)
			}
			e.Learn(ctx, ev)
		}

		p, err := s.Get(ctx, "alice")
		require.NoError(t, err)
		require.LessOrEqual(t, len(p.Countries), MaxCountries)
		_, err = json.Marshal(p)
		require.NoError(t, err)
	})
}
