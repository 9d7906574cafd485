// Command mcpserver is an MCP server over streamable HTTP at /mcp whose
// every tool call goes through runtimeid: list_orders (low),
// update_profile (medium), export_customers (high) and transfer_funds
// (high). Any MCP client can connect with a bearer token.
//
// With no -jwks it makes its own signing key and prints sample tokens:
// one for alice, one for an agent acting for her. Users approve their
// agents' challenged calls at /approvals.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"os/signal"
	"strings"
	"time"

	"github.com/runtimeid/runtimeid"
	"github.com/runtimeid/runtimeid/examples/mcpserver/shop"
	"github.com/runtimeid/runtimeid/signals"
)

const (
	demoIssuer   = "https://issuer.shop.example"
	demoAudience = "https://shop.example/mcp"
)

type options struct {
	addr, jwks, issuer, audience, policy, trustedProxies string
}

func main() {
	if err := run(os.Args[1:], os.Stdout, os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, "mcpserver:", err)
		os.Exit(1)
	}
}

func parseFlags(args []string, stderr io.Writer) (options, error) {
	var o options
	fs := flag.NewFlagSet("mcpserver", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&o.addr, "addr", "127.0.0.1:8080", "address to listen on")
	fs.StringVar(&o.jwks, "jwks", "", "JWKS or PEM file, or JWKS URL; empty: a key made at start")
	fs.StringVar(&o.issuer, "issuer", demoIssuer, "accepted token issuer (iss)")
	fs.StringVar(&o.audience, "audience", demoAudience, "accepted token audience (aud)")
	fs.StringVar(&o.policy, "policy", "", "policy file; empty: the built-in agent policy")
	fs.StringVar(&o.trustedProxies, "trusted-proxies", "",
		"comma-separated CIDRs of proxies whose X-Forwarded-For is trusted")
	return o, fs.Parse(args)
}

func run(args []string, stdout, stderr io.Writer) error {
	o, err := parseFlags(args, stderr)
	if err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	logger := slog.New(slog.NewTextHandler(stderr, nil))

	var iss *shop.Issuer
	var keys runtimeid.KeySource
	switch {
	case o.jwks == "":
		if iss, err = shop.NewIssuer(o.issuer, o.audience); err != nil {
			return err
		}
		keys, err = runtimeid.StaticKeys(iss.Public)
	case strings.HasPrefix(o.jwks, "http://") || strings.HasPrefix(o.jwks, "https://"):
		keys, err = runtimeid.RemoteKeys(ctx, o.jwks, runtimeid.RemoteKeysOptions{Logger: logger})
	default:
		keys, err = runtimeid.KeysFromFile(o.jwks)
	}
	if err != nil {
		return err
	}
	trusted, err := signals.ParsePrefixes(o.trustedProxies)
	if err != nil {
		return fmt.Errorf("-trusted-proxies: %w", err)
	}
	s, err := shop.New(shop.Config{Keys: keys, Issuer: o.issuer, Audience: o.audience,
		PolicyPath: o.policy, TrustedProxies: trusted, Logger: logger})
	if err != nil {
		return err
	}

	srv := &http.Server{Addr: o.addr, Handler: s.Handler, ReadHeaderTimeout: 5 * time.Second}
	go func() {
		<-ctx.Done()
		shutdown, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		srv.Shutdown(shutdown)
	}()
	if iss != nil {
		if err := printSamples(stdout, iss, o.addr); err != nil {
			return err
		}
	}
	fmt.Fprintf(stdout, "MCP endpoint http://%s/mcp (audit events go to stderr)\n", o.addr)
	if err := srv.ListenAndServe(); !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}

func printSamples(w io.Writer, iss *shop.Issuer, addr string) error {
	now := time.Now()
	agent, err := iss.Mint(shop.Grant{Subject: "alice", SessionID: "alice-1",
		Issued: now, AuthTime: now, Actor: "agent-7", ActorClient: "orders-assistant"})
	if err != nil {
		return err
	}
	user, err := iss.Mint(shop.Grant{Subject: "alice", SessionID: "alice-1",
		Issued: now, AuthTime: now})
	if err != nil {
		return err
	}
	fmt.Fprintf(w, `Sample tokens, valid for one hour:
  AGENT: agent-7 acting for alice (RFC 8693 act claim)
  ALICE: alice herself, to approve her agent's challenged calls

export AGENT=%s
export ALICE=%s

Connect any MCP client to http://%s/mcp with "Authorization: Bearer $AGENT".
A challenged call answers 401 with a Runtimeid-Approval header; alice approves:
curl -i http://%s/approvals -H "Authorization: Bearer $ALICE" -d id=<id> -d decision=approve
and the agent retries with the id in the Runtimeid-Approval header or _meta "runtimeid/approval".

`, agent, user, addr, addr)
	return nil
}
