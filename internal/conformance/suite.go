// Package conformance is the test suite every router adapter passes: the
// same routes, the same requests, the same status codes, headers, problem
// bodies and evaluated actions, whatever the router.
//
// An adapter's test builds the suite's [Routes] in its router's idiom,
// with its global middleware and, for routes that name a [Protection],
// its per-route protection, and hands the result to [Run].
package conformance

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/runtimeid/runtimeid"
	"github.com/runtimeid/runtimeid/internal/conformance/demo"
)

// SeenHeader is the response header in which [Serve] writes the action
// name the handler saw, or "preflight" for an unevaluated CORS preflight.
const SeenHeader = "X-Seen-Action"

// AppOrigin is the origin the suite's CORS handler allows.
const AppOrigin = "https://app.test"

// Protection is a route's own action name and sensitivity, applied with
// the adapter's per-route idiom.
type Protection struct {
	Name        string
	Sensitivity runtimeid.Sensitivity
}

// Route is one route of the suite. Path uses ServeMux syntax ("{id}");
// adapters translate it to their own (":id").
type Route struct {
	Method  string
	Path    string
	Protect *Protection // nil: the global middleware only
}

// Routes are the suite's routes. Every GET route also answers HEAD: an
// adapter registers HEAD in its router's way where the router does not
// do it itself.
var Routes = []Route{
	{Method: http.MethodGet, Path: "/api/orders"},
	{Method: http.MethodGet, Path: "/api/orders/{id}"},
	{Method: http.MethodOptions, Path: "/api/orders"},
	{Method: http.MethodGet, Path: "/api/export"},
	{Method: http.MethodPost, Path: "/api/transfers"},
	{Method: http.MethodPost, Path: "/api/payouts",
		Protect: &Protection{Name: "payout", Sensitivity: runtimeid.High}},
	{Method: http.MethodGet, Path: "/ws"},
}

// Build returns the adapter's handler for the routes, protected by eng:
// the global middleware on every route, the route's [Protection] where
// it has one, and [Serve] as every route's handler.
type Build func(eng *runtimeid.Engine, routes []Route) http.Handler

// Serve is every route's handler. It writes the action name it saw in
// [SeenHeader] and checks that the framework's context carries the same
// evaluation as the request context (framework is what the adapter's
// accessor returned; net/http adapters pass [runtimeid.FromContext]).
// A CORS preflight gets a 204 with the CORS headers.
func Serve(w http.ResponseWriter, r *http.Request, framework *runtimeid.Evaluation) {
	ev := runtimeid.FromContext(r.Context())
	h := w.Header()
	switch {
	case runtimeid.IsPreflight(r):
		h.Set("Access-Control-Allow-Origin", AppOrigin)
		h.Set("Access-Control-Allow-Methods", "GET, POST")
		h.Set("Access-Control-Allow-Headers", "Authorization")
		h.Set(SeenHeader, "preflight")
		w.WriteHeader(http.StatusNoContent)
		return
	case ev == nil:
		http.Error(w, "no evaluation in the request context", http.StatusInternalServerError)
		return
	case framework != ev:
		http.Error(w, "framework context differs", http.StatusInternalServerError)
		return
	}
	h.Set(SeenHeader, ev.Action.Name)
	h.Set("Content-Type", "text/plain; charset=utf-8")
	_, _ = io.WriteString(w, "ok "+ev.Action.Name+"\n")
}

// The tokens a case may send.
const (
	noToken = iota
	fresh   // alice, authenticated a minute ago
	stale   // alice, authenticated an hour ago
	mallory // a subject the policy blocks
	bad     // a token whose signature does not verify
)

// Case is one request of the suite and everything expected of its
// response.
type Case struct {
	Name   string
	Method string
	Path   string
	Token  int
	Header map[string]string

	// Status is the exact status. Router-owned responses (the route's
	// handler did not run and runtimeid refused nothing) leave it zero
	// when routers differ, as for a redirect to a cleaned path.
	Status int

	// Seen is the action the route's handler saw; empty: it must not run.
	Seen string

	// Evaluated lists the actions evaluated, in order.
	Evaluated []string

	// Challenge is the exact WWW-Authenticate header, Code the problem
	// body's code; both empty for responses that are not refusals.
	Challenge string
	Code      string

	// RouterOwned means the response is the router's own: no handler
	// ran and it is no problem+json refusal.
	RouterOwned bool

	// Either means the router may route the request to GET /api/export
	// or to nothing; either way the action evaluated must be the one
	// that runs.
	Either bool
}

const (
	missing   = `Bearer realm="api"`
	invalid   = `Bearer realm="api", error="invalid_token", error_description="invalid signature"`
	challenge = `Bearer realm="api", error="insufficient_user_authentication", ` +
		`error_description="step-up authentication required: stale_authentication", max_age=300`
)

var upgrade = map[string]string{
	"Connection":            "Upgrade",
	"Upgrade":               "websocket",
	"Sec-WebSocket-Version": "13",
	"Sec-WebSocket-Key":     "dGhlIHNhbXBsZSBub25jZQ==",
}

