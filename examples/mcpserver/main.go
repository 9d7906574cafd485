// Command mcpserver is an MCP server over streamable HTTP at /mcp whose
// every tool call goes through runtimeid: list_orders (low),
// update_profile (medium), export_customers (high) and transfer_funds
// (high). Any MCP client can connect with a bearer token.
//
// With no -jwks it makes its own signing key and prints sample tokens:
// one for alice, one for an agent acting for her. Users approve their
// agents' challenged calls at /approvals.
//
// With -stdio it serves MCP on its standard input and output instead,
// as a host application starts a local server, and every call carries
// the access token in the RUNTIMEID_TOKEN environment variable,
// verified as over HTTP. That needs -jwks: a key made at start cannot
// have signed the host's token. No /approvals is served then, so an
// agent's challenged call stays challenged; audit events go to stderr.
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

	sdk "github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/runtimeid/runtimeid"
	"github.com/runtimeid/runtimeid/examples/mcpserver/shop"
	"github.com/runtimeid/runtimeid/signals"
)

const (
	demoIssuer   = "https://issuer.shop.example"
	demoAudience = "https://shop.example/mcp"

	// tokenEnv holds the access token of every call with -stdio.
	tokenEnv = "RUNTIMEID_TOKEN"
)

type options struct {
	addr, jwks, issuer, audience, policy, trustedProxies string
	stdio                                                bool
}

func main() {
	err := run(os.Args[1:], os.Stdin, os.Stdout, os.Stderr, os.Getenv)
	if err != nil {
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
	fs.BoolVar(&o.stdio, "stdio", false,
		"serve MCP on stdin and stdout, every call with the token in $"+tokenEnv)
	return o, fs.Parse(args)
}

func run(args []string, stdin io.Reader, stdout, stderr io.Writer,
	getenv func(string) string) error {
	o, err := parseFlags(args, stderr)
	if err != nil {
		return err
	}
	if o.stdio && o.jwks == "" {
		return errors.New("-stdio needs -jwks: a key made at start " +
			"cannot have signed the token in $" + tokenEnv)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	logger := slog.New(slog.NewTextHandler(stderr, nil))

	iss, keys, err := loadKeys(ctx, o, logger)
	if err != nil {
		return err
	}
	trusted, err := signals.ParsePrefixes(o.trustedProxies)
	if err != nil {
		return fmt.Errorf("-trusted-proxies: %w", err)
	}
	cfg := shop.Config{Keys: keys, Issuer: o.issuer, Audience: o.audience,
		PolicyPath: o.policy, TrustedProxies: trusted, Logger: logger}
	if o.stdio {
		// Read on every call, as the adapter asks on every call.
		cfg.Token = func(context.Context) (string, error) {
			return getenv(tokenEnv), nil
		}
	}
	s, err := shop.New(cfg)
	if err != nil {
		return err
	}
	if o.stdio {
		return serveStdio(ctx, s.Server, stdin, stdout)
	}
	return serveHTTP(ctx, s.Handler, o.addr, iss, stdout)
}

// loadKeys returns the keys of -jwks, or with none, a demo issuer and
// its key.
func loadKeys(ctx context.Context, o options,
	logger *slog.Logger) (*shop.Issuer, runtimeid.KeySource, error) {
	switch {
	case o.jwks == "":
		iss, err := shop.NewIssuer(o.issuer, o.audience)
		if err != nil {
			return nil, nil, err
		}
		keys, err := runtimeid.StaticKeys(iss.Public)
		return iss, keys, err
	case strings.HasPrefix(o.jwks, "http://") || strings.HasPrefix(o.jwks, "https://"):
		keys, err := runtimeid.RemoteKeys(ctx, o.jwks,
			runtimeid.RemoteKeysOptions{Logger: logger})
		return nil, keys, err
	default:
		keys, err := runtimeid.KeysFromFile(o.jwks)
		return nil, keys, err
	}
}

// serveStdio serves one MCP session on stdin and stdout until stdin
// ends or ctx is done.
func serveStdio(ctx context.Context, server *sdk.Server,
	stdin io.Reader, stdout io.Writer) error {
	t := &sdk.IOTransport{Reader: io.NopCloser(stdin), Writer: nopCloser{stdout}}
	err := server.Run(ctx, t)
	if errors.Is(err, context.Canceled) {
		return nil
	}
	return err
}

// nopCloser leaves the writer open: the process owns its stdout.
type nopCloser struct{ io.Writer }

func (nopCloser) Close() error { return nil }

// serveHTTP serves h at addr until ctx is done, after printing sample
// tokens of iss when there is one.
func serveHTTP(ctx context.Context, h http.Handler, addr string,
	iss *shop.Issuer, stdout io.Writer) error {
	srv := &http.Server{Addr: addr, Handler: h, ReadHeaderTimeout: 5 * time.Second}
	go func() {
		<-ctx.Done()
		shutdown, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		srv.Shutdown(shutdown)
	}()
	if iss != nil {
		if err := printSamples(stdout, iss, addr); err != nil {
			return err
		}
	}
	fmt.Fprintf(stdout, "MCP endpoint http://%s/mcp (audit events go to stderr)\n", addr)
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
