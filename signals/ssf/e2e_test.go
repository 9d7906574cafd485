package ssf_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/lestrrat-go/jwx/v2/jwa"
	"github.com/lestrrat-go/jwx/v2/jwk"
	"github.com/lestrrat-go/jwx/v2/jwt"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/runtimeid/runtimeid"
	"github.com/runtimeid/runtimeid/decision"
	"github.com/runtimeid/runtimeid/policy"
	"github.com/runtimeid/runtimeid/signals/ssf"
)

// The end-to-end tests run a real engine behind an HTTP server, with
// the default policy and the ssf validator, collector and evaluator. A
// transmitter of the test's own, whose JWKS is served on loopback,
// pushes each event type to the receiver mounted at POST /ssf/events;
// the test asserts what the next request meets.

const (
	e2eTokenIssuer = "https://idp.e2e.example"
	e2eAudience    = "orders-api"
	e2eTxIssuer    = "https://idp.e2e.example/ssf"
	e2eRxAudience  = "https://orders.e2e.example/ssf"
)

var e2eStart = time.Date(2026, 12, 4, 12, 0, 0, 0, time.UTC)

func newES256(t *testing.T, kid string) (priv jwk.Key, public jwk.Set) {
	t.Helper()
	ec, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	require.NoError(t, err)
	priv, err = jwk.FromRaw(ec)
	require.NoError(t, err)
	require.NoError(t, priv.Set(jwk.KeyIDKey, kid))
	require.NoError(t, priv.Set(jwk.AlgorithmKey, jwa.ES256))
	pub, err := priv.PublicKey()
	require.NoError(t, err)
	public = jwk.NewSet()
	require.NoError(t, public.AddKey(pub))
	return priv, public
}

// deviceHeader stands in for a device collector.
type deviceHeader struct{}

func (deviceHeader) Collect(_ context.Context, ev *runtimeid.Evaluation) error {
	ev.Signals.Device.ID = ev.Request.Header.Get("X-Device-ID")
	return nil
}

type e2e struct {
	t        *testing.T
	now      atomic.Int64
	tokenKey jwk.Key
	srv      *httptest.Server
	rx       *ssf.Receiver
	tx       *ssf.Transmitter
	pushed   chan int // status of each push the receiver answered
}

func newE2E(t *testing.T) *e2e {
	t.Helper()
	s := &e2e{t: t, pushed: make(chan int, 16)}
	s.now.Store(e2eStart.UnixNano())
	clock := func() time.Time { return time.Unix(0, s.now.Load()).UTC() }

	// The identity provider's token key, and its SET key, whose JWKS
	// it serves on loopback.
	var tokenSet jwk.Set
	s.tokenKey, tokenSet = newES256(t, "tok-1")
	setKey, setJWKS := newES256(t, "set-1")
	jwksSrv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(setJWKS)
	}))
	t.Cleanup(jwksSrv.Close)
	txKeys, err := runtimeid.RemoteKeys(t.Context(), jwksSrv.URL, runtimeid.RemoteKeysOptions{Client: jwksSrv.Client()})
	require.NoError(t, err)
	t.Cleanup(func() { txKeys.Close() })
	tokenKeys, err := runtimeid.StaticKeys(tokenSet)
	require.NoError(t, err)

	state := ssf.NewState(ssf.StateOptions{})
	s.rx, err = ssf.NewReceiver(ssf.ReceiverOptions{
		Issuer: e2eTxIssuer, Audience: e2eRxAudience, Keys: txKeys, State: state, Now: clock,
	})
	require.NoError(t, err)
	enforcer, err := decision.NewEnforcer(decision.Options{Realm: "api"})
	require.NoError(t, err)
	eng, err := runtimeid.New(runtimeid.Config{
		Token:      runtimeid.TokenConfig{Issuer: e2eTokenIssuer, Audience: []string{e2eAudience}, Keys: tokenKeys},
		Validators: []runtimeid.IdentityValidator{ssf.NewValidator(state)},
		Collectors: []runtimeid.SignalCollector{deviceHeader{}, ssf.NewCollector(state)},
		Evaluators: []runtimeid.RiskEvaluator{ssf.NewEvaluator(state)},
		Policy:     policy.Default(),
		Enforcer:   enforcer,
		Now:        clock,
	})
	require.NoError(t, err)

	mux := http.NewServeMux()
	mux.Handle("GET /api/orders", eng.Protect("orders.list", runtimeid.Low)(http.HandlerFunc(
		func(w http.ResponseWriter, r *http.Request) {
			ev := runtimeid.FromContext(r.Context())
			json.NewEncoder(w).Encode(map[string]any{
				"findings": ev.Assessment.Codes(), "ssf": ev.Signals.Custom["ssf"],
			})
		})))
	mux.Handle("POST /ssf/events", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		rec := httptest.NewRecorder()
		s.rx.ServeHTTP(rec, r)
		for k, v := range rec.Header() {
			w.Header()[k] = v
		}
		w.WriteHeader(rec.Code)
		w.Write(rec.Body.Bytes())
		s.pushed <- rec.Code
	}))
	s.srv = httptest.NewServer(mux)
	t.Cleanup(s.srv.Close)

	s.tx, err = ssf.NewTransmitter(ssf.TransmitterOptions{
		Issuer: e2eTxIssuer, Audience: e2eRxAudience, Key: setKey,
		PushURL: s.srv.URL + "/ssf/events", Client: s.srv.Client(), Now: clock,
	})
	require.NoError(t, err)
	t.Cleanup(func() { s.tx.Close() })
	return s
}

