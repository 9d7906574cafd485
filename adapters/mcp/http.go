package mcp

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/modelcontextprotocol/go-sdk/auth"
	"github.com/modelcontextprotocol/go-sdk/jsonrpc"

	"github.com/runtimeid/runtimeid"
)

// evaluationKey is where the HTTP layer leaves the evaluation in the
// SDK's per-request token info, the one value the SDK carries from the
// HTTP request to the method handler.
const (
	evaluationKey = "runtimeid.evaluation"
	toolKey       = "runtimeid.tool"
)

type toolNameKey struct{}

// Handler returns next, the SDK's streamable HTTP handler, behind
// runtimeid: every request is evaluated and only allowed ones reach
// next. See the package documentation for the answers.
//
// The identity reaches the SDK as its auth.TokenInfo, whose UserID
// (issuer, subject and acting agent) binds each MCP session to whoever
// opened it: another user or agent presenting the session id gets 403.
//
// A DPoP-bound token (RFC 9449) works too: the engine verifies the
// token, its proof, the binding and the proof's replay, and only then
// does the SDK's own bearer check, which knows no other scheme than
// Bearer, see a copy of the request whose Authorization header is
// "Bearer" and the token. The header is restored before next runs, so
// next and the tool handlers see it exactly as the client sent it.
func (a *Adapter) Handler(next http.Handler) http.Handler {
	withInfo := withTokenInfo(next)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		call, err := a.peek(w, r)
		if err != nil {
			writeError(w, err)
			return
		}
		ctx := r.Context()
		act := a.protocolAction()
		if call != nil {
			act = call.action
			ctx = context.WithValue(ctx, toolNameKey{}, call.tool)
			if call.approval != "" {
				ctx = runtimeid.WithApprovalRef(ctx,
					runtimeid.ApprovalRef{ID: call.approval, Action: act.Name})
			}
		}
		r = r.WithContext(ctx)
		ev := a.opts.Engine.EvaluateRequest(r, act)
		if call != nil && !allowed(ev) && !isTokenError(ev) {
			a.refuseCall(w, r, call.id, ev)
			return
		}
		if !a.opts.Enforcer.Enforce(w, r, ev) {
			return
		}
		r = r.WithContext(runtimeid.NewContext(ctx, ev))
		if ev.Identity == nil {
			next.ServeHTTP(w, r)
			return
		}
		withInfo.ServeHTTP(w, asBearer(r, ev))
	})
}

// withTokenInfo is next behind the SDK's bearer check, which puts the
// [auth.TokenInfo] of [tokenInfo] in the request's context.
func withTokenInfo(next http.Handler) http.Handler {
	check := auth.RequireBearerToken(tokenInfo,
		&auth.RequireBearerTokenOptions{AllowMissingExpiration: true})
	return check(restoreHeader(next))
}

// sentHeaderKey holds the header a client sent while the SDK's bearer
// check sees a rewritten copy.
type sentHeaderKey struct{}

// asBearer returns r, or for a request the engine verified with the DPoP
// scheme, a copy of r whose Authorization header is the token as a
// bearer token: the only scheme the SDK's check reads. The engine has
// already checked the proof and the binding; the SDK only needs to be
// handed the token info.
func asBearer(r *http.Request, ev *runtimeid.Evaluation) *http.Request {
	if ev.Credential.Scheme != "DPoP" {
		return r
	}
	ctx := context.WithValue(r.Context(), sentHeaderKey{}, r.Header)
	c := r.Clone(ctx)
	c.Header.Set("Authorization", "Bearer "+ev.Credential.Token.Reveal())
	return c
}

// restoreHeader gives next the header [asBearer] replaced, as sent.
func restoreHeader(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if h, ok := r.Context().Value(sentHeaderKey{}).(http.Header); ok {
			// A shallow copy: the request is the SDK's, not ours.
			r = r.WithContext(r.Context())
			r.Header = h
		}
		next.ServeHTTP(w, r)
	})
}

// tokenInfo gives the SDK the evaluation the handler put in the
// request's context.
func tokenInfo(ctx context.Context, _ string, r *http.Request) (*auth.TokenInfo, error) {
	ev := runtimeid.FromContext(r.Context())
	if ev == nil || ev.Identity == nil {
		return nil, auth.ErrInvalidToken
	}
	id := ev.Identity
	// No Expiration: the engine checked exp with its own clock, and
	// the SDK would check it again with the wall clock.
	return &auth.TokenInfo{
		Scopes: id.Scopes,
		UserID: userID(id),
		Extra: map[string]any{evaluationKey: ev,
			toolKey: r.Context().Value(toolNameKey{})},
	}, nil
}

