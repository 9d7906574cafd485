// Package config reads the runtimeid configuration file: one YAML file
// that says how tokens are verified, which signals are collected, which
// policy applies, how routes are weighed and how refusals are written.
// The library builds an engine from it with [File.Build]; the runtimeid
// command reads the same file for its policy tests, its replays and its
// reverse proxy.
//
// cmd/runtimeid/runtimeid.example.yaml documents every field. Unknown
// fields are errors, and every error names the file, the line and the
// field, such as
//
//	config: runtimeid.yaml:7: token.clock_skew: more than 5m0s
//
// Relative paths in the file are resolved against the file's directory.
package config

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/runtimeid/runtimeid"
)

// MaxFileSize is the largest configuration file [Load] and [Parse] read.
const MaxFileSize = 1 << 20

// ErrInvalid means a configuration file cannot be used. The error is an
// [*Error]; it also matches [runtimeid.ErrConfig].
var ErrInvalid = errors.New("config: invalid configuration")

// Error is a configuration file that cannot be used, with where.
type Error struct {
	File  string // as given to [Parse] or [Load]
	Line  int    // zero when unknown
	Field string // dotted path, such as "token.issuer" or "routes[2].pattern"

	Reason string
	Err    error
}

// Error implements error: "config: file:line: field: reason".
func (e *Error) Error() string {
	var b strings.Builder
	b.WriteString("config: ")
	if e.File != "" {
		b.WriteString(e.File)
		if e.Line > 0 {
			b.WriteString(":" + strconv.Itoa(e.Line))
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
	return []error{ErrInvalid, runtimeid.ErrConfig, e.Err}
}

// File is a decoded configuration file. Its zero value is a valid
// configuration that verifies nothing: [File.Build] refuses it unless
// a token issuer and keys are given or authentication is skipped.
type File struct {
	// Version is the format version; it must be 1.
	Version int `yaml:"version"`

	Token          Token       `yaml:"token"`
	GeoIP          GeoIP       `yaml:"geoip"`
	TrustedProxies []string    `yaml:"trusted_proxies"`
	Policy         string      `yaml:"policy"`
	Risk           Risk        `yaml:"risk"`
	Enforcement    Enforcement `yaml:"enforcement"`
	Routes         []Route     `yaml:"routes"`
	Audit          Audit       `yaml:"audit"`
	Serve          Serve       `yaml:"serve"`
	Live           Live        `yaml:"live"`

	// Name is the file's name as given to [Parse]; Dir is the directory
	// relative paths are resolved against. Neither is read from the file.
	Name string `yaml:"-"`
	Dir  string `yaml:"-"`

	lines map[string]int
}

// Token says which access tokens are accepted; see
// [runtimeid.TokenConfig].
type Token struct {
	Issuer    string        `yaml:"issuer"`
	Audience  []string      `yaml:"audience"`
	JWKSFile  string        `yaml:"jwks_file"`
	JWKSURL   string        `yaml:"jwks_url"`
	ClockSkew time.Duration `yaml:"clock_skew"`

	// InsecureSkipAuthentication accepts every request without a
	// token, as [runtimeid.TokenConfig.InsecureSkipAuthentication].
	InsecureSkipAuthentication bool `yaml:"insecure_skip_authentication"`
}

// GeoIP names the MaxMind databases; see [signals.GeoIPConfig]. All
// empty means no network signals.
type GeoIP struct {
	City        string `yaml:"city"`
	Country     string `yaml:"country"`
	ASN         string `yaml:"asn"`
	AnonymousIP string `yaml:"anonymous_ip"`
	ISP         string `yaml:"isp"`
}

// Risk configures risk scoring.
type Risk struct {
	// StoreSize is how many subjects' baselines are kept in memory,
	// least recently used first out. Zero means [DefaultStoreSize].
	StoreSize int `yaml:"store_size"`

	// MediumRisk and HighRisk are the level thresholds; zero means the
	// engine's defaults.
	MediumRisk float64 `yaml:"medium_risk"`
	HighRisk   float64 `yaml:"high_risk"`
}

// DefaultStoreSize is the number of subject baselines kept when
// [Risk.StoreSize] is zero.
const DefaultStoreSize = 100_000

// Enforcement says how refusals are written; see [decision.Options].
type Enforcement struct {
	StepUpURL string `yaml:"step_up_url"`
	Realm     string `yaml:"realm"`

	// DefaultSensitivity applies to requests that match no route:
	// low, medium or high. Empty means medium.
	DefaultSensitivity string `yaml:"default_sensitivity"`
}

// Route gives the requests matching a pattern a sensitivity. Patterns
// are those of [net/http.ServeMux], such as "POST /api/transfers" or
// "GET /api/orders/{id}"; the pattern is the action's name.
type Route struct {
	Pattern     string `yaml:"pattern"`
	Sensitivity string `yaml:"sensitivity"`

	// FailOpen lets requests through when evaluation fails, as
	// [runtimeid.FailOpen].
	FailOpen bool `yaml:"fail_open"`
}

// Audit says where the audit events go.
type Audit struct {
	// File is appended to, one event per line. "-" means the writer
	// given in [BuildOptions.Stdout]; empty means no audit log.
	File string `yaml:"file"`

	// Format is "json" (the default) or "text".
	Format string `yaml:"format"`
}

// Serve configures the reverse proxy of the runtimeid command.
type Serve struct {
	// Listen is the proxy's address. Empty means 127.0.0.1:8080.
	Listen string `yaml:"listen"`

	// Upstream is the http(s) URL requests are forwarded to. Required
	// by the proxy.
	Upstream string `yaml:"upstream"`

	// SigningKeyFile holds the secret that signs the headers sent
	// upstream, at least 32 bytes. Required by the proxy.
	SigningKeyFile string `yaml:"signing_key_file"`

	// HeaderPrefix starts every header the proxy adds. Empty means
	// "X-Runtimeid-".
	HeaderPrefix string `yaml:"header_prefix"`

	// StripAuthorization removes the Authorization header before the
	// request goes upstream.
	StripAuthorization bool `yaml:"strip_authorization"`
}

// Live configures the live view of recent decisions.
type Live struct {
	Enabled bool `yaml:"enabled"`

	// Path is where the view is mounted. Empty means
	// "/debug/runtimeid/".
	Path string `yaml:"path"`

	// Listen is the address of the proxy's separate operator listener
	// that serves the view; never the proxy's own. Empty means
	// 127.0.0.1:9090.
	Listen string `yaml:"listen"`

	// Recent is how many decisions the view keeps. Zero means the
	// view's default.
	Recent int `yaml:"recent"`
}

// Load reads and checks a configuration file. Relative paths in it are
// resolved against its directory.
func Load(path string) (*File, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, &Error{File: path, Reason: "cannot read", Err: err}
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, MaxFileSize+1))
	if err != nil {
		return nil, &Error{File: path, Reason: "cannot read", Err: err}
	}
	cfg, err := Parse(data, path)
	if err != nil {
		return nil, err
	}
	cfg.Dir = filepath.Dir(path)
	return cfg, nil
}

