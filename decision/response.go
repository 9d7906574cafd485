package decision

import (
	"context"
	"encoding/json"
	"log/slog"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/runtimeid/runtimeid"
)

// problem is one refusal: its status, its WWW-Authenticate challenge if
// any, and its RFC 9457 body.
type problem struct {
	status    int
	challenge string
	nonce     string

	Type   string `json:"type"`
	Title  string `json:"title"`
	Status int    `json:"status"`
	Detail string `json:"detail"`
	Code   string `json:"code"`
}

func newProblem(status int, code, title, detail string) *problem {
	return &problem{
		status: status,
		Type:   ProblemTypePrefix + url.PathEscape(code),
		Title:  title,
		Status: status,
		Detail: detail,
		Code:   code,
	}
}

// The fixed texts of the bodies and challenges.
const (
	detailChallenge = "A more recent or stronger authentication is required."
	detailBlock     = "The request was refused by policy."
	detailError     = "The request could not be evaluated."
	detailToken     = "The access token was refused."
)

// tokenProblem answers a missing or bad token (RFC 6750 section 3, RFC
// 9449 sections 7.1, 7.2 and 9).
func (e *Enforcer) tokenProblem(te *runtimeid.TokenError, scheme string) *problem {
	detail := te.Detail
	if detail == "" {
		detail = detailToken
	}
	status, code := tokenStatus(te)
	p := newProblem(status, te.Code, http.StatusText(status), detail)
	if status == http.StatusServiceUnavailable {
		return p
	}

	// The error goes in the challenge of the scheme it concerns; the
	// other scheme is offered bare, as in RFC 9449 section 7.2.
	dpopErr := scheme == "DPoP" || dpopCodes[te.Code] != ""
	bearer := e.dpop == nil || !e.dpop.Required()
	if !bearer {
		dpopErr = true
	}
	var out []string
	if bearer {
		b := challenge{scheme: "Bearer"}
		b.param("realm", e.realm)
		if !dpopErr {
			b.param("error", code)
			b.param("error_description", errorDescription(code, detail))
		}
		out = append(out, b.String())
	}
	if e.dpop != nil || dpopErr {
		d := challenge{scheme: "DPoP"}
		d.param("realm", e.realm)
		d.param("algs", e.algs)
		if dpopErr {
			d.param("error", code)
			d.param("error_description", errorDescription(code, detail))
		}
		out = append(out, d.String())
	}
	p.challenge = strings.Join(out, ", ")
	if code == "use_dpop_nonce" && e.dpop != nil {
		p.nonce = e.dpop.Nonce()
	}
	return p
}

// dpopCodes maps the DPoP token error codes to RFC 9449 error codes.
var dpopCodes = map[string]string{
	runtimeid.CodeDPoPProofInvalid:    "invalid_dpop_proof",
	runtimeid.CodeDPoPProofReplayed:   "invalid_dpop_proof",
	runtimeid.CodeDPoPNonceRequired:   "use_dpop_nonce",
	runtimeid.CodeDPoPBindingMismatch: "invalid_token",
	runtimeid.CodeDPoPRequired:        "invalid_token",
}

// tokenStatus returns the status and the error code of a challenge; ""
// when no token was sent (RFC 6750 section 3.1).
func tokenStatus(te *runtimeid.TokenError) (int, string) {
	switch {
	case te.Missing():
		return http.StatusUnauthorized, ""
	case te.InvalidRequest():
		return http.StatusBadRequest, "invalid_request"
	case te.Code == runtimeid.CodeDPoPReplayUnchecked:
		// The server could not check the proof: not the client's fault.
		return http.StatusServiceUnavailable, ""
	case dpopCodes[te.Code] != "":
		return http.StatusUnauthorized, dpopCodes[te.Code]
	}
	return http.StatusUnauthorized, "invalid_token"
}

func errorDescription(code, detail string) string {
	if code == "" {
		return ""
	}
	return detail
}

// challengeProblem asks for step-up authentication (RFC 9470 section 3).
func challengeProblem(d *runtimeid.Decision, realm, scheme string) *problem {
	p := newProblem(http.StatusUnauthorized, d.Reason,
		"Step-up authentication required", detailChallenge)
	c := challenge{scheme: "Bearer"}
	if scheme == "DPoP" {
		c.scheme = "DPoP"
	}
	c.param("realm", realm)
	c.param("error", "insufficient_user_authentication")
	c.param("error_description", "step-up authentication required: "+d.Reason)
	if s := d.StepUp; s != nil {
		c.param("acr_values", strings.Join(s.ACRValues, " "))
		if s.MaxAge > 0 {
			c.token("max_age", strconv.FormatInt(int64(s.MaxAge/time.Second), 10))
		}
	}
	p.challenge = c.String()
	return p
}

