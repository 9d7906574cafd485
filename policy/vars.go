package policy

import (
	"errors"
	"fmt"
	"reflect"
	"time"

	"cel.dev/cel-go/common/types"
	"cel.dev/cel-go/common/types/ref"
	"cel.dev/cel-go/common/types/traits"
	"cel.dev/cel-go/interpreter"

	"github.com/runtimeid/runtimeid"
)

// errAbsent is the evaluation error of reading a field the evaluation does
// not have, such as identity.auth_time from a token without one. It fails
// the request closed; rules test presence first with has() or the
// has_auth_time fields.
var errAbsent = errors.New("policy: field is absent")

// field is one field of an object type as CEL sees it: its type, whether
// it is set, and how to read it from the Go value. get returns a value the
// adapter understands: a Go scalar, a time, a slice, a map or one of the
// pointers that [adapter] wraps.
type field struct {
	name  string
	typ   *types.Type
	get   func(v any) (any, error)
	isSet func(v any) bool
}

// object is a CEL object type backed by a Go struct pointer. A nil
// pointer reads as the zero struct.
type object struct {
	typ    *types.Type
	names  []string
	fields map[string]*types.FieldType
}

const objectTraits = traits.IndexerType | traits.FieldTesterType

func newObject(name string, fields ...field) *object {
	o := &object{
		typ:    types.NewObjectType(name, objectTraits),
		fields: make(map[string]*types.FieldType, len(fields)),
	}
	for _, f := range fields {
		o.names = append(o.names, f.name)
		o.fields[f.name] = &types.FieldType{
			Type:    f.typ,
			IsSet:   f.isSet,
			GetFrom: f.get,
		}
	}
	return o
}

// getter builds a field whose value is always present.
func getter[T any](name string, t *types.Type, get func(*T) any) field {
	return field{
		name:  name,
		typ:   t,
		get:   func(v any) (any, error) { return get(deref[T](v)), nil },
		isSet: func(any) bool { return true },
	}
}

// text builds a string field, converted to CEL's string without a
// second copy through the type adapter.
func text[T any](name string, get func(*T) string) field {
	return getter(name, types.StringType, func(p *T) any { return types.String(get(p)) })
}

// optional builds a field that may be absent; reading it then fails.
func optional[T any](name string, t *types.Type, get func(*T) any, set func(*T) bool) field {
	return field{
		name: name,
		typ:  t,
		get: func(v any) (any, error) {
			p := deref[T](v)
			if !set(p) {
				return nil, fmt.Errorf("%w: %s", errAbsent, name)
			}
			return get(p), nil
		},
		isSet: func(v any) bool { return set(deref[T](v)) },
	}
}

// The zero values that nil pointers read as, shared and never written.
var (
	noIdentity runtimeid.Identity
	noActor    runtimeid.Actor
)

// deref returns the *T in v, or a zero T when v holds none: an absent
// identity or actor reads as one whose fields are all empty.
func deref[T any](v any) *T {
	if p, _ := v.(*T); p != nil {
		return p
	}
	var z any
	switch any((*T)(nil)).(type) {
	case *runtimeid.Identity:
		z = &noIdentity
	case *runtimeid.Actor:
		z = &noActor
	default:
		z = new(T)
	}
	return z.(*T)
}

// Types of the fields, named once.
var (
	stringList = types.NewListType(types.StringType)
	dynMap     = types.NewMapType(types.StringType, types.DynType)
	doubleMap  = types.NewMapType(types.StringType, types.DoubleType)
	emptyMap   = map[string]any{}
)

func orEmpty(m map[string]any) map[string]any {
	if m == nil {
		return emptyMap
	}
	return m
}

// strList is s as a CEL list. Lists are immutable in CEL, so every
// empty one is the same value.
func strList(s []string) ref.Val {
	if len(s) == 0 {
		return emptyList
	}
	return types.NewStringList(types.DefaultTypeAdapter, s)
}

var emptyList = types.NewStringList(types.DefaultTypeAdapter, []string{})

func timestamp(t time.Time) ref.Val { return types.Timestamp{Time: t} }

