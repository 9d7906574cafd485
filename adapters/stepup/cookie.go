package stepup

import "net/http"

// CookieToken returns middleware that gives a request without an
// Authorization header the access token of the cookie name, as a
// Bearer token, so that the engine evaluates browser requests whose
// token lives in a cookie. A request with its own Authorization header
// is left alone.
//
// The engine does not stop cross-site request forgery: set the cookie
// HttpOnly, Secure and SameSite=Lax or Strict, and protect
// state-changing routes as usual.
func CookieToken(name string) func(http.Handler) http.Handler {
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.Header.Get("Authorization") == "" {
				if c, err := r.Cookie(name); err == nil && c.Value != "" {
					r = r.Clone(r.Context())
					r.Header.Set("Authorization", "Bearer "+c.Value)
				}
			}
			next.ServeHTTP(w, r)
		})
	}
}
