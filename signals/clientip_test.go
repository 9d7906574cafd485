package signals

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/runtimeid/runtimeid"
)

func TestParsePrefixes(t *testing.T) {
	tests := []struct {
		in   string
		want []string
		err  string
	}{
		{in: "", want: nil},
		{in: "  ", want: nil},
		{in: "10.0.0.0/8", want: []string{"10.0.0.0/8"}},
		{
			in:   " 10.1.2.3/8 ,192.0.2.1,\t2001:db8::/32 ",
			want: []string{"10.0.0.0/8", "192.0.2.1/32", "2001:db8::/32"},
		},
		{in: "::ffff:192.0.2.0/120", want: []string{"192.0.2.0/24"}},
		{in: "::ffff:192.0.2.9", want: []string{"192.0.2.9/32"}},
		{in: "2001:db8::1", want: []string{"2001:db8::1/128"}},
		{
			in:  "10.0.0.0/8,bogus",
			err: `signals: invalid trusted proxy: entry 2 "bogus"`,
		},
		{in: "10.0.0.0/33", err: `entry 1 "10.0.0.0/33"`},
		{in: "10.0.0.0/8,,10.0.0.1", err: `entry 2 "": empty entry`},
		{in: "fe80::1%eth0", err: `entry 1 "fe80::1%eth0": zone not allowed`},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, err := ParsePrefixes(tt.in)
			if tt.err != "" {
				require.ErrorIs(t, err, ErrInvalidPrefix)
				assert.Contains(t, err.Error(), tt.err)
				assert.Nil(t, got)
				return
			}
			require.NoError(t, err)
			var s []string
			for _, p := range got {
				s = append(s, p.String())
			}
			assert.Equal(t, tt.want, s)
		})
	}
}

// TestParsePrefixesRefusesTrustAll: a list that trusts every peer
// would let any client choose its own address.
func TestParsePrefixesRefusesTrustAll(t *testing.T) {
	for _, in := range []string{"0.0.0.0/0", "::/0", "10.0.0.0/8, ::/0", "::ffff:0.0.0.0/96"} {
		t.Run(in, func(t *testing.T) {
			got, err := ParsePrefixes(in)
			require.ErrorIs(t, err, ErrTrustsEveryone)
			require.ErrorIs(t, err, ErrInvalidPrefix)
			assert.Contains(t, err.Error(), "list your proxies' prefixes instead")
			assert.Nil(t, got)
		})
	}
	// The explicit opt-out: a prefix built in code is taken as given.
	c := NewClientIP([]netip.Prefix{netip.MustParsePrefix("0.0.0.0/0")})
	r := httptest.NewRequest("GET", "/", nil)
	r.RemoteAddr = "192.0.2.1:1"
	r.Header.Set("X-Forwarded-For", "198.51.100.7")
	assert.Equal(t, "198.51.100.7", c.Resolve(r).String())
}

func mustPrefixes(t testing.TB, csv string) []netip.Prefix {
	t.Helper()
	p, err := ParsePrefixes(csv)
	require.NoError(t, err)
	return p
}

type ipCase struct {
	name    string
	remote  string
	fwd     []string
	xff     []string
	want    string // "" for an invalid address
	trusted string // default "10.0.0.0/8, 2001:db8:ffff::/48"
}

