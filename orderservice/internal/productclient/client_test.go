package productclient_test

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"

	chimw "github.com/go-chi/chi/v5/middleware"

	"github.com/stockfence/stockfence/orderservice/internal/productclient"
	"github.com/stockfence/stockfence/shared/contract"
)

const token = "service-secret"

var request = contract.ReserveRequest{
	AttemptID: "0190a000-0000-7000-8000-0000000000a1",
	OrderID:   "0190a000-0000-7000-8000-000000000001",
	Items:     []contract.Item{{ProductID: 1, Quantity: 2}},
}

// server starts a fake product service that answers with h and counts the
// requests that reach it.
func server(t *testing.T, h http.HandlerFunc) (*httptest.Server, *atomic.Int32) {
	t.Helper()
	var calls atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		calls.Add(1)
		h(w, r)
	}))
	t.Cleanup(srv.Close)
	return srv, &calls
}

func client(t *testing.T, url string, timeout time.Duration) *productclient.Client {
	t.Helper()
	c, err := productclient.New(productclient.Config{BaseURL: url, ServiceToken: token, Timeout: timeout})
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	return c
}

func answer(status int, body any) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(status)
		_ = json.NewEncoder(w).Encode(body)
	}
}

func TestReserveDefiniteAnswers(t *testing.T) {
	t.Parallel()
	applied := contract.Reservation{AttemptID: request.AttemptID, OrderID: request.OrderID, Status: contract.StatusApplied,
		Items: []contract.ReservedItem{{ProductID: 1, Quantity: 2, UnitPriceCents: 150}}}
	rejected := contract.Reservation{AttemptID: request.AttemptID, OrderID: request.OrderID, Status: contract.StatusRejected,
		Reason: contract.ReasonInsufficientStock, Shortages: []contract.Shortage{{ProductID: 1, Requested: 2, Available: 1}}}
	tests := []struct {
		name   string
		status int
		body   contract.Reservation
	}{
		{"applied", http.StatusCreated, applied},
		{"applied replay", http.StatusOK, applied},
		{"rejected", http.StatusConflict, rejected},
		{"aborted", http.StatusConflict, contract.Reservation{AttemptID: request.AttemptID, OrderID: request.OrderID, Status: contract.StatusAborted}},
		{"compensated", http.StatusConflict, contract.Reservation{AttemptID: request.AttemptID, OrderID: request.OrderID, Status: contract.StatusCompensated}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			var got struct {
				method, path, auth, requestID, contentType string
				body                                       contract.ReserveRequest
			}
			srv, calls := server(t, func(w http.ResponseWriter, r *http.Request) {
				got.method, got.path = r.Method, r.URL.Path
				got.auth, got.requestID = r.Header.Get("Authorization"), r.Header.Get("X-Request-Id")
				got.contentType = r.Header.Get("Content-Type")
				_ = json.NewDecoder(r.Body).Decode(&got.body)
				answer(tt.status, tt.body)(w, r)
			})
			ctx := context.WithValue(context.Background(), chimw.RequestIDKey, "req-42")
			res, err := client(t, srv.URL, time.Second).Reserve(ctx, request)
			if err != nil {
				t.Fatalf("Reserve: %v", err)
			}
			if res.Status != tt.body.Status {
				t.Errorf("status = %s, want %s", res.Status, tt.body.Status)
			}
			if len(res.Items) != len(tt.body.Items) || len(res.Shortages) != len(tt.body.Shortages) {
				t.Errorf("reservation = %+v, want %+v", res, tt.body)
			}
			if n := calls.Load(); n != 1 {
				t.Errorf("requests = %d, want 1", n)
			}
			if got.method != http.MethodPost || got.path != "/reservations" {
				t.Errorf("request = %s %s, want POST /reservations", got.method, got.path)
			}
			if want := "Bearer " + token; got.auth != want {
				t.Errorf("Authorization = %q, want %q", got.auth, want)
			}
			if got.requestID != "req-42" {
				t.Errorf("X-Request-Id = %q, want %q", got.requestID, "req-42")
			}
			if got.contentType != "application/json" {
				t.Errorf("Content-Type = %q, want application/json", got.contentType)
			}
			if got.body.AttemptID != request.AttemptID || got.body.OrderID != request.OrderID || len(got.body.Items) != 1 {
				t.Errorf("body = %+v, want %+v", got.body, request)
			}
		})
	}
}

