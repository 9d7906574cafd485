package stepup

import (
	"context"
	"io"
	"strconv"
	"time"

	"github.com/runtimeid/runtimeid"
)

// maxPasskeys bounds the passkeys of one user.
const maxPasskeys = 10

// userRecord is one user's enrolled factors, sealed in the store.
type userRecord struct {
	// WebAuthnID is the random user handle passkeys are made for; it
	// says nothing about the user.
	WebAuthnID []byte        `json:"wid,omitempty"`
	Passkeys   []passkeyCred `json:"pk,omitempty"`
	OTP        *otpSecret    `json:"otp,omitempty"`
	PendingOTP *otpSecret    `json:"otp_pending,omitempty"`
}

func (r *userRecord) enrolled() bool { return r.OTP != nil || len(r.Passkeys) > 0 }

func (s *Service) loadUser(ctx context.Context, key string) (*userRecord, error) {
	rec := &userRecord{}
	if _, err := s.load(ctx, key, rec); err != nil {
		return nil, err
	}
	return rec, nil
}

func (s *Service) saveUser(ctx context.Context, key string, rec *userRecord) error {
	return s.save(ctx, key, rec, 0)
}

// mayEnroll says whether id may add a factor now: the first one within
// EnrollMaxAge of the token's authentication or of a step-up; any
// further one only within EnrollMaxAge of a step-up with a factor the
// user already has.
func (s *Service) mayEnroll(ctx context.Context, id *runtimeid.Identity, rec *userRecord) error {
	now := s.opts.Now()
	fresh := func(t time.Time) bool {
		return !t.IsZero() && now.Sub(t) <= s.opts.EnrollMaxAge
	}
	if su, ok := s.Record(ctx, id); ok && fresh(su.Time) {
		return nil
	}
	if !rec.enrolled() && fresh(id.AuthTime) {
		return nil
	}
	return errStepUpFirst
}

// Factors says what a user has enrolled.
type Factors struct {
	Passkeys int  `json:"passkeys"`
	OTP      bool `json:"otp"`
}

func (s *Service) factors(ctx context.Context, id *runtimeid.Identity) (Factors, error) {
	rec, err := s.loadUser(ctx, userKey(id))
	if err != nil {
		return Factors{}, err
	}
	return Factors{Passkeys: len(rec.Passkeys), OTP: rec.OTP != nil}, nil
}

// newID returns 16 random bytes in hex.
func (s *Service) newID() (string, error) {
	var b [16]byte
	if _, err := io.ReadFull(s.opts.Rand, b[:]); err != nil {
		return "", err
	}
	const hexd = "0123456789abcdef"
	out := make([]byte, 32)
	for i, c := range b {
		out[2*i], out[2*i+1] = hexd[c>>4], hexd[c&15]
	}
	return string(out), nil
}

func itoa(n int64) string { return strconv.FormatInt(n, 10) }
