package mcp_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"io"
	"maps"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/lestrrat-go/jwx/v2/jwa"
	"github.com/lestrrat-go/jwx/v2/jwk"
	"github.com/lestrrat-go/jwx/v2/jws"
	"github.com/lestrrat-go/jwx/v2/jwt"
	sdk "github.com/modelcontextprotocol/go-sdk/mcp"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/runtimeid/runtimeid"
	"github.com/runtimeid/runtimeid/adapters/mcp"
	"github.com/runtimeid/runtimeid/decision"
)

const (
	dpopIssuer = "https://idp.mcp.example"
	dpopRealm  = `Bearer realm="mcp", DPoP realm="mcp", algs="ES256"`
)

var dpopNow = time.Date(2026, 12, 4, 12, 0, 0, 0, time.UTC)

// allowAll is a policy that allows every action.
type allowAll struct{}

func (allowAll) Decide(context.Context, *runtimeid.Evaluation) (runtimeid.Decision, error) {
	return runtimeid.Decision{Outcome: runtimeid.Allow, Rule: "all"}, nil
}

// dpopServer is an MCP server over streamable HTTP behind the adapter,
// with an engine that verifies ES256 tokens and DPoP proofs.
type dpopServer struct {
	t      *testing.T
	issuer *esKey
	url    string

	// rawURL serves the same server without [mcp.Adapter.Handler]:
	// only the middleware checks its calls.
	rawURL string
}

// newDPoPServer starts the server; hostToken is the adapter's
// [mcp.Options.Token].
func newDPoPServer(t *testing.T,
	hostToken func(context.Context) (string, error)) *dpopServer {
	t.Helper()
	s := &dpopServer{t: t, issuer: newESKey(t, "mcp")}
	keys, err := runtimeid.StaticKeys(keySet(t, s.issuer))
	require.NoError(t, err)

	now := func() time.Time { return dpopNow }
	d, err := runtimeid.NewDPoP(runtimeid.DPoPOptions{Algs: []string{"ES256"}, Now: now})
	require.NoError(t, err)
	enf, err := decision.NewEnforcer(decision.Options{Realm: "mcp", DPoP: d})
	require.NoError(t, err)
	eng, err := runtimeid.New(runtimeid.Config{
		Token: runtimeid.TokenConfig{Issuer: dpopIssuer,
			Audience: []string{"mcp"}, Keys: keys},
		Validators: []runtimeid.IdentityValidator{d},
		Policy:     allowAll{},
		Enforcer:   enf,
		Now:        now,
	})
	require.NoError(t, err)
	a, err := mcp.New(mcp.Options{Engine: eng, Enforcer: enf, Token: hostToken})
	require.NoError(t, err)

	srv := sdk.NewServer(&sdk.Implementation{Name: "t", Version: "1"}, nil)
	sdk.AddTool(srv, &sdk.Tool{Name: "whoami"}, whoami)
	a.Install(srv)
	h := sdk.NewStreamableHTTPHandler(func(*http.Request) *sdk.Server { return srv }, nil)
	mux := http.NewServeMux()
	mux.Handle("/mcp", a.Handler(h))
	mux.Handle("/raw", h)
	hs := httptest.NewServer(mux)
	t.Cleanup(hs.Close)
	s.url, s.rawURL = hs.URL+"/mcp", hs.URL+"/raw"
	return s
}

// whoami answers with the Authorization scheme the tool handler sees,
// the credential's scheme and the subject. Without HTTP, both schemes
// are "".
func whoami(ctx context.Context, req *sdk.CallToolRequest,
	_ struct{}) (*sdk.CallToolResult, any, error) {
	var scheme string
	if req.Extra != nil {
		scheme, _, _ = strings.Cut(req.Extra.Header.Get("Authorization"), " ")
	}
	ev := runtimeid.FromContext(ctx)
	text := scheme + " " + ev.Credential.Scheme + " " + ev.Identity.Subject
	return &sdk.CallToolResult{Content: []sdk.Content{&sdk.TextContent{Text: text}}}, nil, nil
}

// token mints an access token for sub, bound to jkt unless it is "".
func (s *dpopServer) token(sub, jkt string) string {
	claims := map[string]any{jwt.SubjectKey: sub}
	if jkt != "" {
		claims["cnf"] = map[string]any{"jkt": jkt}
	}
	return mint(s.t, s.issuer, claims)
}

