package signals

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"strings"

	"github.com/runtimeid/runtimeid"
)

// ErrInvalidPrefix means an entry of a trusted proxy list is neither a
// CIDR prefix nor an IP address. [ParsePrefixes] wraps it.
var ErrInvalidPrefix = errors.New("signals: invalid trusted proxy")

// ErrTrustsEveryone means a trusted proxy list holds 0.0.0.0/0 or ::/0.
// Trusting every peer's forwarding headers lets any client choose its
// own address, so [ParsePrefixes] refuses it. A deployer whose server
// is reachable only through its proxies, and who accepts that risk,
// builds the prefix in code and passes it to [NewClientIP].
var ErrTrustsEveryone = errors.New("signals: trusted proxy list trusts every address")

// The limits on forwarding headers. They bound the work an attacker can
// cause with a long or repeated header.
const (
	// MaxForwardedBytes is the largest forwarding header the collector
	// reads, all lines of one header together. A larger one is ignored
	// as a whole, and the peer's address is used.
	MaxForwardedBytes = 8 << 10

	// MaxForwardedHops is how many hops, counted from the right, the
	// collector parses. A walk that needs more stops at the last hop
	// it reached.
	MaxForwardedHops = 64
)

// ClientIP finds the client's address and stores it in
// [runtimeid.Signals.ClientIP].
//
// What it trusts: the TCP peer ([http.Request.RemoteAddr]) always, and
// the forwarding headers only when the peer is inside one of the trusted
// prefixes. With no trusted prefixes, Forwarded and X-Forwarded-For are
// ignored entirely, so a client cannot choose its own address.
//
// When the peer is trusted, the collector reads the Forwarded header
// (RFC 7239) if any Forwarded line is present, otherwise X-Forwarded-For;
// it never mixes the two, because a proxy that writes one need not strip
// a forged copy of the other. Several lines of a header are joined in
// order. It walks the hops from right to left, skipping trusted ones; the
// first untrusted hop is the client. The walk stops early, and the client
// is the last trusted address reached, at a hop it cannot use: an
// obfuscated or "unknown" Forwarded identifier, a Forwarded element
// without for=, or anything that does not parse. So a garbled header from
// a trusted proxy yields that proxy's address, never an address the
// client wrote. A header over [MaxForwardedBytes] is ignored and the peer
// is the client; at most [MaxForwardedHops] hops are parsed.
//
// Addresses are normalised: IPv4-mapped IPv6 addresses are unmapped and
// IPv6 zones (such as %eth0) are stripped, since a zone names an
// interface on the host that saw the address and says nothing about who
// the client is.
//
// How it fails: a RemoteAddr that does not parse (a Unix socket, a test
// request with none) leaves ClientIP invalid and Collect returns nil; the
// evaluation goes on without network signals, and a policy that needs an
// address must treat an invalid one as unknown. Collect never returns an
// error.
//
// For an evaluation without a request, Collect only normalises the
// ClientIP the caller supplied.
type ClientIP struct {
	trusted []netip.Prefix
}

var _ runtimeid.SignalCollector = (*ClientIP)(nil)

// NewClientIP returns a collector that trusts forwarding headers from
// peers inside the prefixes. The slice is copied. IPv4-mapped prefixes
// are turned into IPv4 prefixes; an invalid prefix matches nothing.
func NewClientIP(trusted []netip.Prefix) *ClientIP {
	c := &ClientIP{}
	for _, p := range trusted {
		if p = normalizePrefix(p); p.IsValid() {
			c.trusted = append(c.trusted, p)
		}
	}
	return c
}

// ParsePrefixes parses a comma-separated list of CIDR prefixes or bare IP
// addresses, such as "10.0.0.0/8, 192.0.2.1, 2001:db8::/32". A bare
// address is a prefix of one address. Space around entries is ignored;
// an empty list gives nil. A bad entry gives an error that names it and
// wraps [ErrInvalidPrefix]; a prefix of length zero (0.0.0.0/0, ::/0)
// gives one that wraps [ErrTrustsEveryone] too.
func ParsePrefixes(csv string) ([]netip.Prefix, error) {
	var out []netip.Prefix
	if strings.TrimSpace(csv) == "" {
		return nil, nil
	}
	for i, entry := range strings.Split(csv, ",") {
		entry = strings.TrimSpace(entry)
		p, err := parsePrefix(entry)
		if err != nil {
			return nil, fmt.Errorf("%w: entry %d %q: %w",
				ErrInvalidPrefix, i+1, entry, err)
		}
		if p.Bits() == 0 {
			return nil, fmt.Errorf("%w: %w: entry %d %q: list your proxies' "+
				"prefixes instead", ErrInvalidPrefix, ErrTrustsEveryone, i+1, entry)
		}
		out = append(out, p)
	}
	return out, nil
}

