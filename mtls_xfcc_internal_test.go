package runtimeid

import (
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"encoding/pem"
	"math/big"
	"net/url"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// xfccLeaf is a certificate as Envoy writes it in an XFCC element.
type xfccLeaf struct {
	der  []byte
	hash string // hex SHA-256 of der, as in Hash=
	cert string // URL-encoded PEM, as in Cert=
}

func newXFCCLeaf(t testing.TB, cn string) xfccLeaf {
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	require.NoError(t, err)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(7),
		Subject: pkix.Name{CommonName: cn}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, pub, priv)
	require.NoError(t, err)
	sum := sha256.Sum256(der)
	armoured := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
	return xfccLeaf{der: der, hash: hex.EncodeToString(sum[:]),
		cert: url.PathEscape(string(armoured))}
}

func TestXFCCCert(t *testing.T) {
	c, o := newXFCCLeaf(t, "client"), newXFCCLeaf(t, "other")
	hc := "Hash=" + c.hash + `;Cert="` + c.cert + `"`
	ho := "Hash=" + o.hash + `;Cert="` + o.cert + `"`
	twoPEM, _ := url.PathUnescape(c.cert)
	garbage := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: []byte("x")})
	const bad = "runtimeid: malformed x-forwarded-client-cert: "

	tests := []struct {
		name  string
		lines []string
		want  []byte // nil with err "" means missing
		err   string
	}{
		{name: "SANITIZE_SET element", lines: []string{hc}, want: c.der},
		{name: "every key Envoy writes", want: c.der, lines: []string{
			"By=spiffe://mesh/edge;" + hc + `;Chain="` + c.cert + `"` +
				`;Subject="CN=client,O=\"Acme, Inc\"";URI=spiffe://mesh/c?x=1` +
				";URI=;DNS=a.example;DNS=b.example"}},
		{name: "Cert without Hash", lines: []string{`Cert="` + c.cert + `"`},
			want: c.der},
		{name: "unquoted Cert, keys in any case", want: c.der,
			lines: []string{"hash=" + strings.ToUpper(c.hash) + ";CERT=" + c.cert}},
		{name: "space around pairs", want: c.der,
			lines: []string{" Hash=" + c.hash + ` ; Cert="` + c.cert + `" `}},
		{name: "no header"},
		{name: "blank header", lines: []string{" "}},

		// APPEND_FORWARD after a client's own element, or a URI name
		// with a comma that starts a forged element: never guessed.
		{name: "two elements", lines: []string{ho + "," + hc},
			err: bad + "2 elements, want the one the proxy set"},
		{name: "comma in a URI name", lines: []string{
			ho + ";URI=spiffe://x," + hc},
			err: bad + "2 elements, want the one the proxy set"},
		{name: "two header lines", lines: []string{hc, hc},
			err: bad + "2 elements, want the one the proxy set"},
		{name: "semicolon in a URI name", lines: []string{
			ho + ";URI=spiffe://x;Hash=" + c.hash},
			err: bad + "element 1: duplicate key Hash"},
		{name: "duplicate Cert", lines: []string{hc + `;cert="` + c.cert + `"`},
			err: bad + "element 1: duplicate key cert"},
		{name: "Hash of another certificate",
			lines: []string{"Hash=" + o.hash + ";Cert=" + c.cert},
			err:   bad + "Hash does not match Cert"},
		{name: "Hash not hex", lines: []string{"Hash=zz;Cert=" + c.cert},
			err: bad + "Hash does not match Cert"},
		{name: "no Cert", lines: []string{"Hash=" + c.hash + `;Subject="CN=client"`},
			err: bad + "no Cert"},
		{name: "unbalanced quote", lines: []string{"Hash=" + c.hash + `;Cert="` + c.cert},
			err: bad + "element 1: unterminated quoted value"},
		{name: "escape at the end", lines: []string{`Subject="CN=x\`},
			err: bad + "element 1: unterminated quoted value"},
		{name: "quote in an unquoted value", lines: []string{`Subject=CN"x;` + hc},
			err: bad + "element 1: quote inside an unquoted value"},
		{name: "text after a quoted value", lines: []string{`Subject="CN=x"y;` + hc},
			err: bad + "element 1: text after a quoted value"},
		{name: "unknown key", lines: []string{"Foo=bar;" + hc},
			err: bad + `element 1: unknown key "Foo"`},
		{name: "pair without =", lines: []string{hc + ";junk"},
			err: bad + "element 1: pair without ="},
		{name: "empty element", lines: []string{hc + ",," + hc},
			err: bad + "element 2: empty pair or element"},
		{name: "trailing semicolon", lines: []string{hc + ";"},
			err: bad + "element 1: empty pair or element"},
		{name: "Cert not URL-encoded", lines: []string{`Cert="%zz"`},
			err: bad + "Cert is not URL-encoded"},
		{name: "Cert of two certificates",
			lines: []string{"Cert=" + url.PathEscape(twoPEM+twoPEM)},
			err:   bad + "Cert is not one PEM certificate"},
		{name: "Cert not X.509",
			lines: []string{"Cert=" + url.PathEscape(string(garbage))},
			err:   bad + "Cert is not an X.509 certificate"},
		{name: "over the size limit",
			lines: []string{hc + `;Subject="` + strings.Repeat("a", MaxXFCCHeader) + `"`},
			err:   bad + "over 32768 bytes"},
		{name: "over the pair limit",
			lines: []string{strings.Repeat("DNS=a;", MaxXFCCPairs) + hc},
			err:   bad + "element 1: over 128 pairs"},
		{name: "at the pair limit", want: c.der,
			lines: []string{strings.Repeat("DNS=a;", MaxXFCCPairs-2) + hc}},
		{name: "over the element limit",
			lines: []string{strings.Repeat("By=a,", MaxXFCCElements) + "By=a"},
			err:   bad + "over 16 elements"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			der, err := xfccCert(tt.lines)
			assert.Equal(t, tt.want, der)
			if tt.err == "" {
				require.NoError(t, err)
				return
			}
			require.ErrorIs(t, err, ErrXFCC)
			assert.EqualError(t, err, tt.err)
		})
	}
}