func (s *e2e) clock() time.Time { return time.Unix(0, s.now.Load()).UTC() }

func (s *e2e) advance(d time.Duration) { s.now.Add(int64(d)) }

// push emits ev through the transmitter and waits for the receiver's
// answer.
func (s *e2e) push(ev ssf.Event) {
	s.t.Helper()
	require.NoError(s.t, s.tx.Emit(context.Background(), ev))
	select {
	case code := <-s.pushed:
		require.Equal(s.t, http.StatusAccepted, code)
	case <-time.After(10 * time.Second):
		s.t.Fatal("the push never arrived")
	}
}

type grant struct {
	sub, sid, email string
	issued, auth    time.Time
}

func (s *e2e) token(g grant) string {
	s.t.Helper()
	tok := jwt.New()
	tok.Set(jwt.IssuerKey, e2eTokenIssuer)
	tok.Set(jwt.AudienceKey, e2eAudience)
	tok.Set(jwt.SubjectKey, g.sub)
	tok.Set(jwt.IssuedAtKey, g.issued)
	tok.Set(jwt.ExpirationKey, g.issued.Add(time.Hour))
	tok.Set("auth_time", g.auth.Unix())
	if g.sid != "" {
		tok.Set("sid", g.sid)
	}
	if g.email != "" {
		tok.Set("email", g.email)
	}
	signed, err := jwt.Sign(tok, jwt.WithKey(jwa.ES256, s.tokenKey))
	require.NoError(s.t, err)
	return string(signed)
}

type reply struct {
	status   int
	code     string // the problem's code, or "" for a 200
	auth     string // WWW-Authenticate
	findings []string
	ssf      map[string]any
}

func (s *e2e) get(tok, device string) reply {
	s.t.Helper()
	req, err := http.NewRequest(http.MethodGet, s.srv.URL+"/api/orders", nil)
	require.NoError(s.t, err)
	req.Header.Set("Authorization", "Bearer "+tok)
	if device != "" {
		req.Header.Set("X-Device-ID", device)
	}
	res, err := s.srv.Client().Do(req)
	require.NoError(s.t, err)
	defer res.Body.Close()
	var body struct {
		Code     string         `json:"code"`
		Findings []string       `json:"findings"`
		SSF      map[string]any `json:"ssf"`
	}
	require.NoError(s.t, json.NewDecoder(res.Body).Decode(&body))
	return reply{status: res.StatusCode, code: body.Code, auth: res.Header.Get("WWW-Authenticate"),
		findings: body.Findings, ssf: body.SSF}
}

