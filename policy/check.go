package policy

import (
	"fmt"
	"strings"

	"github.com/runtimeid/runtimeid"
)

// source says where a spec came from, so errors can point into the file.
// A nil source is a spec written in Go.
type source struct {
	file string

	// ruleLines[i] is the line of rules[i]; whenLines[i] the line of its
	// when expression. Zero when unknown.
	ruleLines []int
	whenLines []int
}

func (s *source) name() string {
	if s == nil {
		return ""
	}
	return s.file
}

func (s *source) line(lines []int, i int) int {
	if s == nil || i < 0 || i >= len(lines) {
		return 0
	}
	return lines[i]
}

// specError is a problem with the policy as a whole.
func (s *source) specError(field, reason string) *Error {
	return &Error{File: s.name(), Index: -1, Field: field, Reason: reason}
}

// ruleError is a problem with rules[i]. The line is the when
// expression's for errors in it, else the rule's.
func (s *source) ruleError(i int, name, field string, err error) *Error {
	e := &Error{File: s.name(), Index: i, Rule: name, Field: field, Reason: err.Error()}
	if s != nil {
		e.Line = s.line(s.ruleLines, i)
		if w := s.line(s.whenLines, i); field == "when" && w > 0 {
			e.Line = w
		}
	}
	return e
}

func checkSpec(spec Spec, src *source) error {
	switch {
	case spec.Version != 0 && spec.Version != 1:
		return src.specError("version", fmt.Sprintf("unsupported version %d, want 1", spec.Version))
	case spec.Default > runtimeid.Block:
		return src.specError("default", fmt.Sprintf("unknown outcome %d", spec.Default))
	case len(spec.Rules) > MaxRules:
		return src.specError("rules",
			fmt.Sprintf("%d rules, at most %d", len(spec.Rules), MaxRules))
	}
	seen := make(map[string]int, len(spec.Rules))
	for i, r := range spec.Rules {
		field, err := checkRule(&r)
		if err == nil {
			if j, dup := seen[r.Name]; dup {
				field, err = "name", fmt.Errorf("duplicate name, first used by rules[%d]", j)
			}
		}
		if err != nil {
			return src.ruleError(i, r.Name, field, err)
		}
		seen[r.Name] = i
	}
	return nil
}

// checkRule returns the first invalid field of r and why.
func checkRule(r *Rule) (string, error) {
	if err := checkCode(r.Name, true); err != nil {
		return "name", err
	}
	if len(r.When) > MaxExpressionSize {
		return "when", fmt.Errorf("%d bytes, at most %d", len(r.When), MaxExpressionSize)
	}
	if r.Outcome == runtimeid.OutcomeUnset || r.Outcome > runtimeid.Block {
		return "outcome", fmt.Errorf("required: allow, challenge or block")
	}
	if err := checkCode(r.Reason, false); err != nil {
		return "reason", err
	}
	if r.StepUp == nil {
		return "", nil
	}
	if r.Outcome != runtimeid.Challenge {
		return "step_up", fmt.Errorf("only a challenge has a step-up, not %s", r.Outcome)
	}
	return "step_up", checkStepUp(r.StepUp)
}

// checkCode checks a name or reason: they reach audit logs, metrics and
// response headers, so they are short and of a plain alphabet.
func checkCode(s string, required bool) error {
	switch {
	case s == "" && required:
		return fmt.Errorf("required")
	case len(s) > MaxNameSize:
		return fmt.Errorf("%d bytes, at most %d", len(s), MaxNameSize)
	}
	for _, c := range []byte(s) {
		if !codeByte(c) {
			return fmt.Errorf("%q: only letters, digits and _-.: are allowed", s)
		}
	}
	return nil
}

func codeByte(c byte) bool {
	return 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' ||
		'0' <= c && c <= '9' || strings.IndexByte("_-.:", c) >= 0
}

// checkStepUp checks that each acr value can be sent in a space-separated
// acr_values parameter (RFC 9470 section 3).
func checkStepUp(s *runtimeid.StepUp) error {
	if s.MaxAge < 0 {
		return fmt.Errorf("max_age %v is negative", s.MaxAge)
	}
	for _, v := range s.ACRValues {
		if v == "" || strings.ContainsFunc(v, badACRRune) {
			return fmt.Errorf("acr value %q is empty or holds a space, quote,"+
				" backslash or control character", v)
		}
	}
	return nil
}

func badACRRune(r rune) bool {
	return r <= ' ' || r == 0x7f || r == '"' || r == '\\'
}