var preflight = map[string]string{
	"Origin":                         AppOrigin,
	"Access-Control-Request-Method":  "POST",
	"Access-Control-Request-Headers": "authorization",
}

// Cases are the suite's requests.
var Cases = []Case{
	{Name: "allowed GET", Method: "GET", Path: "/api/orders", Token: fresh,
		Status: 200, Seen: "GET /api/orders", Evaluated: []string{"GET /api/orders"}},
	{Name: "route parameter", Method: "GET", Path: "/api/orders/42", Token: stale,
		Status: 200, Seen: "GET /api/orders/{id}", Evaluated: []string{"GET /api/orders/{id}"}},
	{Name: "HEAD is GET", Method: "HEAD", Path: "/api/orders", Token: fresh,
		Status: 200, Seen: "GET /api/orders", Evaluated: []string{"GET /api/orders"}},
	{Name: "HEAD without token", Method: "HEAD", Path: "/api/orders",
		Status: 401, Evaluated: []string{"GET /api/orders"}, Challenge: missing},
	{Name: "missing token", Method: "GET", Path: "/api/orders",
		Status: 401, Evaluated: []string{"GET /api/orders"}, Challenge: missing,
		Code: runtimeid.CodeTokenMissing},
	{Name: "bad token", Method: "GET", Path: "/api/orders/7", Token: bad,
		Status: 401, Evaluated: []string{"GET /api/orders/{id}"}, Challenge: invalid,
		Code: runtimeid.CodeTokenSignature},
	{Name: "high action, stale login", Method: "POST", Path: "/api/transfers", Token: stale,
		Status: 401, Evaluated: []string{"POST /api/transfers"}, Challenge: challenge,
		Code: "stale_authentication"},
	{Name: "high action, fresh login", Method: "POST", Path: "/api/transfers", Token: fresh,
		Status: 200, Seen: "POST /api/transfers", Evaluated: []string{"POST /api/transfers"}},
	{Name: "protected route, stale login", Method: "POST", Path: "/api/payouts", Token: stale,
		Status: 401, Evaluated: []string{"POST /api/payouts", "payout"}, Challenge: challenge,
		Code: "stale_authentication"},
	{Name: "protected route, fresh login", Method: "POST", Path: "/api/payouts", Token: fresh,
		Status: 200, Seen: "payout", Evaluated: []string{"POST /api/payouts", "payout"}},
	{Name: "blocked", Method: "GET", Path: "/api/export", Token: mallory,
		Status: 403, Evaluated: []string{"GET /api/export"}, Code: "blocked_user"},
	{Name: "CORS preflight", Method: "OPTIONS", Path: "/api/orders", Header: preflight,
		Status: 204, Seen: "preflight"},
	{Name: "CORS preflight, no OPTIONS route", Method: "OPTIONS", Path: "/api/export",
		Header: preflight, RouterOwned: true},
	{Name: "OPTIONS that is no preflight", Method: "OPTIONS", Path: "/api/orders",
		Status: 401, Evaluated: []string{"OPTIONS /api/orders"}, Challenge: missing,
		Code: runtimeid.CodeTokenMissing},
	{Name: "WebSocket upgrade without token", Method: "GET", Path: "/ws", Header: upgrade,
		Status: 401, Evaluated: []string{"GET /ws"}, Challenge: missing,
		Code: runtimeid.CodeTokenMissing},
	{Name: "WebSocket upgrade", Method: "GET", Path: "/ws", Header: upgrade, Token: fresh,
		Status: 200, Seen: "GET /ws", Evaluated: []string{"GET /ws"}},
	{Name: "unmatched without token", Method: "GET", Path: "/nope",
		Status: 401, Evaluated: []string{runtimeid.Unmatched}, Challenge: missing,
		Code: runtimeid.CodeTokenMissing},
	{Name: "unmatched", Method: "GET", Path: "/nope", Token: fresh,
		Status: 404, Evaluated: []string{runtimeid.Unmatched}, RouterOwned: true},
	{Name: "method not routed", Method: "POST", Path: "/api/orders",
		Status: 401, Evaluated: []string{runtimeid.Unmatched}, Challenge: missing,
		Code: runtimeid.CodeTokenMissing},
}

// PathTricks are spellings of GET /api/export that no router routes to
// it: each is evaluated as [runtimeid.Unmatched].
var PathTricks = []string{
	"/api//export",
	"/api/./export",
	"/api/x/../export",
	"/API/export",
}

// EncodedTricks are percent-encoded spellings of /api/export. Routers
// differ: chi and echo route on the escaped path and match nothing;
// ServeMux decodes each segment, so "%65" is "e"; gin routes on the
// decoded path unless its UseRawPath is set. Whatever the router does,
// the request is evaluated as the route that runs, GET /api/export, or
// as [runtimeid.Unmatched] when none does.
var EncodedTricks = []string{
	"/api%2Fexport",
	"/api/%65xport",
}

