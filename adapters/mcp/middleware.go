package mcp

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"

	sdk "github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/runtimeid/runtimeid"
)

// Install adds [Adapter.Middleware] to the server's receiving
// middleware.
func (a *Adapter) Install(s *sdk.Server) { s.AddReceivingMiddleware(a.Middleware()) }

// Middleware returns the SDK middleware that checks tools/call and
// filters tools/list.
//
// A tools/call that came through [Adapter.Handler] carries its
// evaluation, which must be an allow of this very tool's action. Any
// other call is evaluated here: one that came over HTTP (a handler not
// wrapped) with the bearer token of its request, one that did not
// (stdio, in memory) with the token of [Options.Token]. A call without
// a token fails unless the engine skips authentication. Refused calls
// get the JSON-RPC error of the package documentation; here a
// challenge cannot be an HTTP 401. Allowed calls reach the tool
// handler with the evaluation and [Options.UsageRecorder] in ctx.
//
// Every other request that did not come over HTTP (initialize, ping,
// resources, prompts, ...) is evaluated as [Options.Protocol] with the
// token of [Options.Token], as [Adapter.Handler] evaluates every HTTP
// request: a refused one gets the JSON-RPC error, so a server over
// stdio whose host gives no valid token cannot even be initialized. A
// tools/list is evaluated so too, and an allowed listing is filtered
// for its identity. Notifications pass: they cannot be answered.
func (a *Adapter) Middleware() sdk.Middleware {
	return func(next sdk.MethodHandler) sdk.MethodHandler {
		return func(ctx context.Context, method string, req sdk.Request) (sdk.Result, error) {
			switch {
			case method == "tools/call":
				return a.callTool(ctx, next, method, req)
			case method == "tools/list":
				return a.listTools(ctx, next, method, req)
			case strings.HasPrefix(method, "notifications/"), httpHeader(req) != nil:
				return next(ctx, method, req)
			}
			ev := a.evaluateAction(ctx, req, a.protocolAction())
			if !allowed(ev) {
				return nil, a.refusal(ev).err
			}
			return next(runtimeid.NewContext(ctx, ev), method, req)
		}
	}
}

func (a *Adapter) callTool(ctx context.Context, next sdk.MethodHandler,
	method string, req sdk.Request) (sdk.Result, error) {
	p, ok := req.GetParams().(*sdk.CallToolParamsRaw)
	if !ok {
		// Params the SDK does not give (another middleware rewrote
		// the request) name no tool to evaluate: never pass them on.
		return nil, a.refuse(ctx, &runtimeid.Evaluation{Err: errParams,
			Decision: runtimeid.Decision{Outcome: runtimeid.Block,
				Reason: runtimeid.CodeEvaluationError}}).err
	}
	act := a.action(p.Name)
	ev, tool := fromRequest(req)
	if ev == nil {
		ev, tool = a.evaluate(ctx, req, p, act), p.Name
	}
	switch {
	case ev.Action.Name != act.Name || tool != p.Name:
		// The HTTP layer evaluated another call than the one
		// dispatched: never let one evaluation cover another.
		return nil, a.refuse(ctx, &runtimeid.Evaluation{Err: errMismatch,
			Decision: runtimeid.Decision{Outcome: runtimeid.Block,
				Reason: runtimeid.CodeEvaluationError}}).err
	case !allowed(ev):
		return nil, a.refuse(ctx, ev).err
	}
	ctx = runtimeid.NewContext(ctx, ev)
	if a.opts.UsageRecorder != nil {
		ctx = runtimeid.WithUsageRecorder(ctx, a.opts.UsageRecorder)
	}
	return next(ctx, method, req)
}

type mismatchError struct{}

func (mismatchError) Error() string { return "mcp: evaluation is for another call" }

var errMismatch error = mismatchError{}

var errParams = errors.New("mcp: tools/call params of an unknown type")

// fromRequest returns the evaluation [Adapter.Handler] made for req,
// and the tool it evaluated a call of.
func fromRequest(req sdk.Request) (*runtimeid.Evaluation, string) {
	extra := req.GetExtra()
	if extra == nil || extra.TokenInfo == nil {
		return nil, ""
	}
	ev, _ := extra.TokenInfo.Extra[evaluationKey].(*runtimeid.Evaluation)
	tool, _ := extra.TokenInfo.Extra[toolKey].(string)
	return ev, tool
}

