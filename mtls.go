package runtimeid

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"crypto/x509"
	"encoding/base64"
	"encoding/pem"
	"net/http"
	"net/netip"
	"net/textproto"
	"net/url"
	"slices"
	"strings"

	"github.com/runtimeid/runtimeid/internal/dpop"
)

// CodeMTLSBindingMismatch is a certificate-bound token (RFC 8705 cnf
// x5t#S256) whose request came without that client certificate. The
// decision package answers it with invalid_token.
const CodeMTLSBindingMismatch = "mtls_binding_mismatch"

// MaxClientCertHeader is the largest client certificate header read
// in the [CertHeaderPEM] format. [MaxXFCCHeader] bounds the other.
const MaxClientCertHeader = 16 << 10

// CertHeaderFormat says how a trusted proxy encodes the client
// certificate in [MTLSOptions.CertHeader].
type CertHeaderFormat int

const (
	// CertHeaderPEM, the zero value, is one header line holding the
	// leaf certificate as URL-escaped PEM, PEM, or base64 DER.
	CertHeaderPEM CertHeaderFormat = iota

	// CertHeaderXFCC is Envoy's X-Forwarded-Client-Cert: elements of
	// key=value pairs, the leaf in Cert as URL-encoded PEM. Only a
	// header of one element, with Cert, and with a Hash that agrees
	// when there is one, is read: configure the Envoy that terminates
	// the client's TLS with forward_client_cert_details SANITIZE_SET
	// and set_current_client_cert_details cert: true, and any Envoy
	// after it with FORWARD_ONLY. Anything else is refused.
	CertHeaderXFCC
)

// MTLSOptions configure [NewMTLS]. The zero value is valid: the client
// certificate comes from this server's own TLS handshake only.
type MTLSOptions struct {
	// TrustedProxies are the peers, such as a load balancer that
	// terminates TLS, whose CertHeader is believed. Any other peer's
	// header is ignored. Requires CertHeader.
	TrustedProxies []netip.Prefix

	// CertHeader names the header in which trusted proxies pass the
	// client's leaf certificate: URL-escaped PEM (nginx
	// $ssl_client_escaped_cert, and most load balancers), plain PEM
	// without line breaks, or base64 DER. Common names are
	// X-SSL-Client-Cert and X-Client-Cert. Empty means none. The proxy
	// must overwrite the header, so that a client cannot send its own.
	CertHeader string

	// CertHeaderFormat is how CertHeader is encoded. The zero value,
	// [CertHeaderPEM], reads the encodings above; [CertHeaderXFCC]
	// reads Envoy's X-Forwarded-Client-Cert and nothing else.
	CertHeaderFormat CertHeaderFormat
}

// MTLS is an [IdentityValidator] for certificate-bound access tokens
// (RFC 8705 section 3). When the token's cnf has x5t#S256, it compares
// it with the SHA-256 thumbprint of the client's leaf certificate: from
// the request's TLS state, or, when the TCP peer is one of
// [MTLSOptions.TrustedProxies], only from [MTLSOptions.CertHeader].
//
// What it does not check: the certificate's chain, validity dates or
// revocation. RFC 8705 section 3 binds the token to the certificate
// itself, which may be self-signed; requiring and verifying client
// certificates is the job of the TLS server or the proxy. It refuses
// with [CodeMTLSBindingMismatch], and sets [Credential.BindingVerified]
// when the cnf holds x5t#S256 alone; use [ProofOfPossession] for tokens
// bound to a DPoP key as well.
type MTLS struct {
	trusted []netip.Prefix
	header  string
	format  CertHeaderFormat
}

var _ IdentityValidator = (*MTLS)(nil)

// NewMTLS checks opts and builds the validator. Errors are
// [*ConfigError]s.
func NewMTLS(opts MTLSOptions) (*MTLS, error) {
	m := &MTLS{
		trusted: slices.Clone(opts.TrustedProxies),
		header:  textproto.CanonicalMIMEHeaderKey(opts.CertHeader),
		format:  opts.CertHeaderFormat,
	}
	switch {
	case m.format != CertHeaderPEM && m.format != CertHeaderXFCC:
		return nil, &ConfigError{Field: "MTLSOptions.CertHeaderFormat",
			Reason: "unknown format"}
	case m.format != CertHeaderPEM && m.header == "":
		return nil, &ConfigError{Field: "MTLSOptions.CertHeader",
			Reason: "required with CertHeaderFormat"}
	case len(m.trusted) > 0 && m.header == "":
		return nil, &ConfigError{Field: "MTLSOptions.CertHeader",
			Reason: "required with TrustedProxies"}
	case m.header != "" && len(m.trusted) == 0:
		return nil, &ConfigError{Field: "MTLSOptions.TrustedProxies",
			Reason: "required with CertHeader: no peer would be believed"}
	}
	return m, nil
}

// Validate implements [IdentityValidator].
func (m *MTLS) Validate(_ context.Context, ev *Evaluation) error {
	if ev.Reused() {
		return nil // proven by the evaluation this one reuses
	}
	proved, err := m.prove(ev)
	if err != nil {
		return err
	}
	if proved && onlyMembers(ev.Identity.Confirmation, cnfX5TS256) {
		ev.Credential.BindingVerified = true
	}
	return nil
}

