package main

import (
	"bytes"
	"fmt"

	"github.com/fasthttp/router"
	"github.com/valyala/fasthttp"
)

// routes lists every route parkd answers.
func (s *server) routes() fasthttp.RequestHandler {
	r := router.New()
	// Unknown paths get a JSON 404, never a redirect.
	r.RedirectTrailingSlash = false
	r.RedirectFixedPath = false
	// OPTIONS is a method like any other: 405 where the route exists.
	r.HandleOPTIONS = false
	r.HandleMethodNotAllowed = true
	r.NotFound = s.notFound
	r.MethodNotAllowed = s.methodNotAllowed
	r.PanicHandler = s.panicked
	r.SaveMatchedRoutePath = true // the route label of parkd_http_requests_total

	// The seed's API, sections 1-3 of the contract.
	r.GET("/api/request", s.park)
	r.GET("/api/serverStatus", s.serverStatus)
	r.PUT("/api/kill", s.kill)

	// parkd's own, section 4.
	r.GET("/healthz", s.healthz)
	r.GET("/readyz", s.readyz)
	r.GET("/metrics", s.serveMetrics)
	r.GET("/api/requests", s.listRequests)
	r.GET("/api/requests/{connId}", s.getRequest)
	r.DELETE("/api/requests/{connId}", s.deleteRequest)
	return s.counted(r.Handler)
}

// counted counts each answer by route and status code. A hijacked request
// has no answer yet (or never will: its client left); it is counted when
// it gets one.
func (s *server) counted(next fasthttp.RequestHandler) fasthttp.RequestHandler {
	return func(ctx *fasthttp.RequestCtx) {
		next(ctx)
		if !ctx.Hijacked() {
			s.metrics.answered(routeOf(ctx), ctx.Response.StatusCode())
		}
	}
}

func (s *server) notFound(ctx *fasthttp.RequestCtx) {
	s.writeError(ctx, withMessage(errRouteNotFound,
		"no route "+string(ctx.Method())+" "+string(ctx.Path())+"; see /api/request, /api/serverStatus, /api/kill, /api/requests"))
}

// methodNotAllowed runs with Allow already set by the router, which lists
// OPTIONS even though parkd refuses it; that entry is dropped.
func (s *server) methodNotAllowed(ctx *fasthttp.RequestCtx) {
	var allow []byte
	for m := range bytes.SplitSeq(ctx.Response.Header.Peek("Allow"), []byte(",")) {
		if m = bytes.TrimSpace(m); len(m) > 0 && string(m) != fasthttp.MethodOptions {
			if len(allow) > 0 {
				allow = append(allow, ", "...)
			}
			allow = append(allow, m...)
		}
	}
	ctx.Response.Header.SetBytesV("Allow", allow)
	s.writeError(ctx, withMessage(errMethodNotAllowed,
		string(ctx.Method())+" is not allowed on "+string(ctx.Path())+"; use "+string(allow)))
}

func (s *server) panicked(ctx *fasthttp.RequestCtx, v any) {
	ctx.ResetBody()
	s.writeError(ctx, fmt.Errorf("handler panicked: %v", v)) // logged there, not shown

}