// The CEL values of the sensitivities and levels, made once: the
// getters return them instead of converting a string per request.
var (
	sensitivityVals = func() (v [256]ref.Val) {
		for i := range v {
			v[i] = types.String(runtimeid.Sensitivity(i).String())
		}
		return v
	}()
	levelVals = [...]ref.Val{
		types.String(runtimeid.LevelLow.String()),
		types.String(runtimeid.LevelMedium.String()),
		types.String(runtimeid.LevelHigh.String()),
	}
)

func levelVal(l runtimeid.Level) ref.Val {
	if int(l) < len(levelVals) {
		return levelVals[l]
	}
	return types.String(l.String())
}

func timeSet(t time.Time) bool { return !t.IsZero() }

type (
	identity = runtimeid.Identity
	actor    = runtimeid.Actor
	action   = runtimeid.Action
	signals  = runtimeid.Signals
	network  = runtimeid.NetworkSignals
	device   = runtimeid.DeviceSignals
	session  = runtimeid.SessionSignals
	risk     = runtimeid.Assessment
)

var actorObject = newObject("runtimeid.Actor",
	text("sub", func(a *actor) string { return a.Subject }),
	text("client_id", func(a *actor) string { return a.ClientID }),
	text("iss", func(a *actor) string { return a.Issuer }),
)

var identityObject = newObject("runtimeid.Identity",
	text("sub", func(i *identity) string { return i.Subject }),
	text("sid", func(i *identity) string { return i.SessionID }),
	text("iss", func(i *identity) string { return i.Issuer }),
	getter("aud", stringList, func(i *identity) any { return strList(i.Audience) }),
	text("jti", func(i *identity) string { return i.TokenID }),
	text("client_id", func(i *identity) string { return i.ClientID }),
	getter("scopes", stringList, func(i *identity) any { return strList(i.Scopes) }),
	text("acr", func(i *identity) string { return i.ACR }),
	getter("amr", stringList, func(i *identity) any { return strList(i.AMR) }),
	optional("auth_time", types.TimestampType,
		func(i *identity) any { return timestamp(i.AuthTime) },
		func(i *identity) bool { return timeSet(i.AuthTime) }),
	getter("has_auth_time", types.BoolType,
		func(i *identity) any { return timeSet(i.AuthTime) }),
	optional("iat", types.TimestampType,
		func(i *identity) any { return timestamp(i.IssuedAt) },
		func(i *identity) bool { return timeSet(i.IssuedAt) }),
	optional("exp", types.TimestampType,
		func(i *identity) any { return timestamp(i.Expiry) },
		func(i *identity) bool { return timeSet(i.Expiry) }),
	getter("delegated", types.BoolType, func(i *identity) any { return i.Actor != nil }),
	field{
		name: "actor",
		typ:  actorObject.typ,
		get: func(v any) (any, error) {
			return deref[actor](deref[identity](v).Actor), nil
		},
		isSet: func(v any) bool { return deref[identity](v).Actor != nil },
	},
	getter("claims", dynMap, func(i *identity) any { return orEmpty(i.Claims) }),
)

var actionObject = newObject("runtimeid.Action",
	text("name", func(a *action) string { return a.Name }),
	getter("sensitivity", types.StringType,
		func(a *action) any { return sensitivityVals[a.Sensitivity] }),
	text("method", func(a *action) string { return a.Method }),
	text("route", func(a *action) string { return a.Route }),
	getter("attributes", dynMap, func(a *action) any { return orEmpty(a.Attributes) }),
)

var networkObject = newObject("runtimeid.Network",
	text("country", func(n *network) string { return n.Country }),
	text("city", func(n *network) string { return n.City }),
	getter("asn", types.IntType, func(n *network) any { return int64(n.ASN) }),
	text("as_org", func(n *network) string { return n.ASOrg }),
	text("isp", func(n *network) string { return n.ISP }),
	getter("anonymous", types.BoolType, func(n *network) any { return n.Anonymous }),
	getter("vpn", types.BoolType, func(n *network) any { return n.VPN }),
	getter("tor", types.BoolType, func(n *network) any { return n.Tor }),
	getter("hosting", types.BoolType, func(n *network) any { return n.Hosting }),
	getter("public_proxy", types.BoolType, func(n *network) any { return n.PublicProxy }),
	getter("residential_proxy", types.BoolType,
		func(n *network) any { return n.ResidentialProxy }),
	getter("has_location", types.BoolType, func(n *network) any { return n.HasLocation }),
)