func TestClientIPResolve(t *testing.T) {
	long := strings.Repeat("192.0.2.1, ", MaxForwardedBytes/10)
	tests := []ipCase{
		{name: "peer only", remote: "198.51.100.7:1234", want: "198.51.100.7"},
		{name: "bare peer", remote: "198.51.100.7", want: "198.51.100.7"},
		{name: "ipv6 peer", remote: "[2001:db8::5]:443", want: "2001:db8::5"},
		{name: "mapped peer", remote: "[::ffff:198.51.100.7]:1", want: "198.51.100.7"},
		{name: "zoned peer", remote: "[fe80::1%eth0]:80", want: "fe80::1"},
		{name: "unix socket peer", remote: "@", want: ""},
		{name: "empty peer", remote: "", want: ""},

		// An untrusted peer's headers are never read.
		{
			name: "untrusted peer xff", remote: "198.51.100.7:1",
			xff: []string{"203.0.113.9"}, want: "198.51.100.7",
		},
		{
			name: "untrusted peer forwarded", remote: "198.51.100.7:1",
			fwd: []string{"for=203.0.113.9"}, want: "198.51.100.7",
		},
		{
			name: "no trusted prefixes", remote: "10.0.0.1:1", trusted: "-",
			xff: []string{"203.0.113.9"}, want: "10.0.0.1",
		},

		// X-Forwarded-For, right to left.
		{
			name: "xff one hop", remote: "10.0.0.1:1",
			xff: []string{"203.0.113.9"}, want: "203.0.113.9",
		},
		{
			name: "xff spoofed left part", remote: "10.0.0.1:1",
			xff:  []string{"1.1.1.1, 203.0.113.9, 10.0.0.2"},
			want: "203.0.113.9",
		},
		{
			name: "xff lines joined in order", remote: "10.0.0.1:1",
			xff:  []string{"1.1.1.1, 203.0.113.9", "10.0.0.3"},
			want: "203.0.113.9",
		},
		{
			name: "xff all trusted", remote: "10.0.0.1:1",
			xff: []string{"10.0.0.9, 10.0.0.2"}, want: "10.0.0.9",
		},
		{
			name: "xff garbage hop stops at trusted", remote: "10.0.0.1:1",
			xff: []string{"203.0.113.9, nonsense, 10.0.0.2"}, want: "10.0.0.2",
		},
		{
			name: "xff with ports and brackets", remote: "10.0.0.1:1",
			xff:  []string{"[2001:db8::9]:80, 10.0.0.2:8080"},
			want: "2001:db8::9",
		},
		{
			name: "xff bracketed v6 no port", remote: "10.0.0.1:1",
			xff: []string{"[2001:db8::9]"}, want: "2001:db8::9",
		},
		{
			name: "xff mapped and zoned", remote: "10.0.0.1:1",
			xff:  []string{"fe80::7%eth1, ::ffff:10.0.0.4"},
			want: "fe80::7",
		},
		{
			name: "xff empty elements skipped", remote: "10.0.0.1:1",
			xff: []string{" , 203.0.113.9,, "}, want: "203.0.113.9",
		},
		{
			name: "xff empty", remote: "10.0.0.1:1",
			xff: []string{""}, want: "10.0.0.1",
		},
		{
			name: "xff oversized ignored", remote: "10.0.0.1:1",
			xff: []string{long + "203.0.113.9"}, want: "10.0.0.1",
		},
		{
			name: "ipv6 trusted peer", remote: "[2001:db8:ffff::1]:1",
			xff: []string{"203.0.113.9"}, want: "203.0.113.9",
		},

		// Forwarded (RFC 7239).
		{
			name: "forwarded rfc example", remote: "10.0.0.1:1",
			fwd: []string{`for="_gazonk"`}, want: "10.0.0.1",
		},
		{
			name: "forwarded quoted ipv6 with port", remote: "10.0.0.1:1",
			fwd:  []string{`For="[2001:db8:cafe::17]:4711"`},
			want: "2001:db8:cafe::17",
		},
		{
			name: "forwarded chain", remote: "10.0.0.1:1",
			fwd: []string{
				"for=192.0.2.43, for=198.51.100.17;by=203.0.113.60" +
					";proto=http;host=example.com",
			},
			want: "198.51.100.17",
		},
		{
			name: "forwarded trusted hop skipped", remote: "10.0.0.1:1",
			fwd: []string{
				`for=192.0.2.43;proto=https, for="10.0.0.5:8080"`,
			},
			want: "192.0.2.43",
		},
		{
			name: "forwarded lines joined", remote: "10.0.0.1:1",
			fwd:  []string{"for=192.0.2.43", "for=10.0.0.7"},
			want: "192.0.2.43",
		},
		{
			name: "forwarded unknown stops", remote: "10.0.0.1:1",
			fwd:  []string{"for=192.0.2.43, for=unknown, for=10.0.0.7"},
			want: "10.0.0.7",
		},
		{
			name: "forwarded obfuscated stops", remote: "10.0.0.1:1",
			fwd: []string{`for=192.0.2.43, for="_hidden"`}, want: "10.0.0.1",
		},
		{
			name: "forwarded element without for stops", remote: "10.0.0.1:1",
			fwd: []string{"for=192.0.2.43, proto=https"}, want: "10.0.0.1",
		},
		{
			name: "forwarded duplicate for stops", remote: "10.0.0.1:1",
			fwd:  []string{"for=192.0.2.43;for=192.0.2.44"},
			want: "10.0.0.1",
		},
		{
			name: "forwarded unquoted ipv6 refused", remote: "10.0.0.1:1",
			fwd: []string{"for=[2001:db8::1]"}, want: "10.0.0.1",
		},
		{
			name: "forwarded unbracketed ipv6 refused", remote: "10.0.0.1:1",
			fwd: []string{`for="2001:db8::1"`}, want: "10.0.0.1",
		},
		{
			name: "forwarded obfuscated port ok", remote: "10.0.0.1:1",
			fwd: []string{`for="192.0.2.43:_p1"`}, want: "192.0.2.43",
		},
		{
			name: "forwarded comma inside quotes", remote: "10.0.0.1:1",
			fwd:  []string{`for=192.0.2.43;host="a,b", for=10.0.0.2`},
			want: "192.0.2.43",
		},
		{
			name: "forwarded escaped quote", remote: "10.0.0.1:1",
			fwd:  []string{`for=192.0.2.43;ext="x\"y"`},
			want: "192.0.2.43",
		},
		{
			name: "forwarded unterminated quote", remote: "10.0.0.1:1",
			fwd: []string{`for="192.0.2.43`}, want: "10.0.0.1",
		},
		{
			name: "forwarded spaces and empty pair", remote: "10.0.0.1:1",
			fwd: []string{" for=192.0.2.43 ; ;proto=http "}, want: "192.0.2.43",
		},
		{
			name: "forwarded preferred over xff", remote: "10.0.0.1:1",
			fwd: []string{"for=192.0.2.43"}, xff: []string{"203.0.113.9"},
			want: "192.0.2.43",
		},
		{
			name:   "garbage forwarded does not fall back to xff",
			remote: "10.0.0.1:1", fwd: []string{"garbage"},
			xff: []string{"203.0.113.9"}, want: "10.0.0.1",
		},
		{
			name: "forwarded oversized ignored", remote: "10.0.0.1:1",
			fwd:  []string{strings.Repeat("for=10.0.0.2,", 700)},
			want: "10.0.0.1",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			trusted := "10.0.0.0/8, 2001:db8:ffff::/48"
			if tt.trusted == "-" {
				trusted = ""
			}
			c := NewClientIP(mustPrefixes(t, trusted))
			r := httptest.NewRequest(http.MethodGet, "/", nil)
			r.RemoteAddr = tt.remote
			for _, v := range tt.fwd {
				r.Header.Add("Forwarded", v)
			}
			for _, v := range tt.xff {
				r.Header.Add("X-Forwarded-For", v)
			}
			ev := &runtimeid.Evaluation{Request: r}
			require.NoError(t, c.Collect(context.Background(), ev))
			assert.Equal(t, tt.want, addrString(ev.Signals.ClientIP))
		})
	}
}

