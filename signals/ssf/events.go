package ssf

import (
	"errors"
	"fmt"
	"strings"
	"time"
)

// The event types this package acts on, from CAEP 1.0, RISC 1.0 and
// the stream events of SSF 1.0.
const (
	caepPrefix = "https://schemas.openid.net/secevent/caep/event-type/"
	riscPrefix = "https://schemas.openid.net/secevent/risc/event-type/"
	ssfPrefix  = "https://schemas.openid.net/secevent/ssf/event-type/"

	CAEPSessionRevoked         = caepPrefix + "session-revoked"
	CAEPTokenClaimsChange      = caepPrefix + "token-claims-change"
	CAEPCredentialChange       = caepPrefix + "credential-change"
	CAEPAssuranceLevelChange   = caepPrefix + "assurance-level-change"
	CAEPDeviceComplianceChange = caepPrefix + "device-compliance-change"
	CAEPSessionEstablished     = caepPrefix + "session-established"
	CAEPSessionPresented       = caepPrefix + "session-presented"
	CAEPRiskLevelChange        = caepPrefix + "risk-level-change"

	RISCAccountDisabled      = riscPrefix + "account-disabled"
	RISCAccountEnabled       = riscPrefix + "account-enabled"
	RISCAccountPurged        = riscPrefix + "account-purged"
	RISCCredentialCompromise = riscPrefix + "credential-compromise"
	RISCIdentifierChanged    = riscPrefix + "identifier-changed"
	RISCSessionsRevoked      = riscPrefix + "sessions-revoked"

	SSFVerification  = ssfPrefix + "verification"
	SSFStreamUpdated = ssfPrefix + "stream-updated"
)

// The reasons a token is refused, as [runtimeid.TokenError.Detail].
const (
	ReasonSessionRevoked    = "session revoked"
	ReasonTokenRevoked      = "token revoked"
	ReasonCredentialChanged = "credential changed"
	ReasonSessionsRevoked   = "sessions revoked"
	ReasonAccountDisabled   = "account disabled"
	ReasonAccountPurged     = "account purged"
	ReasonCompromised       = "credential compromised"
)

// maxClaims bounds the claims of a token-claims-change kept per key.
const maxClaims = 32

// errNoSubject means an event that needs a subject has none this
// package can match.
var errNoSubject = errors.New("no subject this receiver can match")

// normalType maps the http scheme that RISC drafts used onto https, so
// both spellings of an event type act alike.
func normalType(t string) string {
	const legacy = "http://schemas.openid.net/secevent/"
	if strings.HasPrefix(t, legacy) {
		return "https://schemas.openid.net/secevent/" + t[len(legacy):]
	}
	return t
}

// handler applies one event type to the facts of a key.
type handler struct {
	// role says how a top-level opaque subject is read.
	role role

	// keys picks, from the subject's keys, those the event is about.
	keys func(*Keys) []Key

	// apply changes one key's facts; at is the event's time.
	apply func(f *Facts, ev *Event, at time.Time)
}

var handlers = map[string]handler{
	CAEPSessionRevoked:         {roleSession, sessionOrUser, sessionRevoked},
	CAEPCredentialChange:       {roleUser, userKeys, credentialChanged},
	CAEPAssuranceLevelChange:   {roleUser, allKeys, assuranceChanged},
	CAEPTokenClaimsChange:      {roleUser, allKeys, claimsChanged},
	CAEPDeviceComplianceChange: {roleDevice, deviceKeys, complianceChanged},
	CAEPRiskLevelChange:        {roleUser, allKeys, riskChanged},
	RISCAccountDisabled:        {roleUser, userKeys, block(ReasonAccountDisabled)},
	RISCAccountPurged:          {roleUser, userKeys, block(ReasonAccountPurged)},
	RISCCredentialCompromise:   {roleUser, userKeys, compromised},
	RISCAccountEnabled:         {roleUser, userKeys, enabled},
	RISCSessionsRevoked:        {roleUser, userKeys, revokeBefore(ReasonSessionsRevoked)},
}

// apply records ev in store. Events without a handler change nothing
// and report handled false. now clamps the event's time: a transmitter
// whose clock runs ahead must not refuse tokens issued after it.
func apply(store Store, ev *Event, now time.Time) (handled bool, err error) {
	h, ok := handlers[normalType(ev.Type)]
	if !ok {
		return false, nil
	}
	all, err := ev.Subject.keys(h.role)
	if err != nil {
		return true, fmt.Errorf("subject: %w", err)
	}
	keys := h.keys(&all)
	if len(keys) == 0 {
		return true, errNoSubject
	}
	at := ev.Time
	if at.IsZero() || at.After(now) {
		at = now
	}
	for _, k := range keys {
		err := store.Update(k, now, func(f *Facts) { h.apply(f, ev, at) })
		if err != nil {
			return true, err
		}
	}
	return true, nil
}

