package productclient_test

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	chimw "github.com/go-chi/chi/v5/middleware"

	"github.com/stockfence/stockfence/orderservice/internal/productclient"
	"github.com/stockfence/stockfence/shared/contract"
)

// sequence answers the n-th request with handlers[n], repeating the last one.
func sequence(handlers ...http.HandlerFunc) http.HandlerFunc {
	var n atomic.Int32
	return func(w http.ResponseWriter, r *http.Request) {
		i := min(int(n.Add(1))-1, len(handlers)-1)
		handlers[i](w, r)
	}
}

func TestResolveRetriesUntilDefinite(t *testing.T) {
	t.Parallel()
	type seen struct {
		at                            time.Time
		method, path, auth, requestID string
		body                          contract.ResolveRequest
	}
	var mu sync.Mutex
	var requests []seen
	fail := answer(http.StatusInternalServerError, problem)
	h := sequence(fail, fail, answer(http.StatusOK, applied))
	srv, calls := server(t, func(w http.ResponseWriter, r *http.Request) {
		s := seen{at: time.Now(), method: r.Method, path: r.URL.Path, auth: r.Header.Get("Authorization"), requestID: r.Header.Get("X-Request-Id")}
		_ = json.NewDecoder(r.Body).Decode(&s.body)
		mu.Lock()
		requests = append(requests, s)
		mu.Unlock()
		h(w, r)
	})
	const waitMin = 40 * time.Millisecond
	c := newClient(t, srv.URL, productclient.Config{Timeout: time.Second, ResolveWaitMin: waitMin, ResolveWaitMax: time.Second})
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	ctx = context.WithValue(ctx, chimw.RequestIDKey, "req-7")

	start := time.Now()
	res, err := c.Resolve(ctx, request.AttemptID, request.OrderID)
	elapsed := time.Since(start)
	if err != nil {
		t.Fatalf("Resolve: %v", err)
	}
	if res.Status != contract.StatusApplied || len(res.Items) != 1 || res.Items[0].UnitPriceCents != 150 {
		t.Errorf("reservation = %+v, want %+v", res, applied)
	}
	if got, want := calls.Load(), int32(3); got != want {
		t.Fatalf("requests = %d, want %d", got, want)
	}
	mu.Lock()
	requests = append([]seen(nil), requests...)
	mu.Unlock()
	for i, s := range requests {
		if want := "/reservations/" + request.AttemptID + "/resolve"; s.method != http.MethodPost || s.path != want {
			t.Errorf("request %d = %s %s, want POST %s", i, s.method, s.path, want)
		}
		if want := "Bearer " + token; s.auth != want {
			t.Errorf("request %d Authorization = %q, want %q", i, s.auth, want)
		}
		if s.requestID != "req-7" {
			t.Errorf("request %d X-Request-Id = %q, want %q", i, s.requestID, "req-7")
		}
		if s.body.OrderID != request.OrderID {
			t.Errorf("request %d body = %+v, want orderId %s", i, s.body, request.OrderID)
		}
	}
	// Equal jitter: retry n waits between waitMin*2^n/2 and waitMin*2^n.
	gap1, gap2 := requests[1].at.Sub(requests[0].at), requests[2].at.Sub(requests[1].at)
	t.Logf("waits between tries: %s, %s (total %s)", gap1, gap2, elapsed)
	if lo := waitMin / 2; gap1 < lo {
		t.Errorf("first wait = %s, want at least %s", gap1, lo)
	}
	if lo := waitMin; gap2 < lo {
		t.Errorf("second wait = %s, want at least %s", gap2, lo)
	}
	if lo := waitMin/2 + waitMin; elapsed < lo {
		t.Errorf("elapsed = %s, want at least %s", elapsed, lo)
	}
}

