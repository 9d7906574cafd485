package stepup

import (
	"context"
	"encoding/json"
	"io"
	"mime"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/runtimeid/runtimeid"
)

// maxBody bounds every request body: a passkey response is a few KiB.
const maxBody = 64 << 10

// Handler returns the step-up page and the JSON endpoints, all under
// [Options.BasePath] (shown here as /stepup):
//
//	GET  /stepup/                       the step-up page (HTML)
//	GET  /stepup/status                 enrolled factors and the session's step-up
//	POST /stepup/otp/verify             {"code", "return_to"?, "acr_values"?}
//	POST /stepup/passkey/begin          {"return_to"?, "acr_values"?}
//	POST /stepup/passkey/finish         {"challenge_id", "credential"}
//	POST /stepup/enroll/otp             {} -> the secret, shown once
//	POST /stepup/enroll/otp/confirm     {"code"}
//	POST /stepup/enroll/passkey/begin   {}
//	POST /stepup/enroll/passkey/finish  {"challenge_id", "credential"}
//
// A completed step-up answers 200 with the [Record] and the validated
// return_to. Errors are JSON {"error": code, "message": text} with one
// of the Code constants, such as [CodeTooManyAttempts] (429 with
// Retry-After). Every endpoint requires the caller's access token.
func (s *Service) Handler() http.Handler {
	mux := http.NewServeMux()
	b := s.opts.BasePath
	mux.HandleFunc("GET "+b+"/{$}", s.servePage)
	mux.Handle("GET "+b+"/status", s.api(s.serveStatus))
	mux.Handle("POST "+b+"/otp/verify", s.api(s.serveVerifyOTP))
	mux.Handle("POST "+b+"/enroll/otp", s.api(s.serveEnrollOTP))
	mux.Handle("POST "+b+"/enroll/otp/confirm", s.api(s.serveConfirmOTP))
	if s.wa != nil {
		mux.Handle("POST "+b+"/passkey/begin", s.api(s.serveBeginPasskey))
		mux.Handle("POST "+b+"/passkey/finish", s.api(s.serveFinishPasskey))
		mux.Handle("POST "+b+"/enroll/passkey/begin", s.api(s.serveBeginEnroll))
		mux.Handle("POST "+b+"/enroll/passkey/finish", s.api(s.serveFinishEnroll))
	}
	return mux
}

// apiFunc serves one JSON endpoint for an authenticated caller; body is
// the request body, empty for GET.
type apiFunc func(ctx context.Context, id *runtimeid.Identity, body []byte) (any, error)

func (s *Service) api(fn apiFunc) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		id, err := s.authenticate(r)
		var body []byte
		if err == nil && r.Method == http.MethodPost {
			body, err = readJSON(w, r)
		}
		var out any
		if err == nil {
			out, err = fn(r.Context(), id, body)
		}
		if err != nil {
			s.writeError(w, r, err)
			return
		}
		writeJSON(w, http.StatusOK, out)
	})
}

// authenticate verifies the caller's token, from the Authorization
// header or the token cookie. A cookie-authenticated POST must come
// from one of the configured origins: a cookie is sent with cross-site
// requests too.
func (s *Service) authenticate(r *http.Request) (*runtimeid.Identity, error) {
	viaCookie := false
	if name := s.opts.TokenCookie; name != "" && r.Header.Get("Authorization") == "" {
		if c, err := r.Cookie(name); err == nil && c.Value != "" {
			r = r.Clone(r.Context())
			r.Header.Set("Authorization", "Bearer "+c.Value)
			viaCookie = true
		}
	}
	ev := s.auth.EvaluateRequest(r, runtimeid.Action{Name: "stepup",
		Sensitivity: runtimeid.Low})
	if ev.Err != nil || ev.Identity == nil {
		return nil, errUnauthenticated
	}
	if _, ok := sessionKey(ev.Identity); !ok {
		return nil, invalid("the token has neither sid nor jti")
	}
	if viaCookie && r.Method != http.MethodGet && !s.sameOrigin(r) {
		return nil, errForbidden
	}
	return ev.Identity, nil
}

func (s *Service) sameOrigin(r *http.Request) bool {
	origin := r.Header.Get("Origin")
	if origin == "" {
		return false
	}
	if len(s.opts.RPOrigins) > 0 {
		return slices.Contains(s.opts.RPOrigins, origin)
	}
	return origin == "https://"+r.Host || origin == "http://"+r.Host
}

func readJSON(w http.ResponseWriter, r *http.Request) ([]byte, error) {
	mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type"))
	if err != nil || mt != "application/json" {
		return nil, errMedia
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxBody))
	if err != nil {
		return nil, invalid("body unreadable or too large")
	}
	return body, nil
}

// request is the union of the endpoints' bodies.
type request struct {
	Code        string          `json:"code"`
	ReturnTo    string          `json:"return_to"`
	ACRValues   string          `json:"acr_values"`
	ChallengeID string          `json:"challenge_id"`
	Credential  json.RawMessage `json:"credential"`
}

func decode(body []byte) (request, error) {
	var req request
	if len(body) == 0 {
		return req, nil
	}
	if err := json.Unmarshal(body, &req); err != nil {
		return req, invalid("body is not the expected JSON")
	}
	rt, ok := safeReturn(req.ReturnTo)
	if !ok {
		return req, invalid("return_to must be a path on this site")
	}
	req.ReturnTo = rt
	return req, nil
}

