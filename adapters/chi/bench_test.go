package chiadapter_test

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/go-chi/chi/v5"

	chiadapter "github.com/runtimeid/runtimeid/adapters/chi"
)

// BenchmarkPattern measures finding the route of a request among 50
// before chi routes it.
func BenchmarkPattern(b *testing.B) {
	r := chi.NewRouter()
	var got string
	r.Use(func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
			got = chiadapter.Pattern(req)
		})
	})
	for i := range 50 {
		r.Get(fmt.Sprintf("/api/r%d/{id}", i), func(http.ResponseWriter, *http.Request) {})
	}
	req := httptest.NewRequest("GET", "/api/r42/7", nil)
	w := httptest.NewRecorder()
	b.ReportAllocs()
	for b.Loop() {
		r.ServeHTTP(w, req)
	}
	if got != "/api/r42/{id}" {
		b.Fatalf("pattern %q", got)
	}
}
