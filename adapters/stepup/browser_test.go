package stepup

import (
	"context"
	"flag"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/cdproto/webauthn"
	"github.com/chromedp/chromedp"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/runtimeid/runtimeid"
	"github.com/runtimeid/runtimeid/decision"
	"github.com/runtimeid/runtimeid/policy"
)

var update = flag.Bool("update", false, "rewrite testdata/stepup.png")

const cookieName = "rid_token"

// chromium returns the browser's path, or skips the test; under CI a
// missing browser fails it instead.
func chromium(t *testing.T) string {
	t.Helper()
	path, err := exec.LookPath("chromium")
	if err != nil {
		if os.Getenv("CI") != "" {
			t.Fatal("chromium is not installed; .ci/run must install it")
		}
		t.Skip("chromium is not installed (apt-get install chromium); skipping")
	}
	return path
}

// browserApp serves the step-up service and one high-sensitivity page
// that reads the token from the cookie, as a browser application
// would.
func browserApp(t *testing.T, h *harness) http.Handler {
	enf, err := decision.NewEnforcer(decision.Options{StepUpURL: "/stepup/"})
	require.NoError(t, err)
	eng, err := runtimeid.New(runtimeid.Config{
		Token: h.tokenConfig(), Policy: policy.Default(), Enforcer: enf,
		StepUps: h.svc, Now: h.clock.Now,
	})
	require.NoError(t, err)
	mux := http.NewServeMux()
	export := func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		fmt.Fprintf(w, "<!doctype html><title>Export</title><h1 id=done>Export ready for %s</h1>",
			runtimeid.IdentityFrom(r.Context()).Subject)
	}
	mux.Handle("GET /account/export", eng.Protect("GET /account/export", runtimeid.High)(
		http.HandlerFunc(export)))
	mux.Handle("/stepup/", h.h)
	return CookieToken(cookieName)(mux)
}

