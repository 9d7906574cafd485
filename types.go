package runtimeid

import (
	"log/slog"
	"net/http"
	"net/netip"
	"strings"
	"time"
)

// Sensitivity says how much harm an action can do if the wrong person
// performs it. Policies and evaluators weigh risk against it.
type Sensitivity uint8

// The sensitivities, from least to most harmful. The zero value is
// [SensitivityUnset], which the engine replaces with
// [Config.DefaultSensitivity].
const (
	SensitivityUnset Sensitivity = iota
	Low
	Medium
	High
)

var sensitivityNames = [...]string{"unset", "low", "medium", "high"}

// String returns "low", "medium", "high" or "unset".
func (s Sensitivity) String() string {
	if int(s) < len(sensitivityNames) {
		return sensitivityNames[s]
	}
	return "unset"
}

// ParseSensitivity parses "low", "medium" or "high", in any case.
func ParseSensitivity(s string) (Sensitivity, error) {
	for i, name := range sensitivityNames[1:] {
		if strings.EqualFold(s, name) {
			return Sensitivity(i + 1), nil
		}
	}
	return SensitivityUnset, &ConfigError{
		Field:  "sensitivity",
		Reason: "unknown sensitivity " + quote(s),
	}
}

// Outcome is what the engine decided for one action.
type Outcome uint8

// The outcomes, from least to most severe. When several policy rules match,
// the most severe outcome wins. The zero value is [OutcomeUnset], which the
// engine never returns from a finished evaluation.
const (
	OutcomeUnset Outcome = iota
	Allow
	Challenge
	Block
)

var outcomeNames = [...]string{"unset", "allow", "challenge", "block"}

// String returns "allow", "challenge", "block" or "unset".
func (o Outcome) String() string {
	if int(o) < len(outcomeNames) {
		return outcomeNames[o]
	}
	return "unset"
}

// ParseOutcome parses "allow", "challenge" or "block", in any case.
func ParseOutcome(s string) (Outcome, error) {
	for i, name := range outcomeNames[1:] {
		if strings.EqualFold(s, name) {
			return Outcome(i + 1), nil
		}
	}
	return OutcomeUnset, &ConfigError{Field: "outcome", Reason: "unknown outcome " + quote(s)}
}

// Level is the coarse band a risk score falls in.
type Level uint8

// The risk levels. See [Config.MediumRisk] and [Config.HighRisk] for the
// thresholds.
const (
	LevelLow Level = iota
	LevelMedium
	LevelHigh
)

var levelNames = [...]string{"low", "medium", "high"}

// String returns "low", "medium" or "high".
func (l Level) String() string {
	if int(l) < len(levelNames) {
		return levelNames[l]
	}
	return "high"
}

// Action is what a request or an agent is trying to do.
type Action struct {
	// Name identifies the action in policies and audit events. For HTTP
	// requests it is the matched route pattern, such as
	// "POST /api/transfers", or the name given to [Engine.Protect]; never
	// the raw path.
	Name string

	// Sensitivity is how much harm the action can do.
	Sensitivity Sensitivity

	// Method is the HTTP method, with HEAD reported as GET. Empty for
	// actions that are not HTTP requests.
	Method string

	// Route is the matched route pattern, if any.
	Route string

	// Attributes carries facts about the action from [Engine.Evaluate]
	// callers, such as a tool's arguments. Policies see them as
	// action.attributes.
	Attributes map[string]any
}

// Identity is what a verified access token says about who is acting.
// Every field comes from a token whose signature, issuer, audience and
// lifetime were checked. An Identity is shared by every evaluation of
// the same token (see [TokenConfig.CacheSize]): treat it as read-only.
type Identity struct {
	Subject   string   // sub
	SessionID string   // sid
	Issuer    string   // iss
	Audience  []string // aud, always a list
	TokenID   string   // jti
	ClientID  string   // client_id, or azp when client_id is absent
	Scopes    []string // scope (space-separated) or scp (list)
	ACR       string   // acr
	AMR       []string // amr

	IssuedAt  time.Time // iat; zero when absent
	NotBefore time.Time // nbf; zero when absent
	Expiry    time.Time // exp
	AuthTime  time.Time // auth_time; zero when absent

	// Actor is the current actor when someone acts on the subject's behalf
	// (RFC 8693 act claim): the outermost act. Nested actors are history
	// and grant nothing.
	Actor *Actor

	// MayAct is the may_act claim (RFC 8693 section 4.4), as sent.
	MayAct map[string]any

	// Confirmation is the cnf claim (RFC 7800) for proof of possession.
	Confirmation *Confirmation

	// Claims holds every claim of the token as decoded from JSON.
	Claims map[string]any
}

