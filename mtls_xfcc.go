package runtimeid

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"net/url"
	"strings"
)

// ErrXFCC means an X-Forwarded-Client-Cert header could not be read
// without guessing. [MTLS] then treats the client certificate as
// missing, and the error is the cause in [TokenError.Err].
var ErrXFCC = errors.New("runtimeid: malformed x-forwarded-client-cert")

// The limits on an X-Forwarded-Client-Cert header, all lines together.
const (
	// MaxXFCCHeader is the largest header read: room for a Cert and a
	// Chain of a few RSA certificates, URL-encoded.
	MaxXFCCHeader = 32 << 10

	// MaxXFCCElements is how many elements are parsed before the
	// header is refused. Only a header of one element is used.
	MaxXFCCElements = 16

	// MaxXFCCPairs is how many key=value pairs one element may hold:
	// room for a certificate with over a hundred DNS and URI names.
	MaxXFCCPairs = 128
)

// The keys of an XFCC element. Hash, Cert, Chain and Subject appear
// once; Envoy writes By, URI and DNS once per name.
var xfccKeys = map[string]bool{
	"by": true, "uri": true, "dns": true,
	"hash": false, "cert": false, "chain": false, "subject": false,
}

// xfccElement holds one element's values by lowercase key.
type xfccElement map[string][]string

// xfccCert returns the DER of the client certificate an Envoy proxy
// passed in X-Forwarded-Client-Cert, nil with a nil error when the
// header is absent, or an error wrapping [ErrXFCC].
//
// Which element: Envoy writes one element per TLS connection it
// terminates, for that connection's client certificate. SANITIZE_SET
// replaces the header with it; APPEND_FORWARD appends it after a comma
// to what the downstream sent. Either way the last element describes
// the connection the trusted proxy terminated, and only it can be
// believed. But Envoy writes URI and DNS names unquoted and unescaped,
// and they come from the client's certificate: a name holding a comma
// would end the real element and start one of the client's choosing,
// indistinguishable from a real one. So exactly one element is
// accepted, as SANITIZE_SET sends it; any other count is refused.
//
// The element must have Cert (URL-encoded PEM of one certificate);
// when it has Hash too (hex SHA-256 of the DER, always written by
// Envoy), the two must agree. A semicolon in a name cannot smuggle in
// a second Cert or Hash: a key that may appear once, seen twice, is
// refused. Chain, Subject, By, URI and DNS are parsed, not used.
func xfccCert(lines []string) ([]byte, error) {
	h := strings.TrimSpace(strings.Join(lines, ","))
	switch {
	case h == "":
		return nil, nil
	case len(h) > MaxXFCCHeader:
		return nil, fmt.Errorf("%w: over %d bytes", ErrXFCC, MaxXFCCHeader)
	}
	els, err := parseXFCC(h)
	if err != nil {
		return nil, err
	}
	if len(els) != 1 {
		return nil, fmt.Errorf("%w: %d elements, want the one the proxy set",
			ErrXFCC, len(els))
	}
	return els[0].cert()
}

// cert decodes the element's Cert and checks its Hash.
func (el xfccElement) cert() ([]byte, error) {
	certs := el["cert"]
	if len(certs) == 0 {
		return nil, fmt.Errorf("%w: no Cert", ErrXFCC)
	}
	der, err := xfccPEM(certs[0])
	if err != nil {
		return nil, err
	}
	if hashes := el["hash"]; len(hashes) > 0 {
		want, err := hex.DecodeString(hashes[0])
		sum := sha256.Sum256(der)
		if err != nil || !bytes.Equal(want, sum[:]) {
			return nil, fmt.Errorf("%w: Hash does not match Cert", ErrXFCC)
		}
	}
	return der, nil
}

// xfccPEM decodes a URL-encoded PEM holding exactly one certificate.
func xfccPEM(v string) ([]byte, error) {
	// PathUnescape, not QueryUnescape: a "+" of base64 stays a "+".
	s, err := url.PathUnescape(v)
	if err != nil {
		return nil, fmt.Errorf("%w: Cert is not URL-encoded", ErrXFCC)
	}
	block, rest := pem.Decode([]byte(s))
	if block == nil || block.Type != "CERTIFICATE" ||
		len(block.Headers) > 0 || len(bytes.TrimSpace(rest)) > 0 {
		return nil, fmt.Errorf("%w: Cert is not one PEM certificate", ErrXFCC)
	}
	der, ok := parsedCert(block.Bytes)
	if !ok {
		return nil, fmt.Errorf("%w: Cert is not an X.509 certificate", ErrXFCC)
	}
	return der, nil
}

