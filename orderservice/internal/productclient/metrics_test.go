package productclient_test

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stockfence/stockfence/orderservice/internal/productclient"
	"github.com/stockfence/stockfence/shared/metrics"
	"github.com/stockfence/stockfence/shared/metrics/metricstest"
)

// TestBreakerMetrics: the breaker-state gauge follows the breaker through
// closed, open, half-open and closed again, each transition is counted, and
// reserve and resolve calls are counted by outcome.
func TestBreakerMetrics(t *testing.T) {
	t.Parallel()
	const failures, openFor = 2, 300 * time.Millisecond
	var up atomic.Bool
	srv, _ := server(t, func(w http.ResponseWriter, r *http.Request) {
		switch {
		case !up.Load():
			answer(http.StatusServiceUnavailable, problem)(w, r)
		case r.URL.Path == "/reservations":
			answer(http.StatusConflict, rejected)(w, r)
		default:
			answer(http.StatusOK, applied)(w, r)
		}
	})
	reg := metrics.NewRegistry()
	c := newClient(t, srv.URL, productclient.Config{
		Timeout: time.Second, BreakerFailures: failures, BreakerOpenFor: openFor, Metrics: reg,
	})
	scrapes := httptest.NewServer(metrics.Handler(reg, nil))
	t.Cleanup(scrapes.Close)
	scrape := func() metricstest.Samples { return metricstest.Scrape(t, scrapes.URL) }
	check := func(s metricstest.Samples, name string, labels map[string]string, want float64) {
		t.Helper()
		if got, found := s.Value(name, labels); got != want || !found {
			t.Errorf("%s%v = %v (found %v), want %v", name, labels, got, found, want)
		}
	}
	const state = "stockfence_productclient_breaker_state"

	check(scrape(), state, nil, 0)
	for range failures {
		if _, err := c.Reserve(context.Background(), request); !errors.Is(err, productclient.ErrUnknownOutcome) {
			t.Fatalf("Reserve err = %v, want ErrUnknownOutcome", err)
		}
	}
	if _, err := c.Reserve(context.Background(), request); !errors.Is(err, productclient.ErrBreakerOpen) {
		t.Fatalf("Reserve err = %v, want ErrBreakerOpen", err)
	}
	s := scrape()
	check(s, state, nil, 2)
	check(s, "stockfence_productclient_breaker_transitions_total", map[string]string{"to": "open"}, 1)
	check(s, "stockfence_productclient_reserve_calls_total", map[string]string{"outcome": "unknown"}, failures)
	check(s, "stockfence_productclient_reserve_calls_total", map[string]string{"outcome": "breaker_open"}, 1)

	// Once openFor has passed the gauge reads half-open without any call:
	// the scrape itself asks the breaker.
	time.Sleep(openFor + 50*time.Millisecond)
	check(scrape(), state, nil, 1)

	up.Store(true)
	if res, err := c.Resolve(context.Background(), request.AttemptID, request.OrderID); err != nil || res.Status != applied.Status {
		t.Fatalf("Resolve = %+v, %v; want APPLIED", res, err)
	}
	if _, err := c.Reserve(context.Background(), request); err != nil {
		t.Fatalf("Reserve after recovery: %v", err)
	}
	s = scrape()
	check(s, state, nil, 0)
	check(s, "stockfence_productclient_breaker_transitions_total", map[string]string{"to": "half-open"}, 1)
	check(s, "stockfence_productclient_breaker_transitions_total", map[string]string{"to": "closed"}, 1)
	check(s, "stockfence_productclient_resolve_calls_total", map[string]string{"outcome": "applied"}, 1)
	check(s, "stockfence_productclient_reserve_calls_total", map[string]string{"outcome": "rejected"}, 1)
}