func init() {
	for _, p := range PathTricks {
		Cases = append(Cases,
			Case{Name: "path trick without token " + p, Method: "GET", Path: p,
				Status: 401, Evaluated: []string{runtimeid.Unmatched},
				Challenge: missing, Code: runtimeid.CodeTokenMissing},
			Case{Name: "path trick " + p, Method: "GET", Path: p, Token: fresh,
				Evaluated: []string{runtimeid.Unmatched}, RouterOwned: true})
	}
	for _, p := range EncodedTricks {
		Cases = append(Cases, Case{Name: "encoded path " + p,
			Method: "GET", Path: p, Token: fresh, Either: true})
	}
}

// Run runs every case against the adapter that build makes.
func Run(t *testing.T, build Build) {
	t.Helper()
	fx, err := NewFixture(func() time.Time { return Now })
	require.NoError(t, err)
	tokens := mintAll(t, fx.Issuer)

	srv := httptest.NewServer(build(fx.Engine, Routes))
	t.Cleanup(srv.Close)
	client := srv.Client()
	client.CheckRedirect = func(*http.Request, []*http.Request) error {
		return http.ErrUseLastResponse
	}

	for _, c := range Cases {
		t.Run(c.Name, func(t *testing.T) {
			fx.Evaluated()
			res := do(t, client, srv.URL, c, tokens[c.Token])
			check(t, c, res, fx.Evaluated())
		})
	}
}

func mintAll(t *testing.T, is *demo.Issuer) map[int]string {
	t.Helper()
	grants := map[int]demo.Grant{
		fresh:   {Subject: "alice", AuthTime: Now.Add(-time.Minute)},
		stale:   {Subject: "alice", AuthTime: Now.Add(-time.Hour)},
		mallory: {Subject: "mallory", AuthTime: Now.Add(-time.Minute)},
		bad:     {Subject: "alice", AuthTime: Now.Add(-time.Minute)},
	}
	tokens := map[int]string{}
	for k, g := range grants {
		g.Session, g.Issued = g.Subject+"-1", Now.Add(-time.Minute)
		tok, err := is.Mint(g)
		require.NoError(t, err)
		tokens[k] = tok
	}
	// Another signature of the same length: it decodes, and fails.
	sig := strings.LastIndexByte(tokens[bad], '.') + 1
	tokens[bad] = tokens[bad][:sig] + strings.Repeat("A", len(tokens[bad])-sig)
	return tokens
}

type response struct {
	status int
	header http.Header
	body   []byte
}

func do(t *testing.T, client *http.Client, base string, c Case, token string) response {
	t.Helper()
	req, err := http.NewRequest(c.Method, base+c.Path, nil)
	require.NoError(t, err)
	for k, v := range c.Header {
		req.Header.Set(k, v)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	res, err := client.Do(req)
	require.NoError(t, err)
	defer res.Body.Close()
	body, err := io.ReadAll(res.Body)
	require.NoError(t, err)
	return response{status: res.StatusCode, header: res.Header, body: body}
}

func check(t *testing.T, c Case, res response, evaluated []string) {
	t.Helper()
	if c.Either {
		checkEither(t, res, evaluated)
		return
	}
	if c.Status != 0 {
		assert.Equal(t, c.Status, res.status, "status; body %q", res.body)
	}
	assert.Equal(t, c.Seen, res.header.Get(SeenHeader), "action the handler saw")
	assert.Equal(t, c.Evaluated, evaluated, "evaluated actions")
	assert.Equal(t, c.Challenge, res.header.Get("WWW-Authenticate"))

	problem := res.header.Get("Content-Type") == "application/problem+json"
	switch {
	case c.RouterOwned:
		assert.False(t, problem, "a router-owned response is no refusal")
	case c.Code != "" || c.Status == 401 || c.Status == 403:
		assert.True(t, problem, "Content-Type")
		assert.Equal(t, "no-store", res.header.Get("Cache-Control"))
	case c.Status == 200:
		assert.Equal(t, "text/plain; charset=utf-8", res.header.Get("Content-Type"))
	}
	if c.Method == http.MethodHead {
		assert.Empty(t, res.body, "HEAD has no body")
		return
	}
	if c.Code != "" {
		var p struct{ Code string }
		require.NoError(t, json.Unmarshal(res.body, &p), "body %q", res.body)
		assert.Equal(t, c.Code, p.Code)
	}
	if c.Seen != "" && c.Seen != "preflight" {
		assert.Equal(t, "ok "+c.Seen+"\n", string(res.body))
	}
	if c.Seen == "preflight" {
		assert.Equal(t, AppOrigin, res.header.Get("Access-Control-Allow-Origin"))
	}
}

func checkEither(t *testing.T, res response, evaluated []string) {
	t.Helper()
	seen := res.header.Get(SeenHeader)
	if seen == "" {
		assert.Equal(t, []string{runtimeid.Unmatched}, evaluated)
		assert.NotEqual(t, http.StatusOK, res.status)
		return
	}
	assert.Equal(t, "GET /api/export", seen)
	assert.Equal(t, []string{seen}, evaluated)
	assert.Equal(t, http.StatusOK, res.status)
}
