package upstream

import (
	"crypto/hmac"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// VerifierOptions configure a [Verifier]. The zero value means the
// defaults.
type VerifierOptions struct {
	// Prefix starts the header names. Empty means [DefaultPrefix].
	Prefix string

	// MaxAge is how far the timestamp may be from now, either way.
	// Zero means [DefaultMaxAge].
	MaxAge time.Duration

	// Now is the clock. Nil means [time.Now].
	Now func() time.Time
}

// Verifier checks the signed headers of requests from the proxy. It is
// safe for concurrent use.
type Verifier struct {
	key    []byte
	prefix string
	maxAge time.Duration
	now    func() time.Time
}

// NewVerifier returns a verifier with the proxy's secret key, which
// must have at least [MinKeySize] bytes.
func NewVerifier(key []byte, opts VerifierOptions) (*Verifier, error) {
	if len(key) < MinKeySize {
		return nil, fmt.Errorf("%w: %d bytes, want at least %d", ErrKey, len(key), MinKeySize)
	}
	v := &Verifier{key: append([]byte(nil), key...), prefix: canonicalPrefix(opts.Prefix),
		maxAge: opts.MaxAge, now: opts.Now}
	if v.maxAge <= 0 {
		v.maxAge = DefaultMaxAge
	}
	if v.now == nil {
		v.now = time.Now
	}
	return v, nil
}

// Verify checks r's headers and returns what they say. It uses r.Method
// and r.URL.RequestURI(), as the service received them. Every error
// wraps [ErrSignature]; a request that fails must be refused, since
// anyone can write these headers.
func (v *Verifier) Verify(r *http.Request) (Values, error) {
	var vals [len(names)]string
	for i, n := range names {
		s, err := v.header(r.Header, n)
		if err != nil {
			return Values{}, err
		}
		vals[i] = s
	}
	ts, err := v.header(r.Header, nameTimestamp)
	if err != nil {
		return Values{}, err
	}
	sig, err := v.header(r.Header, nameSignature)
	if err != nil {
		return Values{}, err
	}

	want := "v1=" + sign(v.key, ts, r.Method, r.URL.RequestURI(), vals[:])
	if !hmac.Equal([]byte(sig), []byte(want)) {
		return Values{}, fmt.Errorf("%w: signature does not match", ErrSignature)
	}
	sec, err := strconv.ParseInt(ts, 10, 64)
	if err != nil {
		return Values{}, fmt.Errorf("%w: bad timestamp", ErrSignature)
	}
	at := time.Unix(sec, 0).UTC()
	if d := v.now().Sub(at); d > v.maxAge || d < -v.maxAge {
		return Values{}, fmt.Errorf("%w: signed %v ago, at most %v", ErrSignature,
			d.Round(time.Second), v.maxAge)
	}
	return decode(vals, at)
}

// header returns the one value of the header, refusing a missing or
// repeated one.
func (v *Verifier) header(h http.Header, name string) (string, error) {
	vs := h.Values(v.prefix + name)
	if len(vs) != 1 {
		return "", fmt.Errorf("%w: %d %s headers, want 1", ErrSignature, len(vs), v.prefix+name)
	}
	return vs[0], nil
}

func decode(vals [len(names)]string, at time.Time) (Values, error) {
	for i := range vals {
		s, err := unescape(vals[i])
		if err != nil {
			return Values{}, fmt.Errorf("%w: %s: %w", ErrSignature, names[i], err)
		}
		vals[i] = s
	}
	out := Values{Subject: vals[0], Session: vals[1], Outcome: vals[2], Rule: vals[3],
		ACR: vals[6], Time: at}
	score, err := strconv.ParseFloat(vals[4], 64)
	if err != nil {
		return Values{}, fmt.Errorf("%w: bad score", ErrSignature)
	}
	out.Score = score
	if vals[5] != "" {
		out.Findings = strings.Split(vals[5], ",")
	}
	return out, nil
}
