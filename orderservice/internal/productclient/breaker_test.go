package productclient_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stockfence/stockfence/orderservice/internal/productclient"
	"github.com/stockfence/stockfence/shared/contract"
)

// newClient returns a client of url configured by cfg (BaseURL and
// ServiceToken are filled in).
func newClient(t *testing.T, url string, cfg productclient.Config) *productclient.Client {
	t.Helper()
	cfg.BaseURL, cfg.ServiceToken = url, token
	c, err := productclient.New(cfg)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	return c
}

var (
	applied = contract.Reservation{AttemptID: request.AttemptID, OrderID: request.OrderID, Status: contract.StatusApplied,
		Items: []contract.ReservedItem{{ProductID: 1, Quantity: 2, UnitPriceCents: 150}}}
	rejected = contract.Reservation{AttemptID: request.AttemptID, OrderID: request.OrderID, Status: contract.StatusRejected,
		Reason: contract.ReasonInsufficientStock, Shortages: []contract.Shortage{{ProductID: 1, Requested: 2, Available: 1}}}
	problem = map[string]any{"type": "/problems/x", "title": "x", "status": 422, "code": "attempt_mismatch"}
)

// hang answers only when the client has gone away (or after a second).
func hang(w http.ResponseWriter, r *http.Request) {
	// The server notices a client that went away only once the body is read.
	_, _ = io.Copy(io.Discard, r.Body)
	select {
	case <-r.Context().Done():
	case <-time.After(time.Second):
	}
}

func TestBreakerIgnoresAnswers(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		handler http.HandlerFunc
		ok      bool
	}{
		{"409 rejected", answer(http.StatusConflict, rejected), true},
		{"201 applied", answer(http.StatusCreated, applied), true},
		{"422 attempt mismatch", answer(http.StatusUnprocessableEntity, problem), false},
		{"400", answer(http.StatusBadRequest, problem), false},
		{"401", answer(http.StatusUnauthorized, problem), false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			srv, calls := server(t, tt.handler)
			c := newClient(t, srv.URL, productclient.Config{Timeout: time.Second, BreakerFailures: 3})
			for range 10 {
				_, err := c.Reserve(context.Background(), request)
				if got := err == nil; got != tt.ok {
					t.Fatalf("Reserve err = %v, want ok %v", err, tt.ok)
				}
			}
			if got, want := c.BreakerState(), "closed"; got != want {
				t.Errorf("breaker = %s, want %s", got, want)
			}
			if _, ok := c.Available(); !ok {
				t.Errorf("Available = false, want true")
			}
			if got, want := calls.Load(), int32(10); got != want {
				t.Errorf("requests = %d, want %d", got, want)
			}
		})
	}
}

func TestBreakerOpensAndRecovers(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		fail    http.HandlerFunc
		probeOK bool
	}{
		{"503", answer(http.StatusServiceUnavailable, problem), true},
		{"500", answer(http.StatusInternalServerError, problem), true},
		{"timeout", hang, true},
		{"failed probe reopens", answer(http.StatusBadGateway, problem), false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			const failures, openFor = 3, 300 * time.Millisecond
			var up atomic.Bool
			srv, calls := server(t, func(w http.ResponseWriter, r *http.Request) {
				if up.Load() {
					answer(http.StatusCreated, applied)(w, r)
					return
				}
				tt.fail(w, r)
			})
			var logs syncBuffer
			c := newClient(t, srv.URL, productclient.Config{
				Timeout: 50 * time.Millisecond, BreakerFailures: failures, BreakerOpenFor: openFor,
				Logger: slog.New(slog.NewTextHandler(&logs, nil)),
			})

			for i := range failures {
				if _, ok := c.Available(); !ok {
					t.Fatalf("Available = false before failure %d, want true", i+1)
				}
				_, err := c.Reserve(context.Background(), request)
				if !errors.Is(err, productclient.ErrUnknownOutcome) {
					t.Fatalf("Reserve %d err = %v, want ErrUnknownOutcome", i+1, err)
				}
			}
			if got, want := c.BreakerState(), "open"; got != want {
				t.Fatalf("breaker = %s, want %s", got, want)
			}
			retryAfter, ok := c.Available()
			if ok {
				t.Fatalf("Available = true, want false while open")
			}
			if limit := max(openFor, time.Second); retryAfter <= 0 || retryAfter > limit {
				t.Errorf("retryAfter = %s, want in (0, %s]", retryAfter, limit)
			}

			start := time.Now()
			_, err := c.Reserve(context.Background(), request)
			took := time.Since(start)
			t.Logf("breaker rejection took %s", took)
			if !errors.Is(err, productclient.ErrBreakerOpen) || !errors.Is(err, productclient.ErrUnavailable) {
				t.Fatalf("err = %v, want ErrBreakerOpen wrapping ErrUnavailable", err)
			}
			if errors.Is(err, productclient.ErrUnknownOutcome) {
				t.Errorf("err = %v, want no ErrUnknownOutcome: nothing was sent", err)
			}
			if got, limit := took, 50*time.Millisecond; got > limit {
				t.Errorf("rejection took %s, want under %s", got, limit)
			}
			if got, want := calls.Load(), int32(failures); got != want {
				t.Errorf("requests = %d, want %d (the refused call must not be sent)", got, want)
			}

			time.Sleep(openFor + 20*time.Millisecond)
			if _, ok := c.Available(); !ok {
				t.Fatalf("Available = false after %s, want true", openFor)
			}
			if got, want := c.BreakerState(), "half-open"; got != want {
				t.Fatalf("breaker = %s, want %s", got, want)
			}
			up.Store(tt.probeOK)
			_, err = c.Reserve(context.Background(), request)
			want := "closed"
			if !tt.probeOK {
				want = "open"
			}
			if tt.probeOK && err != nil {
				t.Fatalf("probe Reserve: %v", err)
			}
			if got := c.BreakerState(); got != want {
				t.Errorf("breaker after probe = %s, want %s", got, want)
			}
			if got, want := calls.Load(), int32(failures+1); got != want {
				t.Errorf("requests = %d, want %d", got, want)
			}

			text := logs.String()
			if !strings.Contains(text, "level=WARN") || !strings.Contains(text, "to=open") {
				t.Errorf("logs = %q, want a WARN line with to=open", text)
			}
			for _, line := range []string{"from=open to=half-open", "from=half-open to=" + want} {
				if !strings.Contains(text, line) {
					t.Errorf("logs = %q, want %q", text, line)
				}
			}
		})
	}
}