func TestResolveDefiniteAnswers(t *testing.T) {
	t.Parallel()
	for _, status := range []contract.AttemptStatus{contract.StatusApplied, contract.StatusRejected, contract.StatusAborted, contract.StatusCompensated} {
		t.Run(string(status), func(t *testing.T) {
			t.Parallel()
			body := contract.Reservation{AttemptID: request.AttemptID, OrderID: request.OrderID, Status: status}
			srv, calls := server(t, answer(http.StatusOK, body))
			res, err := newClient(t, srv.URL, productclient.Config{Timeout: time.Second}).Resolve(context.Background(), request.AttemptID, request.OrderID)
			if err != nil {
				t.Fatalf("Resolve: %v", err)
			}
			if res.Status != status {
				t.Errorf("status = %s, want %s", res.Status, status)
			}
			if got, want := calls.Load(), int32(1); got != want {
				t.Errorf("requests = %d, want %d", got, want)
			}
		})
	}
}

func TestResolveRetriesBadAnswers(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name  string
		first http.HandlerFunc
	}{
		{"another attempt", answer(http.StatusOK, contract.Reservation{AttemptID: "other", Status: contract.StatusApplied})},
		{"invalid status", answer(http.StatusOK, contract.Reservation{AttemptID: request.AttemptID, Status: "SENT"})},
		{"not json", func(w http.ResponseWriter, r *http.Request) { _, _ = io.WriteString(w, "<html>") }},
		{"connection dropped", func(w http.ResponseWriter, r *http.Request) { panic(http.ErrAbortHandler) }},
		{"503 with Retry-After", func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Retry-After", "30") // capped at ResolveWaitMax
			w.WriteHeader(http.StatusServiceUnavailable)
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			srv, calls := server(t, sequence(tt.first, answer(http.StatusOK, applied)))
			c := newClient(t, srv.URL, productclient.Config{Timeout: time.Second, ResolveWaitMin: 10 * time.Millisecond, ResolveWaitMax: 50 * time.Millisecond})
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
			defer cancel()
			res, err := c.Resolve(ctx, request.AttemptID, request.OrderID)
			if err != nil {
				t.Fatalf("Resolve: %v", err)
			}
			if res.Status != contract.StatusApplied {
				t.Errorf("status = %s, want %s", res.Status, contract.StatusApplied)
			}
			if got, want := calls.Load(), int32(2); got != want {
				t.Errorf("requests = %d, want %d", got, want)
			}
		})
	}
}

func TestResolveRejectedRequest(t *testing.T) {
	t.Parallel()
	for _, status := range []int{http.StatusUnprocessableEntity, http.StatusBadRequest, http.StatusUnauthorized, http.StatusNotFound, http.StatusConflict} {
		t.Run(http.StatusText(status), func(t *testing.T) {
			t.Parallel()
			srv, calls := server(t, answer(status, problem))
			c := newClient(t, srv.URL, productclient.Config{Timeout: time.Second, BreakerFailures: 1})
			_, err := c.Resolve(context.Background(), request.AttemptID, request.OrderID)
			if !errors.Is(err, productclient.ErrRejectedRequest) {
				t.Fatalf("err = %v, want ErrRejectedRequest", err)
			}
			if errors.Is(err, productclient.ErrUnknownOutcome) || errors.Is(err, productclient.ErrUnavailable) {
				t.Errorf("err = %v, want neither ErrUnknownOutcome nor ErrUnavailable", err)
			}
			if msg := err.Error(); !strings.Contains(msg, strconv.Itoa(status)) || !strings.Contains(msg, "attempt_mismatch") {
				t.Errorf("err = %q, want the status and the body's start", msg)
			}
			if got, want := calls.Load(), int32(1); got != want {
				t.Errorf("requests = %d, want %d (a 4xx is not retried)", got, want)
			}
			if got, want := c.BreakerState(), "closed"; got != want {
				t.Errorf("breaker = %s, want %s", got, want)
			}
		})
	}
}

