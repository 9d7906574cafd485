package ssf

import (
	"context"
	"reflect"
	"time"

	"github.com/runtimeid/runtimeid"
)

// The finding codes of [Evaluator].
const (
	FindingRiskLevel           = "ssf_risk_level"
	FindingDeviceNoncompliant  = "device_noncompliant"
	FindingAssuranceDowngraded = "assurance_downgraded"
	FindingClaimsChanged       = "claims_changed"
)

// The weights of the findings. A pushed risk level weighs what the
// identity provider's word is worth: low 0 (no finding), medium 0.4
// (the medium band with the default thresholds), high 0.8 (the high
// band, alone enough for the default policy's challenge-high-risk).
// A non-compliant device weighs 0.7, high on its own; a downgraded
// assurance level or changed claims 0.4, medium.
const (
	WeightRiskMedium          = 0.4
	WeightRiskHigh            = 0.8
	WeightDeviceNoncompliant  = 0.7
	WeightAssuranceDowngraded = 0.4
	WeightClaimsChanged       = 0.4
)

// riskWeights maps the risk levels of CAEP 1.0 risk-level-change, in lower
// case, onto finding weights.
var riskWeights = map[string]float64{
	"low":    0,
	"medium": WeightRiskMedium,
	"high":   WeightRiskHigh,
}

// Evaluator turns pushed facts into findings. It implements
// [runtimeid.RiskEvaluator]; add it to [runtimeid.Config.Evaluators].
//
//   - ssf_risk_level: the highest risk level pushed for the identity's
//     keys or its device (weights above);
//   - device_noncompliant: the device of [runtimeid.DeviceSignals.ID]
//     was reported not compliant;
//   - assurance_downgraded: the assurance level decreased after the
//     token was issued, or the token's acr is the level it decreased
//     from;
//   - claims_changed: a token-claims-change after the token was issued
//     gives a claim a value the token does not carry.
//
// It trusts the store and the device id a collector set; it never fails.
type Evaluator struct {
	store Store
}

var _ runtimeid.RiskEvaluator = (*Evaluator)(nil)

// NewEvaluator returns an evaluator over store.
func NewEvaluator(store Store) *Evaluator {
	return &Evaluator{store: store}
}

// Assess implements [runtimeid.RiskEvaluator].
func (e *Evaluator) Assess(
	_ context.Context, ev *runtimeid.Evaluation,
) ([]runtimeid.Finding, error) {
	m := merge(e.store, ev)
	if m.empty() {
		return nil, nil
	}
	var out []runtimeid.Finding
	if w := riskWeights[m.risk]; w > 0 {
		out = append(out, runtimeid.Finding{Code: FindingRiskLevel, Weight: w,
			Detail: "the identity provider reports " + m.risk + " risk"})
	}
	if m.compliance == "not-compliant" {
		out = append(out, runtimeid.Finding{Code: FindingDeviceNoncompliant,
			Weight: WeightDeviceNoncompliant, Detail: "device reported not compliant"})
	}
	if m.downgraded(ev.Identity) {
		out = append(out, runtimeid.Finding{Code: FindingAssuranceDowngraded,
			Weight: WeightAssuranceDowngraded, Detail: "assurance level decreased"})
	}
	if m.claimsDiffer(ev.Identity) {
		out = append(out, runtimeid.Finding{Code: FindingClaimsChanged,
			Weight: WeightClaimsChanged, Detail: "token claims changed"})
	}
	return out, nil
}

// merged are the facts of every key of one evaluation, combined: the
// highest risk, the newest assurance and claims.
type merged struct {
	risk       string
	compliance string
	assurance  *Facts // the facts with the newest assurance change
	claims     *Facts // the facts with the newest claims change
}

func (m *merged) empty() bool {
	return m.risk == "" && m.compliance == "" && m.assurance == nil && m.claims == nil
}

