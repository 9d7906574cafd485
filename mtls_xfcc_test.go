package runtimeid_test

import (
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"net/http/httptest"
	"net/netip"
	"net/url"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/runtimeid/runtimeid"
)

// xfccElement is the element an Envoy with SANITIZE_SET and cert: true
// writes for a client that presented c.
func xfccElement(c *clientCert) string {
	sum := sha256.Sum256(c.tls.Certificate[0])
	return "By=spiffe://mesh/edge;Hash=" + hex.EncodeToString(sum[:]) +
		`;Cert="` + url.PathEscape(c.pem) + `";Subject="CN=` + c.leaf.Subject.CommonName + `"`
}

func TestNewMTLSCertHeaderFormat(t *testing.T) {
	lb := []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8")}
	tests := []struct {
		name  string
		opts  runtimeid.MTLSOptions
		field string
	}{
		{name: "XFCC", opts: runtimeid.MTLSOptions{TrustedProxies: lb,
			CertHeader:       "X-Forwarded-Client-Cert",
			CertHeaderFormat: runtimeid.CertHeaderXFCC}},
		{name: "XFCC without a header", field: "MTLSOptions.CertHeader",
			opts: runtimeid.MTLSOptions{CertHeaderFormat: runtimeid.CertHeaderXFCC}},
		{name: "XFCC without trusted proxies", field: "MTLSOptions.TrustedProxies",
			opts: runtimeid.MTLSOptions{CertHeader: "X-Forwarded-Client-Cert",
				CertHeaderFormat: runtimeid.CertHeaderXFCC}},
		{name: "unknown format", field: "MTLSOptions.CertHeaderFormat",
			opts: runtimeid.MTLSOptions{TrustedProxies: lb,
				CertHeader: "X-Client-Cert", CertHeaderFormat: 7}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m, err := runtimeid.NewMTLS(tt.opts)
			if tt.field == "" {
				require.NoError(t, err)
				assert.NotNil(t, m)
				return
			}
			var ce *runtimeid.ConfigError
			require.ErrorAs(t, err, &ce)
			assert.Equal(t, tt.field, ce.Field)
			assert.ErrorIs(t, err, runtimeid.ErrConfig)
		})
	}
}

func TestMTLSXFCC(t *testing.T) {
	cert, other, proxy := newClientCert(t, "client"),
		newClientCert(t, "other"), newClientCert(t, "proxy")
	m, err := runtimeid.NewMTLS(runtimeid.MTLSOptions{
		TrustedProxies:   []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8")},
		CertHeader:       "x-forwarded-client-cert",
		CertHeaderFormat: runtimeid.CertHeaderXFCC,
	})
	require.NoError(t, err)
	tests := []struct {
		name   string
		peer   string
		header string
		detail string
		xfcc   bool // the cause is a refused header
	}{
		{name: "the bound certificate", peer: "10.1.2.3:5555",
			header: xfccElement(cert)},
		{name: "another certificate", peer: "10.1.2.3:5555",
			header: xfccElement(other),
			detail: "client certificate does not match the token"},
		{name: "appended after the client's own element", peer: "10.1.2.3:5555",
			header: xfccElement(cert) + "," + xfccElement(other),
			detail: "client certificate missing", xfcc: true},
		{name: "PEM format is not read as XFCC", peer: "10.1.2.3:5555",
			header: url.PathEscape(cert.pem),
			detail: "client certificate missing", xfcc: true},
		// From any other peer only its own TLS state counts.
		{name: "untrusted peer's header ignored", peer: "203.0.113.9:5555",
			header: xfccElement(cert),
			detail: "client certificate does not match the token"},
		{name: "trusted peer without header", peer: "10.1.2.3:5555",
			detail: "client certificate missing"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := httptest.NewRequest("GET", testURL, nil)
			r.RemoteAddr = tt.peer
			// The proxy's own client certificate must never count.
			r.TLS.PeerCertificates = []*x509.Certificate{proxy.leaf}
			if tt.header != "" {
				r.Header.Set("X-Forwarded-Client-Cert", tt.header)
			}
			err := requireMTLS(t, m, r, cert.x5t, tt.detail)
			assert.Equal(t, tt.xfcc, errors.Is(err, runtimeid.ErrXFCC))
		})
	}
}

// TestMTLSXFCCEndToEnd sends requests through a plain HTTP server on
// loopback, standing in for the Envoy that terminated the client's TLS
// and passes its certificate in X-Forwarded-Client-Cert.
func TestMTLSXFCCEndToEnd(t *testing.T) {
	cert, other := newClientCert(t, "client"), newClientCert(t, "other")
	newStack := func(trusted string) *popStack {
		m, err := runtimeid.NewMTLS(runtimeid.MTLSOptions{
			TrustedProxies:   []netip.Prefix{netip.MustParsePrefix(trusted)},
			CertHeader:       "X-Forwarded-Client-Cert",
			CertHeaderFormat: runtimeid.CertHeaderXFCC,
		})
		require.NoError(t, err)
		return newPopStack(t, m, nil, false)
	}
	behindEnvoy, direct := newStack("127.0.0.0/8"), newStack("10.0.0.0/8")
	const refused = `Bearer realm="api", error="invalid_token", error_description=`

	tests := []struct {
		name   string
		stack  *popStack
		xfcc   string
		status int
		auth   string
	}{
		{name: "the bound certificate", stack: behindEnvoy,
			xfcc: xfccElement(cert), status: 200},
		{name: "another certificate", stack: behindEnvoy,
			xfcc: xfccElement(other), status: 401,
			auth: refused + `"client certificate does not match the token"`},
		{name: "two elements", stack: behindEnvoy,
			xfcc:   xfccElement(other) + "," + xfccElement(cert),
			status: 401, auth: refused + `"client certificate missing"`},
		{name: "header from an untrusted peer", stack: direct,
			xfcc: xfccElement(cert), status: 401,
			auth: refused + `"client certificate missing"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tok := tt.stack.token(map[string]any{"x5t#S256": cert.x5t})
			got := tt.stack.do(nil, "GET", "Authorization", "Bearer "+tok,
				"X-Forwarded-Client-Cert", tt.xfcc)
			assert.Equal(t, tt.status, got.status, got.body)
			assert.Equal(t, tt.auth, got.auth)
			if tt.status == 200 {
				assert.Equal(t, "alice", got.body)
			}
		})
	}
}
