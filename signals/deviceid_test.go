package signals

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/runtimeid/runtimeid"
)

var (
	keyA = bytes.Repeat([]byte("a"), 32)
	keyB = bytes.Repeat([]byte("b"), 48)
)

func newDeviceIDT(t testing.TB, opts DeviceIDOptions) *DeviceID {
	t.Helper()
	d, err := NewDeviceID(opts)
	require.NoError(t, err)
	return d
}

// collectID runs the collector on a request with the given cookies
// and headers and returns the device ID it found.
func collectID(t testing.TB, d *DeviceID, r *http.Request) string {
	t.Helper()
	ev := &runtimeid.Evaluation{Request: r}
	require.NoError(t, d.Collect(context.Background(), ev))
	return ev.Signals.Device.ID
}

func requestWith(cookies []string, header http.Header) *http.Request {
	r := httptest.NewRequest(http.MethodGet, "https://app.test/", nil)
	for _, c := range cookies {
		r.Header.Add("Cookie", DefaultDeviceCookie+"="+c)
	}
	for k, vs := range header {
		for _, v := range vs {
			r.Header.Add(k, v)
		}
	}
	return r
}

func TestDeviceIDRoundTrip(t *testing.T) {
	d := newDeviceIDT(t, DeviceIDOptions{Keys: [][]byte{keyA}})
	w := httptest.NewRecorder()
	id := d.Issue(w)
	require.Len(t, id, 22)

	set := w.Header().Values("Set-Cookie")
	require.Len(t, set, 1)
	value := d.signed(id)
	assert.Equal(t, DefaultDeviceCookie+"="+value+
		"; Path=/; Max-Age=34560000; HttpOnly; Secure; SameSite=Lax",
		set[0])
	assert.Equal(t, keyID(keyA)+"."+id+".", value[:kidLen+1+idLen+1])

	assert.Equal(t, id, collectID(t, d, requestWith([]string{value}, nil)))
	assert.Equal(t, DeviceIDStats{Verified: 1, Issued: 1}, d.Stats())

	// Two issued IDs differ.
	assert.NotEqual(t, id, d.Issue(httptest.NewRecorder()))
}

func TestDeviceIDRotation(t *testing.T) {
	old := newDeviceIDT(t, DeviceIDOptions{Keys: [][]byte{keyA}})
	both := newDeviceIDT(t, DeviceIDOptions{Keys: [][]byte{keyB, keyA}})
	newOnly := newDeviceIDT(t, DeviceIDOptions{Keys: [][]byte{keyB}})

	oldID, oldValue := old.NewValue()
	newID, newValue := both.NewValue()
	assert.True(t, strings.HasPrefix(newValue, keyID(keyB)+"."))

	req := func(v string) *http.Request { return requestWith([]string{v}, nil) }
	assert.Equal(t, oldID, collectID(t, both, req(oldValue)), "old key verifies")
	assert.Equal(t, newID, collectID(t, both, req(newValue)), "new key verifies")
	assert.Equal(t, newID, collectID(t, newOnly, req(newValue)))
	assert.Equal(t, "", collectID(t, newOnly, req(oldValue)), "old key removed")
	assert.Equal(t, "", collectID(t, old, req(newValue)), "unknown key")
}

func TestDeviceIDRejects(t *testing.T) {
	d := newDeviceIDT(t, DeviceIDOptions{Keys: [][]byte{keyA}})
	other := newDeviceIDT(t, DeviceIDOptions{Keys: [][]byte{keyB}})
	id, good := d.NewValue()
	_, otherValue := other.NewValue()
	mac := good[signedLen-macLen:]

	flip := func(s string, i int) string {
		b := []byte(s)
		if b[i] == 'A' {
			b[i] = 'B'
		} else {
			b[i] = 'A'
		}
		return string(b)
	}
	tests := map[string]string{
		"empty":            "",
		"garbage":          "hello",
		"forged signature": flip(good, signedLen-2),
		"forged id":        flip(good, kidLen+3),
		"truncated":        good[:signedLen-1],
		"oversized":        good + "A",
		"huge":             strings.Repeat("A", 8<<10),
		"other key":        otherValue,
		// The right signature under another key's ID: the key ID
		// picks the key, and the MAC covers the key ID.
		"wrong key id": keyID(keyB) + good[kidLen:],
		"unsigned id":  keyID(keyA) + "." + id + "." + strings.Repeat("A", macLen),
		"dots moved":   good[:kidLen] + good[kidLen+1:kidLen+2] + "." + good[kidLen+2:],
		"padded mac":   good[:signedLen-2] + "==",
		"mac in id":    keyID(keyA) + "." + mac[:idLen] + "." + mac,
	}
	for name, v := range tests {
		t.Run(name, func(t *testing.T) {
			before := d.Stats()
			assert.Equal(t, "", collectID(t, d, requestWith([]string{v}, nil)))
			assert.Equal(t, "", d.FromRequest(requestWith([]string{v}, nil)))
			assert.Equal(t, before.Rejected+1, d.Stats().Rejected)
		})
	}
}

