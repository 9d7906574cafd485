package main

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"os"
	"regexp"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/runtimeid/runtimeid"
)

// maxCasesSize bounds a cases file, and maxCases the cases in it.
const (
	maxCasesSize = 4 << 20
	maxCases     = 10_000
)

// defaultCaseTime is the moment a case is evaluated at when it gives
// none, so that ages (auth_age, token_age) are the same on every run.
var defaultCaseTime = time.Date(2025, 1, 1, 12, 0, 0, 0, time.UTC)

// testCase is one entry of a cases file: what a request looks like to
// the policy, and what the policy should decide.
type testCase struct {
	Name     string        `yaml:"name"`
	Now      *time.Time    `yaml:"now"`
	Identity *caseIdentity `yaml:"identity"`
	Action   caseAction    `yaml:"action"`
	Signals  caseSignals   `yaml:"signals"`
	Risk     caseRisk      `yaml:"risk"`
	Expect   caseExpect    `yaml:"expect"`

	line int
}

type caseIdentity struct {
	Sub      string         `yaml:"sub"`
	Sid      string         `yaml:"sid"`
	Iss      string         `yaml:"iss"`
	Aud      []string       `yaml:"aud"`
	ClientID string         `yaml:"client_id"`
	Scopes   []string       `yaml:"scopes"`
	ACR      string         `yaml:"acr"`
	AMR      []string       `yaml:"amr"`
	AuthTime *time.Time     `yaml:"auth_time"`
	AuthAge  *time.Duration `yaml:"auth_age"`
	IssuedAt *time.Time     `yaml:"iat"`
	TokenAge *time.Duration `yaml:"token_age"`
	Actor    string         `yaml:"actor"`
	Claims   map[string]any `yaml:"claims"`
}

type caseAction struct {
	Name        string         `yaml:"name"`
	Sensitivity string         `yaml:"sensitivity"`
	Method      string         `yaml:"method"`
	Route       string         `yaml:"route"`
	Attributes  map[string]any `yaml:"attributes"`
}

type caseSignals struct {
	ClientIP string         `yaml:"client_ip"`
	Network  caseNetwork    `yaml:"network"`
	Device   caseDevice     `yaml:"device"`
	Custom   map[string]any `yaml:"custom"`
}

type caseNetwork struct {
	Country          string `yaml:"country"`
	City             string `yaml:"city"`
	HasLocation      bool   `yaml:"has_location"`
	ASN              uint   `yaml:"asn"`
	ASOrg            string `yaml:"as_org"`
	ISP              string `yaml:"isp"`
	Anonymous        bool   `yaml:"anonymous"`
	VPN              bool   `yaml:"vpn"`
	Tor              bool   `yaml:"tor"`
	Hosting          bool   `yaml:"hosting"`
	PublicProxy      bool   `yaml:"public_proxy"`
	ResidentialProxy bool   `yaml:"residential_proxy"`
}

type caseDevice struct {
	UserAgent      string `yaml:"user_agent"`
	Browser        string `yaml:"browser"`
	BrowserVersion string `yaml:"browser_version"`
	OS             string `yaml:"os"`
	OSVersion      string `yaml:"os_version"`
	Type           string `yaml:"type"`
	Bot            bool   `yaml:"bot"`
	ID             string `yaml:"id"`
}

type caseRisk struct {
	Score    float64  `yaml:"score"`
	Level    string   `yaml:"level"`
	Findings []string `yaml:"findings"`
}

type caseExpect struct {
	Outcome    string   `yaml:"outcome"`
	Rule       string   `yaml:"rule"`
	Reason     string   `yaml:"reason"`
	ReportOnly []string `yaml:"report_only"`
}

// internalType is the Go type yaml names in its errors, which means
// nothing to the author of a cases file.
var internalType = regexp.MustCompile(` in type main\.\w+`)

// loadCases reads and checks a cases file.
func loadCases(path string) ([]testCase, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("cases: %w", err)
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, maxCasesSize+1))
	if err != nil {
		return nil, fmt.Errorf("cases: %s: %w", path, err)
	}
	return parseCases(data, path)
}

