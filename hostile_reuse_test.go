package runtimeid_test

import (
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/runtimeid/runtimeid"
	"github.com/runtimeid/runtimeid/internal/conformance"
	"github.com/runtimeid/runtimeid/internal/conformance/demo"
)

// nestedProbe records the evaluation a protected handler was reached
// with.
type nestedProbe struct{ ev *runtimeid.Evaluation }

func (p *nestedProbe) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	p.ev = runtimeid.FromContext(r.Context())
	w.WriteHeader(http.StatusNoContent)
}

// TestNestedRefusesWhatFreshRefuses puts a Protect-wrapped handler
// behind the same engine's middleware, and changes the request or the
// clock in between, as a handler that dispatches inner requests with
// its own context (a batch endpoint, a long-lived connection) does. The
// nested evaluation must refuse whatever a fresh one would: it reuses a
// verified identity, not an arbitrary one.
func TestNestedRefusesWhatFreshRefuses(t *testing.T) {
	now := conformance.Now
	tests := []struct {
		name   string
		outer  []runtimeid.RouteOption
		query  bool // the token is sent as access_token
		change func(c *clock, r *http.Request)
		status int
		reason string
	}{
		{name: "token expired since the middleware verified it",
			change: func(c *clock, _ *http.Request) { c.set(now.Add(2 * time.Hour)) },
			status: 401, reason: runtimeid.CodeTokenExpired},
		{name: "authorization header replaced",
			change: func(_ *clock, r *http.Request) {
				r.Header.Set("Authorization", "Bearer not.a.token")
			},
			status: 401, reason: runtimeid.CodeTokenMalformed},
		{name: "authorization header removed",
			change: func(_ *clock, r *http.Request) { r.Header.Del("Authorization") },
			status: 401, reason: runtimeid.CodeTokenMissing},
		{name: "query token where the inner route refuses it",
			outer: []runtimeid.RouteOption{runtimeid.AllowQueryToken()}, query: true,
			change: func(*clock, *http.Request) {},
			status: 400, reason: runtimeid.CodeRequestInvalid},
		{name: "nothing changed", change: func(*clock, *http.Request) {},
			status: 204, reason: "default"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			fx, c := fixture(t)
			tok, err := fx.Issuer.Mint(demo.Grant{Subject: "alice", Issued: now})
			require.NoError(t, err)
			probe := &nestedProbe{}
			inner := fx.Engine.Protect("inner", runtimeid.Low)(probe)
			var innerEv *runtimeid.Evaluation
			mid := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				tt.change(c, r)
				rec := &evRecorder{ResponseWriter: w}
				inner.ServeHTTP(rec, r)
				innerEv = probe.ev
			})
			h := fx.Engine.Protect("outer", runtimeid.Low, tt.outer...)(mid)

			r := httptest.NewRequest("GET", "/api/orders", nil)
			if tt.query {
				r = httptest.NewRequest("GET", "/api/orders?access_token="+tok, nil)
			} else {
				r.Header.Set("Authorization", "Bearer "+tok)
			}
			w := httptest.NewRecorder()
			h.ServeHTTP(w, r)

			assert.Equal(t, tt.status, w.Code)
			if tt.status == 204 {
				require.NotNil(t, innerEv)
				assert.True(t, innerEv.Nested)
				assert.Equal(t, tt.reason, innerEv.Decision.Reason)
			} else {
				assert.True(t, innerEv == nil, "the protected handler ran")
			}
		})
	}
}

// evRecorder passes writes through.
type evRecorder struct{ http.ResponseWriter }