// Actor is one link of an RFC 8693 actor chain.
type Actor struct {
	Subject  string
	Issuer   string
	ClientID string

	// Actor is the actor before this one, which is history only.
	Actor *Actor

	// Claims holds every member of this act object.
	Claims map[string]any
}

// Confirmation is a token's cnf claim: the key the token is bound to.
type Confirmation struct {
	JKT     string // RFC 9449: SHA-256 JWK thumbprint, base64url
	X5TS256 string // RFC 8705: x5t#S256 certificate thumbprint
	Raw     map[string]any
}

// IsDelegated reports whether someone other than the subject is acting.
func (id *Identity) IsDelegated() bool { return id != nil && id.Actor != nil }

// LogValue keeps logs to the identity's names, never its claims.
func (id *Identity) LogValue() slog.Value {
	if id == nil {
		return slog.Value{}
	}
	attrs := []slog.Attr{
		slog.String("sub", id.Subject),
		slog.String("sid", id.SessionID),
		slog.String("iss", id.Issuer),
	}
	if id.Actor != nil {
		attrs = append(attrs, slog.String("act", id.Actor.Subject))
	}
	return slog.GroupValue(attrs...)
}

// Signals are the facts collected about this moment. Collectors fill the
// part they know and leave the rest at its zero value.
type Signals struct {
	// ClientIP is the client's address as trusted proxies report it, or
	// the peer's address. IPv4-mapped IPv6 addresses are unmapped.
	ClientIP netip.Addr

	Network NetworkSignals
	Device  DeviceSignals
	Session SessionSignals

	// Custom holds the facts of collectors outside this module, by the
	// name each one chooses. Policies see them as signals.custom.
	Custom map[string]any
}

// NetworkSignals describe where the client's address is.
type NetworkSignals struct {
	Country     string  // ISO 3166-1 alpha-2, upper case
	City        string  // English name
	Latitude    float64 // valid when HasLocation
	Longitude   float64
	AccuracyKM  float64 // radius of the location's uncertainty
	HasLocation bool

	ASN   uint   // autonomous system number
	ASOrg string // its organisation
	ISP   string

	Anonymous        bool // any of the flags below
	VPN              bool
	Tor              bool
	Hosting          bool
	PublicProxy      bool
	ResidentialProxy bool
}

// DeviceSignals describe the client software and device.
type DeviceSignals struct {
	UserAgent      string // at most [MaxUserAgent] bytes
	Browser        string // family, such as "Chrome"
	BrowserVersion string // major version
	OS             string // family, such as "Windows"
	OSVersion      string
	Type           string // "desktop", "mobile", "tablet", "bot" or "other"
	Bot            bool

	// ID is a stable device identifier from a device cookie or header,
	// when one was presented and verified.
	ID string
}

// SessionSignals describe the token's and the session's age.
type SessionSignals struct {
	TokenAge    time.Duration // now - iat; zero when iat is absent
	SinceAuth   time.Duration // now - auth_time; valid when HasAuthTime
	HasAuthTime bool
}

// Finding is one reason an action looks risky.
type Finding struct {
	// Code is stable across releases; policies and audit logs match on
	// it, such as "new_device" or "impossible_travel".
	Code string

	// Weight is how much the finding adds to the score, in [0,1]: the
	// probability that this finding alone means an attack.
	Weight float64

	// Detail explains the finding to a person. It never holds a secret.
	Detail string
}

