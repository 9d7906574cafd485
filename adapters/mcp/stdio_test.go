package mcp_test

import (
	"context"
	"errors"
	"maps"
	"net/http"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/lestrrat-go/jwx/v2/jwt"
	"github.com/modelcontextprotocol/go-sdk/jsonrpc"
	sdk "github.com/modelcontextprotocol/go-sdk/mcp"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/runtimeid/runtimeid"
	"github.com/runtimeid/runtimeid/adapters/mcp"
)

// hostToken plays the host application that starts a local MCP server
// and hands it a token: whatever it holds when asked.
type hostToken struct {
	// mu guards the fields below.
	mu    sync.Mutex
	token string
	err   error
	calls int
}

func (h *hostToken) get(context.Context) (string, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.calls++
	return h.token, h.err
}

func (h *hostToken) set(token string, err error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.token, h.err = token, err
}

func (h *hostToken) count() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.calls
}

// clock is the engine's injected time: dpopNow, moved on by add.
type clock struct{ passed atomic.Int64 }

func (c *clock) now() time.Time { return dpopNow.Add(time.Duration(c.passed.Load())) }

func (c *clock) add(d time.Duration) { c.passed.Add(int64(d)) }

// revoked refuses the tokens whose jti it holds, as a validator fed by
// pushed revocations would.
type revoked struct {
	// mu guards ids.
	mu  sync.Mutex
	ids map[string]bool
}

func (r *revoked) Validate(_ context.Context, ev *runtimeid.Evaluation) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.ids[ev.Identity.TokenID] {
		return &runtimeid.TokenError{Code: runtimeid.CodeTokenRevoked,
			Detail: "token revoked"}
	}
	return nil
}

func (r *revoked) revoke(jti string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.ids[jti] = true
}

// rootOnly blocks the admin tool for everyone but root.
type rootOnly struct{}

func (rootOnly) Decide(_ context.Context,
	ev *runtimeid.Evaluation) (runtimeid.Decision, error) {
	if ev.Action.Name == "admin" && ev.Identity.Subject != "root" {
		return runtimeid.Decision{Outcome: runtimeid.Block, Rule: "admin",
			Reason: "admin_only"}, nil
	}
	return runtimeid.Decision{Outcome: runtimeid.Allow, Rule: "default"}, nil
}

// stdioServer is an MCP server reached without HTTP, whose identity
// comes from the host's token.
type stdioServer struct {
	issuer  *esKey
	host    *hostToken
	clock   *clock
	revoked *revoked
	srv     *sdk.Server
	cs      *sdk.ClientSession // after open
}

// newStdioServer verifies ES256 tokens of dpopIssuer for "mcp", with
// a revocation validator, and with the DPoP validator too when dpop.
func newStdioServer(t *testing.T, dpop bool) *stdioServer {
	t.Helper()
	s := &stdioServer{issuer: newESKey(t, "mcp"), host: &hostToken{},
		clock: &clock{}, revoked: &revoked{ids: map[string]bool{}}}
	keys, err := runtimeid.StaticKeys(keySet(t, s.issuer))
	require.NoError(t, err)
	validators := []runtimeid.IdentityValidator{s.revoked}
	if dpop {
		d, err := runtimeid.NewDPoP(runtimeid.DPoPOptions{Now: s.clock.now})
		require.NoError(t, err)
		validators = append(validators, d)
	}
	eng, err := runtimeid.New(runtimeid.Config{
		Token: runtimeid.TokenConfig{Issuer: dpopIssuer,
			Audience: []string{"mcp"}, Keys: keys},
		Validators: validators,
		Policy:     rootOnly{},
		Now:        s.clock.now,
	})
	require.NoError(t, err)
	a, err := mcp.New(mcp.Options{Engine: eng, Policy: rootOnly{},
		Tools: map[string]mcp.Tool{"whoami": {}, "admin": {}}, Token: s.host.get})
	require.NoError(t, err)

	s.srv = sdk.NewServer(&sdk.Implementation{Name: "t", Version: "1"}, nil)
	sdk.AddTool(s.srv, &sdk.Tool{Name: "whoami"}, whoami)
	sdk.AddTool(s.srv, &sdk.Tool{Name: "admin"}, whoami)
	a.Install(s.srv)
	return s
}

// open connects a client, as a host does once it has set the token;
// initialize is evaluated like any request, so it may be refused.
func (s *stdioServer) open(t *testing.T) *jsonrpc.Error {
	t.Helper()
	cs, err := mcp.Dial(t, s.srv)
	if err != nil {
		return rpcError(t, err)
	}
	s.cs = cs
	return nil
}