func TestReserveUnknownOutcome(t *testing.T) {
	t.Parallel()
	problemBody := map[string]any{"type": "/problems/x", "title": "Conflict", "status": 409, "code": "x"}
	tests := []struct {
		name    string
		handler http.HandlerFunc
	}{
		{"500", answer(http.StatusInternalServerError, problemBody)},
		{"502", answer(http.StatusBadGateway, problemBody)},
		{"503", answer(http.StatusServiceUnavailable, problemBody)},
		{"400", answer(http.StatusBadRequest, problemBody)},
		{"404", answer(http.StatusNotFound, problemBody)},
		{"422 attempt mismatch", answer(http.StatusUnprocessableEntity, problemBody)},
		{"409 problem", answer(http.StatusConflict, problemBody)},
		{"201 for another attempt", answer(http.StatusCreated, contract.Reservation{AttemptID: "other", Status: contract.StatusApplied})},
		{"201 not applied", answer(http.StatusCreated, contract.Reservation{AttemptID: request.AttemptID, Status: contract.StatusRejected})},
		{"409 applied", answer(http.StatusConflict, contract.Reservation{AttemptID: request.AttemptID, Status: contract.StatusApplied})},
		{"201 not json", func(w http.ResponseWriter, r *http.Request) {
			w.WriteHeader(http.StatusCreated)
			_, _ = io.WriteString(w, "<html>")
		}},
		{"redirect", func(w http.ResponseWriter, r *http.Request) {
			http.Redirect(w, r, "/reservations", http.StatusTemporaryRedirect)
		}},
		{"connection dropped", func(w http.ResponseWriter, r *http.Request) {
			panic(http.ErrAbortHandler)
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			srv, calls := server(t, tt.handler)
			_, err := client(t, srv.URL, time.Second).Reserve(context.Background(), request)
			if !errors.Is(err, productclient.ErrUnknownOutcome) {
				t.Fatalf("err = %v, want ErrUnknownOutcome", err)
			}
			if n := calls.Load(); n != 1 {
				t.Fatalf("requests = %d, want exactly 1 (a reserve call is never resent)", n)
			}
		})
	}
}

func TestReserveSlowServer(t *testing.T) {
	t.Parallel()
	srv, calls := server(t, func(w http.ResponseWriter, r *http.Request) {
		// The server notices a client that went away only once the body is read.
		_, _ = io.Copy(io.Discard, r.Body)
		select {
		case <-r.Context().Done():
		case <-time.After(3 * time.Second):
		}
	})
	tests := []struct {
		name    string
		timeout time.Duration
		ctx     func() (context.Context, context.CancelFunc)
	}{
		{"client timeout", 100 * time.Millisecond, func() (context.Context, context.CancelFunc) {
			return context.WithCancel(context.Background())
		}},
		{"shorter caller deadline", 5 * time.Second, func() (context.Context, context.CancelFunc) {
			return context.WithTimeout(context.Background(), 100*time.Millisecond)
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx, cancel := tt.ctx()
			defer cancel()
			start := time.Now()
			_, err := client(t, srv.URL, tt.timeout).Reserve(ctx, request)
			if !errors.Is(err, productclient.ErrUnknownOutcome) {
				t.Fatalf("err = %v, want ErrUnknownOutcome", err)
			}
			if !errors.Is(err, context.DeadlineExceeded) {
				t.Errorf("err = %v, want it to wrap context.DeadlineExceeded", err)
			}
			if got, limit := time.Since(start), time.Second; got > limit {
				t.Errorf("Reserve took %s, want under %s", got, limit)
			}
		})
	}
	if n := calls.Load(); n != 2 {
		t.Errorf("requests = %d, want 2 (one per call)", n)
	}
}

