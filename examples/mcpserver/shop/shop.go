// Package shop is the MCP server of the examples: four tools of an
// online shop, each an action runtimeid evaluates on every call, with
// the agent behaviour evaluator and human approvals wired in.
package shop

import (
	"context"
	_ "embed"
	"fmt"
	"log/slog"
	"net/http"
	"net/netip"
	"time"

	sdk "github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/runtimeid/runtimeid"
	mcpadapter "github.com/runtimeid/runtimeid/adapters/mcp"
	"github.com/runtimeid/runtimeid/decision"
	"github.com/runtimeid/runtimeid/policy"
	"github.com/runtimeid/runtimeid/risk"
	"github.com/runtimeid/runtimeid/signals"
)

//go:embed agent.yaml
var agentPolicy []byte

// Tools are the shop's tools and their actions.
var Tools = map[string]mcpadapter.Tool{
	"list_orders":      {Sensitivity: runtimeid.Low},
	"update_profile":   {Sensitivity: runtimeid.Medium},
	"export_customers": {Sensitivity: runtimeid.High},
	"transfer_funds":   {Sensitivity: runtimeid.High},
}

// The records each read tool returns.
const (
	OrdersPerPage  = 20
	CustomerCount  = 5000
	bytesPerRecord = 200
)

// Config configures the shop.
type Config struct {
	// Keys verify the access tokens' signatures; Issuer and Audience
	// are the iss and aud every token must carry.
	Keys     runtimeid.KeySource
	Issuer   string
	Audience string

	// PolicyPath is a policy file; empty means the embedded agent.yaml.
	PolicyPath string

	// TrustedProxies may set X-Forwarded-For.
	TrustedProxies []netip.Prefix

	// Logger receives the engine's audit events; nil discards them.
	Logger *slog.Logger

	// Now is the clock of the engine and the approvals; nil means
	// time.Now.
	Now func() time.Time

	// Token gives the access token of calls that do not come over
	// HTTP, such as stdio: the adapter's [mcpadapter.Options.Token].
	Token func(ctx context.Context) (string, error)
}

// Shop is the wired server.
type Shop struct {
	// Engine, Agents and Approvals are the parts [New] wired together,
	// for callers that inspect or drive them directly.
	Engine    *runtimeid.Engine
	Agents    *risk.AgentEvaluator
	Approvals *runtimeid.Approvals

	// Handler serves /mcp (streamable HTTP) and /approvals (for users).
	Handler http.Handler

	// Server is the MCP server behind Handler, for other transports:
	// its calls are identified by [Config.Token].
	Server *sdk.Server
}

// New wires the engine, the adapter and the MCP server.
func New(cfg Config) (*Shop, error) {
	pol, err := loadPolicy(cfg.PolicyPath)
	if err != nil {
		return nil, err
	}
	agents, err := risk.NewAgentEvaluator(risk.AgentOptions{})
	if err != nil {
		return nil, err
	}
	approvals, err := runtimeid.NewApprovals(runtimeid.ApprovalsOptions{Now: cfg.Now})
	if err != nil {
		return nil, err
	}
	enforcer, err := decision.NewEnforcer(decision.Options{Realm: "shop"})
	if err != nil {
		return nil, err
	}
	engine, err := runtimeid.New(runtimeid.Config{
		Token: runtimeid.TokenConfig{
			Issuer: cfg.Issuer, Audience: []string{cfg.Audience}, Keys: cfg.Keys,
		},
		StepUps:    approvals,
		Collectors: []runtimeid.SignalCollector{signals.NewClientIP(cfg.TrustedProxies)},
		Evaluators: []runtimeid.RiskEvaluator{agents},
		Policy:     pol,
		Enforcer:   enforcer,
		Logger:     cfg.Logger,
		Now:        cfg.Now,
	})
	if err != nil {
		return nil, err
	}
	adapter, err := mcpadapter.New(mcpadapter.Options{
		Engine: engine, Tools: Tools, Enforcer: enforcer, Policy: pol,
		Approver: approvals, UsageRecorder: agents, Token: cfg.Token,
	})
	if err != nil {
		return nil, err
	}

	server := newServer()
	adapter.Install(server)
	streamable := sdk.NewStreamableHTTPHandler(
		func(*http.Request) *sdk.Server { return server }, nil)
	mux := http.NewServeMux()
	mux.Handle("/mcp", adapter.Handler(streamable))
	mux.Handle("/approvals",
		engine.Protect("approve_agent_action", runtimeid.High)(approvals.Handler()))
	return &Shop{Engine: engine, Agents: agents, Approvals: approvals,
		Handler: mux, Server: server}, nil
}

