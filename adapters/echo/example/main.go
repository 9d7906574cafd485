// Command example is a small echo API protected by runtimeid with one
// line, e.Use(echoadapter.Middleware(eng)), and one route with its own
// action.
//
// It makes its own signing key, prints curl commands with sample tokens
// and serves on 127.0.0.1:8085.
package main

import (
	"fmt"
	"net/http"

	"github.com/labstack/echo/v4"

	"github.com/runtimeid/runtimeid"
	echoadapter "github.com/runtimeid/runtimeid/adapters/echo"
	"github.com/runtimeid/runtimeid/internal/conformance/demo"
)

func main() {
	demo.Main("example", "127.0.0.1:8085", newRouter)
}

func newRouter(eng *runtimeid.Engine) http.Handler {
	e := echo.New()
	e.Use(echoadapter.Middleware(eng))

	e.GET("/api/orders/:id", func(c echo.Context) error {
		ev := echoadapter.Evaluation(c)
		return c.String(http.StatusOK, fmt.Sprintf("order %s for %s (action %q)\n",
			c.Param("id"), ev.Identity.Subject, ev.Action.Name))
	})
	e.POST("/api/transfers", func(c echo.Context) error {
		return c.String(http.StatusOK, "transfer accepted\n")
	})
	// One route with its own action name and sensitivity.
	e.GET("/api/export", func(c echo.Context) error {
		return c.String(http.StatusOK, "export started\n")
	}, echoadapter.Protect(eng, "export", runtimeid.High))
	return e
}
