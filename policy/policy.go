package policy

import (
	"context"
	"fmt"
	"slices"

	"cel.dev/cel-go/cel"
	"cel.dev/cel-go/common/types"
	"cel.dev/cel-go/common/types/ref"
	"cel.dev/cel-go/interpreter"

	"github.com/runtimeid/runtimeid"
)

// Limits on a policy. They keep a hostile or careless policy from making
// loading or a request slow; a policy over a limit does not load.
const (
	// MaxPolicySize is the largest policy file [Parse] and [Load] read,
	// in bytes.
	MaxPolicySize = 1 << 20

	// MaxRules is the most rules a policy may have. Every rule runs on
	// every request.
	MaxRules = 500

	// MaxExpressionSize is the longest when expression, in bytes.
	MaxExpressionSize = 4096

	// MaxNameSize is the longest rule name or reason, in bytes.
	MaxNameSize = 128

	// RuleCostLimit is the most CEL cost units one rule may spend on one
	// request, about one unit per operation and per list element a
	// macro visits. A rule over it fails the request closed.
	RuleCostLimit = 10_000
)

// Rule is one policy rule: when its CEL condition holds, it proposes its
// outcome.
type Rule struct {
	// Name identifies the rule in decisions, audit events and metrics.
	// Required, unique, at most [MaxNameSize] bytes of letters, digits
	// and "_-.:".
	Name string

	// Description says what the rule is for, to people.
	Description string

	// When is the CEL condition, which must have type bool. The package
	// documentation lists the variables it sees.
	When string

	// Outcome is what the rule proposes when it matches. Required.
	Outcome runtimeid.Outcome

	// Reason is the stable code of the decision, shown to clients in
	// problem+json and WWW-Authenticate. Empty means the rule's name.
	// Same alphabet and size as Name.
	Reason string

	// StepUp is what satisfies the challenge. Only for [runtimeid.Challenge];
	// nil means the engine's [runtimeid.Config.DefaultStepUp].
	StepUp *runtimeid.StepUp

	// ReportOnly rules are evaluated and recorded in
	// [runtimeid.Decision.ReportOnly] but never change the outcome. Use
	// them to try a rule on live traffic before enforcing it.
	ReportOnly bool
}

// Spec is a whole policy, as written in Go or decoded from a file.
type Spec struct {
	// Version is the format version: 1. Zero means 1.
	Version int

	// Default is the outcome when no enforcing rule matches. Zero means
	// [runtimeid.Allow]: rules name what is dangerous, everything else
	// proceeds. Use [runtimeid.Block] for an allow-list policy.
	Default runtimeid.Outcome

	// Rules are evaluated in order, every one on every request.
	Rules []Rule
}

// Policy is a compiled [Spec]. It implements [runtimeid.PolicyEngine],
// is immutable and safe for concurrent use.
type Policy struct {
	rules []compiled
	def   runtimeid.Outcome
}

// compiled is a rule with its programs, compiled once at load: prg
// tracks its cost, fast, when not nil, is the same without tracking, for
// evaluations within the bounds its cost estimate assumed.
type compiled struct {
	Rule
	reason string
	prg    cel.Program
	fast   cel.Program
}

var _ runtimeid.PolicyEngine = (*Policy)(nil)

// New checks and compiles a policy written in Go. Every problem is an
// [*Error] naming the rule and field; see [Parse] for files.
func New(spec Spec) (*Policy, error) {
	return compile(spec, nil)
}

// compile checks and compiles spec. src, when not nil, says where each
// rule came from, for errors.
func compile(spec Spec, src *source) (*Policy, error) {
	if err := checkSpec(spec, src); err != nil {
		return nil, err
	}
	env, err := environment()
	if err != nil {
		return nil, fmt.Errorf("policy: cel environment: %w", err)
	}
	p := &Policy{def: spec.Default, rules: make([]compiled, len(spec.Rules))}
	if p.def == runtimeid.OutcomeUnset {
		p.def = runtimeid.Allow
	}
	for i, r := range spec.Rules {
		prg, fast, err := program(env, r.When)
		if err != nil {
			return nil, src.ruleError(i, r.Name, "when", err)
		}
		p.rules[i] = compiled{Rule: cloneRule(r), reason: r.Reason, prg: prg, fast: fast}
		if p.rules[i].reason == "" {
			p.rules[i].reason = r.Name
		}
	}
	return p, nil
}