// userID names who a session belongs to: the issuer, the subject and
// whoever acts, each quoted, so that no two identities share a name
// ("b c" acted for by "d" is not "b" acted for by "c d").
func userID(id *runtimeid.Identity) string {
	return strconv.Quote(id.Issuer) + " " + strconv.Quote(id.Subject) + " " +
		strconv.Quote(id.ActingSubject())
}

func (a *Adapter) protocolAction() runtimeid.Action {
	p := a.opts.Protocol
	return runtimeid.Action{Name: p.Action, Sensitivity: p.Sensitivity}
}

func allowed(ev *runtimeid.Evaluation) bool {
	d := &ev.Decision
	return d.Outcome == runtimeid.Allow && (ev.Err == nil || d.FailedOpen)
}

func isTokenError(ev *runtimeid.Evaluation) bool {
	var te *runtimeid.TokenError
	return errors.As(ev.Err, &te)
}

// toolCall is a tools/call read from a POST body.
type toolCall struct {
	id       jsonrpc.ID
	tool     string
	action   runtimeid.Action
	approval string
}

// httpError is a request the handler refuses before evaluation.
type httpError struct {
	status int
	msg    string
}

func (e *httpError) Error() string { return e.msg }

func writeError(w http.ResponseWriter, err error) {
	var he *httpError
	if !errors.As(err, &he) {
		he = &httpError{http.StatusBadRequest, "mcp: bad request"}
	}
	http.Error(w, he.msg, he.status)
}

// peek reads a POST body, at most MaxBodyBytes, puts it back for next,
// and returns the tools/call it holds, or nil for anything else. A
// batch holding a tools/call is refused: one HTTP answer cannot carry
// a challenge for one call of several. Bodies that are not JSON-RPC
// are left for the SDK to refuse.
func (a *Adapter) peek(w http.ResponseWriter, r *http.Request) (*toolCall, error) {
	if r.Method != http.MethodPost || r.Body == nil {
		return nil, nil
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, a.opts.MaxBodyBytes))
	r.Body.Close()
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return nil, &httpError{http.StatusRequestEntityTooLarge, "mcp: body too large"}
		}
		return nil, &httpError{http.StatusBadRequest, "mcp: cannot read body"}
	}
	r.Body = io.NopCloser(bytes.NewReader(body))

	trimmed := bytes.TrimLeft(body, " \t\r\n")
	if len(trimmed) > 0 && trimmed[0] == '[' {
		if bytes.Contains(body, []byte(`tools/call`)) {
			return nil, &httpError{http.StatusBadRequest,
				"mcp: tools/call may not be batched"}
		}
		return nil, nil
	}
	msg, err := jsonrpc.DecodeMessage(body)
	req, ok := msg.(*jsonrpc.Request)
	if err != nil || !ok || req.Method != "tools/call" {
		return nil, nil
	}
	return a.parseCall(req)
}

// callParams is what the adapter reads of a tools/call's params.
type callParams struct {
	Name      string         `json:"name"`
	Arguments map[string]any `json:"arguments"`
	Meta      map[string]any `json:"_meta"`
}

func (a *Adapter) parseCall(req *jsonrpc.Request) (*toolCall, error) {
	var p callParams
	if err := json.Unmarshal(req.Params, &p); err != nil {
		// The SDK answers invalid params; evaluate as an unknown tool
		// meanwhile so nothing passes unevaluated.
		p = callParams{}
	}
	c := &toolCall{id: req.ID, tool: p.Name, action: a.action(p.Name)}
	// Policies see the tool and its arguments as action.attributes.
	c.action.Attributes = map[string]any{"tool": p.Name}
	if p.Arguments != nil {
		c.action.Attributes["arguments"] = p.Arguments
	}
	if s, ok := p.Meta[ApprovalMetaKey].(string); ok {
		c.approval = s
	}
	return c, nil
}

// refusal is the answer to a tool call that may not run.
type refusal struct {
	status     int
	code       int
	msg        string
	data       errorData
	err        *jsonrpc.Error
	approval   string
	challenge  string
	retryAfter time.Duration
}

// errorData is the data member of a refused call's JSON-RPC error.
type errorData struct {
	Reason     string   `json:"reason"`
	Outcome    string   `json:"outcome"`
	ApprovalID string   `json:"approval_id,omitempty"`
	ACRValues  []string `json:"acr_values,omitempty"`
	MaxAge     int64    `json:"max_age,omitempty"`
	RetryAfter int64    `json:"retry_after,omitempty"`
}

