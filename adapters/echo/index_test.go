package echoadapter

import (
	"fmt"
	"net/http/httptest"
	"testing"

	"github.com/labstack/echo/v4"
	"github.com/stretchr/testify/assert"
)

// TestRouteIndex checks that the index answers as the walk does: it
// remembers routes found, finds routes added later, and never
// remembers a path echo names for its own 404 or 405.
func TestRouteIndex(t *testing.T) {
	var x routeIndex
	e := echo.New()
	var got, walked string
	e.Use(func(next echo.HandlerFunc) echo.HandlerFunc {
		return func(c echo.Context) error {
			got, walked = x.pattern(c), Pattern(c)
			return nil
		}
	})
	noop := func(echo.Context) error { return nil }
	e.GET("/a/:id", noop)
	serve := func(method, target string) string {
		e.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest(method, target, nil))
		assert.Equal(t, walked, got, "%s %s", method, target)
		return got
	}

	assert.Equal(t, "/a/{id}", serve("GET", "/a/1"))
	assert.Equal(t, "/a/{id}", serve("GET", "/a/2"))
	assert.Len(t, x.known, 1)
	assert.Equal(t, "", serve("POST", "/a/1")) // 405
	assert.Equal(t, "", serve("GET", "/b/1"))  // 404
	assert.Len(t, x.known, 1)

	e.POST("/a/:id", noop)
	assert.Equal(t, "/a/{id}", serve("POST", "/a/1"))
	assert.Len(t, x.known, 2)
}

// benchPattern serves a request among 50 routes to a middleware that
// finds its pattern with find.
func benchPattern(b *testing.B, find func(echo.Context) string) {
	e := echo.New()
	var got string
	e.Use(func(next echo.HandlerFunc) echo.HandlerFunc {
		return func(c echo.Context) error {
			got = find(c)
			return nil
		}
	})
	for i := range 50 {
		e.GET(fmt.Sprintf("/api/r%d/:id", i), func(echo.Context) error { return nil })
	}
	req := httptest.NewRequest("GET", "/api/r42/7", nil)
	w := httptest.NewRecorder()
	b.ReportAllocs()
	for b.Loop() {
		e.ServeHTTP(w, req)
	}
	if got != "/api/r42/{id}" {
		b.Fatalf("pattern %q", got)
	}
}

// BenchmarkPattern checks the matched route among 50 by walking echo's
// route list.
func BenchmarkPattern(b *testing.B) { benchPattern(b, Pattern) }

// BenchmarkIndexedPattern is the same through the index that Middleware
// and Protect keep.
func BenchmarkIndexedPattern(b *testing.B) {
	var x routeIndex
	benchPattern(b, x.pattern)
}
