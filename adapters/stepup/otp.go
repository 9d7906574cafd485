package stepup

import (
	"bytes"
	"context"
	"crypto/subtle"
	"encoding/base64"
	"image/png"
	"time"

	"github.com/pquerna/otp"
	"github.com/pquerna/otp/hotp"
	"github.com/pquerna/otp/totp"

	"github.com/runtimeid/runtimeid"
)

// The code parameters, which every authenticator app understands:
// RFC 6238 with HMAC-SHA1, 30-second steps and six digits. A code is
// accepted one step early or late, for clocks that drift.
const (
	otpPeriod = 30
	otpDigits = 6
	otpSkew   = 1
)

// otpSecret is an enrolled or pending code secret.
type otpSecret struct {
	Secret  string    `json:"s"`              // base32, as in the otpauth URI
	Last    int64     `json:"last,omitempty"` // last accepted time step
	Created time.Time `json:"c"`
}

// step is the RFC 6238 time step of t.
func step(t time.Time) int64 { return t.Unix() / otpPeriod }

// match returns the time step within the skew whose code is code, or
// false. Every candidate is compared, in constant time, so the time
// taken does not say which step came close.
func (o *otpSecret) match(code string, now time.Time) (int64, bool) {
	if len(code) != otpDigits {
		return 0, false
	}
	var found int64
	ok := 0
	for d := int64(-otpSkew); d <= otpSkew; d++ {
		st := step(now) + d
		want, err := hotp.GenerateCodeCustom(o.Secret, uint64(st), hotp.ValidateOpts{
			Digits: otp.DigitsSix, Algorithm: otp.AlgorithmSHA1})
		if err != nil {
			return 0, false
		}
		if subtle.ConstantTimeCompare([]byte(want), []byte(code)) == 1 {
			found, ok = st, 1
		}
	}
	return found, ok == 1
}

// OTPEnrollment is the answer to a code enrollment: the secret, shown
// once, for the user's authenticator app.
type OTPEnrollment struct {
	// URI is the otpauth:// URI of the secret.
	URI string `json:"otpauth_uri"`

	// Secret is the base32 secret, for typing in by hand.
	Secret string `json:"secret"`

	// QR is the URI as a QR code: a data: URL of a PNG image.
	QR string `json:"qr"`
}

// enrollOTP makes a pending code secret; confirmOTP activates it.
func (s *Service) enrollOTP(ctx context.Context, id *runtimeid.Identity) (OTPEnrollment, error) {
	uk := userKey(id)
	defer s.lock(uk)()
	rec, err := s.loadUser(ctx, uk)
	if err != nil {
		return OTPEnrollment{}, err
	}
	if err := s.mayEnroll(ctx, id, rec); err != nil {
		return OTPEnrollment{}, err
	}
	key, err := totp.Generate(totp.GenerateOpts{
		Issuer: s.opts.DisplayName, AccountName: accountName(id),
		Period: otpPeriod, Digits: otp.DigitsSix,
		Algorithm: otp.AlgorithmSHA1, Rand: s.opts.Rand,
	})
	if err != nil {
		return OTPEnrollment{}, err
	}
	rec.PendingOTP = &otpSecret{Secret: key.Secret(), Created: s.opts.Now().UTC()}
	if err := s.saveUser(ctx, uk, rec); err != nil {
		return OTPEnrollment{}, err
	}
	qr, err := qrDataURL(key)
	if err != nil {
		return OTPEnrollment{}, err
	}
	s.opts.Logger.LogAttrs(ctx, levelInfo, "stepup: code secret issued", identityAttr(id))
	return OTPEnrollment{URI: key.URL(), Secret: key.Secret(), QR: qr}, nil
}

func qrDataURL(key *otp.Key) (string, error) {
	img, err := key.Image(200, 200)
	if err != nil {
		return "", err
	}
	var buf bytes.Buffer
	if err := png.Encode(&buf, img); err != nil {
		return "", err
	}
	return "data:image/png;base64," + base64.StdEncoding.EncodeToString(buf.Bytes()), nil
}

// confirmOTP activates the pending secret with its first code. That
// code's step counts as used, so it cannot also answer a challenge.
func (s *Service) confirmOTP(ctx context.Context, id *runtimeid.Identity, code string) error {
	at, aerr := s.limit.begin(ctx, id)
	if aerr != nil {
		return aerr
	}
	ok, err := s.confirmLocked(ctx, id, code)
	if err == nil && !ok {
		err = errVerification
	}
	at.end(ctx, err)
	if err != nil {
		return err
	}
	s.opts.Logger.LogAttrs(ctx, levelInfo, "stepup: code secret enrolled", identityAttr(id))
	return nil
}

func (s *Service) confirmLocked(ctx context.Context, id *runtimeid.Identity,
	code string) (bool, error) {
	uk := userKey(id)
	defer s.lock(uk)()
	rec, err := s.loadUser(ctx, uk)
	if err != nil {
		return false, err
	}
	if rec.PendingOTP == nil {
		return false, errNotEnrolled
	}
	st, ok := rec.PendingOTP.match(code, s.opts.Now())
	if !ok {
		return false, nil
	}
	rec.OTP, rec.PendingOTP = rec.PendingOTP, nil
	rec.OTP.Last = st
	return true, s.saveUser(ctx, uk, rec)
}

// verifyOTP answers a challenge with a code and records the step-up.
func (s *Service) verifyOTP(ctx context.Context, id *runtimeid.Identity,
	code string) (Record, error) {
	at, aerr := s.limit.begin(ctx, id)
	if aerr != nil {
		return Record{}, aerr
	}
	ok, err := s.useCode(ctx, id, code)
	if err == nil && !ok {
		err = errVerification
	}
	at.end(ctx, err)
	if err != nil {
		return Record{}, err
	}
	rec := Record{ACR: ACROTP, Method: "otp", Time: s.opts.Now().UTC(), Device: "otp"}
	return rec, s.record(ctx, id, rec)
}

// useCode checks code against the enrolled secret and uses it up. A
// code of a step at or before the last accepted one is a replay.
func (s *Service) useCode(ctx context.Context, id *runtimeid.Identity, code string) (bool, error) {
	uk := userKey(id)
	defer s.lock(uk)()
	rec, err := s.loadUser(ctx, uk)
	if err != nil {
		return false, err
	}
	if rec.OTP == nil {
		return false, errNotEnrolled
	}
	st, ok := rec.OTP.match(code, s.opts.Now())
	if !ok || st <= rec.OTP.Last {
		return false, nil
	}

	// The lock above serves this process; the store's atomic add
	// stops another instance accepting the same step meanwhile.
	window := time.Duration(2*otpSkew+1) * otpPeriod * time.Second
	if first, err := s.once(ctx, hashKey("o:", uk, itoa(st)), window); err != nil || !first {
		return false, err
	}
	rec.OTP.Last = st
	return true, s.saveUser(ctx, uk, rec)
}

// accountName labels the secret in the user's app.
func accountName(id *runtimeid.Identity) string {
	for _, c := range []string{"preferred_username", "email"} {
		if v, ok := id.Claims[c].(string); ok && v != "" && len(v) <= 128 {
			return v
		}
	}
	return id.Subject
}
