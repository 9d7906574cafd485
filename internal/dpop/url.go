// Package dpop holds the request-side helpers of runtimeid's proof of
// possession: the normalised target URI that a DPoP proof's htu claim is
// compared with (RFC 9449 section 4.3), and the client-facing scheme and
// host that trusted proxies report.
package dpop

import (
	"errors"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"strconv"
	"strings"
)

// MaxForwardedBytes is the largest forwarding header read; a longer one
// counts as absent.
const MaxForwardedBytes = 8 << 10

// maxHops bounds the Forwarded elements walked.
const maxHops = 64

// Errors of [NormalizeHTU].
var (
	ErrHTU      = errors.New("dpop: htu is not an absolute http(s) URI")
	ErrHTUQuery = errors.New("dpop: htu has a query or fragment")
)

// NormalizeHTU parses a proof's htu claim and returns it normalised as
// [Normalize] does. RFC 9449 section 4.2 defines htu without query and
// fragment, so one that has either is refused rather than cut.
func NormalizeHTU(s string) (string, error) {
	u, err := url.Parse(s)
	if err != nil {
		return "", ErrHTU
	}
	switch {
	case u.RawQuery != "" || u.ForceQuery || u.Fragment != "":
		return "", ErrHTUQuery
	case strings.ContainsAny(s, "?#"):
		return "", ErrHTUQuery
	case u.Opaque != "" || u.User != nil || u.Host == "":
		return "", ErrHTU
	}
	return Normalize(u.Scheme, u.Host, u.EscapedPath())
}

// Normalize returns scheme://host/path normalised as RFC 3986 sections
// 6.2.2 and 6.2.3 describe: scheme and host in lower case, the default
// port dropped, percent-encodings in upper case and decoded where they
// stand for unreserved characters, dot segments removed, and an empty
// path made "/". The scheme must be http or https.
func Normalize(scheme, host, path string) (string, error) {
	scheme = strings.ToLower(scheme)
	if scheme != "http" && scheme != "https" {
		return "", ErrHTU
	}
	h, ok := normalizeHost(scheme, host)
	if !ok {
		return "", ErrHTU
	}
	p, ok := normalizePath(path)
	if !ok {
		return "", ErrHTU
	}
	return scheme + "://" + h + p, nil
}

// normalizeHost lowers host and drops the scheme's default port. It
// refuses anything that is not a plain host[:port].
func normalizeHost(scheme, host string) (string, bool) {
	if host == "" || strings.ContainsAny(host, "/?#@\\ \t") {
		return "", false
	}
	host = strings.ToLower(host)
	name, port := host, ""
	if i := strings.LastIndexByte(host, ':'); i >= 0 &&
		!strings.HasSuffix(host, "]") {
		name, port = host[:i], host[i+1:]
	}
	bracketed := strings.HasPrefix(name, "[") && strings.HasSuffix(name, "]")
	if name == "" || !validPort(port) || strings.Contains(name, ":") && !bracketed {
		return "", false
	}
	switch {
	case port == "":
	case scheme == "https" && port == "443":
	case scheme == "http" && port == "80":
	default:
		return name + ":" + port, true
	}
	return name, true
}

// validPort accepts "" or a decimal number up to 65535.
func validPort(p string) bool {
	if p == "" {
		return true
	}
	_, err := strconv.ParseUint(p, 10, 16)
	return err == nil
}

// normalizePath normalises percent-encodings and removes dot segments.
func normalizePath(p string) (string, bool) {
	var b strings.Builder
	for i := 0; i < len(p); i++ {
		c := p[i]
		if c != '%' {
			b.WriteByte(c)
			continue
		}
		if i+2 >= len(p) || !isHex(p[i+1]) || !isHex(p[i+2]) {
			return "", false
		}
		d := unhex(p[i+1])<<4 | unhex(p[i+2])
		if isUnreserved(d) {
			b.WriteByte(d)
		} else {
			b.WriteString("%" + strings.ToUpper(p[i+1:i+3]))
		}
		i += 2
	}
	out := removeDots(b.String())
	if out == "" {
		out = "/"
	}
	return out, true
}

