package chiadapter_test

import (
	"net/http"
	"testing"

	"github.com/go-chi/chi/v5"
	"github.com/go-chi/chi/v5/middleware"

	"github.com/runtimeid/runtimeid"
	chiadapter "github.com/runtimeid/runtimeid/adapters/chi"
	"github.com/runtimeid/runtimeid/internal/conformance"
)

func serve(w http.ResponseWriter, r *http.Request) {
	conformance.Serve(w, r, runtimeid.FromContext(r.Context()))
}

func build(eng *runtimeid.Engine, routes []conformance.Route) http.Handler {
	r := chi.NewRouter()
	r.Use(middleware.GetHead, chiadapter.Middleware(eng))
	for _, rt := range routes {
		route := chi.Router(r)
		if p := rt.Protect; p != nil {
			route = r.With(chiadapter.Protect(eng, p.Name, p.Sensitivity))
		}
		route.MethodFunc(rt.Method, rt.Path, serve)
	}
	return r
}

func TestConformance(t *testing.T) {
	conformance.Run(t, build)
}

// The middleware sees the same route inside a mounted sub-router, and
// with GetHead registered after it.
func TestConformanceMounted(t *testing.T) {
	conformance.Run(t, func(eng *runtimeid.Engine, routes []conformance.Route) http.Handler {
		r := chi.NewRouter()
		r.Use(chiadapter.Middleware(eng), middleware.GetHead)
		api := chi.NewRouter()
		for _, rt := range routes {
			target, path := chi.Router(r), rt.Path
			if len(path) > 4 && path[:5] == "/api/" {
				target, path = api, path[4:]
			}
			if p := rt.Protect; p != nil {
				target = target.With(chiadapter.Protect(eng, p.Name, p.Sensitivity))
			}
			target.MethodFunc(rt.Method, path, serve)
		}
		r.Mount("/api", api)
		return r
	})
}
