package main

import (
	"bytes"
	"context"
	"net/http"
	"testing"
	"time"

	"github.com/open-policy-agent/opa/v1/rego"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestContendersServeTheRequest checks that every stack lets the shared
// request through, so that none is measured on its refusal path.
func TestContendersServeTheRequest(t *testing.T) {
	f, err := newFixture("../..")
	require.NoError(t, err)
	cs, err := contenders(context.Background(), f)
	require.NoError(t, err)
	require.Len(t, cs, 6)
	rec := &recorder{header: http.Header{}}
	for _, c := range cs {
		for range 2 { // the second time from runtimeid's token cache
			require.NoError(t, serve(c.handler, f.request(), rec), c.name)
		}
	}
}

// TestPoliciesRefuseMissingScope checks that the Rego policy and the CEL
// policy agree on a token without the orders:read scope, and on one of an
// unknown client.
func TestPoliciesRefuseMissingScope(t *testing.T) {
	ctx := context.Background()
	pq, err := prepareOPA(ctx)
	require.NoError(t, err)
	tests := []struct {
		name   string
		claims map[string]any
		want   string
	}{
		{"good", map[string]any{"scope": "orders:read", "client_id": "web"}, "allow"},
		{"no scope", map[string]any{"scope": "orders:write", "client_id": "web"}, "block"},
		{"other client", map[string]any{"scope": "orders:read", "client_id": "cli"}, "block"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			in := opaInput(&http.Request{Method: http.MethodGet}, tt.claims)
			rs, err := pq.Eval(ctx, rego.EvalInput(in))
			require.NoError(t, err)
			require.Len(t, rs, 1)
			assert.Equal(t, tt.want, rs[0].Expressions[0].Value)
		})
	}
}

func TestLoadRefusesOtherHosts(t *testing.T) {
	var out bytes.Buffer
	err := load(&out, "http://192.0.2.1/api/orders", 1, time.Second)
	require.EqualError(t, err, "load: the target must be a loopback address")
	err = load(&out, "http://127.0.0.1:1/api/orders", 1000, time.Second)
	require.EqualError(t, err, "load: -c must be 1..256 and -d at most 2m")
}
