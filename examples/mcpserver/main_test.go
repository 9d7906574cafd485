package main

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/modelcontextprotocol/go-sdk/jsonrpc"
	sdk "github.com/modelcontextprotocol/go-sdk/mcp"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/runtimeid/runtimeid"
	"github.com/runtimeid/runtimeid/examples/mcpserver/shop"
)

func TestFlags(t *testing.T) {
	args := []string{"-addr", "127.0.0.1:9", "-trusted-proxies", "10.0.0.0/8"}
	o, err := parseFlags(args, io.Discard)
	require.NoError(t, err)
	assert.Equal(t, options{addr: "127.0.0.1:9", issuer: demoIssuer,
		audience: demoAudience, trustedProxies: "10.0.0.0/8"}, o)

	err = run([]string{"-stdio"}, strings.NewReader(""), io.Discard, io.Discard,
		func(string) string { return "" })
	assert.EqualError(t, err, "-stdio needs -jwks: a key made at start "+
		"cannot have signed the token in $RUNTIMEID_TOKEN")
}

func TestMCPNeedsAToken(t *testing.T) {
	iss, err := shop.NewIssuer(demoIssuer, demoAudience)
	require.NoError(t, err)
	keys, err := runtimeid.StaticKeys(iss.Public)
	require.NoError(t, err)
	s, err := shop.New(shop.Config{Keys: keys, Issuer: demoIssuer, Audience: demoAudience})
	require.NoError(t, err)
	srv := httptest.NewServer(s.Handler)
	defer srv.Close()

	body := `{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"list_orders"}}`
	resp, err := http.Post(srv.URL+"/mcp", "application/json", strings.NewReader(body))
	require.NoError(t, err)
	resp.Body.Close()
	assert.Equal(t, http.StatusUnauthorized, resp.StatusCode)
	assert.Equal(t, `Bearer realm="shop"`, resp.Header.Get("WWW-Authenticate"))
}

// startStdio runs the server with args on pipes, RUNTIMEID_TOKEN set
// to token, and connects a client to it, as a host application would.
// The error is the server's answer to the handshake, which is evaluated
// like every request.
func startStdio(t *testing.T, args []string, token string) (*sdk.ClientSession, error) {
	t.Helper()
	inR, inW := io.Pipe()
	outR, outW := io.Pipe()
	getenv := func(name string) string {
		if name == tokenEnv {
			return token
		}
		return ""
	}
	done := make(chan error, 1)
	go func() {
		done <- run(args, inR, outW, io.Discard, getenv)
		outW.Close()
	}()
	ct := &sdk.IOTransport{Reader: outR, Writer: inW}
	cs, err := sdk.NewClient(&sdk.Implementation{Name: "host", Version: "1"}, nil).
		Connect(context.Background(), ct, nil)
	if err != nil {
		inW.Close() // the server sees its input end
		<-done
		return nil, err
	}
	t.Cleanup(func() {
		cs.Close()
		assert.NoError(t, <-done)
	})
	return cs, nil
}

func TestStdio(t *testing.T) {
	iss, err := shop.NewIssuer(demoIssuer, demoAudience)
	require.NoError(t, err)
	raw, err := json.Marshal(iss.Public)
	require.NoError(t, err)
	jwks := filepath.Join(t.TempDir(), "jwks.json")
	require.NoError(t, os.WriteFile(jwks, raw, 0o600))
	agent, err := iss.Mint(shop.Grant{Subject: "alice", SessionID: "alice-1",
		Issued: time.Now(), Actor: "agent-7", ActorClient: "orders-assistant"})
	require.NoError(t, err)

	tests := []struct {
		name, token, subject string
		want                 *jsonrpc.Error
	}{
		{name: "agent token", token: agent, subject: "alice"},
		{name: "no token", want: &jsonrpc.Error{Code: -32060,
			Message: "runtimeid: blocked: token_missing",
			Data:    []byte(`{"reason":"token_missing","outcome":"block"}`)}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cs, err := startStdio(t, []string{"-stdio", "-jwks", jwks}, tt.token)
			if tt.want != nil {
				// Without a token not even the handshake is answered.
				var got *jsonrpc.Error
				require.ErrorAs(t, err, &got)
				assert.Equal(t, tt.want, got)
				return
			}
			require.NoError(t, err)
			res, err := cs.CallTool(context.Background(),
				&sdk.CallToolParams{Name: "list_orders"})
			require.NoError(t, err)
			page := res.StructuredContent.(map[string]any)
			assert.Equal(t, tt.subject, page["subject"])
			assert.Len(t, page["items"], shop.OrdersPerPage)
		})
	}
}
