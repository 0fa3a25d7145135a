package httpapi_test

import (
	"net/http"
	"strings"
	"testing"

	"github.com/google/uuid"

	"github.com/stockfence/stockfence/shared/metrics/metricstest"
)

// TestMetrics: GET /metrics is public; it counts POST /orders answers by the
// order's status and the HTTP status, and every request by route pattern,
// with no order id in any label.
func TestMetrics(t *testing.T) {
	t.Parallel()
	h := newHarness(t, modeApplied)
	tok := token(t, "alice")
	confirmed := h.do("POST", "/orders", tok, twoLines, "Idempotency-Key", "m-1")
	if confirmed.status != http.StatusCreated {
		t.Fatalf("place = %d %s, want 201", confirmed.status, confirmed.body)
	}
	if r := h.do("POST", "/orders", tok, twoLines, "Idempotency-Key", "m-1"); r.status != http.StatusOK {
		t.Fatalf("replay = %d %s, want 200", r.status, r.body)
	}
	if r := h.do("POST", "/orders", tok, `{"items":[]}`); r.status != http.StatusBadRequest {
		t.Fatalf("empty order = %d %s, want 400", r.status, r.body)
	}
	h.products.mode.Store(modeRejected)
	if r := h.do("POST", "/orders", tok, twoLines); r.status != http.StatusConflict {
		t.Fatalf("place without stock = %d %s, want 409", r.status, r.body)
	}
	id := confirmed.order(t).OrderID
	if r := h.do("GET", "/orders/"+id, tok, ""); r.status != http.StatusOK {
		t.Fatalf("get = %d, want 200", r.status)
	}
	missing := uuid.NewString()
	if r := h.do("GET", "/orders/"+missing, tok, ""); r.status != http.StatusNotFound {
		t.Fatalf("get another id = %d, want 404", r.status)
	}

	s := metricstest.Scrape(t, h.url+"/metrics")
	placed := []struct {
		status, code string
		want         float64
	}{
		{"CONFIRMED", "201", 1},
		{"CONFIRMED", "200", 1},
		{"FAILED", "409", 1},
		{"NONE", "400", 1},
	}
	for _, tt := range placed {
		labels := map[string]string{"status": tt.status, "code": tt.code}
		if got, _ := s.Value("stockfence_orders_placed_total", labels); got != tt.want {
			t.Errorf("orders_placed_total%v = %v, want %v", labels, got, tt.want)
		}
	}
	if got, _ := s.Value("stockfence_orders_placed_total", nil); got != 4 {
		t.Errorf("orders_placed_total = %v in all, want 4", got)
	}
	routes := []struct {
		route, method, code string
		want                float64
	}{
		{"/orders", "POST", "201", 1},
		{"/orders/{id}", "GET", "200", 1},
		{"/orders/{id}", "GET", "404", 1},
	}
	for _, tt := range routes {
		labels := map[string]string{"route": tt.route, "method": tt.method, "code": tt.code}
		if got, _ := s.Value("stockfence_http_requests_total", labels); got != tt.want {
			t.Errorf("http_requests_total%v = %v, want %v", labels, got, tt.want)
		}
	}
	for _, raw := range []string{id, missing} {
		if strings.Contains(s.Text, raw) {
			t.Errorf("scrape contains the order id %s", raw)
		}
	}
}
