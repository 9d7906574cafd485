package mcp

import (
	"context"

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
// evaluation, which must be an allow of this very tool's action; any
// other call (stdio, or an HTTP handler not wrapped) is evaluated here
// with the bearer token of the HTTP request if there was one, so a
// call without a token fails unless the engine skips authentication.
// Refused calls get the JSON-RPC error of the package documentation;
// here a challenge cannot be an HTTP 401. Allowed calls reach the tool
// handler with the evaluation and [Options.UsageRecorder] in ctx.
func (a *Adapter) Middleware() sdk.Middleware {
	return func(next sdk.MethodHandler) sdk.MethodHandler {
		return func(ctx context.Context, method string, req sdk.Request) (sdk.Result, error) {
			switch method {
			case "tools/call":
				return a.callTool(ctx, next, method, req)
			case "tools/list":
				res, err := next(ctx, method, req)
				if err == nil {
					a.filter(ctx, req, res)
				}
				return res, err
			}
			return next(ctx, method, req)
		}
	}
}

func (a *Adapter) callTool(ctx context.Context, next sdk.MethodHandler,
	method string, req sdk.Request) (sdk.Result, error) {
	p, ok := req.GetParams().(*sdk.CallToolParamsRaw)
	if !ok {
		return next(ctx, method, req)
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
func (a *Adapter) evaluate(ctx context.Context, req sdk.Request,
	p *sdk.CallToolParamsRaw, act runtimeid.Action) *runtimeid.Evaluation {
	act.Attributes = map[string]any{"tool": p.Name}
	if id, ok := p.Meta[ApprovalMetaKey].(string); ok && id != "" {
		ctx = runtimeid.WithApprovalRef(ctx,
			runtimeid.ApprovalRef{ID: id, Action: act.Name})
	}
	in := runtimeid.Input{Action: act}
	if extra := req.GetExtra(); extra != nil && extra.Header != nil {
		in.Token = bearer(extra.Header)
		in.UserAgent = extra.Header.Get("User-Agent")
	}
	ev, _ := a.opts.Engine.Evaluate(ctx, in)
	return ev
}

// filter hides the tools the policy blocks for the caller. It decides
// with the policy alone, on the listing request's identity, signals
// and risk: nothing is learned or audited. A tool whose decision fails
// is hidden.
func (a *Adapter) filter(ctx context.Context, req sdk.Request, res sdk.Result) {
	list, ok := res.(*sdk.ListToolsResult)
	if !ok || a.opts.Policy == nil {
		return
	}
	base, _ := fromRequest(req)
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

func (a *Adapter) visible(ctx context.Context, base *runtimeid.Evaluation, tool string) bool {
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