// Two cookies of the same name: the browser does not say which is its
// own, so neither counts, even when both are valid.
func TestDeviceIDDuplicateCookie(t *testing.T) {
	d := newDeviceIDT(t, DeviceIDOptions{Keys: [][]byte{keyA}})
	_, v1 := d.NewValue()
	_, v2 := d.NewValue()
	for _, cookies := range [][]string{{v1, v2}, {v1, v1}, {v1, "junk"}} {
		assert.Equal(t, "", collectID(t, d, requestWith(cookies, nil)))
	}
	r := requestWith(nil, nil)
	r.Header.Set("Cookie", DefaultDeviceCookie+"="+v1+"; "+
		DefaultDeviceCookie+"="+v2)
	assert.Equal(t, "", collectID(t, d, r))
	assert.Equal(t, DeviceIDStats{Rejected: 4}, d.Stats())
}

func TestDeviceIDHeader(t *testing.T) {
	signedOnly := newDeviceIDT(t, DeviceIDOptions{
		Keys: [][]byte{keyA}, ReadHeader: true,
	})
	unsigned := newDeviceIDT(t, DeviceIDOptions{
		Keys: [][]byte{keyA}, ReadHeader: true,
		InsecureAcceptUnsignedHeader: true,
	})
	custom := newDeviceIDT(t, DeviceIDOptions{
		Keys: [][]byte{keyA}, ReadHeader: true, HeaderName: "x-app-device",
	})
	noHeader := newDeviceIDT(t, DeviceIDOptions{Keys: [][]byte{keyA}})
	id, value := signedOnly.NewValue()
	cid, cookie := signedOnly.NewValue()
	hdr := func(kv ...string) http.Header {
		h := http.Header{}
		for i := 0; i < len(kv); i += 2 {
			h.Add(kv[i], kv[i+1])
		}
		return h
	}
	uuid := "9f1c2d3e-4b5a-6789-abcd-ef0123456789"

	tests := []struct {
		name    string
		d       *DeviceID
		cookies []string
		header  http.Header
		want    string
	}{
		{"signed", signedOnly, nil, hdr("X-Device-ID", value), id},
		{"signed, unsigned allowed", unsigned, nil, hdr("X-Device-ID", value), id},
		{"unsigned refused", signedOnly, nil, hdr("X-Device-ID", uuid), ""},
		{"unsigned allowed", unsigned, nil, hdr("X-Device-ID", uuid), "unsigned:" + uuid},
		{"unsigned bad chars", unsigned, nil, hdr("X-Device-ID", "a b"), ""},
		{"unsigned empty", unsigned, nil, hdr("X-Device-ID", ""), ""},
		{
			"unsigned max", unsigned, nil,
			hdr("X-Device-ID", strings.Repeat("z", 128)),
			"unsigned:" + strings.Repeat("z", 128),
		},
		{"unsigned too long", unsigned, nil, hdr("X-Device-ID", strings.Repeat("z", 129)), ""},
		{"two lines", unsigned, nil, hdr("X-Device-ID", uuid, "X-Device-ID", uuid), ""},
		{"cookie wins", unsigned, []string{cookie}, hdr("X-Device-ID", value), cid},
		{"bad cookie, good header", signedOnly, []string{"x"}, hdr("X-Device-ID", value), id},
		{"custom name", custom, nil, hdr("X-App-Device", value), id},
		{"custom name ignores default", custom, nil, hdr("X-Device-ID", value), ""},
		{"header off", noHeader, nil, hdr("X-Device-ID", value), ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := requestWith(tt.cookies, tt.header)
			assert.Equal(t, tt.want, collectID(t, tt.d, r))
		})
	}
}

func TestDeviceIDMiddleware(t *testing.T) {
	d := newDeviceIDT(t, DeviceIDOptions{
		Keys: [][]byte{keyB, keyA}, ReadHeader: true,
	})
	old := newDeviceIDT(t, DeviceIDOptions{Keys: [][]byte{keyA}})
	var seen string
	h := d.Middleware(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		seen = collectID(t, d, r)
		w.WriteHeader(http.StatusNoContent)
	}))
	serve := func(r *http.Request) (setCookie string) {
		w := httptest.NewRecorder()
		h.ServeHTTP(w, r)
		require.Equal(t, http.StatusNoContent, w.Code)
		if c := w.Result().Cookies(); len(c) == 1 {
			return c[0].Value
		}
		require.Empty(t, w.Result().Cookies())
		return ""
	}

	// First visit: no ID yet, a cookie on the response.
	v := serve(requestWith(nil, nil))
	require.Len(t, v, signedLen)
	assert.Equal(t, "", seen)
	id := v[kidLen+1 : kidLen+1+idLen]

	// Next visit carries it: the ID, no new cookie.
	assert.Equal(t, "", serve(requestWith([]string{v}, nil)))
	assert.Equal(t, id, seen)

	// A cookie signed by the old key is signed again, same ID.
	oldID, oldValue := old.NewValue()
	v = serve(requestWith([]string{oldValue}, nil))
	assert.Equal(t, oldID, seen)
	assert.Equal(t, d.signed(oldID), v)

	// A forged cookie is replaced by a new ID.
	v = serve(requestWith([]string{"forged"}, nil))
	assert.Equal(t, "", seen)
	assert.Len(t, v, signedLen)

	// A native client with a valid header gets no cookie, even when
	// its value was signed by the old key.
	_, hv := old.NewValue()
	h2 := http.Header{"X-Device-Id": {hv}}
	assert.Equal(t, "", serve(requestWith(nil, h2)))
}

