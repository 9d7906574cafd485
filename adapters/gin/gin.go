// Package ginadapter protects a gin-gonic/gin engine with a runtimeid
// engine. It is its own Go module, so that the core module never pulls
// gin into a build:
//
//	import ginadapter "github.com/runtimeid/runtimeid/adapters/gin"
//
//	r := gin.New()
//	r.Use(ginadapter.Middleware(eng))
//
// gin matches the route before it runs middleware, so every request is
// evaluated as the action "<METHOD> <pattern>" of the route that will
// run, from [gin.Context.FullPath], with gin's ":id" and "*path" written
// "{id}" and "{path...}" (see [runtimeid.ActionName]), such as
// "GET /api/orders/{id}": the same name the other adapters give, so one
// policy serves them all. Its sensitivity comes from
// [runtimeid.Config.Sensitivities]. A request that matches no route is
// evaluated as [runtimeid.Unmatched]. A single route takes its own action
// name and sensitivity with [Protect]:
//
//	r.POST("/api/payouts",
//		ginadapter.Protect(eng, "payout", runtimeid.High), h)
//
// The action is never derived from the raw path. By default gin routes
// on the decoded path, so "/api%2Fexport" runs the route "/api/export"
// and is evaluated as that route; set [gin.Engine.UseRawPath] to route on
// the escaped path as chi and echo do. Trailing-slash and fixed-path
// redirects happen before middleware and run no handler.
package ginadapter

import (
	"net/http"

	"github.com/gin-gonic/gin"

	"github.com/runtimeid/runtimeid"
	"github.com/runtimeid/runtimeid/adapters/internal/adapt"
)

// ContextKey is the key under which the evaluation is stored in the
// gin context: c.Get(ContextKey).
const ContextKey = "runtimeid"

// Middleware evaluates every request. Refused requests get the engine's
// enforcer response and the chain is aborted; the others continue with
// the evaluation in the gin context (see [Evaluation]) and in the request
// context (see [runtimeid.FromContext]). CORS preflights pass
// unevaluated (see [runtimeid.IsPreflight]). opts apply to every route.
func Middleware(eng *runtimeid.Engine, opts ...runtimeid.RouteOption) gin.HandlerFunc {
	return func(c *gin.Context) {
		a := eng.RouteAction(c.Request.Method, Pattern(c))
		check(eng, c, a, opts)
	}
}

// Protect returns a handler for one route that evaluates the request as
// the named action with its own sensitivity. Under [Middleware] the request is
// evaluated again as this action, reusing the identity the middleware
// verified (see [runtimeid.Evaluation.Nested]); both must allow it.
func Protect(eng *runtimeid.Engine, name string, s runtimeid.Sensitivity,
	opts ...runtimeid.RouteOption,
) gin.HandlerFunc {
	return func(c *gin.Context) {
		a := adapt.Route(eng, c.Request.Method, Pattern(c), name, s)
		check(eng, c, a, opts)
	}
}

func check(eng *runtimeid.Engine, c *gin.Context, a runtimeid.Action,
	opts []runtimeid.RouteOption,
) {
	r, ev, ok := adapt.Check(eng, c.Writer, c.Request, a, opts)
	if !ok {
		c.Abort()
		return
	}
	c.Request = r
	if ev != nil {
		c.Set(ContextKey, ev)
	}
	c.Next()
}

// Evaluation returns the evaluation of c's request, or nil outside a
// protected route. Treat it as read-only. The request context carries the
// same one: runtimeid.FromContext(c.Request.Context()).
func Evaluation(c *gin.Context) *runtimeid.Evaluation {
	v, _ := c.Get(ContextKey)
	ev, _ := v.(*runtimeid.Evaluation)
	return ev
}

// Pattern returns the normalised pattern of the route gin matched for c,
// or "" when none did.
func Pattern(c *gin.Context) string {
	return adapt.Normalize(c.FullPath())
}

// Handler adapts a net/http handler, which reads the evaluation with
// [runtimeid.FromContext], to gin.
func Handler(h http.Handler) gin.HandlerFunc { return gin.WrapH(h) }
