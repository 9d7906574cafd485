package signals

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"sync/atomic"
	"time"

	"github.com/runtimeid/runtimeid"
)

// ErrDeviceIDConfig means [DeviceIDOptions] cannot be used: no key, a
// key shorter than [MinDeviceKeyLen], the same key twice, or a name
// that is not a valid cookie or header name. [NewDeviceID] wraps it.
var ErrDeviceIDConfig = errors.New("signals: device id config")

// The defaults and limits of [DeviceID].
const (
	// DefaultDeviceCookie is the device cookie's name. The __Host-
	// prefix makes browsers refuse it unless it is Secure, has Path=/
	// and no Domain, so a sibling subdomain cannot plant one.
	DefaultDeviceCookie = "__Host-rid_device"

	// DefaultDeviceHeader is the header a native client sends its
	// device ID in, when [DeviceIDOptions.ReadHeader] is set.
	DefaultDeviceHeader = "X-Device-ID"

	// DefaultDeviceMaxAge is how long a browser keeps the cookie:
	// 400 days, the most current browsers allow.
	DefaultDeviceMaxAge = 400 * 24 * time.Hour

	// MinDeviceKeyLen is the shortest key accepted, in bytes: the
	// size of an HMAC-SHA256 output, so the key is no weaker than the
	// signature.
	MinDeviceKeyLen = 32

	// MaxUnsignedDeviceID is the longest unsigned device ID read from
	// the header with [DeviceIDOptions.InsecureAcceptUnsignedHeader].
	MaxUnsignedDeviceID = 128

	// UnsignedDeviceIDPrefix starts every device ID taken from an
	// unsigned header, so that it never equals a signed one.
	UnsignedDeviceIDPrefix = "unsigned:"
)

// The signed value is kid "." id "." mac, each part unpadded base64url:
// an 8-character key ID, a 16-byte random ID and a 32-byte HMAC-SHA256.
const (
	kidLen    = 8
	idLen     = 22
	macLen    = 43
	signedLen = kidLen + 1 + idLen + 1 + macLen
)

// macContext separates device-ID signatures from anything else the
// same key might sign.
const macContext = "runtimeid device id v1\x00"

var b64 = base64.RawURLEncoding.Strict()

// DeviceIDOptions configures [NewDeviceID]. Keys is required; the zero
// value of every other field is a safe default.
type DeviceIDOptions struct {
	// Keys sign and verify device IDs, each at least
	// [MinDeviceKeyLen] random bytes. The first signs new values;
	// every key verifies. To rotate, put the new key first and keep
	// the old one after it until the old cookies have been re-signed
	// ([DeviceID.Middleware] does that on the next visit).
	Keys [][]byte

	// CookieName is the device cookie's name; empty means
	// [DefaultDeviceCookie].
	CookieName string

	// MaxAge is the cookie's lifetime; zero means
	// [DefaultDeviceMaxAge].
	MaxAge time.Duration

	// ReadHeader makes the collector read a device ID from a request
	// header as well, for native clients that keep no cookies. Off by
	// default. The cookie wins when both are valid.
	ReadHeader bool

	// HeaderName is the header read when ReadHeader is set; empty
	// means [DefaultDeviceHeader].
	HeaderName string

	// InsecureAcceptUnsignedHeader accepts any header value of at
	// most [MaxUnsignedDeviceID] characters from [A-Za-z0-9._:-] as
	// the device ID, prefixed with [UnsignedDeviceIDPrefix]. Such an ID
	// is only a name the client chose: anyone can send any value, so
	// it proves nothing about the device. By default a header must
	// carry a value signed as the cookie's is ([DeviceID.NewValue]).
	InsecureAcceptUnsignedHeader bool
}

// LogValue keeps the keys out of logs.
func (o DeviceIDOptions) LogValue() slog.Value {
	return slog.GroupValue(
		slog.Int("keys", len(o.Keys)),
		slog.String("cookie", o.CookieName),
		slog.Bool("header", o.ReadHeader),
	)
}

// String keeps the keys out of formatted output.
func (o DeviceIDOptions) String() string {
	return fmt.Sprintf("DeviceIDOptions{keys: %d [redacted]}",
		len(o.Keys))
}