func userKeys(k *Keys) []Key   { return k.User }
func deviceKeys(k *Keys) []Key { return k.Device }
func allKeys(k *Keys) []Key    { return k.all() }

// sessionOrUser: a session-revoked names a session (by sid or, as
// jwt_id, one token); when it names only a user, every session of the
// user is revoked, which is what CAEP 1.0 session-revoked means by a user
// subject. A user and a device without a session revoke the user's
// sessions everywhere: the device cannot be told apart from the token.
func sessionOrUser(k *Keys) []Key {
	if len(k.Session)+len(k.Token) > 0 {
		return append(append([]Key(nil), k.Session...), k.Token...)
	}
	return k.User
}

func sessionRevoked(f *Facts, ev *Event, at time.Time) {
	// The handler gets session and token keys, or user keys; facts do
	// not know their key, so the event's subject decides.
	keys, _ := ev.Subject.keys(roleSession)
	if len(keys.Session)+len(keys.Token) > 0 {
		reason := ReasonSessionRevoked
		if len(keys.Session) == 0 {
			reason = ReasonTokenRevoked
		}
		setBlocked(f, reason, at)
		return
	}
	revokeBefore(ReasonSessionRevoked)(f, ev, at)
}

func credentialChanged(f *Facts, ev *Event, at time.Time) {
	revokeBefore(ReasonCredentialChanged)(f, ev, at)
	// A new credential ends a compromise reported before it.
	if f.Blocked == ReasonCompromised && !at.Before(f.BlockedAt) {
		f.Blocked, f.BlockedAt = "", at
	}
}

func revokeBefore(reason string) func(*Facts, *Event, time.Time) {
	return func(f *Facts, _ *Event, at time.Time) {
		if at.After(f.RevokedBefore) {
			f.RevokedBefore, f.RevokeReason = at, reason
		}
	}
}

func block(reason string) func(*Facts, *Event, time.Time) {
	return func(f *Facts, _ *Event, at time.Time) { setBlocked(f, reason, at) }
}

// setBlocked blocks unless a newer event decided otherwise. A purge is
// final: nothing later unblocks it.
func setBlocked(f *Facts, reason string, at time.Time) {
	if f.Blocked == ReasonAccountPurged || at.Before(f.BlockedAt) {
		return
	}
	f.Blocked, f.BlockedAt = reason, at
}

// compromised blocks the subject until a credential-change, and refuses
// every token issued before, even once unblocked.
func compromised(f *Facts, ev *Event, at time.Time) {
	setBlocked(f, ReasonCompromised, at)
	revokeBefore(ReasonCompromised)(f, ev, at)
}

// enabled lifts a disable, never a purge or a compromise.
func enabled(f *Facts, _ *Event, at time.Time) {
	if f.Blocked == ReasonAccountDisabled && !at.Before(f.BlockedAt) {
		f.Blocked, f.BlockedAt = "", at
	}
}

func riskChanged(f *Facts, ev *Event, at time.Time) {
	level := strings.ToLower(str(ev.Claims, "current_level"))
	if _, known := riskWeights[level]; !known || at.Before(f.RiskAt) {
		return
	}
	f.RiskLevel, f.RiskAt = level, at
}

func assuranceChanged(f *Facts, ev *Event, at time.Time) {
	if at.Before(f.AssuranceAt) {
		return
	}
	f.Assurance = Assurance{
		Namespace: str(ev.Claims, "namespace"),
		Current:   str(ev.Claims, "current_level"),
		Previous:  str(ev.Claims, "previous_level"),
		Direction: str(ev.Claims, "change_direction"),
	}
	f.AssuranceAt = at
}

// claimsChanged keeps the changed claims, at most [maxClaims] of them,
// merged over those of earlier changes.
func claimsChanged(f *Facts, ev *Event, at time.Time) {
	changed, _ := ev.Claims["claims"].(map[string]any)
	if at.Before(f.ClaimsAt) || len(changed) == 0 {
		return
	}
	merged := make(map[string]any, len(f.Claims)+len(changed))
	for k, v := range f.Claims {
		merged[k] = v
	}
	for k, v := range changed {
		if _, ok := merged[k]; ok || len(merged) < maxClaims {
			merged[k] = v
		}
	}
	f.Claims, f.ClaimsAt = merged, at
}

func complianceChanged(f *Facts, ev *Event, at time.Time) {
	status := str(ev.Claims, "current_status")
	if at.Before(f.ComplianceAt) {
		return
	}
	if status == "compliant" || status == "not-compliant" {
		f.Compliance, f.ComplianceAt = status, at
	}
}

func str(m map[string]any, name string) string {
	s, _ := m[name].(string)
	return s
}
