package runtimeid

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"slices"
	"strings"
	"time"

	"github.com/lestrrat-go/jwx/v2/jwa"
	"github.com/lestrrat-go/jwx/v2/jws"
)

// maxActorDepth bounds the RFC 8693 act chain: deeper chains are refused
// rather than walked.
const maxActorDepth = 8

// maxNumericDate is 9999-12-31T23:59:59Z; later dates are refused so that
// no conversion overflows.
const maxNumericDate = 253402300799

// tokenVerifier verifies compact JWS access tokens (RFC 9068 style) with
// keys from a [KeySource], each pinned to one algorithm.
type tokenVerifier struct {
	cfg       *TokenConfig
	audiences map[string]struct{}
	skew      time.Duration
	maxSize   int
	types     []string // accepted typ values, as mediaType writes them

	// cache remembers verified tokens; nil when the key source is not
	// one of this package's, whose keys can be compared for identity.
	cache *tokenCache
}

// verifiers holds one stateless jws verifier per accepted algorithm, so
// that verifying a token looks nothing up in jwx's registry.
var verifiers = func() map[jwa.SignatureAlgorithm]jws.Verifier {
	m := make(map[jwa.SignatureAlgorithm]jws.Verifier, len(signatureAlgs))
	for _, alg := range signatureAlgs {
		v, err := jws.NewVerifier(alg)
		if err != nil {
			panic("runtimeid: jwx has no verifier for " + alg.String())
		}
		m[alg] = v
	}
	return m
}()

// newTokenVerifier checks cfg and writes its defaults back into it.
func newTokenVerifier(cfg *TokenConfig) (*tokenVerifier, error) {
	if err := cfg.check(); err != nil {
		return nil, err
	}
	v := &tokenVerifier{
		cfg:       cfg,
		audiences: make(map[string]struct{}, len(cfg.Audience)),
		skew:      cfg.ClockSkew,
		maxSize:   cfg.MaxSize,
	}
	for _, a := range cfg.Audience {
		v.audiences[a] = struct{}{}
	}
	for _, t := range cfg.Types {
		v.types = append(v.types, mediaType(t))
	}
	if _, ok := cfg.Keys.(pinnedKeySource); ok && cfg.CacheSize >= 0 {
		size := cfg.CacheSize
		if size == 0 {
			size = DefaultTokenCacheSize
		}
		v.cache = newTokenCache(size)
	}
	return v, nil
}

func (c *TokenConfig) check() error {
	switch {
	case c.Issuer == "":
		return &ConfigError{Field: "Token.Issuer", Reason: "required"}
	case len(c.Audience) == 0:
		return &ConfigError{Field: "Token.Audience", Reason: "required"}
	case contains(c.Audience, ""):
		return &ConfigError{Field: "Token.Audience", Reason: "holds an empty audience"}
	case c.Keys == nil:
		return &ConfigError{Field: "Token.Keys",
			Reason: "required; see StaticKeys, KeysFromFile and RemoteKeys"}
	case c.ClockSkew < 0 || c.ClockSkew > MaxClockSkew:
		return &ConfigError{Field: "Token.ClockSkew",
			Reason: fmt.Sprintf("must be between 0 and %s", MaxClockSkew)}
	case c.MaxSize < 0:
		return &ConfigError{Field: "Token.MaxSize", Reason: "must not be negative"}
	case slices.ContainsFunc(c.Types, func(t string) bool { return mediaType(t) == "" }):
		return &ConfigError{Field: "Token.Types", Reason: "holds an empty type"}
	}
	if c.ClockSkew == 0 {
		c.ClockSkew = DefaultClockSkew
	}
	if c.MaxSize == 0 {
		c.MaxSize = DefaultMaxTokenSize
	}
	return nil
}

// joseHeader is the part of the protected header the verifier reads.
// Keys named by jku, jwk, x5u or x5c headers are never used: the key
// comes from the [KeySource] only.
//
// The typ is checked against [TokenConfig.Types].
type joseHeader struct {
	Alg  string          `json:"alg"`
	Kid  string          `json:"kid"`
	Typ  string          `json:"typ"`
	Crit json.RawMessage `json:"crit"`
}

// otherJWTTypes are the typ values of JWTs that are not access tokens
// but may be signed with an issuer's keys; they are refused unless
// [TokenConfig.Types] names them.
var otherJWTTypes = []string{"secevent+jwt", "logout+jwt", "dpop+jwt"}

