package stepup

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"fmt"
	"io"
	"time"

	"github.com/go-webauthn/webauthn/protocol"
	"github.com/go-webauthn/webauthn/webauthn"

	"github.com/runtimeid/runtimeid"
)

// passkeyCred is one enrolled passkey.
type passkeyCred struct {
	Cred    webauthn.Credential `json:"cred"`
	Created time.Time           `json:"c"`
}

func newWebAuthn(o *Options) (*webauthn.WebAuthn, error) {
	wa, err := webauthn.New(&webauthn.Config{
		RPID:          o.RPID,
		RPDisplayName: o.DisplayName,
		RPOrigins:     o.RPOrigins,
		// Attestation would name the authenticator's maker; a step-up
		// needs only the key.
		AttestationPreference: protocol.PreferNoAttestation,
		AuthenticatorSelection: protocol.AuthenticatorSelection{
			ResidentKey:      protocol.ResidentKeyRequirementPreferred,
			UserVerification: protocol.VerificationPreferred,
		},
	})
	if err != nil {
		return nil, fmt.Errorf("%w: WebAuthn: %w", ErrOptions, err)
	}
	return wa, nil
}

// waUser shows a user record to the WebAuthn library.
type waUser struct {
	rec  *userRecord
	name string
}

func (u waUser) WebAuthnID() []byte          { return u.rec.WebAuthnID }
func (u waUser) WebAuthnName() string        { return u.name }
func (u waUser) WebAuthnDisplayName() string { return u.name }

func (u waUser) WebAuthnCredentials() []webauthn.Credential {
	out := make([]webauthn.Credential, len(u.rec.Passkeys))
	for i := range u.rec.Passkeys {
		out[i] = u.rec.Passkeys[i].Cred
	}
	return out
}

// ceremony is a passkey challenge waiting for its answer, bound to the
// session that asked and to the request it should lead back to.
type ceremony struct {
	Kind     string               `json:"k"` // "login" or "register"
	User     string               `json:"u"`
	Session  string               `json:"s"`
	Data     webauthn.SessionData `json:"d"`
	ReturnTo string               `json:"r,omitempty"`
	Expires  time.Time            `json:"e"`
}

// PasskeyChallenge is the answer to a passkey begin: the options for
// navigator.credentials.get or create, and the id to finish with.
type PasskeyChallenge struct {
	ID        string `json:"challenge_id"`
	PublicKey any    `json:"publicKey"`
}

func ceremonyKey(cid string) string { return hashKey("c:", cid) }

// beginPasskey starts a login ceremony for a step-up.
// With requireUV the authenticator must verify the user, so that the
// step-up reaches [ACRPasskey].
func (s *Service) beginPasskey(ctx context.Context, id *runtimeid.Identity,
	returnTo string, requireUV bool) (PasskeyChallenge, error) {
	if err := s.limit.check(ctx, id); err != nil {
		return PasskeyChallenge{}, err
	}
	uk := userKey(id)
	rec, err := s.loadUser(ctx, uk)
	if err != nil {
		return PasskeyChallenge{}, err
	}
	if len(rec.Passkeys) == 0 {
		return PasskeyChallenge{}, errNotEnrolled
	}
	uv := protocol.VerificationPreferred
	if requireUV {
		uv = protocol.VerificationRequired
	}
	opts, data, err := s.wa.BeginLogin(waUser{rec, accountName(id)},
		webauthn.WithUserVerification(uv))
	if err != nil {
		return PasskeyChallenge{}, fmt.Errorf("stepup: begin login: %w", err)
	}
	cid, err := s.saveCeremony(ctx, id, "login", data, returnTo)
	return PasskeyChallenge{ID: cid, PublicKey: opts.Response}, err
}

func (s *Service) saveCeremony(ctx context.Context, id *runtimeid.Identity, kind string,
	data *webauthn.SessionData, returnTo string) (string, error) {
	cid, err := s.newID()
	if err != nil {
		return "", err
	}
	sk, _ := sessionKey(id)
	c := ceremony{Kind: kind, User: userKey(id), Session: sk, Data: *data,
		ReturnTo: returnTo, Expires: s.opts.Now().Add(s.opts.ChallengeTTL)}
	return cid, s.save(ctx, ceremonyKey(cid), c, s.opts.ChallengeTTL)
}

// takeCeremony returns the ceremony cid once, to the session that began
// it, before it expires; every other call is [errChallenge].
func (s *Service) takeCeremony(ctx context.Context, id *runtimeid.Identity, cid,
	kind string) (*ceremony, error) {
	if len(cid) != 32 {
		return nil, errChallenge
	}
	key := ceremonyKey(cid)
	var c ceremony
	found, err := s.load(ctx, key, &c)
	if err != nil || !found {
		return nil, errChallenge
	}
	sk, _ := sessionKey(id)
	if c.Kind != kind || c.User != userKey(id) || c.Session != sk ||
		!s.opts.Now().Before(c.Expires) {
		return nil, errChallenge
	}
	first, err := s.once(ctx, "x"+key, s.opts.ChallengeTTL)
	if err != nil {
		return nil, err
	}
	_ = s.opts.Store.Delete(ctx, key)
	if !first {
		return nil, errChallenge
	}
	return &c, nil
}

