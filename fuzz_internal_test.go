package runtimeid

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"math/big"
	"net/url"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/lestrrat-go/jwx/v2/jwk"
)

// The fuzz targets below cover the parsers of the root package that read
// bytes an attacker or a misbehaving server controls and that no other
// target reaches: key sets (a JWKS endpoint's body, a keys file), the
// client certificate header a proxy forwards, and Cache-Control.

func fuzzECKey(f *testing.F) *ecdsa.PrivateKey {
	priv, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		f.Fatal(err)
	}
	return priv
}

func fuzzCert(f *testing.F, priv *ecdsa.PrivateKey) []byte {
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1),
		Subject:   pkix.Name{CommonName: "client"},
		NotBefore: time.Unix(0, 0), NotAfter: time.Unix(1<<32, 0)}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, priv.Public(), priv)
	if err != nil {
		f.Fatal(err)
	}
	return der
}

// FuzzKeySet parses arbitrary bytes as a key file and as a JWKS
// response: each must give a key set or an error, never a panic.
func FuzzKeySet(f *testing.F) {
	priv := fuzzECKey(f)
	key, err := jwk.FromRaw(priv.Public())
	if err != nil {
		f.Fatal(err)
	}
	_ = key.Set(jwk.KeyIDKey, "k1")
	set := jwk.NewSet()
	_ = set.AddKey(key)
	data, _ := json.Marshal(set)
	f.Add(data)
	pub, _ := x509.MarshalPKIXPublicKey(priv.Public())
	f.Add(pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: pub}))
	f.Add(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: fuzzCert(f, priv)}))
	f.Add([]byte(`{"keys":[{"kty":"oct","k":"c2VjcmV0"}]}`))
	f.Add([]byte(`{"keys":[{"kty":"RSA","n":"AQAB","e":"AQAB","alg":"none"}]}`))
	f.Add([]byte(`{"keys":[{"kty":"EC","crv":"P-256","x":"","y":""}]}`))
	f.Add([]byte("-----BEGIN PUBLIC KEY-----\n\n-----END PUBLIC KEY-----\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		path := filepath.Join(t.TempDir(), "keys")
		if err := os.WriteFile(path, data, 0o600); err != nil {
			t.Fatal(err)
		}
		if src, err := KeysFromFile(path); err == nil {
			_, _, _ = src.VerificationKey(t.Context(), "k1")
		}
		if parsed, err := jwk.Parse(data); err == nil {
			if ks, err := newKeySet(parsed); err == nil {
				_, _ = ks.lookup("")
			}
		}
	})
}

// FuzzCertHeader decodes arbitrary client certificate headers: what
// it accepts must be a certificate that parses.
func FuzzCertHeader(f *testing.F) {
	der := fuzzCert(f, fuzzECKey(f))
	armoured := string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}))
	f.Add(base64.StdEncoding.EncodeToString(der))
	f.Add(armoured)
	f.Add(url.QueryEscape(armoured))
	f.Add("-----BEGIN CERTIFICATE----- AAAA -----END CERTIFICATE-----")
	f.Add("%zz")
	f.Add("Hash=abc;Cert=\"-----BEGIN%20CERTIFICATE-----\"")
	f.Fuzz(func(t *testing.T, v string) {
		got, ok := certFromHeader([]string{v})
		if !ok {
			return
		}
		if _, err := x509.ParseCertificate(got); err != nil {
			t.Fatalf("accepted a header that is no certificate: %v", err)
		}
	})
}

// FuzzMaxAge reads arbitrary Cache-Control values of a JWKS response:
// the interval is -1 (none) or a non-negative, bounded duration.
func FuzzMaxAge(f *testing.F) {
	for _, s := range []string{"max-age=300", `public, MAX-AGE="60"`, "max-age=-1",
		"max-age=99999999999999999999", "no-store", "max-age", ""} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, cc string) {
		d := maxAge(cc)
		if d != -1 && (d < 0 || d > (1<<31)*time.Second) {
			t.Fatalf("maxAge(%q) = %v", cc, d)
		}
	})
}
