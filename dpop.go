package runtimeid

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/hmac"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"net/http"
	"net/netip"
	"slices"
	"strings"
	"time"

	"github.com/lestrrat-go/jwx/v2/jwa"
	"github.com/lestrrat-go/jwx/v2/jwk"

	"github.com/runtimeid/runtimeid/internal/dpop"
)

// The DPoP error codes (RFC 9449). They are [TokenError] codes: stable,
// and answered by the decision package with a DPoP challenge.
const (
	// CodeDPoPProofInvalid is a missing, malformed or wrong DPoP proof:
	// two DPoP headers, a bad typ, alg, jwk or signature, or an htm,
	// htu, iat or ath that does not match the request (RFC 9449
	// invalid_dpop_proof).
	CodeDPoPProofInvalid = "dpop_proof_invalid"

	// CodeDPoPProofReplayed is a proof whose jti was already used for
	// the same URL (invalid_dpop_proof).
	CodeDPoPProofReplayed = "dpop_proof_replayed"

	// CodeDPoPReplayUnchecked is a proof that could not be checked for
	// replay because the [ReplayCache] failed or is full. The request is
	// refused: the server, not the client, is at fault.
	CodeDPoPReplayUnchecked = "dpop_replay_unchecked"

	// CodeDPoPNonceRequired is a proof without a current server nonce
	// when nonces are required (RFC 9449 use_dpop_nonce).
	CodeDPoPNonceRequired = "dpop_nonce_required"

	// CodeDPoPBindingMismatch is a token and proof that do not belong
	// together: a proof signed by another key than the token's cnf.jkt,
	// a DPoP-bound token sent as a plain Bearer token, or an unbound
	// token sent with the DPoP scheme (invalid_token).
	CodeDPoPBindingMismatch = "dpop_binding_mismatch"

	// CodeDPoPRequired is a token sent without DPoP where
	// [DPoPOptions.Required] demands it (invalid_token).
	CodeDPoPRequired = "dpop_required"
)

// Defaults for the zero values of [DPoPOptions].
const (
	DefaultDPoPMaxAge       = 60 * time.Second
	DefaultDPoPFutureSkew   = 5 * time.Second
	DefaultMaxDPoPProofSize = 8 << 10
	DefaultDPoPNoncePeriod  = 5 * time.Minute

	// MinDPoPRSABits is the smallest RSA key a proof may be signed with.
	MinDPoPRSABits = 2048

	// MinDPoPNonceSecret is the shortest secret [NewHMACNonces] accepts.
	MinDPoPNonceSecret = 32
)

// DefaultDPoPAlgs are the proof algorithms accepted when
// [DPoPOptions.Algs] is empty: every asymmetric JWS algorithm, elliptic
// curves first. "none" and the HMAC algorithms can never be allowed.
var DefaultDPoPAlgs = []string{
	"ES256", "ES384", "ES512", "EdDSA",
	"PS256", "PS384", "PS512", "RS256", "RS384", "RS512",
}

// DPoPOptions configure [NewDPoP]. The zero value is valid: the default
// algorithms and iat window, an in-memory replay cache, no nonces, no
// trusted proxy, and plain Bearer tokens without cnf still accepted.
type DPoPOptions struct {
	// Algs lists the accepted proof algorithms, in the order the algs
	// challenge parameter names them. Empty means [DefaultDPoPAlgs].
	Algs []string

	// MaxAge is how old a proof's iat may be. Zero means
	// [DefaultDPoPMaxAge]. It is also how long a jti is remembered.
	MaxAge time.Duration

	// FutureSkew is how far ahead of the server's clock a proof's iat
	// may be. Zero means [DefaultDPoPFutureSkew]. Clients whose clocks
	// drift further should be given nonces instead (RFC 9449 section 8).
	FutureSkew time.Duration

	// Now is the clock. Nil means [time.Now].
	Now func() time.Time

	// Replay remembers the jti of every accepted proof, for MaxAge
	// after its iat. Nil means a [MemoryReplayCache] of
	// [DefaultReplayCacheSize] entries, which protects one instance
	// only: behind a load balancer, give every instance serving the same
	// URLs one shared cache.
	Replay ReplayCache

	// Nonces, when set, makes every proof carry a current nonce issued
	// by the server (RFC 9449 section 9); a proof without one is refused
	// with [CodeDPoPNonceRequired] and the decision package sends a
	// fresh one in the DPoP-Nonce header. Nil means no nonces.
	Nonces NonceSource

	// TrustedProxies are the peers whose Forwarded, or else
	// X-Forwarded-Proto and X-Forwarded-Host, headers say which URL the
	// client used, for the htu check behind a proxy that terminates TLS.
	// Any other peer's headers are ignored. Empty means none.
	TrustedProxies []netip.Prefix

	// Required refuses every token presented without a DPoP proof.
	// False accepts plain Bearer tokens that carry no cnf claim; a
	// DPoP-bound token always needs its proof.
	Required bool

	// MaxProofSize is the largest DPoP header accepted, in bytes. Zero
	// means [DefaultMaxDPoPProofSize].
	MaxProofSize int
}

