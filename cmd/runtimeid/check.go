package main

import (
	"bytes"
	"cmp"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"

	"gopkg.in/yaml.v3"

	"github.com/runtimeid/runtimeid/policy"
)

// policyCheck compiles each file and prints every error found, or a
// summary of the policy.
func policyCheck(files []string, stdout io.Writer) error {
	if len(files) == 0 {
		return fmt.Errorf("%w: policy check needs a FILE", errUsage)
	}
	failed := 0
	for _, name := range files {
		data, err := readPolicyFile(name)
		if err != nil {
			fmt.Fprintln(stdout, err)
			failed++
			continue
		}
		p, errs := checkAll(data, name)
		if len(errs) == 0 {
			fmt.Fprintln(stdout, summary(name, p))
			continue
		}
		failed++
		for _, e := range errs {
			fmt.Fprintln(stdout, e)
		}
		fmt.Fprintf(stdout, "%s: %d %s\n", name, len(errs), plural(len(errs), "error"))
	}
	if failed > 0 {
		return errFailed
	}
	return nil
}

func readPolicyFile(name string) ([]byte, error) {
	f, err := os.Open(name)
	if err != nil {
		return nil, &policy.Error{File: name, Index: -1, Reason: "cannot read", Err: err}
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, policy.MaxPolicySize+1))
	if err != nil {
		return nil, &policy.Error{File: name, Index: -1, Reason: "cannot read", Err: err}
	}
	return data, nil
}

func summary(name string, p *policy.Policy) string {
	rules := p.Rules()
	report := 0
	for _, r := range rules {
		if r.ReportOnly {
			report++
		}
	}
	return fmt.Sprintf("%s: ok, %d %s (%d report-only), default %s",
		name, len(rules), plural(len(rules), "rule"), report, p.DefaultOutcome())
}

func plural(n int, word string) string {
	if n == 1 {
		return word
	}
	return word + "s"
}

// checkAll parses the policy and, when a rule is wrong, checks every
// rule on its own so that all wrong rules are reported, not just the
// first: policy.Parse stops at the first error.
//
// Each rule is checked in a copy of the file where every other rule is
// commented out line by line, so line numbers stay those of the file.
// This needs rules in YAML block style, one item per "- " line; for JSON
// or flow style, only the first error is reported.
func checkAll(data []byte, name string) (*policy.Policy, []error) {
	p, err := policy.Parse(data, name)
	if err == nil {
		return p, nil
	}
	var pe *policy.Error
	if !errors.As(err, &pe) || pe.Index < 0 {
		return nil, []error{err}
	}
	spans := ruleSpans(data)
	if spans == nil {
		return nil, []error{err}
	}
	errs := isolatedErrors(data, name, spans)
	errs = append(errs, duplicateNames(data, name, spans)...)
	slices.SortStableFunc(errs, func(a, b error) int {
		return cmp.Compare(errIndex(a), errIndex(b))
	})
	if len(errs) == 0 {
		// Isolation found nothing the whole file did not: keep its error.
		return nil, []error{err}
	}
	return nil, errs
}

func errIndex(err error) int {
	var pe *policy.Error
	if errors.As(err, &pe) {
		return pe.Index
	}
	return -1
}

// span is the lines [first, last] of one rule, counted from 1.
type span struct{ first, last int }

// ruleSpans finds each rule's lines in a YAML block sequence, or nil.
func ruleSpans(data []byte) []span {
	var doc yaml.Node
	if yaml.Unmarshal(data, &doc) != nil || len(doc.Content) != 1 {
		return nil
	}
	root := doc.Content[0]
	if root.Kind != yaml.MappingNode {
		return nil
	}
	var seq *yaml.Node
	end := bytes.Count(data, []byte("\n")) + 1
	for i := 0; i+1 < len(root.Content); i += 2 {
		k := root.Content[i]
		if k.Value == "rules" {
			seq = root.Content[i+1]
		} else if seq != nil && k.Line > seq.Line {
			end = min(end, k.Line-1)
		}
	}
	if seq == nil || seq.Kind != yaml.SequenceNode || seq.Style&yaml.FlowStyle != 0 {
		return nil
	}
	lines := strings.Split(string(data), "\n")
	spans := make([]span, len(seq.Content))
	for i, item := range seq.Content {
		first := item.Line
		if first < 1 || first > len(lines) ||
			!strings.HasPrefix(strings.TrimSpace(lines[first-1]), "-") {
			return nil
		}
		if i > 0 && first <= spans[i-1].first {
			return nil
		}
		spans[i].first = first
		if i > 0 {
			spans[i-1].last = first - 1
		}
	}
	if n := len(spans); n > 0 {
		spans[n-1].last = end
	}
	return spans
}

// isolatedErrors parses the file once per rule, keeping only that rule.
func isolatedErrors(data []byte, name string, spans []span) []error {
	lines := strings.Split(string(data), "\n")
	var errs []error
	for i := range spans {
		only := commentOut(lines, spans, i)
		_, err := policy.Parse([]byte(only), name)
		var pe *policy.Error
		if errors.As(err, &pe) && pe.Index == 0 {
			fixed := *pe
			fixed.Index = i
			errs = append(errs, &fixed)
		} else if err != nil {
			errs = append(errs, err)
		}
	}
	return errs
}

// commentOut returns the file with every rule but keep commented out.
func commentOut(lines []string, spans []span, keep int) string {
	out := make([]string, len(lines))
	copy(out, lines)
	for i, s := range spans {
		if i == keep {
			continue
		}
		for l := s.first; l <= s.last && l <= len(out); l++ {
			out[l-1] = "#" + out[l-1]
		}
	}
	return strings.Join(out, "\n")
}

// duplicateNames reports names used twice, which isolation cannot see.
func duplicateNames(data []byte, name string, spans []span) []error {
	var f struct {
		Rules []struct {
			Name string `yaml:"name"`
		} `yaml:"rules"`
	}
	if yaml.Unmarshal(data, &f) != nil {
		return nil
	}
	seen := map[string]int{}
	var errs []error
	for i, r := range f.Rules {
		j, dup := seen[r.Name]
		if !dup || r.Name == "" || i >= len(spans) {
			seen[r.Name] = i
			continue
		}
		errs = append(errs, &policy.Error{File: name, Line: spans[i].first, Index: i,
			Rule: r.Name, Field: "name",
			Reason: fmt.Sprintf("duplicate name, first used by rules[%d]", j)})
	}
	return errs
}