// FuzzXFCC reads arbitrary X-Forwarded-Client-Cert headers: each gives
// a certificate that parses, nothing for a blank header, or an error
// wrapping ErrXFCC; never a panic. Seeds beyond these are committed
// under testdata/fuzz/FuzzXFCC.
func FuzzXFCC(f *testing.F) {
	der := fuzzCert(f, fuzzECKey(f))
	sum := sha256.Sum256(der)
	armoured := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
	el := "Hash=" + hex.EncodeToString(sum[:]) +
		`;Cert="` + url.PathEscape(string(armoured)) + `"`
	f.Add(el)
	f.Add("By=spiffe://a;" + el + `;Subject="CN=\"x\",O=y";URI=;DNS=a`)
	f.Add(el + "," + el)
	f.Add(`Cert="`)
	f.Add(`a=b;;c`)
	f.Fuzz(func(t *testing.T, h string) {
		got, err := xfccCert([]string{h})
		switch {
		case err != nil:
			require.ErrorIs(t, err, ErrXFCC)
			require.Nil(t, got)
		case got == nil:
			require.Empty(t, strings.TrimSpace(h))
		default:
			_, err := x509.ParseCertificate(got)
			require.NoError(t, err, "accepted a header that is no certificate")
		}
	})
}

// BenchmarkXFCCCert reads a typical element and headers at the size
// limit, which must cost time in proportion to their length.
func BenchmarkXFCCCert(b *testing.B) {
	c := newXFCCLeaf(b, "client")
	pad := MaxXFCCHeader - 16
	for _, bb := range []struct{ name, h string }{
		{"element", "By=spiffe://mesh/edge;Hash=" + c.hash + `;Cert="` + c.cert + `"`},
		{"max_pairs", strings.Repeat("By=a;", MaxXFCCPairs-1) + "By=a"},
		{"over_pairs", strings.Repeat("By=a;", pad/5) + "By=a"},
		{"max_quoted", `Subject="` + strings.Repeat(`\"`, pad/2) + `"`},
		{"max_elements", strings.Repeat("By=a,", MaxXFCCElements) + "By=a"},
	} {
		b.Run(bb.name, func(b *testing.B) {
			lines := []string{bb.h}
			b.ReportAllocs()
			for b.Loop() {
				_, _ = xfccCert(lines)
			}
		})
	}
}
