package decision

import (
	"net/http/httptest"
	"testing"

	"github.com/stretchr/testify/assert"

	"github.com/runtimeid/runtimeid"
)

// fakeDPoP stands in for a *runtimeid.DPoP.
type fakeDPoP struct {
	nonce    string
	required bool
}

func (f fakeDPoP) Algs() []string { return []string{"ES256", "PS256"} }
func (f fakeDPoP) Nonce() string  { return f.nonce }
func (f fakeDPoP) Required() bool { return f.required }

var _ DPoPChallenger = (*runtimeid.DPoP)(nil)

func TestDPoPChallenges(t *testing.T) {
	withScheme := func(ev *runtimeid.Evaluation, scheme string) *runtimeid.Evaluation {
		ev.Credential.Scheme = scheme
		return ev
	}
	const both = `Bearer realm="api", DPoP realm="api", algs="ES256 PS256"`
	tests := []struct {
		name   string
		dpop   DPoPChallenger
		ev     *runtimeid.Evaluation
		status int
		auth   string
		nonce  string
	}{
		{name: "no token", dpop: fakeDPoP{}, status: 401, auth: both,
			ev: tokenErr(runtimeid.CodeTokenMissing, "no access token")},
		{name: "bad bearer token", dpop: fakeDPoP{}, status: 401,
			ev: withScheme(tokenErr(runtimeid.CodeTokenExpired, "token expired"), "Bearer"),
			auth: `Bearer realm="api", error="invalid_token", ` +
				`error_description="token expired", DPoP realm="api", algs="ES256 PS256"`},
		{name: "bad DPoP token", dpop: fakeDPoP{}, status: 401,
			ev:   withScheme(tokenErr(runtimeid.CodeTokenExpired, "token expired"), "DPoP"),
			auth: both + `, error="invalid_token", error_description="token expired"`},
		{name: "invalid proof", dpop: fakeDPoP{}, status: 401,
			ev: withScheme(tokenErr(runtimeid.CodeDPoPProofInvalid, "DPoP proof too old"), "DPoP"),
			auth: both + `, error="invalid_dpop_proof", ` +
				`error_description="DPoP proof too old"`},
		{name: "replayed proof", dpop: fakeDPoP{}, status: 401,
			ev: withScheme(tokenErr(runtimeid.CodeDPoPProofReplayed, "DPoP proof already used"),
				"DPoP"),
			auth: both + `, error="invalid_dpop_proof", ` +
				`error_description="DPoP proof already used"`},
		{name: "nonce", dpop: fakeDPoP{nonce: "n-1"}, status: 401, nonce: "n-1",
			ev:   withScheme(tokenErr(runtimeid.CodeDPoPNonceRequired, "needs nonce"), "DPoP"),
			auth: both + `, error="use_dpop_nonce", error_description="needs nonce"`},
		{name: "required", dpop: fakeDPoP{required: true}, status: 401,
			ev: withScheme(tokenErr(runtimeid.CodeDPoPRequired, "DPoP proof required"), "Bearer"),
			auth: `DPoP realm="api", algs="ES256 PS256", error="invalid_token", ` +
				`error_description="DPoP proof required"`},
		{name: "required, no token", dpop: fakeDPoP{required: true}, status: 401,
			ev:   tokenErr(runtimeid.CodeTokenMissing, "no access token"),
			auth: `DPoP realm="api", algs="ES256 PS256"`},
		{name: "DPoP scheme without a DPoP validator", status: 401,
			ev: withScheme(tokenErr(runtimeid.CodeTokenBinding, "DPoP proof not verified"), "DPoP"),
			auth: `Bearer realm="api", DPoP realm="api", error="invalid_token", ` +
				`error_description="DPoP proof not verified"`},
		{name: "replay cache down", dpop: fakeDPoP{}, status: 503,
			ev: withScheme(tokenErr(runtimeid.CodeDPoPReplayUnchecked, "not checked"), "DPoP")},
		{name: "step-up over DPoP", dpop: fakeDPoP{}, status: 401,
			ev: withScheme(decided(runtimeid.Challenge, "new_device",
				&runtimeid.StepUp{ACRValues: []string{"urn:mfa"}}), "DPoP"),
			auth: `DPoP realm="api", error="insufficient_user_authentication", ` +
				`error_description="step-up authentication required: new_device", ` +
				`acr_values="urn:mfa"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := enforcer(t, Options{Realm: "api", DPoP: tt.dpop})
			w := httptest.NewRecorder()
			assert.False(t, e.Enforce(w, httptest.NewRequest("GET", "/", nil), tt.ev))
			assert.Equal(t, tt.status, w.Code)
			assert.Equal(t, tt.auth, w.Header().Get("WWW-Authenticate"))
			assert.Equal(t, tt.nonce, w.Header().Get("DPoP-Nonce"))
			assert.NotContains(t, w.Body.String(), "secret internals")
		})
	}
}

func TestDPoPNonceOnAllow(t *testing.T) {
	e := enforcer(t, Options{DPoP: fakeDPoP{nonce: "n-2"}})
	ev := decided(runtimeid.Allow, "default", nil)
	for scheme, want := range map[string]string{"DPoP": "n-2", "Bearer": ""} {
		ev.Credential.Scheme = scheme
		w := httptest.NewRecorder()
		assert.True(t, e.Enforce(w, httptest.NewRequest("GET", "/", nil), ev))
		assert.Equal(t, want, w.Header().Get("DPoP-Nonce"), scheme)
	}
}
