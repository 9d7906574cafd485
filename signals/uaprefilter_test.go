package signals

import (
	"fmt"
	"os"
	"path/filepath"
	"regexp/syntax"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"github.com/ua-parser/uap-go/uaparser"
	"gopkg.in/yaml.v3"
)

// testUserAgents returns every user agent of the uap-core and woothee
// test sets in testdata.
func testUserAgents(t testing.TB) []string {
	t.Helper()
	var uas []string
	for _, f := range []string{
		"testdata/uap-core/test_ua.yaml", "testdata/uap-core/test_os.yaml",
	} {
		var doc struct {
			Cases []struct {
				UA string `yaml:"user_agent_string"`
			} `yaml:"test_cases"`
		}
		b, err := os.ReadFile(f)
		require.NoError(t, err)
		require.NoError(t, yaml.Unmarshal(b, &doc))
		for _, c := range doc.Cases {
			uas = append(uas, c.UA)
		}
	}
	files, err := filepath.Glob("testdata/woothee/*.yaml")
	require.NoError(t, err)
	for _, f := range files {
		var doc []struct {
			Target string `yaml:"target"`
		}
		b, err := os.ReadFile(f)
		require.NoError(t, err)
		require.NoError(t, yaml.Unmarshal(b, &doc))
		for _, c := range doc {
			uas = append(uas, c.Target)
		}
	}
	require.Greater(t, len(uas), 1000)
	return uas
}

// The prefilter must give exactly uap-go's answer: it only skips rules
// that cannot match.
func TestPrefilterMatchesUAPGo(t *testing.T) {
	if raceEnabled {
		t.Skip("thousands of regexp-heavy parses; nothing to race")
	}
	p, err := uaparser.New(uaparser.WithCacheSize(1))
	require.NoError(t, err)
	f := newPrefilter(p)
	extra := []string{
		"", "x", "\xff\xfe", "Mozilla/5.0 (\u212aindle; \u017filk)",
		"FIREFOX/12.0", "googlebot", uaChromeWin, uaIPhone,
	}
	for _, ua := range append(testUserAgents(t), extra...) {
		ua = truncateUA(ua)
		folded := foldUA(ua)
		require.Equal(t, p.ParseUserAgent(ua), f.userAgent(ua, folded), ua)
		require.Equal(t, p.ParseOs(ua), f.osFamily(ua, folded), ua)
	}
}

func TestLiteralsOf(t *testing.T) {
	// The parser factors out a common prefix: the "w" is required.
	words := make([]string, maxAnyOf+1)
	for i := range words {
		words[i] = fmt.Sprintf("w%dx", i)
	}
	long := "(" + strings.Join(words, "|") + ")"
	tests := map[string][]string{
		`Firefox/(\d+)`:          {"firefox/"},
		`(?i)(Opera) Mini/(\d+)`: {" mini/"},
		// The parser factors out the common "C".
		`(?:Chrome|CriOS)/(\d+)`:       {"hrome", "rios"},
		`(?:Chrome|.*)/(\d+)`:          {"/"},
		`(?:Chrome|.*)`:                nil,
		`(a)?b`:                        {"b"},
		`x*`:                           nil,
		`(Kindle)+`:                    {"kindle"},
		`Fire(?:fox){2,3}`:             {"foxfox"},
		`(ab|cd|ef|gh|ij|kl|mn|op|qr)`: {"ab", "cd", "ef", "gh", "ij", "kl", "mn", "op", "qr"},
		`(ab|cd)(x|.)`:                 {"ab", "cd"},
		`Ünï`:                          nil,
		`[`:                            nil,
	}
	tests[long] = []string{"w"}
	for expr, want := range tests {
		assert.Equal(t, want, literalsOf(expr), expr)
	}
}

// Past maxAnyOf alternatives, checking each costs more than it saves.
func TestRequiredAlternateCap(t *testing.T) {
	subs := make([]*syntax.Regexp, maxAnyOf+1)
	for i := range subs {
		subs[i] = &syntax.Regexp{Op: syntax.OpLiteral, Rune: []rune("ab")}
	}
	assert.Nil(t, requiredAlternate(subs))
	assert.Len(t, requiredAlternate(subs[:maxAnyOf]), maxAnyOf)
}

func TestFoldUA(t *testing.T) {
	assert.Equal(t, "abc/1 (x)", foldUA("AbC/1 (X)"))
	assert.Equal(t, "ks é", foldUA("\u212a\u017f é"))
}

// How many rules have literals: the prefilter is only worth it when
// most do.
func TestPrefilterCoverage(t *testing.T) {
	f := uapFilter()
	none := 0
	for _, r := range f.ua {
		if r.anyOf == nil {
			none++
		}
	}
	t.Logf("user-agent rules: %d, without literals: %d", len(f.ua), none)
	assert.Less(t, none, len(f.ua)/10)
}

// BenchmarkUncachedParse compares uap-go's own loop with the
// prefiltered one, both without a cache, over every test user agent.
func BenchmarkUncachedParse(b *testing.B) {
	uas := testUserAgents(b)
	p, err := uaparser.New(uaparser.WithCacheSize(1))
	require.NoError(b, err)
	f := newPrefilter(p)
	b.Run("uap-go", func(b *testing.B) {
		i := 0
		for b.Loop() {
			ua := truncateUA(uas[i%len(uas)])
			p.ParseUserAgent(ua)
			p.ParseOs(ua)
			i++
		}
	})
	b.Run("prefilter", func(b *testing.B) {
		i := 0
		for b.Loop() {
			ua := truncateUA(uas[i%len(uas)])
			folded := foldUA(ua)
			f.userAgent(ua, folded)
			f.osFamily(ua, folded)
			i++
		}
	})
}
