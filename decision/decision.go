// Package decision writes the HTTP responses of runtimeid decisions: the
// [Enforcer] answers token errors with RFC 6750 challenges, step-up
// decisions with RFC 9470 challenges or a redirect to a login page, and
// blocks with 403, each with an RFC 9457 problem+json body.
//
// # Problem types
//
// Every body's type is "urn:runtimeid:problem:" followed by the stable
// code, such as urn:runtimeid:problem:token_expired: a name, not a
// location, so it points clients at no host. The code is repeated in the
// body's "code" member. Bodies never hold a token, a claim or an internal
// error; the detail is a fixed text or [runtimeid.TokenError.Detail].
package decision

import (
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"strings"

	"github.com/runtimeid/runtimeid"
)

// DefaultReturnParam is the query parameter that carries the return URL
// to the step-up page when [Options.ReturnParam] is empty.
const DefaultReturnParam = "return_to"

// ProblemTypePrefix starts the type URI of every problem+json body; the
// stable code follows it.
const ProblemTypePrefix = "urn:runtimeid:problem:"

// ErrOptions means [Options] are invalid.
var ErrOptions = errors.New("decision: invalid options")

// Options configure an [Enforcer]. The zero value is valid: API
// responses only, no realm.
type Options struct {
	// StepUpURL is the page that performs step-up authentication, as an
	// absolute http(s) URL or an absolute path such as "/login". Browser
	// navigations (GET or HEAD accepting text/html) that need a step-up
	// are redirected there with 303 See Other; empty means every
	// challenge is a 401. The page must check the return URL it gets
	// before sending the user back: it is the request's own path and
	// query, never a host, but it is chosen by the client.
	StepUpURL string

	// Realm is sent as the realm auth-param of WWW-Authenticate. Empty
	// means none.
	Realm string

	// ReturnParam names the query parameter of StepUpURL that carries
	// the return URL. Empty means [DefaultReturnParam].
	ReturnParam string

	// Logger receives a debug event for each refusal. Nil discards them;
	// the engine already writes the audit event of every decision.
	Logger *slog.Logger

	// DPoP, when set, offers the DPoP scheme (RFC 9449 section 7.1)
	// in challenges, with its algs, sends a fresh DPoP-Nonce with each
	// use_dpop_nonce error and on allowed DPoP requests, and drops the
	// Bearer challenge when DPoP is required. A [*runtimeid.DPoP]
	// implements it. Nil means Bearer challenges only, except that a
	// request made with the DPoP scheme is always answered with a DPoP
	// challenge.
	DPoP DPoPChallenger
}

// DPoPChallenger is what the [Enforcer] needs to know of the DPoP
// validator. Its methods must be safe for concurrent use.
type DPoPChallenger interface {
	// Algs lists the accepted proof algorithms.
	Algs() []string

	// Nonce returns a fresh server nonce, or "" when none is required.
	Nonce() string

	// Required reports whether plain Bearer tokens are refused.
	Required() bool
}

// Enforcer is the standard [runtimeid.Enforcer]. It trusts the
// evaluation it is given and reads nothing from the request but its
// method, its Accept header and its path and query (for the return URL).
// It fails closed: an evaluation with an error, or with no outcome, is
// refused unless the engine marked it FailedOpen. It is safe for
// concurrent use.
type Enforcer struct {
	stepUp      *url.URL
	realm       string
	returnParam string
	log         *slog.Logger
	dpop        DPoPChallenger
	algs        string
}

var _ runtimeid.Enforcer = (*Enforcer)(nil)

// NewEnforcer checks opts and builds an enforcer. Errors wrap
// [ErrOptions].
func NewEnforcer(opts Options) (*Enforcer, error) {
	e := &Enforcer{
		realm:       opts.Realm,
		returnParam: opts.ReturnParam,
		log:         opts.Logger,
		dpop:        opts.DPoP,
	}
	if e.dpop != nil {
		e.algs = strings.Join(e.dpop.Algs(), " ")
	}
	if e.returnParam == "" {
		e.returnParam = DefaultReturnParam
	}
	if e.log == nil {
		e.log = slog.New(slog.DiscardHandler)
	}
	if strings.ContainsFunc(opts.Realm, isControl) {
		return nil, fmt.Errorf("%w: Realm holds a control character", ErrOptions)
	}
	if url.QueryEscape(e.returnParam) != e.returnParam {
		return nil, fmt.Errorf("%w: ReturnParam %q is not a plain query name",
			ErrOptions, e.returnParam)
	}
	if opts.StepUpURL != "" {
		u, err := stepUpURL(opts.StepUpURL)
		if err != nil {
			return nil, err
		}
		e.stepUp = u
	}
	return e, nil
}

