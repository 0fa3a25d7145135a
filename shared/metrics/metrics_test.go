package metrics_test

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/go-chi/chi/v5"

	"github.com/stockfence/stockfence/shared/kafkaclient"
	"github.com/stockfence/stockfence/shared/metrics"
	"github.com/stockfence/stockfence/shared/metrics/metricstest"
)

// newServer serves a chi router instrumented with metrics.HTTP on reg, with
// a few routes and /metrics.
func newServer(t *testing.T) *httptest.Server {
	t.Helper()
	reg := metrics.NewRegistry()
	r := chi.NewRouter()
	r.Use(metrics.HTTP(reg))
	r.Get("/metrics", metrics.Handler(reg, nil).ServeHTTP)
	r.Get("/orders/{id}", func(w http.ResponseWriter, r *http.Request) {
		if chi.URLParam(r, "id") == "missing" {
			http.Error(w, "no such order", http.StatusNotFound)
			return
		}
		w.Write([]byte("ok"))
	})
	r.Route("/ops", func(r chi.Router) {
		r.Post("/orders/{id}/recheck", func(w http.ResponseWriter, r *http.Request) {
			w.WriteHeader(http.StatusAccepted)
		})
	})
	srv := httptest.NewServer(r)
	t.Cleanup(srv.Close)
	return srv
}

