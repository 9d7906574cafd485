package policy

import (
	"errors"
	"strconv"
	"strings"

	"github.com/runtimeid/runtimeid"
)

// The error categories of this package, for [errors.Is].
var (
	// ErrInvalid means a policy cannot be loaded. The error is an
	// [*Error] saying where and why; it also matches
	// [runtimeid.ErrConfig].
	ErrInvalid = errors.New("policy: invalid policy")

	// ErrEvaluation means a rule failed on one request: it read an
	// absent field, exceeded its cost limit or was cancelled. The engine
	// fails the request closed.
	ErrEvaluation = errors.New("policy: rule evaluation failed")
)

// Error is a policy that cannot be loaded, with where the problem is.
type Error struct {
	// File is the name given to [Parse] or the path given to [Load];
	// empty for [New].
	File string

	// Line is the line of the offending rule or field in File, when the
	// format tells it (YAML); zero otherwise.
	Line int

	// Index is the rule's position in the rules list, or -1 when the
	// problem is not in one rule.
	Index int

	// Rule is the rule's name, when it has one.
	Rule string

	// Field is the offending field, such as "when" or "step_up".
	Field string

	// Reason says what is wrong. For a CEL expression it starts with the
	// position inside the expression, line:column, both from 1.
	Reason string

	// Err is the underlying cause, if any.
	Err error
}

// Error implements error: "policy: file:line: rules[i] "name": field:
// reason".
func (e *Error) Error() string {
	var b strings.Builder
	b.WriteString("policy: ")
	if e.File != "" {
		b.WriteString(e.File)
		if e.Line > 0 {
			b.WriteString(":" + strconv.Itoa(e.Line))
		}
		b.WriteString(": ")
	}
	if e.Index >= 0 {
		b.WriteString("rules[" + strconv.Itoa(e.Index) + "]")
		if e.Rule != "" {
			b.WriteString(" " + strconv.Quote(e.Rule))
		}
		b.WriteString(": ")
	}
	if e.Field != "" {
		b.WriteString(e.Field + ": ")
	}
	b.WriteString(e.Reason)
	if e.Err != nil {
		b.WriteString(": " + e.Err.Error())
	}
	return b.String()
}

// Unwrap lets [errors.Is] match [ErrInvalid], [runtimeid.ErrConfig] and
// the cause.
func (e *Error) Unwrap() []error {
	errs := []error{ErrInvalid, runtimeid.ErrConfig}
	if e.Err != nil {
		errs = append(errs, e.Err)
	}
	return errs
}