// finishPasskey checks the assertion and records the step-up.
func (s *Service) finishPasskey(ctx context.Context, id *runtimeid.Identity, cid string,
	assertion []byte) (Record, string, error) {
	at, aerr := s.limit.begin(ctx, id)
	if aerr != nil {
		return Record{}, "", aerr
	}
	c, err := s.takeCeremony(ctx, id, cid, "login")
	if err != nil {
		at.end(ctx, err)
		return Record{}, "", err
	}
	rec, err := s.assert(ctx, id, c, assertion)
	at.end(ctx, err)
	if err != nil {
		return Record{}, "", err
	}
	return rec, c.ReturnTo, s.record(ctx, id, rec)
}

// assert verifies the assertion against the user's passkeys and keeps
// the credential's new signature counter.
func (s *Service) assert(ctx context.Context, id *runtimeid.Identity, c *ceremony,
	assertion []byte) (Record, error) {
	parsed, err := protocol.ParseCredentialRequestResponseBytes(assertion)
	if err != nil {
		return Record{}, errVerification
	}
	uk := userKey(id)
	defer s.lock(uk)()
	ur, err := s.loadUser(ctx, uk)
	if err != nil {
		return Record{}, err
	}
	cred, err := s.wa.ValidateLogin(waUser{ur, accountName(id)}, c.Data, parsed)
	if err != nil {
		return Record{}, errVerification
	}
	if cred.Authenticator.CloneWarning {
		// The signature counter went backwards: two copies of the key
		// may exist. Refuse rather than guess which is the user's.
		s.opts.Logger.LogAttrs(ctx, levelWarn, "stepup: passkey counter went back",
			identityAttr(id))
		return Record{}, errVerification
	}
	for i := range ur.Passkeys {
		if bytes.Equal(ur.Passkeys[i].Cred.ID, cred.ID) {
			ur.Passkeys[i].Cred = *cred
		}
	}
	if err := s.saveUser(ctx, uk, ur); err != nil {
		return Record{}, err
	}
	acr := ACRPasskeyPresence
	if parsed.Response.AuthenticatorData.Flags.HasUserVerified() {
		acr = ACRPasskey
	}
	return Record{ACR: acr, Method: "passkey", Time: s.opts.Now().UTC(),
		Device: deviceName(cred.ID)}, nil
}

// deviceName names a passkey without its id.
func deviceName(credID []byte) string {
	sum := sha256.Sum256(credID)
	return "passkey:" + base64.RawURLEncoding.EncodeToString(sum[:9])
}

// beginEnrollPasskey starts a registration ceremony.
func (s *Service) beginEnrollPasskey(ctx context.Context,
	id *runtimeid.Identity) (PasskeyChallenge, error) {
	uk := userKey(id)
	unlock := s.lock(uk)
	rec, err := s.loadUser(ctx, uk)
	if err == nil {
		err = s.mayEnroll(ctx, id, rec)
	}
	if err == nil && len(rec.Passkeys) >= maxPasskeys {
		err = invalid("too many passkeys")
	}
	if err == nil && rec.WebAuthnID == nil {
		rec.WebAuthnID = make([]byte, 32)
		if _, err = io.ReadFull(s.opts.Rand, rec.WebAuthnID); err == nil {
			err = s.saveUser(ctx, uk, rec)
		}
	}
	unlock()
	if err != nil {
		return PasskeyChallenge{}, err
	}

	u := waUser{rec, accountName(id)}
	var exclude []protocol.CredentialDescriptor
	for _, c := range u.WebAuthnCredentials() {
		exclude = append(exclude, c.Descriptor())
	}
	opts, data, err := s.wa.BeginRegistration(u, webauthn.WithExclusions(exclude))
	if err != nil {
		return PasskeyChallenge{}, fmt.Errorf("stepup: begin registration: %w", err)
	}
	cid, err := s.saveCeremony(ctx, id, "register", data, "")
	return PasskeyChallenge{ID: cid, PublicKey: opts.Response}, err
}

// finishEnrollPasskey checks the new credential and keeps it.
func (s *Service) finishEnrollPasskey(ctx context.Context, id *runtimeid.Identity,
	cid string, attestation []byte) error {
	c, err := s.takeCeremony(ctx, id, cid, "register")
	if err != nil {
		return err
	}
	parsed, err := protocol.ParseCredentialCreationResponseBytes(attestation)
	if err != nil {
		return errVerification
	}
	uk := userKey(id)
	defer s.lock(uk)()
	rec, err := s.loadUser(ctx, uk)
	if err != nil {
		return err
	}
	if err := s.mayEnroll(ctx, id, rec); err != nil {
		return err
	}
	cred, err := s.wa.CreateCredential(waUser{rec, accountName(id)}, c.Data, parsed)
	if err != nil {
		return errVerification
	}
	rec.Passkeys = append(rec.Passkeys, passkeyCred{Cred: *cred, Created: s.opts.Now().UTC()})
	if err := s.saveUser(ctx, uk, rec); err != nil {
		return err
	}
	s.opts.Logger.LogAttrs(ctx, levelInfo, "stepup: passkey enrolled",
		identityAttr(id), strAttr("device", deviceName(cred.ID)))
	return nil
}
