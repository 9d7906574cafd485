package main

import (
	"bytes"
	"sync"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestCombinedStopsAttacksNotUsers is the acceptance test: on
// the replay of real traffic, the rules and the model together stop at
// least 95% of attacks and challenge at most 1% of legitimate
// requests.
func TestCombinedStopsAttacksNotUsers(t *testing.T) {
	p, err := loadPopulation("data/apache_logs")
	require.NoError(t, err)

	// The modes share nothing but the read-only population, so they
	// run side by side.
	modes := []Mode{Rules, Model, Combined}
	results := make([]*Result, len(modes))
	errs := make([]error, len(modes))
	var wg sync.WaitGroup
	for i, m := range modes {
		wg.Go(func() { results[i], errs[i] = Run(p, m) })
	}
	wg.Wait()
	for _, err := range errs {
		require.NoError(t, err)
	}
	var out bytes.Buffer
	report(&out, p, results)
	t.Log("\n" + out.String())

	c := results[2]
	assert.GreaterOrEqual(t, c.AttackStopRate(), 0.95)
	assert.LessOrEqual(t, c.LegitChallengeRate(), 0.01)
	assert.Greater(t, c.AUC, 0.99)
}

func TestDevice(t *testing.T) {
	tests := []struct {
		ua, browser, version, os, osVersion, typ string
	}{
		{windowsChrome, "Chrome", "32", "Windows", "6.1", "desktop"},
		{iPhone, "Safari", "7", "iOS", "7", "mobile"},
		{"Mozilla/5.0 (X11; Linux x86_64; rv:27.0) Gecko/20100101 Firefox/27.0",
			"Firefox", "27", "Linux", "", "desktop"},
		{"Mozilla/5.0 (compatible; MSIE 9.0; Windows NT 6.1; WOW64; Trident/5.0)",
			"IE", "9", "Windows", "6.1", "desktop"},
	}
	for _, tt := range tests {
		d := device(tt.ua)
		assert.Equal(t, []string{tt.browser, tt.version, tt.os, tt.osVersion, tt.typ},
			[]string{d.Browser, d.BrowserVersion, d.OS, d.OSVersion, d.Type}, tt.ua)
	}
	assert.Equal(t, "Mozilla/5.0 (X11; Linux x86_64; rv:27.0) Gecko/20100101 Firefox/28.0",
		bumpMajor("Mozilla/5.0 (X11; Linux x86_64; rv:27.0) Gecko/20100101 Firefox/27.0"))
}

func TestAUC(t *testing.T) {
	assert.Equal(t, 1.0, auc([]float64{0, 0.1}, []float64{0.5, 0.9}))
	assert.Equal(t, 0.5, auc([]float64{0.5}, []float64{0.5}))
	assert.Equal(t, 0.875, auc([]float64{0.2, 0.6}, []float64{0.6, 0.9}))
}
