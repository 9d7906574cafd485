package signals

import (
	"regexp/syntax"
	"strings"

	"github.com/ua-parser/uap-go/uaparser"
)

// uap-core's rules are hundreds of regular expressions tried in order
// until one matches, and most of the cost of a parse is running the
// ones that cannot match. Almost every rule needs some literal text
// ("Firefox", "Edg/", "Android"), so a substring search rules it out
// before its regular expression runs. The search is a necessary
// condition of a match, never a sufficient one: the rule that matches
// is the one uap-go would pick, and the result is the same, which
// TestPrefilterMatchesUAPGo checks on every test user agent.

// maxAnyOf caps how many alternatives a rule's literal set may hold.
// uap-core has rules that list a hundred crawler names; checking each
// name is still far cheaper than running such a rule.
const maxAnyOf = 256

// uaRule is one of uap-core's user-agent rules with its literals.
type uaRule struct {
	anyOf []string // one must occur in the folded UA; nil: always run
	match func(string, *uaparser.UserAgent)
}

type osRule struct {
	anyOf []string
	match func(string, *uaparser.Os)
}

// prefilter runs uap-go's rules in uap-go's order, skipping the rules
// whose literals are absent.
type prefilter struct {
	ua []uaRule
	os []osRule
}

func newPrefilter(p *uaparser.Parser) *prefilter {
	f := &prefilter{}
	for _, r := range p.UA {
		f.ua = append(f.ua, uaRule{literalsOf(r.Reg.String()), r.Match})
	}
	for _, r := range p.OS {
		f.os = append(f.os, osRule{literalsOf(r.Reg.String()), r.Match})
	}
	return f
}

// userAgent is uaparser.Parser.ParseUserAgent without its cache.
func (f *prefilter) userAgent(ua, folded string) *uaparser.UserAgent {
	res := new(uaparser.UserAgent)
	for _, r := range f.ua {
		if !containsOne(folded, r.anyOf) {
			continue
		}
		// uap-go keeps what a match with an empty family wrote
		// and tries the next rule; so does this loop.
		if r.match(ua, res); res.Family != "" {
			return res
		}
	}
	res.Family = "Other"
	return res
}

// osFamily is uaparser.Parser.ParseOs without its cache.
func (f *prefilter) osFamily(ua, folded string) *uaparser.Os {
	res := new(uaparser.Os)
	for _, r := range f.os {
		if !containsOne(folded, r.anyOf) {
			continue
		}
		if r.match(ua, res); res.Family != "" {
			return res
		}
	}
	res.Family = "Other"
	return res
}

func containsOne(s string, anyOf []string) bool {
	if anyOf == nil {
		return true
	}
	for _, l := range anyOf {
		if strings.Contains(s, l) {
			return true
		}
	}
	return false
}

// foldReplacer maps the two non-ASCII runes that Go's case folding
// equates with ASCII letters (KELVIN SIGN with k, LATIN SMALL LETTER
// LONG S with s) to those letters, so a case-insensitive rule that
// would match them is not skipped.
var foldReplacer = strings.NewReplacer("\u212a", "k", "\u017f", "s")

// foldUA lowers the ASCII letters of ua. A literal found in ua in any
// case, or through the folds above, is found in the result in lower
// case, which is what the literals are stored as.
func foldUA(ua string) string {
	b := []byte(ua)
	ascii := true
	for i, c := range b {
		switch {
		case c >= 'A' && c <= 'Z':
			b[i] = c + 'a' - 'A'
		case c >= 0x80:
			ascii = false
		}
	}
	if ascii {
		return string(b)
	}
	return foldReplacer.Replace(string(b))
}

// literalsOf returns texts, in lower case, one of which occurs in every
// string the expression matches, or nil when it cannot tell.
func literalsOf(expr string) []string {
	re, err := syntax.Parse(expr, syntax.Perl)
	if err != nil {
		return nil
	}
	return required(re.Simplify())
}

// required is literalsOf on a parsed expression.
func required(re *syntax.Regexp) []string {
	switch re.Op {
	case syntax.OpLiteral:
		return literal(re.Rune)
	case syntax.OpCapture, syntax.OpPlus:
		return required(re.Sub[0])
	case syntax.OpRepeat:
		if re.Min >= 1 {
			return required(re.Sub[0])
		}
	case syntax.OpConcat:
		return requiredConcat(re.Sub)
	case syntax.OpAlternate:
		return requiredAlternate(re.Sub)
	}
	return nil
}

// requiredConcat picks the most selective requirement among the parts
// of a concatenation, joining runs of adjacent literals first.
func requiredConcat(subs []*syntax.Regexp) []string {
	var best []string
	var run []rune
	consider := func(c []string) {
		if better(c, best) {
			best = c
		}
	}
	for _, s := range subs {
		if s.Op == syntax.OpLiteral {
			run = append(run, s.Rune...)
			continue
		}
		consider(literal(run))
		run = nil
		consider(required(s))
	}
	consider(literal(run))
	return best
}

func requiredAlternate(subs []*syntax.Regexp) []string {
	if len(subs) > maxAnyOf {
		return nil
	}
	var all []string
	for _, s := range subs {
		r := required(s)
		if r == nil {
			return nil
		}
		all = append(all, r...)
	}
	if len(all) > maxAnyOf {
		return nil
	}
	return all
}

// better prefers the set whose shortest literal is longer.
func better(c, best []string) bool {
	if c == nil {
		return false
	}
	return best == nil || shortest(c) > shortest(best)
}

func shortest(set []string) int {
	n := -1
	for _, s := range set {
		if n < 0 || len(s) < n {
			n = len(s)
		}
	}
	return n
}

// literal returns the runes as a one-element set in lower case, or nil
// when they are empty or not all ASCII (foldUA folds only ASCII).
func literal(rs []rune) []string {
	if len(rs) == 0 {
		return nil
	}
	b := make([]byte, len(rs))
	for i, r := range rs {
		if r >= 0x80 {
			return nil
		}
		b[i] = byte(r)
		if r >= 'A' && r <= 'Z' {
			b[i] += 'a' - 'A'
		}
	}
	return []string{string(b)}
}