func TestEndToEndPushedEvents(t *testing.T) {
	alice := ssf.IssSub(e2eTokenIssuer, "alice")
	session := ssf.Opaque("s-1")
	aliceS1 := ssf.SubjectID{Format: ssf.FormatComplex, User: &alice, Session: &session}
	ev := func(typ string, sub ssf.SubjectID, c map[string]any) ssf.Event {
		return ssf.Event{Type: typ, Subject: sub, Claims: c}
	}
	revoked := func(detail string) reply {
		return reply{status: 401, code: runtimeid.CodeTokenRevoked,
			auth: `Bearer realm="api", error="invalid_token", error_description="` + detail + `"`}
	}
	challenged := reply{status: 401, code: "high_risk",
		auth: `Bearer realm="api", error="insufficient_user_authentication", ` +
			`error_description="step-up authentication required: high_risk", max_age=300`}
	ok := reply{status: 200}

	tests := []struct {
		name    string
		events  []ssf.Event
		grant   grant  // the next request's token; issued one minute ago by default
		device  string // X-Device-ID
		want    reply
		finding []string
		ssf     map[string]any // members of signals.custom.ssf to check
	}{
		{name: "nothing pushed", want: ok},
		{name: "session-revoked: that session",
			events: []ssf.Event{ssf.SessionRevokedEvent(aliceS1, time.Time{}, "test")},
			want:   revoked("session revoked")},
		{name: "session-revoked: another session",
			events: []ssf.Event{ssf.SessionRevokedEvent(aliceS1, time.Time{}, "test")},
			grant:  grant{sid: "s-2"}, want: ok},
		{name: "credential-change: older token",
			events: []ssf.Event{ev(ssf.CAEPCredentialChange, alice, map[string]any{"change_type": "update"})},
			want:   revoked("credential changed")},
		{name: "account-disabled", events: []ssf.Event{ev(ssf.RISCAccountDisabled, alice, nil)},
			want: revoked("account disabled")},
		{name: "account-disabled by email",
			events: []ssf.Event{ev(ssf.RISCAccountDisabled, ssf.Email("alice@example.com"), nil)},
			grant:  grant{email: "Alice@Example.com"}, want: revoked("account disabled")},
		{name: "account-disabled then enabled",
			events: []ssf.Event{ev(ssf.RISCAccountDisabled, alice, nil), ev(ssf.RISCAccountEnabled, alice, nil)},
			want:   ok},
		{name: "account-purged", events: []ssf.Event{ev(ssf.RISCAccountPurged, alice, nil)},
			want: revoked("account purged")},
		{name: "credential-compromise", events: []ssf.Event{ev(ssf.RISCCredentialCompromise, alice, nil)},
			want: revoked("credential compromised")},
		{name: "RISC sessions-revoked", events: []ssf.Event{ev(ssf.RISCSessionsRevoked, alice, nil)},
			want: revoked("sessions revoked")},
		{name: "risk-level-change high",
			events:  []ssf.Event{ssf.RiskLevelChangeEvent(alice, "USER", "high", "low", time.Time{}, "")},
			want:    challenged,
			finding: nil},
		{name: "risk-level-change high, freshly authenticated",
			events:  []ssf.Event{ssf.RiskLevelChangeEvent(alice, "USER", "high", "low", time.Time{}, "")},
			grant:   grant{auth: e2eStart},
			want:    ok,
			finding: []string{ssf.FindingRiskLevel}, ssf: map[string]any{"risk_level": "high"}},
		{name: "risk-level-change medium",
			events:  []ssf.Event{ssf.RiskLevelChangeEvent(alice, "USER", "medium", "", time.Time{}, "")},
			want:    ok,
			finding: []string{ssf.FindingRiskLevel}, ssf: map[string]any{"risk_level": "medium"}},
		{name: "device-compliance-change: that device",
			events: []ssf.Event{ev(ssf.CAEPDeviceComplianceChange, ssf.Opaque("d-1"),
				map[string]any{"current_status": "not-compliant", "previous_status": "compliant"})},
			device: "d-1", want: challenged},
		{name: "device-compliance-change: another device",
			events: []ssf.Event{ev(ssf.CAEPDeviceComplianceChange, ssf.Opaque("d-1"),
				map[string]any{"current_status": "not-compliant"})},
			device: "d-2", want: ok, ssf: map[string]any{"device_compliant": true}},
		{name: "assurance-level-change decrease",
			events: []ssf.Event{ev(ssf.CAEPAssuranceLevelChange, alice, map[string]any{"namespace": "NIST-AAL",
				"current_level": "nist-aal1", "previous_level": "nist-aal2", "change_direction": "decrease"})},
			want: ok, finding: []string{ssf.FindingAssuranceDowngraded},
			ssf: map[string]any{"assurance_level": "nist-aal1", "assurance_direction": "decrease"}},
		{name: "token-claims-change",
			events: []ssf.Event{ev(ssf.CAEPTokenClaimsChange, aliceS1,
				map[string]any{"claims": map[string]any{"role": "ro-admin"}})},
			want: ok, finding: []string{ssf.FindingClaimsChanged},
			ssf: map[string]any{"claims": map[string]any{"role": "ro-admin"}}},
		{name: "session-established and session-presented change nothing",
			events: []ssf.Event{ev(ssf.CAEPSessionEstablished, alice, map[string]any{"acr": "AAL2"}),
				ev(ssf.CAEPSessionPresented, alice, nil)},
			want: ok},
		{name: "unknown event type changes nothing",
			events: []ssf.Event{ev("urn:example:event", alice, nil)}, want: ok},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := newE2E(t)
			g := tt.grant
			g.sub = "alice"
			if g.sid == "" {
				g.sid = "s-1"
			}
			g.issued = s.clock().Add(-time.Minute)
			if g.auth.IsZero() {
				g.auth = s.clock().Add(-time.Hour)
			}
			tok := s.token(g)
			for _, ev := range tt.events {
				s.push(ev)
			}

			got := s.get(tok, tt.device)
			assert.Equal(t, tt.want.status, got.status)
			assert.Equal(t, tt.want.code, got.code)
			assert.Equal(t, tt.want.auth, got.auth)
			if tt.want.status == 200 {
				assert.Equal(t, tt.finding, nilIfEmpty(got.findings))
				for k, v := range tt.ssf {
					assert.Equal(t, v, got.ssf[k], k)
				}
			}
		})
	}
}

