package ssf

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"slices"
	"strings"

	"github.com/lestrrat-go/jwx/v2/jwa"
	"github.com/lestrrat-go/jwx/v2/jws"

	"github.com/runtimeid/runtimeid"
)

// TypeSET is the typ header of a SET (RFC 8417 section 2.3) and, with
// "application/" before it, the media type of push delivery.
const TypeSET = "secevent+jwt"

// signatureAlgs are the algorithms a transmitter's key may be pinned
// to: asymmetric only, as for access tokens.
var signatureAlgs = []jwa.SignatureAlgorithm{
	jwa.RS256, jwa.RS384, jwa.RS512,
	jwa.PS256, jwa.PS384, jwa.PS512,
	jwa.ES256, jwa.ES384, jwa.ES512,
	jwa.EdDSA,
}

// setHeader is the part of the protected header the verifier reads.
// Keys named by jku, jwk, x5u or x5c are never used.
type setHeader struct {
	Typ  string          `json:"typ"`
	Alg  string          `json:"alg"`
	Kid  string          `json:"kid"`
	Crit json.RawMessage `json:"crit"`
}

// verifySignature checks the compact JWS raw and returns its payload.
// The key comes from keys by the kid, and the algorithm is the one the
// key is pinned to: the header's alg must equal it, which defeats
// "none" and HMAC with a public key as the secret.
func verifySignature(ctx context.Context, keys runtimeid.KeySource, raw string) ([]byte, error) {
	// 1. Compact JWS only (RFC 7515 section 7.1): five segments would
	// be a JWE, which is refused.
	if strings.Count(raw, ".") != 2 {
		return nil, setErr(CodeInvalidRequest, "not a compact JWS")
	}
	h64, rest, _ := strings.Cut(raw, ".")
	p64, s64, _ := strings.Cut(rest, ".")

	// 2. The header: typ is what tells a SET from any other JWT of the
	// same issuer (RFC 8417 section 2.3).
	hdr, err := parseSETHeader(h64)
	if err != nil {
		return nil, err
	}

	// 3. The key and its pinned algorithm.
	key, alg, err := keys.VerificationKey(ctx, hdr.Kid)
	switch {
	case errors.Is(err, runtimeid.ErrUnknownKey):
		return nil, &SETError{Code: CodeInvalidKey, Description: "unknown key", Err: err}
	case err != nil:
		return nil, &SETError{Code: CodeInvalidKey, Description: "keys unavailable", Err: err}
	case key == nil || !slices.Contains(signatureAlgs, alg):
		return nil, setErr(CodeInvalidKey, "key pinned to an unsupported algorithm")
	case hdr.Alg != alg.String():
		return nil, setErr(CodeInvalidKey, "algorithm not allowed for this key")
	}

	// 4. The signature, over the header and payload as sent.
	sig, err := base64.RawURLEncoding.DecodeString(s64)
	if err != nil {
		return nil, setErr(CodeInvalidRequest, "bad signature encoding")
	}
	var pub any
	if err := key.Raw(&pub); err != nil {
		return nil, &SETError{Code: CodeInvalidKey, Description: "unusable key", Err: err}
	}
	v, err := jws.NewVerifier(alg)
	if err != nil {
		return nil, &SETError{Code: CodeInvalidKey, Description: "unusable key", Err: err}
	}
	input := raw[:len(h64)+1+len(p64)]
	if err := v.Verify([]byte(input), sig, pub); err != nil {
		return nil, &SETError{Code: CodeAuthenticationFailed,
			Description: "invalid signature", Err: err}
	}

	payload, err := base64.RawURLEncoding.DecodeString(p64)
	if err != nil {
		return nil, setErr(CodeInvalidRequest, "bad payload encoding")
	}
	return payload, nil
}

func parseSETHeader(h64 string) (*setHeader, error) {
	data, err := base64.RawURLEncoding.DecodeString(h64)
	if err != nil {
		return nil, setErr(CodeInvalidRequest, "bad header encoding")
	}
	var hdr setHeader
	if err := json.Unmarshal(data, &hdr); err != nil {
		return nil, setErr(CodeInvalidRequest, "bad header")
	}
	switch {
	case !isSETType(hdr.Typ):
		return nil, setErr(CodeInvalidRequest, "typ header must be "+TypeSET)
	case hdr.Alg == "":
		return nil, setErr(CodeInvalidRequest, "header has no alg")
	case strings.EqualFold(hdr.Alg, "none"):
		return nil, setErr(CodeInvalidKey, "unsigned SETs are refused")
	case hdr.Crit != nil:
		// RFC 7515 section 4.1.11: extensions the verifier does not
		// understand must be refused, and it understands none.
		return nil, setErr(CodeInvalidRequest, "unsupported critical header")
	}
	return &hdr, nil
}

// isSETType accepts "secevent+jwt" and, since RFC 7515 section 4.1.9
// lets typ carry the full media type and media types compare without
// case, "application/secevent+jwt" in any case.
func isSETType(typ string) bool {
	typ = strings.ToLower(typ)
	return typ == TypeSET || typ == "application/"+TypeSET
}
