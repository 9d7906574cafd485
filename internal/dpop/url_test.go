package dpop

import (
	"net/http/httptest"
	"net/netip"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestNormalizeHTU(t *testing.T) {
	tests := []struct {
		in, want string
		err      error
	}{
		{"https://server.example.com/token", "https://server.example.com/token", nil},
		{"HTTPS://Server.Example.COM:443/token", "https://server.example.com/token", nil},
		{"http://a.example:80", "http://a.example/", nil},
		{"https://a.example:8443/x", "https://a.example:8443/x", nil},
		{"https://a.example/%7euser/%2f/%c3%a9", "https://a.example/~user/%2F/%C3%A9", nil},
		{"https://a.example/a/./b/../c", "https://a.example/a/c", nil},
		{"https://a.example/..", "https://a.example/", nil},
		{"https://[2001:db8::1]:443/x", "https://[2001:db8::1]/x", nil},
		{"https://a.example/x?y=1", "", ErrHTUQuery},
		{"https://a.example/x?", "", ErrHTUQuery},
		{"https://a.example/x#f", "", ErrHTUQuery},
		{"ftp://a.example/x", "", ErrHTU},
		{"/relative", "", ErrHTU},
		{"https://user@a.example/x", "", ErrHTU},
		{"https://a.example:99999/x", "", ErrHTU},
		{"https://a.example:x/x", "", ErrHTU},
		{"https:opaque", "", ErrHTU},
		{"%zz", "", ErrHTU},
	}
	for _, tt := range tests {
		got, err := NormalizeHTU(tt.in)
		assert.Equal(t, tt.want, got, tt.in)
		assert.ErrorIs(t, err, tt.err, tt.in)
		if tt.err == nil {
			assert.NoError(t, err, tt.in)
		}
	}
}

func TestRequestURL(t *testing.T) {
	trusted := []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8")}
	r := httptest.NewRequest("GET", "http://App.Internal:80/a/%7eb?q=1", nil)
	got, err := RequestURL(r, trusted)
	require.NoError(t, err)
	assert.Equal(t, "http://app.internal/a/~b", got)

	r.RemoteAddr = "[::ffff:10.0.0.1]:80"
	r.Header.Set("Forwarded", `for="[2001:db8::7]:1";proto=HTTPS;host="API.example.com"`)
	got, err = RequestURL(r, trusted)
	require.NoError(t, err)
	assert.Equal(t, "https://api.example.com/a/~b", got)

	// A forwarded host that is not a host makes the URL fail.
	r.Header.Set("Forwarded", `for=1.2.3.4;host="evil.example/x"`)
	_, err = RequestURL(r, trusted)
	assert.ErrorIs(t, err, ErrHTU)

	// A Forwarded header that does not parse is ignored.
	r.Header.Set("Forwarded", `for`)
	got, _ = RequestURL(r, trusted)
	assert.Equal(t, "http://app.internal/a/~b", got)
}

// TestRequestURLXForwardedChains pins what X-Forwarded-Proto and -Host
// give behind one, two and three proxies (see the BUG note of
// [Forwarded]): the last value, so a chain of appending proxies fails
// closed, and a value the client wrote before a trusted one is never
// read, whatever the counts.
func TestRequestURLXForwardedChains(t *testing.T) {
	trusted := []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8")}
	tests := []struct {
		name          string
		peer          string
		xff, xfp, xfh []string
		want          string
	}{
		{name: "one proxy", peer: "10.0.0.1:1",
			xff: []string{"203.0.113.7"}, xfp: []string{"https"},
			xfh:  []string{"api.example.com"},
			want: "https://api.example.com/a"},
		{name: "two appending proxies: the inner view, fails closed",
			peer: "10.0.0.2:1",
			xff:  []string{"203.0.113.7, 10.0.0.1"}, xfp: []string{"https, http"},
			xfh:  []string{"api.example.com, edge.internal:8080"},
			want: "http://edge.internal:8080/a"},
		{name: "three appending proxies: the inner view, fails closed",
			peer: "10.0.0.3:1",
			xff:  []string{"203.0.113.7, 10.0.0.1, 10.0.0.2"},
			xfp:  []string{"https, http, http"},
			xfh:  []string{"api.example.com, mid.internal, app.internal"},
			want: "http://app.internal/a"},
		{name: "three proxies, only the edge sets them", peer: "10.0.0.3:1",
			xff: []string{"203.0.113.7, 10.0.0.1, 10.0.0.2"},
			xfp: []string{"https"}, xfh: []string{"api.example.com"},
			want: "https://api.example.com/a"},
		// The edge appends X-Forwarded-Host, the inner proxy appends
		// to X-Forwarded-For only: the counts agree, and lining up
		// would read the client's evil.example.
		{name: "equal counts, forged first value", peer: "10.0.0.2:1",
			xff: []string{"203.0.113.7, 10.0.0.1"}, xfp: []string{"https"},
			xfh:  []string{"evil.example, api.example.com"},
			want: "https://api.example.com/a"},
		{name: "mismatched counts", peer: "10.0.0.1:1",
			xff: []string{"203.0.113.7"}, xfp: []string{"http, https"},
			xfh:  []string{"evil.example", "api.example.com"},
			want: "https://api.example.com/a"},
		{name: "no X-Forwarded-For", peer: "10.0.0.1:1",
			xfp: []string{"http, https"}, xfh: []string{"api.example.com"},
			want: "https://api.example.com/a"},
		{name: "untrusted peer", peer: "203.0.113.7:1",
			xff: []string{"198.51.100.1"}, xfp: []string{"https"},
			xfh: []string{"api.example.com"}, want: "http://app.internal/a"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := httptest.NewRequest("GET", "http://app.internal/a", nil)
			r.RemoteAddr = tt.peer
			for name, vals := range map[string][]string{"X-Forwarded-For": tt.xff,
				"X-Forwarded-Proto": tt.xfp, "X-Forwarded-Host": tt.xfh} {
				for _, v := range vals {
					r.Header.Add(name, v)
				}
			}
			got, err := RequestURL(r, trusted)
			require.NoError(t, err)
			assert.Equal(t, tt.want, got)
		})
	}
}

func FuzzNormalizeHTU(f *testing.F) {
	for _, s := range []string{"https://a.example/x", "http://[::1]:80/%41/../b",
		"HTTPS://A:443", "https://a/%", "https://a:/b/./c/.."} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		got, err := NormalizeHTU(s)
		if err != nil {
			return
		}
		// Normalising is idempotent.
		again, err := NormalizeHTU(got)
		require.NoError(t, err, got)
		assert.Equal(t, got, again)
	})
}

func FuzzForwarded(f *testing.F) {
	f.Add(`for=1.2.3.4;proto=https;host="a.example", for=10.0.0.2`)
	f.Add(`for="[2001:db8::1]:4711";host="a\"b"`)
	f.Add(`;;,,"`)
	trusted := []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8")}
	f.Fuzz(func(t *testing.T, h string) {
		r := httptest.NewRequest("GET", "http://a.example/", nil)
		r.RemoteAddr = "10.0.0.1:1"
		r.Header.Set("Forwarded", h)
		scheme, _ := Forwarded(r, trusted, "http", "a.example")
		assert.Contains(t, []string{"http", "https"}, scheme)
	})
}
