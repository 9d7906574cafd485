package main

import (
	"log/slog"
	"net"
	"time"

	"github.com/runtimeid/runtimeid"
	"github.com/runtimeid/runtimeid/adapters/stepup"
)

// tokenCookie holds a browser's access token in the quickstart, so the
// step-up page knows who is stepping up.
const tokenCookie = "quickstart_token"

// newStepUp answers challenges inside the quickstart when no external
// -stepup-url is given: a passkey or an authenticator app's code, for
// browsers at /stepup/ and for API clients at its JSON endpoints. What
// it records for a session meets the next challenge of that session.
func newStepUp(o options, tok runtimeid.TokenConfig, store stepup.Store,
	now func() time.Time, logger *slog.Logger) (*stepup.Service, error) {
	host, origin := browserOrigin(o.addr)
	return stepup.New(stepup.Options{
		Token:       tok,
		TokenCookie: tokenCookie,
		RPID:        host,
		RPOrigins:   []string{origin},
		DisplayName: "runtimeid quickstart",
		Store:       store, // nil: in memory
		Logger:      logger,
		Now:         now,
	})
}

// browserOrigin is the host name and origin browsers must use to reach
// the quickstart listening on addr. WebAuthn needs a host name, not an
// address: on a loopback address, browsers must use localhost.
func browserOrigin(addr string) (host, origin string) {
	host, port, err := net.SplitHostPort(addr)
	if err != nil || host == "" || host == "127.0.0.1" || host == "::1" {
		host = "localhost"
	}
	origin = "http://" + host
	if port != "" {
		origin += ":" + port
	}
	return host, origin
}
