package main

import (
	"bytes"
	"fmt"
	"slices"
	"strings"

	"github.com/fasthttp/router"
	"github.com/parkd/parkd/dashboard"
	"github.com/valyala/fasthttp"
)

// headerInstance names the instance that answered, on every answer.
const headerInstance = "Parkd-Instance"

// routePark is the path parked requests come in on; their answers, written
// after the handler returned, are counted under it.
const routePark = "/api/request"

// routes lists every route parkd answers; docs/API.md describes them.
func (s *server) routes() fasthttp.RequestHandler {
	table := []struct {
		method, path string
		handle       fasthttp.RequestHandler
	}{
		// The seed's API, sections 1-3 of docs/API.md.
		{fasthttp.MethodGet, routePark, s.park},
		{fasthttp.MethodGet, "/api/serverStatus", s.serverStatus},
		{fasthttp.MethodPut, "/api/kill", s.kill},

		// parkd's own, section 4.
		{fasthttp.MethodGet, "/healthz", s.healthz},
		{fasthttp.MethodGet, "/readyz", s.readyz},
		{fasthttp.MethodGet, "/metrics", s.serveMetrics},
		{fasthttp.MethodGet, "/api/requests", s.listRequests},
		{fasthttp.MethodGet, "/api/requests/{connId}", s.getRequest},
		{fasthttp.MethodDelete, "/api/requests/{connId}", s.deleteRequest},
		{fasthttp.MethodGet, "/openapi.yaml", s.openAPI},

		// What happened, section 7.
		{fasthttp.MethodGet, "/api/history", s.historyList},
		{fasthttp.MethodGet, "/api/events", s.eventStream},

		// The dashboard, section 8.
		{fasthttp.MethodGet, "/", s.dashboardPage},
		{fasthttp.MethodGet, dashboard.Prefix + "{asset}", s.dashboardAsset},
	}

	r := router.New()
	// Unknown paths get a JSON 404, never a redirect.
	r.RedirectTrailingSlash = false
	r.RedirectFixedPath = false
	// OPTIONS is a method like any other: 405 where the route exists.
	r.HandleOPTIONS = false
	r.HandleMethodNotAllowed = true
	r.MethodNotAllowed = s.methodNotAllowed
	r.PanicHandler = s.panicked
	r.SaveMatchedRoutePath = true // the route label of parkd_http_requests_total
	var paths []string
	for _, rt := range table {
		r.Handle(rt.method, rt.path, rt.handle)
		if !slices.Contains(paths, rt.path) {
			paths = append(paths, rt.path)
		}
	}
	known := strings.Join(paths, ", ")
	r.NotFound = func(ctx *fasthttp.RequestCtx) { s.notFound(ctx, known) }
	return s.counted(r.Handler)
}

// counted names the instance on every answer, and counts each answer by
// route and status code. A hijacked request has no answer yet (or never
// will: its client left); it is counted when it gets one.
func (s *server) counted(next fasthttp.RequestHandler) fasthttp.RequestHandler {
	return func(ctx *fasthttp.RequestCtx) {
		ctx.Response.Header.SetBytesV(headerInstance, s.instance)
		next(ctx)
		if !ctx.Hijacked() {
			s.metrics.answered(routeOf(ctx), ctx.Response.StatusCode())
		}
	}
}

// routeOf is the route template a request matched, never its raw path:
// connIds must not become label values.
func routeOf(ctx *fasthttp.RequestCtx) string {
	if r, ok := ctx.UserValue(router.MatchedRoutePathParam).(string); ok {
		return r
	}
	return routeUnmatched
}

// notFound answers a path no route has; known lists the paths there are.
func (s *server) notFound(ctx *fasthttp.RequestCtx, known string) {
	s.writeError(ctx, withMessage(errRouteNotFound,
		"no route "+string(ctx.Method())+" "+string(ctx.Path())+"; the routes are "+known))
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