// removeDots is remove_dot_segments of RFC 3986 section 5.2.4 for an
// absolute path.
func removeDots(p string) string {
	if !strings.Contains(p, ".") {
		return p
	}
	segs := strings.Split(p, "/")
	out := make([]string, 0, len(segs))
	for i, s := range segs {
		last := i == len(segs)-1
		switch s {
		case ".":
			if last {
				out = append(out, "")
			}
		case "..":
			if len(out) > 1 {
				out = out[:len(out)-1]
			}
			if last {
				out = append(out, "")
			}
		default:
			out = append(out, s)
		}
	}
	return strings.Join(out, "/")
}

func isHex(c byte) bool {
	return '0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F'
}

func unhex(c byte) byte {
	switch {
	case c <= '9':
		return c - '0'
	case c <= 'F':
		return c - 'A' + 10
	}
	return c - 'a' + 10
}

func isUnreserved(c byte) bool {
	return 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' ||
		'0' <= c && c <= '9' || strings.IndexByte("-._~", c) >= 0
}

// RequestURL returns the normalised target URI of r, without query: the
// URL the client used. Its scheme is https when r came over TLS; its
// host is r.Host. When the TCP peer is inside trusted, the scheme and
// host that the proxy reports replace them (see [Forwarded]).
func RequestURL(r *http.Request, trusted []netip.Prefix) (string, error) {
	scheme, host := "http", r.Host
	if r.TLS != nil {
		scheme = "https"
	}
	if peer, ok := Peer(r.RemoteAddr); ok && Trusted(trusted, peer) {
		scheme, host = Forwarded(r, trusted, scheme, host)
	}
	path := "/"
	if r.URL != nil {
		path = r.URL.EscapedPath()
	}
	return Normalize(scheme, host, path)
}

// Forwarded returns the scheme and host the client used, as the trusted
// proxies in front of the server report them, or scheme and host
// unchanged when they report nothing usable. Call it only when the TCP
// peer is trusted.
//
// The Forwarded header (RFC 7239) wins when present. Its elements are
// walked right to left, each added by one proxy, while the element's
// for= names a trusted proxy: the first element whose for= is not
// trusted was written by the proxy the client connected to, and its
// proto= and host= are used. Otherwise X-Forwarded-Proto and
// X-Forwarded-Host are read, and of a list the last value, the one the
// nearest proxy wrote. A proto other than http or https is ignored.
//
// BUG: X-Forwarded-Proto and X-Forwarded-Host carry no for= to tell
// which hop wrote which value, so behind several proxies that each
// append, the last value is the innermost proxy's view and the htu check
// fails (closed). Use Forwarded, or let only the outermost proxy set them.
//
// Lining the values up with X-Forwarded-For instead (taking the value as
// many places from the right as the first untrusted hop, when both
// lists are the same length) is left undone on purpose: it is safe only
// if every trusted proxy appends to all three headers alike, and nothing
// in the request says whether they do. Behind an edge that appends
// X-Forwarded-Host and an inner proxy that appends to X-Forwarded-For
// only, a client that sends "X-Forwarded-Host: evil.example" makes both
// lists two long, and the lined-up value is the client's, so a proof
// made for another host would pass; the last value, read today, is the
// edge's. Guessing wrong here fails open, the last value fails closed.
func Forwarded(r *http.Request, trusted []netip.Prefix, scheme, host string) (string, string) {
	if fwd := r.Header.Values("Forwarded"); len(fwd) > 0 {
		el, ok := clientElement(joinLines(fwd), trusted)
		if !ok {
			return scheme, host
		}
		return pick(el["proto"], scheme), pickHost(el["host"], host)
	}
	proto := last(joinLines(r.Header.Values("X-Forwarded-Proto")))
	fhost := last(joinLines(r.Header.Values("X-Forwarded-Host")))
	return pick(proto, scheme), pickHost(fhost, host)
}

func pick(proto, def string) string {
	proto = strings.ToLower(proto)
	if proto == "http" || proto == "https" {
		return proto
	}
	return def
}

