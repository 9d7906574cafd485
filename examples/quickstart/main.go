// Command quickstart is a small API protected by runtimeid.
//
// With no flags it makes its own signing key, prints ready-to-paste curl
// commands with sample tokens and serves on 127.0.0.1:8080. With -demo it
// replays a real access log and the attack scenarios over loopback, prints
// what runtimeid decided and exits.
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
	"time"

	"github.com/runtimeid/runtimeid"
)

func main() {
	err := run(os.Args[1:], os.Stdout, os.Stderr)
	if errors.Is(err, flag.ErrHelp) {
		return
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "quickstart:", err)
		os.Exit(1)
	}
}

func parseFlags(args []string, stderr io.Writer) (options, error) {
	var o options
	fs := flag.NewFlagSet("quickstart", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&o.addr, "addr", "127.0.0.1:8080",
		"address to listen on")
	fs.StringVar(&o.jwks, "jwks", "",
		"JWKS or PEM file, or JWKS URL; empty: a key made at start")
	fs.StringVar(&o.issuer, "issuer", demoIssuer,
		"accepted token issuer (iss)")
	fs.StringVar(&o.audience, "audience", demoAudience,
		"accepted token audience (aud)")
	fs.StringVar(&o.policy, "policy", "",
		"policy file (YAML or JSON); empty: the default policy")
	fs.StringVar(&o.geoCity, "geoip-city", "",
		"MaxMind City database; empty: MaxMind's test database")
	fs.StringVar(&o.geoASN, "geoip-asn", "",
		"MaxMind ASN database; empty: MaxMind's test database")
	fs.StringVar(&o.geoAnonymous, "geoip-anonymous", "",
		"MaxMind Anonymous-IP database; empty: the test one")
	fs.StringVar(&o.trustedProxies, "trusted-proxies", "",
		"comma-separated CIDRs of proxies whose X-Forwarded-For is trusted")
	fs.StringVar(&o.stepUpURL, "stepup-url", "",
		"where browsers are sent to step up")
	fs.StringVar(&o.ssfIssuer, "ssf-issuer", "",
		"SSF transmitter issuer; with -ssf-jwks and -ssf-audience, mounts POST /ssf/events")
	fs.StringVar(&o.ssfJWKS, "ssf-jwks", "",
		"the SSF transmitter's JWKS: a file path or a URL")
	fs.StringVar(&o.ssfAudience, "ssf-audience", "",
		"this receiver's audience in the transmitter's SETs (aud)")
	fs.StringVar(&o.ssfToken, "ssf-token", "",
		"bearer token the transmitter must send; empty: none")
	fs.StringVar(&o.redis, "redis", "",
		"Redis address (host:port) shared by several quickstart processes; empty: in-memory state")
	fs.BoolVar(&o.demo, "demo", false,
		"replay the real access log and the attack scenarios, then exit")
	err := fs.Parse(args)
	return o, err
}

func run(args []string, stdout, stderr io.Writer) error {
	o, err := parseFlags(args, stderr)
	if err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	if o.demo {
		_, err := runDemo(ctx, stdout)
		return err
	}

	logger := slog.New(slog.NewTextHandler(stderr, nil))
	var iss *issuer
	var keys runtimeid.KeySource
	switch {
	case o.jwks == "":
		if iss, err = newIssuer(o.issuer, o.audience); err != nil {
			return err
		}
		o.signer = iss
		keys, err = runtimeid.StaticKeys(iss.public)
	case isURL(o.jwks):
		keys, err = runtimeid.RemoteKeys(ctx, o.jwks, runtimeid.RemoteKeysOptions{Logger: logger})
	default:
		keys, err = runtimeid.KeysFromFile(o.jwks)
	}
	if err != nil {
		return err
	}

	svc, err := newService(ctx, o, keys, time.Now, logger)
	if err != nil {
		return err
	}
	defer svc.Close()

	srv := &http.Server{Addr: o.addr, Handler: svc.handler, ReadHeaderTimeout: 5 * time.Second}
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
	if svc.signIn != nil {
		fmt.Fprintf(stdout, "Sign in with a browser (a demo page, never for production): %s\n\n",
			svc.signIn.URL())
	}
	fmt.Fprintf(stdout, "listening on http://%s (audit events go to stderr)\n", o.addr)
	if err := srv.ListenAndServe(); !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}

func isURL(s string) bool {
	return len(s) > 8 && (s[:7] == "http://" || s[:8] == "https://")
}

// printSamples prints curl commands with tokens from the built-in issuer.
func printSamples(w io.Writer, iss *issuer, addr string) error {
	now := time.Now()
	fresh, err := iss.login("alice", "alice-1", now, 0)
	if err != nil {
		return err
	}
	stale, err := iss.login("alice", "alice-1", now, time.Hour)
	if err != nil {
		return err
	}
	base := "http://" + addr
	fmt.Fprintf(w, `Sample tokens, valid for one hour (signed by a key made at start):
  FRESH: alice, authenticated just now
  STALE: alice, authenticated an hour ago

export FRESH=%s
export STALE=%s

# allowed: a low-sensitivity read
curl -i %s/api/orders -H "Authorization: Bearer $STALE"
# 401 Bearer error="insufficient_user_authentication", max_age=300: the
# transfer needs an authentication in the last five minutes
curl -i -X POST %s/api/transfers -H "Authorization: Bearer $STALE"
# allowed: the fresh token meets the step-up requirement
curl -i -X POST %s/api/transfers -H "Authorization: Bearer $FRESH"
# 401 with no error code: no token (RFC 6750 section 3.1)
curl -i %s/api/export
# 401 invalid_token: a tampered token
curl -i %s/api/orders -H "Authorization: Bearer ${FRESH}x"

# Answer the STALE transfer's challenge here, without a new token: enroll
# an authenticator app (this needs the fresh login), confirm it with a code
# from the app (or: oathtool --totp -b SECRET), then give the app's next
# code (each is accepted once) and retry the transfer with the STALE token.
curl -s -X POST %s/stepup/enroll/otp -H "Authorization: Bearer $FRESH" \
  -H 'Content-Type: application/json' -d '{}'
curl -s -X POST %s/stepup/enroll/otp/confirm -H "Authorization: Bearer $FRESH" \
  -H 'Content-Type: application/json' -d '{"code":"CODE"}'
curl -s -X POST %s/stepup/otp/verify -H "Authorization: Bearer $STALE" \
  -H 'Content-Type: application/json' -d '{"code":"CODE"}'
curl -i -X POST %s/api/transfers -H "Authorization: Bearer $STALE"

Restart with -trusted-proxies 127.0.0.1/32 and add -H "X-Forwarded-For: 1.124.213.1"
(a Tor exit in MaxMind's test data) to see GET /api/export blocked.

`, fresh, stale, base, base, base, base, base, base, base, base, base)
	return nil
}
