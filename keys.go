package runtimeid

import (
	"context"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"

	"github.com/lestrrat-go/jwx/v2/jwa"
	"github.com/lestrrat-go/jwx/v2/jwk"
)

// MaxKeysFileSize is the largest key file [KeysFromFile] reads, and the
// default largest JWKS response [RemoteKeys] accepts.
const MaxKeysFileSize = 1 << 20

// pinnedKey is one verification key with the one algorithm it verifies.
// raw is the crypto public key, converted once at load so that verifying
// a token converts nothing.
type pinnedKey struct {
	key jwk.Key
	alg jwa.SignatureAlgorithm
	raw any
}

// pinnedKeySource is implemented by the key sources of this package: it
// hands the verifier a key already converted and pinned. Other
// [KeySource] implementations are converted on every call.
type pinnedKeySource interface {
	pinnedKey(ctx context.Context, kid string) (*pinnedKey, error)
}

// keySet is an immutable set of pinned keys.
type keySet struct {
	byKID map[string]*pinnedKey
	all   []*pinnedKey
}

// lookup finds the key for kid. A key is found by its kid; a set of
// exactly one key also answers a token without a kid, and a token whose
// kid is not in the set when that one key has no kid (keys from PEM
// files have none).
func (s *keySet) lookup(kid string) (*pinnedKey, error) {
	if k, ok := s.byKID[kid]; ok && kid != "" {
		return k, nil
	}
	if len(s.all) == 1 {
		only := s.all[0]
		if kid == "" || only.key.KeyID() == "" {
			return only, nil
		}
	}
	if kid == "" {
		return nil, fmt.Errorf("%w: token has no kid and the key set holds %d keys",
			ErrUnknownKey, len(s.all))
	}
	return nil, fmt.Errorf("%w: %s", ErrUnknownKey, quote(kid))
}

// newKeySet pins every signing key of set. Keys whose use is not "sig" are
// skipped; symmetric keys, unsupported algorithms and duplicate kids are
// refused, as is a set left empty.
func newKeySet(set jwk.Set) (*keySet, error) {
	if set == nil {
		return nil, fmt.Errorf("%w: nil key set", ErrKeys)
	}
	s := &keySet{byKID: make(map[string]*pinnedKey)}
	for i := range set.Len() {
		key, _ := set.Key(i)
		pk, err := pinKey(key)
		if err != nil {
			return nil, fmt.Errorf("%w: key %d (kid %s): %w",
				ErrKeys, i, quote(keyID(key)), err)
		}
		if pk == nil {
			continue
		}
		if err := s.add(pk); err != nil {
			return nil, fmt.Errorf("%w: key %d: %w", ErrKeys, i, err)
		}
	}
	if len(s.all) == 0 {
		return nil, fmt.Errorf("%w: no signature verification keys in the set", ErrKeys)
	}
	return s, nil
}

func (s *keySet) add(pk *pinnedKey) error {
	kid := pk.key.KeyID()
	if kid != "" {
		if _, dup := s.byKID[kid]; dup {
			return fmt.Errorf("duplicate kid %s", quote(kid))
		}
		s.byKID[kid] = pk
	}
	s.all = append(s.all, pk)
	return nil
}

func keyID(key jwk.Key) string {
	if key == nil {
		return ""
	}
	return key.KeyID()
}

// signatureAlgs are the algorithms a key may be pinned to: asymmetric
// signatures only, so that no public key can ever be used as an HMAC
// secret.
var signatureAlgs = []jwa.SignatureAlgorithm{
	jwa.RS256, jwa.RS384, jwa.RS512,
	jwa.PS256, jwa.PS384, jwa.PS512,
	jwa.ES256, jwa.ES384, jwa.ES512,
	jwa.EdDSA,
}

func isSignatureAlg(alg jwa.SignatureAlgorithm) bool {
	return slices.Contains(signatureAlgs, alg)
}

