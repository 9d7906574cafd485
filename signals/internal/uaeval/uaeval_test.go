package uaeval

import (
	"fmt"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

const testdata = "../../testdata"

type sets struct{ ua, os, types []Case }

func loadSets(t testing.TB) sets {
	t.Helper()
	ua, err := LoadUAPCore(testdata + "/uap-core/test_ua.yaml")
	require.NoError(t, err)
	os, err := LoadUAPCore(testdata + "/uap-core/test_os.yaml")
	require.NoError(t, err)
	types, err := LoadWoothee(testdata + "/woothee")
	require.NoError(t, err)
	return sets{ua, os, types}
}

// measured is what each candidate scored when the parser was chosen:
// browser all/major, OS all/major, type all/major. The test fails when
// a score drops more than margin below it.
var measured = map[string][6]float64{
	"signals.Device (uncached)": {0.916, 1.000, 0.988, 0.994, 0.842, 0.860},
	"ua-parser/uap-go":          {0.916, 1.000, 0.988, 0.994, 0.806, 0.800},
	"medama-io/go-useragent":    {0.059, 0.800, 0.282, 0.307, 0.581, 0.535},
	"mssola/useragent":          {0.403, 0.530, 0.271, 0.244, 0.696, 0.640},
}

const margin = 0.01

func TestNormalize(t *testing.T) {
	tests := map[string]string{
		"Chrome Mobile":     "chrome",
		"Chrome Mobile iOS": "chrome",
		"Chrome":            "chrome",
		"Mobile Safari":     "safari",
		"Firefox iOS":       "firefox",
		"Samsung Internet":  "samsung",
		"Samsung Browser":   "samsung",
		"Mac OS X":          "macos",
		"MacOS":             "macos",
		"Chrome OS":         "chromeos",
		"Internet Explorer": "ie",
		"IE Mobile":         "ie",
		"Other":             "other",
		"":                  "other",
		"Yandex Browser":    "yandex",
		"Amazon Silk":       "amazonsilk",
		"Opera Mobile":      "opera",
	}
	for in, want := range tests {
		require.Equal(t, want, Normalize(in), in)
	}
}

func TestParsers(t *testing.T) {
	if raceEnabled {
		// Thousands of regexp-heavy parses on one goroutine: the race
		// detector has nothing to find and makes it take minutes.
		t.Skip("skipped under -race")
	}
	s := loadSets(t)
	var report strings.Builder
	fmt.Fprintf(&report, "\n%-28s %15s %15s %15s\n",
		"parser", "browser all/maj", "os all/maj", "type all/maj")
	for _, c := range candidates() {
		browser := ScoreFamilies(s.ua, func(ua string) string {
			return c.parse(ua).Browser
		}, MajorBrowsers)
		osScore := ScoreFamilies(s.os, func(ua string) string {
			return c.parse(ua).OS
		}, MajorOS)
		types := ScoreTypes(s.types, func(ua string) string {
			return c.parse(ua).Type
		})

		got := [6]float64{
			browser.Accuracy(), browser.MajorAccuracy(),
			osScore.Accuracy(), osScore.MajorAccuracy(),
			types.Accuracy(), types.MajorAccuracy(),
		}
		fmt.Fprintf(&report, "%-28s %7.3f/%.3f %7.3f/%.3f %7.3f/%.3f\n",
			c.name, got[0], got[1], got[2], got[3], got[4], got[5])
		if want, ok := measured[c.name]; ok {
			for i := range got {
				require.GreaterOrEqual(t, got[i], want[i]-margin,
					"%s score %d", c.name, i)
			}
		}
	}
	fmt.Fprintf(&report, "cases: browser %d, os %d, type %d\n",
		len(s.ua), len(s.os), len(s.types))
	t.Log(report.String())
}

// BenchmarkParsers times one uncached parse of each candidate, averaged
// over every user agent of the three test sets.
func BenchmarkParsers(b *testing.B) {
	s := loadSets(b)
	var all []string
	for _, c := range [][]Case{s.ua, s.os, s.types} {
		for _, tc := range c {
			all = append(all, tc.UA)
		}
	}
	for _, c := range candidates() {
		b.Run(c.name, func(b *testing.B) {
			i := 0
			for b.Loop() {
				c.parse(all[i%len(all)])
				i++
			}
		})
	}
}
