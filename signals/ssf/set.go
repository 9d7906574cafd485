package ssf

import (
	"encoding/json"
	"fmt"
	"math"
	"sort"
	"strconv"
	"strings"
	"time"
)

// maxNumericDate is 9999-12-31T23:59:59Z; later dates are refused.
const maxNumericDate = 253402300799

// maxEvents bounds the events of one SET.
const maxEvents = 16

// SET is the payload of a Security Event Token (RFC 8417 section 2.2)
// as SSF 1.0 uses it.
type SET struct {
	Issuer   string
	Audience []string
	IssuedAt time.Time
	JTI      string
	TxN      string    // txn, the transaction id; may be empty
	TOE      time.Time // toe, the time of the event; may be zero
	Expiry   time.Time // exp, rarely sent; may be zero

	// Subject is the sub_id claim of SSF 1.0, or nil.
	Subject *SubjectID

	// Events are the members of the events claim, sorted by type.
	Events []Event
}

// Event is one security event: its type URI, the subject it is about,
// when it happened and its members.
type Event struct {
	// Type is the event type URI, such as [CAEPSessionRevoked].
	Type string

	// Subject is who or what the event is about. A parsed event has the
	// SET's sub_id, or the event's own subject member (older RISC
	// SETs), or the SET's sub and sid (RFC 8417 section 2.2).
	Subject SubjectID

	// Time is event_timestamp, or else the SET's toe, or else its iat.
	Time time.Time

	// Claims are the event's members as decoded from JSON, numbers as
	// float64.
	Claims map[string]any
}

// ParsePayload decodes and checks the claims of a SET: iss, jti and iat
// present, aud a string or a list of strings, and events an object of 1
// to 16 events, each an object. Neither signature nor issuer nor
// audience is checked: see [Receiver]. Errors wrap [ErrSET].
func ParsePayload(data []byte) (*SET, error) {
	var raw map[string]json.RawMessage
	if err := json.Unmarshal(data, &raw); err != nil || raw == nil {
		return nil, setErr(CodeInvalidRequest, "payload is not a JSON object")
	}
	p := payload{raw: raw}
	s := &SET{
		Issuer:   p.str("iss"),
		Audience: p.audience(),
		IssuedAt: p.date("iat"),
		JTI:      p.str("jti"),
		TxN:      p.str("txn"),
		TOE:      p.date("toe"),
		Expiry:   p.date("exp"),
	}
	if p.err != nil {
		return nil, p.err
	}
	switch {
	case s.Issuer == "":
		return nil, setErr(CodeInvalidRequest, "iss claim required")
	case s.JTI == "":
		return nil, setErr(CodeInvalidRequest, "jti claim required")
	case s.IssuedAt.IsZero():
		return nil, setErr(CodeInvalidRequest, "iat claim required")
	}
	if err := p.subject(s); err != nil {
		return nil, err
	}
	events, err := p.events(s)
	if err != nil {
		return nil, err
	}
	s.Events = events
	return s, nil
}

// payload reads typed claims and keeps the first error.
type payload struct {
	raw map[string]json.RawMessage
	err error
}

func (p *payload) fail(name, want string) {
	if p.err == nil {
		p.err = setErr(CodeInvalidRequest, name+" claim must be "+want)
	}
}

func (p *payload) str(name string) string {
	v, ok := p.raw[name]
	if !ok {
		return ""
	}
	var s string
	if json.Unmarshal(v, &s) != nil {
		p.fail(name, "a string")
	}
	return s
}

func (p *payload) audience() []string {
	v, ok := p.raw["aud"]
	if !ok {
		return nil
	}
	var one string
	if json.Unmarshal(v, &one) == nil {
		return []string{one}
	}
	var list []string
	if json.Unmarshal(v, &list) != nil {
		p.fail("aud", "a string or a list of strings")
	}
	return list
}