func TestBreakerRetryAfter(t *testing.T) {
	t.Parallel()
	srv, _ := server(t, answer(http.StatusServiceUnavailable, problem))
	const openFor = 3 * time.Second
	c := newClient(t, srv.URL, productclient.Config{Timeout: time.Second, BreakerFailures: 1, BreakerOpenFor: openFor})
	_, _ = c.Reserve(context.Background(), request)
	retryAfter, ok := c.Available()
	if ok {
		t.Fatalf("Available = true, want false while open")
	}
	if lo := openFor - 500*time.Millisecond; retryAfter < lo || retryAfter > openFor {
		t.Errorf("retryAfter = %s, want in [%s, %s]", retryAfter, lo, openFor)
	}
}

func TestBreakerHalfOpenAdmitsProbesOnly(t *testing.T) {
	t.Parallel()
	var up atomic.Bool
	release := make(chan struct{})
	srv, calls := server(t, func(w http.ResponseWriter, r *http.Request) {
		if !up.Load() {
			w.WriteHeader(http.StatusServiceUnavailable)
			return
		}
		<-release
		answer(http.StatusCreated, applied)(w, r)
	})
	const openFor = 100 * time.Millisecond
	c := newClient(t, srv.URL, productclient.Config{Timeout: time.Second, BreakerFailures: 1, BreakerOpenFor: openFor, BreakerProbes: 1})
	_, _ = c.Reserve(context.Background(), request)
	time.Sleep(openFor + 20*time.Millisecond)
	up.Store(true)

	probe := make(chan error, 1)
	go func() {
		_, err := c.Reserve(context.Background(), request)
		probe <- err
	}()
	for calls.Load() < 2 { // wait until the probe is at the server
		time.Sleep(time.Millisecond)
	}
	_, err := c.Reserve(context.Background(), request)
	if !errors.Is(err, productclient.ErrBreakerOpen) {
		t.Errorf("second call while probing err = %v, want ErrBreakerOpen", err)
	}
	close(release)
	if err := <-probe; err != nil {
		t.Fatalf("probe Reserve: %v", err)
	}
	if got, want := c.BreakerState(), "closed"; got != want {
		t.Errorf("breaker = %s, want %s", got, want)
	}
	if got, want := calls.Load(), int32(2); got != want {
		t.Errorf("requests = %d, want %d", got, want)
	}
}

func TestBreakerSkipsCatalog(t *testing.T) {
	t.Parallel()
	srv, _ := server(t, answer(http.StatusServiceUnavailable, problem))
	c := newClient(t, srv.URL, productclient.Config{Timeout: time.Second, BreakerFailures: 1, BreakerOpenFor: time.Minute})
	for range 3 {
		if _, err := c.Catalog(context.Background()); !errors.Is(err, productclient.ErrUnavailable) || errors.Is(err, productclient.ErrBreakerOpen) {
			t.Fatalf("Catalog err = %v, want ErrUnavailable without ErrBreakerOpen", err)
		}
	}
	if got, want := c.BreakerState(), "closed"; got != want {
		t.Errorf("breaker = %s, want %s", got, want)
	}
}

func TestBreakerIgnoresCallerCancel(t *testing.T) {
	t.Parallel()
	srv, _ := server(t, hang)
	c := newClient(t, srv.URL, productclient.Config{Timeout: time.Second, BreakerFailures: 2})
	for range 4 {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
		_, err := c.Reserve(ctx, request)
		cancel()
		if !errors.Is(err, productclient.ErrUnknownOutcome) {
			t.Fatalf("Reserve err = %v, want ErrUnknownOutcome", err)
		}
	}
	if got, want := c.BreakerState(), "closed"; got != want {
		t.Errorf("breaker = %s, want %s (a caller's own deadline is not the service's failure)", got, want)
	}
}

// syncBuffer is a bytes.Buffer safe for a logger and a test to share.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}