// TestBrowserFlow: enroll a passkey, visit a high-sensitivity page with
// a stale login, get sent to the step-up page, use the passkey, land
// back on the page, which now answers.
func TestBrowserFlow(t *testing.T) {
	browser := chromium(t)

	// The server listens on 127.0.0.1, but the browser calls it
	// localhost: http://localhost is a secure context for WebAuthn,
	// and an IP address cannot be a relying party id.
	var app http.Handler
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		app.ServeHTTP(w, r)
	}))
	defer srv.Close()
	_, port, err := net.SplitHostPort(srv.Listener.Addr().String())
	require.NoError(t, err)
	origin := "http://localhost:" + port
	h := newHarness(t, func(o *Options) {
		o.RPID, o.RPOrigins, o.TokenCookie = "localhost", []string{origin}, cookieName
		o.DisplayName = "Quickstart"
	})
	app = browserApp(t, h)

	alloc, cancel := chromedp.NewExecAllocator(context.Background(),
		chromedp.ExecPath(browser), chromedp.Headless, chromedp.NoSandbox,
		chromedp.DisableGPU, chromedp.Flag("disable-quic", true),
		chromedp.Flag("no-first-run", true),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.UserDataDir(t.TempDir()), chromedp.WindowSize(900, 760))
	defer cancel()
	ctx, cancel := chromedp.NewContext(alloc)
	defer cancel()
	ctx, cancel = context.WithTimeout(ctx, 90*time.Second)
	defer cancel()

	// A platform authenticator that verifies the user (a PIN or a
	// fingerprint) and holds discoverable credentials.
	setCookie := func(tok string) chromedp.Action[chromedp.Void] {
		return chromedp.Func(func(ctx context.Context, tg *chromedp.Target) error {
			_, err := cdp.Call(ctx, tg, network.SetCookie, network.SetCookieParams{
				Name: cookieName, Value: tok, URL: origin + "/",
				SameSite: network.CookieSameSiteStrict})
			return err
		})
	}
	var authID webauthn.AuthenticatorID
	bogus := func(on bool) chromedp.Action[chromedp.Void] {
		return chromedp.Func(func(ctx context.Context, tg *chromedp.Target) error {
			_, err := cdp.Call(ctx, tg, webauthn.SetResponseOverrideBits,
				webauthn.SetResponseOverrideBitsParams{AuthenticatorID: authID,
					IsBogusSignature: &on})
			return err
		})
	}
	require.NoError(t, chromedp.Do(ctx, chromedp.Func(
		func(ctx context.Context, tg *chromedp.Target) error {
			if _, err := cdp.Call(ctx, tg, webauthn.Enable, webauthn.EnableParams{}); err != nil {
				return err
			}
			res, err := cdp.Call(ctx, tg, webauthn.AddVirtualAuthenticator,
				webauthn.AddVirtualAuthenticatorParams{Options: &webauthn.VirtualAuthenticatorOptions{
					Protocol:     webauthn.AuthenticatorProtocolCtap2,
					Ctap2version: webauthn.Ctap2versionCtap21,
					Transport:    webauthn.AuthenticatorTransportInternal, HasResidentKey: true,
					HasUserVerification: true, IsUserVerified: true,
					AutomaticPresenceSimulation: true}})
			authID = res.AuthenticatorID
			return err
		})))

	// 1. Alice has just signed in and set up an authenticator app
	// (through the API here). A second factor needs a step-up with the
	// first: she enters a code, then adds a passkey on the page.
	fresh := h.token("alice", "s1", 0)
	secret := h.enrollOTP(fresh)
	h.clock.Add(30 * time.Second)
	w := h.do("POST", "/stepup/otp/verify", fresh, map[string]string{"code": h.code(secret)})
	require.Equal(t, 200, w.Code, w.Body.String())
	require.NoError(t, chromedp.Do(ctx,
		setCookie(fresh),
		chromedp.Navigate(origin+"/stepup/"),
		chromedp.Click(chromedp.CSS("summary")),
		chromedp.Click(chromedp.ID("enroll-passkey")),
		chromedp.WaitVisible(chromedp.ID("passkey")),
	))
	f, err := h.svc.factors(t.Context(), &runtimeid.Identity{Issuer: testIssuer, Subject: "alice"})
	require.NoError(t, err)
	assert.Equal(t, Factors{Passkeys: 1, OTP: true}, f)

	// 2. An hour later the export needs a fresh authentication: the
	// browser is sent to the step-up page with the way back.
	h.clock.Add(time.Hour)
	require.NoError(t, chromedp.Do(ctx,
		setCookie(h.token("alice", "s1", time.Hour)),
		chromedp.Navigate(origin+"/account/export"),
		chromedp.WaitVisible(chromedp.ID("passkey")),
		chromedp.WaitVisible(chromedp.ID("code")),
	))
	loc, err := chromedp.Run(ctx, chromedp.Location())
	require.NoError(t, err)
	assert.Equal(t, origin+"/stepup/?max_age=300&return_to=%2Faccount%2Fexport", loc)
	shot, err := chromedp.Run(ctx, chromedp.CaptureScreenshot())
	require.NoError(t, err)
	require.Greater(t, len(shot), 10_000)
	assert.Equal(t, "\x89PNG", string(shot[:4]))
	if *update {
		require.NoError(t, os.WriteFile("testdata/stepup.png", shot, 0o644))
	}

	// 3. An assertion with a forged signature is refused, and the
	// page says so.
	require.NoError(t, chromedp.Do(ctx, bogus(true),
		chromedp.Click(chromedp.ID("passkey")),
		chromedp.WaitVisible(chromedp.CSS("#msg.bad")),
		bogus(false),
	))
	msg, err := chromedp.Run(ctx, chromedp.Text(chromedp.ID("msg")))
	require.NoError(t, err)
	assert.Equal(t, "verification failed", msg)

	// 4. The passkey answers, and the browser lands on the export.
	require.NoError(t, chromedp.Do(ctx,
		chromedp.Click(chromedp.ID("passkey")),
		chromedp.WaitVisible(chromedp.ID("done")),
	))
	loc, err = chromedp.Run(ctx, chromedp.Location())
	require.NoError(t, err)
	assert.Equal(t, origin+"/account/export", loc)
	text, err := chromedp.Run(ctx, chromedp.Text(chromedp.ID("done")))
	require.NoError(t, err)
	assert.Equal(t, "Export ready for alice", text)

	rec, ok := h.svc.Record(t.Context(),
		&runtimeid.Identity{Issuer: testIssuer, Subject: "alice", SessionID: "s1"})
	require.True(t, ok)
	assert.Equal(t, ACRPasskey, rec.ACR)
	assert.Equal(t, "passkey", rec.Method)
	assert.Equal(t, h.clock.Now(), rec.Time)
	assert.True(t, strings.HasPrefix(rec.Device, "passkey:"), rec.Device)
}
