package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"os"
	"path"
	"path/filepath"
	"strings"
	"time"

	"github.com/runtimeid/runtimeid"
	"github.com/runtimeid/runtimeid/decision"
	"github.com/runtimeid/runtimeid/decision/upstream"
	"github.com/runtimeid/runtimeid/policy/config"
)

// maxKeyFile bounds the signing key file.
const maxKeyFile = 4 << 10

func runServe(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	fs.SetOutput(stderr)
	cfgPath := fs.String("config", "", "configuration file (required)")
	if err := fs.Parse(args); err != nil {
		return fmt.Errorf("%w: %w", errUsage, err)
	}
	if *cfgPath == "" || fs.NArg() != 0 {
		return fmt.Errorf("%w: serve needs -config FILE and nothing else", errUsage)
	}
	cfg, err := config.Load(*cfgPath)
	if err != nil {
		return err
	}
	b, err := cfg.Build(config.BuildOptions{Context: ctx, Stdout: stderr})
	if err != nil {
		return err
	}
	defer b.Close()
	p, err := newProxy(cfg, b, slog.New(slog.NewTextHandler(stderr, nil)))
	if err != nil {
		return err
	}
	return p.listen(ctx, cfg, stdout)
}

// proxy evaluates every request and forwards the allowed ones upstream
// with signed headers.
type proxy struct {
	built     *config.Built
	signer    *upstream.Signer
	prefix    string
	upstream  *url.URL
	stripAuth bool
	rp        *httputil.ReverseProxy
	log       *slog.Logger
}

func newProxy(cfg *config.File, b *config.Built, log *slog.Logger) (*proxy, error) {
	s := &cfg.Serve
	if s.Upstream == "" {
		return nil, &config.Error{
			File:   cfg.Name,
			Field:  "serve.upstream",
			Reason: "required by serve",
		}
	}
	key, err := readKey(cfg, s.SigningKeyFile)
	if err != nil {
		return nil, err
	}
	p := &proxy{built: b, prefix: s.HeaderPrefix, stripAuth: s.StripAuthorization, log: log}
	if p.prefix == "" {
		p.prefix = config.DefaultHeaderPrefix
	}
	if p.signer, err = upstream.NewSigner(key, p.prefix); err != nil {
		return nil, &config.Error{File: cfg.Name, Field: "serve.signing_key_file",
			Reason: "unusable", Err: err}
	}
	p.upstream, _ = url.Parse(s.Upstream) // checked by config
	p.rp = &httputil.ReverseProxy{Rewrite: p.rewrite, ErrorHandler: p.upstreamError}
	return p, nil
}

// readKey reads the signing secret; surrounding white space is not part
// of it.
func readKey(cfg *config.File, name string) ([]byte, error) {
	field := "serve.signing_key_file"
	if name == "" {
		return nil, &config.Error{File: cfg.Name, Field: field, Reason: "required by serve"}
	}
	if cfg.Dir != "" && !filepath.IsAbs(name) {
		name = filepath.Join(cfg.Dir, name)
	}
	f, err := os.Open(name)
	if err != nil {
		return nil, &config.Error{File: cfg.Name, Field: field, Reason: "cannot read", Err: err}
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, maxKeyFile+1))
	if err != nil || len(data) > maxKeyFile {
		return nil, &config.Error{File: cfg.Name, Field: field,
			Reason: fmt.Sprintf("unreadable or over %d bytes", maxKeyFile), Err: err}
	}
	return bytes.TrimSpace(data), nil
}

// ServeHTTP is the proxy's pipeline.
func (p *proxy) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	// 1. Nothing a client sends under the prefix may reach the upstream,
	// nor be read by anything before the proxy sets it.
	upstream.Strip(r.Header, p.prefix)

	// 2. The action is matched on the path the upstream will route; a
	// path the upstream could read differently (dot segments, encoded
	// slashes) is refused rather than guessed at.
	if !canonicalPath(r.URL) {
		writeProblem(w, http.StatusBadRequest, "invalid_path",
			"the request path is not in canonical form")
		return
	}
	action, opts := p.built.Routes.Match(r)
	action.Method = r.Method

	// 3. Evaluate and enforce; refused requests end here.
	ev := p.built.Engine.EvaluateRequest(r, action, opts...)
	if !p.built.Enforcer.Enforce(w, r, ev) {
		return
	}

	// 4. Forward with the evaluation in the context, for rewrite.
	p.rp.ServeHTTP(w, r.WithContext(runtimeid.NewContext(r.Context(), ev)))
}