// DPoP is an [IdentityValidator] for DPoP-bound access tokens at a
// resource server (RFC 9449 section 7). For a request with the DPoP
// scheme, or a token with cnf.jkt, it runs every check of section 4.3
// and then the access token's: one DPoP header; typ dpop+jwt; an alg of
// the allow list; a public jwk, with no private member, that verifies
// the signature; htm equal to the request method; htu equal to the
// request URL without query, both normalised (RFC 3986 section 6); iat
// inside the window; a nonce when nonces are required; ath equal to the
// hash of the access token; the jwk's RFC 7638 thumbprint equal to
// cnf.jkt; and a jti not seen before for that URL, checked last so that
// only proofs that passed everything else are remembered.
//
// What it trusts: the verified token, the request's method, Host and
// path, and the TLS state; forwarding headers only from
// [DPoPOptions.TrustedProxies]. It refuses with a [*TokenError] whose
// code is one of the CodeDPoP constants. It sets
// [Credential.BindingVerified] when the token's cnf holds jkt alone; use
// [ProofOfPossession] for tokens bound to a certificate as well.
type DPoP struct {
	algs     []string
	maxAge   time.Duration
	future   time.Duration
	now      func() time.Time
	replay   ReplayCache
	nonces   NonceSource
	trusted  []netip.Prefix
	required bool
	maxSize  int
	keys     *proofKeys
}

var _ IdentityValidator = (*DPoP)(nil)

// NewDPoP checks opts and builds the validator. Errors are
// [*ConfigError]s.
func NewDPoP(opts DPoPOptions) (*DPoP, error) {
	d := &DPoP{
		algs:     slices.Clone(opts.Algs),
		maxAge:   opts.MaxAge,
		future:   opts.FutureSkew,
		now:      opts.Now,
		replay:   opts.Replay,
		nonces:   opts.Nonces,
		trusted:  slices.Clone(opts.TrustedProxies),
		required: opts.Required,
		maxSize:  opts.MaxProofSize,
		keys:     newProofKeys(),
	}
	if err := d.setDefaults(); err != nil {
		return nil, err
	}
	for _, a := range d.algs {
		if !isSignatureAlg(jwa.SignatureAlgorithm(a)) {
			return nil, &ConfigError{Field: "DPoPOptions.Algs",
				Reason: "not an asymmetric JWS algorithm: " + quote(a)}
		}
	}
	return d, nil
}

func (d *DPoP) setDefaults() error {
	if d.maxAge < 0 || d.future < 0 || d.maxSize < 0 {
		return &ConfigError{Field: "DPoPOptions",
			Reason: "MaxAge, FutureSkew and MaxProofSize must not be negative"}
	}
	if len(d.algs) == 0 {
		d.algs = slices.Clone(DefaultDPoPAlgs)
	}
	if d.maxAge == 0 {
		d.maxAge = DefaultDPoPMaxAge
	}
	if d.future == 0 {
		d.future = DefaultDPoPFutureSkew
	}
	if d.maxSize == 0 {
		d.maxSize = DefaultMaxDPoPProofSize
	}
	if d.now == nil {
		d.now = time.Now
	}
	if d.replay == nil {
		d.replay = NewMemoryReplayCache(DefaultReplayCacheSize, d.now)
	}
	return nil
}