func pickHost(h, def string) string {
	if h == "" {
		return def
	}
	return h
}

func last(list string) string {
	if i := strings.LastIndexByte(list, ','); i >= 0 {
		list = list[i+1:]
	}
	return strings.TrimSpace(list)
}

// clientElement returns the Forwarded element written by the proxy the
// client connected to.
func clientElement(header string, trusted []netip.Prefix) (map[string]string, bool) {
	if header == "" {
		return nil, false
	}
	els := splitQuoted(header, ',')
	if len(els) > maxHops {
		return nil, false
	}
	var el map[string]string
	for i := len(els) - 1; i >= 0; i-- {
		m, ok := parseElement(els[i])
		if !ok {
			return nil, false
		}
		el = m
		addr, ok := forNode(m["for"])
		if !ok || !Trusted(trusted, addr) {
			break
		}
	}
	return el, true
}

// parseElement parses one Forwarded element: pairs separated by ';'.
func parseElement(s string) (map[string]string, bool) {
	m := make(map[string]string, 4)
	for _, pair := range splitQuoted(s, ';') {
		k, v, ok := strings.Cut(strings.TrimSpace(pair), "=")
		if !ok || k == "" {
			return nil, false
		}
		k = strings.ToLower(k)
		if _, dup := m[k]; dup {
			return nil, false
		}
		m[k] = unquote(v)
	}
	return m, true
}

// splitQuoted splits s at sep outside quoted strings.
func splitQuoted(s string, sep byte) []string {
	var out []string
	start, quoted := 0, false
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case c == '\\' && quoted:
			i++
		case c == '"':
			quoted = !quoted
		case c == sep && !quoted:
			out = append(out, s[start:i])
			start = i + 1
		}
	}
	return append(out, s[start:])
}

func unquote(v string) string {
	if len(v) < 2 || v[0] != '"' || v[len(v)-1] != '"' {
		return v
	}
	v = v[1 : len(v)-1]
	if !strings.Contains(v, `\`) {
		return v
	}
	var b strings.Builder
	for i := 0; i < len(v); i++ {
		if v[i] == '\\' && i+1 < len(v) {
			i++
		}
		b.WriteByte(v[i])
	}
	return b.String()
}

// forNode parses a for= node: an IPv4 address, a bracketed IPv6
// address, either with a port. Obfuscated names and "unknown" fail.
func forNode(s string) (netip.Addr, bool) {
	if ap, err := netip.ParseAddrPort(s); err == nil {
		return ap.Addr().Unmap(), true
	}
	s = strings.TrimSuffix(strings.TrimPrefix(s, "["), "]")
	a, err := netip.ParseAddr(s)
	if err != nil || a.Zone() != "" {
		return netip.Addr{}, false
	}
	return a.Unmap(), true
}

// joinLines joins a header's lines, or returns "" when they are longer
// than [MaxForwardedBytes].
func joinLines(lines []string) string {
	n := 0
	for _, l := range lines {
		n += len(l) + 1
		if n > MaxForwardedBytes+1 {
			return ""
		}
	}
	return strings.Join(lines, ",")
}

// Peer parses a RemoteAddr: "host:port", "[v6]:port" or a bare IP.
func Peer(s string) (netip.Addr, bool) {
	if ap, err := netip.ParseAddrPort(s); err == nil {
		return ap.Addr().Unmap().WithZone(""), true
	}
	if a, err := netip.ParseAddr(s); err == nil {
		return a.Unmap().WithZone(""), true
	}
	host, _, err := net.SplitHostPort(s)
	if err != nil {
		return netip.Addr{}, false
	}
	a, err := netip.ParseAddr(host)
	if err != nil {
		return netip.Addr{}, false
	}
	return a.Unmap().WithZone(""), true
}

// Trusted reports whether a is inside one of the prefixes.
func Trusted(prefixes []netip.Prefix, a netip.Addr) bool {
	for _, p := range prefixes {
		if p.Contains(a) {
			return true
		}
	}
	return false
}
