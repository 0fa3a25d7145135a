package httpapi_test

import (
	"net/http"
	"strconv"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/stockfence/stockfence/orderservice/internal/httpapi"
	"github.com/stockfence/stockfence/orderservice/internal/order"
)

// TestRateLimitPerCustomer: past RateLimit orders in the window a customer
// gets 429 rate_limited with Retry-After, and nothing is recorded or sent;
// another customer is not affected, nor are the customer's reads.
func TestRateLimitPerCustomer(t *testing.T) {
	t.Parallel()
	h := newHarnessWith(t, modeApplied, func(c *httpapi.Config) { c.RateLimit, c.RateWindow = 3, time.Minute })
	body := `{"items":[{"productId":1,"quantity":1}]}`
	alice, bob := token(t, "alice"), token(t, "bob")
	for i := range 3 {
		if r := h.do(http.MethodPost, "/orders", alice, body, "Idempotency-Key", uuid.NewString()); r.status != http.StatusCreated {
			t.Fatalf("order %d: %d %s", i+1, r.status, r.body)
		}
	}
	orders, calls := h.count("orders"), h.products.calls.Load()
	r := h.do(http.MethodPost, "/orders", alice, body, "Idempotency-Key", uuid.NewString())
	r.problem(t, http.StatusTooManyRequests, httpapi.CodeRateLimited)
	if s, err := strconv.Atoi(r.header.Get("Retry-After")); err != nil || s < 1 {
		t.Fatalf("Retry-After = %q, want a number of seconds", r.header.Get("Retry-After"))
	}
	if h.count("orders") != orders || h.products.calls.Load() != calls {
		t.Fatal("a refused order was recorded or sent")
	}
	if r := h.do(http.MethodPost, "/orders", bob, body, "Idempotency-Key", uuid.NewString()); r.status != http.StatusCreated {
		t.Fatalf("another customer: %d %s", r.status, r.body)
	}
	if r := h.do(http.MethodGet, "/orders", alice, ""); r.status != http.StatusOK {
		t.Fatalf("reads of a limited customer: %d %s", r.status, r.body)
	}
}

// TestCORS: without configured origins no cross-origin access is granted;
// with them, a preflight from a listed origin is answered and one from
// another origin is not.
func TestCORS(t *testing.T) {
	t.Parallel()
	preflight := func(h *harness, origin string) response {
		return h.do(http.MethodOptions, "/orders", "", "", "Origin", origin,
			"Access-Control-Request-Method", "POST", "Access-Control-Request-Headers", "authorization,content-type,idempotency-key")
	}
	closed := newHarness(t, modeApplied)
	if r := preflight(closed, "https://shop.example.com"); r.header.Get("Access-Control-Allow-Origin") != "" {
		t.Fatalf("CORS off by default, yet Access-Control-Allow-Origin = %q", r.header.Get("Access-Control-Allow-Origin"))
	}
	if r := closed.do(http.MethodGet, "/catalog", "", "", "Origin", "https://shop.example.com"); r.header.Get("Access-Control-Allow-Origin") != "" {
		t.Fatal("CORS off by default, yet a simple request was granted")
	}

	open := newHarnessWith(t, modeApplied, func(c *httpapi.Config) { c.CORSOrigins = []string{"https://shop.example.com"} })
	r := preflight(open, "https://shop.example.com")
	if got := r.header.Get("Access-Control-Allow-Origin"); got != "https://shop.example.com" {
		t.Fatalf("listed origin: Access-Control-Allow-Origin = %q (status %d)", got, r.status)
	}
	if r := preflight(open, "https://evil.example.net"); r.header.Get("Access-Control-Allow-Origin") != "" {
		t.Fatalf("unlisted origin granted: %q", r.header.Get("Access-Control-Allow-Origin"))
	}
}

// TestQuantityCapAnswer: an order past the per-customer cap is 409
// quantity_limit_exceeded, and neither recorded nor sent.
func TestQuantityCapAnswer(t *testing.T) {
	t.Parallel()
	h := newHarnessWith(t, modeApplied, nil)
	h.store.LimitQuantity(order.QuantityCap{Limit: 2, Window: time.Hour})
	alice := token(t, "alice")
	if r := h.do(http.MethodPost, "/orders", alice, `{"items":[{"productId":1,"quantity":2}]}`); r.status != http.StatusCreated {
		t.Fatalf("first order: %d %s", r.status, r.body)
	}
	orders, calls := h.count("orders"), h.products.calls.Load()
	r := h.do(http.MethodPost, "/orders", alice, `{"items":[{"productId":1,"quantity":1}]}`)
	r.problem(t, http.StatusConflict, httpapi.CodeQuantityLimit)
	if h.count("orders") != orders || h.products.calls.Load() != calls {
		t.Fatal("an order past the cap was recorded or sent")
	}
}