func (p *payload) date(name string) time.Time {
	v, ok := p.raw[name]
	if !ok {
		return time.Time{}
	}
	var f float64
	if json.Unmarshal(v, &f) != nil {
		p.fail(name, "a NumericDate")
		return time.Time{}
	}
	t, ok := numericDate(f)
	if !ok {
		p.fail(name, "a NumericDate")
	}
	return t
}

func numericDate(f float64) (time.Time, bool) {
	if math.IsNaN(f) || f < 0 || f > maxNumericDate {
		return time.Time{}, false
	}
	sec, frac := math.Modf(f)
	return time.Unix(int64(sec), int64(frac*1e9)).UTC(), true
}

// subject reads sub_id, or else sub and sid as a complex subject.
func (p *payload) subject(s *SET) error {
	if v, ok := p.raw["sub_id"]; ok {
		var sub SubjectID
		if err := json.Unmarshal(v, &sub); err != nil {
			return setErr(CodeInvalidRequest, "sub_id claim must be a subject identifier")
		}
		s.Subject = &sub
		return nil
	}
	sub, sid := p.str("sub"), p.str("sid")
	if p.err != nil {
		return p.err
	}
	switch {
	case sub != "" && sid != "":
		user, session := IssSub(s.Issuer, sub), Opaque(sid)
		s.Subject = &SubjectID{Format: FormatComplex, User: &user, Session: &session}
	case sub != "":
		user := IssSub(s.Issuer, sub)
		s.Subject = &user
	case sid != "":
		session := Opaque(sid)
		s.Subject = &SubjectID{Format: FormatComplex, Session: &session}
	}
	return nil
}

func (p *payload) events(s *SET) ([]Event, error) {
	v, ok := p.raw["events"]
	if !ok {
		return nil, setErr(CodeInvalidRequest, "events claim required")
	}
	var members map[string]json.RawMessage
	if json.Unmarshal(v, &members) != nil || members == nil {
		return nil, setErr(CodeInvalidRequest, "events claim must be an object")
	}
	if len(members) == 0 || len(members) > maxEvents {
		return nil, setErr(CodeInvalidRequest,
			fmt.Sprintf("events claim must hold 1 to %d events", maxEvents))
	}
	out := make([]Event, 0, len(members))
	for typ, body := range members {
		ev, err := parseEvent(s, typ, body)
		if err != nil {
			return nil, err
		}
		out = append(out, ev)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Type < out[j].Type })
	return out, nil
}

func parseEvent(s *SET, typ string, body json.RawMessage) (Event, error) {
	ev := Event{Type: typ}
	if json.Unmarshal(body, &ev.Claims) != nil || ev.Claims == nil {
		return ev, setErr(CodeInvalidRequest, "event "+quote(typ)+" must be an object")
	}
	if s.Subject != nil {
		ev.Subject = *s.Subject
	}
	if sub, ok := ev.Claims["subject"].(map[string]any); ok {
		ev.Subject = legacySubject(sub)
	}

	ev.Time = s.IssuedAt
	if !s.TOE.IsZero() {
		ev.Time = s.TOE
	}
	if v, ok := ev.Claims["event_timestamp"]; ok {
		f, isNum := v.(float64)
		t, valid := numericDate(f)
		if !isNum || !valid {
			return ev, setErr(CodeInvalidRequest,
				"event_timestamp of "+quote(typ)+" must be a NumericDate")
		}
		ev.Time = t
	}
	return ev, nil
}

// legacySubject reads the subject member of an event, as RISC drafts
// and RFC 8417's example send it: format, or subject_type with dashes.
func legacySubject(m map[string]any) SubjectID {
	data, _ := json.Marshal(m)
	var sub SubjectID
	_ = json.Unmarshal(data, &sub)
	if sub.Format == "" {
		t, _ := m["subject_type"].(string)
		sub.Format = strings.ReplaceAll(t, "-", "_")
	}
	return sub
}

func quote(s string) string {
	if len(s) > 128 {
		s = s[:128] + "..."
	}
	return strconv.Quote(s)
}
