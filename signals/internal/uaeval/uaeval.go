// Package uaeval measures user-agent parsers against labelled test sets:
// uap-core's test_ua.yaml (browser family) and test_os.yaml (OS family),
// and woothee's testsets (device category). It exists to choose the
// parser behind signals.Device and to catch regressions in it; nothing
// outside the tests uses it.
//
// How it scores. Family names differ between parsers for the same thing
// ("Chrome Mobile" and "Chrome", "Mac OS X" and "MacOS"), so both sides
// go through [Normalize] before they are compared: lower case, letters
// and digits only, the words "mobile", "browser", "internet" and
// "webview" dropped, and a few synonyms merged (see the synonyms map).
// An unknown answer ("", "Other", "Unknown") normalises to "other" and
// matches an expected "Other". Two accuracies are reported per set:
// over every case, and over the cases whose expected family is one of
// the common ones a risk engine cares about (see [MajorBrowsers],
// [MajorOS]), since a parser that never heard of "Luminary" is still
// fine for us if it gets Chrome right.
//
// Device types: woothee categories map to ours as pc → desktop,
// smartphone and mobilephone → mobile, crawler → bot, appliance and misc
// and UNKNOWN → other. Woothee files iPads and Android tablets under
// smartphone, so "tablet" counts as a match for smartphone.
package uaeval

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"unicode"

	"gopkg.in/yaml.v3"
)

// Case is one labelled user agent.
type Case struct {
	UA   string
	Want string // family or device type, as labelled
}

// LoadUAPCore reads a uap-core test file (test_ua.yaml or test_os.yaml)
// and returns its user agents with their expected family.
func LoadUAPCore(path string) ([]Case, error) {
	var doc struct {
		TestCases []struct {
			UA     string `yaml:"user_agent_string"`
			Family string `yaml:"family"`
		} `yaml:"test_cases"`
	}
	if err := readYAML(path, &doc); err != nil {
		return nil, err
	}
	cases := make([]Case, 0, len(doc.TestCases))
	for _, tc := range doc.TestCases {
		cases = append(cases, Case{UA: tc.UA, Want: tc.Family})
	}
	return cases, nil
}

// LoadWoothee reads every woothee testset in dir and returns its user
// agents with the device type their category maps to.
func LoadWoothee(dir string) ([]Case, error) {
	files, err := filepath.Glob(filepath.Join(dir, "*.yaml"))
	if err != nil {
		return nil, err
	}
	var cases []Case
	for _, f := range files {
		var doc []struct {
			Target   string `yaml:"target"`
			Category string `yaml:"category"`
		}
		if err := readYAML(f, &doc); err != nil {
			return nil, err
		}
		for _, tc := range doc {
			cases = append(cases, Case{
				UA: tc.Target, Want: wootheeType(tc.Category),
			})
		}
	}
	return cases, nil
}

func wootheeType(category string) string {
	switch category {
	case "pc":
		return "desktop"
	case "smartphone", "mobilephone":
		return "mobile"
	case "crawler":
		return "bot"
	}
	return "other"
}

func readYAML(path string, v any) error {
	b, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	if err := yaml.Unmarshal(b, v); err != nil {
		return fmt.Errorf("uaeval: %s: %w", path, err)
	}
	return nil
}

// synonyms merges names that differ between parsers, after the other
// normalisation steps.
var synonyms = map[string]string{
	"macosx":        "macos",
	"mac":           "macos",
	"chromiumos":    "chromeos",
	"edg":           "edge",
	"silk":          "amazonsilk",
	"unknown":       "other",
	"":              "other",
	"iphoneos":      "ios",
	"explorer":      "ie",
	"iphone":        "ios",
	"windowsnt":     "windows",
	"operamobi":     "opera",
	"huaweibrowser": "huawei",
}

var droppedWords = []string{"mobile", "browser", "internet", "webview"}

// Normalize maps a family name to the form used for comparison.
func Normalize(family string) string {
	words := strings.Fields(strings.ToLower(family))
	var b strings.Builder
	for _, w := range words {
		if contains(droppedWords, w) {
			continue
		}
		for _, r := range w {
			if unicode.IsLetter(r) || unicode.IsDigit(r) {
				b.WriteRune(r)
			}
		}
	}
	s := b.String()
	switch {
	case s == "internetexplorer", s == "iemobile":
		s = "ie"
	case strings.HasPrefix(s, "chromeios"):
		s = "chrome"
	case strings.HasPrefix(s, "firefoxios"):
		s = "firefox"
	case s == "samsung" || s == "samsungbrowser":
		s = "samsung"
	}
	if v, ok := synonyms[s]; ok {
		return v
	}
	return s
}

// MajorBrowsers are the browser families, normalised, that the "major"
// accuracy counts.
var MajorBrowsers = []string{
	"chrome", "firefox", "safari", "edge", "ie", "opera",
	"samsung", "yandex", "amazonsilk", "android", "vivaldi",
	"operamini", "huawei",
}

// MajorOS are the OS families, normalised, that the "major" accuracy
// counts.
var MajorOS = []string{
	"windows", "macos", "ios", "android", "linux", "chromeos",
	"ubuntu", "freebsd", "openbsd",
}

func contains(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}

// Score is an accuracy over one test set.
type Score struct {
	All, AllHits     int
	Major, MajorHits int
}

// Accuracy is the share of all cases answered right.
func (s Score) Accuracy() float64 { return ratio(s.AllHits, s.All) }

// MajorAccuracy is the share of cases with a major family answered
// right.
func (s Score) MajorAccuracy() float64 { return ratio(s.MajorHits, s.Major) }

func ratio(a, b int) float64 {
	if b == 0 {
		return 0
	}
	return float64(a) / float64(b)
}

// ScoreFamilies compares got(ua) with each case's family after
// normalising both; major lists the families the major score counts.
func ScoreFamilies(
	cases []Case, got func(string) string, major []string,
) Score {
	var s Score
	for _, c := range cases {
		want := Normalize(c.Want)
		hit := Normalize(got(c.UA)) == want
		s.All++
		if hit {
			s.AllHits++
		}
		if contains(major, want) {
			s.Major++
			if hit {
				s.MajorHits++
			}
		}
	}
	return s
}

// ScoreTypes compares got(ua) with each case's device type. A tablet
// counts as a mobile (see the package doc). Major counts every case
// but "other".
func ScoreTypes(cases []Case, got func(string) string) Score {
	var s Score
	for _, c := range cases {
		g := got(c.UA)
		hit := g == c.Want || c.Want == "mobile" && g == "tablet"
		s.All++
		if hit {
			s.AllHits++
		}
		if c.Want != "other" {
			s.Major++
			if hit {
				s.MajorHits++
			}
		}
	}
	return s
}