// mediaType is typ as compared: lower case, without "application/",
// surrounding whitespace or media type parameters, so that no spelling
// of a refused type reads as another.
func mediaType(typ string) string {
	typ, _, _ = strings.Cut(typ, ";")
	typ = strings.ToLower(strings.TrimSpace(typ))
	return strings.TrimPrefix(typ, "application/")
}

// checkType refuses a token whose typ the configuration does not accept.
func (v *tokenVerifier) checkType(typ string) *TokenError {
	t := mediaType(typ)
	switch {
	case len(v.types) > 0 && !contains(v.types, t):
		return tokenErr(CodeTokenType, "token type not accepted", nil)
	case len(v.types) == 0 && contains(otherJWTTypes, t):
		return tokenErr(CodeTokenType, "not an access token: typ "+t, nil)
	}
	return nil
}

// verify checks raw as of now and returns its identity: from the cache
// when the token was verified before, otherwise in full.
func (v *tokenVerifier) verify(
	ctx context.Context, raw string, now time.Time,
) (*Identity, *TokenError) {
	if v.cache == nil {
		return v.verifyFull(ctx, raw, now, nil)
	}
	if id, terr, ok := v.cached(ctx, raw, now); ok {
		return id, terr
	}
	var used cachedToken
	id, terr := v.verifyFull(ctx, raw, now, &used)
	if terr == nil {
		v.cache.add(raw, used.kid, used.key, id)
	}
	return id, terr
}

// verifyFull checks raw as of now and returns its identity. When used
// is not nil, it learns the kid and the key that verified the token.
// The steps run cheapest first, and nothing the header says is trusted
// before the signature is checked, except the kid used to find the key.
func (v *tokenVerifier) verifyFull(
	ctx context.Context, raw string, now time.Time, used *cachedToken,
) (*Identity, *TokenError) {
	// 1. Size and shape, before any decoding: compact JWS only (RFC 7515
	// section 7.1). Five segments would be a JWE, which is refused.
	if len(raw) > v.maxSize {
		return nil, tokenErr(CodeTokenTooLarge, "token too large", nil)
	}
	if strings.Count(raw, ".") != 2 {
		return nil, tokenErr(CodeTokenMalformed, "not a compact JWS", nil)
	}
	h64, rest, _ := strings.Cut(raw, ".")
	p64, s64, _ := strings.Cut(rest, ".")

	// 2. The protected header.
	hdr, terr := parseHeader(h64)
	if terr != nil {
		return nil, terr
	}
	if terr := v.checkType(hdr.Typ); terr != nil {
		return nil, terr
	}

	// 3. The key, and the one algorithm it is pinned to. Comparing the
	// header's alg with the pin is what defeats "none" and HS256 signed
	// with a public key as the HMAC secret.
	pk, terr := v.key(ctx, hdr.Kid)
	if terr != nil {
		return nil, terr
	}
	if hdr.Alg != pk.alg.String() {
		return nil, tokenErr(CodeTokenAlgorithm, "algorithm not allowed for this key", nil)
	}

	// 4. The signature, over the header and payload as sent.
	sig, err := base64.RawURLEncoding.DecodeString(s64)
	if err != nil {
		return nil, tokenErr(CodeTokenMalformed, "bad signature encoding", err)
	}
	input := raw[:len(h64)+1+len(p64)]
	if err := verifiers[pk.alg].Verify([]byte(input), sig, pk.raw); err != nil {
		return nil, tokenErr(CodeTokenSignature, "invalid signature", err)
	}
	if used != nil {
		used.kid, used.key = hdr.Kid, pk
	}

	// 5. The claims, decoded once.
	claims, terr := decodeClaims(p64)
	if terr != nil {
		return nil, terr
	}
	return v.identity(claims, now)
}

func tokenErr(code, detail string, err error) *TokenError {
	return &TokenError{Code: code, Detail: detail, Err: err}
}

