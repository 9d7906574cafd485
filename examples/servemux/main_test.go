package main

import (
	"net/http/httptest"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/runtimeid/runtimeid/internal/conformance/demo"
)

func TestRouter(t *testing.T) {
	is, err := demo.NewIssuer()
	require.NoError(t, err)
	eng, err := demo.NewEngine(is, nil, nil)
	require.NoError(t, err)
	fresh, stale, err := is.Tokens(time.Now())
	require.NoError(t, err)
	h := newRouter(eng)

	tests := []struct {
		method, path, token string
		status              int
		body                string
	}{
		{"GET", "/api/orders/42", stale, 200, "order 42 for alice (action \"GET /api/orders/{id}\")\n"},
		{"POST", "/api/transfers", stale, 401, ""},
		{"POST", "/api/transfers", fresh, 200, "transfer accepted\n"},
		{"GET", "/api/export", stale, 401, ""},
		{"GET", "/api/export", fresh, 200, "export started\n"},
		{"GET", "/nope", "", 401, ""},
	}
	for _, tt := range tests {
		r := httptest.NewRequest(tt.method, tt.path, nil)
		if tt.token != "" {
			r.Header.Set("Authorization", "Bearer "+tt.token)
		}
		w := httptest.NewRecorder()
		h.ServeHTTP(w, r)
		assert.Equal(t, tt.status, w.Code, "%s %s", tt.method, tt.path)
		if tt.body != "" {
			assert.Equal(t, tt.body, w.Body.String())
		}
	}
}