func TestDeviceIDConfigErrors(t *testing.T) {
	short := make([]byte, 31)
	tests := []struct {
		name string
		opts DeviceIDOptions
		want string
	}{
		{"no key", DeviceIDOptions{}, "signals: device id config: no key"},
		{
			"short key", DeviceIDOptions{Keys: [][]byte{keyA, short}},
			"signals: device id config: key 1 is 31 bytes, want at least 32",
		},
		{
			"same key twice", DeviceIDOptions{Keys: [][]byte{keyA, keyB, keyA}},
			"signals: device id config: key 2 is listed twice",
		},
		{
			"bad cookie name",
			DeviceIDOptions{Keys: [][]byte{keyA}, CookieName: "a b"},
			`signals: device id config: cookie name "a b": ` +
				`http: invalid Cookie.Name`,
		},
		{
			"bad header name",
			DeviceIDOptions{Keys: [][]byte{keyA}, ReadHeader: true, HeaderName: "X:Y"},
			`signals: device id config: invalid header name "X:Y"`,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d, err := NewDeviceID(tt.opts)
			require.ErrorIs(t, err, ErrDeviceIDConfig)
			assert.EqualError(t, err, tt.want)
			assert.Nil(t, d)
		})
	}
}

func TestDeviceIDOptions(t *testing.T) {
	k := bytes.Repeat([]byte{0x42}, 32)
	d := newDeviceIDT(t, DeviceIDOptions{
		Keys: [][]byte{k}, CookieName: "dev", MaxAge: 90 * 60 * 1e9,
	})
	k[0] = 0 // the key was copied
	w := httptest.NewRecorder()
	id := d.Issue(w)
	assert.Equal(t, "dev="+d.signed(id)+
		"; Path=/; Max-Age=5400; HttpOnly; Secure; SameSite=Lax",
		w.Header().Get("Set-Cookie"))
	r := requestWith(nil, nil)
	r.AddCookie(&http.Cookie{Name: "dev", Value: d.signed(id)})
	assert.Equal(t, id, collectID(t, d, r))

	// Without a request, the ID is left as the caller set it.
	ev := &runtimeid.Evaluation{}
	ev.Signals.Device.ID = "from-caller"
	require.NoError(t, d.Collect(context.Background(), ev))
	assert.Equal(t, "from-caller", ev.Signals.Device.ID)
}

func TestDeviceIDOptionsRedacted(t *testing.T) {
	opts := DeviceIDOptions{Keys: [][]byte{keyA}}
	assert.Equal(t, "DeviceIDOptions{keys: 1 [redacted]}", fmt.Sprint(opts))
	var buf bytes.Buffer
	slog.New(slog.NewTextHandler(&buf, nil)).Info("x", "opts", opts)
	assert.NotContains(t, buf.String(), "aaaa")
	assert.Contains(t, buf.String(), "opts.keys=1")
}

func FuzzDeviceIDVerify(f *testing.F) {
	d := newDeviceIDT(f, DeviceIDOptions{Keys: [][]byte{keyA, keyB}})
	_, good := d.NewValue()
	for _, s := range []string{good, "", ".", good[:40], good + "=", "\xff"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, v string) {
		id, k, ok := d.verify(v)
		if !ok {
			require.Equal(t, "", id)
			return
		}
		// Only a value this collector signed verifies, and
		// signing its ID again gives the same value.
		require.Equal(t, d.keys[k].id+"."+id+"."+
			b64.EncodeToString(d.keys[k].sign(d.keys[k].id, id)), v)
		require.True(t, validID(id))
	})
}

func BenchmarkDeviceID(b *testing.B) {
	d := newDeviceIDT(b, DeviceIDOptions{Keys: [][]byte{keyB, keyA}})
	_, v := d.NewValue()
	ctx := context.Background()
	b.Run("collect", func(b *testing.B) {
		ev := &runtimeid.Evaluation{Request: requestWith([]string{v}, nil)}
		b.ReportAllocs()
		for b.Loop() {
			_ = d.Collect(ctx, ev)
		}
	})
	b.Run("collect forged", func(b *testing.B) {
		ev := &runtimeid.Evaluation{
			Request: requestWith([]string{v[:signedLen-1] + "x"}, nil),
		}
		b.ReportAllocs()
		for b.Loop() {
			_ = d.Collect(ctx, ev)
		}
	})
	b.Run("issue", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			d.Issue(discardWriter{})
		}
	})
}

type discardWriter struct{}

func (discardWriter) Header() http.Header         { return http.Header{} }
func (discardWriter) Write(p []byte) (int, error) { return len(p), nil }
func (discardWriter) WriteHeader(int)             {}