// prove checks the certificate when the token is bound to one, and
// reports whether it proved cnf x5t#S256.
func (m *MTLS) prove(ev *Evaluation) (bool, error) {
	if ev.Identity == nil || ev.Identity.Confirmation == nil ||
		ev.Identity.Confirmation.X5TS256 == "" {
		return false, nil
	}
	want := ev.Identity.Confirmation.X5TS256
	if ev.Request == nil {
		return false, mtlsErr("no request carries a client certificate")
	}
	der, err := m.clientCert(ev.Request)
	if der == nil {
		e := mtlsErr("client certificate missing")
		e.Err = err // why a header was refused, for the logs only
		return false, e
	}
	sum := sha256.Sum256(der)
	got := base64.RawURLEncoding.EncodeToString(sum[:])
	if subtle.ConstantTimeCompare([]byte(got), []byte(want)) != 1 {
		return false, mtlsErr("client certificate does not match the token")
	}
	return true, nil
}

func mtlsErr(detail string) *TokenError {
	return &TokenError{Code: CodeMTLSBindingMismatch, Detail: detail}
}

// clientCert returns the DER of the client's leaf certificate, or nil
// when there is none, with an error when a header was refused. From a
// trusted proxy only the header counts: the TLS state then describes
// the proxy's own connection.
func (m *MTLS) clientCert(r *http.Request) ([]byte, error) {
	if m.header != "" {
		if peer, ok := dpop.Peer(r.RemoteAddr); ok && dpop.Trusted(m.trusted, peer) {
			return m.headerCert(r.Header.Values(m.header))
		}
	}
	if r.TLS == nil || len(r.TLS.PeerCertificates) == 0 {
		return nil, nil
	}
	return r.TLS.PeerCertificates[0].Raw, nil
}

// headerCert decodes the header lines in the configured format.
func (m *MTLS) headerCert(vals []string) ([]byte, error) {
	if m.format == CertHeaderXFCC {
		return xfccCert(vals)
	}
	der, _ := certFromHeader(vals)
	return der, nil
}

// certFromHeader decodes one header line holding a certificate as
// URL-escaped PEM, PEM, or base64 DER. The result must parse as X.509,
// so that a garbled header is a missing certificate.
func certFromHeader(vals []string) ([]byte, bool) {
	if len(vals) != 1 || vals[0] == "" || len(vals[0]) > MaxClientCertHeader {
		return nil, false
	}
	v := strings.TrimSpace(vals[0])
	if strings.Contains(v, "%") {
		// PathUnescape, not QueryUnescape: a "+" of the base64 body
		// stays a "+".
		u, err := url.PathUnescape(v)
		if err != nil {
			return nil, false
		}
		// Form encoding turns the spaces of the armour into "+".
		v = strings.ReplaceAll(u, "-----BEGIN+CERTIFICATE-----", pemBegin)
		v = strings.ReplaceAll(v, "-----END+CERTIFICATE-----", pemEnd)
	}
	if strings.HasPrefix(v, "-----BEGIN") {
		return pemCert(v)
	}
	der, err := base64.StdEncoding.DecodeString(v)
	if err != nil {
		return nil, false
	}
	return parsedCert(der)
}

// pemCert decodes the first CERTIFICATE block of s. Proxies that cannot
// send line breaks replace them by spaces, which are put back.
func pemCert(s string) ([]byte, bool) {
	block, _ := pem.Decode([]byte(s))
	if block == nil {
		block, _ = pem.Decode([]byte(unfoldPEM(s)))
	}
	if block == nil || block.Type != "CERTIFICATE" {
		return nil, false
	}
	return parsedCert(block.Bytes)
}

const (
	pemBegin = "-----BEGIN CERTIFICATE-----"
	pemEnd   = "-----END CERTIFICATE-----"
)

// unfoldPEM rebuilds the lines of a PEM block whose line breaks became
// spaces.
func unfoldPEM(s string) string {
	body, ok := strings.CutPrefix(strings.TrimSpace(s), pemBegin)
	if !ok {
		return s
	}
	body, _, ok = strings.Cut(body, pemEnd)
	if !ok {
		return s
	}
	body = strings.Join(strings.Fields(body), "\n")
	return pemBegin + "\n" + body + "\n" + pemEnd + "\n"
}

func parsedCert(der []byte) ([]byte, bool) {
	if _, err := x509.ParseCertificate(der); err != nil {
		return nil, false
	}
	return der, true
}

// proofOfPossession runs a DPoP and an MTLS validator together.
type proofOfPossession struct {
	dpop *DPoP
	mtls *MTLS
}

// ProofOfPossession returns one [IdentityValidator] for tokens that may
// be bound to a DPoP key, a client certificate, or both: it runs d and
// m (either may be nil, and then its binding cannot be proven) and sets
// [Credential.BindingVerified] only when every member of the token's
// cnf was proven. A token bound to both needs both proofs. Use it in
// place of d and m in [Config.Validators].
func ProofOfPossession(d *DPoP, m *MTLS) IdentityValidator {
	return &proofOfPossession{dpop: d, mtls: m}
}

// Validate implements [IdentityValidator].
func (p *proofOfPossession) Validate(ctx context.Context, ev *Evaluation) error {
	if ev.Reused() {
		return nil // proven by the evaluation this one reuses
	}
	var proven []string
	if p.dpop != nil {
		ok, err := p.dpop.prove(ctx, ev)
		if err != nil {
			return err
		}
		if ok {
			proven = append(proven, cnfJKT)
		}
	}
	if p.mtls != nil {
		ok, err := p.mtls.prove(ev)
		if err != nil {
			return err
		}
		if ok {
			proven = append(proven, cnfX5TS256)
		}
	}
	if ev.Identity != nil && onlyMembers(ev.Identity.Confirmation, proven...) {
		ev.Credential.BindingVerified = true
	}
	return nil
}
