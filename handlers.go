package main

import (
	_ "embed"
	"errors"
	"time"

	"github.com/parkd/parkd/cluster"
	"github.com/parkd/parkd/dashboard"
	"github.com/parkd/parkd/registry"
	"github.com/parkd/parkd/wire"
	"github.com/prometheus/common/expfmt"
	"github.com/valyala/fasthttp"
)

// openAPIDocument is docs/openapi.yaml, served as it is.
//
//go:embed docs/openapi.yaml
var openAPIDocument []byte

// serverStatus is GET /api/serverStatus: {"connId":"seconds left", ...}.
func (s *server) serverStatus(ctx *fasthttp.RequestCtx) {
	if s.clustered() {
		s.writeClusterListing(ctx, '{', '}', appendStatus, appendRemoteStatus)
		return
	}
	s.writeListing(ctx, '{', '}', appendStatus)
}

// kill is PUT /api/kill with the connId, and a then list, in the body or
// the query.
func (s *server) kill(ctx *fasthttp.RequestCtx) {
	k, err := wire.ParseKill(ctx.URI().QueryString(), ctx.PostBody())
	if err != nil {
		s.writeError(ctx, err)
		return
	}
	if err := s.reg.Kill(k.ConnID, registry.Detail(s.drawKill(k.Then))); err != nil {
		if err := s.killElsewhere(k.ConnID, k.Then); err != nil {
			s.writeError(ctx, clusterError(err, withMessage(errUnknownConnID, "invalid connection Id : "+k.ConnID)))
			return
		}
	}
	writeJSONString(ctx, fasthttp.StatusOK, okBody)
}

func (s *server) healthz(ctx *fasthttp.RequestCtx) {
	writeJSONString(ctx, fasthttp.StatusOK, okBody)
}

// readyz says whether the server takes new parked requests.
func (s *server) readyz(ctx *fasthttp.RequestCtx) {
	switch {
	case s.draining.Load():
		writeJSONString(ctx, fasthttp.StatusServiceUnavailable, shuttingDownBody)
	case s.store.Health() == cluster.Degraded:
		s.writeError(ctx, withMessage(errClusterUnavailable, "cluster store unreachable"))
	default:
		writeJSONString(ctx, fasthttp.StatusOK, `{"status":"ready"}`)
	}
}

// listRequests is GET /api/requests: every parked request, in
// serverStatus's order.
func (s *server) listRequests(ctx *fasthttp.RequestCtx) {
	if s.clustered() {
		s.writeClusterListing(ctx, '[', ']', s.appendHere, appendRemoteRequest)
		return
	}
	s.writeListing(ctx, '[', ']', appendParked)
}

// getRequest is GET /api/requests/{connId}.
func (s *server) getRequest(ctx *fasthttp.RequestCtx) {
	id, err := pathConnID(ctx)
	if err != nil {
		s.writeError(ctx, err)
		return
	}
	in, ok := s.reg.Get(id)
	if ok {
		s.markCluster(ctx, s.store.Health() != cluster.Degraded)
		writeJSON(ctx, fasthttp.StatusOK, appendRequest(nil, in, s.instanceTag()))
		return
	}
	p, err := s.findElsewhere(id)
	s.markCluster(ctx, !errors.Is(err, cluster.ErrUnavailable))
	if err != nil {
		s.writeError(ctx, clusterError(err, notParked(id)))
		return
	}
	writeJSON(ctx, fasthttp.StatusOK, appendRemoteRequest(nil, &p, time.Now()))
}

// deleteRequest is DELETE /api/requests/{connId}[?then=…]: a kill.
func (s *server) deleteRequest(ctx *fasthttp.RequestCtx) {
	id, err := pathConnID(ctx)
	if err != nil {
		s.writeError(ctx, err)
		return
	}
	then, err := wire.ThenOf(ctx.URI().QueryString())
	if err != nil {
		s.writeError(ctx, err)
		return
	}
	if err := s.reg.Kill(id, registry.Detail(s.drawKill(then))); err != nil {
		if err := s.killElsewhere(id, then); err != nil {
			s.writeError(ctx, clusterError(err, notParked(id)))
			return
		}
	}
	ctx.SetStatusCode(fasthttp.StatusNoContent)
}

func notParked(id string) error {
	return withMessage(errRequestNotParked, "no request is parked with connId "+id)
}

// pathConnID decodes the {connId} segment; the router matches raw paths, so
// an id with a '/' arrives as %2F within one segment.
func pathConnID(ctx *fasthttp.RequestCtx) (string, error) {
	raw, _ := ctx.UserValue("connId").(string)
	return wire.UnescapePath(raw)
}

// serveMetrics is GET /metrics in the Prometheus text format.
func (s *server) serveMetrics(ctx *fasthttp.RequestCtx) {
	families, err := s.metrics.registry.Gather()
	if err != nil {
		s.log.Warn("gathering metrics", "err", err) // partial results are still served
	}
	format := expfmt.NewFormat(expfmt.TypeTextPlain)
	ctx.SetContentType(string(format))
	enc := expfmt.NewEncoder(ctx, format)
	for _, f := range families {
		if err := enc.Encode(f); err != nil {
			s.writeError(ctx, err)
			return
		}
	}
}

// dashboardPage is GET /: the page for people, allowed to run only its
// own scripts.
func (s *server) dashboardPage(ctx *fasthttp.RequestCtx) {
	ctx.Response.Header.Set("Content-Security-Policy", dashboard.ContentSecurityPolicy)
	ctx.Response.Header.Set("X-Content-Type-Options", "nosniff")
	ctx.SetContentType(dashboard.PageContentType)
	ctx.SetBody(dashboard.Page())
}

// dashboardAsset is GET /dashboard/{asset}: the page's script, style and
// icon.
func (s *server) dashboardAsset(ctx *fasthttp.RequestCtx) {
	name, _ := ctx.UserValue("asset").(string)
	body, contentType, ok := dashboard.Asset(name)
	if !ok {
		s.writeError(ctx, withMessage(errRouteNotFound, "no asset "+name+" under "+dashboard.Prefix))
		return
	}
	ctx.SetContentType(contentType)
	ctx.Response.Header.Set("X-Content-Type-Options", "nosniff")
	ctx.Response.Header.Set("Cache-Control", "no-cache")
	ctx.SetBody(body)
}

// openAPI is GET /openapi.yaml: the description of every route.
func (s *server) openAPI(ctx *fasthttp.RequestCtx) {
	ctx.SetContentType("application/yaml")
	ctx.SetBody(openAPIDocument)
}
