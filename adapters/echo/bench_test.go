package echoadapter_test

import (
	"fmt"
	"net/http/httptest"
	"testing"

	"github.com/labstack/echo/v4"

	echoadapter "github.com/runtimeid/runtimeid/adapters/echo"
)

// BenchmarkPattern measures checking the matched route among 50, which
// walks echo's route list.
func BenchmarkPattern(b *testing.B) {
	e := echo.New()
	var got string
	e.Use(func(next echo.HandlerFunc) echo.HandlerFunc {
		return func(c echo.Context) error {
			got = echoadapter.Pattern(c)
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
