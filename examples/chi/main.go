// Command chi is a small chi API protected by runtimeid with one line,
// r.Use(chiadapter.Middleware(eng)), and one route with its own action.
//
// It makes its own signing key, prints curl commands with sample tokens
// and serves on 127.0.0.1:8081.
package main

import (
	"fmt"
	"net/http"

	"github.com/go-chi/chi/v5"
	"github.com/go-chi/chi/v5/middleware"

	"github.com/runtimeid/runtimeid"
	chiadapter "github.com/runtimeid/runtimeid/adapters/chi"
	"github.com/runtimeid/runtimeid/internal/conformance/demo"
)

func main() {
	demo.Main("chi", "127.0.0.1:8081", newRouter)
}

func newRouter(eng *runtimeid.Engine) http.Handler {
	r := chi.NewRouter()
	r.Use(middleware.GetHead)
	r.Use(chiadapter.Middleware(eng))

	r.Get("/api/orders/{id}", func(w http.ResponseWriter, r *http.Request) {
		ev := runtimeid.FromContext(r.Context())
		fmt.Fprintf(w, "order %s for %s (action %q)\n",
			chi.URLParam(r, "id"), ev.Identity.Subject, ev.Action.Name)
	})
	r.Post("/api/transfers", func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintln(w, "transfer accepted")
	})
	// One route with its own action name and sensitivity.
	r.With(chiadapter.Protect(eng, "export", runtimeid.High)).
		Get("/api/export", func(w http.ResponseWriter, r *http.Request) {
			fmt.Fprintln(w, "export started")
		})
	return r
}