// Parse decodes and checks a configuration file. name says where data
// came from, for errors; relative paths are resolved against the
// working directory until [File.Dir] is set.
func Parse(data []byte, name string) (*File, error) {
	if len(data) > MaxFileSize {
		return nil, &Error{File: name,
			Reason: fmt.Sprintf("%d bytes, at most %d", len(data), MaxFileSize)}
	}
	var doc yaml.Node
	dec := yaml.NewDecoder(bytes.NewReader(data))
	if err := dec.Decode(&doc); err != nil {
		if err == io.EOF {
			return nil, &Error{File: name, Reason: "empty file"}
		}
		return nil, &Error{File: name, Reason: "cannot decode", Err: err}
	}
	var next yaml.Node
	if err := dec.Decode(&next); err != io.EOF {
		return nil, &Error{File: name, Reason: "more than one YAML document"}
	}

	cfg := &File{Name: name, lines: map[string]int{}}
	if err := walk(&doc, fileType, "", cfg.lines); err != nil {
		err.File = name
		return nil, err
	}
	if err := doc.Decode(cfg); err != nil {
		return nil, decodeError(name, err)
	}
	if err := cfg.check(); err != nil {
		return nil, err
	}
	return cfg, nil
}

// decodeError turns a yaml type error into an [*Error] with a line.
func decodeError(name string, err error) *Error {
	var te *yaml.TypeError
	if !errors.As(err, &te) || len(te.Errors) == 0 {
		return &Error{File: name, Reason: "cannot decode", Err: err}
	}
	msg := te.Errors[0]
	e := &Error{File: name, Reason: msg}
	if rest, ok := strings.CutPrefix(msg, "line "); ok {
		n, reason, _ := strings.Cut(rest, ": ")
		if line, err := strconv.Atoi(n); err == nil {
			e.Line, e.Reason = line, reason
		}
	}
	return e
}

// path resolves a path from the file against [File.Dir].
func (f *File) path(p string) string {
	if p == "" || filepath.IsAbs(p) || f.Dir == "" {
		return p
	}
	return filepath.Join(f.Dir, p)
}

// fieldError is a problem with one field, at the field's line.
func (f *File) fieldError(field, reason string, err error) *Error {
	return &Error{File: f.Name, Line: f.line(field), Field: field,
		Reason: reason, Err: err}
}

// line is the line of the field, or of the nearest enclosing one that
// the file gives, for a field left out.
func (f *File) line(field string) int {
	for field != "" {
		if l, ok := f.lines[field]; ok {
			return l
		}
		i := strings.LastIndexAny(field, ".[")
		if i < 0 {
			return 0
		}
		field = field[:i]
	}
	return 0
}
