package httpapi_test

import (
	"encoding/json"
	"net/http"
	"testing"
	"time"

	"github.com/google/uuid"
)

type opsList struct {
	Orders []struct {
		OrderID    string  `json:"orderId"`
		Status     string  `json:"status"`
		AgeSeconds float64 `json:"ageSeconds"`
		Checks     int     `json:"checks"`
		LastError  *string `json:"lastError"`
		Stuck      bool    `json:"stuck"`
		Attempts   []struct {
			Status string `json:"status"`
		} `json:"attempts"`
	} `json:"orders"`
}

func TestOpsOrdersAndRecheck(t *testing.T) {
	t.Parallel()
	h := newHarness(t, modeSlow)
	pending := h.do("POST", "/orders", token(t, "alice"), twoLines).order(t)

	for _, tok := range []string{"", "wrong", token(t, "alice")} {
		if r := h.do("GET", "/ops/orders", tok, ""); r.status != http.StatusUnauthorized {
			t.Errorf("GET /ops/orders with token %q = %d, want 401", tok, r.status)
		}
	}
	r := h.do("GET", "/ops/orders?status=unsettled", adminToken, "")
	var list opsList
	if err := json.Unmarshal(r.body, &list); err != nil || r.status != http.StatusOK {
		t.Fatalf("GET /ops/orders = %d %s", r.status, r.body)
	}
	if len(list.Orders) != 1 {
		t.Fatalf("unsettled orders = %d, want 1", len(list.Orders))
	}
	got := list.Orders[0]
	if got.OrderID != pending.OrderID || got.Status != "PENDING" || got.LastError == nil || got.Stuck ||
		got.AgeSeconds <= 0 || len(got.Attempts) != 1 || got.Attempts[0].Status != "SENT" {
		t.Fatalf("ops order = %+v", got)
	}
	if r := h.do("GET", "/ops/orders?status=CONFIRMED", adminToken, ""); r.status != http.StatusOK || string(r.body) != "{\"orders\":[]}\n" {
		t.Fatalf("confirmed orders = %d %s, want none", r.status, r.body)
	}
	h.do("GET", "/ops/orders?status=NOPE", adminToken, "").problem(t, http.StatusBadRequest, "validation_failed")

	if r := h.do("POST", "/ops/orders/"+pending.OrderID+"/recheck", adminToken, ""); r.status != http.StatusAccepted {
		t.Fatalf("recheck = %d %s, want 202", r.status, r.body)
	}
	var due int
	if err := h.db.QueryRow("SELECT COUNT(*) FROM orders WHERE id = ? AND next_check_at <= NOW(6) + INTERVAL 1 SECOND", pending.OrderID).Scan(&due); err != nil || due != 1 {
		t.Fatalf("after recheck the order is not due (%d, %v)", due, err)
	}
	h.do("POST", "/ops/orders/"+uuid.NewString()+"/recheck", adminToken, "").problem(t, http.StatusNotFound, "not_found")

	h.products.mode.Store(modeApplied)
	confirmed := h.do("POST", "/orders", token(t, "bob"), twoLines).order(t)
	h.do("POST", "/ops/orders/"+confirmed.OrderID+"/recheck", adminToken, "").problem(t, http.StatusConflict, "already_settled")
}

// TestBreakerOpenAnswers503Fast: once the product service has failed enough
// calls, orders are refused at once with 503 and Retry-After, and nothing is
// recorded for them.
func TestBreakerOpenAnswers503Fast(t *testing.T) {
	t.Parallel()
	h := newHarness(t, modeFail)
	// The first order's reserve and resolve retries fail: the breaker opens.
	first := h.do("POST", "/orders", token(t, "alice"), twoLines, "Idempotency-Key", "first")
	if first.status != http.StatusAccepted {
		t.Fatalf("first order = %d, want 202", first.status)
	}
	before := h.count("orders")
	calls := h.products.calls.Load() + h.products.resolves.Load()

	start := time.Now()
	r := h.do("POST", "/orders", token(t, "alice"), twoLines, "Idempotency-Key", "retry-me")
	elapsed := time.Since(start)
	r.problem(t, http.StatusServiceUnavailable, "product_unavailable")
	if r.header.Get("Retry-After") == "" {
		t.Error("503 without Retry-After")
	}
	t.Logf("breaker rejection answered in %v", elapsed)
	if elapsed > 50*time.Millisecond {
		t.Errorf("503 took %v, want under 50 ms", elapsed)
	}
	if after := h.count("orders"); after != before {
		t.Errorf("orders = %d after the 503, want %d", after, before)
	}
	if n := h.products.calls.Load() + h.products.resolves.Load(); n != calls {
		t.Errorf("product calls went from %d to %d during a 503", calls, n)
	}
	// A replay is answered from the orders database, breaker or not.
	replay := h.do("POST", "/orders", token(t, "alice"), twoLines, "Idempotency-Key", "first")
	if replay.status != http.StatusAccepted || replay.order(t).OrderID != first.order(t).OrderID {
		t.Errorf("replay while the breaker is open = %d %s, want 202 with the first order", replay.status, replay.body)
	}
}

func TestCancel(t *testing.T) {
	t.Parallel()
	h := newHarness(t, modeApplied)
	confirmed := h.do("POST", "/orders", token(t, "alice"), twoLines).order(t)

	h.do("POST", "/orders/"+confirmed.OrderID+"/cancel", token(t, "bob"), "").problem(t, http.StatusNotFound, "not_found")
	for range 2 {
		r := h.do("POST", "/orders/"+confirmed.OrderID+"/cancel", token(t, "alice"), "")
		if r.status != http.StatusAccepted || r.order(t).Status != "CANCELLING" {
			t.Fatalf("cancel = %d %s, want 202 CANCELLING", r.status, r.body)
		}
	}
	var outbox int
	if err := h.db.QueryRow("SELECT COUNT(*) FROM outbox WHERE order_id = ?", confirmed.OrderID).Scan(&outbox); err != nil || outbox != 1 {
		t.Fatalf("outbox rows = %d (%v), want 1", outbox, err)
	}

	h.products.mode.Store(modeRejected)
	failed := h.do("POST", "/orders", token(t, "alice"), twoLines).order(t)
	h.do("POST", "/orders/"+failed.OrderID+"/cancel", token(t, "alice"), "").problem(t, http.StatusConflict, "not_cancellable")
	h.do("POST", "/orders/not-a-uuid/cancel", token(t, "alice"), "").problem(t, http.StatusNotFound, "not_found")
}
