package echoadapter_test

import (
	"net/http"
	"strings"
	"testing"

	"github.com/labstack/echo/v4"

	"github.com/runtimeid/runtimeid"
	echoadapter "github.com/runtimeid/runtimeid/adapters/echo"
	"github.com/runtimeid/runtimeid/internal/conformance"
)

func serve(c echo.Context) error {
	conformance.Serve(c.Response(), c.Request(), echoadapter.Evaluation(c))
	return nil
}

// echoPath writes a ServeMux pattern in echo's syntax.
func echoPath(p string) string {
	return strings.NewReplacer("{", ":", "}", "").Replace(p)
}

func build(eng *runtimeid.Engine, routes []conformance.Route) http.Handler {
	e := echo.New()
	e.Use(echoadapter.Middleware(eng))
	for _, rt := range routes {
		var mw []echo.MiddlewareFunc
		if p := rt.Protect; p != nil {
			mw = append(mw, echoadapter.Protect(eng, p.Name, p.Sensitivity))
		}
		methods := []string{rt.Method}
		if rt.Method == http.MethodGet {
			methods = append(methods, http.MethodHead)
		}
		e.Match(methods, echoPath(rt.Path), serve, mw...)
	}
	return e
}

func TestConformance(t *testing.T) {
	conformance.Run(t, build)
}
