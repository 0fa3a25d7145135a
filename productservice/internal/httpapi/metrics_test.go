package httpapi_test

import (
	"net/http"
	"strings"
	"testing"

	"github.com/google/uuid"

	"github.com/stockfence/stockfence/shared/contract"
	"github.com/stockfence/stockfence/shared/metrics/metricstest"
)

// TestMetrics: GET /metrics is public and counts every reservation and
// resolve by outcome, and every request by route pattern, with no attempt or
// order id in any label.
func TestMetrics(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	p := e.product("M-1", 100, 5)
	req := func(quantity int) contract.ReserveRequest {
		return contract.ReserveRequest{AttemptID: uuid.NewString(), OrderID: uuid.NewString(),
			Items: []contract.Item{{ProductID: p.ID, Quantity: quantity}}}
	}
	applied := req(2)
	if status, _ := e.reserve(applied); status != http.StatusCreated {
		t.Fatalf("reserve = %d, want 201", status)
	}
	if status, _ := e.reserve(applied); status != http.StatusOK {
		t.Fatalf("replayed reserve = %d, want 200", status)
	}
	if status, res := e.reserve(req(50)); status != http.StatusConflict || res.Reason != contract.ReasonInsufficientStock {
		t.Fatalf("reserve beyond stock = %d %q, want 409 insufficient_stock", status, res.Reason)
	}
	mismatch := applied
	mismatch.Items = []contract.Item{{ProductID: p.ID, Quantity: 1}}
	if status, _ := e.reserve(mismatch); status != http.StatusUnprocessableEntity {
		t.Fatalf("reserve with other items = %d, want 422", status)
	}
	if status, _ := e.do(http.MethodPost, "/reservations", serviceToken, `{"attemptId":"x"}`); status != http.StatusBadRequest {
		t.Fatalf("malformed reserve = %d, want 400", status)
	}
	late := req(1)
	if res := e.resolve(late.AttemptID, late.OrderID); res.Status != contract.StatusAborted {
		t.Fatalf("resolve of an attempt never seen = %s, want ABORTED", res.Status)
	}
	if res := e.resolve(late.AttemptID, late.OrderID); res.Status != contract.StatusAborted {
		t.Fatalf("second resolve = %s, want ABORTED", res.Status)
	}
	if status, res := e.reserve(late); status != http.StatusConflict || res.Status != contract.StatusAborted {
		t.Fatalf("late reserve of a fenced attempt = %d %s, want 409 ABORTED", status, res.Status)
	}
	if res := e.resolve(applied.AttemptID, applied.OrderID); res.Status != contract.StatusApplied {
		t.Fatalf("resolve of an applied attempt = %s, want APPLIED", res.Status)
	}

	// No token: /metrics is public, like /healthz.
	s := metricstest.Scrape(t, e.url+"/metrics")
	reservations := []struct {
		outcome, reason string
		want            float64
	}{
		{"applied", "", 1},
		{"replayed", "", 1},
		{"rejected", contract.ReasonInsufficientStock, 1},
		{"rejected", contract.ReasonUnknownProduct, 0},
		{"mismatch", "", 1},
		{"invalid", "", 1},
		{"aborted", "", 1},
		{"error", "", 0},
	}
	for _, tt := range reservations {
		labels := map[string]string{"outcome": tt.outcome, "reason": tt.reason}
		if got, found := s.Value("stockfence_reservations_total", labels); got != tt.want || !found {
			t.Errorf("reservations_total%v = %v (found %v), want %v", labels, got, found, tt.want)
		}
	}
	resolves := map[string]float64{"fenced": 1, "aborted": 1, "applied": 1, "rejected": 0, "mismatch": 0}
	for outcome, want := range resolves {
		if got, found := s.Value("stockfence_resolves_total", map[string]string{"outcome": outcome}); got != want || !found {
			t.Errorf("resolves_total{outcome=%q} = %v (found %v), want %v", outcome, got, found, want)
		}
	}
	routes := []struct {
		route, method, code string
		want                float64
	}{
		{"/reservations", "POST", "201", 1},
		{"/reservations", "POST", "409", 2},
		{"/reservations/{attemptId}/resolve", "POST", "200", 3},
		{"/products", "POST", "201", 1},
	}
	for _, tt := range routes {
		labels := map[string]string{"route": tt.route, "method": tt.method, "code": tt.code}
		if got, _ := s.Value("stockfence_http_requests_total", labels); got != tt.want {
			t.Errorf("http_requests_total%v = %v, want %v", labels, got, tt.want)
		}
	}
	for _, id := range []string{applied.AttemptID, applied.OrderID, late.AttemptID} {
		if strings.Contains(s.Text, id) {
			t.Errorf("scrape contains id %s", id)
		}
	}
}
