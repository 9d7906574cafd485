package servemux

import (
	"net/http"
	"net/http/httptest"
	"net/url"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

var patterns = []string{
	"GET /api/orders",
	"GET /api/orders/{id}",
	"POST /api/orders/{id}/items/",
	"/tree/",
	"/exact/{$}",
	"GET /files/{path...}",
	"GET example.test/hosted",
	"/w/{a}/{b}/",
}

// routedMux returns a mux whose handlers write the pattern they run for.
func routedMux() *http.ServeMux {
	mux := http.NewServeMux()
	for _, p := range patterns {
		mux.HandleFunc(p, func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("X-Ran", patternPath(r.Pattern))
		})
	}
	return mux
}

// ran serves r with mux and returns the pattern whose handler ran, or ""
// when the mux itself answered (404, 405 or a redirect).
func ran(mux *http.ServeMux, r *http.Request) string {
	w := httptest.NewRecorder()
	mux.ServeHTTP(w, r)
	return w.Header().Get("X-Ran")
}

func TestPatternIsTheRouteThatRuns(t *testing.T) {
	mux := routedMux()
	tests := []struct{ method, target, want string }{
		{"GET", "/api/orders", "/api/orders"},
		{"HEAD", "/api/orders/7", "/api/orders/{id}"},
		{"GET", "/api//orders", ""},
		{"GET", "/api/./orders", ""},
		{"GET", "/API/orders", ""},
		{"POST", "/api/orders", ""},
		{"GET", "/tree", ""},
		{"GET", "/tree/", "/tree/"},
		{"GET", "/tree/leaf", "/tree/"},
		{"GET", "/exact", ""},
		{"GET", "/exact/", "/exact/{$}"},
		{"GET", "/files/a/b", "/files/{path...}"},
		{"GET", "/files/", "/files/{path...}"},
		{"GET", "/files", ""},
		{"GET", "/w/x/y", ""},
		{"GET", "/w/x/y/", "/w/{a}/{b}/"},
		{"GET", "/w/x/y/z", "/w/{a}/{b}/"},
		{"GET", "http://example.test/hosted", "example.test/hosted"},
		{"CONNECT", "/tree", ""},
	}
	for _, tt := range tests {
		r := httptest.NewRequest(tt.method, tt.target, nil)
		assert.Equal(t, tt.want, Pattern(mux, r), "%s %s", tt.method, tt.target)
		assert.Equal(t, ran(mux, r), Pattern(mux, r), "%s %s", tt.method, tt.target)
	}
}

// FuzzPattern checks, for any path, that Pattern names exactly the route
// whose handler the mux runs, and "" when it runs none.
func FuzzPattern(f *testing.F) {
	for _, s := range []string{"/api/orders", "/api//orders", "/tree", "/exact",
		"/w/x/y", "/w/b/c/", "/files/%2e%2e/x", "/api/%6Frders", "/..", ""} {
		f.Add("GET", s)
	}
	mux := routedMux()
	f.Fuzz(func(t *testing.T, method, path string) {
		u, err := url.Parse("http://host.test" + path)
		if err != nil || len(method) == 0 || len(method) > 8 {
			return
		}
		r, err := http.NewRequest(method, u.String(), nil)
		if err != nil {
			return
		}
		r.RequestURI = u.RequestURI()
		require.Equal(t, ran(mux, r), Pattern(mux, r), "%s %q", method, path)
	})
}
