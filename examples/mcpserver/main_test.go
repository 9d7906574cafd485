package main

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

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