func TestResolveUnknownOutcome(t *testing.T) {
	t.Parallel()
	const timeout, budget = 100 * time.Millisecond, 300 * time.Millisecond
	tests := []struct {
		name     string
		handler  http.HandlerFunc
		minCalls int32
	}{
		{"always 500", answer(http.StatusInternalServerError, problem), 3},
		{"hung server", hang, 2},
		{"always another attempt", answer(http.StatusOK, contract.Reservation{AttemptID: "other", Status: contract.StatusApplied}), 3},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			srv, calls := server(t, tt.handler)
			// The breaker is out of the way here: ctx must be what ends the loop.
			c := newClient(t, srv.URL, productclient.Config{Timeout: timeout, BreakerFailures: 1000, ResolveWaitMin: 10 * time.Millisecond, ResolveWaitMax: 50 * time.Millisecond})
			ctx, cancel := context.WithTimeout(context.Background(), budget)
			defer cancel()
			start := time.Now()
			_, err := c.Resolve(ctx, request.AttemptID, request.OrderID)
			elapsed := time.Since(start)
			t.Logf("gave up after %s and %d requests: %v", elapsed, calls.Load(), err)
			if !errors.Is(err, productclient.ErrUnknownOutcome) {
				t.Fatalf("err = %v, want ErrUnknownOutcome", err)
			}
			if limit := budget + timeout; elapsed > limit {
				t.Errorf("Resolve took %s, want under %s", elapsed, limit)
			}
			if got := calls.Load(); got < tt.minCalls {
				t.Errorf("requests = %d, want at least %d", got, tt.minCalls)
			}
		})
	}
}

func TestResolveTripsBreaker(t *testing.T) {
	t.Parallel()
	srv, calls := server(t, answer(http.StatusServiceUnavailable, problem))
	const failures = 3
	c := newClient(t, srv.URL, productclient.Config{Timeout: time.Second, BreakerFailures: failures, BreakerOpenFor: time.Minute,
		ResolveWaitMin: time.Millisecond, ResolveWaitMax: 5 * time.Millisecond})
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	start := time.Now()
	_, err := c.Resolve(ctx, request.AttemptID, request.OrderID)
	if !errors.Is(err, productclient.ErrBreakerOpen) || !errors.Is(err, productclient.ErrUnavailable) {
		t.Fatalf("err = %v, want ErrBreakerOpen wrapping ErrUnavailable", err)
	}
	if got, limit := time.Since(start), time.Second; got > limit {
		t.Errorf("Resolve took %s, want under %s: an open breaker fails fast", got, limit)
	}
	if got, want := calls.Load(), int32(failures); got != want {
		t.Errorf("requests = %d, want %d", got, want)
	}

	// Open: the next resolve sends nothing.
	_, err = c.Resolve(ctx, request.AttemptID, request.OrderID)
	if !errors.Is(err, productclient.ErrBreakerOpen) {
		t.Fatalf("err = %v, want ErrBreakerOpen", err)
	}
	if got, want := calls.Load(), int32(failures); got != want {
		t.Errorf("requests = %d, want %d", got, want)
	}
}

func TestBackoff(t *testing.T) {
	t.Parallel()
	const lo, hi = 50 * time.Millisecond, time.Second
	retryAfter := func(v string) *http.Response {
		return &http.Response{StatusCode: http.StatusServiceUnavailable, Header: http.Header{"Retry-After": {v}}}
	}
	tests := []struct {
		name     string
		n        int
		resp     *http.Response
		min, max time.Duration
	}{
		{"first retry", 0, nil, lo / 2, lo},
		{"second retry", 1, nil, lo, 2 * lo},
		{"third retry", 2, nil, 2 * lo, 4 * lo},
		{"capped", 10, nil, hi / 2, hi},
		{"huge attempt", 1000, nil, hi / 2, hi},
		{"no Retry-After on 500", 0, &http.Response{StatusCode: 500, Header: http.Header{}}, lo / 2, lo},
		{"Retry-After seconds", 0, retryAfter("0"), 0, 0},
		{"Retry-After capped", 0, retryAfter("120"), hi, hi},
		{"Retry-After date", 0, retryAfter(time.Now().Add(time.Hour).UTC().Format(http.TimeFormat)), hi, hi},
		{"Retry-After garbage", 1, retryAfter("soon"), lo, 2 * lo},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			for range 200 {
				if got := productclient.Backoff(lo, hi, tt.n, tt.resp); got < tt.min || got > tt.max {
					t.Fatalf("Backoff(%d) = %s, want in [%s, %s]", tt.n, got, tt.min, tt.max)
				}
			}
		})
	}
}
