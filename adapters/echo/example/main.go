// Command example is a small echo API protected by runtimeid with one
// line, e.Use(echoadapter.Middleware(eng)), and one route with its own
// action.
//
// It makes its own signing key, prints curl commands with sample tokens
// and serves on 127.0.0.1:8085.
package main

import (
	"flag"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/runtimeid/runtimeid"
	echoadapter "github.com/runtimeid/runtimeid/adapters/echo"
	"github.com/runtimeid/runtimeid/internal/conformance/demo"
)

func main() {
	addr := flag.String("addr", "127.0.0.1:8085", "address to listen on")
	flag.Parse()
	if err := run(*addr); err != nil {
		fmt.Fprintln(os.Stderr, "example:", err)
		os.Exit(1)
	}
}

func run(addr string) error {
	is, err := demo.NewIssuer()
	if err != nil {
		return err
	}
	logger := slog.New(slog.NewTextHandler(os.Stderr, nil))
	eng, err := demo.NewEngine(is, nil, logger)
	if err != nil {
		return err
	}
	if err := demo.PrintSamples(os.Stdout, is, "http://"+addr); err != nil {
		return err
	}
	srv := &http.Server{Addr: addr, Handler: newRouter(eng), ReadHeaderTimeout: 5 * time.Second}
	return srv.ListenAndServe()
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
