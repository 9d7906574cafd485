package runtimeid_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/pem"
	"math/big"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/runtimeid/runtimeid"
)

// clientCert is a self-signed client certificate, as RFC 8705 section 3
// allows, with its x5t#S256.
type clientCert struct {
	tls  tls.Certificate
	leaf *x509.Certificate
	pem  string
	x5t  string
}

func newClientCert(t testing.TB, cn string) *clientCert {
	priv, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	require.NoError(t, err)
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1),
		Subject:      pkix.Name{CommonName: cn},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &priv.PublicKey, priv)
	require.NoError(t, err)
	leaf, err := x509.ParseCertificate(der)
	require.NoError(t, err)
	sum := sha256.Sum256(der)
	return &clientCert{
		tls:  tls.Certificate{Certificate: [][]byte{der}, PrivateKey: priv, Leaf: leaf},
		leaf: leaf,
		pem:  string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})),
		x5t:  base64.RawURLEncoding.EncodeToString(sum[:]),
	}
}

func boundEval(r *http.Request, cnf map[string]any) *runtimeid.Evaluation {
	c := &runtimeid.Confirmation{Raw: cnf}
	c.JKT, _ = cnf["jkt"].(string)
	c.X5TS256, _ = cnf["x5t#S256"].(string)
	return &runtimeid.Evaluation{
		Request:    r,
		Identity:   &runtimeid.Identity{Subject: "alice", Confirmation: c},
		Credential: runtimeid.Credential{Scheme: "Bearer", Token: testToken},
	}
}

// requireMTLS runs m on r for a token bound to x5t. An empty detail
// wants the binding verified, any other a refusal with that detail,
// which is returned.
func requireMTLS(t *testing.T, m *runtimeid.MTLS, r *http.Request,
	x5t, detail string) error {
	t.Helper()
	ev := boundEval(r, map[string]any{"x5t#S256": x5t})
	err := m.Validate(context.Background(), ev)
	assert.Equal(t, detail == "", ev.Credential.BindingVerified)
	if detail == "" {
		require.NoError(t, err)
		return nil
	}
	requireTokenError(t, err, runtimeid.CodeMTLSBindingMismatch, detail)
	return err
}

func TestMTLSDirect(t *testing.T) {
	cert, other := newClientCert(t, "client"), newClientCert(t, "other")
	m, err := runtimeid.NewMTLS(runtimeid.MTLSOptions{})
	require.NoError(t, err)
	tests := []struct {
		name   string
		peer   *x509.Certificate
		detail string
	}{
		{name: "matching certificate", peer: cert.leaf},
		{name: "other certificate", peer: other.leaf,
			detail: "client certificate does not match the token"},
		{name: "no certificate", detail: "client certificate missing"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := httptest.NewRequest("GET", testURL, nil)
			if tt.peer != nil {
				r.TLS.PeerCertificates = []*x509.Certificate{tt.peer}
			}
			requireMTLS(t, m, r, cert.x5t, tt.detail)
		})
	}

	// A token without x5t#S256 is none of its business.
	ev := boundEval(httptest.NewRequest("GET", testURL, nil), map[string]any{})
	require.NoError(t, m.Validate(context.Background(), ev))
	assert.False(t, ev.Credential.BindingVerified)
}

func TestMTLSProxyHeader(t *testing.T) {
	cert, proxyCert := newClientCert(t, "client"), newClientCert(t, "proxy")
	m, err := runtimeid.NewMTLS(runtimeid.MTLSOptions{
		TrustedProxies: []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8")},
		CertHeader:     "x-ssl-client-cert",
	})
	require.NoError(t, err)
	der := cert.tls.Certificate[0]
	tests := []struct {
		name   string
		peer   string
		header []string
		ok     bool
	}{
		// nginx $ssl_client_escaped_cert: spaces as %20, "+" kept or
		// escaped.
		{name: "URL-escaped PEM", peer: "10.1.2.3:5555", ok: true,
			header: []string{url.PathEscape(cert.pem)}},
		{name: "form-encoded PEM", peer: "10.1.2.3:5555", ok: true,
			header: []string{url.QueryEscape(cert.pem)}},
		{name: "PEM with spaces for line breaks", peer: "10.1.2.3:5555", ok: true,
			header: []string{strings.ReplaceAll(strings.TrimSpace(cert.pem), "\n", " ")}},
		{name: "base64 DER", peer: "10.1.2.3:5555", ok: true,
			header: []string{base64.StdEncoding.EncodeToString(der)}},
		{name: "proxy sends another certificate", peer: "10.1.2.3:5555",
			header: []string{url.PathEscape(proxyCert.pem)}},
		{name: "garbage", peer: "10.1.2.3:5555", header: []string{"%zz"}},
		{name: "two headers", peer: "10.1.2.3:5555",
			header: []string{url.PathEscape(cert.pem), url.PathEscape(cert.pem)}},
		{name: "untrusted peer's header ignored", peer: "203.0.113.9:5555",
			header: []string{url.PathEscape(cert.pem)}},
		{name: "trusted peer without header", peer: "10.1.2.3:5555"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := httptest.NewRequest("GET", testURL, nil)
			r.RemoteAddr = tt.peer
			// The proxy's own client certificate must never count.
			r.TLS.PeerCertificates = []*x509.Certificate{proxyCert.leaf}
			for _, h := range tt.header {
				r.Header.Add("X-SSL-Client-Cert", h)
			}
			ev := boundEval(r, map[string]any{"x5t#S256": cert.x5t})
			err := m.Validate(context.Background(), ev)
			if tt.ok {
				require.NoError(t, err)
				assert.True(t, ev.Credential.BindingVerified)
				return
			}
			var te *runtimeid.TokenError
			require.ErrorAs(t, err, &te)
			assert.Equal(t, runtimeid.CodeMTLSBindingMismatch, te.Code)
		})
	}
}