// Rules returns a copy of the policy's rules, in order.
func (p *Policy) Rules() []Rule {
	rules := make([]Rule, len(p.rules))
	for i := range p.rules {
		rules[i] = cloneRule(p.rules[i].Rule)
	}
	return rules
}

// DefaultOutcome returns the outcome when no enforcing rule matches.
func (p *Policy) DefaultOutcome() runtimeid.Outcome { return p.def }

// Decide implements [runtimeid.PolicyEngine]. It evaluates every rule;
// the most severe outcome of the enforcing rules that match wins (block,
// then challenge, then allow), and among equals the first in order, whose
// name, reason and step-up make the decision. Report-only matches are
// listed in the decision and change nothing. When no enforcing rule
// matches, the decision is the default outcome with rule and reason
// "default".
//
// A rule that fails, such as one that reads an absent field or exceeds
// [RuleCostLimit], makes Decide return an error wrapping [ErrEvaluation]
// and no decision: the engine then fails the request closed.
func (p *Policy) Decide(ctx context.Context, ev *runtimeid.Evaluation) (runtimeid.Decision, error) {
	if ev == nil {
		return runtimeid.Decision{}, fmt.Errorf("%w: nil evaluation", ErrEvaluation)
	}
	if ctx == nil {
		ctx = context.Background()
	}
	act := &activation{ev: ev}
	var frame *interpreter.ExecutionFrame
	if withinBounds(ev) {
		// The fast programs share one frame over the activation, which
		// they leave as they found it; the tracked ones make their own.
		var err error
		if frame, err = interpreter.NewExecutionFrame(act); err != nil {
			return runtimeid.Decision{}, fmt.Errorf("%w: %w", ErrEvaluation, err)
		}
		defer frame.Close()
	}
	win := -1
	var report []runtimeid.RuleMatch
	for i := range p.rules {
		r := &p.rules[i]
		ok, err := r.match(ctx, act, frame)
		switch {
		case err != nil:
			return runtimeid.Decision{}, err
		case !ok:
			continue
		case r.ReportOnly:
			report = append(report, runtimeid.RuleMatch{
				Rule: r.Name, Outcome: r.Outcome, Reason: r.reason,
			})
		case win < 0 || r.Outcome > p.rules[win].Outcome:
			win = i
		}
	}
	d := p.decision(win)
	d.ReportOnly = report
	return d, nil
}

func (p *Policy) decision(win int) runtimeid.Decision {
	if win < 0 {
		return runtimeid.Decision{Outcome: p.def, Rule: "default", Reason: "default"}
	}
	r := &p.rules[win]
	d := runtimeid.Decision{Outcome: r.Outcome, Rule: r.Name, Reason: r.reason}
	if r.Outcome == runtimeid.Challenge && r.StepUp != nil {
		d.StepUp = cloneStepUp(r.StepUp)
	}
	return d
}

// match evaluates the rule. frame is not nil when the evaluation is
// within the bounds that prove the fast program stays under
// RuleCostLimit; the fast program then runs in it, without tracking.
// RuleCostLimit bounds how long one rule can run, so the context is
// checked between rules rather than inside them: CEL's own interrupt
// checks cost an allocated context per evaluation.
func (r *compiled) match(
	ctx context.Context, act *activation, frame *interpreter.ExecutionFrame,
) (bool, error) {
	if err := ctx.Err(); err != nil {
		return false, fmt.Errorf("%w: rule %q: %w", ErrEvaluation, r.Name, err)
	}
	var out ref.Val
	var err error
	if frame != nil && r.fast != nil {
		out, _, err = r.fast.Eval(frame)
	} else {
		out, _, err = r.prg.Eval(act)
	}
	if err != nil {
		return false, fmt.Errorf("%w: rule %q: %w", ErrEvaluation, r.Name, err)
	}
	b, ok := out.(types.Bool)
	if !ok {
		return false, fmt.Errorf("%w: rule %q: result is %s, not bool",
			ErrEvaluation, r.Name, out.Type().TypeName())
	}
	return bool(b), nil
}

func cloneRule(r Rule) Rule {
	r.StepUp = cloneStepUp(r.StepUp)
	return r
}

func cloneStepUp(s *runtimeid.StepUp) *runtimeid.StepUp {
	if s == nil {
		return nil
	}
	c := *s
	c.ACRValues = slices.Clone(s.ACRValues)
	return &c
}