// completed is the answer to a finished step-up.
type completed struct {
	Record
	ReturnTo string `json:"return_to"`
}

func (s *Service) serveVerifyOTP(ctx context.Context, id *runtimeid.Identity,
	body []byte) (any, error) {
	req, err := decode(body)
	if err != nil {
		return nil, err
	}
	if !accepts(req.ACRValues, ACROTP) {
		return nil, errMethod
	}
	rec, err := s.verifyOTP(ctx, id, strings.TrimSpace(req.Code))
	return completed{rec, req.ReturnTo}, err
}

func (s *Service) serveBeginPasskey(ctx context.Context, id *runtimeid.Identity,
	body []byte) (any, error) {
	req, err := decode(body)
	if err != nil {
		return nil, err
	}
	if !accepts(req.ACRValues, ACRPasskey, ACRPasskeyPresence) {
		return nil, errMethod
	}
	// A challenge that accepts only a verified passkey asks the
	// authenticator to verify the user.
	uv := !accepts(req.ACRValues, ACRPasskeyPresence)
	return s.beginPasskey(ctx, id, req.ReturnTo, uv)
}

func (s *Service) serveFinishPasskey(ctx context.Context, id *runtimeid.Identity,
	body []byte) (any, error) {
	req, err := decode(body)
	if err != nil {
		return nil, err
	}
	rec, returnTo, err := s.finishPasskey(ctx, id, req.ChallengeID, req.Credential)
	return completed{rec, returnTo}, err
}

func (s *Service) serveEnrollOTP(ctx context.Context, id *runtimeid.Identity,
	_ []byte) (any, error) {
	return s.enrollOTP(ctx, id)
}

func (s *Service) serveConfirmOTP(ctx context.Context, id *runtimeid.Identity,
	body []byte) (any, error) {
	req, err := decode(body)
	if err != nil {
		return nil, err
	}
	if err := s.confirmOTP(ctx, id, strings.TrimSpace(req.Code)); err != nil {
		return nil, err
	}
	return map[string]string{"enrolled": "otp"}, nil
}

func (s *Service) serveBeginEnroll(ctx context.Context, id *runtimeid.Identity,
	_ []byte) (any, error) {
	return s.beginEnrollPasskey(ctx, id)
}

func (s *Service) serveFinishEnroll(ctx context.Context, id *runtimeid.Identity,
	body []byte) (any, error) {
	req, err := decode(body)
	if err != nil {
		return nil, err
	}
	if err := s.finishEnrollPasskey(ctx, id, req.ChallengeID, req.Credential); err != nil {
		return nil, err
	}
	return map[string]string{"enrolled": "passkey"}, nil
}

// Status is the answer of GET status.
type Status struct {
	Factors Factors `json:"factors"`
	StepUp  *Record `json:"step_up"` // the session's latest, or null
}

func (s *Service) serveStatus(ctx context.Context, id *runtimeid.Identity,
	_ []byte) (any, error) {
	f, err := s.factors(ctx, id)
	if err != nil {
		return nil, err
	}
	st := Status{Factors: f}
	if rec, ok := s.Record(ctx, id); ok {
		st.StepUp = &rec
	}
	return st, nil
}

// accepts reports whether a space-separated acr_values list, empty
// meaning any, names one of acrs.
func accepts(acrValues string, acrs ...string) bool {
	list := strings.Fields(acrValues)
	if len(list) == 0 {
		return true
	}
	for _, a := range acrs {
		if slices.Contains(list, a) {
			return true
		}
	}
	return false
}

// safeReturn checks a return URL: a path on this site, never a host.
// "//evil.example", "/\evil.example", "https://evil.example" and
// anything with a control character are refused, because browsers
// read them as another host. Empty means "/".
func safeReturn(s string) (string, bool) {
	if s == "" {
		return "/", true
	}
	if len(s) > 2048 || s[0] != '/' || strings.HasPrefix(s, "//") ||
		strings.ContainsAny(s, `\`) || strings.ContainsFunc(s, isControl) {
		return "", false
	}
	u, err := url.Parse(s)
	if err != nil || u.Scheme != "" || u.Host != "" || u.User != nil || u.Opaque != "" {
		return "", false
	}
	return s, true
}

func isControl(r rune) bool { return r < ' ' || r == 0x7f || r == '\u2028' || r == '\u2029' }

func (s *Service) writeError(w http.ResponseWriter, r *http.Request, err error) {
	ae := asAPI(err)
	if ae == errInternal {
		// The cause goes to the log, never to the client.
		s.opts.Logger.LogAttrs(r.Context(), levelWarn, "stepup: internal error",
			strAttr("error", err.Error()))
	}
	if ae.retry > 0 {
		w.Header().Set("Retry-After", strconv.Itoa(ae.retry))
	}
	writeJSON(w, ae.status, map[string]string{"error": ae.code, "message": ae.message})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("Cache-Control", "no-store")
	h.Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

// parseMaxAge reads max_age in whole seconds; empty is zero.
func parseMaxAge(s string) (time.Duration, bool) {
	if s == "" {
		return 0, true
	}
	n, err := strconv.ParseUint(s, 10, 31)
	if err != nil {
		return 0, false
	}
	return time.Duration(n) * time.Second, true
}