// DeviceID gives each browser a stable device identifier in a signed
// cookie, and stores the verified identifier in
// [runtimeid.DeviceSignals.ID].
//
// What it trusts: only a value signed with one of its keys. The value
// is a random ID and an HMAC-SHA256 of it, so a client can neither
// choose an ID nor alter one; it can replay a cookie it copied from
// another browser, which no cookie can prevent. An ID is therefore a
// strong hint that the device was seen before, not proof of who holds
// it. An unsigned header is accepted only with
// [DeviceIDOptions.InsecureAcceptUnsignedHeader].
//
// How it fails: a missing cookie leaves the ID empty. A cookie or
// header that is forged, truncated, oversized, signed by an unknown key
// or sent twice is ignored as if absent, and counted in
// [DeviceID.Stats]; Collect never returns an error. Two cookies of the
// same name are both ignored, because the browser does not say which is
// its own: one may have been planted by a sibling domain (cookie
// tossing) when the name lacks the __Host- prefix.
//
// The collector runs before the handler and cannot set a cookie, so a
// first visit has no ID; wrap the handler with [DeviceID.Middleware]
// outside the engine's middleware to issue one on that visit's response
// for the next request to carry.
//
// DeviceID is safe for concurrent use.
type DeviceID struct {
	keys   []deviceKey // keys[0] signs
	cookie string
	maxAge int    // seconds
	header string // "" when the header is not read
	unsign bool

	verified atomic.Uint64
	rejected atomic.Uint64
	issued   atomic.Uint64
}

var _ runtimeid.SignalCollector = (*DeviceID)(nil)

type deviceKey struct {
	id  string
	key []byte
}

// NewDeviceID returns a device-ID collector. The keys are copied. An
// error wraps [ErrDeviceIDConfig].
func NewDeviceID(opts DeviceIDOptions) (*DeviceID, error) {
	d := &DeviceID{
		cookie: orDefault(opts.CookieName, DefaultDeviceCookie),
		maxAge: int(DefaultDeviceMaxAge / time.Second),
		unsign: opts.InsecureAcceptUnsignedHeader,
	}
	if opts.MaxAge > 0 {
		d.maxAge = int(opts.MaxAge / time.Second)
	}
	if opts.ReadHeader {
		d.header = http.CanonicalHeaderKey(
			orDefault(opts.HeaderName, DefaultDeviceHeader))
	}
	if err := d.setKeys(opts.Keys); err != nil {
		return nil, err
	}
	if err := (&http.Cookie{Name: d.cookie, Value: "x"}).Valid(); err != nil {
		return nil, fmt.Errorf("%w: cookie name %q: %w",
			ErrDeviceIDConfig, d.cookie, err)
	}
	if d.header != "" && !isToken(d.header) {
		return nil, fmt.Errorf("%w: invalid header name %q",
			ErrDeviceIDConfig, d.header)
	}
	return d, nil
}

func (d *DeviceID) setKeys(keys [][]byte) error {
	if len(keys) == 0 {
		return fmt.Errorf("%w: no key", ErrDeviceIDConfig)
	}
	seen := map[string]bool{}
	for i, k := range keys {
		if len(k) < MinDeviceKeyLen {
			return fmt.Errorf("%w: key %d is %d bytes, want at least %d",
				ErrDeviceIDConfig, i, len(k), MinDeviceKeyLen)
		}
		kid := keyID(k)
		if seen[kid] {
			return fmt.Errorf("%w: key %d is listed twice",
				ErrDeviceIDConfig, i)
		}
		seen[kid] = true
		d.keys = append(d.keys, deviceKey{kid, append([]byte(nil), k...)})
	}
	return nil
}

// keyID names a key in the signed value, so verification tries only
// that key. It is a MAC of a constant, which says nothing about the key.
func keyID(key []byte) string {
	m := hmac.New(sha256.New, key)
	m.Write([]byte("runtimeid device key id"))
	return b64.EncodeToString(m.Sum(nil))[:kidLen]
}

func orDefault(s, def string) string {
	if s == "" {
		return def
	}
	return s
}

// Collect implements [runtimeid.SignalCollector]. It sets
// ev.Signals.Device.ID from the request's cookie or header when one is
// valid, and leaves it alone otherwise. Without a request it does
// nothing.
func (d *DeviceID) Collect(_ context.Context, ev *runtimeid.Evaluation) error {
	if ev.Request == nil {
		return nil
	}
	id, _, found := d.fromRequest(ev.Request)
	switch {
	case id != "":
		d.verified.Add(1)
		ev.Signals.Device.ID = id
	case found:
		d.rejected.Add(1)
	}
	return nil
}

// FromRequest returns the request's verified device ID, or "" when it
// carries none that is valid. It counts nothing.
func (d *DeviceID) FromRequest(r *http.Request) string {
	id, _, _ := d.fromRequest(r)
	return id
}

// fromRequest returns the device ID, whether the primary key signed it
// (false for an unsigned header), and whether any cookie or header
// was present at all.
func (d *DeviceID) fromRequest(r *http.Request) (id string, primary, found bool) {
	cookies := r.CookiesNamed(d.cookie)
	if len(cookies) == 1 {
		if id, k, ok := d.verify(cookies[0].Value); ok {
			return id, k == 0, true
		}
	}
	found = len(cookies) > 0
	if d.header == "" {
		return "", false, found
	}
	vals := r.Header.Values(d.header)
	if len(vals) != 1 {
		return "", false, found || len(vals) > 0
	}
	if id, k, ok := d.verify(vals[0]); ok {
		return id, k == 0, true
	}
	if d.unsign && validUnsigned(vals[0]) {
		return UnsignedDeviceIDPrefix + vals[0], false, true
	}
	return "", false, true
}