func blocked(code string) *problem {
	detail := detailBlock
	if code == runtimeid.CodeEvaluationError {
		detail = detailError
	}
	return newProblem(http.StatusForbidden, code, "Forbidden", detail)
}

// refuse writes p. A HEAD request gets the headers without the body.
func (e *Enforcer) refuse(w http.ResponseWriter, r *http.Request, p *problem) {
	body, err := json.Marshal(p)
	if err != nil {
		// A struct of strings and an int always encodes.
		body = []byte(`{}`)
	}
	body = append(body, '\n')

	h := w.Header()
	if p.challenge != "" {
		h.Set("WWW-Authenticate", p.challenge)
	}
	if p.nonce != "" {
		h.Set("DPoP-Nonce", p.nonce)
	}
	h.Set("Content-Type", "application/problem+json")
	h.Set("Content-Length", strconv.Itoa(len(body)))
	h.Set("Cache-Control", "no-store")
	h.Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(p.status)
	if r.Method != http.MethodHead {
		_, _ = w.Write(body)
	}
	e.debug(r.Context(), p.status, p.Code)
}

// redirect sends a browser to the step-up page with the way back and
// what the login must achieve.
func (e *Enforcer) redirect(w http.ResponseWriter, r *http.Request, s *runtimeid.StepUp) {
	u := *e.stepUp
	q := u.Query()
	q.Set(e.returnParam, returnURL(r.URL))
	if s != nil {
		if len(s.ACRValues) > 0 {
			q.Set("acr_values", strings.Join(s.ACRValues, " "))
		}
		if s.MaxAge > 0 {
			q.Set("max_age", strconv.FormatInt(int64(s.MaxAge/time.Second), 10))
		}
	}
	u.RawQuery = q.Encode()

	h := w.Header()
	h.Set("Location", u.String())
	h.Set("Cache-Control", "no-store")
	h.Set("Content-Length", "0")
	w.WriteHeader(http.StatusSeeOther)
	e.debug(r.Context(), http.StatusSeeOther, "step_up_redirect")
}

// returnURL is the request's path and query, relative to this host. It
// never takes a host or scheme from the request, and a path that starts
// with two slashes (or a slash and a backslash) is cut to one, so the
// step-up page cannot be sent to another host ("//evil.example").
func returnURL(u *url.URL) string {
	if u == nil {
		return "/"
	}
	path := u.EscapedPath()
	trimmed := strings.TrimLeft(path, `/\`)
	if trimmed != path || path == "" {
		path = "/" + trimmed
	}
	if u.RawQuery != "" {
		path += "?" + u.RawQuery
	}
	return path
}

func (e *Enforcer) debug(ctx context.Context, status int, code string) {
	if !e.log.Enabled(ctx, slog.LevelDebug) {
		return
	}
	e.log.LogAttrs(ctx, slog.LevelDebug, "runtimeid: request refused",
		slog.Int("status", status), slog.String("code", code))
}

// challenge builds one challenge of a WWW-Authenticate value.
type challenge struct {
	scheme string // "Bearer" or "DPoP"
	b      strings.Builder
}

// param adds name="value" as a quoted string (RFC 9110 section 11.2),
// unless value is empty. Control characters, CR and LF included, are
// dropped so no value can end the header; quotes and backslashes are
// escaped.
func (c *challenge) param(name, value string) {
	if value == "" {
		return
	}
	c.sep()
	c.b.WriteString(name + `="`)
	for _, r := range value {
		switch {
		case isControl(r):
			continue
		case r == '"' || r == '\\':
			c.b.WriteByte('\\')
		}
		c.b.WriteRune(r)
	}
	c.b.WriteByte('"')
}

// token adds name=value for a value that is a plain token, such as a
// number.
func (c *challenge) token(name, value string) {
	c.sep()
	c.b.WriteString(name + "=" + value)
}

func (c *challenge) sep() {
	if c.b.Len() == 0 {
		c.b.WriteString(c.scheme + " ")
	} else {
		c.b.WriteString(", ")
	}
}

// String returns the challenge: the scheme alone when it has no params.
func (c *challenge) String() string {
	if c.b.Len() == 0 {
		return c.scheme
	}
	return c.b.String()
}
