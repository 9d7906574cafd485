package ssf

import (
	"fmt"
	"strings"

	"github.com/runtimeid/runtimeid"
)

// The subject identifier formats of RFC 9493 and SSF 1.0.
const (
	FormatAccount     = "account"
	FormatAliases     = "aliases"
	FormatComplex     = "complex"
	FormatDID         = "did"
	FormatEmail       = "email"
	FormatIPAddresses = "ip-addresses"
	FormatIssSub      = "iss_sub"
	FormatJWTID       = "jwt_id"
	FormatOpaque      = "opaque"
	FormatPhoneNumber = "phone_number"
	FormatSAMLID      = "saml_assertion_id"
	FormatURI         = "uri"
)

// maxSubjectDepth bounds how deeply subjects nest: a complex subject's
// members, and aliases, are one level below the top.
const maxSubjectDepth = 3

// maxAliases bounds the identifiers of an aliases subject.
const maxAliases = 16

// SubjectID is a subject identifier as a SET carries it in sub_id (SSF
// 1.0, RFC 9493). Which members are set depends on Format; a
// complex subject sets the member subjects instead.
type SubjectID struct {
	Format string `json:"format"`

	Email       string   `json:"email,omitempty"`
	Iss         string   `json:"iss,omitempty"`
	Sub         string   `json:"sub,omitempty"`
	ID          string   `json:"id,omitempty"`
	PhoneNumber string   `json:"phone_number,omitempty"`
	URI         string   `json:"uri,omitempty"`
	URL         string   `json:"url,omitempty"` // did
	JTI         string   `json:"jti,omitempty"`
	Issuer      string   `json:"issuer,omitempty"`       // saml_assertion_id
	AssertionID string   `json:"assertion_id,omitempty"` // saml_assertion_id
	IPAddresses []string `json:"ip-addresses,omitempty"`

	// Identifiers are the members of an aliases subject.
	Identifiers []SubjectID `json:"identifiers,omitempty"`

	// The members of a complex subject (SSF 1.0 complex subjects).
	User        *SubjectID `json:"user,omitempty"`
	Session     *SubjectID `json:"session,omitempty"`
	Device      *SubjectID `json:"device,omitempty"`
	Tenant      *SubjectID `json:"tenant,omitempty"`
	Application *SubjectID `json:"application,omitempty"`
	Group       *SubjectID `json:"group,omitempty"`
	OrgUnit     *SubjectID `json:"org_unit,omitempty"`
}

// IssSub returns an iss_sub subject.
func IssSub(iss, sub string) SubjectID {
	return SubjectID{Format: FormatIssSub, Iss: iss, Sub: sub}
}

// Opaque returns an opaque subject.
func Opaque(id string) SubjectID {
	return SubjectID{Format: FormatOpaque, ID: id}
}

// Email returns an email subject.
func Email(addr string) SubjectID {
	return SubjectID{Format: FormatEmail, Email: addr}
}

// SubjectOf returns the subject of a verified identity: its iss_sub, or
// a complex subject of the user and the session (as opaque) when the
// token has a sid.
func SubjectOf(id *runtimeid.Identity) SubjectID {
	user := IssSub(id.Issuer, id.Subject)
	if id.SessionID == "" {
		return user
	}
	session := Opaque(id.SessionID)
	return SubjectID{Format: FormatComplex, User: &user, Session: &session}
}

// Kind says what part of an identity a [Key] matches.
type Kind uint8

// The kinds of key. See [Key] for which identity field each matches.
const (
	KindNone    Kind = iota
	KindIssSub       // Identity.Issuer and Identity.Subject
	KindSub          // Identity.Subject, of any issuer
	KindEmail        // the token's email claim, in lower case
	KindPhone        // the token's phone_number claim, digits and '+'
	KindSession      // Identity.SessionID
	KindDevice       // Signals.Device.ID
	KindToken        // Identity.Issuer and Identity.TokenID
)

