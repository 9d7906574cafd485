package demo

import (
	"flag"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"testing"
	"time"

	"github.com/runtimeid/runtimeid"
)

// Main is the whole main of a router example: it parses -addr (default
// addr), makes a signing key and an engine, prints sample curl commands
// and serves the router that build returns. name prefixes errors.
func Main(name, addr string, build func(*runtimeid.Engine) http.Handler) {
	listen := flag.String("addr", addr, "address to listen on")
	flag.Parse()
	if err := serve(*listen, build); err != nil {
		fmt.Fprintln(os.Stderr, name+":", err)
		os.Exit(1)
	}
}

func serve(addr string, build func(*runtimeid.Engine) http.Handler) error {
	is, err := NewIssuer()
	if err != nil {
		return err
	}
	logger := slog.New(slog.NewTextHandler(os.Stderr, nil))
	eng, err := NewEngine(is, nil, logger)
	if err != nil {
		return err
	}
	if err := PrintSamples(os.Stdout, is, "http://"+addr); err != nil {
		return err
	}
	srv := &http.Server{Addr: addr, Handler: build(eng), ReadHeaderTimeout: 5 * time.Second}
	return srv.ListenAndServe()
}

// CheckRouter is the test every router example passes: the router build
// returns must answer the sample requests alike, whatever the framework.
func CheckRouter(t *testing.T, build func(*runtimeid.Engine) http.Handler) {
	t.Helper()
	is, err := NewIssuer()
	if err != nil {
		t.Fatal(err)
	}
	eng, err := NewEngine(is, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	fresh, stale, err := is.Tokens(time.Now())
	if err != nil {
		t.Fatal(err)
	}
	h := build(eng)

	tests := []struct {
		method, path, token string
		status              int
		body                string
	}{
		{"GET", "/api/orders/42", stale, 200,
			"order 42 for alice (action \"GET /api/orders/{id}\")\n"},
		{"POST", "/api/transfers", stale, 401, ""},
		{"POST", "/api/transfers", fresh, 200, "transfer accepted\n"},
		{"GET", "/api/export", stale, 401, ""},
		{"GET", "/api/export", fresh, 200, "export started\n"},
		{"GET", "/nope", "", 401, ""},
	}
	for _, tt := range tests {
		r := httptest.NewRequest(tt.method, tt.path, nil)
		if tt.token != "" {
			r.Header.Set("Authorization", "Bearer "+tt.token)
		}
		w := httptest.NewRecorder()
		h.ServeHTTP(w, r)
		if w.Code != tt.status {
			t.Errorf("%s %s: status %d, want %d", tt.method, tt.path, w.Code, tt.status)
		}
		if tt.body != "" && w.Body.String() != tt.body {
			t.Errorf("%s %s: body %q, want %q", tt.method, tt.path, w.Body.String(), tt.body)
		}
	}
}
