package policy

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"strconv"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/runtimeid/runtimeid"
)

// fileSpec is the file format of a policy, YAML or JSON.
type fileSpec struct {
	Version *int       `yaml:"version" json:"version"`
	Default string     `yaml:"default" json:"default"`
	Rules   []fileRule `yaml:"rules" json:"rules"`
}

type fileRule struct {
	Name        string      `yaml:"name" json:"name"`
	Description string      `yaml:"description" json:"description"`
	When        string      `yaml:"when" json:"when"`
	Outcome     string      `yaml:"outcome" json:"outcome"`
	Reason      string      `yaml:"reason" json:"reason"`
	StepUp      *fileStepUp `yaml:"step_up" json:"step_up"`
	ReportOnly  bool        `yaml:"report_only" json:"report_only"`
}

type fileStepUp struct {
	ACRValues []string `yaml:"acr_values" json:"acr_values"`
	MaxAge    maxAge   `yaml:"max_age" json:"max_age"`
}

// maxAge is a duration written as a Go duration string ("5m") or a whole
// number of seconds (300).
type maxAge time.Duration

// UnmarshalYAML implements [yaml.Unmarshaler].
func (m *maxAge) UnmarshalYAML(n *yaml.Node) error {
	if n.Kind != yaml.ScalarNode {
		return fmt.Errorf("line %d: max_age: want a duration", n.Line)
	}
	d, err := parseMaxAge(n.Value, n.Tag == "!!int")
	if err != nil {
		return fmt.Errorf("line %d: max_age: %w", n.Line, err)
	}
	*m = maxAge(d)
	return nil
}

// UnmarshalJSON implements [json.Unmarshaler].
func (m *maxAge) UnmarshalJSON(b []byte) error {
	var s string
	seconds := len(b) > 0 && b[0] != '"'
	if seconds {
		s = string(b)
	} else if err := json.Unmarshal(b, &s); err != nil {
		return fmt.Errorf("max_age: %w", err)
	}
	d, err := parseMaxAge(s, seconds)
	if err != nil {
		return fmt.Errorf("max_age: %w", err)
	}
	*m = maxAge(d)
	return nil
}

func parseMaxAge(s string, seconds bool) (time.Duration, error) {
	if !seconds {
		return time.ParseDuration(s)
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil || n > math.MaxInt64/int64(time.Second) {
		return 0, fmt.Errorf("%q is not a whole number of seconds", s)
	}
	return time.Duration(n) * time.Second, nil
}

// Parse checks and compiles a policy file, YAML or JSON: data whose first
// non-blank character is "{" is JSON. name says where data came from and
// prefixes every error, which is an [*Error]. Unknown fields are errors,
// version must be 1, and default, when absent, is allow.
func Parse(data []byte, name string) (*Policy, error) {
	src := &source{file: name}
	if len(data) > MaxPolicySize {
		return nil, src.specError("", fmt.Sprintf("%d bytes, at most %d", len(data), MaxPolicySize))
	}
	var fs fileSpec
	var err error
	if isJSON(data) {
		err = decodeJSON(data, &fs)
	} else {
		err = decodeYAML(data, &fs, src)
	}
	if err != nil {
		return nil, &Error{File: name, Index: -1, Reason: "cannot decode", Err: err}
	}
	spec, err := fs.spec(src)
	if err != nil {
		return nil, err
	}
	return compile(spec, src)
}

// Load reads a policy file and parses it with [Parse], named by its path.
func Load(path string) (*Policy, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, &Error{File: path, Index: -1, Reason: "cannot read", Err: err}
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, MaxPolicySize+1))
	if err != nil {
		return nil, &Error{File: path, Index: -1, Reason: "cannot read", Err: err}
	}
	return Parse(data, path)
}

func isJSON(data []byte) bool {
	data = bytes.TrimPrefix(data, []byte("\xef\xbb\xbf"))
	data = bytes.TrimLeft(data, " \t\r\n")
	return len(data) > 0 && data[0] == '{'
}

func decodeJSON(data []byte, fs *fileSpec) error {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(fs); err != nil {
		return err
	}
	if _, err := dec.Token(); err != io.EOF {
		return errors.New("data after the policy object")
	}
	return nil
}

// decodeYAML decodes one YAML document, refusing unknown fields, and
// records the line of each rule and of its when expression.
func decodeYAML(data []byte, fs *fileSpec, src *source) error {
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	if err := dec.Decode(fs); err != nil {
		if err == io.EOF {
			return errors.New("empty policy")
		}
		return err
	}
	var next yaml.Node
	if err := dec.Decode(&next); err != io.EOF {
		return errors.New("more than one YAML document")
	}
	var doc yaml.Node
	if err := yaml.Unmarshal(data, &doc); err == nil {
		src.ruleLines, src.whenLines = ruleLines(&doc)
	}
	return nil
}

// ruleLines finds the line of each rule and of its when value.
func ruleLines(doc *yaml.Node) (rules, whens []int) {
	if doc.Kind != yaml.DocumentNode || len(doc.Content) != 1 {
		return nil, nil
	}
	seq := mappingValue(doc.Content[0], "rules")
	if seq == nil || seq.Kind != yaml.SequenceNode {
		return nil, nil
	}
	for _, item := range seq.Content {
		rules = append(rules, item.Line)
		line := 0
		if w := mappingValue(item, "when"); w != nil {
			line = w.Line
		}
		whens = append(whens, line)
	}
	return rules, whens
}

func mappingValue(m *yaml.Node, key string) *yaml.Node {
	if m.Kind != yaml.MappingNode {
		return nil
	}
	for i := 0; i+1 < len(m.Content); i += 2 {
		if m.Content[i].Value == key {
			return m.Content[i+1]
		}
	}
	return nil
}

// spec turns the file's strings into a [Spec].
func (fs *fileSpec) spec(src *source) (Spec, error) {
	if fs.Version == nil {
		return Spec{}, src.specError("version", "required: version: 1")
	}
	spec := Spec{Version: *fs.Version}
	if spec.Version != 1 {
		return Spec{}, src.specError("version",
			fmt.Sprintf("unsupported version %d, want 1", spec.Version))
	}
	if fs.Default != "" {
		o, err := runtimeid.ParseOutcome(fs.Default)
		if err != nil {
			return Spec{}, src.specError("default", fmt.Sprintf("unknown outcome %q", fs.Default))
		}
		spec.Default = o
	}
	spec.Rules = make([]Rule, len(fs.Rules))
	for i, fr := range fs.Rules {
		r, err := fr.rule()
		if err != nil {
			return Spec{}, src.ruleError(i, fr.Name, "outcome", err)
		}
		spec.Rules[i] = r
	}
	return spec, nil
}

func (fr *fileRule) rule() (Rule, error) {
	r := Rule{
		Name:        fr.Name,
		Description: fr.Description,
		When:        fr.When,
		Reason:      fr.Reason,
		ReportOnly:  fr.ReportOnly,
	}
	if fr.StepUp != nil {
		r.StepUp = &runtimeid.StepUp{
			ACRValues: fr.StepUp.ACRValues,
			MaxAge:    time.Duration(fr.StepUp.MaxAge),
		}
	}
	if fr.Outcome == "" {
		return r, errors.New("required: allow, challenge or block")
	}
	o, err := runtimeid.ParseOutcome(fr.Outcome)
	if err != nil {
		return r, fmt.Errorf("unknown outcome %q", fr.Outcome)
	}
	r.Outcome = o
	return r, nil
}