func parseHeader(h64 string) (*joseHeader, *TokenError) {
	data, err := base64.RawURLEncoding.DecodeString(h64)
	if err != nil {
		return nil, tokenErr(CodeTokenMalformed, "bad header encoding", err)
	}
	var hdr joseHeader
	if err := json.Unmarshal(data, &hdr); err != nil {
		return nil, tokenErr(CodeTokenMalformed, "bad header", err)
	}
	switch {
	case hdr.Alg == "":
		return nil, tokenErr(CodeTokenMalformed, "header has no alg", nil)
	case strings.EqualFold(hdr.Alg, "none"):
		return nil, tokenErr(CodeTokenAlgorithm, "unsigned tokens are refused", nil)
	case hdr.Crit != nil:
		// RFC 7515 section 4.1.11: extensions the verifier does not
		// understand must be refused, and it understands none.
		return nil, tokenErr(CodeTokenMalformed, "unsupported critical header", nil)
	}
	return &hdr, nil
}

// key finds the pinned key for kid. The token's alg never chooses it.
func (v *tokenVerifier) key(ctx context.Context, kid string) (*pinnedKey, *TokenError) {
	pk, err := v.lookup(ctx, kid)
	switch {
	case errors.Is(err, ErrUnknownKey):
		return nil, tokenErr(CodeTokenUnknownKey, "unknown key", err)
	case err != nil:
		return nil, tokenErr(CodeTokenUnknownKey, "verification keys unavailable", err)
	case !isSignatureAlg(pk.alg):
		// Only a KeySource from outside this package can get here.
		return nil, tokenErr(CodeTokenAlgorithm, "key pinned to an unsupported algorithm", nil)
	}
	return pk, nil
}

func (v *tokenVerifier) lookup(ctx context.Context, kid string) (*pinnedKey, error) {
	if src, ok := v.cfg.Keys.(pinnedKeySource); ok {
		return src.pinnedKey(ctx, kid)
	}
	key, alg, err := v.cfg.Keys.VerificationKey(ctx, kid)
	if err != nil {
		return nil, err
	}
	if key == nil {
		return nil, fmt.Errorf("%w: key source returned no key", ErrKeys)
	}
	var raw any
	if err := key.Raw(&raw); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrKeys, err)
	}
	return &pinnedKey{key: key, alg: alg, raw: raw}, nil
}

func decodeClaims(p64 string) (map[string]any, *TokenError) {
	data, err := base64.RawURLEncoding.DecodeString(p64)
	if err != nil {
		return nil, tokenErr(CodeTokenMalformed, "bad payload encoding", err)
	}
	var claims map[string]any
	if err := json.Unmarshal(data, &claims); err != nil {
		return nil, tokenErr(CodeTokenClaims, "payload is not a JSON object", err)
	}
	if claims == nil {
		return nil, tokenErr(CodeTokenClaims, "payload is not a JSON object", nil)
	}
	return claims, nil
}

// identity checks the registered claims (RFC 7519 section 4.1) in the
// order iss, exp, nbf, iat, aud, sub, then reads the others. A claim of
// the wrong JSON type is refused before any of them is compared.
func (v *tokenVerifier) identity(c map[string]any, now time.Time) (*Identity, *TokenError) {
	r := claimReader{claims: c}
	id := &Identity{Claims: c}

	id.Issuer = r.str("iss")
	id.Audience = r.strs("aud", false)
	id.Expiry = r.date("exp")
	id.NotBefore = r.date("nbf")
	id.IssuedAt = r.date("iat")
	id.Subject = r.str("sub")
	if r.err != nil {
		return nil, r.err
	}
	if terr := v.check(id, now); terr != nil {
		return nil, terr
	}

	id.SessionID = r.str("sid")
	id.TokenID = r.str("jti")
	id.ClientID = r.str("client_id")
	if id.ClientID == "" {
		id.ClientID = r.str("azp")
	}
	id.Scopes = r.scopes()
	id.ACR = r.str("acr")
	id.AMR = r.strs("amr", true)
	id.AuthTime = r.date("auth_time")
	id.Actor = r.actor(c["act"], 1)
	id.MayAct = r.object("may_act")
	id.Confirmation = r.cnf()
	if r.err != nil {
		return nil, r.err
	}
	return id, nil
}