var deviceObject = newObject("runtimeid.Device",
	text("browser", func(d *device) string { return d.Browser }),
	text("browser_version",
		func(d *device) string { return d.BrowserVersion }),
	text("os", func(d *device) string { return d.OS }),
	text("os_version", func(d *device) string { return d.OSVersion }),
	text("type", func(d *device) string { return d.Type }),
	getter("bot", types.BoolType, func(d *device) any { return d.Bot }),
	text("id", func(d *device) string { return d.ID }),
	text("user_agent", func(d *device) string { return d.UserAgent }),
)

var sessionObject = newObject("runtimeid.Session",
	getter("token_age", types.DurationType,
		func(s *session) any { return types.Duration{Duration: s.TokenAge} }),
	optional("since_auth", types.DurationType,
		func(s *session) any { return types.Duration{Duration: s.SinceAuth} },
		func(s *session) bool { return s.HasAuthTime }),
	getter("has_auth_time", types.BoolType, func(s *session) any { return s.HasAuthTime }),
)

var signalsObject = newObject("runtimeid.Signals",
	text("client_ip", func(s *signals) string { return clientIP(s) }),
	getter("network", networkObject.typ, func(s *signals) any { return &s.Network }),
	getter("device", deviceObject.typ, func(s *signals) any { return &s.Device }),
	getter("session", sessionObject.typ, func(s *signals) any { return &s.Session }),
	getter("custom", dynMap, func(s *signals) any { return orEmpty(s.Custom) }),
)

var riskObject = newObject("runtimeid.Risk",
	getter("score", types.DoubleType, func(r *risk) any { return r.Score }),
	getter("level", types.StringType, func(r *risk) any { return levelVal(r.Level) }),
	getter("findings", stringList, func(r *risk) any { return strList(r.Codes()) }),
	getter("weights", doubleMap, func(r *risk) any { return weights(r) }),
)

func clientIP(s *signals) string {
	if !s.ClientIP.IsValid() {
		return ""
	}
	return s.ClientIP.String()
}

// weights maps each finding code to its weight. A code found twice keeps
// its largest weight.
func weights(r *risk) map[string]any {
	m := make(map[string]any, len(r.Findings))
	for _, f := range r.Findings {
		if w, ok := m[f.Code].(float64); !ok || f.Weight > w {
			m[f.Code] = f.Weight
		}
	}
	return m
}

var objects = map[string]*object{
	"runtimeid.Identity": identityObject,
	"runtimeid.Actor":    actorObject,
	"runtimeid.Action":   actionObject,
	"runtimeid.Signals":  signalsObject,
	"runtimeid.Network":  networkObject,
	"runtimeid.Device":   deviceObject,
	"runtimeid.Session":  sessionObject,
	"runtimeid.Risk":     riskObject,
}

// provider adds the object types to the environment's own provider.
type provider struct {
	types.Provider
}

// FindStructType implements [types.Provider].
func (p provider) FindStructType(name string) (*types.Type, bool) {
	if o, ok := objects[name]; ok {
		return types.NewTypeTypeWithParam(o.typ), true
	}
	return p.Provider.FindStructType(name)
}

// FindStructFieldNames implements [types.Provider].
func (p provider) FindStructFieldNames(name string) ([]string, bool) {
	if o, ok := objects[name]; ok {
		return o.names, true
	}
	return p.Provider.FindStructFieldNames(name)
}

// FindStructFieldType implements [types.Provider].
func (p provider) FindStructFieldType(name, fieldName string) (*types.FieldType, bool) {
	if o, ok := objects[name]; ok {
		f, ok := o.fields[fieldName]
		return f, ok
	}
	return p.Provider.FindStructFieldType(name, fieldName)
}

