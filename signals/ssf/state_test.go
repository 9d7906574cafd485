package ssf

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/runtimeid/runtimeid"
)

func event(typ string, sub SubjectID, at time.Time, c map[string]any) *Event {
	if c == nil {
		c = map[string]any{}
	}
	return &Event{Type: typ, Subject: sub, Time: at, Claims: c}
}

func applyAll(t *testing.T, st Store, evs ...*Event) {
	t.Helper()
	for _, ev := range evs {
		handled, err := apply(st, ev, t0)
		require.NoError(t, err)
		require.True(t, handled, ev.Type)
	}
}

// validate returns the revocation detail, or "" when the token passes.
func validate(t *testing.T, st Store, id *runtimeid.Identity) string {
	t.Helper()
	err := NewValidator(st).Validate(context.Background(), evaluation(id))
	if err == nil {
		return ""
	}
	var te *runtimeid.TokenError
	require.True(t, errors.As(err, &te), "%v", err)
	require.Equal(t, runtimeid.CodeTokenRevoked, te.Code)
	return te.Detail
}

func TestValidator(t *testing.T) {
	alice := IssSub(tokIssuer, "alice")
	before, after := t0.Add(-time.Hour), t0.Add(time.Minute)
	session := Opaque("s-1")
	aliceSession := SubjectID{Format: FormatComplex, User: &alice, Session: &session}
	aliceDevice := SubjectID{Format: FormatComplex, User: &alice, Device: &SubjectID{Format: FormatOpaque, ID: "d-1"}}

	tests := []struct {
		name   string
		events []*Event
		id     *runtimeid.Identity
		want   string
	}{
		{"nothing pushed", nil, identity("alice", "s-1", before), ""},
		{"session revoked by opaque sid",
			[]*Event{event(CAEPSessionRevoked, session, t0, nil)},
			identity("alice", "s-1", after), ReasonSessionRevoked},
		{"other session passes",
			[]*Event{event(CAEPSessionRevoked, session, t0, nil)},
			identity("alice", "s-2", before), ""},
		{"complex user and session",
			[]*Event{event(CAEPSessionRevoked, aliceSession, t0, nil)},
			identity("bob", "s-1", after), ReasonSessionRevoked},
		{"user only revokes older tokens",
			[]*Event{event(CAEPSessionRevoked, alice, t0, nil)},
			identity("alice", "s-9", before), ReasonSessionRevoked},
		{"user only spares newer tokens",
			[]*Event{event(CAEPSessionRevoked, alice, t0, nil)},
			identity("alice", "s-9", after), ""},
		{"user and device revoke the user's older tokens",
			[]*Event{event(CAEPSessionRevoked, aliceDevice, t0, nil)},
			identity("alice", "", before), ReasonSessionRevoked},
		{"jwt_id revokes one token",
			[]*Event{event(CAEPSessionRevoked, SubjectID{Format: FormatJWTID, Iss: tokIssuer, JTI: "j-1"}, t0, nil)},
			func() *runtimeid.Identity { id := identity("alice", "", after); id.TokenID = "j-1"; return id }(),
			ReasonTokenRevoked},
		{"credential change, older token",
			[]*Event{event(CAEPCredentialChange, alice, t0, nil)},
			identity("alice", "", before), ReasonCredentialChanged},
		{"credential change, same second",
			[]*Event{event(CAEPCredentialChange, alice, t0, nil)},
			identity("alice", "", t0), ReasonCredentialChanged},
		{"credential change, newer token",
			[]*Event{event(CAEPCredentialChange, alice, t0, nil)},
			identity("alice", "", after), ""},
		{"credential change, token without iat",
			[]*Event{event(CAEPCredentialChange, alice, t0, nil)},
			identity("alice", "", time.Time{}), ReasonCredentialChanged + "; token has no iat"},
		{"credential change by email",
			[]*Event{event(CAEPCredentialChange, Email("ALICE@example.com"), t0, nil)},
			identity("alice", "", before), ReasonCredentialChanged},
		{"account disabled",
			[]*Event{event(RISCAccountDisabled, alice, t0, nil)},
			identity("alice", "", after), ReasonAccountDisabled},
		{"account disabled then enabled",
			[]*Event{event(RISCAccountDisabled, alice, t0, nil), event(RISCAccountEnabled, alice, t0, nil)},
			identity("alice", "", after), ""},
		{"enabled delivered late changes nothing",
			[]*Event{event(RISCAccountDisabled, alice, t0, nil), event(RISCAccountEnabled, alice, before, nil)},
			identity("alice", "", after), ReasonAccountDisabled},
		{"account purged is final",
			[]*Event{event(RISCAccountPurged, alice, t0, nil), event(RISCAccountEnabled, alice, after, nil)},
			identity("alice", "", after), ReasonAccountPurged},
		{"credential compromise",
			[]*Event{event(RISCCredentialCompromise, alice, t0, nil)},
			identity("alice", "", after), ReasonCompromised},
		{"compromise ended by credential change",
			[]*Event{event(RISCCredentialCompromise, alice, before, nil), event(CAEPCredentialChange, alice, t0, nil)},
			identity("alice", "", after), ""},
		{"RISC sessions revoked by opaque sub",
			[]*Event{event(RISCSessionsRevoked, Opaque("alice"), t0, nil)},
			identity("alice", "", before), ReasonSessionsRevoked},
		{"aliases",
			[]*Event{event(RISCAccountDisabled, SubjectID{Format: FormatAliases,
				Identifiers: []SubjectID{Email("nobody@example.com"), IssSub(tokIssuer, "alice")}}, t0, nil)},
			identity("alice", "", after), ReasonAccountDisabled},
		{"iss_sub of another issuer passes",
			[]*Event{event(RISCAccountDisabled, IssSub("https://other.example", "alice"), t0, nil)},
			identity("alice", "", after), ""},
		{"phone number",
			[]*Event{event(RISCAccountDisabled,
				SubjectID{Format: FormatPhoneNumber, PhoneNumber: "+1 206 555 0123"}, t0, nil)},
			func() *runtimeid.Identity {
				id := identity("alice", "", after)
				id.Claims["phone_number"] = "+1 (206) 555-0123"
				return id
			}(), ReasonAccountDisabled},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			st := NewState(StateOptions{})
			applyAll(t, st, tt.events...)
			assert.Equal(t, tt.want, validate(t, st, tt.id))
		})
	}
}