func nilIfEmpty(s []string) []string {
	if len(s) == 0 {
		return nil
	}
	return s
}

// TestEndToEndCredentialChange: after a credential change, a token
// issued before it is refused and one issued after it is accepted.
func TestEndToEndCredentialChange(t *testing.T) {
	s := newE2E(t)
	old := s.token(grant{sub: "alice", issued: s.clock().Add(-time.Minute), auth: s.clock()})
	require.Equal(t, 200, s.get(old, "").status)

	s.push(ssf.Event{Type: ssf.CAEPCredentialChange, Subject: ssf.IssSub(e2eTokenIssuer, "alice"),
		Claims: map[string]any{"credential_type": "password", "change_type": "update"}})
	s.advance(2 * time.Second)
	fresh := s.token(grant{sub: "alice", issued: s.clock(), auth: s.clock()})

	assert.Equal(t, reply{status: 401, code: runtimeid.CodeTokenRevoked,
		auth: `Bearer realm="api", error="invalid_token", error_description="credential changed"`},
		s.get(old, ""))
	assert.Equal(t, 200, s.get(fresh, "").status)
	bob := s.token(grant{sub: "bob", issued: s.clock().Add(-time.Minute), auth: s.clock()})
	assert.Equal(t, 200, s.get(bob, "").status)
}

// TestEndToEndVerification: a verification event is answered with 202
// and its state kept.
func TestEndToEndVerification(t *testing.T) {
	s := newE2E(t)
	s.push(ssf.Event{Type: ssf.SSFVerification, Subject: ssf.Opaque("stream-1"),
		Claims: map[string]any{"state": "VGhpcyBpcyBhbiBleGFtcGxlIHN0YXRlIHZhbHVlLgo="}})
	v, ok := s.rx.LastVerification()
	require.True(t, ok)
	assert.Equal(t, "VGhpcyBpcyBhbiBleGFtcGxlIHN0YXRlIHZhbHVlLgo=", v.State)
	assert.Equal(t, e2eStart, v.At)
}

// TestEndToEndForgedSET: a SET signed by another key is refused and
// changes nothing.
func TestEndToEndForgedSET(t *testing.T) {
	s := newE2E(t)
	forger, _ := newES256(t, "set-1")
	tx, err := ssf.NewTransmitter(ssf.TransmitterOptions{Issuer: e2eTxIssuer, Audience: e2eRxAudience,
		Key: forger, PushURL: s.srv.URL + "/ssf/events", Client: s.srv.Client(), Now: s.clock})
	require.NoError(t, err)
	defer tx.Close()
	set, err := tx.Sign(ssf.Event{Type: ssf.RISCAccountDisabled, Subject: ssf.IssSub(e2eTokenIssuer, "alice")})
	require.NoError(t, err)

	res, err := s.srv.Client().Post(s.srv.URL+"/ssf/events", "application/secevent+jwt", strings.NewReader(string(set)))
	require.NoError(t, err)
	defer res.Body.Close()
	<-s.pushed
	var body map[string]string
	require.NoError(t, json.NewDecoder(res.Body).Decode(&body))
	assert.Equal(t, 400, res.StatusCode)
	assert.Equal(t, map[string]string{"err": "authentication_failed", "description": "invalid signature"}, body)

	tok := s.token(grant{sub: "alice", issued: s.clock().Add(-time.Minute), auth: s.clock()})
	assert.Equal(t, 200, s.get(tok, "").status)
}