// evaluate evaluates a call that did not come through the HTTP layer.
// Policies see the tool and its arguments as action.attributes, as
// they do over HTTP.
func (a *Adapter) evaluate(ctx context.Context, req sdk.Request,
	p *sdk.CallToolParamsRaw, act runtimeid.Action) *runtimeid.Evaluation {
	act.Attributes = map[string]any{"tool": p.Name}
	var args map[string]any
	if json.Unmarshal(p.Arguments, &args) == nil && args != nil {
		act.Attributes["arguments"] = args
	}
	if id, ok := p.Meta[ApprovalMetaKey].(string); ok && id != "" {
		ctx = runtimeid.WithApprovalRef(ctx,
			runtimeid.ApprovalRef{ID: id, Action: act.Name})
	}
	return a.evaluateAction(ctx, req, act)
}

// evaluateAction evaluates act with the request's credential: the
// bearer token of its HTTP request, or without one, [Options.Token].
func (a *Adapter) evaluateAction(ctx context.Context, req sdk.Request,
	act runtimeid.Action) *runtimeid.Evaluation {
	in := runtimeid.Input{Action: act}
	if h := httpHeader(req); h != nil {
		in.Token = bearer(h)
		in.UserAgent = h.Get("User-Agent")
	} else if a.opts.Token != nil {
		tok, err := a.hostToken(ctx)
		if err != nil {
			return noToken(act, err)
		}
		in.Token = strings.TrimSpace(tok)
	}
	ev, _ := a.opts.Engine.Evaluate(ctx, in)
	return ev
}

// hostToken calls [Options.Token]. A panic is an error: the SDK does
// not recover a method handler's panic, and the server would end.
func (a *Adapter) hostToken(ctx context.Context) (tok string, err error) {
	defer func() {
		if p := recover(); p != nil {
			tok, err = "", fmt.Errorf("panicked: %v", p)
		}
	}()
	return a.opts.Token(ctx)
}

// httpHeader returns the header of the HTTP request that carried req,
// or nil when req did not come over HTTP.
func httpHeader(req sdk.Request) http.Header {
	if extra := req.GetExtra(); extra != nil {
		return extra.Header
	}
	return nil
}

// noToken is the refusal of an action whose token [Options.Token]
// could not give: a missing token, whatever the engine would do
// without one, since the host meant the call to carry an identity.
func noToken(act runtimeid.Action, err error) *runtimeid.Evaluation {
	te := &runtimeid.TokenError{Code: runtimeid.CodeTokenMissing,
		Detail: "no access token", Err: fmt.Errorf("mcp: token: %w", err)}
	return &runtimeid.Evaluation{Action: act, Err: te,
		Decision: runtimeid.Decision{Outcome: runtimeid.Block, Rule: "token",
			Reason: runtimeid.CodeTokenMissing}}
}

// listTools answers tools/list. A listing that did not come over HTTP
// has no evaluation of [Adapter.Handler]; it is evaluated here as
// [Options.Protocol], and refused unless allowed.
func (a *Adapter) listTools(ctx context.Context, next sdk.MethodHandler,
	method string, req sdk.Request) (sdk.Result, error) {
	base, _ := fromRequest(req)
	if base == nil && httpHeader(req) == nil {
		base = a.evaluateAction(ctx, req, a.protocolAction())
		if !allowed(base) {
			return nil, a.refusal(base).err
		}
	}
	res, err := next(ctx, method, req)
	if err == nil {
		a.filter(ctx, base, res)
	}
	return res, err
}

// filter hides the tools the policy blocks for the caller. It decides
// with the policy alone, on the listing's identity, signals and risk
// (base, nil for none): nothing is learned or audited. A tool whose
// decision fails is hidden.
func (a *Adapter) filter(ctx context.Context, base *runtimeid.Evaluation, res sdk.Result) {
	list, ok := res.(*sdk.ListToolsResult)
	if !ok || a.opts.Policy == nil {
		return
	}
	if base == nil {
		base = &runtimeid.Evaluation{}
	}
	kept := list.Tools[:0]
	for _, t := range list.Tools {
		if t != nil && a.visible(ctx, base, t.Name) {
			kept = append(kept, t)
		}
	}
	list.Tools = kept
}

// visible reports whether the policy lets the caller see tool. A
// policy that panics hides it, as the engine's guard would block the
// call: the SDK does not recover a method handler's panic.
func (a *Adapter) visible(ctx context.Context, base *runtimeid.Evaluation,
	tool string) (ok bool) {
	defer func() {
		if recover() != nil {
			ok = false
		}
	}()
	act := a.action(tool)
	act.Attributes = map[string]any{"tool": tool}
	dry := runtimeid.Evaluation{
		Time: base.Time, Request: base.Request, Identity: base.Identity,
		Action: act, Signals: base.Signals, Assessment: base.Assessment,
	}
	if dry.Action.Sensitivity == runtimeid.SensitivityUnset {
		dry.Action.Sensitivity = runtimeid.Medium
	}
	d, err := a.opts.Policy.Decide(ctx, &dry)
	return err == nil && d.Outcome != runtimeid.Block
}
