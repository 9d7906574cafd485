package chiadapter_test

import (
	"net/http"
	"net/http/httptest"
	"net/url"
	"testing"

	"github.com/go-chi/chi/v5"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	chiadapter "github.com/runtimeid/runtimeid/adapters/chi"
)

// routedMux returns a router whose middleware notes the pattern Pattern
// predicts and whose handlers note the pattern that ran.
func routedMux() http.Handler {
	r := chi.NewRouter()
	r.Use(func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
			w.Header().Set("X-Predicted", chiadapter.Pattern(req))
			next.ServeHTTP(w, req)
		})
	})
	ran := func(w http.ResponseWriter, req *http.Request) {
		w.Header().Set("X-Ran", req.Pattern)
	}
	r.Get("/api/orders", ran)
	r.Get("/api/orders/{id:[0-9]+}", ran)
	r.Post("/api/orders/{id}/items", ran)
	r.Handle("/any", http.HandlerFunc(ran))
	r.Get("/files/*", ran)
	r.Route("/v2", func(v chi.Router) {
		v.Get("/", ran)
		v.Get("/users/{user}", ran)
	})
	return r
}

func probe(h http.Handler, method, target string) (predicted, ran string) {
	w := httptest.NewRecorder()
	h.ServeHTTP(w, httptest.NewRequest(method, target, nil))
	return w.Header().Get("X-Predicted"), w.Header().Get("X-Ran")
}

func TestPatternIsTheRouteThatRuns(t *testing.T) {
	h := routedMux()
	tests := []struct{ method, target, want string }{
		{"GET", "/api/orders", "/api/orders"},
		{"GET", "/api/orders/7", "/api/orders/{id}"},
		{"GET", "/api/orders/x", ""},
		{"POST", "/api/orders/x/items", "/api/orders/{id}/items"},
		{"DELETE", "/any", "/any"},
		{"GET", "/files/a/b", "/files/*"},
		{"GET", "/v2/users/bob", "/v2/users/{user}"},
		{"GET", "/api//orders", ""},
		{"GET", "/api/orders%2F7", ""},
		{"PUT", "/api/orders", ""},
	}
	for _, tt := range tests {
		predicted, ran := probe(h, tt.method, tt.target)
		assert.Equal(t, tt.want, predicted, "%s %s", tt.method, tt.target)
		if ran != "" {
			assert.Equal(t, chiPattern(tt.want), ran, "%s %s", tt.method, tt.target)
		}
	}
}

// chiPattern is the pattern chi reports for a normalised one.
func chiPattern(p string) string {
	if p == "/api/orders/{id}" {
		return "/api/orders/{id:[0-9]+}"
	}
	return p
}

// FuzzPattern checks that Pattern predicts a route exactly when chi runs
// one.
func FuzzPattern(f *testing.F) {
	for _, s := range []string{"/api/orders", "/api/orders/1", "/v2/", "/v2",
		"/files/", "/any/", "/api/orders/1/items", "/api%2Forders"} {
		f.Add("GET", s)
	}
	h := routedMux()
	f.Fuzz(func(t *testing.T, method, path string) {
		u, err := url.Parse("http://host.test" + path)
		if err != nil || u.Path == "" {
			return
		}
		req, err := http.NewRequest(method, u.String(), nil)
		if err != nil {
			return
		}
		w := httptest.NewRecorder()
		h.ServeHTTP(w, req)
		predicted, ran := w.Header().Get("X-Predicted"), w.Header().Get("X-Ran")
		require.Equal(t, ran != "", predicted != "", "%s %q: predicted %q, ran %q",
			method, path, predicted, ran)
	})
}
