package stepup

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/go-webauthn/webauthn/webauthn"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/runtimeid/runtimeid"
)

func passkeyHarness(t *testing.T) *harness {
	h := newHarness(t, func(o *Options) {
		o.RPID, o.RPOrigins = "localhost", []string{"http://localhost:8080"}
	})
	// A stored passkey, so that login ceremonies can begin.
	id := &runtimeid.Identity{Issuer: testIssuer, Subject: "alice"}
	rec := &userRecord{WebAuthnID: []byte("0123456789abcdef0123456789abcdef"),
		Passkeys: []passkeyCred{{Cred: webauthn.Credential{ID: []byte("cred-1"),
			PublicKey: []byte{1}}}}}
	require.NoError(t, h.svc.saveUser(t.Context(), userKey(id), rec))
	return h
}

func (h *harness) beginPasskey(tok string) PasskeyChallenge {
	h.t.Helper()
	w := h.do("POST", "/stepup/passkey/begin", tok, map[string]string{"return_to": "/x"})
	require.Equal(h.t, 200, w.Code, w.Body.String())
	var ch PasskeyChallenge
	require.NoError(h.t, json.Unmarshal(w.Body.Bytes(), &ch))
	require.Len(h.t, ch.ID, 32)
	return ch
}

func TestPasskeyBegin(t *testing.T) {
	h := passkeyHarness(t)
	w := h.do("POST", "/stepup/passkey/begin", h.token("alice", "s1", 0), map[string]any{})
	require.Equal(t, 200, w.Code, w.Body.String())
	var out struct {
		ID        string `json:"challenge_id"`
		PublicKey struct {
			Challenge        string `json:"challenge"`
			RPID             string `json:"rpId"`
			UserVerification string `json:"userVerification"`
			Allow            []struct {
				ID   string `json:"id"`
				Type string `json:"type"`
			} `json:"allowCredentials"`
		} `json:"publicKey"`
	}
	require.NoError(t, json.Unmarshal(w.Body.Bytes(), &out))
	assert.Equal(t, "localhost", out.PublicKey.RPID)
	assert.Equal(t, "preferred", out.PublicKey.UserVerification)
	assert.Len(t, out.PublicKey.Challenge, 43, "32 random bytes, base64url")
	require.Len(t, out.PublicKey.Allow, 1)
	assert.Equal(t, "Y3JlZC0x", out.PublicKey.Allow[0].ID)

	// A challenge that accepts only a verified passkey requires user
	// verification.
	w = h.do("POST", "/stepup/passkey/begin", h.token("alice", "s1", 0),
		map[string]string{"acr_values": ACRPasskey})
	require.Equal(t, 200, w.Code)
	assert.Contains(t, w.Body.String(), `"userVerification":"required"`)

	// Someone with no passkey, or a challenge that wants a code only.
	w = h.do("POST", "/stepup/passkey/begin", h.token("bob", "s1", 0), map[string]any{})
	assert.Equal(t, 409, w.Code)
	w = h.do("POST", "/stepup/passkey/begin", h.token("alice", "s1", 0),
		map[string]string{"acr_values": ACROTP})
	assert.Equal(t, 400, w.Code)
	assert.Equal(t, CodeMethodNotAccepted, errorCode(t, w))
}

func TestPasskeyChallengeBinding(t *testing.T) {
	h := passkeyHarness(t)
	mine := h.token("alice", "s1", 0)
	finish := func(tok, cid string) (int, string) {
		w := h.do("POST", "/stepup/passkey/finish", tok, map[string]any{
			"challenge_id": cid, "credential": map[string]string{"id": "x"}})
		return w.Code, errorCode(t, w)
	}

	// Another session of the same user, or another user, cannot
	// answer my challenge; nor can an unknown id.
	ch := h.beginPasskey(mine)
	for _, tok := range []string{h.token("alice", "s2", 0), h.token("bob", "s1", 0)} {
		code, e := finish(tok, ch.ID)
		assert.Equal(t, 400, code)
		assert.Equal(t, CodeChallengeInvalid, e)
	}
	code, e := finish(mine, "00000000000000000000000000000000")
	assert.Equal(t, 400, code)
	assert.Equal(t, CodeChallengeInvalid, e)
	code, e = finish(mine, "short")
	assert.Equal(t, CodeChallengeInvalid, e)

	// My own answer is checked once: a bad assertion fails and uses
	// the challenge up.
	code, e = finish(mine, ch.ID)
	assert.Equal(t, 403, code)
	assert.Equal(t, CodeVerification, e)
	code, e = finish(mine, ch.ID)
	assert.Equal(t, 400, code)
	assert.Equal(t, CodeChallengeInvalid, e)

	// An expired challenge is refused.
	ch = h.beginPasskey(mine)
	h.clock.Add(DefaultChallengeTTL)
	_, e = finish(mine, ch.ID)
	assert.Equal(t, CodeChallengeInvalid, e)

	// No step-up was recorded, so adding a passkey needs one.
	h.clock.Add(time.Hour)
	w := h.do("POST", "/stepup/enroll/passkey/begin", h.token("alice", "s1", 0), map[string]any{})
	assert.Equal(t, 403, w.Code, "a second factor needs a step-up")
	_, ok := h.svc.Record(t.Context(),
		&runtimeid.Identity{Issuer: testIssuer, Subject: "alice", SessionID: "s1"})
	assert.False(t, ok)
}

func TestPasskeyEnrollKinds(t *testing.T) {
	h := newHarness(t, func(o *Options) {
		o.RPID, o.RPOrigins = "localhost", []string{"http://localhost:8080"}
	})
	tok := h.token("carol", "s1", 0)
	w := h.do("POST", "/stepup/enroll/passkey/begin", tok, map[string]any{})
	require.Equal(t, 200, w.Code, w.Body.String())
	var reg PasskeyChallenge
	require.NoError(t, json.Unmarshal(w.Body.Bytes(), &reg))

	// The registration id does not finish a login.
	w = h.do("POST", "/stepup/passkey/finish", tok, map[string]any{
		"challenge_id": reg.ID, "credential": map[string]string{}})
	assert.Equal(t, CodeChallengeInvalid, errorCode(t, w))
	// ...and it was not used up by that attempt.
	w = h.do("POST", "/stepup/enroll/passkey/finish", tok, map[string]any{
		"challenge_id": reg.ID, "credential": map[string]string{}})
	assert.Equal(t, 403, w.Code)
	assert.Equal(t, CodeVerification, errorCode(t, w))
}

func TestPasskeysOff(t *testing.T) {
	h := newHarness(t)
	w := h.do("POST", "/stepup/passkey/begin", h.token("alice", "s1", 0), map[string]any{})
	assert.Equal(t, 404, w.Code)
}