func addrString(a netip.Addr) string {
	if !a.IsValid() {
		return ""
	}
	return a.String()
}

// The hop limit: a walk through more than MaxForwardedHops trusted hops
// stops at the last one it parsed.
func TestClientIPHopLimit(t *testing.T) {
	hops := make([]string, 0, 100)
	hops = append(hops, "203.0.113.9")
	for i := 0; i < 99; i++ {
		hops = append(hops, "10.0.0.2")
	}
	hops[len(hops)-MaxForwardedHops] = "10.0.0.3"

	c := NewClientIP(mustPrefixes(t, "10.0.0.0/8"))
	for _, h := range []string{"X-Forwarded-For", "Forwarded"} {
		r := httptest.NewRequest(http.MethodGet, "/", nil)
		r.RemoteAddr = "10.0.0.1:1"
		v := strings.Join(hops, ", ")
		if h == "Forwarded" {
			v = "for=" + strings.Join(hops, ", for=")
		}
		r.Header.Set(h, v)
		assert.Equal(t, "10.0.0.3", c.Resolve(r).String(), h)
	}
}

func TestClientIPWithoutRequest(t *testing.T) {
	tests := []struct{ in, want string }{
		{in: "::ffff:192.0.2.1", want: "192.0.2.1"},
		{in: "fe80::1%eth0", want: "fe80::1"},
		{in: "2001:db8::1", want: "2001:db8::1"},
		{in: "", want: ""},
	}
	c := NewClientIP(nil)
	for _, tt := range tests {
		ev := &runtimeid.Evaluation{}
		if tt.in != "" {
			ev.Signals.ClientIP = netip.MustParseAddr(tt.in)
		}
		require.NoError(t, c.Collect(context.Background(), ev))
		assert.Equal(t, tt.want, addrString(ev.Signals.ClientIP))
	}
}