func loadPolicy(path string) (*policy.Policy, error) {
	if path != "" {
		return policy.Load(path)
	}
	return policy.Parse(agentPolicy, "agent.yaml")
}

// ExportArgs are export_customers' arguments.
type ExportArgs struct {
	Limit int `json:"limit,omitempty" jsonschema:"how many customers, all when 0"`
}

// ProfileArgs are update_profile's arguments.
type ProfileArgs struct {
	Email string `json:"email" jsonschema:"the new e-mail address"`
}

// TransferArgs are transfer_funds' arguments.
type TransferArgs struct {
	To     string `json:"to" jsonschema:"the receiving account"`
	Amount int    `json:"amount" jsonschema:"in cents"`
}

// Page is what the read tools return.
type Page struct {
	Subject string   `json:"subject"`
	Items   []string `json:"items"`
}

func newServer() *sdk.Server {
	s := sdk.NewServer(&sdk.Implementation{Name: "shop", Version: "1.0.0"}, nil)
	sdk.AddTool(s, &sdk.Tool{Name: "list_orders",
		Description: "List the user's recent orders."}, listOrders)
	sdk.AddTool(s, &sdk.Tool{Name: "update_profile",
		Description: "Change the user's e-mail address."}, updateProfile)
	sdk.AddTool(s, &sdk.Tool{Name: "export_customers",
		Description: "Export the customer list."}, exportCustomers)
	sdk.AddTool(s, &sdk.Tool{Name: "transfer_funds",
		Description: "Move money from the user's account."}, transferFunds)
	return s
}

// read answers a read tool with n items and reports the usage.
func read(ctx context.Context, prefix string, n int) Page {
	items := make([]string, n)
	for i := range items {
		items[i] = fmt.Sprintf("%s-%04d", prefix, i+1)
	}
	runtimeid.ReportUsage(ctx, runtimeid.Usage{
		Records: n, Bytes: int64(n * bytesPerRecord)})
	return Page{Subject: subject(ctx), Items: items}
}

func subject(ctx context.Context) string {
	if id := runtimeid.IdentityFrom(ctx); id != nil {
		return id.Subject
	}
	return ""
}

func listOrders(ctx context.Context, _ *sdk.CallToolRequest, _ struct{}) (
	*sdk.CallToolResult, Page, error) {
	return nil, read(ctx, "order", OrdersPerPage), nil
}

func exportCustomers(ctx context.Context, _ *sdk.CallToolRequest, in ExportArgs) (
	*sdk.CallToolResult, Page, error) {
	n := CustomerCount
	if in.Limit > 0 && in.Limit < n {
		n = in.Limit
	}
	return nil, read(ctx, "customer", n), nil
}

func updateProfile(ctx context.Context, _ *sdk.CallToolRequest, in ProfileArgs) (
	*sdk.CallToolResult, map[string]string, error) {
	return nil, map[string]string{"subject": subject(ctx), "email": in.Email}, nil
}

func transferFunds(ctx context.Context, _ *sdk.CallToolRequest, in TransferArgs) (
	*sdk.CallToolResult, map[string]any, error) {
	return nil, map[string]any{"subject": subject(ctx), "to": in.To,
		"amount": in.Amount, "status": "accepted"}, nil
}
