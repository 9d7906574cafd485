// Command agent is a scripted AI agent that goes wrong, and runtimeid
// stopping it. It starts the shop's MCP server (examples/mcpserver) on
// 127.0.0.1 with an injected clock, connects with the official Go SDK's
// client over streamable HTTP, and acts for alice:
//
//  1. it lists her orders every ten seconds for five minutes: allowed,
//     and learned as this agent's baseline;
//  2. it starts calling as fast as it can: throttled (agent_rate_high,
//     HTTP 429);
//  3. it calls export_customers, which it never did: challenged
//     (agent_scope_drift, HTTP 401); alice approves, and the retry with
//     the approval is allowed once;
//  4. it exports again: blocked (agent_volume_spike), having read 250
//     times its usual volume.
//
// It prints each step and the audit trail.
package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/modelcontextprotocol/go-sdk/jsonrpc"
	sdk "github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/runtimeid/runtimeid"
	mcpadapter "github.com/runtimeid/runtimeid/adapters/mcp"
	"github.com/runtimeid/runtimeid/examples/mcpserver/shop"
)

func main() {
	if _, err := run(context.Background(), os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "agent:", err)
		os.Exit(1)
	}
}

// Step is one tool call of the script and what came of it.
type Step struct {
	Name   string
	Tool   string
	Status int    // HTTP status of the call
	Code   int64  // JSON-RPC error code, 0 when the call ran
	Reason string // the refusal's reason
	Items  int    // records the call returned

	WWWAuthenticate string
	Approval        string
}

// clock is the injected time of the engine and the approvals.
type clock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *clock) Advance(d time.Duration) {
	c.mu.Lock()
	c.now = c.now.Add(d)
	c.mu.Unlock()
}

// recorder is the agent's HTTP transport: it sends the agent's token
// and keeps the status and headers of the last tools/call answer.
type recorder struct {
	token string

	mu   sync.Mutex
	last *http.Response
}

func (t *recorder) RoundTrip(r *http.Request) (*http.Response, error) {
	r = r.Clone(r.Context())
	r.Header.Set("Authorization", "Bearer "+t.token)
	resp, err := http.DefaultTransport.RoundTrip(r)
	if err == nil && r.Method == http.MethodPost {
		t.mu.Lock()
		t.last = resp
		t.mu.Unlock()
	}
	return resp, err
}

func (t *recorder) lastResponse() *http.Response {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.last
}

// scenario is the running server and the agent's session.
type scenario struct {
	clock   *clock
	srv     *httptest.Server
	iss     *shop.Issuer
	rt      *recorder
	session *sdk.ClientSession
	steps   []Step
	out     io.Writer
}

var start = time.Date(2026, 12, 4, 9, 0, 0, 0, time.UTC)

func run(ctx context.Context, out io.Writer) ([]Step, error) {
	var audit bytes.Buffer
	s, err := newScenario(ctx, out, &audit)
	if err != nil {
		return nil, err
	}
	defer s.close()
	if err := s.script(ctx); err != nil {
		return s.steps, err
	}
	fmt.Fprintln(out, "\naudit trail (refusals and approvals):")
	printAudit(out, &audit)
	return s.steps, nil
}

func newScenario(ctx context.Context, out, audit io.Writer) (*scenario, error) {
	s := &scenario{clock: &clock{now: start}, out: out}
	iss, err := shop.NewIssuer("https://issuer.shop.example", "https://shop.example/mcp")
	if err != nil {
		return nil, err
	}
	s.iss = iss
	keys, err := runtimeid.StaticKeys(iss.Public)
	if err != nil {
		return nil, err
	}
	sh, err := shop.New(shop.Config{Keys: keys, Issuer: iss.Issuer,
		Audience: iss.Audience, Now: s.clock.Now,
		Logger: slog.New(slog.NewJSONHandler(audit, nil))})
	if err != nil {
		return nil, err
	}
	s.srv = httptest.NewServer(sh.Handler)

	tok, err := iss.Mint(shop.Grant{Subject: "alice", SessionID: "alice-1",
		Issued: start, AuthTime: start, Actor: "agent-7", ActorClient: "orders-assistant"})
	if err != nil {
		s.close()
		return nil, err
	}
	s.rt = &recorder{token: tok}
	client := sdk.NewClient(&sdk.Implementation{Name: "agent-7", Version: "1"}, nil)
	s.session, err = client.Connect(ctx, &sdk.StreamableClientTransport{
		Endpoint: s.srv.URL + "/mcp", HTTPClient: &http.Client{Transport: s.rt},
		DisableStandaloneSSE: true, MaxRetries: -1,
	}, nil)
	if err != nil {
		s.close()
		return nil, err
	}
	return s, nil
}

func (s *scenario) close() {
	if s.session != nil {
		s.session.Close()
	}
	if s.srv != nil {
		s.srv.Close()
	}
}