var kindNames = [...]string{"none", "iss_sub", "sub", "email",
	"phone_number", "session", "device", "jwt_id"}

// String returns the kind's name.
func (k Kind) String() string {
	if int(k) < len(kindNames) {
		return kindNames[k]
	}
	return "none"
}

// Key is a normalised subject: what the state is keyed by, and what an
// identity is looked up by. The subject formats map onto keys so:
//
//   - iss_sub: KindIssSub, matching the token's iss and sub;
//   - email: KindEmail, matching the token's "email" claim, compared
//     in lower case (the claim's email_verified is not checked);
//   - phone_number: KindPhone, matching the "phone_number" claim after
//     dropping everything but digits and a leading '+';
//   - opaque, account, did and uri: KindSub, matching the token's sub
//     of any issuer; an opaque subject of a session event, or the
//     session member of a complex subject, is KindSession instead,
//     matching the token's sid;
//   - jwt_id: KindToken, matching the token's iss and jti;
//   - the device member of a complex subject (iss_sub's sub, or
//     opaque's id): KindDevice, matching [runtimeid.DeviceSignals.ID];
//   - aliases: each of its identifiers;
//   - ip-addresses, saml_assertion_id, and the tenant, group,
//     application and org_unit members: nothing. An event about a whole
//     tenant or group is not applied.
type Key struct {
	Kind   Kind
	Issuer string // KindIssSub and KindToken only
	ID     string
}

// String returns the key for logs.
func (k Key) String() string {
	if k.Issuer != "" {
		return k.Kind.String() + ":" + k.Issuer + "|" + k.ID
	}
	return k.Kind.String() + ":" + k.ID
}

// Keys are the normalised keys of one event's subject, by role.
type Keys struct {
	User    []Key // KindIssSub, KindSub, KindEmail, KindPhone
	Session []Key // KindSession
	Device  []Key // KindDevice
	Token   []Key // KindToken
}

// empty reports whether no key was found.
func (k *Keys) empty() bool {
	return len(k.User)+len(k.Session)+len(k.Device)+len(k.Token) == 0
}

// all returns every key.
func (k *Keys) all() []Key {
	out := make([]Key, 0, len(k.User)+len(k.Session)+len(k.Device)+len(k.Token))
	out = append(out, k.User...)
	out = append(out, k.Session...)
	out = append(out, k.Device...)
	return append(out, k.Token...)
}

// role is how a subject is read: a top-level opaque subject of a session
// event names the session; a top-level simple subject of a device event
// names the device.
type role uint8

const (
	roleUser role = iota
	roleSession
	roleDevice
)

// keys normalises s. It fails on a subject that is malformed: an unknown
// shape, a missing member, or nesting beyond [maxSubjectDepth].
func (s *SubjectID) keys(r role) (Keys, error) {
	// Only an opaque id can name a session by itself: an iss_sub or
	// an email at the top of a session event names the user.
	if r == roleSession && s.Format != FormatOpaque {
		r = roleUser
	}
	var k Keys
	err := s.collect(&k, r, 1)
	return k, err
}

func (s *SubjectID) collect(k *Keys, r role, depth int) error {
	if depth > maxSubjectDepth {
		return fmt.Errorf("subject nested deeper than %d", maxSubjectDepth)
	}
	switch s.Format {
	case FormatComplex:
		return s.complexKeys(k, depth)
	case FormatAliases:
		if len(s.Identifiers) == 0 || len(s.Identifiers) > maxAliases {
			return fmt.Errorf("aliases must hold 1 to %d identifiers", maxAliases)
		}
		for i := range s.Identifiers {
			if err := s.Identifiers[i].collect(k, r, depth+1); err != nil {
				return err
			}
		}
		return nil
	}
	key, err := s.simpleKey(r)
	if err != nil || key.Kind == KindNone {
		return err
	}
	switch key.Kind {
	case KindSession:
		k.Session = append(k.Session, key)
	case KindDevice:
		k.Device = append(k.Device, key)
	case KindToken:
		k.Token = append(k.Token, key)
	default:
		k.User = append(k.User, key)
	}
	return nil
}