// mint signs an access token of dpopIssuer for the audience "mcp",
// issued at dpopNow and expiring an hour later; claims add to these
// or replace them.
func mint(t *testing.T, key *esKey, claims map[string]any) string {
	t.Helper()
	all := map[string]any{
		jwt.IssuerKey: dpopIssuer, jwt.AudienceKey: "mcp",
		jwt.IssuedAtKey: dpopNow, jwt.ExpirationKey: dpopNow.Add(time.Hour),
	}
	maps.Copy(all, claims)
	tok := jwt.New()
	for name, v := range all {
		require.NoError(t, tok.Set(name, v))
	}
	signed, err := jwt.Sign(tok, jwt.WithKey(jwa.ES256, key.priv))
	require.NoError(t, err)
	return string(signed)
}

// keySet is the public key of k, as a key source's set.
func keySet(t *testing.T, k *esKey) jwk.Set {
	t.Helper()
	set := jwk.NewSet()
	require.NoError(t, set.AddKey(k.public))
	return set
}

// esKey is a fresh P-256 key: the issuer's, or a client's DPoP key.
type esKey struct {
	priv   jwk.Key
	public jwk.Key
	jkt    string
}

// newESKey makes a key named kid, or unnamed when kid is "".
func newESKey(t *testing.T, kid string) *esKey {
	t.Helper()
	raw, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	require.NoError(t, err)
	k := &esKey{}
	k.priv, err = jwk.FromRaw(raw)
	require.NoError(t, err)
	if kid != "" {
		require.NoError(t, k.priv.Set(jwk.KeyIDKey, kid))
	}
	k.public, err = k.priv.PublicKey()
	require.NoError(t, err)
	k.jkt, err = runtimeid.JWKThumbprint(k.public)
	require.NoError(t, err)
	return k
}

// proof signs a DPoP proof (RFC 9449 section 4.2) for a request to
// htu with method, carrying token.
func (k *esKey) proof(method, htu, token string) (string, error) {
	sum := sha256.Sum256([]byte(token))
	claims, err := json.Marshal(map[string]any{
		"jti": rand.Text(), "htm": method, "htu": htu, "iat": dpopNow.Unix(),
		"ath": base64.RawURLEncoding.EncodeToString(sum[:]),
	})
	if err != nil {
		return "", err
	}
	hdr := jws.NewHeaders()
	for name, v := range map[string]any{
		jws.TypeKey: "dpop+jwt", jws.JWKKey: k.public,
	} {
		if err := hdr.Set(name, v); err != nil {
			return "", err
		}
	}
	signed, err := jws.Sign(claims,
		jws.WithKey(jwa.ES256, k.priv, jws.WithProtectedHeaders(hdr)))
	return string(signed), err
}

// authTransport sends every request with a token: with the DPoP
// scheme and a fresh proof when key is set, as a bearer token
// otherwise, and with none when token is "". It keeps the headers of the last POST it sent (the
// standalone SSE stream is a GET, sent concurrently).
type authTransport struct {
	token string
	key   *esKey

	// mu guards last.
	mu   sync.Mutex
	last http.Header
}

func (tr *authTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	r = r.Clone(r.Context())
	switch {
	case tr.token == "":
	case tr.key == nil:
		r.Header.Set("Authorization", "Bearer "+tr.token)
	default:
		htu := *r.URL
		htu.RawQuery, htu.Fragment = "", ""
		p, err := tr.key.proof(r.Method, htu.String(), tr.token)
		if err != nil {
			return nil, err
		}
		r.Header.Set("Authorization", "DPoP "+tr.token)
		r.Header.Set("DPoP", p)
	}
	if r.Method == http.MethodPost {
		tr.mu.Lock()
		tr.last = r.Header.Clone()
		tr.mu.Unlock()
	}
	return http.DefaultTransport.RoundTrip(r)
}

func (tr *authTransport) lastPost() http.Header {
	tr.mu.Lock()
	defer tr.mu.Unlock()
	return tr.last.Clone()
}

// connect opens an MCP session over streamable HTTP through tr.
func (s *dpopServer) connect(tr *authTransport) (*sdk.ClientSession, error) {
	return s.connectTo(s.url, tr)
}

// connectTo opens an MCP session with the endpoint url through tr.
func (s *dpopServer) connectTo(url string,
	tr *authTransport) (*sdk.ClientSession, error) {
	ct := &sdk.StreamableClientTransport{Endpoint: url,
		HTTPClient: &http.Client{Transport: tr}, MaxRetries: -1}
	c := sdk.NewClient(&sdk.Implementation{Name: "c", Version: "1"}, nil)
	return c.Connect(context.Background(), ct, nil)
}

