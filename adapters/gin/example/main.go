// Command example is a small gin API protected by runtimeid with one
// line, r.Use(ginadapter.Middleware(eng)), and one route with its own
// action.
//
// It makes its own signing key, prints curl commands with sample tokens
// and serves on 127.0.0.1:8084.
package main

import (
	"net/http"

	"github.com/gin-gonic/gin"

	"github.com/runtimeid/runtimeid"
	ginadapter "github.com/runtimeid/runtimeid/adapters/gin"
	"github.com/runtimeid/runtimeid/internal/conformance/demo"
)

func main() {
	gin.SetMode(gin.ReleaseMode)
	demo.Main("example", "127.0.0.1:8084", newRouter)
}

func newRouter(eng *runtimeid.Engine) http.Handler {
	r := gin.New()
	r.Use(ginadapter.Middleware(eng))

	r.GET("/api/orders/:id", func(c *gin.Context) {
		ev := ginadapter.Evaluation(c)
		c.String(http.StatusOK, "order %s for %s (action %q)\n",
			c.Param("id"), ev.Identity.Subject, ev.Action.Name)
	})
	r.POST("/api/transfers", func(c *gin.Context) {
		c.String(http.StatusOK, "transfer accepted\n")
	})
	// One route with its own action name and sensitivity.
	r.GET("/api/export", ginadapter.Protect(eng, "export", runtimeid.High),
		func(c *gin.Context) { c.String(http.StatusOK, "export started\n") })
	return r
}