// Algs returns the accepted proof algorithms, for the algs parameter of
// a DPoP challenge.
func (d *DPoP) Algs() []string { return slices.Clone(d.algs) }

// Nonce returns a fresh server nonce, or "" when nonces are not
// required.
func (d *DPoP) Nonce() string {
	if d.nonces == nil {
		return ""
	}
	return d.nonces.Nonce(d.now())
}

// Required reports whether every request must use DPoP.
func (d *DPoP) Required() bool { return d.required }

// Validate implements [IdentityValidator].
func (d *DPoP) Validate(ctx context.Context, ev *Evaluation) error {
	if ev.Reused() {
		return nil // proven by the evaluation this one reuses
	}
	proved, err := d.prove(ctx, ev)
	if err != nil {
		return err
	}
	if proved && onlyMembers(ev.Identity.Confirmation, cnfJKT) {
		ev.Credential.BindingVerified = true
	}
	return nil
}

// prove checks the DPoP proof when the request or the token calls for
// one, and reports whether it proved the token's cnf.jkt.
func (d *DPoP) prove(ctx context.Context, ev *Evaluation) (bool, error) {
	var jkt string
	if ev.Identity != nil && ev.Identity.Confirmation != nil {
		jkt = ev.Identity.Confirmation.JKT
	}
	scheme := ev.Credential.Scheme

	// RFC 9449 section 7.1: a DPoP-bound token is never accepted as a
	// bearer token, and the DPoP scheme needs a bound token.
	switch {
	case scheme != "DPoP" && jkt == "":
		if d.required {
			return false, dpopErr(CodeDPoPRequired, "DPoP proof required", nil)
		}
		return false, nil
	case scheme != "DPoP":
		return false, dpopErr(CodeDPoPBindingMismatch,
			"DPoP-bound token sent without the DPoP scheme", nil)
	case jkt == "":
		return false, dpopErr(CodeDPoPBindingMismatch,
			"token is not bound to a DPoP key", nil)
	case ev.Request == nil:
		return false, dpopErr(CodeDPoPProofInvalid, "no request carries a DPoP proof", nil)
	}
	terr := d.check(ctx, ev.Request, ev.Credential.Token.Reveal(), jkt)
	if terr != nil {
		return false, terr
	}
	return true, nil
}

func dpopErr(code, detail string, err error) *TokenError {
	return &TokenError{Code: code, Detail: detail, Err: err}
}

func invalidProof(detail string, err error) *TokenError {
	return dpopErr(CodeDPoPProofInvalid, detail, err)
}

// dpopHeader is the protected header of a proof.
type dpopHeader struct {
	Typ  string          `json:"typ"`
	Alg  string          `json:"alg"`
	JWK  json.RawMessage `json:"jwk"`
	Crit json.RawMessage `json:"crit"`
}

// dpopClaims are the claims of a proof (RFC 9449 section 4.2). Pointers
// tell a missing claim from an empty one; a claim of another JSON type
// fails to decode.
type dpopClaims struct {
	JTI   *string  `json:"jti"`
	HTM   *string  `json:"htm"`
	HTU   *string  `json:"htu"`
	IAT   *float64 `json:"iat"`
	ATH   *string  `json:"ath"`
	Nonce *string  `json:"nonce"`
}

// check runs the checks of RFC 9449 section 4.3 and 7.1 on r's proof.
func (d *DPoP) check(ctx context.Context, r *http.Request, token, jkt string) *TokenError {
	now := d.now()

	// 1. Exactly one DPoP header, of bounded size.
	vals := r.Header.Values("DPoP")
	switch {
	case len(vals) == 0 || vals[0] == "":
		return invalidProof("DPoP proof missing", nil)
	case len(vals) > 1:
		return invalidProof("more than one DPoP header", nil)
	case len(vals[0]) > d.maxSize:
		return invalidProof("DPoP proof too large", nil)
	}

	// 2-5. A JWS signed by the public key it carries.
	claims, key, terr := d.parse(vals[0])
	if terr != nil {
		return terr
	}

	// 6-11. The claims against this request and its token.
	if terr := d.checkClaims(r, claims, token, now); terr != nil {
		return terr
	}

	// The key must be the one the token is bound to (section 6.1).
	if terr := checkThumbprint(key.jkt, jkt); terr != nil {
		return terr
	}
	if terr := d.checkNonce(claims, now); terr != nil {
		return terr
	}

	// 12. The jti last, so that only proofs that passed every other
	// check take a place in the cache (section 11.1).
	return d.checkReplay(ctx, claims, now)
}

