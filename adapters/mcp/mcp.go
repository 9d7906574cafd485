// Package mcp puts every tool call of a Model Context Protocol server,
// built with the official Go SDK, through runtimeid: each tools/call is
// an action, evaluated with the caller's verified identity (an agent
// acting for a user, per RFC 8693, or the user), audited, and allowed,
// challenged, throttled or blocked; tools/list shows only the tools the
// policy does not block for the caller.
//
// Two layers work together:
//
//   - [Adapter.Handler] wraps the SDK's streamable HTTP handler. It
//     reads each POST's JSON-RPC body (bounded, then restored), and
//     evaluates a tools/call as the tool's action before the SDK sees
//     it, so a challenge can be an HTTP 401 with an RFC 9470
//     WWW-Authenticate header. Every other request is evaluated as
//     [Options.Protocol], which verifies the token on every request.
//     Bearer and DPoP-bound (RFC 9449) tokens both work: for a DPoP
//     request the SDK's bearer check, which hands the SDK the caller's
//     identity and binds the MCP session to it, is shown the verified
//     token as a bearer token, and the SDK's handler then sees the
//     request's headers exactly as sent.
//   - [Adapter.Middleware], installed with [Adapter.Install], carries
//     the evaluation into the tool handler's context (for
//     [runtimeid.FromContext] and [runtimeid.ReportUsage]), refuses a
//     call that was not allowed, evaluates calls that did not come
//     through the HTTP layer (other transports), and filters
//     tools/list.
//
// Over stdio, or any transport without HTTP, no request carries a
// token: [Options.Token] gives one, as a host application that starts
// a local MCP server hands it the user's or the agent's access token.
// The engine verifies it on every request (notifications aside):
// tools/call as the tool's action, every other one, initialize
// included, as [Options.Protocol], exactly as a bearer token over HTTP
// (same keys, same identity validators, so a revoked token is refused,
// and a DPoP-bound token too, since no proof can come with it).
// Without it, and with token checks on, every request is refused with
// token_missing, the handshake first. A request that came over HTTP
// never uses [Options.Token].
//
// Answers to a tools/call that may not run, with their stable JSON-RPC
// codes (the message names the decision's reason, never a rule or an
// internal error):
//
//	outcome              HTTP  JSON-RPC code
//	block                200   [CodeBlocked]
//	block, throttle      429   [CodeThrottled], with Retry-After
//	challenge            401   [CodeStepUpRequired], WWW-Authenticate
//	bad or no token      401   RFC 6750 problem from the enforcer
//
// Without HTTP, the same codes answer, and a missing, invalid, expired
// or revoked token is a block whose reason is the token error's code,
// such as "runtimeid: blocked: token_expired".
//
// A challenge of a delegated identity, with an [Options.Approver], asks
// the user the agent acts for; the answer carries the approval id in
// the Runtimeid-Approval header and in the error's data. The agent
// retries with the id in the same header or in the call's _meta under
// "runtimeid/approval".
package mcp

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/runtimeid/runtimeid"
	"github.com/runtimeid/runtimeid/decision"
)

// The JSON-RPC error codes of refused tool calls. They are stable.
const (
	CodeBlocked        = -32060
	CodeStepUpRequired = -32061
	CodeThrottled      = -32062
)

// ApprovalHeader carries an approval id: in a challenge's answer, and in
// the agent's retry.
const ApprovalHeader = "Runtimeid-Approval"

// ApprovalMetaKey is the _meta key of a tools/call that carries an
// approval id.
const ApprovalMetaKey = "runtimeid/approval"

// Defaults for the zero values of [Options].
const (
	DefaultMaxBodyBytes = 4 << 20 // as the SDK's own default
	DefaultRetryAfter   = time.Minute
	DefaultUnknownTool  = "mcp:unknown_tool"
	DefaultProtocol     = "mcp:protocol"
)

// ErrOptions means [Options] are invalid.
var ErrOptions = errors.New("mcp: invalid options")

// Tool is how a tool is evaluated: the action name policies and audit
// events see, and its sensitivity.
type Tool struct {
	// Action is the action's name. Empty means the tool's name.
	Action string

	// Sensitivity of the action. Zero means the engine's default.
	Sensitivity runtimeid.Sensitivity
}