func (s *scenario) script(ctx context.Context) error {
	fmt.Fprintln(s.out, "1. agent-7 lists alice's orders every 10 s for 5 minutes")
	for range 30 {
		if st := s.call(ctx, "baseline", "list_orders", nil, ""); st.Code != 0 {
			return fmt.Errorf("baseline call refused: %s", st.Reason)
		}
		s.clock.Advance(10 * time.Second)
	}
	s.report(s.steps[len(s.steps)-1], "30 calls allowed")

	fmt.Fprintln(s.out, "2. agent-7 calls list_orders as fast as it can (one a second)")
	for i := 1; i <= 60; i++ {
		st := s.call(ctx, "burst", "list_orders", nil, "")
		if st.Code != 0 {
			s.report(st, fmt.Sprintf("throttled on call %d", i))
			break
		}
		s.clock.Advance(time.Second)
	}

	fmt.Fprintln(s.out, "3. ten minutes later it exports the customer list")
	s.clock.Advance(10 * time.Minute)
	st := s.call(ctx, "export", "export_customers", nil, "")
	s.report(st, "challenged")
	if st.Approval == "" {
		return errors.New("no approval was requested")
	}
	status, err := s.approve(st.Approval)
	if err != nil {
		return err
	}
	fmt.Fprintf(s.out, "   alice approves %s as herself: HTTP %d\n", st.Approval, status)
	s.clock.Advance(5 * time.Second)
	s.report(s.call(ctx, "export-approved", "export_customers", nil, st.Approval), "allowed once")

	fmt.Fprintln(s.out, "4. it exports again")
	s.clock.Advance(5 * time.Second)
	s.report(s.call(ctx, "export-again", "export_customers", nil, st.Approval), "blocked")
	return nil
}

// call makes one tools/call and records its outcome.
func (s *scenario) call(ctx context.Context, name, tool string, args map[string]any,
	approval string) Step {
	params := &sdk.CallToolParams{Name: tool, Arguments: args}
	if approval != "" {
		params.Meta = sdk.Meta{mcpadapter.ApprovalMetaKey: approval}
	}
	res, err := s.session.CallTool(ctx, params)
	st := Step{Name: name, Tool: tool}
	if resp := s.rt.lastResponse(); resp != nil {
		st.Status = resp.StatusCode
		st.WWWAuthenticate = resp.Header.Get("WWW-Authenticate")
		st.Approval = resp.Header.Get(mcpadapter.ApprovalHeader)
	}
	var jerr *jsonrpc.Error
	switch {
	case err != nil && st.Status == http.StatusTooManyRequests:
		// The SDK's client reports 429 as a transient failure without
		// the body: the status says it all.
		st.Code, st.Reason = mcpadapter.CodeThrottled, "agent_rate_high"
	case errors.As(err, &jerr):
		st.Code = jerr.Code
		var data struct {
			Reason string `json:"reason"`
		}
		_ = json.Unmarshal(jerr.Data, &data)
		st.Reason = data.Reason
	case err != nil:
		st.Reason = err.Error()
		st.Code = -1
	default:
		st.Items = items(res)
	}
	s.steps = append(s.steps, st)
	return st
}

func items(res *sdk.CallToolResult) int {
	var page shop.Page
	raw, _ := json.Marshal(res.StructuredContent)
	_ = json.Unmarshal(raw, &page)
	return len(page.Items)
}

func (s *scenario) report(st Step, what string) {
	fmt.Fprintf(s.out, "   %-16s %-17s HTTP %d code %d reason %q items %d: %s\n",
		st.Name, st.Tool, st.Status, st.Code, st.Reason, st.Items, what)
	if st.WWWAuthenticate != "" {
		fmt.Fprintf(s.out, "   WWW-Authenticate: %s\n", st.WWWAuthenticate)
	}
}

// approve is alice, with her own fresh token, approving her agent's
// call at /approvals.
func (s *scenario) approve(id string) (int, error) {
	now := s.clock.Now()
	tok, err := s.iss.Mint(shop.Grant{Subject: "alice", SessionID: "alice-1",
		Issued: now, AuthTime: now})
	if err != nil {
		return 0, err
	}
	form := url.Values{"id": {id}, "decision": {"approve"}}.Encode()
	req, err := http.NewRequest("POST", s.srv.URL+"/approvals", strings.NewReader(form))
	if err != nil {
		return 0, err
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Authorization", "Bearer "+tok)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, err
	}
	resp.Body.Close()
	return resp.StatusCode, nil
}

// printAudit prints the audit events that were not plain allows.
func printAudit(out io.Writer, audit *bytes.Buffer) {
	for _, line := range strings.Split(strings.TrimSpace(audit.String()), "\n") {
		var e map[string]any
		if json.Unmarshal([]byte(line), &e) != nil {
			continue
		}
		if e["outcome"] == "allow" && e["stepped_up"] == nil {
			continue
		}
		fmt.Fprintf(out, "  %-9v rule=%v reason=%v action=%v sub=%v act=%v findings=%v\n",
			e["outcome"], e["rule"], e["reason"], e["action"], e["sub"], e["act"], e["findings"])
	}
}
