// Package upstream signs and verifies the headers that the runtimeid
// reverse proxy (runtimeid serve) sends to the service behind it: who
// the verified subject is and what the engine decided. A service in any
// language can check them; this package is the reference in Go.
//
// # Headers
//
// With the default prefix, the proxy sends
//
//	X-Runtimeid-Subject    the token's sub
//	X-Runtimeid-Session    its sid
//	X-Runtimeid-Outcome    allow (refused requests never reach the service)
//	X-Runtimeid-Rule       the policy rule that decided
//	X-Runtimeid-Score      the risk score, three decimals, such as 0.125
//	X-Runtimeid-Findings   the finding codes, comma-separated
//	X-Runtimeid-Acr        the token's acr
//	X-Runtimeid-Timestamp  when it signed, in Unix seconds
//	X-Runtimeid-Signature  v1=<base64url HMAC-SHA256, no padding>
//
// Every value is sent, empty when unknown. A byte outside printable
// ASCII, and "%", is sent percent-encoded (%XX) so that no value can
// break a header; [Verifier.Verify] decodes them.
//
// # Signature
//
// The signature is HMAC-SHA256, keyed with the shared secret, over the
// lines, joined by "\n" with no final newline:
//
//	runtimeid-v1
//	<Timestamp>
//	<method>                 as sent upstream, such as GET
//	<request URI>            path and query as sent upstream
//	<Subject>
//	<Session>
//	<Outcome>
//	<Rule>
//	<Score>
//	<Findings>
//	<Acr>
//
// each header value exactly as sent (still percent-encoded). It proves
// the headers came from a proxy holding the secret, for this method and
// request URI, within the verifier's maximum age. It does not cover the
// body or other headers, and a recorded request can be replayed within
// the maximum age: the service must accept traffic only from the proxy's
// network as well.
package upstream

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"net/http"
	"net/textproto"
	"strconv"
	"strings"
	"time"
)

// Defaults.
const (
	// DefaultPrefix starts every header name when none is given.
	DefaultPrefix = "X-Runtimeid-"

	// DefaultMaxAge is how old a signature [Verifier.Verify] accepts,
	// and how far in the future, when [VerifierOptions.MaxAge] is zero.
	DefaultMaxAge = 2 * time.Minute

	// MinKeySize is the shortest secret accepted, in bytes.
	MinKeySize = 32
)

// The errors of this package.
var (
	// ErrKey means the secret is shorter than [MinKeySize] bytes.
	ErrKey = errors.New("upstream: signing key too short")

	// ErrSignature means the headers are missing, repeated, too old or
	// not signed with the key.
	ErrSignature = errors.New("upstream: invalid signature")
)

// Values are what the headers say.
type Values struct {
	Subject  string
	Session  string
	Outcome  string
	Rule     string
	Score    float64
	Findings []string
	ACR      string

	// Time is when the proxy signed.
	Time time.Time
}

// The signed headers' names after the prefix, in signature order.
var names = [...]string{"Subject", "Session", "Outcome", "Rule", "Score", "Findings", "Acr"}

const (
	nameTimestamp = "Timestamp"
	nameSignature = "Signature"
	version       = "runtimeid-v1"
)

// Signer adds signed headers to requests. It is safe for concurrent use.
type Signer struct {
	key    []byte
	prefix string
}

// NewSigner returns a signer with the secret key and the header prefix
// ("" means [DefaultPrefix]). The key must have at least [MinKeySize]
// bytes.
func NewSigner(key []byte, prefix string) (*Signer, error) {
	if len(key) < MinKeySize {
		return nil, fmt.Errorf("%w: %d bytes, want at least %d", ErrKey, len(key), MinKeySize)
	}
	return &Signer{key: append([]byte(nil), key...), prefix: canonicalPrefix(prefix)}, nil
}

func canonicalPrefix(p string) string {
	if p == "" {
		p = DefaultPrefix
	}
	return textproto.CanonicalMIMEHeaderKey(p)
}

// Sign replaces every header of the prefix in h with the values, the
// timestamp and the signature over them, method and requestURI.
func (s *Signer) Sign(h http.Header, method, requestURI string, v Values) {
	Strip(h, s.prefix)
	vals := [len(names)]string{v.Subject, v.Session, v.Outcome, v.Rule,
		strconv.FormatFloat(v.Score, 'f', 3, 64), strings.Join(v.Findings, ","), v.ACR}
	for i, n := range names {
		vals[i] = escape(vals[i])
		h.Set(s.prefix+n, vals[i])
	}
	ts := strconv.FormatInt(v.Time.Unix(), 10)
	h.Set(s.prefix+nameTimestamp, ts)
	h.Set(s.prefix+nameSignature, "v1="+sign(s.key, ts, method, requestURI, vals[:]))
}

// Strip removes every header whose name starts with prefix ("" means
// [DefaultPrefix]), in any case. The proxy strips what a client sent
// before it adds its own.
func Strip(h http.Header, prefix string) {
	prefix = canonicalPrefix(prefix)
	for k := range h {
		if len(k) >= len(prefix) && strings.EqualFold(k[:len(prefix)], prefix) {
			delete(h, k)
		}
	}
}

func sign(key []byte, ts, method, uri string, vals []string) string {
	mac := hmac.New(sha256.New, key)
	mac.Write([]byte(version + "\n" + ts + "\n" + method + "\n" + uri))
	for _, v := range vals {
		mac.Write([]byte("\n" + v))
	}
	return base64.RawURLEncoding.EncodeToString(mac.Sum(nil))
}

// escape percent-encodes "%" and every byte outside printable ASCII.
func escape(s string) string {
	if !strings.ContainsFunc(s, needsEscape) {
		return s
	}
	var b strings.Builder
	for _, c := range []byte(s) {
		if c == '%' || c < 0x20 || c >= 0x7f {
			fmt.Fprintf(&b, "%%%02X", c)
		} else {
			b.WriteByte(c)
		}
	}
	return b.String()
}

func needsEscape(r rune) bool { return r == '%' || r < 0x20 || r >= 0x7f }

func unescape(s string) (string, error) {
	if !strings.Contains(s, "%") {
		return s, nil
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] != '%' {
			b.WriteByte(s[i])
			continue
		}
		if i+2 >= len(s) {
			return "", errors.New("truncated escape")
		}
		n, err := strconv.ParseUint(s[i+1:i+3], 16, 8)
		if err != nil {
			return "", errors.New("bad escape")
		}
		b.WriteByte(byte(n))
		i += 2
	}
	return b.String(), nil
}