// parse decodes the compact JWS proof and verifies its signature with
// its own jwk. Nothing in the claims is read before that.
func (d *DPoP) parse(proof string) (*dpopClaims, *checkedProofKey, *TokenError) {
	if strings.Count(proof, ".") != 2 {
		return nil, nil, invalidProof("DPoP proof is not a compact JWS", nil)
	}
	h64, rest, _ := strings.Cut(proof, ".")
	p64, s64, _ := strings.Cut(rest, ".")

	hdr, terr := decodeDPoPHeader(h64)
	if terr != nil {
		return nil, nil, terr
	}
	alg := jwa.SignatureAlgorithm(hdr.Alg)
	if !slices.Contains(d.algs, hdr.Alg) || !isSignatureAlg(alg) {
		return nil, nil, invalidProof("DPoP proof algorithm not allowed", nil)
	}
	key, terr := d.keys.get(hdr.JWK, alg)
	if terr != nil {
		return nil, nil, terr
	}

	sig, err := base64.RawURLEncoding.DecodeString(s64)
	if err != nil {
		return nil, nil, invalidProof("bad DPoP signature encoding", err)
	}
	input := proof[:len(h64)+1+len(p64)]
	if err := verifiers[alg].Verify([]byte(input), sig, key.raw); err != nil {
		return nil, nil, invalidProof("invalid DPoP proof signature", err)
	}

	claims, terr := decodeDPoPClaims(p64)
	if terr != nil {
		return nil, nil, terr
	}
	return claims, key, nil
}

func decodeDPoPHeader(h64 string) (*dpopHeader, *TokenError) {
	data, err := base64.RawURLEncoding.DecodeString(h64)
	if err != nil {
		return nil, invalidProof("bad DPoP header encoding", err)
	}
	var hdr dpopHeader
	if err := json.Unmarshal(data, &hdr); err != nil {
		return nil, invalidProof("bad DPoP header", err)
	}
	switch {
	case !strings.EqualFold(hdr.Typ, "dpop+jwt"):
		return nil, invalidProof("DPoP proof typ must be dpop+jwt", nil)
	case hdr.Crit != nil:
		return nil, invalidProof("unsupported critical header", nil)
	case len(hdr.JWK) == 0:
		return nil, invalidProof("DPoP proof has no jwk", nil)
	}
	return &hdr, nil
}

// privateJWKMembers are the members that only a private or symmetric
// key has (RFC 7518 section 6).
var privateJWKMembers = []string{"d", "p", "q", "dp", "dq", "qi", "oth", "k"}

// publicJWK parses the proof's jwk and returns it with its raw public
// key, which must suit alg. A private key is refused outright: its
// holder has leaked it.
func publicJWK(data json.RawMessage, alg jwa.SignatureAlgorithm) (jwk.Key, any, *TokenError) {
	var members map[string]json.RawMessage
	if err := json.Unmarshal(data, &members); err != nil {
		return nil, nil, invalidProof("DPoP jwk is not an object", err)
	}
	for _, m := range privateJWKMembers {
		if _, ok := members[m]; ok {
			return nil, nil, invalidProof("DPoP jwk holds a private key", nil)
		}
	}
	key, err := jwk.ParseKey(data)
	if err != nil {
		return nil, nil, invalidProof("bad DPoP jwk", err)
	}
	var raw any
	if err := key.Raw(&raw); err != nil {
		return nil, nil, invalidProof("bad DPoP jwk", err)
	}
	if !keySuits(raw, alg) {
		return nil, nil, invalidProof("DPoP jwk does not suit the algorithm", nil)
	}
	return key, raw, nil
}

