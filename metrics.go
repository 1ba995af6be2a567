package main

import (
	"strconv"

	"github.com/fasthttp/router"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/common/expfmt"
	"github.com/puzpuzpuz/xsync/v4"
	"github.com/valyala/fasthttp"

	"github.com/parkd/parkd/registry"
)

// Outcome label values: the registry's four, and rejected for a park
// refused because every place was taken.
const outcomeRejected = "rejected"

// metrics belong to one server: a registry of their own, so that servers
// side by side (tests) count apart. Counting is a few atomic adds; only a
// scrape gathers.
type metrics struct {
	registry  *prometheus.Registry
	outcomes  map[string]prometheus.Counter // by outcome label, fixed at construction
	lateness  prometheus.Histogram
	requests  *prometheus.CounterVec
	byRouteCd *xsync.Map[routeCode, prometheus.Counter] // resolved children of requests
}

type routeCode struct {
	route string
	code  int
}

func newMetrics(reg *registry.Registry, draining func() bool, idle func() int) *metrics {
	m := &metrics{
		registry: prometheus.NewRegistry(),
		outcomes: map[string]prometheus.Counter{},
		lateness: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "parkd_answer_lateness_seconds",
			Help:    "How long after its deadline a parked request's 200 answer left.",
			Buckets: []float64{.0005, .001, .002, .005, .01, .025, .05, .1, .25, .5, 1},
		}),
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "parkd_http_requests_total",
			Help: "HTTP requests answered, by route and status code.",
		}, []string{"route", "code"}),
		byRouteCd: xsync.NewMap[routeCode, prometheus.Counter](),
	}
	outcomes := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "parkd_outcomes_total",
		Help: "Park requests by how they ended: ok, killed, abandoned (the client left), shutdown, rejected (capacity full).",
	}, []string{"outcome"})
	for _, o := range []string{registry.OK.String(), registry.Killed.String(), registry.Abandoned.String(),
		registry.Shutdown.String(), outcomeRejected} {
		m.outcomes[o] = outcomes.WithLabelValues(o) // listed at 0 from the start
	}
	m.registry.MustRegister(
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "parkd_parked_requests",
			Help: "Requests parked right now.",
		}, func() float64 { return float64(reg.Len()) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "parkd_parked_requests_capacity",
			Help: "The most requests parked at once.",
		}, func() float64 { return float64(reg.Capacity()) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "parkd_idle_connections",
			Help: "Keep-alive connections waiting, without a goroutine, for their next request after a parked answer.",
		}, func() float64 { return float64(idle()) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "parkd_draining",
			Help: "1 while shutting down, else 0.",
		}, func() float64 {
			if draining() {
				return 1
			}
			return 0
		}),
		outcomes, m.lateness, m.requests,
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
	)
	return m
}

func (m *metrics) outcome(name string) {
	m.outcomes[name].Inc()
}

// answered counts one HTTP answer.
func (m *metrics) answered(route string, code int) {
	c, _ := m.byRouteCd.LoadOrCompute(routeCode{route, code}, func() (prometheus.Counter, bool) {
		return m.requests.WithLabelValues(route, strconv.Itoa(code)), false
	})
	c.Inc()
}

// routeOf is the route template a request matched, never its raw path:
// connIds must not become label values.
func routeOf(ctx *fasthttp.RequestCtx) string {
	if r, ok := ctx.UserValue(router.MatchedRoutePathParam).(string); ok {
		return r
	}
	return "unmatched"
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