// refuse builds the answer to a refused call and, for a challenge of a
// delegated identity, asks the approver.
func (a *Adapter) refuse(ctx context.Context, ev *runtimeid.Evaluation) *refusal {
	rf := a.refusal(ev)
	if rf.status != http.StatusUnauthorized {
		return rf
	}
	rf.approval = a.requestApproval(ctx, ev)
	if rf.approval != "" {
		rf.data.ApprovalID = rf.approval
		rf.err = rf.encode()
	}
	return rf
}

// refusal builds the answer to a refused request without asking for
// an approval: only a tool call can be approved.
func (a *Adapter) refusal(ev *runtimeid.Evaluation) *refusal {
	d := &ev.Decision
	reason := d.Reason
	if reason == "" {
		reason = runtimeid.CodeEvaluationError
	}
	rf := &refusal{status: http.StatusOK, code: CodeBlocked,
		msg:  "runtimeid: blocked: " + reason,
		data: errorData{Reason: reason, Outcome: d.Outcome.String()}}
	switch {
	case ev.Err != nil:
		rf.data.Outcome = runtimeid.Block.String()
	case d.Outcome == runtimeid.Challenge:
		rf.code, rf.msg = CodeStepUpRequired, "runtimeid: step-up required: "+reason
		rf.status = http.StatusUnauthorized
		if s := d.StepUp; s != nil {
			rf.data.ACRValues = s.ACRValues
			rf.data.MaxAge = int64(s.MaxAge / time.Second)
		}
	case slices.Contains(a.opts.ThrottleReasons, reason):
		rf.code, rf.msg = CodeThrottled, "runtimeid: throttled: "+reason
		rf.status = http.StatusTooManyRequests
		rf.retryAfter = a.opts.RetryAfter
		rf.data.RetryAfter = int64(rf.retryAfter / time.Second)
	}
	rf.err = rf.encode()
	return rf
}

// encode is the JSON-RPC error of the refusal.
func (rf *refusal) encode() *jsonrpc.Error {
	raw, _ := json.Marshal(rf.data)
	return &jsonrpc.Error{Code: int64(rf.code), Message: rf.msg, Data: raw}
}

func (a *Adapter) requestApproval(ctx context.Context, ev *runtimeid.Evaluation) string {
	if a.opts.Approver == nil || !ev.Identity.IsDelegated() {
		return ""
	}
	ap, err := a.opts.Approver.RequestApproval(ctx, ev)
	if err != nil {
		return ""
	}
	return ap.ID
}

// refuseCall answers a refused tools/call over HTTP: the JSON-RPC error
// as the body, so the SDK's client keeps its session, with the status
// and headers of the outcome.
func (a *Adapter) refuseCall(w http.ResponseWriter, r *http.Request,
	id jsonrpc.ID, ev *runtimeid.Evaluation) {
	rf := a.refuse(r.Context(), ev)
	h := w.Header()
	if rf.status == http.StatusUnauthorized {
		// The enforcer knows how to spell an RFC 9470 challenge.
		var hw headerWriter
		a.opts.Enforcer.Enforce(&hw, r, ev)
		if c := hw.Header().Get("WWW-Authenticate"); c != "" {
			h.Set("WWW-Authenticate", c)
		}
	}
	if rf.approval != "" {
		h.Set(ApprovalHeader, rf.approval)
	}
	if rf.retryAfter > 0 {
		h.Set("Retry-After", strconv.FormatInt(int64(rf.retryAfter/time.Second), 10))
	}
	body, err := jsonrpc.EncodeMessage(&jsonrpc.Response{ID: id, Error: rf.err})
	if err != nil {
		http.Error(w, "mcp: cannot encode", http.StatusInternalServerError)
		return
	}
	h.Set("Content-Type", "application/json")
	h.Set("Cache-Control", "no-store")
	w.WriteHeader(rf.status)
	w.Write(body)
}

// headerWriter keeps the headers an enforcer writes and drops the rest.
type headerWriter struct{ h http.Header }

func (w *headerWriter) Header() http.Header {
	if w.h == nil {
		w.h = http.Header{}
	}
	return w.h
}

func (*headerWriter) Write(b []byte) (int, error) { return len(b), nil }
func (*headerWriter) WriteHeader(int)             {}

// bearer returns the bearer token of an Authorization header.
func bearer(h http.Header) string {
	scheme, tok, ok := strings.Cut(strings.TrimSpace(h.Get("Authorization")), " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return ""
	}
	return strings.TrimSpace(tok)
}