// mint signs a token for sub with the server's issuer key.
func (s *stdioServer) mint(t *testing.T, sub string, claims map[string]any) string {
	t.Helper()
	all := map[string]any{jwt.SubjectKey: sub, jwt.JwtIDKey: sub + "-1"}
	maps.Copy(all, claims)
	return mint(t, s.issuer, all)
}

// call calls tool and returns its text, or the JSON-RPC error.
func (s *stdioServer) call(t *testing.T, tool string) (string, *jsonrpc.Error) {
	t.Helper()
	res, err := s.cs.CallTool(context.Background(), &sdk.CallToolParams{Name: tool})
	if err != nil {
		return "", rpcError(t, err)
	}
	require.False(t, res.IsError)
	return res.Content[0].(*sdk.TextContent).Text, nil
}

// list returns the names of the listed tools, or the JSON-RPC error.
func (s *stdioServer) list(t *testing.T) ([]string, *jsonrpc.Error) {
	t.Helper()
	res, err := s.cs.ListTools(context.Background(), nil)
	if err != nil {
		return nil, rpcError(t, err)
	}
	var names []string
	for _, tl := range res.Tools {
		names = append(names, tl.Name)
	}
	return names, nil
}

func rpcError(t *testing.T, err error) *jsonrpc.Error {
	t.Helper()
	var re *jsonrpc.Error
	require.ErrorAs(t, err, &re)
	return re
}

// refused is the JSON-RPC error of a call blocked for reason.
func refused(reason string) *jsonrpc.Error {
	return &jsonrpc.Error{Code: mcp.CodeBlocked,
		Message: "runtimeid: blocked: " + reason,
		Data:    []byte(`{"reason":"` + reason + `","outcome":"block"}`)}
}

func TestStdioToken(t *testing.T) {
	other := newESKey(t, "mcp")
	dpopKey := newESKey(t, "")
	bound := map[string]any{"cnf": map[string]any{"jkt": dpopKey.jkt}}
	tests := []struct {
		name  string
		dpop  bool
		token func(*stdioServer) string
		err   error
		tool  string
		text  string
		names []string
		want  *jsonrpc.Error
	}{
		{name: "valid", tool: "whoami", text: "  alice", names: []string{"whoami"},
			token: func(s *stdioServer) string { return s.mint(t, "alice", nil) }},
		{name: "root sees admin", tool: "admin", text: "  root",
			names: []string{"admin", "whoami"},
			token: func(s *stdioServer) string { return s.mint(t, "root", nil) }},
		{name: "white space trimmed", tool: "whoami", text: "  alice",
			names: []string{"whoami"},
			token: func(s *stdioServer) string { return " " + s.mint(t, "alice", nil) + "\n" }},
		{name: "policy blocks", tool: "admin", names: []string{"whoami"},
			token: func(s *stdioServer) string { return s.mint(t, "alice", nil) },
			want:  refused("admin_only")},
		{name: "missing", tool: "whoami", want: refused(runtimeid.CodeTokenMissing),
			token: func(*stdioServer) string { return "" }},
		{name: "host error", tool: "whoami", want: refused(runtimeid.CodeTokenMissing),
			token: func(s *stdioServer) string { return s.mint(t, "alice", nil) },
			err:   errors.New("keychain locked")},
		{name: "malformed", tool: "whoami", want: refused(runtimeid.CodeTokenMalformed),
			token: func(*stdioServer) string { return "not-a-jwt" }},
		{name: "another key", tool: "whoami", want: refused(runtimeid.CodeTokenSignature),
			token: func(*stdioServer) string { return mint(t, other, nil) }},
		{name: "expired", tool: "whoami", want: refused(runtimeid.CodeTokenExpired),
			token: func(s *stdioServer) string {
				return s.mint(t, "alice", map[string]any{
					jwt.ExpirationKey: dpopNow.Add(-time.Hour)})
			}},
		{name: "another audience", tool: "whoami",
			want: refused(runtimeid.CodeTokenAudience),
			token: func(s *stdioServer) string {
				return s.mint(t, "alice", map[string]any{jwt.AudienceKey: "api"})
			}},
		{name: "revoked", tool: "whoami", want: refused(runtimeid.CodeTokenRevoked),
			token: func(s *stdioServer) string {
				s.revoked.revoke("mallory-1")
				return s.mint(t, "mallory", nil)
			}},
		{name: "DPoP-bound", tool: "whoami", want: refused(runtimeid.CodeTokenBinding),
			token: func(s *stdioServer) string { return s.mint(t, "alice", bound) }},
		{name: "DPoP-bound, DPoP validator", dpop: true, tool: "whoami",
			want:  refused(runtimeid.CodeDPoPBindingMismatch),
			token: func(s *stdioServer) string { return s.mint(t, "alice", bound) }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := newStdioServer(t, tt.dpop)
			s.host.set(tt.token(s), tt.err)

			// A token refused for itself refuses the handshake already
			// (the SDK's client tries server/discover, then initialize).
			rpcErr := s.open(t)
			if tt.names == nil {
				assert.Equal(t, tt.want, rpcErr)
				assert.Positive(t, s.host.count())
				return
			}
			require.Nil(t, rpcErr)
			asked := s.host.count()
			text, rpcErr := s.call(t, tt.tool)
			assert.Equal(t, tt.text, text)
			assert.Equal(t, tt.want, rpcErr)

			// tools/list: the same identity.
			names, rpcErr := s.list(t)
			assert.Equal(t, tt.names, names)
			assert.Nil(t, rpcErr)
			assert.Equal(t, asked+2, s.host.count()) // asked again for each
		})
	}
}