func (s *SubjectID) complexKeys(k *Keys, depth int) error {
	members := []struct {
		m *SubjectID
		r role
	}{{s.User, roleUser}, {s.Session, roleSession}, {s.Device, roleDevice}}
	found := false
	for _, mb := range members {
		if mb.m == nil {
			continue
		}
		found = true
		if err := mb.m.collect(k, mb.r, depth+1); err != nil {
			return err
		}
	}
	others := s.Tenant != nil || s.Application != nil ||
		s.Group != nil || s.OrgUnit != nil
	if !found && !others {
		return fmt.Errorf("complex subject has no member")
	}
	return nil
}

// simpleKey maps one simple subject, as the doc of [Key] lists.
func (s *SubjectID) simpleKey(r role) (Key, error) {
	var val, iss string
	kind := KindSub
	switch s.Format {
	case FormatIssSub:
		val, iss, kind = s.Sub, s.Iss, KindIssSub
		if iss == "" {
			return Key{}, fmt.Errorf("iss_sub subject without iss")
		}
	case FormatEmail:
		val, kind = normalEmail(s.Email), KindEmail
	case FormatPhoneNumber:
		val, kind = normalPhone(s.PhoneNumber), KindPhone
	case FormatOpaque:
		val = s.ID
	case FormatAccount, FormatURI:
		val = s.URI
	case FormatDID:
		val = s.URL
	case FormatJWTID:
		val, iss, kind = s.JTI, s.Iss, KindToken
	case FormatIPAddresses, FormatSAMLID:
		return Key{}, nil
	case "":
		return Key{}, fmt.Errorf("subject without format")
	default:
		// RFC 9493: a receiver ignores formats it does not
		// understand rather than failing the whole SET.
		return Key{}, nil
	}
	if val == "" {
		return Key{}, fmt.Errorf("%s subject without identifier", quote(s.Format))
	}
	kind = role2kind(kind, r)
	if kind == KindSession || kind == KindDevice {
		iss = ""
	}
	return Key{Kind: kind, Issuer: iss, ID: val}, nil
}

// role2kind reads a user-shaped key in the role its position gives it:
// the session member's id is a sid, the device member's a device id.
func role2kind(k Kind, r role) Kind {
	if k == KindToken || k == KindEmail || k == KindPhone {
		return k
	}
	switch r {
	case roleSession:
		return KindSession
	case roleDevice:
		return KindDevice
	}
	return k
}

func normalEmail(s string) string {
	return strings.ToLower(strings.TrimSpace(s))
}

func normalPhone(s string) string {
	var b strings.Builder
	for i, r := range s {
		if r >= '0' && r <= '9' || r == '+' && i == 0 {
			b.WriteRune(r)
		}
	}
	return b.String()
}

// identityKeys are the keys an identity is looked up by, user keys first.
func identityKeys(id *runtimeid.Identity, buf []Key) []Key {
	keys := append(buf[:0],
		Key{Kind: KindIssSub, Issuer: id.Issuer, ID: id.Subject},
		Key{Kind: KindSub, ID: id.Subject})
	if e, ok := id.Claims["email"].(string); ok && e != "" {
		keys = append(keys, Key{Kind: KindEmail, ID: normalEmail(e)})
	}
	if p, ok := id.Claims["phone_number"].(string); ok && p != "" {
		keys = append(keys, Key{Kind: KindPhone, ID: normalPhone(p)})
	}
	if id.SessionID != "" {
		keys = append(keys, Key{Kind: KindSession, ID: id.SessionID})
	}
	if id.TokenID != "" {
		keys = append(keys, Key{Kind: KindToken, Issuer: id.Issuer, ID: id.TokenID})
	}
	return keys
}
