package ginadapter_test

import (
	"net/http"
	"strings"
	"testing"

	"github.com/gin-gonic/gin"

	"github.com/runtimeid/runtimeid"
	ginadapter "github.com/runtimeid/runtimeid/adapters/gin"
	"github.com/runtimeid/runtimeid/internal/conformance"
)

func init() { gin.SetMode(gin.ReleaseMode) }

func serve(c *gin.Context) {
	conformance.Serve(c.Writer, c.Request, ginadapter.Evaluation(c))
}

// ginPath writes a ServeMux pattern in gin's syntax.
func ginPath(p string) string {
	return strings.NewReplacer("{", ":", "}", "").Replace(p)
}

func build(rawPath bool) conformance.Build {
	return func(eng *runtimeid.Engine, routes []conformance.Route) http.Handler {
		r := gin.New()
		r.UseRawPath = rawPath
		r.Use(ginadapter.Middleware(eng))
		for _, rt := range routes {
			handlers := []gin.HandlerFunc{serve}
			if p := rt.Protect; p != nil {
				protect := ginadapter.Protect(eng, p.Name, p.Sensitivity)
				handlers = []gin.HandlerFunc{protect, serve}
			}
			r.Handle(rt.Method, ginPath(rt.Path), handlers...)
			if rt.Method == http.MethodGet {
				r.Handle(http.MethodHead, ginPath(rt.Path), handlers...)
			}
		}
		return r
	}
}

func TestConformance(t *testing.T) {
	conformance.Run(t, build(false))
}

func TestConformanceRawPath(t *testing.T) {
	conformance.Run(t, build(true))
}