// TestStdioTokenExpiresBetweenCalls: the same token is verified again
// on every call, by the engine's clock; the host then rotates it.
func TestStdioTokenExpiresBetweenCalls(t *testing.T) {
	s := newStdioServer(t, false)
	s.host.set(s.mint(t, "alice", nil), nil)
	require.Nil(t, s.open(t))
	text, rpcErr := s.call(t, "whoami")
	require.Nil(t, rpcErr)
	assert.Equal(t, "  alice", text)

	// An hour, and the default clock skew of a minute, later, a call
	// and any other request (ping, resources, prompts) are refused.
	s.clock.add(time.Hour + runtimeid.DefaultClockSkew + time.Second)
	_, rpcErr = s.call(t, "whoami")
	assert.Equal(t, refused(runtimeid.CodeTokenExpired), rpcErr)
	assert.Equal(t, refused(runtimeid.CodeTokenExpired),
		rpcError(t, s.cs.Ping(context.Background(), nil)))

	s.host.set(s.mint(t, "alice", map[string]any{
		jwt.IssuedAtKey: s.clock.now(), jwt.ExpirationKey: s.clock.now().Add(time.Hour)}),
		nil)
	text, rpcErr = s.call(t, "whoami")
	require.Nil(t, rpcErr)
	assert.Equal(t, "  alice", text)
	assert.NoError(t, s.cs.Ping(context.Background(), nil))
}

// TestStdioTokenRevokedBetweenCalls: a revocation refuses a token that
// was allowed, and cached, a call before.
func TestStdioTokenRevokedBetweenCalls(t *testing.T) {
	s := newStdioServer(t, false)
	s.host.set(s.mint(t, "alice", nil), nil)
	require.Nil(t, s.open(t))
	_, rpcErr := s.call(t, "whoami")
	require.Nil(t, rpcErr)

	s.revoked.revoke("alice-1")
	_, rpcErr = s.call(t, "whoami")
	assert.Equal(t, refused(runtimeid.CodeTokenRevoked), rpcErr)
}

// TestHTTPNeverUsesHostToken: a request that came over HTTP is
// identified by its own token, with or without [mcp.Adapter.Handler],
// however valid the host's token.
func TestHTTPNeverUsesHostToken(t *testing.T) {
	host := &hostToken{}
	s := newDPoPServer(t, host.get)
	host.set(s.token("host", ""), nil)

	tests := []struct {
		name, url, token string
		text             string
		want             *jsonrpc.Error
	}{
		{"handler, bearer", s.url, s.token("bob", ""), "Bearer Bearer bob", nil},
		{"no handler, bearer", s.rawURL, s.token("bob", ""), "Bearer  bob", nil},
		{"no handler, no token", s.rawURL, "", "",
			refused(runtimeid.CodeTokenMissing)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cs, err := s.connectTo(tt.url, &authTransport{token: tt.token})
			require.NoError(t, err)
			defer cs.Close()
			res, err := cs.CallTool(context.Background(),
				&sdk.CallToolParams{Name: "whoami"})
			if tt.want != nil {
				assert.Equal(t, tt.want, rpcError(t, err))
				return
			}
			require.NoError(t, err)
			assert.Equal(t, tt.text, res.Content[0].(*sdk.TextContent).Text)
		})
	}

	// Without a token, the handler refuses the request itself.
	status, _ := s.post(whoamiBody, http.Header{})
	assert.Equal(t, http.StatusUnauthorized, status)
	assert.Zero(t, host.count())
}
