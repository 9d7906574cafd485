package signals

// A parser for the subset of RFC 8941 structured fields that client
// hints use: a List of Items with Parameters. Inner lists are refused.
// It works on bytes, never allocates more than the items it returns,
// and fails on anything RFC 8941 calls a parse failure.

// sfItem is one member of a list. value is the bare item's text: a
// string's content unescaped, a token, a number or a boolean ("?1").
type sfItem struct {
	value    string
	isString bool

	// v is the "v" parameter when it is a string: the version in
	// Sec-CH-UA.
	v string
}

type sfParser struct {
	s   string
	pos int
}

// parseSFList parses a List (RFC 8941 section 4.2.1). It gives up after
// MaxClientHintBrands+1 members, which is already too many.
func parseSFList(s string) ([]sfItem, bool) {
	p := &sfParser{s: s}
	p.skip(" ")
	var items []sfItem
	for p.pos < len(p.s) {
		if len(items) > MaxClientHintBrands {
			return nil, false
		}
		it, ok := p.item()
		if !ok {
			return nil, false
		}
		items = append(items, it)

		p.skip(" \t")
		if p.pos == len(p.s) {
			return items, true
		}
		if p.s[p.pos] != ',' {
			return nil, false
		}
		p.pos++
		p.skip(" \t")
		if p.pos == len(p.s) {
			return nil, false // a trailing comma
		}
	}
	return items, len(items) > 0
}

func (p *sfParser) skip(set string) {
	for p.pos < len(p.s) && containsByte(set, p.s[p.pos]) {
		p.pos++
	}
}

func containsByte(s string, c byte) bool {
	for i := 0; i < len(s); i++ {
		if s[i] == c {
			return true
		}
	}
	return false
}

// item parses an Item: a bare item and its parameters.
func (p *sfParser) item() (sfItem, bool) {
	var it sfItem
	var ok bool
	it.value, it.isString, ok = p.bareItem()
	if !ok {
		return it, false
	}
	for p.pos < len(p.s) && p.s[p.pos] == ';' {
		p.pos++
		p.skip(" ")
		key, ok := p.key()
		if !ok {
			return it, false
		}
		val, isString := "?1", false // a parameter without value
		if p.pos < len(p.s) && p.s[p.pos] == '=' {
			p.pos++
			if val, isString, ok = p.bareItem(); !ok {
				return it, false
			}
		}
		if key == "v" && isString {
			it.v = val
		}
	}
	return it, true
}

// bareItem parses a string, token, number, boolean or byte sequence.
func (p *sfParser) bareItem() (string, bool, bool) {
	if p.pos >= len(p.s) {
		return "", false, false
	}
	switch c := p.s[p.pos]; {
	case c == '"':
		v, ok := p.str()
		return v, true, ok
	case c == '-' || isDigit(c):
		v, ok := p.span(1, isNumberChar, 20)
		return v, false, ok
	case c == '?':
		v, ok := p.boolean()
		return v, false, ok
	case c == ':':
		v, ok := p.bytes()
		return v, false, ok
	case c == '*' || isAlpha(c):
		v, ok := p.span(1, isSFTokenChar, maxHintString)
		return v, false, ok
	}
	return "", false, false
}

// str parses a String (RFC 8941 section 4.2.5): printable ASCII with
// \" and \\ as the only escapes.
func (p *sfParser) str() (string, bool) {
	p.pos++ // the opening quote
	var b []byte
	for p.pos < len(p.s) && len(b) <= maxHintString {
		c := p.s[p.pos]
		p.pos++
		switch {
		case c == '"':
			return string(b), true
		case c == '\\':
			if p.pos == len(p.s) {
				return "", false
			}
			c = p.s[p.pos]
			p.pos++
			if c != '"' && c != '\\' {
				return "", false
			}
		case c < 0x20 || c > 0x7e:
			return "", false
		}
		b = append(b, c)
	}
	return "", false // unterminated, or over maxHintString
}

// span takes the first byte (already checked) and every following
// byte that ok accepts, failing beyond max bytes.
func (p *sfParser) span(first int, ok func(byte) bool, max int) (string, bool) {
	start := p.pos
	p.pos += first
	for p.pos < len(p.s) && ok(p.s[p.pos]) {
		p.pos++
	}
	return p.s[start:p.pos], p.pos-start <= max
}

func (p *sfParser) boolean() (string, bool) {
	if p.pos+1 >= len(p.s) || p.s[p.pos+1] != '0' && p.s[p.pos+1] != '1' {
		return "", false
	}
	p.pos += 2
	return p.s[p.pos-2 : p.pos], true
}

func (p *sfParser) bytes() (string, bool) {
	v, _ := p.span(1, isBase64Char, len(p.s))
	if p.pos >= len(p.s) || p.s[p.pos] != ':' {
		return "", false
	}
	p.pos++
	return v[1:], true
}

// key parses a parameter key: lcalpha or "*", then lcalpha, digits,
// "_", "-", "." or "*".
func (p *sfParser) key() (string, bool) {
	if p.pos >= len(p.s) {
		return "", false
	}
	if c := p.s[p.pos]; c != '*' && (c < 'a' || c > 'z') {
		return "", false
	}
	return p.span(1, isKeyChar, maxHintString)
}

func isAlpha(c byte) bool { return c|0x20 >= 'a' && c|0x20 <= 'z' }

func isNumberChar(c byte) bool { return isDigit(c) || c == '.' }

func isSFTokenChar(c byte) bool {
	return isTokenChar(c) || c == ':' || c == '/'
}

func isKeyChar(c byte) bool {
	return c >= 'a' && c <= 'z' || isDigit(c) ||
		c == '_' || c == '-' || c == '.' || c == '*'
}

func isBase64Char(c byte) bool {
	return isAlnum(c) || c == '+' || c == '/' || c == '='
}