// parseCases decodes a YAML list of cases. Unknown fields, a case
// without a name or expected outcome, and duplicate names are errors.
func parseCases(data []byte, name string) ([]testCase, error) {
	if len(data) > maxCasesSize {
		return nil, fmt.Errorf("cases: %s: more than %d bytes", name, maxCasesSize)
	}
	var nodes []yaml.Node
	dec := yaml.NewDecoder(bytes.NewReader(data))
	if err := dec.Decode(&nodes); err != nil {
		if errors.Is(err, io.EOF) {
			return nil, fmt.Errorf("cases: %s: no cases", name)
		}
		return nil, fmt.Errorf("cases: %s: want a list of cases: %w", name, err)
	}
	if len(nodes) > maxCases {
		return nil, fmt.Errorf("cases: %s: %d cases, at most %d", name, len(nodes), maxCases)
	}
	cases := make([]testCase, len(nodes))
	seen := map[string]int{}
	for i := range nodes {
		c, err := decodeCase(&nodes[i])
		if err != nil {
			return nil, fmt.Errorf("cases: %s:%d: case %d: %w", name, nodes[i].Line, i, err)
		}
		if j, dup := seen[c.Name]; dup {
			return nil, fmt.Errorf("cases: %s:%d: case %d: name %q already used by case %d",
				name, c.line, i, c.Name, j)
		}
		seen[c.Name] = i
		cases[i] = c
	}
	return cases, nil
}

func decodeCase(n *yaml.Node) (testCase, error) {
	var c testCase
	if n.Kind != yaml.MappingNode {
		return c, errors.New("want a mapping")
	}
	// Re-encode so that the decoder can refuse unknown fields; Node.Decode
	// cannot.
	raw, err := yaml.Marshal(n)
	if err != nil {
		return c, err
	}
	dec := yaml.NewDecoder(bytes.NewReader(raw))
	dec.KnownFields(true)
	if err := dec.Decode(&c); err != nil {
		return c, caseDecodeError(err)
	}
	c.line = n.Line
	if err := c.check(); err != nil {
		return c, err
	}
	return c, nil
}

// caseDecodeError drops yaml's lines, which count from the case, not
// the file, and the Go type names.
func caseDecodeError(err error) error {
	var te *yaml.TypeError
	if !errors.As(err, &te) || len(te.Errors) == 0 {
		return err
	}
	msg := internalType.ReplaceAllString(te.Errors[0], "")
	return errors.New(lineNumber.ReplaceAllString(msg, ""))
}

var lineNumber = regexp.MustCompile(`^line \d+: `)

func (c *testCase) check() error {
	switch {
	case c.Name == "":
		return errors.New("name: required")
	case c.Expect.Outcome == "":
		return errors.New("expect.outcome: required")
	}
	o, err := runtimeid.ParseOutcome(c.Expect.Outcome)
	if err != nil {
		return fmt.Errorf("expect.outcome: %q: want allow, challenge or block", c.Expect.Outcome)
	}
	c.Expect.Outcome = o.String()
	if s := c.Action.Sensitivity; s != "" {
		if _, err := runtimeid.ParseSensitivity(s); err != nil {
			return fmt.Errorf("action.sensitivity: %q: want low, medium or high", s)
		}
	}
	if ip := c.Signals.ClientIP; ip != "" {
		if _, err := netip.ParseAddr(ip); err != nil {
			return fmt.Errorf("signals.client_ip: %q is not an address", ip)
		}
	}
	switch c.Risk.Level {
	case "", "low", "medium", "high":
	default:
		return fmt.Errorf("risk.level: %q: want low, medium or high", c.Risk.Level)
	}
	if s := c.Risk.Score; !(s >= 0 && s <= 1) {
		return fmt.Errorf("risk.score: %v is outside [0,1]", s)
	}
	if id := c.Identity; id != nil {
		if id.AuthTime != nil && id.AuthAge != nil {
			return errors.New("identity: give auth_time or auth_age, not both")
		}
		if id.IssuedAt != nil && id.TokenAge != nil {
			return errors.New("identity: give iat or token_age, not both")
		}
	}
	return nil
}