func stepUpURL(s string) (*url.URL, error) {
	u, err := url.Parse(s)
	if err != nil {
		return nil, fmt.Errorf("%w: StepUpURL: %w", ErrOptions, err)
	}
	abs := (u.Scheme == "https" || u.Scheme == "http") && u.Host != ""
	path := u.Scheme == "" && u.Host == "" && strings.HasPrefix(u.Path, "/")
	if !abs && !path || u.Fragment != "" || u.User != nil {
		return nil, fmt.Errorf("%w: StepUpURL %q: want an http(s) URL or an"+
			" absolute path, without fragment or user", ErrOptions, s)
	}
	return u, nil
}

// Enforce implements [runtimeid.Enforcer]. It returns true, writing
// nothing, for an allow (including one that failed open); otherwise it
// writes the whole response:
//
//   - a [*runtimeid.TokenError]: 401 with WWW-Authenticate: Bearer and no
//     error code when no token was sent (RFC 6750 section 3.1), 400
//     invalid_request for a malformed request, 401 invalid_token
//     otherwise; for a DPoP error or a request made with the DPoP scheme
//     the error goes in a DPoP challenge instead: invalid_dpop_proof,
//     use_dpop_nonce with a DPoP-Nonce header, or invalid_token (RFC 9449
//     sections 7.1 and 9); a replay cache that failed gives 503;
//   - [runtimeid.Challenge]: a 303 redirect to [Options.StepUpURL] for a
//     browser navigation, otherwise 401 insufficient_user_authentication
//     with acr_values and max_age (RFC 9470 section 3);
//   - [runtimeid.Block], or an evaluation that failed closed: 403.
//
// Only GET and HEAD navigations are redirected: redirecting a form POST
// would drop its body, so it gets the 401 and the page decides.
func (e *Enforcer) Enforce(w http.ResponseWriter, r *http.Request, ev *runtimeid.Evaluation) bool {
	// The hot path: a clean allow costs two comparisons, three with
	// DPoP configured.
	if ev != nil && ev.Err == nil && ev.Decision.Outcome == runtimeid.Allow {
		if e.dpop != nil && ev.Credential.Scheme == "DPoP" {
			e.freshNonce(w)
		}
		return true
	}
	if ev == nil {
		e.refuse(w, r, blocked(runtimeid.CodeEvaluationError))
		return false
	}
	var te *runtimeid.TokenError
	if errors.As(ev.Err, &te) {
		e.refuse(w, r, e.tokenProblem(te, ev.Credential.Scheme))
		return false
	}

	d := &ev.Decision
	switch {
	case d.Outcome == runtimeid.Allow && (ev.Err == nil || d.FailedOpen):
		return true
	case ev.Err != nil:
		e.refuse(w, r, blocked(runtimeid.CodeEvaluationError))
	case d.Outcome == runtimeid.Challenge:
		e.challenge(w, r, d, ev.Credential.Scheme)
	case d.Outcome == runtimeid.Block:
		e.refuse(w, r, blocked(d.Reason))
	default:
		// An outcome the engine never returns: fail closed.
		e.refuse(w, r, blocked(runtimeid.CodeEvaluationError))
	}
	return false
}

func (e *Enforcer) challenge(w http.ResponseWriter, r *http.Request,
	d *runtimeid.Decision, scheme string) {
	if e.stepUp != nil {
		// The answer depends on Accept: caches must not give a browser's
		// redirect to an API client, or the reverse.
		w.Header().Add("Vary", "Accept")
		if navigation(r) {
			e.redirect(w, r, d.StepUp)
			return
		}
	}
	e.refuse(w, r, challengeProblem(d, e.realm, scheme))
}

// navigation reports whether r is a browser loading a page: a GET or
// HEAD whose Accept names text/html.
func navigation(r *http.Request) bool {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		return false
	}
	for _, v := range r.Header.Values("Accept") {
		if strings.Contains(strings.ToLower(v), "text/html") {
			return true
		}
	}
	return false
}

// freshNonce sends a DPoP-Nonce on an allowed response, so that clients
// can move to the next nonce before theirs expires (RFC 9449 section
// 8.2).
func (e *Enforcer) freshNonce(w http.ResponseWriter) {
	if n := e.dpop.Nonce(); n != "" {
		w.Header().Set("DPoP-Nonce", n)
	}
}

func isControl(r rune) bool { return r < ' ' || r == 0x7f }
