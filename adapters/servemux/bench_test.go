package servemux

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"testing"
)

// BenchmarkPattern measures finding the route of a request among 50.
func BenchmarkPattern(b *testing.B) {
	mux := http.NewServeMux()
	for i := range 50 {
		mux.HandleFunc(fmt.Sprintf("GET /api/r%d/{id}", i), func(http.ResponseWriter, *http.Request) {})
	}
	r := httptest.NewRequest("GET", "/api/r42/7", nil)
	b.ReportAllocs()
	for b.Loop() {
		if Pattern(mux, r) == "" {
			b.Fatal("no route")
		}
	}
}