// Options configure an [Adapter]. Engine is required.
type Options struct {
	// Engine evaluates every request and tool call. Required.
	Engine *runtimeid.Engine

	// Tools maps tool names to their actions.
	Tools map[string]Tool

	// UnknownTool is the action of a call to a tool not in Tools.
	// Its zero value means [DefaultUnknownTool], high sensitivity.
	UnknownTool Tool

	// Protocol is the action of every request that is not a
	// tools/call: initialize, tools/list, notifications, the SSE
	// stream. Its zero value means [DefaultProtocol], low sensitivity.
	Protocol Tool

	// Enforcer writes refusals of token errors and of requests that
	// are not tool calls, and makes the WWW-Authenticate header of
	// challenges. Nil means a [decision.Enforcer] with no realm.
	Enforcer runtimeid.Enforcer

	// Token gives the access token of a request that did not come over
	// HTTP (stdio, an in-memory transport), as a host that starts a
	// local MCP server hands it the user's or the agent's token. It is
	// called for every request but notifications (initialize, tools,
	// resources, prompts, ...), with the request's context, so the host
	// may rotate the token; it must be safe for
	// concurrent use. The engine verifies the token exactly as it does
	// a bearer token over HTTP: the same keys, issuer, audience,
	// lifetime and identity validators (revocation included). A token
	// bound to a key (DPoP cnf.jkt, mTLS x5t#S256) is refused, since no
	// proof can come with it. An error (a panic counts as one), or an
	// empty token when the engine checks tokens, refuses the call with
	// token_missing; an error refuses it even when the engine skips
	// authentication, and since the engine never sees such a request,
	// it is not audited.
	// Surrounding white space is trimmed.
	//
	// A request that came over HTTP never uses Token: its own bearer
	// token identifies it. Set Token only on a server whose every
	// connection is local. The SDK's SSEHandler gives the middleware
	// no HTTP request, so a call over it would get this token's
	// identity: never serve a server with Token set over SSEHandler.
	// Nil means such requests carry no token.
	Token func(ctx context.Context) (string, error)

	// Policy, when set, filters tools/list: a tool whose action the
	// policy blocks for the caller, with the signals and risk of the
	// listing request, is hidden. It must be the engine's policy. Nil
	// lists every tool; the calls are checked either way.
	Policy runtimeid.PolicyEngine

	// Approver, when set, is asked to approve a challenged call of a
	// delegated identity. Make it the engine's [runtimeid.Config]
	// StepUps too, so the approval answers the retry's challenge.
	Approver runtimeid.Approver

	// UsageRecorder is put in every tool handler's context, for
	// [runtimeid.ReportUsage]. Nil means usage is not recorded.
	UsageRecorder runtimeid.UsageRecorder

	// ThrottleReasons are the block reasons answered as throttling
	// (429 and [CodeThrottled]). Nil means agent_rate_high.
	ThrottleReasons []string

	// RetryAfter is sent with a throttle. Zero means
	// [DefaultRetryAfter].
	RetryAfter time.Duration

	// MaxBodyBytes bounds the POST body read by [Adapter.Handler]; a
	// larger one gets 413. Zero means [DefaultMaxBodyBytes].
	MaxBodyBytes int64
}

// Adapter connects an engine to an MCP server. It is safe for
// concurrent use.
type Adapter struct {
	opts Options
}

// New checks opts and builds an adapter. Errors wrap [ErrOptions].
func New(opts Options) (*Adapter, error) {
	if opts.Engine == nil {
		return nil, fmt.Errorf("%w: Engine is required", ErrOptions)
	}
	if opts.MaxBodyBytes < 0 || opts.RetryAfter < 0 {
		return nil, fmt.Errorf("%w: MaxBodyBytes and RetryAfter must not be negative",
			ErrOptions)
	}
	if opts.Enforcer == nil {
		enf, err := decision.NewEnforcer(decision.Options{})
		if err != nil {
			return nil, fmt.Errorf("%w: %w", ErrOptions, err)
		}
		opts.Enforcer = enf
	}
	if opts.UnknownTool == (Tool{}) {
		opts.UnknownTool = Tool{Action: DefaultUnknownTool, Sensitivity: runtimeid.High}
	}
	if opts.Protocol == (Tool{}) {
		opts.Protocol = Tool{Action: DefaultProtocol, Sensitivity: runtimeid.Low}
	}
	if opts.ThrottleReasons == nil {
		opts.ThrottleReasons = []string{"agent_rate_high"}
	}
	if opts.RetryAfter == 0 {
		opts.RetryAfter = DefaultRetryAfter
	}
	if opts.MaxBodyBytes == 0 {
		opts.MaxBodyBytes = DefaultMaxBodyBytes
	}
	return &Adapter{opts: opts}, nil
}

// action returns the action of a call to the named tool.
func (a *Adapter) action(tool string) runtimeid.Action {
	t, ok := a.opts.Tools[tool]
	if !ok {
		t = a.opts.UnknownTool
	} else if t.Action == "" {
		t.Action = tool
	}
	return runtimeid.Action{Name: t.Action, Sensitivity: t.Sensitivity}
}
