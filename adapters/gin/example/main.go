// Command example is a small gin API protected by runtimeid with one
// line, r.Use(ginadapter.Middleware(eng)), and one route with its own
// action.
//
// It makes its own signing key, prints curl commands with sample tokens
// and serves on 127.0.0.1:8084.
package main

import (
	"flag"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/runtimeid/runtimeid"
	ginadapter "github.com/runtimeid/runtimeid/adapters/gin"
	"github.com/runtimeid/runtimeid/internal/conformance/demo"
)

func main() {
	addr := flag.String("addr", "127.0.0.1:8084", "address to listen on")
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
	gin.SetMode(gin.ReleaseMode)
	srv := &http.Server{Addr: addr, Handler: newRouter(eng), ReadHeaderTimeout: 5 * time.Second}
	return srv.ListenAndServe()
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
