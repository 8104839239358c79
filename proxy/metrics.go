package proxy

import (
	"net/http"
	"net/http/pprof"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// metrics are the proxy's Prometheus series, in a registry of its own.
type metrics struct {
	reg      *prometheus.Registry
	requests *prometheus.CounterVec   // service, code (class: 2xx …)
	duration *prometheus.HistogramVec // service
	deploys  *prometheus.CounterVec   // service, result
	noRoute  prometheus.Counter
}

// serviceMetrics are one service's series, resolved once per deploy so the
// request path does no label lookups.
type serviceMetrics struct {
	byClass  [6]prometheus.Counter // index status/100; 0 for anything else
	duration prometheus.Observer
}

func newMetrics() *metrics {
	m := &metrics{
		reg: prometheus.NewRegistry(),
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "bosun_proxy_requests_total", Help: "Proxied requests by service and status class.",
		}, []string{"service", "code"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "bosun_proxy_request_duration_seconds", Help: "Time from request to end of response, by service.",
			Buckets: []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30},
		}, []string{"service"}),
		deploys: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "bosun_proxy_deploys_total", Help: "Deploy calls by service and result (ok, unhealthy, conflict, error).",
		}, []string{"service", "result"}),
		noRoute: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "bosun_proxy_no_route_total", Help: "Requests that matched no route (404).",
		}),
	}
	m.reg.MustRegister(m.requests, m.duration, m.deploys, m.noRoute,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return m
}

func (m *metrics) forService(name string) *serviceMetrics {
	sm := &serviceMetrics{duration: m.duration.WithLabelValues(name)}
	for i, class := range []string{"other", "1xx", "2xx", "3xx", "4xx", "5xx"} {
		sm.byClass[i] = m.requests.WithLabelValues(name, class)
	}
	return sm
}

func (m *metrics) deploy(service, result string) { m.deploys.WithLabelValues(service, result).Inc() }

func (sm *serviceMetrics) observe(status int, d time.Duration) {
	i := status / 100
	if i < 1 || i > 5 {
		i = 0
	}
	sm.byClass[i].Inc()
	sm.duration.Observe(d.Seconds())
}

// handler serves /metrics, and Go's profiles under /debug/pprof/ when
// withPprof is set.
func (m *metrics) handler(withPprof bool) http.Handler {
	mux := http.NewServeMux()
	mux.Handle("/metrics", promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{}))
	if withPprof {
		mux.HandleFunc("/debug/pprof/", pprof.Index)
		mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
		mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
		mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
		mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
	}
	return mux
}