// keySuits reports whether raw is a public key of the type and size alg
// needs: the curve for ECDSA, 2048 bits or more for RSA.
func keySuits(raw any, alg jwa.SignatureAlgorithm) bool {
	switch k := raw.(type) {
	case *ecdsa.PublicKey:
		want := map[jwa.SignatureAlgorithm]elliptic.Curve{
			jwa.ES256: elliptic.P256(), jwa.ES384: elliptic.P384(),
			jwa.ES512: elliptic.P521(),
		}[alg]
		return want != nil && k.Curve == want
	case *rsa.PublicKey:
		rsaAlg := strings.HasPrefix(string(alg), "RS") ||
			strings.HasPrefix(string(alg), "PS")
		return rsaAlg && k.N.BitLen() >= MinDPoPRSABits
	case ed25519.PublicKey:
		return alg == jwa.EdDSA
	}
	return false
}

func decodeDPoPClaims(p64 string) (*dpopClaims, *TokenError) {
	data, err := base64.RawURLEncoding.DecodeString(p64)
	if err != nil {
		return nil, invalidProof("bad DPoP payload encoding", err)
	}
	var c dpopClaims
	if err := json.Unmarshal(data, &c); err != nil {
		return nil, invalidProof("bad DPoP claims", err)
	}
	switch {
	case c.JTI == nil || *c.JTI == "":
		return nil, invalidProof("DPoP proof has no jti", nil)
	case c.HTM == nil || c.HTU == nil || c.IAT == nil:
		return nil, invalidProof("DPoP proof needs htm, htu and iat", nil)
	}
	return &c, nil
}

// checkClaims compares htm, htu, iat and ath with the request.
func (d *DPoP) checkClaims(r *http.Request, c *dpopClaims,
	token string, now time.Time) *TokenError {
	if *c.HTM != r.Method {
		return invalidProof("DPoP htm does not match the request method", nil)
	}
	htu, err := dpop.NormalizeHTU(*c.HTU)
	if err != nil {
		return invalidProof("DPoP htu must be an http(s) URI without query", err)
	}
	want, err := dpop.RequestURL(r, d.trusted)
	if err != nil || htu != want {
		return invalidProof("DPoP htu does not match the request URL", err)
	}

	iat := numericTime(*c.IAT)
	switch {
	case iat.IsZero():
		return invalidProof("DPoP iat is not a NumericDate", nil)
	case iat.Before(now.Add(-d.maxAge)):
		return invalidProof("DPoP proof too old", nil)
	case iat.After(now.Add(d.future)):
		return invalidProof("DPoP proof issued in the future", nil)
	}

	// Section 7.1: the proof must carry the hash of this access token.
	if c.ATH == nil {
		return invalidProof("DPoP proof has no ath", nil)
	}
	sum := sha256.Sum256([]byte(token))
	ath := base64.RawURLEncoding.EncodeToString(sum[:])
	if subtle.ConstantTimeCompare([]byte(ath), []byte(*c.ATH)) != 1 {
		return invalidProof("DPoP ath does not match the access token", nil)
	}
	return nil
}

// numericTime converts a NumericDate, or returns zero for one out of
// range.
func numericTime(f float64) time.Time {
	if !(f > 0 && f <= maxNumericDate) {
		return time.Time{}
	}
	sec := int64(f)
	return time.Unix(sec, int64((f-float64(sec))*1e9)).UTC()
}

func checkThumbprint(tp, jkt string) *TokenError {
	if subtle.ConstantTimeCompare([]byte(tp), []byte(jkt)) != 1 {
		return dpopErr(CodeDPoPBindingMismatch, "DPoP proof key does not match the token", nil)
	}
	return nil
}

// JWKThumbprint returns the RFC 7638 SHA-256 thumbprint of key,
// base64url-encoded as cnf.jkt holds it.
func JWKThumbprint(key jwk.Key) (string, error) {
	sum, err := key.Thumbprint(crypto.SHA256)
	if err != nil {
		return "", fmt.Errorf("runtimeid: jwk thumbprint: %w", err)
	}
	return base64.RawURLEncoding.EncodeToString(sum), nil
}

func (d *DPoP) checkNonce(c *dpopClaims, now time.Time) *TokenError {
	if d.nonces == nil {
		return nil
	}
	if c.Nonce == nil || !d.nonces.Valid(*c.Nonce, now) {
		return dpopErr(CodeDPoPNonceRequired, "DPoP proof needs a current server nonce", nil)
	}
	return nil
}

