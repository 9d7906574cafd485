package signals

import (
	"net/netip"
	"strings"
)

// The parsers below read forwarding headers written by proxies, but a
// client can send them too, so they accept only what the grammar allows
// and keep at most MaxForwardedHops hops, counted from the right.
// Every split returns its hops right to left: hops[0] was added by the
// proxy nearest to us.

// splitXFF splits an X-Forwarded-For value on commas. It reports false
// for an empty value.
func splitXFF(s string) ([]string, bool) {
	return appendXFF(make([]string, 0, 4), s)
}

// appendXFF is splitXFF appending to hops, so that a caller can keep the
// hops on its stack.
func appendXFF(hops []string, s string) ([]string, bool) {
	if strings.TrimSpace(s) == "" {
		return nil, false
	}
	for len(hops) < MaxForwardedHops {
		i := strings.LastIndexByte(s, ',')
		if hop := trimOWS(s[i+1:]); hop != "" {
			hops = append(hops, hop)
		}
		if i < 0 {
			break
		}
		s = s[:i]
	}
	return hops, true
}

// splitForwarded splits a Forwarded value (RFC 7239 section 4) into its
// elements, honouring quoted strings, in which a comma is data. It
// reports false for an empty value or an unterminated quoted string.
func splitForwarded(s string) ([]string, bool) {
	if strings.TrimSpace(s) == "" {
		return nil, false
	}
	var elems []string
	start, quoted := 0, false
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case quoted && c == '\\':
			i++ // quoted-pair: the next byte is data
		case c == '"':
			quoted = !quoted
		case !quoted && c == ',':
			elems = keepLast(appendElem(elems, s[start:i]))
			start = i + 1
		}
	}
	if quoted {
		return nil, false
	}
	elems = appendElem(elems, s[start:])
	if len(elems) > MaxForwardedHops {
		elems = elems[len(elems)-MaxForwardedHops:]
	}
	reverse(elems)
	return elems, true
}

// appendElem appends a trimmed element, skipping empty ones as RFC 9110
// section 5.6.1 asks of a list.
func appendElem(elems []string, e string) []string {
	if e = trimOWS(e); e == "" {
		return elems
	}
	return append(elems, e)
}

// keepLast bounds the slice splitForwarded builds: when it holds twice
// the hop limit, the older half is dropped.
func keepLast(elems []string) []string {
	if len(elems) < 2*MaxForwardedHops {
		return elems
	}
	n := copy(elems, elems[len(elems)-MaxForwardedHops:])
	return elems[:n]
}

func reverse(s []string) {
	for i, j := 0, len(s)-1; i < j; i, j = i+1, j-1 {
		s[i], s[j] = s[j], s[i]
	}
}

// forwardedFor returns the address of one Forwarded element's for=
// parameter. It reports false when the element is malformed, has no
// for= or more than one (RFC 7239 section 4), or names an obfuscated or
// unknown node (section 6).
func forwardedFor(elem string) (netip.Addr, bool) {
	var value string
	found := false
	for elem != "" {
		var pair string
		pair, elem = nextPair(elem)
		if pair = trimOWS(pair); pair == "" {
			continue // an empty pair is allowed
		}
		name, raw, ok := strings.Cut(pair, "=")
		if !ok || !isToken(name) {
			return netip.Addr{}, false
		}
		v, ok := paramValue(raw)
		if !ok {
			return netip.Addr{}, false
		}
		if !strings.EqualFold(name, "for") {
			continue
		}
		if found {
			return netip.Addr{}, false
		}
		value, found = v, true
	}
	if !found {
		return netip.Addr{}, false
	}
	return forwardedNode(value)
}

// nextPair cuts the element at the first semicolon outside a quoted
// string. The caller has checked that quotes are balanced.
func nextPair(elem string) (pair, rest string) {
	quoted := false
	for i := 0; i < len(elem); i++ {
		switch c := elem[i]; {
		case quoted && c == '\\':
			i++
		case c == '"':
			quoted = !quoted
		case !quoted && c == ';':
			return elem[:i], elem[i+1:]
		}
	}
	return elem, ""
}

// paramValue decodes a value: a token or a quoted-string (RFC 9110
// section 5.6.4).
func paramValue(raw string) (string, bool) {
	if isToken(raw) {
		return raw, true
	}
	n := len(raw)
	if n < 2 || raw[0] != '"' || raw[n-1] != '"' {
		return "", false
	}
	var b strings.Builder
	for i := 1; i < n-1; i++ {
		c := raw[i]
		if c == '\\' {
			if i++; i == n-1 {
				return "", false
			}
			c = raw[i]
		} else if c == '"' {
			return "", false
		}
		b.WriteByte(c)
	}
	return b.String(), true
}

// forwardedNode parses a node (RFC 7239 section 6): an IPv4 address or a
// bracketed IPv6 address, each with an optional port.
func forwardedNode(s string) (netip.Addr, bool) {
	host, port := s, ""
	if strings.HasPrefix(s, "[") {
		end := strings.IndexByte(s, ']')
		if end < 0 {
			return netip.Addr{}, false
		}
		host, port = s[1:end], s[end+1:]
	} else if i := strings.IndexByte(s, ':'); i >= 0 {
		host, port = s[:i], s[i:]
	}
	if port != "" && !isNodePort(port) {
		return netip.Addr{}, false
	}
	a, err := netip.ParseAddr(host)
	if err != nil || a.Is6() != strings.HasPrefix(s, "[") {
		return netip.Addr{}, false
	}
	return normalizeAddr(a), true
}

// isNodePort reports whether s is ":" followed by 1 to 5 digits or by an
// obfuscated port ("_" and letters, digits, ".", "_", "-").
func isNodePort(s string) bool {
	if len(s) < 2 || s[0] != ':' {
		return false
	}
	s = s[1:]
	if s[0] == '_' {
		return len(s) > 1 && allBytes(s[1:], isObfChar)
	}
	return len(s) <= 5 && allBytes(s, isDigit)
}

// parseNode parses one X-Forwarded-For entry. There is no standard, so
// it accepts what proxies write: an IP address, optionally bracketed if
// IPv6, optionally with a port.
func parseNode(s string) (netip.Addr, bool) {
	if a, err := netip.ParseAddr(s); err == nil {
		return normalizeAddr(a), true
	}
	if ap, err := netip.ParseAddrPort(s); err == nil {
		return normalizeAddr(ap.Addr()), true
	}
	n := len(s)
	if n > 2 && s[0] == '[' && s[n-1] == ']' {
		a, err := netip.ParseAddr(s[1 : n-1])
		if err == nil && a.Is6() {
			return normalizeAddr(a), true
		}
	}
	return netip.Addr{}, false
}

// trimOWS trims optional whitespace: spaces and horizontal tabs.
func trimOWS(s string) string {
	return strings.Trim(s, " \t")
}

func isToken(s string) bool {
	return s != "" && allBytes(s, isTokenChar)
}

func allBytes(s string, ok func(byte) bool) bool {
	for i := 0; i < len(s); i++ {
		if !ok(s[i]) {
			return false
		}
	}
	return true
}

func isDigit(c byte) bool { return '0' <= c && c <= '9' }

func isAlnum(c byte) bool {
	return isDigit(c) || 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z'
}

func isObfChar(c byte) bool {
	return isAlnum(c) || c == '.' || c == '_' || c == '-'
}

// isTokenChar reports whether c is a tchar (RFC 9110 section 5.6.2).
func isTokenChar(c byte) bool {
	return isAlnum(c) || strings.IndexByte("!#$%&'*+-.^_`|~", c) >= 0
}
