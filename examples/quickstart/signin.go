package main

import (
	"bytes"
	_ "embed"
	"html/template"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"slices"
	"time"
)

// The development sign-in page hands out tokens signed with the
// quickstart's own key to anyone who asks, so that a newcomer can walk
// the browser step-up flow by hand. It is mounted only on a loopback
// address, with the built-in issuer and step-up service.
//
//	GET  /signin        the form: a demo user and a login age
//	POST /signin        sets the token cookie, 303 to /signin/next
//	GET  /signin/next   what to try next

//go:embed signin.html
var signInHTML string

var signInTmpl = template.Must(template.New("signin").Parse(signInHTML))

// demoUsers are the accounts the sign-in page offers.
var demoUsers = []string{"alice", "bob"}

// loginAge is a choice of the sign-in page: how long ago the login
// happened, which the token's auth_time says.
type loginAge struct {
	Value, Label string
	age          time.Duration
}

// loginAges are the sign-in page's choices: an hour-old login is
// challenged on a high-sensitivity page (challenge-stale-auth-high).
var loginAges = []loginAge{
	{"fresh", "just now", 0},
	{"stale", "an hour ago", time.Hour},
}

// signInMaxBody bounds the form: two short fields.
const signInMaxBody = 1 << 10

// signIn serves the development sign-in page.
type signIn struct {
	iss    *issuer
	host   string // the host browsers use, with its port
	origin string // scheme and host; a POST must come from it
	now    func() time.Time
}

// newSignIn returns the sign-in page for the quickstart listening on
// addr, or nil when addr is not a loopback address: tokens for anyone
// must never be handed out beyond this machine.
func newSignIn(iss *issuer, addr string, now func() time.Time) *signIn {
	if iss == nil || !isLoopback(addr) {
		return nil
	}
	_, origin := browserOrigin(addr)
	u, err := url.Parse(origin)
	if err != nil {
		return nil
	}
	return &signIn{iss: iss, host: u.Host, origin: origin, now: now}
}

func isLoopback(addr string) bool {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return false
	}
	if host == "localhost" {
		return true
	}
	ip, err := netip.ParseAddr(host)
	return err == nil && ip.IsLoopback()
}

func (si *signIn) register(mux *http.ServeMux) {
	mux.HandleFunc("GET /signin", si.serveForm)
	mux.HandleFunc("POST /signin", si.serveSignIn)
	mux.HandleFunc("GET /signin/next", si.serveNext)
}

// URL is where a browser signs in.
func (si *signIn) URL() string { return si.origin + "/signin" }

// serveForm shows the form. Reached under another host name, such as
// 127.0.0.1, it sends the browser to the one the step-up page accepts,
// so that the cookie is set where it is needed.
func (si *signIn) serveForm(w http.ResponseWriter, r *http.Request) {
	if r.Host != si.host {
		http.Redirect(w, r, si.URL(), http.StatusFound)
		return
	}
	si.render(w, http.StatusOK, "form", map[string]any{
		"Users": demoUsers, "Ages": loginAges,
	})
}

// serveSignIn mints a token for the chosen user and login age and sets
// it as the token cookie.
func (si *signIn) serveSignIn(w http.ResponseWriter, r *http.Request) {
	// Login CSRF: another site must not sign this browser in as
	// someone else. Browsers send Origin with every POST form.
	if r.Header.Get("Origin") != si.origin || r.Host != si.host {
		http.Error(w, "quickstart: cross-site sign-in refused", http.StatusForbidden)
		return
	}
	// A proxy or tunnel to the loopback listener lets any remote
	// client in, with any Host and Origin it writes.
	if proxied(r) {
		http.Error(w, "quickstart: proxied sign-in refused", http.StatusForbidden)
		return
	}
	r.Body = http.MaxBytesReader(w, r.Body, signInMaxBody)
	if err := r.ParseForm(); err != nil {
		http.Error(w, "quickstart: unreadable sign-in form", http.StatusBadRequest)
		return
	}
	user, login := r.PostForm.Get("user"), r.PostForm.Get("login")
	age, ok := findAge(login)
	if !ok || !slices.Contains(demoUsers, user) {
		http.Error(w, "quickstart: unknown user or login age", http.StatusBadRequest)
		return
	}

	// A new session for each sign-in: step-ups are recorded per sid.
	now := si.now()
	token, err := si.iss.login(user, user+"-"+newJTI(), now, age.age)
	if err != nil {
		http.Error(w, "quickstart: minting failed", http.StatusInternalServerError)
		return
	}
	http.SetCookie(w, &http.Cookie{
		Name: tokenCookie, Value: token, Path: "/",
		MaxAge:   int(time.Hour / time.Second), // the token's lifetime
		HttpOnly: true, SameSite: http.SameSiteLaxMode,
		Secure: r.TLS != nil,
	})
	next := url.Values{"user": {user}, "login": {login}}
	http.Redirect(w, r, "/signin/next?"+next.Encode(), http.StatusSeeOther)
}

// serveNext lists what to try next. It shows the user and login age of
// its query, checked against the form's choices; the cookie, which
// script cannot read, is what the other pages use.
func (si *signIn) serveNext(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	user := q.Get("user")
	age, ok := findAge(q.Get("login"))
	if !ok || !slices.Contains(demoUsers, user) {
		http.Redirect(w, r, "/signin", http.StatusSeeOther)
		return
	}
	si.render(w, http.StatusOK, "next", map[string]any{
		"User": user, "Age": age, "Fresh": age.age == 0,
	})
}

// proxyHeaders are set by proxies and tunnels (nginx, ngrok,
// cloudflared), never by a browser.
var proxyHeaders = []string{"Forwarded", "X-Forwarded-For",
	"X-Forwarded-Host", "X-Real-Ip"}

// proxied reports a request that names a proxy it came through.
//
// BUG: a plain TCP tunnel (ssh -R, socat) adds no header: a sign-in
// through it looks local, and anyone reaching the tunnel can sign in.
func proxied(r *http.Request) bool {
	return slices.ContainsFunc(proxyHeaders, func(h string) bool {
		return len(r.Header.Values(h)) > 0
	})
}

func findAge(value string) (loginAge, bool) {
	i := slices.IndexFunc(loginAges, func(a loginAge) bool {
		return a.Value == value
	})
	if i < 0 {
		return loginAge{}, false
	}
	return loginAges[i], true
}

func (si *signIn) render(w http.ResponseWriter, status int, name string, data any) {
	var buf bytes.Buffer
	if err := signInTmpl.ExecuteTemplate(&buf, name, data); err != nil {
		http.Error(w, "quickstart: page failed", http.StatusInternalServerError)
		return
	}
	h := w.Header()
	// No script, no style, nothing fetched, no framing; forms post
	// only here.
	h.Set("Content-Security-Policy", "default-src 'none'; base-uri 'none'; "+
		"form-action 'self'; frame-ancestors 'none'")
	h.Set("Content-Type", "text/html; charset=utf-8")
	h.Set("Cache-Control", "no-store")
	h.Set("Referrer-Policy", "no-referrer")
	h.Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(status)
	w.Write(buf.Bytes())
}
