// Command sse streams server-sent events to a client for as long as the
// session behind the stream may act, and closes the stream when it may
// no longer: the token expired, or the login became too old for the
// stream's high sensitivity (the default policy wants one in the last
// five minutes), so the client must step up.
//
// runtimeid evaluates the request once, when the stream opens; the
// handler then asks the engine to watch the evaluation
// ([runtimeid.Engine.Watch]) and ends the stream with the event
//
//	event: runtimeid
//	data: step-up required
//
// when a recheck challenges. It makes its own signing key, prints a curl
// command and serves on 127.0.0.1:8083; the watch rechecks every ten
// seconds, so a FRESH token's stream ends about five minutes after it
// was minted.
//
// Its issuer and engine come from this repository's internal demo
// package, so the file cannot be copied into another module as it is;
// examples/quickstart builds the same parts in the open.
package main

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"time"

	"github.com/runtimeid/runtimeid"
	"github.com/runtimeid/runtimeid/adapters/servemux"
	"github.com/runtimeid/runtimeid/internal/conformance/demo"
)

func main() {
	addr := flag.String("addr", "127.0.0.1:8083", "address to listen on")
	flag.Parse()
	if err := run(*addr); err != nil {
		fmt.Fprintln(os.Stderr, "sse:", err)
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
	fresh, _, err := is.Tokens(time.Now())
	if err != nil {
		return err
	}
	fmt.Printf("export FRESH=%s\n\n"+
		"# a tick every 5s; after about 5 minutes: event runtimeid, step-up required\n"+
		"curl -N http://%s/api/events -H \"Authorization: Bearer $FRESH\"\n",
		fresh, addr)

	s := &stream{
		eng:   eng,
		watch: runtimeid.WatchOptions{Interval: 10 * time.Second},
		every: 5 * time.Second,
	}
	srv := &http.Server{Addr: addr, Handler: s.routes(), ReadHeaderTimeout: 5 * time.Second}
	return srv.ListenAndServe()
}

// stream serves the event stream.
type stream struct {
	eng   *runtimeid.Engine
	watch runtimeid.WatchOptions
	every time.Duration // between ticks; zero: no ticks
}

func (s *stream) routes() http.Handler {
	mux := http.NewServeMux()
	events := servemux.Protect(s.eng, "events", runtimeid.High)
	mux.Handle("GET /api/events", events(http.HandlerFunc(s.events)))
	return servemux.Wrap(s.eng, mux)
}

func (s *stream) events(w http.ResponseWriter, r *http.Request) {
	flusher, ok := w.(http.Flusher)
	if !ok {
		http.Error(w, "streaming unsupported", http.StatusInternalServerError)
		return
	}
	ev := runtimeid.FromContext(r.Context())
	h := w.Header()
	h.Set("Content-Type", "text/event-stream")
	h.Set("Cache-Control", "no-store")
	fmt.Fprintf(w, "event: hello\ndata: %s\n\n", ev.Identity.Subject)
	flusher.Flush()

	// Watch until the client leaves; cancel stops the watch.
	ctx, cancel := context.WithCancel(r.Context())
	defer cancel()
	ended := s.eng.Watch(ctx, ev, s.watch)

	var ticks <-chan time.Time
	if s.every > 0 {
		t := time.NewTicker(s.every)
		defer t.Stop()
		ticks = t.C
	}
	for {
		select {
		case <-ctx.Done():
			return
		case t := <-ticks:
			fmt.Fprintf(w, "event: tick\ndata: %s\n\n", t.UTC().Format(time.RFC3339))
			flusher.Flush()
		case next, ok := <-ended:
			if ok {
				fmt.Fprintf(w, "event: runtimeid\ndata: %s\n\n", why(next))
				flusher.Flush()
			}
			return
		}
	}
}

// why tells the client what to do: step up, or sign in again.
func why(ev *runtimeid.Evaluation) string {
	if ev.Decision.Outcome == runtimeid.Challenge {
		return "step-up required"
	}
	return "session ended: " + ev.Decision.Reason
}