// checkReplay records the proof's jti for its URL until it is too old
// to be accepted anyway.
func (d *DPoP) checkReplay(ctx context.Context, c *dpopClaims, now time.Time) *TokenError {
	sum := sha256.Sum256([]byte(*c.HTU + "\x00" + *c.JTI))
	key := "dpop:" + base64.RawURLEncoding.EncodeToString(sum[:])
	until := numericTime(*c.IAT).Add(d.maxAge + time.Second)
	seen, err := d.replay.Seen(ctx, key, until)
	switch {
	case err != nil:
		return dpopErr(CodeDPoPReplayUnchecked, "DPoP proof could not be checked", err)
	case seen:
		return dpopErr(CodeDPoPProofReplayed, "DPoP proof already used", nil)
	}
	return nil
}

// The cnf members that this package can prove.
const (
	cnfJKT     = "jkt"
	cnfX5TS256 = "x5t#S256"
)

// onlyMembers reports whether every member of c is one of proven, so
// that a binding is marked verified only when nothing in cnf is left
// unchecked.
func onlyMembers(c *Confirmation, proven ...string) bool {
	if c == nil || len(proven) == 0 {
		return false
	}
	for m := range c.Raw {
		if !slices.Contains(proven, m) {
			return false
		}
	}
	if c.JKT != "" && !slices.Contains(proven, cnfJKT) {
		return false
	}
	return c.X5TS256 == "" || slices.Contains(proven, cnfX5TS256)
}

// NonceSource issues and checks the server nonces of DPoP proofs (RFC
// 9449 section 9). Both methods must be safe for concurrent use and must
// not block.
type NonceSource interface {
	// Nonce returns a nonce to send in the DPoP-Nonce header at now.
	Nonce(now time.Time) string

	// Valid reports whether a proof's nonce is still current at now.
	Valid(nonce string, now time.Time) bool
}

// HMACNonces is a stateless [NonceSource]: a nonce is the number of the
// period it was issued in, with an HMAC-SHA-256 of it under a secret.
// Every instance that shares the secret accepts the nonces of the
// others, with no shared store. A nonce is valid during the period it
// was issued in and the next one, so for between one and two periods.
// All clients get the same nonce within a period; it bounds how far
// ahead of time a proof can be made, not who made it.
type HMACNonces struct {
	key    []byte
	period time.Duration
}

var _ NonceSource = (*HMACNonces)(nil)

// nonceLen is the decoded length of a nonce: an 8-byte period number and
// 16 bytes of MAC.
const nonceLen = 24

// NewHMACNonces returns a nonce source keyed by secret, of at least
// [MinDPoPNonceSecret] bytes. period <= 0 means
// [DefaultDPoPNoncePeriod].
func NewHMACNonces(secret []byte, period time.Duration) (*HMACNonces, error) {
	if len(secret) < MinDPoPNonceSecret {
		return nil, &ConfigError{Field: "HMACNonces.secret",
			Reason: fmt.Sprintf("must be at least %d bytes", MinDPoPNonceSecret)}
	}
	if period <= 0 {
		period = DefaultDPoPNoncePeriod
	}
	return &HMACNonces{key: slices.Clone(secret), period: period}, nil
}

// Nonce implements [NonceSource].
func (n *HMACNonces) Nonce(now time.Time) string {
	return base64.RawURLEncoding.EncodeToString(n.mac(n.bucket(now)))
}

// Valid implements [NonceSource].
func (n *HMACNonces) Valid(nonce string, now time.Time) bool {
	if base64.RawURLEncoding.DecodedLen(len(nonce)) != nonceLen {
		return false
	}
	got, err := base64.RawURLEncoding.DecodeString(nonce)
	if err != nil {
		return false
	}
	b := binary.BigEndian.Uint64(got)
	cur := n.bucket(now)
	if b != cur && b+1 != cur {
		return false
	}
	return hmac.Equal(got, n.mac(b))
}

func (n *HMACNonces) bucket(now time.Time) uint64 {
	return uint64(now.UnixNano() / int64(n.period))
}

func (n *HMACNonces) mac(bucket uint64) []byte {
	out := binary.BigEndian.AppendUint64(make([]byte, 0, 40), bucket)
	m := hmac.New(sha256.New, n.key)
	m.Write([]byte("runtimeid dpop nonce"))
	m.Write(out)
	return m.Sum(out)[:nonceLen]
}
