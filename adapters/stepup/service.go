package stepup

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"hash/fnv"
	"sync"
	"time"

	"github.com/go-webauthn/webauthn/webauthn"

	"github.com/runtimeid/runtimeid"
)

// Service answers step-up challenges with passkeys and one-time codes,
// and reports the step-ups it recorded to the engine. Build it with
// [New]; it is safe for concurrent use.
type Service struct {
	opts  Options
	seal  *sealer
	auth  *runtimeid.Engine // verifies callers' tokens; never learns
	wa    *webauthn.WebAuthn
	limit limiter

	// locks serialise the read, change and write of one user's or
	// session's stored values within this process, by hash.
	locks [64]sync.Mutex
}

var _ runtimeid.StepUpSource = (*Service)(nil)

// Record is one step-up a session completed.
type Record struct {
	// ACR is the authentication context class achieved: [ACRPasskey],
	// [ACRPasskeyPresence] or [ACROTP].
	ACR string `json:"acr"`

	// Method is "passkey" or "otp".
	Method string `json:"method"`

	// Time is when the user proved it, in UTC: the step-up's
	// auth_time.
	Time time.Time `json:"auth_time"`

	// Device names the authenticator: "passkey:" and a hash of the
	// credential id, or "otp" for the code secret.
	Device string `json:"device"`
}

// New checks opts and builds a service. Invalid options give an error
// wrapping [ErrOptions].
func New(opts Options) (*Service, error) {
	if err := opts.setDefaults(); err != nil {
		return nil, err
	}
	seal, err := newSealer(opts.EncryptionKeys, opts.Rand)
	if err != nil {
		return nil, err
	}
	s := &Service{opts: opts, seal: seal}
	s.limit = limiter{s: s}

	// The service's own engine only verifies tokens: it allows every
	// identity and learns nothing, so a visit to the step-up page never
	// teaches a baseline the device it is being challenged for.
	s.auth, err = runtimeid.New(runtimeid.Config{
		Token:      opts.Token,
		Validators: opts.Validators,
		Policy:     allowAll{},
		Now:        opts.Now,
	})
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrOptions, err)
	}
	if opts.RPID != "" {
		if s.wa, err = newWebAuthn(&opts); err != nil {
			return nil, err
		}
	}
	return s, nil
}

// allowAll is the policy of the service's token-verifying engine.
type allowAll struct{}

func (allowAll) Decide(context.Context, *runtimeid.Evaluation) (runtimeid.Decision, error) {
	return runtimeid.Decision{Outcome: runtimeid.Allow, Rule: "stepup",
		Reason: "authenticated"}, nil
}

// StepUp implements [runtimeid.StepUpSource]: of the step-ups recorded
// for the identity's session, the latest whose acr want accepts, else
// the latest. The session keeps the latest step-up of each acr, so a
// code entered after a passkey does not hide the passkey from a
// challenge that demands [ACRPasskey]. A store error reads as none.
func (s *Service) StepUp(ctx context.Context, id *runtimeid.Identity,
	want *runtimeid.StepUp) (string, time.Time, bool) {
	recs, ok := s.records(ctx, id)
	if !ok {
		return "", time.Time{}, false
	}
	rec := recs.pick(want)
	return rec.ACR, rec.Time, true
}

// Record returns the latest step-up recorded for the identity's session.
func (s *Service) Record(ctx context.Context, id *runtimeid.Identity) (Record, bool) {
	recs, ok := s.records(ctx, id)
	return recs.Record, ok
}

// records returns the step-ups recorded for the identity's session.
func (s *Service) records(ctx context.Context, id *runtimeid.Identity) (sessionRecords, bool) {
	key, ok := sessionKey(id)
	if !ok {
		return sessionRecords{}, false
	}
	var recs sessionRecords
	found, err := s.load(ctx, key, &recs)
	if err != nil || !found || recs.ACR == "" {
		return sessionRecords{}, false
	}
	return recs, true
}

// record adds rec to the session's step-ups, as the latest.
//
// The read and write are two store calls, serialised in this process
// only: two step-ups of one session completed at the same moment on
// two instances can lose one, which the user then repeats.
func (s *Service) record(ctx context.Context, id *runtimeid.Identity, rec Record) error {
	key, _ := sessionKey(id)
	if err := s.addRecord(ctx, key, rec); err != nil {
		return err
	}
	s.opts.Logger.LogAttrs(ctx, levelInfo, "stepup: recorded",
		identityAttr(id), strAttr("acr", rec.ACR), strAttr("method", rec.Method))
	return nil
}

func (s *Service) addRecord(ctx context.Context, key string, rec Record) error {
	defer s.lock(key)()
	var recs sessionRecords
	if _, err := s.load(ctx, key, &recs); err != nil {
		// An unreadable value (a retired key) is replaced.
		recs = sessionRecords{}
	}
	recs.add(rec, rec.Time.Add(-s.opts.RecordTTL))
	return s.save(ctx, key, recs, s.opts.RecordTTL)
}

// userKey names a user's enrollment; sessionKey a session's record.
// A token without sid is its own session, named by its jti.
func userKey(id *runtimeid.Identity) string {
	return hashKey("u:", id.Issuer, id.Subject)
}

func sessionKey(id *runtimeid.Identity) (string, bool) {
	switch {
	case id == nil || id.Subject == "":
		return "", false
	case id.SessionID != "":
		return hashKey("s:", id.Issuer, id.Subject, "sid", id.SessionID), true
	case id.TokenID != "":
		return hashKey("s:", id.Issuer, id.Subject, "jti", id.TokenID), true
	}
	return "", false
}

// lock serialises changes to the values of one key in this process.
func (s *Service) lock(key string) func() {
	h := fnv.New32a()
	h.Write([]byte(key))
	m := &s.locks[h.Sum32()%uint32(len(s.locks))]
	m.Lock()
	return m.Unlock
}

// load reads and opens key into v; found is false when absent.
func (s *Service) load(ctx context.Context, key string, v any) (bool, error) {
	sealed, err := s.opts.Store.Get(ctx, key)
	if err != nil {
		return false, fmt.Errorf("stepup: store get: %w", err)
	}
	if sealed == nil {
		return false, nil
	}
	plain, err := s.seal.open(key, sealed)
	if err != nil {
		return false, err
	}
	if err := json.Unmarshal(plain, v); err != nil {
		return false, fmt.Errorf("%w: %w", ErrSealed, err)
	}
	return true, nil
}

// save seals v and writes it at key.
func (s *Service) save(ctx context.Context, key string, v any, ttl time.Duration) error {
	sealed, err := s.sealJSON(key, v)
	if err != nil {
		return err
	}
	if err := s.opts.Store.Put(ctx, key, sealed, ttl); err != nil {
		return fmt.Errorf("stepup: store put: %w", err)
	}
	return nil
}

func (s *Service) sealJSON(key string, v any) ([]byte, error) {
	plain, err := json.Marshal(v)
	if err != nil {
		return nil, fmt.Errorf("stepup: encode: %w", err)
	}
	return s.seal.seal(key, plain)
}

// once marks name used, and reports false when it already was, in any
// instance that shares the store.
func (s *Service) once(ctx context.Context, name string, ttl time.Duration) (bool, error) {
	ok, err := s.opts.Store.Add(ctx, name, []byte{1}, ttl)
	if err != nil {
		return false, fmt.Errorf("stepup: store add: %w", err)
	}
	return ok, nil
}

// asAPI turns an internal failure into a 500, keeping refusals.
func asAPI(err error) *apiError {
	var ae *apiError
	if errors.As(err, &ae) {
		return ae
	}
	return errInternal
}