func TestValidatorNoIdentity(t *testing.T) {
	v := NewValidator(NewState(StateOptions{}))
	assert.NoError(t, v.Validate(context.Background(), &runtimeid.Evaluation{Time: t0}))
}

func TestEventTimeClampedToNow(t *testing.T) {
	// A transmitter whose clock runs an hour ahead must not refuse the
	// tokens issued in that hour.
	st := NewState(StateOptions{})
	applyAll(t, st, event(CAEPCredentialChange, IssSub(tokIssuer, "alice"), t0.Add(time.Hour), nil))
	assert.Equal(t, "", validate(t, st, identity("alice", "", t0.Add(time.Second))))
}

func TestStateRetentionAndBound(t *testing.T) {
	st := NewState(StateOptions{MaxEntries: 2, Retention: time.Hour})
	k := func(id string) Key { return Key{Kind: KindSub, ID: id} }
	set := func(f *Facts) { f.Blocked = ReasonAccountDisabled }
	require.NoError(t, st.Update(k("a"), t0, set))

	_, ok := st.Lookup(k("a"), t0.Add(time.Hour))
	assert.True(t, ok, "kept for the retention")
	_, ok = st.Lookup(k("a"), t0.Add(time.Hour+time.Second))
	assert.False(t, ok, "forgotten after it")

	require.NoError(t, st.Update(k("b"), t0, set))
	require.NoError(t, st.Update(k("c"), t0, set))
	assert.Equal(t, 2, st.Len())
	assert.Equal(t, 1, st.Evicted())
	_, ok = st.Lookup(k("a"), t0)
	assert.False(t, ok, "least recently updated dropped")
}

func TestApplyErrors(t *testing.T) {
	st := NewState(StateOptions{})
	tenant := Opaque("t-1")
	_, err := apply(st, event(RISCAccountDisabled, SubjectID{Format: FormatComplex, Tenant: &tenant}, t0, nil), t0)
	assert.ErrorIs(t, err, errNoSubject)

	_, err = apply(st, event(RISCAccountDisabled, SubjectID{Format: FormatIssSub, Sub: "x"}, t0, nil), t0)
	assert.ErrorContains(t, err, "iss_sub subject without iss")

	handled, err := apply(st, event("urn:example:unknown", Opaque("x"), t0, nil), t0)
	assert.False(t, handled)
	assert.NoError(t, err)
	assert.Equal(t, 0, st.Len())
}