// verify checks a signed value and returns its ID and the index of the
// key that signed it.
func (d *DeviceID) verify(v string) (string, int, bool) {
	// The exact length is checked first, so a truncated or
	// oversized value costs nothing more.
	if len(v) != signedLen || v[kidLen] != '.' ||
		v[kidLen+1+idLen] != '.' {
		return "", 0, false
	}
	kid, id := v[:kidLen], v[kidLen+1:kidLen+1+idLen]
	mac, err := b64.DecodeString(v[signedLen-macLen:])
	if err != nil {
		return "", 0, false
	}
	for i, k := range d.keys {
		if k.id == kid && hmac.Equal(mac, k.sign(kid, id)) {
			return id, i, validID(id)
		}
	}
	return "", 0, false
}

func (k deviceKey) sign(kid, id string) []byte {
	m := hmac.New(sha256.New, k.key)
	m.Write([]byte(macContext))
	m.Write([]byte(kid))
	m.Write([]byte{'.'})
	m.Write([]byte(id))
	return m.Sum(nil)
}

// validID reports whether id is the canonical encoding of 16 bytes.
func validID(id string) bool {
	b, err := b64.DecodeString(id)
	return err == nil && len(b) == 16
}

func validUnsigned(v string) bool {
	return v != "" && len(v) <= MaxUnsignedDeviceID &&
		allBytes(v, isUnsignedIDChar)
}

func isUnsignedIDChar(c byte) bool {
	return isObfChar(c) || c == ':'
}

// NewValue returns a new random device ID and its value signed with
// the first key: what the cookie holds, and what a native client sends
// in the header.
func (d *DeviceID) NewValue() (id, value string) {
	var b [16]byte
	// crypto/rand.Read never fails (it crashes the program first).
	_, _ = rand.Read(b[:])
	id = b64.EncodeToString(b[:])
	return id, d.signed(id)
}

func (d *DeviceID) signed(id string) string {
	k := d.keys[0]
	return k.id + "." + id + "." + b64.EncodeToString(k.sign(k.id, id))
}

// Issue sets a new device cookie on the response and returns its ID.
// It must be called before the response's header is written.
func (d *DeviceID) Issue(w http.ResponseWriter) string {
	id, v := d.NewValue()
	d.setCookie(w, v)
	return id
}

func (d *DeviceID) setCookie(w http.ResponseWriter, value string) {
	d.issued.Add(1)
	http.SetCookie(w, &http.Cookie{
		Name:     d.cookie,
		Value:    value,
		Path:     "/",
		MaxAge:   d.maxAge,
		Secure:   true,
		HttpOnly: true,
		SameSite: http.SameSiteLaxMode,
	})
}

// Middleware issues a device cookie to a browser that has no valid one,
// on the response to its first request, so its next request carries
// it. A cookie signed by an older key is signed again with the first
// key, keeping its ID, which completes a key rotation. A request with a
// valid device header gets no cookie.
//
// Wrap it outside the engine's middleware: the cookie is set before the
// engine runs, so even a blocked or challenged response carries it. The
// request the cookie was issued on is evaluated without a device ID: a
// fresh ID says nothing about the device.
func (d *DeviceID) Middleware(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch id, primary, _ := d.fromRequest(r); {
		case id == "":
			d.Issue(w)
		case !primary && d.cookieCarries(r, id):
			d.setCookie(w, d.signed(id))
		}
		next.ServeHTTP(w, r)
	})
}

// cookieCarries reports whether id came from the cookie rather than
// the header: only a cookie is re-signed.
func (d *DeviceID) cookieCarries(r *http.Request, id string) bool {
	c := r.CookiesNamed(d.cookie)
	return len(c) == 1 && len(c[0].Value) == signedLen &&
		c[0].Value[kidLen+1:kidLen+1+idLen] == id
}

// DeviceIDStats counts what [DeviceID.Collect] saw, since the
// collector was made.
type DeviceIDStats struct {
	Verified uint64 // requests with a valid device ID
	Rejected uint64 // requests with a cookie or header, none valid
	Issued   uint64 // cookies set by Issue and Middleware
}

// Stats returns the counters. A steady stream of rejections means
// clients send forged or stale values, or the keys were rotated without
// keeping the old one.
func (d *DeviceID) Stats() DeviceIDStats {
	return DeviceIDStats{
		Verified: d.verified.Load(),
		Rejected: d.rejected.Load(),
		Issued:   d.issued.Load(),
	}
}