// NewValue refuses to build the read-only object types.
func (p provider) NewValue(name string, fields map[string]ref.Val) ref.Val {
	if _, ok := objects[name]; ok {
		return types.NewErr("policy: %s cannot be constructed", name)
	}
	return p.Provider.NewValue(name, fields)
}

// adapter turns the Go values the fields return into CEL values.
type adapter struct {
	types.Adapter
}

// NativeToValue implements [types.Adapter].
func (a adapter) NativeToValue(v any) ref.Val {
	switch v := v.(type) {
	case *identity:
		return objectVal{identityObject, v, a}
	case *actor:
		return objectVal{actorObject, v, a}
	case *action:
		return objectVal{actionObject, v, a}
	case *signals:
		return objectVal{signalsObject, v, a}
	case *network:
		return objectVal{networkObject, v, a}
	case *device:
		return objectVal{deviceObject, v, a}
	case *session:
		return objectVal{sessionObject, v, a}
	case *risk:
		return objectVal{riskObject, v, a}
	}
	return a.Adapter.NativeToValue(v)
}

// objectVal is an object as a CEL value. The checked expressions read
// its fields through [types.FieldType]; Get and IsSet serve dynamic
// access, such as dyn(identity).sub.
type objectVal struct {
	obj *object
	v   any
	a   types.Adapter
}

// ConvertToNative implements [ref.Val].
func (o objectVal) ConvertToNative(t reflect.Type) (any, error) {
	if reflect.TypeOf(o.v).AssignableTo(t) {
		return o.v, nil
	}
	return nil, fmt.Errorf("policy: cannot convert %s to %v", o.obj.typ, t)
}

// ConvertToType implements [ref.Val].
func (o objectVal) ConvertToType(t ref.Type) ref.Val {
	switch t {
	case types.TypeType:
		return o.obj.typ
	case o.obj.typ:
		return o
	}
	return types.NewErr("policy: cannot convert %s to %s", o.obj.typ, t.TypeName())
}

// Equal implements [ref.Val]: the same Go value only.
func (o objectVal) Equal(other ref.Val) ref.Val {
	x, ok := other.(objectVal)
	return types.Bool(ok && x.obj == o.obj && x.v == o.v)
}

// Type implements [ref.Val].
func (o objectVal) Type() ref.Type { return o.obj.typ }

// Value implements [ref.Val].
func (o objectVal) Value() any { return o.v }

// Get implements [traits.Indexer].
func (o objectVal) Get(key ref.Val) ref.Val {
	name, ok := key.(types.String)
	if !ok {
		return types.ValOrErr(key, "no such overload")
	}
	f, ok := o.obj.fields[string(name)]
	if !ok {
		return types.NewErr("no such key: %s", name)
	}
	v, err := f.GetFrom(o.v)
	if err != nil {
		return types.WrapErr(err)
	}
	return o.a.NativeToValue(v)
}

// IsSet implements [traits.FieldTester].
func (o objectVal) IsSet(key ref.Val) ref.Val {
	name, ok := key.(types.String)
	if !ok {
		return types.ValOrErr(key, "no such overload")
	}
	f, ok := o.obj.fields[string(name)]
	if !ok {
		return types.NewErr("no such key: %s", name)
	}
	return types.Bool(f.IsSet(o.v))
}

// activation resolves the top-level variables of one evaluation. It
// builds nothing up front: each field is read from ev only when a rule
// selects it.
type activation struct {
	ev  *runtimeid.Evaluation
	now any
}

// ResolveName implements [interpreter.Activation].
func (a *activation) ResolveName(name string) (any, bool) {
	ev := a.ev
	switch name {
	case "identity":
		return ev.Identity, true
	case "action":
		return &ev.Action, true
	case "signals":
		return &ev.Signals, true
	case "risk":
		return &ev.Assessment, true
	case "now":
		if a.now == nil {
			a.now = types.Timestamp{Time: ev.Time}
		}
		return a.now, true
	}
	return nil, false
}

// Parent implements [interpreter.Activation].
func (a *activation) Parent() interpreter.Activation { return nil }