// check applies the configured issuer, the lifetime with the clock skew
// in the token's favour, and the configured audiences.
func (v *tokenVerifier) check(id *Identity, now time.Time) *TokenError {
	switch {
	case id.Issuer != v.cfg.Issuer:
		return tokenErr(CodeTokenIssuer, "issuer not accepted", nil)
	case id.Expiry.IsZero():
		return tokenErr(CodeTokenClaims, "exp claim required", nil)
	case !now.Before(id.Expiry.Add(v.skew)):
		return tokenErr(CodeTokenExpired, "token expired", nil)
	case now.Add(v.skew).Before(id.NotBefore):
		return tokenErr(CodeTokenNotYetValid, "token not yet valid", nil)
	case now.Add(v.skew).Before(id.IssuedAt):
		return tokenErr(CodeTokenIssuedLater, "token issued in the future", nil)
	case !v.audienceOK(id.Audience):
		return tokenErr(CodeTokenAudience, "audience not accepted", nil)
	case id.Subject == "":
		return tokenErr(CodeTokenClaims, "sub claim required", nil)
	}
	return nil
}

func (v *tokenVerifier) audienceOK(aud []string) bool {
	for _, a := range aud {
		if _, ok := v.audiences[a]; ok {
			return true
		}
	}
	return false
}

// claimReader reads typed claims and keeps the first type error, so a
// claim of the wrong JSON type is refused rather than read as absent.
type claimReader struct {
	claims map[string]any
	err    *TokenError
}

func (r *claimReader) fail(name, want string) {
	if r.err == nil {
		r.err = tokenErr(CodeTokenClaims, name+" claim must be "+want, nil)
	}
}

func (r *claimReader) str(name string) string {
	return r.strIn(r.claims, name)
}

func (r *claimReader) strIn(m map[string]any, name string) string {
	v, ok := m[name]
	if !ok {
		return ""
	}
	s, ok := v.(string)
	if !ok {
		r.fail(name, "a string")
	}
	return s
}

// strs reads a list of strings. Unless listOnly, a single string is a
// list of one, as aud allows (RFC 7519 section 4.1.3).
func (r *claimReader) strs(name string, listOnly bool) []string {
	v, ok := r.claims[name]
	if !ok {
		return nil
	}
	if s, ok := v.(string); ok && !listOnly {
		return []string{s}
	}
	list, ok := v.([]any)
	if !ok {
		r.fail(name, "a list of strings")
		return nil
	}
	out := make([]string, len(list))
	for i, e := range list {
		if out[i], ok = e.(string); !ok {
			r.fail(name, "a list of strings")
			return nil
		}
	}
	return out
}

// date reads a NumericDate: seconds since the epoch, integer or not.
func (r *claimReader) date(name string) time.Time {
	v, ok := r.claims[name]
	if !ok {
		return time.Time{}
	}
	f, ok := v.(float64)
	if !ok || math.IsNaN(f) || f < 0 || f > maxNumericDate {
		r.fail(name, "a NumericDate")
		return time.Time{}
	}
	sec, frac := math.Modf(f)
	return time.Unix(int64(sec), int64(frac*1e9)).UTC()
}

// scopes reads scope (RFC 8693 section 4.2, space-separated) or else scp,
// a string or a list as some issuers send it.
func (r *claimReader) scopes() []string {
	if _, ok := r.claims["scope"]; ok {
		return strings.Fields(r.str("scope"))
	}
	if s, ok := r.claims["scp"].(string); ok {
		return strings.Fields(s)
	}
	return r.strs("scp", true)
}

func (r *claimReader) object(name string) map[string]any {
	v, ok := r.claims[name]
	if !ok {
		return nil
	}
	m, ok := v.(map[string]any)
	if !ok {
		r.fail(name, "an object")
	}
	return m
}

// actor reads an RFC 8693 act claim: the outermost is the current actor,
// nested ones are history. The depth is bounded.
func (r *claimReader) actor(v any, depth int) *Actor {
	if v == nil {
		return nil
	}
	m, ok := v.(map[string]any)
	if !ok {
		r.fail("act", "an object")
		return nil
	}
	if depth > maxActorDepth {
		r.fail("act", fmt.Sprintf("at most %d levels deep", maxActorDepth))
		return nil
	}
	return &Actor{
		Subject:  r.strIn(m, "sub"),
		Issuer:   r.strIn(m, "iss"),
		ClientID: r.strIn(m, "client_id"),
		Actor:    r.actor(m["act"], depth+1),
		Claims:   m,
	}
}

// cnf reads the confirmation claim (RFC 7800).
func (r *claimReader) cnf() *Confirmation {
	m := r.object("cnf")
	if m == nil {
		return nil
	}
	return &Confirmation{
		JKT:     r.strIn(m, "jkt"),
		X5TS256: r.strIn(m, "x5t#S256"),
		Raw:     m,
	}
}