func parsePrefix(s string) (netip.Prefix, error) {
	if s == "" {
		return netip.Prefix{}, errors.New("empty entry")
	}
	if strings.Contains(s, "/") {
		p, err := netip.ParsePrefix(s)
		if err != nil {
			return netip.Prefix{}, err
		}
		return normalizePrefix(p), nil
	}
	a, err := netip.ParseAddr(s)
	if err != nil {
		return netip.Prefix{}, err
	}
	if a.Zone() != "" {
		return netip.Prefix{}, errors.New("zone not allowed")
	}
	a = a.Unmap()
	return netip.PrefixFrom(a, a.BitLen()), nil
}

// normalizePrefix masks p and turns an IPv4-mapped prefix into IPv4.
func normalizePrefix(p netip.Prefix) netip.Prefix {
	if !p.IsValid() {
		return p
	}
	a, bits := p.Addr(), p.Bits()
	if a.Is4In6() && bits >= 96 {
		a, bits = a.Unmap(), bits-96
	}
	return netip.PrefixFrom(a, bits).Masked()
}

// Collect implements [runtimeid.SignalCollector].
func (c *ClientIP) Collect(_ context.Context, ev *runtimeid.Evaluation) error {
	if ev.Request == nil {
		ev.Signals.ClientIP = normalizeAddr(ev.Signals.ClientIP)
		return nil
	}
	ev.Signals.ClientIP = c.Resolve(ev.Request)
	return nil
}

// Resolve returns the client's address for r, as Collect would store it.
// It is invalid when the peer's address does not parse.
func (c *ClientIP) Resolve(r *http.Request) netip.Addr {
	peer, ok := parsePeer(r.RemoteAddr)
	if !ok {
		return netip.Addr{}
	}
	if !c.isTrusted(peer) {
		return peer
	}

	// Prefer Forwarded: it is the standard, and choosing one header
	// means a forged copy of the other is never read.
	if fwd := r.Header.Values("Forwarded"); len(fwd) > 0 {
		hops, ok := splitForwarded(joinLines(fwd))
		if !ok {
			return peer
		}
		return c.walk(peer, hops, forwardedFor)
	}
	xff := r.Header.Values("X-Forwarded-For")
	if len(xff) == 0 {
		return peer
	}
	var buf [4]string
	hops, ok := appendXFF(buf[:0], joinLines(xff))
	if !ok {
		return peer
	}
	return c.walk(peer, hops, parseNode)
}

// walk goes through hops, given right to left, while the current
// address is trusted. It stops at the first untrusted address, or at a hop that
// parse refuses, and returns the last address it reached.
func (c *ClientIP) walk(
	peer netip.Addr, hops []string,
	parse func(string) (netip.Addr, bool),
) netip.Addr {
	cur := peer
	for _, hop := range hops {
		if !c.isTrusted(cur) {
			return cur
		}
		next, ok := parse(hop)
		if !ok {
			return cur
		}
		cur = next
	}
	return cur
}

func (c *ClientIP) isTrusted(a netip.Addr) bool {
	for _, p := range c.trusted {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

// joinLines joins the lines of one header in order, as RFC 9110 section
// 5.3 allows for a list-based field. It returns "" when the result would
// exceed MaxForwardedBytes, so an oversized header counts as absent.
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

func normalizeAddr(a netip.Addr) netip.Addr {
	return a.Unmap().WithZone("")
}

// parsePeer parses RemoteAddr: "host:port", "[v6]:port" or a bare IP.
func parsePeer(s string) (netip.Addr, bool) {
	if ap, err := netip.ParseAddrPort(s); err == nil {
		return normalizeAddr(ap.Addr()), true
	}
	if a, err := netip.ParseAddr(s); err == nil {
		return normalizeAddr(a), true
	}
	host, _, err := net.SplitHostPort(s)
	if err != nil {
		return netip.Addr{}, false
	}
	a, err := netip.ParseAddr(host)
	if err != nil {
		return netip.Addr{}, false
	}
	return normalizeAddr(a), true
}