// Assessment is the risk of one action.
type Assessment struct {
	Score    float64 // in [0,1]
	Level    Level
	Findings []Finding
}

// Has reports whether a finding with the code was made.
func (a *Assessment) Has(code string) bool {
	for i := range a.Findings {
		if a.Findings[i].Code == code {
			return true
		}
	}
	return false
}

// Codes returns the finding codes in order.
func (a *Assessment) Codes() []string {
	codes := make([]string, len(a.Findings))
	for i := range a.Findings {
		codes[i] = a.Findings[i].Code
	}
	return codes
}

// StepUp is what would satisfy a challenge (RFC 9470): an authentication
// whose acr is one of ACRValues, no older than MaxAge. An empty ACRValues
// accepts any acr; a zero MaxAge accepts any age.
type StepUp struct {
	ACRValues []string
	MaxAge    time.Duration
}

// SatisfiedBy reports whether the identity already meets the requirement,
// as of now. An identity with no auth_time never meets a MaxAge.
func (s *StepUp) SatisfiedBy(id *Identity, now time.Time) bool {
	if s == nil || id == nil {
		return false
	}
	if len(s.ACRValues) > 0 && !contains(s.ACRValues, id.ACR) {
		return false
	}
	if s.MaxAge > 0 {
		if id.AuthTime.IsZero() || now.Sub(id.AuthTime) > s.MaxAge {
			return false
		}
	}
	return true
}

// Decision is the engine's answer for one action.
type Decision struct {
	Outcome Outcome

	// Rule names the policy rule that chose the outcome, "default" when
	// none matched, "token" for a token error and "error" for a failed
	// evaluation.
	Rule string

	// Reason is a stable code for the outcome: the rule's reason, a token
	// error code such as [CodeTokenExpired], or [CodeEvaluationError].
	Reason string

	// StepUp is what would satisfy a challenge.
	StepUp *StepUp

	// ReportOnly lists the report-only rules that matched; they change
	// nothing but are audited.
	ReportOnly []RuleMatch

	// SteppedUp is true when a challenge was turned into an allow because
	// the identity already met its requirement.
	SteppedUp bool

	// FailedOpen is true when an evaluation error was let through because
	// the route opted into failing open.
	FailedOpen bool
}

// RuleMatch is a policy rule that matched.
type RuleMatch struct {
	Rule    string
	Outcome Outcome
	Reason  string
}

// Evaluation is everything the engine knows about one action. Collectors,
// evaluators and the policy read and fill it in pipeline order; after the
// decision it is read-only, and handlers get it through [FromContext].
type Evaluation struct {
	// Time is when evaluation started, from [Config.Now].
	Time time.Time

	// Request is the HTTP request, or nil for [Engine.Evaluate].
	Request *http.Request

	Identity   *Identity
	Credential Credential
	Action     Action
	Signals    Signals
	Assessment Assessment
	Decision   Decision

	// Err is why evaluation failed, if it did: a [*TokenError] when the
	// token was missing or bad, otherwise an [*EvaluationError].
	Err error

	// Duration is how long evaluation took.
	Duration time.Duration

	// Recheck is set on the evaluations of [Engine.Recheck]: Request is
	// the one that opened a long-lived connection, and Credential is as
	// that request proved it.
	Recheck bool

	// Nested is set when a handler wrapped with [Engine.Protect] (or an
	// adapter's Protect) is reached through [Engine.Middleware] of the
	// same engine: the request is evaluated again as the protected
	// action, reusing the identity and credential the middleware
	// verified instead of verifying the token and its proof again.
	Nested bool

	engine *Engine // the engine that made ev, for nesting
}

// Reused reports whether ev reuses the identity an earlier evaluation of
// the same request verified ([Evaluation.Recheck] or
// [Evaluation.Nested]). Validators of single-use proofs, such as a DPoP
// proof, return nil for it: the earlier evaluation checked the proof.
// Other validators, such as pushed revocations, run as on any request.
// Risk evaluators do not count it as another request, and baselines do
// not learn from it again.
func (ev *Evaluation) Reused() bool { return ev.Recheck || ev.Nested }

func contains(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}