// canonicalPath reports whether u's path is clean and holds no encoded
// "/", "\" or "." that an upstream might decode before routing.
func canonicalPath(u *url.URL) bool {
	p := u.Path
	if p == "" || p[0] != '/' {
		return false
	}
	clean := path.Clean(p)
	if strings.HasSuffix(p, "/") && clean != "/" {
		clean += "/"
	}
	if clean != p {
		return false
	}
	raw := strings.ToLower(u.RawPath)
	return !strings.Contains(raw, "%2f") && !strings.Contains(raw, "%5c") &&
		!strings.Contains(raw, "%2e")
}

// rewrite builds the upstream request: the upstream's URL, the usual
// X-Forwarded headers, and the signed headers of the decision.
func (p *proxy) rewrite(pr *httputil.ProxyRequest) {
	pr.SetURL(p.upstream)
	pr.SetXForwarded()
	if p.stripAuth {
		pr.Out.Header.Del("Authorization")
	}
	ev := runtimeid.FromContext(pr.In.Context())
	v := upstream.Values{Time: ev.Time, Outcome: ev.Decision.Outcome.String(),
		Rule: ev.Decision.Rule, Score: ev.Assessment.Score, Findings: ev.Assessment.Codes()}
	if id := ev.Identity; id != nil {
		v.Subject, v.Session, v.ACR = id.Subject, id.SessionID, id.ACR
	}
	p.signer.Sign(pr.Out.Header, pr.Out.Method, pr.Out.URL.RequestURI(), v)
}

// upstreamError answers 502 when the upstream cannot be reached.
func (p *proxy) upstreamError(w http.ResponseWriter, r *http.Request, err error) {
	p.log.LogAttrs(r.Context(), slog.LevelError, "runtimeid: upstream failed",
		slog.String("error", err.Error()))
	writeProblem(w, http.StatusBadGateway, "upstream_unavailable",
		"the upstream service did not answer")
}

// writeProblem writes an RFC 9457 problem+json body.
func writeProblem(w http.ResponseWriter, status int, code, detail string) {
	w.Header().Set("Content-Type", "application/problem+json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(map[string]any{
		"type": decision.ProblemTypePrefix + code, "title": http.StatusText(status),
		"status": status, "code": code, "detail": detail,
	})
}

// listen serves the proxy, and the live view on its own listener, until
// ctx is done.
func (p *proxy) listen(ctx context.Context, cfg *config.File, stdout io.Writer) error {
	addr := cmpString(cfg.Serve.Listen, config.DefaultListen)
	servers := []*http.Server{newServer(addr, p)}
	fmt.Fprintf(stdout, "runtimeid: proxying http://%s to %s\n", addr, p.upstream.Redacted())
	if v := p.built.Live; v != nil {
		mux := http.NewServeMux()
		livePath := cmpString(cfg.Live.Path, config.DefaultLivePath)
		mux.Handle(livePath, v)
		laddr := cmpString(cfg.Live.Listen, config.DefaultLiveListen)
		servers = append(servers, newServer(laddr, mux))
		fmt.Fprintf(stdout, "runtimeid: live view on http://%s%s\n", laddr, livePath)
	}

	errc := make(chan error, len(servers))
	for _, s := range servers {
		ln, err := net.Listen("tcp", s.Addr)
		if err != nil {
			shutdown(servers)
			return err
		}
		go func() { errc <- s.Serve(ln) }()
	}
	select {
	case <-ctx.Done():
	case err := <-errc:
		if !errors.Is(err, http.ErrServerClosed) {
			shutdown(servers)
			return err
		}
	}
	shutdown(servers)
	return nil
}

func newServer(addr string, h http.Handler) *http.Server {
	return &http.Server{Addr: addr, Handler: h, ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout: 2 * time.Minute, MaxHeaderBytes: 64 << 10}
}

func shutdown(servers []*http.Server) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for _, s := range servers {
		s.Shutdown(ctx)
	}
}

func cmpString(s, def string) string {
	if s == "" {
		return def
	}
	return s
}