// parseXFCC splits h into elements (separated by commas) of key=value
// pairs (separated by semicolons). Keys are case-insensitive; a value
// holding a comma, semicolon or quote is a quoted string with
// backslash escapes. Anything else is refused: an unknown key, a key
// that may appear once seen twice, an unbalanced quote, an empty
// element, more than [MaxXFCCElements] elements or [MaxXFCCPairs]
// pairs in one.
func parseXFCC(h string) ([]xfccElement, error) {
	var els []xfccElement
	el, pairs := xfccElement{}, 0
	for rest := h; ; pairs++ {
		key, val, sep, tail, err := nextXFCCPair(rest)
		if err == nil {
			err = el.add(key, val)
		}
		if err == nil && pairs == MaxXFCCPairs {
			err = fmt.Errorf("over %d pairs", MaxXFCCPairs)
		}
		if err != nil {
			return nil, fmt.Errorf("%w: element %d: %w", ErrXFCC, len(els)+1, err)
		}
		rest = tail
		if sep == ';' {
			continue
		}
		els = append(els, el)
		switch {
		case sep == 0:
			return els, nil
		case len(els) == MaxXFCCElements:
			return nil, fmt.Errorf("%w: over %d elements", ErrXFCC, MaxXFCCElements)
		}
		el, pairs = xfccElement{}, -1
	}
}

// add records one pair, refusing unknown and repeated keys.
func (el xfccElement) add(key, val string) error {
	k := strings.ToLower(key)
	many, known := xfccKeys[k]
	switch {
	case !known:
		return fmt.Errorf("unknown key %s", quote(key))
	case !many && len(el[k]) > 0:
		return fmt.Errorf("duplicate key %s", key)
	}
	el[k] = append(el[k], val)
	return nil
}

// nextXFCCPair reads one key=value pair from the start of s. sep is
// the separator that ended it (';', ',') or 0 at the end of s, and
// rest what follows the separator.
func nextXFCCPair(s string) (key, val string, sep byte, rest string, err error) {
	key, v, ok := strings.Cut(s, "=")
	if i := strings.IndexAny(key, ",;"); i >= 0 {
		key, ok = key[:i], false
	}
	if !ok && strings.TrimSpace(key) == "" {
		return "", "", 0, "", errors.New("empty pair or element")
	}
	if !ok {
		return "", "", 0, "", errors.New("pair without =")
	}
	key = strings.TrimSpace(key)
	v = strings.TrimLeft(v, " \t")
	var n int
	if strings.HasPrefix(v, `"`) {
		val, n, err = quotedValue(v)
	} else {
		val, n, err = plainValue(v)
	}
	if err != nil {
		return "", "", 0, "", err
	}
	if n == len(v) {
		return key, val, 0, "", nil
	}
	return key, val, v[n], v[n+1:], nil
}

// quotedValue reads the quoted string at the start of v and returns it
// unescaped, with the index of the separator after it (or len(v)).
func quotedValue(v string) (string, int, error) {
	var b strings.Builder
	i := 1
	for ; i < len(v) && v[i] != '"'; i++ {
		if v[i] == '\\' {
			i++
			if i == len(v) {
				break
			}
		}
		b.WriteByte(v[i])
	}
	if i >= len(v) {
		return "", 0, errors.New("unterminated quoted value")
	}
	n := i + 1
	for n < len(v) && (v[n] == ' ' || v[n] == '\t') {
		n++
	}
	if n < len(v) && v[n] != ';' && v[n] != ',' {
		return "", 0, errors.New("text after a quoted value")
	}
	return b.String(), n, nil
}

// plainValue reads an unquoted value up to the next separator. Envoy
// writes URI and DNS names this way even when they hold "="; a quote
// inside one is refused, since where it would end is a guess.
func plainValue(v string) (string, int, error) {
	n := strings.IndexAny(v, ";,")
	if n < 0 {
		n = len(v)
	}
	if strings.IndexByte(v[:n], '"') >= 0 {
		return "", 0, errors.New("quote inside an unquoted value")
	}
	return strings.TrimRight(v[:n], " \t"), n, nil
}
