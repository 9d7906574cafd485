// Command servemux is a small net/http API protected by runtimeid with
// one line, servemux.Wrap(eng, mux), and one route with its own action.
//
// It makes its own signing key, prints curl commands with sample tokens
// and serves on 127.0.0.1:8082.
package main

import (
	"fmt"
	"net/http"

	"github.com/runtimeid/runtimeid"
	"github.com/runtimeid/runtimeid/adapters/servemux"
	"github.com/runtimeid/runtimeid/internal/conformance/demo"
)

func main() {
	demo.Main("servemux", "127.0.0.1:8082", newRouter)
}

func newRouter(eng *runtimeid.Engine) http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /api/orders/{id}", func(w http.ResponseWriter, r *http.Request) {
		ev := runtimeid.FromContext(r.Context())
		fmt.Fprintf(w, "order %s for %s (action %q)\n",
			r.PathValue("id"), ev.Identity.Subject, ev.Action.Name)
	})
	mux.HandleFunc("POST /api/transfers", func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintln(w, "transfer accepted")
	})
	// One route with its own action name and sensitivity.
	export := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintln(w, "export started")
	})
	mux.Handle("GET /api/export", servemux.Protect(eng, "export", runtimeid.High)(export))
	return servemux.Wrap(eng, mux)
}