func TestNewMTLSOptions(t *testing.T) {
	_, err := runtimeid.NewMTLS(runtimeid.MTLSOptions{CertHeader: "X-SSL-Client-Cert"})
	require.ErrorIs(t, err, runtimeid.ErrConfig)
	_, err = runtimeid.NewMTLS(runtimeid.MTLSOptions{
		TrustedProxies: []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8")}})
	require.ErrorIs(t, err, runtimeid.ErrConfig)
}

func TestMTLSEndToEnd(t *testing.T) {
	cert, other := newClientCert(t, "client"), newClientCert(t, "other")
	m, err := runtimeid.NewMTLS(runtimeid.MTLSOptions{})
	require.NoError(t, err)
	s := newPopStack(t, m, nil, true)
	bound := s.token(map[string]any{"x5t#S256": cert.x5t})

	clientWith := func(c *clientCert) *http.Client {
		cl := s.srv.Client()
		tr := cl.Transport.(*http.Transport).Clone()
		if c != nil {
			tr.TLSClientConfig.Certificates = []tls.Certificate{c.tls}
		}
		return &http.Client{Transport: tr}
	}
	tests := []struct {
		name   string
		client *clientCert
		status int
		auth   string
	}{
		{name: "the bound certificate", client: cert, status: 200},
		{name: "another certificate", client: other, status: 401,
			auth: `Bearer realm="api", error="invalid_token", ` +
				`error_description="client certificate does not match the token"`},
		{name: "no certificate", status: 401,
			auth: `Bearer realm="api", error="invalid_token", ` +
				`error_description="client certificate missing"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := s.do(clientWith(tt.client), "GET", "Authorization", "Bearer "+bound)
			assert.Equal(t, tt.status, got.status, got.body)
			assert.Equal(t, tt.auth, got.auth)
		})
	}
}

func TestProofOfPossessionBothBindings(t *testing.T) {
	cert := newClientCert(t, "client")
	key := newProofKey(t)
	d, err := runtimeid.NewDPoP(runtimeid.DPoPOptions{Now: fixedClock(testNow.Unix())})
	require.NoError(t, err)
	m, err := runtimeid.NewMTLS(runtimeid.MTLSOptions{})
	require.NoError(t, err)
	both := map[string]any{"jkt": key.jkt, "x5t#S256": cert.x5t}

	request := func(withCert bool) *http.Request {
		r := httptest.NewRequest("GET", testURL, nil)
		r.Header.Set("DPoP", key.proof("GET", testURL, testToken, testNow).sign(t))
		if withCert {
			r.TLS.PeerCertificates = []*x509.Certificate{cert.leaf}
		}
		return r
	}
	dpopEv := func(r *http.Request) *runtimeid.Evaluation {
		ev := boundEval(r, both)
		ev.Credential.Scheme = "DPoP"
		return ev
	}

	// Each validator alone proves its member but leaves the other
	// unproven, so the engine would refuse the token.
	ev := dpopEv(request(true))
	require.NoError(t, d.Validate(context.Background(), ev))
	require.NoError(t, m.Validate(context.Background(), ev))
	assert.False(t, ev.Credential.BindingVerified)

	// Together they prove both.
	pop := runtimeid.ProofOfPossession(d, m)
	ev = dpopEv(request(true))
	require.NoError(t, pop.Validate(context.Background(), ev))
	assert.True(t, ev.Credential.BindingVerified)

	// Without the certificate, the pair refuses.
	ev = dpopEv(request(false))
	err = pop.Validate(context.Background(), ev)
	requireTokenError(t, err, runtimeid.CodeMTLSBindingMismatch, "client certificate missing")

	// Without an MTLS validator, x5t#S256 stays unproven.
	ev = dpopEv(request(true))
	require.NoError(t, runtimeid.ProofOfPossession(d, nil).Validate(context.Background(), ev))
	assert.False(t, ev.Credential.BindingVerified)

	// A cnf member nobody can prove (jwk) is never marked verified.
	ev = boundEval(request(true), map[string]any{"x5t#S256": cert.x5t, "jwk": map[string]any{}})
	require.NoError(t, pop.Validate(context.Background(), ev))
	assert.False(t, ev.Credential.BindingVerified)
}