func TestReserveUnreachable(t *testing.T) {
	t.Parallel()
	srv := httptest.NewServer(http.NotFoundHandler())
	url := srv.URL
	srv.Close()
	_, err := client(t, url, time.Second).Reserve(context.Background(), request)
	if !errors.Is(err, productclient.ErrUnknownOutcome) {
		t.Fatalf("err = %v, want ErrUnknownOutcome", err)
	}
}

func TestCatalog(t *testing.T) {
	t.Parallel()
	list := contract.ProductList{Products: []contract.Product{{ID: 1, SKU: "A-1", Name: "Apple", PriceCents: 150, Stock: 3}}}
	tests := []struct {
		name      string
		failFirst int // answer 503 to this many requests first
		final     http.HandlerFunc
		ok        bool
		calls     int32
	}{
		{"ok", 0, answer(http.StatusOK, list), true, 1},
		{"recovers after 5xx", 2, answer(http.StatusOK, list), true, 3},
		{"keeps failing", 3, answer(http.StatusOK, list), false, 3},
		{"not found is not retried", 0, answer(http.StatusNotFound, map[string]string{}), false, 1},
		{"not json", 0, func(w http.ResponseWriter, r *http.Request) { _, _ = io.WriteString(w, "nope") }, false, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			var path, method string
			var n atomic.Int32
			srv, calls := server(t, func(w http.ResponseWriter, r *http.Request) {
				path, method = r.URL.Path, r.Method
				if int(n.Add(1)) <= tt.failFirst {
					w.WriteHeader(http.StatusServiceUnavailable)
					return
				}
				tt.final(w, r)
			})
			got, err := client(t, srv.URL, time.Second).Catalog(context.Background())
			if tt.ok {
				if err != nil {
					t.Fatalf("Catalog: %v", err)
				}
				if len(got.Products) != 1 || got.Products[0] != list.Products[0] {
					t.Errorf("products = %+v, want %+v", got.Products, list.Products)
				}
			} else if !errors.Is(err, productclient.ErrUnavailable) {
				t.Fatalf("err = %v, want ErrUnavailable", err)
			}
			if c := calls.Load(); c != tt.calls {
				t.Errorf("requests = %d, want %d", c, tt.calls)
			}
			if method != http.MethodGet || path != "/products" {
				t.Errorf("request = %s %s, want GET /products", method, path)
			}
		})
	}
}

func TestCatalogRespectsContext(t *testing.T) {
	t.Parallel()
	srv, _ := server(t, func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusServiceUnavailable)
	})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Millisecond)
	defer cancel()
	start := time.Now()
	_, err := client(t, srv.URL, time.Second).Catalog(ctx)
	if !errors.Is(err, productclient.ErrUnavailable) {
		t.Fatalf("err = %v, want ErrUnavailable", err)
	}
	if got, limit := time.Since(start), 500*time.Millisecond; got > limit {
		t.Fatalf("Catalog took %s, want under %s", got, limit)
	}
}

func TestNewRejectsBadConfig(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		cfg  productclient.Config
	}{
		{"relative url", productclient.Config{BaseURL: "/products", Timeout: time.Second}},
		{"other scheme", productclient.Config{BaseURL: "ftp://host", Timeout: time.Second}},
		{"zero timeout", productclient.Config{BaseURL: "http://127.0.0.1:1"}},
		{"negative breaker failures", productclient.Config{BaseURL: "http://127.0.0.1:1", Timeout: time.Second, BreakerFailures: -1}},
		{"negative open time", productclient.Config{BaseURL: "http://127.0.0.1:1", Timeout: time.Second, BreakerOpenFor: -time.Second}},
		{"resolve wait min above max", productclient.Config{BaseURL: "http://127.0.0.1:1", Timeout: time.Second,
			ResolveWaitMin: 2 * time.Second, ResolveWaitMax: time.Second}},
	}
	for _, tt := range tests {
		if _, err := productclient.New(tt.cfg); err == nil {
			t.Errorf("%s: New = nil error, want one", tt.name)
		}
	}
}