func TestNewClientIPNormalizes(t *testing.T) {
	c := NewClientIP([]netip.Prefix{
		netip.MustParsePrefix("::ffff:10.1.2.3/104"),
		{}, // invalid: dropped
	})
	require.Len(t, c.trusted, 1)
	assert.Equal(t, "10.0.0.0/8", c.trusted[0].String())
}

func TestParsePrefixesErrorIsWrapped(t *testing.T) {
	_, err := ParsePrefixes("x")
	assert.True(t, errors.Is(err, ErrInvalidPrefix))
}

func FuzzForwarded(f *testing.F) {
	seeds := []string{
		`for="[2001:db8:cafe::17]:4711"`,
		"for=192.0.2.43, for=198.51.100.17;by=203.0.113.60;proto=http",
		`for=unknown, for="_gazonk"`,
		`for="\"`, `;;;,,,`, `for="a,b";x="\\"`, "",
	}
	for _, s := range seeds {
		f.Add(s, "203.0.113.9, [2001:db8::1]:80, 10.0.0.2")
	}
	c := NewClientIP([]netip.Prefix{netip.MustParsePrefix("10.0.0.0/8")})
	f.Fuzz(func(t *testing.T, fwd, xff string) {
		elems, ok := splitForwarded(fwd)
		if ok {
			require.LessOrEqual(t, len(elems), MaxForwardedHops)
			for _, e := range elems {
				if a, ok := forwardedFor(e); ok {
					require.True(t, a.IsValid())
					require.Empty(t, a.Zone())
					require.False(t, a.Is4In6())
				}
			}
		}
		hops, _ := splitXFF(xff)
		require.LessOrEqual(t, len(hops), MaxForwardedHops)

		r := httptest.NewRequest(http.MethodGet, "/", nil)
		r.RemoteAddr = "10.0.0.1:1"
		r.Header.Set("X-Forwarded-For", xff)
		got := c.Resolve(r)
		require.True(t, got.IsValid())
		r.Header.Set("Forwarded", fwd)
		got = c.Resolve(r)
		require.True(t, got.IsValid())
		require.Empty(t, got.Zone())
	})
}

func BenchmarkClientIP(b *testing.B) {
	c := NewClientIP(mustPrefixes(b, "10.0.0.0/8, 2001:db8:ffff::/48"))
	cases := []struct{ name, header, value string }{
		{name: "peer"},
		{
			name: "xff3", header: "X-Forwarded-For",
			value: "203.0.113.9, 10.0.0.3, 10.0.0.2",
		},
		{
			name: "forwarded", header: "Forwarded",
			value: `for="[2001:db8::9]:1";proto=https, for=10.0.0.2`,
		},
	}
	for _, bc := range cases {
		b.Run(bc.name, func(b *testing.B) {
			r := httptest.NewRequest(http.MethodGet, "/", nil)
			r.RemoteAddr = "10.0.0.1:443"
			if bc.header != "" {
				r.Header.Set(bc.header, bc.value)
			}
			ev := &runtimeid.Evaluation{Request: r}
			ctx := context.Background()
			b.ReportAllocs()
			for b.Loop() {
				_ = c.Collect(ctx, ev)
			}
		})
	}
}
