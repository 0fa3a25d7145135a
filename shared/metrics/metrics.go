// Package metrics is the Prometheus instrumentation both services share: a
// registry per process with the Go runtime and process collectors, the
// handler of GET /metrics, the HTTP middleware that counts and times every
// request by its route pattern, and the consumer-lag gauges of a
// kafkaclient.Consumer. Every metric is named stockfence_*.
package metrics

import (
	"errors"
	"log/slog"
	"net/http"
	"strconv"
	"time"

	"github.com/go-chi/chi/v5"
	chimw "github.com/go-chi/chi/v5/middleware"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/stockfence/stockfence/shared/kafkaclient"
)

// Namespace prefixes every metric of the project.
const Namespace = "stockfence"

// UnmatchedRoute is the route label of a request that matched no route (a
// 404 for an unknown path), so that unknown paths cannot each make a series.
const UnmatchedRoute = "unmatched"

// NewRegistry returns a registry for one process, holding the Go runtime and
// process collectors. Each process (and each test) makes its own, so nothing
// is registered twice in the global default registry.
func NewRegistry() *prometheus.Registry {
	reg := prometheus.NewRegistry()
	reg.MustRegister(
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
	)
	return reg
}

// Handler serves what reg gathers in the Prometheus exposition format. A
// collector that fails is logged and left out; the others are still served.
func Handler(reg *prometheus.Registry, logger *slog.Logger) http.Handler {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	return promhttp.HandlerFor(reg, promhttp.HandlerOpts{
		ErrorLog:      slog.NewLogLogger(logger.Handler(), slog.LevelWarn),
		ErrorHandling: promhttp.ContinueOnError,
		Registry:      reg,
	})
}

// Register registers c with reg and returns it. If an equal collector is
// already registered (a second router on the same registry), that one is
// returned instead, so both record into the same series. Any other
// registration error is a programming error and panics, as MustRegister does.
func Register[C prometheus.Collector](reg prometheus.Registerer, c C) C {
	err := reg.Register(c)
	if err == nil {
		return c
	}
	var already prometheus.AlreadyRegisteredError
	if errors.As(err, &already) {
		if existing, ok := already.ExistingCollector.(C); ok {
			return existing
		}
	}
	panic(err)
}

// BatchSizeBuckets are the buckets of the histograms of how many requests
// one coalesced transaction or batch call took (up to the largest
// *_COALESCE_MAX_BATCH, 2,000).
var BatchSizeBuckets = []float64{1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000}

// httpDurationBuckets span a fast read (1 ms) to a POST /orders that used its
// whole sync budget and more (10 s).
var httpDurationBuckets = []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10}

// HTTP returns middleware that counts every request in
// stockfence_http_requests_total{route,method,code} and times it in
// stockfence_http_request_duration_seconds{route,method}. It must be used on
// a chi router (Use), since route is chi's route pattern, read once routing is
// done: "/orders/{id}", never the raw path, so ids never become labels. A
// request no route matched is labelled UnmatchedRoute, and a method outside
// the standard ones "OTHER".
func HTTP(reg prometheus.Registerer) func(http.Handler) http.Handler {
	requests := Register(reg, prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: Namespace,
		Subsystem: "http",
		Name:      "requests_total",
		Help:      "HTTP requests answered, by route pattern, method and status code.",
	}, []string{"route", "method", "code"}))
	durations := Register(reg, prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Namespace: Namespace,
		Subsystem: "http",
		Name:      "request_duration_seconds",
		Help:      "Time from receiving an HTTP request to the end of its answer, by route pattern and method.",
		Buckets:   httpDurationBuckets,
	}, []string{"route", "method"}))
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			ww := chimw.NewWrapResponseWriter(w, r.ProtoMajor)
			start := time.Now()
			next.ServeHTTP(ww, r)
			route, method := routeOf(r), methodOf(r.Method)
			code := ww.Status()
			if code == 0 {
				code = http.StatusOK // nothing written: net/http answers 200
			}
			requests.WithLabelValues(route, method, strconv.Itoa(code)).Inc()
			durations.WithLabelValues(route, method).Observe(time.Since(start).Seconds())
		})
	}
}

// routeOf is the pattern of the route that served r, or UnmatchedRoute.
func routeOf(r *http.Request) string {
	rctx := chi.RouteContext(r.Context())
	if rctx == nil {
		return UnmatchedRoute
	}
	if p := rctx.RoutePattern(); p != "" {
		return p
	}
	return UnmatchedRoute
}

func methodOf(m string) string {
	switch m {
	case http.MethodGet, http.MethodHead, http.MethodPost, http.MethodPut, http.MethodPatch,
		http.MethodDelete, http.MethodOptions, http.MethodConnect, http.MethodTrace:
		return m
	}
	return "OTHER"
}

// LagSource is a consumer whose lag is exported (*kafkaclient.Consumer).
type LagSource interface {
	Lag() ([]kafkaclient.PartitionLag, time.Time)
}

// ConsumerLag registers with reg the lag of consumer group group as c last
// measured it: stockfence_kafka_consumer_lag_messages{group,topic,partition},
// the messages on each partition of its topics that the group has not
// committed yet, and stockfence_kafka_consumer_lag_measured_timestamp_seconds
// {group}, when that was (it stops moving while the broker cannot be asked).
// Nothing is reported before the first measurement. A scrape does no I/O.
func ConsumerLag(reg prometheus.Registerer, group string, c LagSource) {
	Register(reg, &lagCollector{
		src: c,
		lag: prometheus.NewDesc(prometheus.BuildFQName(Namespace, "kafka", "consumer_lag_messages"),
			"Messages on a partition that the consumer group has not committed yet, as last measured.",
			[]string{"topic", "partition"}, prometheus.Labels{"group": group}),
		measured: prometheus.NewDesc(prometheus.BuildFQName(Namespace, "kafka", "consumer_lag_measured_timestamp_seconds"),
			"Unix time of the last successful measurement of the consumer group's lag.",
			nil, prometheus.Labels{"group": group}),
	})
}

type lagCollector struct {
	src           LagSource
	lag, measured *prometheus.Desc
}

func (c *lagCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- c.lag
	ch <- c.measured
}

func (c *lagCollector) Collect(ch chan<- prometheus.Metric) {
	lags, at := c.src.Lag()
	if at.IsZero() {
		return
	}
	ch <- prometheus.MustNewConstMetric(c.measured, prometheus.GaugeValue, float64(at.UnixNano())/1e9)
	for _, p := range lags {
		ch <- prometheus.MustNewConstMetric(c.lag, prometheus.GaugeValue, float64(p.Lag),
			p.Topic, strconv.Itoa(int(p.Partition)))
	}
}
