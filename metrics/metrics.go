package metrics

import (
	"context"
	"log/slog"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Metrics is the daemon's set of series, in a registry of its own.
type Metrics struct {
	reg           *prometheus.Registry
	deployments   *prometheus.CounterVec   // repo, service, status
	rollout       *prometheus.HistogramVec // repo, service
	pushToServing *prometheus.HistogramVec // repo
	lastDeployed  *prometheus.GaugeVec     // repo, service
	webhooks      *prometheus.CounterVec   // code
	forgeErrors   *prometheus.CounterVec   // reason

	mu    sync.Mutex
	queue QueueFunc // nil: no queue series
}

// QueueFunc reports the queue at scrape time: how many jobs wait to start,
// and how long the oldest of them has waited.
type QueueFunc func(ctx context.Context) (depth int, oldest time.Duration, err error)

// New makes the series and registers them, with Go's runtime and process
// collectors.
func New() *Metrics {
	durations := []float64{1, 2.5, 5, 10, 20, 30, 60, 120, 300, 600, 1200}
	m := &Metrics{
		reg: prometheus.NewRegistry(),
		deployments: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "bosun_deployments_total", Help: "Finished deployments (one service's rollout) by repository, service and status (deployed, failed, rolled_back).",
		}, []string{"repo", "service", "status"}),
		rollout: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "bosun_rollout_duration_seconds", Help: "Time one service's rollout took, from its lock to its last host, by repository and service.",
			Buckets: durations,
		}, []string{"repo", "service"}),
		pushToServing: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "bosun_push_to_serving_seconds", Help: "Time from a push webhook's arrival to its commit serving on every host, by repository.",
			Buckets: durations,
		}, []string{"repo"}),
		lastDeployed: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "bosun_last_successful_deploy_timestamp_seconds", Help: "Unix time of the last deployment that ended deployed, by repository and service.",
		}, []string{"repo", "service"}),
		webhooks: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "bosun_webhook_deliveries_total", Help: "Webhook deliveries by the HTTP status bosun answered (202 accepted, 401 bad signature, …).",
		}, []string{"code"}),
		forgeErrors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "bosun_forge_api_errors_total", Help: "Calls to the forge's API that failed, by reason: the HTTP status, or \"transport\" when no answer came.",
		}, []string{"reason"}),
	}
	m.reg.MustRegister(m.deployments, m.rollout, m.pushToServing, m.lastDeployed, m.webhooks, m.forgeErrors, queueCollector{m},
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return m
}

// Handler serves the series in Prometheus' text format.
func (m *Metrics) Handler() http.Handler {
	if m == nil {
		return http.NotFoundHandler()
	}
	return promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{ErrorLog: slogPrinter{}})
}

// Registry is the registry the series live in, for tests and for adding
// series of other parts.
func (m *Metrics) Registry() *prometheus.Registry {
	if m == nil {
		return nil
	}
	return m.reg
}

// Deployment records one service's finished rollout.
func (m *Metrics) Deployment(repo, service, status string, took time.Duration, finished time.Time) {
	if m == nil {
		return
	}
	m.deployments.WithLabelValues(repo, service, status).Inc()
	m.rollout.WithLabelValues(repo, service).Observe(took.Seconds())
	if status == "deployed" {
		m.lastDeployed.WithLabelValues(repo, service).Set(float64(finished.UnixNano()) / 1e9)
	}
}

// PushToServing records how long a pushed commit took to serve everywhere.
func (m *Metrics) PushToServing(repo string, took time.Duration) {
	if m == nil {
		return
	}
	m.pushToServing.WithLabelValues(repo).Observe(took.Seconds())
}

// Webhooks wraps the webhook intake to count its answers by status.
func (m *Metrics) Webhooks(h http.Handler) http.Handler {
	if m == nil {
		return h
	}
	return promhttp.InstrumentHandlerCounter(m.webhooks, h)
}

// ForgeCall records the outcome of one call to the forge's API: an error
// when no answer came or the answer is a 4xx or 5xx.
func (m *Metrics) ForgeCall(resp *http.Response, err error) {
	if m == nil {
		return
	}
	switch {
	case err != nil:
		m.forgeErrors.WithLabelValues("transport").Inc()
	case resp.StatusCode >= 400:
		m.forgeErrors.WithLabelValues(strconv.Itoa(resp.StatusCode)).Inc()
	}
}

// SetQueue sets where the queue series come from; they are asked at each
// scrape.
func (m *Metrics) SetQueue(f QueueFunc) {
	if m == nil {
		return
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	m.queue = f
}

var (
	queueDepthDesc = prometheus.NewDesc("bosun_queue_depth", "Jobs waiting to start (syncs and pull request plans).", nil, nil)
	queueAgeDesc   = prometheus.NewDesc("bosun_queue_oldest_job_age_seconds", "How long the oldest waiting job has waited (0 when none waits).", nil, nil)
)

// queueCollector asks the queue at scrape time.
type queueCollector struct{ m *Metrics }

func (c queueCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- queueDepthDesc
	ch <- queueAgeDesc
}

func (c queueCollector) Collect(ch chan<- prometheus.Metric) {
	c.m.mu.Lock()
	f := c.m.queue
	c.m.mu.Unlock()
	if f == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	depth, oldest, err := f(ctx)
	if err != nil {
		ch <- prometheus.NewInvalidMetric(queueDepthDesc, err)
		return
	}
	ch <- prometheus.MustNewConstMetric(queueDepthDesc, prometheus.GaugeValue, float64(depth))
	ch <- prometheus.MustNewConstMetric(queueAgeDesc, prometheus.GaugeValue, oldest.Seconds())
}

// slogPrinter logs promhttp's errors through slog.
type slogPrinter struct{}

func (slogPrinter) Println(v ...any) { slog.WarnContext(context.Background(), "metrics", "err", v) }
