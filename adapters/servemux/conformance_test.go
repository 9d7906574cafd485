package servemux_test

import (
	"net/http"
	"testing"

	"github.com/runtimeid/runtimeid"
	"github.com/runtimeid/runtimeid/adapters/servemux"
	"github.com/runtimeid/runtimeid/internal/conformance"
)

func serve(w http.ResponseWriter, r *http.Request) {
	conformance.Serve(w, r, runtimeid.FromContext(r.Context()))
}

func build(eng *runtimeid.Engine, routes []conformance.Route) http.Handler {
	mux := http.NewServeMux()
	for _, rt := range routes {
		var h http.Handler = http.HandlerFunc(serve)
		if p := rt.Protect; p != nil {
			h = servemux.Protect(eng, p.Name, p.Sensitivity)(h)
		}
		mux.Handle(rt.Method+" "+rt.Path, h)
	}
	return servemux.Wrap(eng, mux)
}

func TestConformance(t *testing.T) {
	conformance.Run(t, build)
}