// pinKey returns the public part of key and its algorithm, or nil when
// the key is not for signatures.
func pinKey(key jwk.Key) (*pinnedKey, error) {
	if key == nil {
		return nil, errors.New("nil key")
	}
	if use := key.KeyUsage(); use != "" && use != string(jwk.ForSignature) {
		return nil, nil
	}
	if key.KeyType() == jwa.OctetSeq {
		return nil, errors.New("symmetric (oct) keys are not accepted: " +
			"only asymmetric signatures are verified")
	}

	// A private key in a JWKS is almost always a mistake, but its public
	// part is all we keep, so nothing secret stays in memory.
	pub, err := jwk.PublicKeyOf(key)
	if err != nil {
		return nil, fmt.Errorf("no public key: %w", err)
	}
	inferred, err := inferAlg(pub)
	if err != nil {
		return nil, err
	}
	alg := inferred
	if a := pub.Algorithm().String(); a != "" {
		alg = jwa.SignatureAlgorithm(a)
		if !algFitsKey(alg, inferred) {
			return nil, fmt.Errorf("alg %s does not fit a %s key",
				quote(a), pub.KeyType())
		}
	}

	var raw any
	if err := pub.Raw(&raw); err != nil {
		return nil, fmt.Errorf("cannot convert key: %w", err)
	}
	return &pinnedKey{key: pub, alg: alg, raw: raw}, nil
}

// inferAlg is the algorithm of a key without an alg member.
func inferAlg(key jwk.Key) (jwa.SignatureAlgorithm, error) {
	switch k := key.(type) {
	case jwk.RSAPublicKey:
		return jwa.RS256, nil
	case jwk.ECDSAPublicKey:
		switch k.Crv() {
		case jwa.P256:
			return jwa.ES256, nil
		case jwa.P384:
			return jwa.ES384, nil
		case jwa.P521:
			return jwa.ES512, nil
		}
		return "", fmt.Errorf("unsupported curve %s", quote(k.Crv().String()))
	case jwk.OKPPublicKey:
		if k.Crv() == jwa.Ed25519 {
			return jwa.EdDSA, nil
		}
		return "", fmt.Errorf("unsupported OKP curve %s", quote(k.Crv().String()))
	}
	return "", fmt.Errorf("unsupported key type %s", quote(key.KeyType().String()))
}

// algFitsKey reports whether alg is an accepted signature algorithm for
// the key whose inferred algorithm is inferred.
func algFitsKey(alg, inferred jwa.SignatureAlgorithm) bool {
	switch inferred {
	case jwa.RS256:
		return isSignatureAlg(alg) && (alg[0] == 'R' || alg[0] == 'P')
	default:
		// An EC key verifies only the ES alg of its curve.
		return alg == inferred
	}
}

// staticKeys is a [KeySource] over a fixed set.
type staticKeys struct{ set *keySet }

var (
	_ KeySource       = (*staticKeys)(nil)
	_ pinnedKeySource = (*staticKeys)(nil)
)

// StaticKeys returns a [KeySource] over a fixed JWK set. Each key is pinned
// to its alg member, or, when it has none, to the algorithm its type
// implies: RS256 for RSA, ES256, ES384 or ES512 for the P-256, P-384 and
// P-521 curves, EdDSA for Ed25519. Keys whose use is not "sig" are
// skipped. Only the public part of a private key is kept.
//
// The verifier checks asymmetric signatures only: a symmetric (oct) key,
// an alg outside RS*, PS*, ES* and EdDSA, or an alg that does not fit its
// key is an error wrapping [ErrKeys], as are duplicate kids and a set with
// no signing key.
func StaticKeys(set jwk.Set) (KeySource, error) {
	ks, err := newKeySet(set)
	if err != nil {
		return nil, err
	}
	return &staticKeys{set: ks}, nil
}