func callWhoami(t *testing.T, cs *sdk.ClientSession) string {
	t.Helper()
	res, err := cs.CallTool(context.Background(), &sdk.CallToolParams{Name: "whoami"})
	require.NoError(t, err)
	require.False(t, res.IsError)
	require.Len(t, res.Content, 1)
	return res.Content[0].(*sdk.TextContent).Text
}

// post sends a JSON-RPC body with the given headers and returns the
// status and WWW-Authenticate header of the answer.
func (s *dpopServer) post(body string, hdr http.Header) (int, string) {
	req, err := http.NewRequest("POST", s.url, strings.NewReader(body))
	require.NoError(s.t, err)
	req.Header = hdr.Clone()
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json, text/event-stream")
	resp, err := http.DefaultClient.Do(req)
	require.NoError(s.t, err)
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, resp.Body)
	return resp.StatusCode, resp.Header.Get("WWW-Authenticate")
}

const (
	initBody = `{"jsonrpc":"2.0","id":1,"method":"initialize","params":` +
		`{"protocolVersion":"2025-06-18","capabilities":{},` +
		`"clientInfo":{"name":"c","version":"1"}}}`
	whoamiBody = `{"jsonrpc":"2.0","id":9,"method":"tools/call",` +
		`"params":{"name":"whoami","arguments":{}}}`
)

func TestStreamableSessionSchemes(t *testing.T) {
	s := newDPoPServer(t, nil)
	key := newESKey(t, "")
	tests := []struct {
		name string
		tr   *authTransport
		want string
	}{
		{"DPoP-bound token", &authTransport{token: s.token("alice", key.jkt), key: key},
			"DPoP DPoP alice"},
		{"bearer token", &authTransport{token: s.token("bob", "")},
			"Bearer Bearer bob"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cs, err := s.connect(tt.tr)
			require.NoError(t, err)
			require.NotEmpty(t, cs.ID())

			// Two calls on the session: each request of the
			// session passes the SDK's user check.
			assert.Equal(t, tt.want, callWhoami(t, cs))
			assert.Equal(t, tt.want, callWhoami(t, cs))
			assert.Equal(t, cs.ID(), tt.tr.lastPost().Get("Mcp-Session-Id"))
			require.NoError(t, cs.Close())
		})
	}
}

func TestStreamableDPoPRefusals(t *testing.T) {
	s := newDPoPServer(t, nil)
	key := newESKey(t, "")
	bound := s.token("alice", key.jkt)
	tr := &authTransport{token: bound, key: key}
	cs, err := s.connect(tr)
	require.NoError(t, err)
	t.Cleanup(func() { cs.Close() })
	assert.Equal(t, "DPoP DPoP alice", callWhoami(t, cs))
	used := tr.lastPost()
	require.NotEmpty(t, used.Get("DPoP"))

	bearer := used.Clone()
	bearer.Del("DPoP")
	bearer.Set("Authorization", "Bearer "+bound)

	// Bob, with his own key and a valid proof, on Alice's session.
	bobKey := newESKey(t, "")
	bobToken := s.token("bob", bobKey.jkt)
	bobProof, err := bobKey.proof("POST", s.url, bobToken)
	require.NoError(t, err)
	bob := used.Clone()
	bob.Set("Authorization", "DPoP "+bobToken)
	bob.Set("DPoP", bobProof)

	tests := []struct {
		name   string
		body   string
		hdr    http.Header
		status int
		auth   string
	}{
		{"replayed proof", whoamiBody, used, http.StatusUnauthorized, dpopRealm +
			`, error="invalid_dpop_proof", error_description="DPoP proof already used"`},
		{"bound token as bearer", initBody, bearer, http.StatusUnauthorized,
			dpopRealm + `, error="invalid_token", ` +
				`error_description="DPoP-bound token sent without the DPoP scheme"`},
		{"another user's session", whoamiBody, bob, http.StatusForbidden, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			status, auth := s.post(tt.body, tt.hdr)
			assert.Equal(t, tt.status, status)
			assert.Equal(t, tt.auth, auth)
		})
	}

	// The session survives the refusals.
	assert.Equal(t, "DPoP DPoP alice", callWhoami(t, cs))
}
