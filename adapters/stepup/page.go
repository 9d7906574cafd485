package stepup

import (
	_ "embed"
	"html/template"
	"io"
	"net/http"
	"strings"
	"time"
)

//go:embed page.html
var pageHTML string

var pageTmpl = template.Must(template.New("stepup").Parse(pageHTML))

// pageData is what the step-up page shows.
type pageData struct {
	Nonce       string
	Base        string
	ReturnTo    string
	ACRValues   string
	MaxAge      string // "5 minutes", or ""
	Subject     string
	Passkey     bool // a passkey is enrolled and accepted
	OTP         bool // a code secret is enrolled and accepted
	CanPasskey  bool // passkeys are configured
	Enrolled    bool
	Unsupported bool // the challenge accepts none of this service's acr values
}

// servePage renders the step-up page. It reads return_to, acr_values
// and max_age as the decision package's redirect sends them, and
// refuses a return_to that is not a path on this site.
func (s *Service) servePage(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	returnTo, ok := safeReturn(q.Get("return_to"))
	maxAge, okAge := parseMaxAge(q.Get("max_age"))
	acr := q.Get("acr_values")
	if !ok || !okAge || len(acr) > 1024 || strings.ContainsFunc(acr, isControl) {
		s.pageError(w, http.StatusBadRequest, "This step-up link is not valid.")
		return
	}
	id, err := s.authenticate(r)
	if err != nil {
		s.pageError(w, asAPI(err).status, "Sign in first, then try again.")
		return
	}
	f, err := s.factors(r.Context(), id)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	nonce, err := s.newID()
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	okPasskey := accepts(acr, ACRPasskey, ACRPasskeyPresence)
	okOTP := accepts(acr, ACROTP)
	d := pageData{
		Nonce: nonce, Base: s.opts.BasePath, ReturnTo: returnTo, ACRValues: acr,
		MaxAge: humanAge(maxAge), Subject: accountName(id),
		Passkey:    s.wa != nil && f.Passkeys > 0 && okPasskey,
		OTP:        f.OTP && okOTP,
		CanPasskey: s.wa != nil,
		Enrolled:   f.Passkeys > 0 || f.OTP,
	}
	d.Unsupported = !okPasskey && !okOTP
	s.writePage(w, http.StatusOK, nonce, d)
}

func (s *Service) pageError(w http.ResponseWriter, status int, msg string) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(status)
	_, _ = io.WriteString(w, msg+"\n")
}

func (s *Service) writePage(w http.ResponseWriter, status int, nonce string, d pageData) {
	h := w.Header()
	// Nothing but this page's own script and style runs, nothing is
	// fetched from elsewhere, and no other site may frame it.
	h.Set("Content-Security-Policy", "default-src 'none'; script-src 'nonce-"+nonce+
		"'; style-src 'nonce-"+nonce+"'; img-src data:; connect-src 'self';"+
		" base-uri 'none'; form-action 'self'; frame-ancestors 'none'")
	h.Set("Content-Type", "text/html; charset=utf-8")
	h.Set("Cache-Control", "no-store")
	h.Set("Referrer-Policy", "no-referrer")
	h.Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(status)
	_ = pageTmpl.Execute(w, d)
}

func humanAge(d time.Duration) string {
	switch {
	case d <= 0:
		return ""
	case d%time.Minute == 0 && d >= time.Minute:
		n := int(d / time.Minute)
		if n == 1 {
			return "1 minute"
		}
		return itoa(int64(n)) + " minutes"
	}
	return itoa(int64(d/time.Second)) + " seconds"
}