func send(t *testing.T, method, url string) int {
	t.Helper()
	req, err := http.NewRequest(method, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp.StatusCode
}

// TestHTTPLabelsByRoutePattern: requests are counted and timed by the route
// pattern that served them, never by their raw path, so ids and unknown
// paths make no series of their own.
func TestHTTPLabelsByRoutePattern(t *testing.T) {
	srv := newServer(t)
	const id = "0190b4a4-2f0e-7c3e-9a53-5f1d2b7c9e01"
	requests := []struct {
		method, path string
		wantStatus   int
	}{
		{http.MethodGet, "/orders/" + id, http.StatusOK},
		{http.MethodGet, "/orders/another-" + id, http.StatusOK},
		{http.MethodGet, "/orders/missing", http.StatusNotFound},
		{http.MethodPost, "/ops/orders/" + id + "/recheck", http.StatusAccepted},
		{http.MethodGet, "/no/such/" + id, http.StatusNotFound},
		{http.MethodDelete, "/orders/" + id, http.StatusMethodNotAllowed},
		{"BREW", "/orders/" + id, http.StatusMethodNotAllowed},
	}
	for _, r := range requests {
		if got := send(t, r.method, srv.URL+r.path); got != r.wantStatus {
			t.Fatalf("%s %s: status = %d, want %d", r.method, r.path, got, r.wantStatus)
		}
	}

	s := metricstest.Scrape(t, srv.URL+"/metrics")
	tests := []struct {
		route, method, code string
		want                float64
	}{
		{"/orders/{id}", "GET", "200", 2},
		{"/orders/{id}", "GET", "404", 1},
		{"/ops/orders/{id}/recheck", "POST", "202", 1},
		{metrics.UnmatchedRoute, "GET", "404", 1},
	}
	for _, tt := range tests {
		labels := map[string]string{"route": tt.route, "method": tt.method, "code": tt.code}
		if got, _ := s.Value("stockfence_http_requests_total", labels); got != tt.want {
			t.Errorf("requests_total%v = %v, want %v", labels, got, tt.want)
		}
	}
	if got, _ := s.Value("stockfence_http_request_duration_seconds", map[string]string{"route": "/orders/{id}", "method": "GET"}); got != 3 {
		t.Errorf("request_duration_seconds count for GET /orders/{id} = %v, want 3", got)
	}
	if got, _ := s.Value("stockfence_http_requests_total", map[string]string{"code": "405"}); got != 2 {
		t.Errorf("405s counted = %v, want 2", got)
	}
	if got, _ := s.Value("stockfence_http_requests_total", map[string]string{"method": "OTHER"}); got != 1 {
		t.Errorf("requests with a non-standard method = %v, want 1 labelled OTHER", got)
	}
	for _, raw := range []string{id, "missing", "/no/such", "BREW"} {
		if strings.Contains(s.Text, raw) {
			t.Errorf("scrape contains %q: a raw path or method became a label", raw)
		}
	}
	for _, route := range s.LabelValues("stockfence_http_requests_total", "route") {
		if !strings.HasPrefix(route, "/") && route != metrics.UnmatchedRoute {
			t.Errorf("route label %q is neither a pattern nor %q", route, metrics.UnmatchedRoute)
		}
	}
	for _, name := range []string{"go_goroutines", "process_cpu_seconds_total"} {
		if _, ok := s.Families[name]; !ok {
			t.Errorf("scrape has no %s: the Go and process collectors are missing", name)
		}
	}
}

// TestHTTPSharedRegistry: two routers on one registry count into the same
// series instead of panicking on a duplicate registration.
func TestHTTPSharedRegistry(t *testing.T) {
	reg := metrics.NewRegistry()
	var servers []*httptest.Server
	for range 2 {
		r := chi.NewRouter()
		r.Use(metrics.HTTP(reg))
		r.Get("/healthz", func(http.ResponseWriter, *http.Request) {})
		r.Get("/metrics", metrics.Handler(reg, nil).ServeHTTP)
		srv := httptest.NewServer(r)
		t.Cleanup(srv.Close)
		servers = append(servers, srv)
	}
	for _, srv := range servers {
		send(t, http.MethodGet, srv.URL+"/healthz")
	}
	s := metricstest.Scrape(t, servers[0].URL+"/metrics")
	if got, _ := s.Value("stockfence_http_requests_total", map[string]string{"route": "/healthz", "code": "200"}); got != 2 {
		t.Fatalf("healthz requests = %v, want 2 (one per router)", got)
	}
}

type fakeLag struct {
	lags []kafkaclient.PartitionLag
	at   time.Time
}

func (f *fakeLag) Lag() ([]kafkaclient.PartitionLag, time.Time) { return f.lags, f.at }

// TestConsumerLag: the gauges show the consumer's last measurement per
// partition, and nothing before the first.
func TestConsumerLag(t *testing.T) {
	reg := metrics.NewRegistry()
	src := &fakeLag{}
	metrics.ConsumerLag(reg, "orderservice", src)
	r := chi.NewRouter()
	r.Get("/metrics", metrics.Handler(reg, nil).ServeHTTP)
	srv := httptest.NewServer(r)
	t.Cleanup(srv.Close)

	s := metricstest.Scrape(t, srv.URL+"/metrics")
	if _, found := s.Value("stockfence_kafka_consumer_lag_messages", nil); found {
		t.Fatal("lag reported before any measurement")
	}
	at := time.Unix(1_700_000_000, 0)
	src.lags = []kafkaclient.PartitionLag{
		{Topic: "stock-compensation-results", Partition: 0, Committed: 5, End: 9, Lag: 4},
		{Topic: "stock-compensation-results", Partition: 1, Committed: -1, End: 2, Lag: 2},
	}
	src.at = at
	s = metricstest.Scrape(t, srv.URL+"/metrics")
	for partition, want := range map[string]float64{"0": 4, "1": 2} {
		labels := map[string]string{"group": "orderservice", "topic": "stock-compensation-results", "partition": partition}
		if got, _ := s.Value("stockfence_kafka_consumer_lag_messages", labels); got != want {
			t.Errorf("lag%v = %v, want %v", labels, got, want)
		}
	}
	if got, _ := s.Value("stockfence_kafka_consumer_lag_measured_timestamp_seconds", map[string]string{"group": "orderservice"}); got != float64(at.Unix()) {
		t.Errorf("measured timestamp = %v, want %v", got, at.Unix())
	}
}