// VerificationKey implements [KeySource].
func (s *staticKeys) VerificationKey(
	ctx context.Context, kid string,
) (jwk.Key, jwa.SignatureAlgorithm, error) {
	pk, err := s.set.lookup(kid)
	if err != nil {
		return nil, "", err
	}
	return pk.key, pk.alg, nil
}

func (s *staticKeys) pinnedKey(_ context.Context, kid string) (*pinnedKey, error) {
	return s.set.lookup(kid)
}

// KeysFromFile reads verification keys from a file of at most
// [MaxKeysFileSize] bytes, and pins them as [StaticKeys] does. The file is
// either a JWK set or a single JWK in JSON, or PEM: one or more public
// keys ("PUBLIC KEY", "RSA PUBLIC KEY") or certificates. Of a certificate
// only the public key is used: its validity and chain are not checked.
//
// A PEM private key is refused: a verifier needs no secret, and a signing
// key in its configuration is a key in the wrong place. A JWK set that
// holds private keys is accepted and only their public part is kept.
func KeysFromFile(path string) (KeySource, error) {
	data, err := readBounded(path)
	if err != nil {
		return nil, err
	}
	var set jwk.Set
	if isPEM(data) {
		set, err = parsePEM(data)
	} else {
		set, err = jwk.Parse(data)
	}
	if err != nil {
		return nil, fmt.Errorf("%w: %s: %w", ErrKeys, path, err)
	}
	ks, err := newKeySet(set)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return &staticKeys{set: ks}, nil
}

func readBounded(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrKeys, err)
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, MaxKeysFileSize+1))
	if err != nil {
		return nil, fmt.Errorf("%w: %s: %w", ErrKeys, path, err)
	}
	if len(data) > MaxKeysFileSize {
		return nil, fmt.Errorf("%w: %s: larger than %d bytes",
			ErrKeys, path, MaxKeysFileSize)
	}
	return data, nil
}

func isPEM(data []byte) bool {
	return strings.Contains(string(data), "-----BEGIN ")
}

// parsePEM turns every block of data into a public JWK.
func parsePEM(data []byte) (jwk.Set, error) {
	set := jwk.NewSet()
	for n := 1; ; n++ {
		var block *pem.Block
		block, data = pem.Decode(data)
		if block == nil {
			break
		}
		pub, err := pemPublicKey(block)
		if err != nil {
			return nil, fmt.Errorf("pem block %d: %w", n, err)
		}
		key, err := jwk.FromRaw(pub)
		if err != nil {
			return nil, fmt.Errorf("pem block %d: %w", n, err)
		}
		if err := set.AddKey(key); err != nil {
			return nil, fmt.Errorf("pem block %d: %w", n, err)
		}
	}
	if strings.TrimSpace(string(data)) != "" {
		return nil, errors.New("trailing data that is not PEM")
	}
	return set, nil
}

func pemPublicKey(block *pem.Block) (any, error) {
	var pub any
	var err error
	switch block.Type {
	case "PUBLIC KEY":
		pub, err = x509.ParsePKIXPublicKey(block.Bytes)
	case "RSA PUBLIC KEY":
		pub, err = x509.ParsePKCS1PublicKey(block.Bytes)
	case "CERTIFICATE":
		var cert *x509.Certificate
		cert, err = x509.ParseCertificate(block.Bytes)
		if err == nil {
			pub = cert.PublicKey
		}
	default:
		if strings.Contains(block.Type, "PRIVATE KEY") {
			return nil, errors.New("private keys are refused: " +
				"give the verifier the public key only")
		}
		return nil, fmt.Errorf("unsupported PEM type %s", quote(block.Type))
	}
	if err != nil {
		return nil, err
	}
	switch pub.(type) {
	case *rsa.PublicKey, *ecdsa.PublicKey, ed25519.PublicKey:
		return pub, nil
	}
	return nil, fmt.Errorf("unsupported public key type %T", pub)
}
