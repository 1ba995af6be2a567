package main

import (
	"strconv"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/puzpuzpuz/xsync/v4"

	"github.com/parkd/parkd/events"
	"github.com/parkd/parkd/registry"
	"github.com/parkd/parkd/wire"
)

// Label values of parkd's own: the outcome of a park refused because every
// place was taken (beside the registry's four), and the route of a request
// that matched none.
const (
	outcomeRejected = "rejected"
	routeUnmatched  = "unmatched"
)

// metrics belong to one server: a registry of their own, so that servers
// side by side (tests) count apart. Counting is a few atomic adds; only a
// scrape gathers.
type metrics struct {
	registry      *prometheus.Registry
	outcomes      map[string]prometheus.Counter // by outcome label, fixed at construction
	lateness      prometheus.Histogram
	pieceLateness prometheus.Histogram
	endings       *prometheus.CounterVec
	byEnding      *xsync.Map[wire.Action, prometheus.Counter] // resolved children of endings
	requests      *prometheus.CounterVec
	byRouteCd     *xsync.Map[routeCode, prometheus.Counter] // resolved children of requests
	parkRoute     string                                    // the route label of parked answers
}

type routeCode struct {
	route string
	code  int
}

// newMetrics counts for one server: reg's parked requests, whether it is
// draining, its idle connections; parked answers are counted under
// parkRoute, the route they were parked on.
func newMetrics(reg *registry.Registry, hub *events.Hub, draining func() bool, idle func() int, parkRoute string) *metrics {
	m := &metrics{
		parkRoute: parkRoute,
		registry:  prometheus.NewRegistry(),
		outcomes:  map[string]prometheus.Counter{},
		lateness: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "parkd_answer_lateness_seconds",
			Help:    "How long after its deadline a parked request's answer (for a dripping body, its headers) left.",
			Buckets: latenessBuckets(),
		}),
		pieceLateness: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "parkd_piece_lateness_seconds",
			Help:    "How long after its scheduled time a piece of a dripping body left.",
			Buckets: latenessBuckets(),
		}),
		endings: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "parkd_endings_total",
			Help: "Endings applied to parked requests, by what was applied: a status code, reset, close, garbage or truncate.",
		}, []string{"then"}),
		byEnding: xsync.NewMap[wire.Action, prometheus.Counter](),
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
			Name: "parkd_event_subscribers",
			Help: "Clients of /api/events right now.",
		}, func() float64 { return float64(hub.Subscribers()) }),
		prometheus.NewCounterFunc(prometheus.CounterOpts{
			Name: "parkd_events_published_total",
			Help: "Events published to /api/events while it had a subscriber.",
		}, func() float64 { return float64(hub.Published()) }),
		prometheus.NewCounterFunc(prometheus.CounterOpts{
			Name: "parkd_event_subscribers_dropped_total",
			Help: "Clients of /api/events disconnected for falling 10,000 events behind or taking no byte for 10 s.",
		}, func() float64 { return float64(hub.Dropped()) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "parkd_draining",
			Help: "1 while shutting down, else 0.",
		}, func() float64 {
			if draining() {
				return 1
			}
			return 0
		}),
		outcomes, m.lateness, m.pieceLateness, m.endings, m.requests,
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
	)
	return m
}

// latenessBuckets are the bounds of the lateness histograms, in seconds.
func latenessBuckets() []float64 {
	return []float64{.0005, .001, .002, .005, .01, .025, .05, .1, .25, .5, 1}
}

// ended counts one ending applied.
func (m *metrics) ended(a wire.Action) {
	c, _ := m.byEnding.LoadOrCompute(a, func() (prometheus.Counter, bool) {
		return m.endings.WithLabelValues(a.String()), false
	})
	c.Inc()
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

// parkAnswered counts the answer of a parked request, written after its
// handler returned.
func (m *metrics) parkAnswered(code int) {
	m.answered(m.parkRoute, code)
}