func merge(store Store, ev *runtimeid.Evaluation) merged {
	var m merged
	var buf [maxIdentityKeys + 1]Key
	var keys []Key
	if ev.Identity != nil {
		keys = identityKeys(ev.Identity, buf[:0])
	}
	if d := ev.Signals.Device.ID; d != "" {
		keys = append(keys, Key{Kind: KindDevice, ID: d})
	}
	for _, k := range keys {
		f, ok := store.Lookup(k, ev.Time)
		if ok {
			m.add(f)
		}
	}
	return m
}

func (m *merged) add(f *Facts) {
	if riskWeights[f.RiskLevel] > riskWeights[m.risk] || m.risk == "" {
		m.risk = f.RiskLevel
	}
	if f.Compliance != "" && m.compliance != "not-compliant" {
		m.compliance = f.Compliance
	}
	a := m.assurance
	if !f.AssuranceAt.IsZero() && (a == nil || f.AssuranceAt.After(a.AssuranceAt)) {
		m.assurance = f
	}
	if f.Claims != nil && (m.claims == nil || f.ClaimsAt.After(m.claims.ClaimsAt)) {
		m.claims = f
	}
}

func (m *merged) downgraded(id *runtimeid.Identity) bool {
	if m.assurance == nil || id == nil || m.assurance.Assurance.Direction != "decrease" {
		return false
	}
	a := m.assurance
	return issuedBefore(id, a.AssuranceAt) ||
		id.ACR != "" && id.ACR == a.Assurance.Previous
}

func (m *merged) claimsDiffer(id *runtimeid.Identity) bool {
	if m.claims == nil || id == nil || !issuedBefore(id, m.claims.ClaimsAt) {
		return false
	}
	for k, v := range m.claims.Claims {
		if !reflect.DeepEqual(id.Claims[k], v) {
			return true
		}
	}
	return false
}

// issuedBefore reports whether the token was issued at or before t; a
// token without iat counts as issued before.
func issuedBefore(id *runtimeid.Identity, t time.Time) bool {
	return !id.IssuedAt.After(t)
}

// Collector shows pushed facts to policies. It implements
// [runtimeid.SignalCollector] and sets ev.Signals.Custom["ssf"], which
// policies read as signals.custom.ssf, to a map that always holds:
//
//   - risk_level: "low", "medium", "high", or "" when none was pushed;
//   - device_compliance: "compliant", "not-compliant" or "";
//   - device_compliant: false only when the device was reported not
//     compliant;
//   - assurance_level, assurance_namespace, assurance_direction: the
//     last assurance-level-change, or "";
//   - claims: the claims of the last token-claims-change, or an empty
//     map.
//
// Every member is always present, so a rule may read it without has().
// It never fails.
type Collector struct {
	store Store
}

var _ runtimeid.SignalCollector = (*Collector)(nil)

// NewCollector returns a collector over store.
func NewCollector(store Store) *Collector {
	return &Collector{store: store}
}

// Collect implements [runtimeid.SignalCollector].
func (c *Collector) Collect(_ context.Context, ev *runtimeid.Evaluation) error {
	m := merge(c.store, ev)
	out := map[string]any{
		"risk_level":          m.risk,
		"device_compliance":   m.compliance,
		"device_compliant":    m.compliance != "not-compliant",
		"assurance_level":     "",
		"assurance_namespace": "",
		"assurance_direction": "",
		"claims":              map[string]any{},
	}
	if a := m.assurance; a != nil {
		out["assurance_level"] = a.Assurance.Current
		out["assurance_namespace"] = a.Assurance.Namespace
		out["assurance_direction"] = a.Assurance.Direction
	}
	if m.claims != nil {
		out["claims"] = m.claims.Claims
	}
	if ev.Signals.Custom == nil {
		ev.Signals.Custom = make(map[string]any, 1)
	}
	ev.Signals.Custom["ssf"] = out
	return nil
}
