package httpapi_test

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/stockfence/stockfence/orderservice/internal/httpapi"
	"github.com/stockfence/stockfence/orderservice/internal/order"
)

type statsBody struct {
	WindowSeconds     float64 `json:"windowSeconds"`
	BucketSeconds     float64 `json:"bucketSeconds"`
	StuckAfterSeconds float64 `json:"stuckAfterSeconds"`
	Unsettled         struct {
		Total    int            `json:"total"`
		Stuck    int            `json:"stuck"`
		ByStatus map[string]int `json:"byStatus"`
	} `json:"unsettled"`
	Window struct {
		Total    int            `json:"total"`
		ByStatus map[string]int `json:"byStatus"`
	} `json:"window"`
	Settle struct {
		Samples int      `json:"samples"`
		P50Ms   *float64 `json:"p50Ms"`
		P99Ms   *float64 `json:"p99Ms"`
		MaxMs   *float64 `json:"maxMs"`
	} `json:"settle"`
	Buckets []struct {
		Start           time.Time `json:"start"`
		Orders          int       `json:"orders"`
		OrdersPerSecond float64   `json:"ordersPerSecond"`
		Settled         int       `json:"settled"`
		SettleP50Ms     *float64  `json:"settleP50Ms"`
	} `json:"buckets"`
}

func TestStats(t *testing.T) {
	t.Parallel()
	h := newHarnessWith(t, modeApplied, func(c *httpapi.Config) {
		c.Activity = c.Ops.(httpapi.ActivityReader)
		c.StuckAfter = time.Millisecond // every unsettled order is stuck at once
	})
	h.do("POST", "/orders", token(t, "alice"), twoLines).order(t)
	h.products.mode.Store(modeRejected)
	h.do("POST", "/orders", token(t, "alice"), twoLines).order(t)
	h.products.mode.Store(modeSlow)
	h.do("POST", "/orders", token(t, "bob"), twoLines).order(t)

	for _, tok := range []string{"", token(t, "alice")} {
		h.do("GET", "/ops/stats", tok, "").problem(t, http.StatusUnauthorized, "unauthorized")
	}
	r := h.do("GET", "/ops/stats", adminToken, "")
	var s statsBody
	if err := json.Unmarshal(r.body, &s); err != nil || r.status != http.StatusOK {
		t.Fatalf("GET /ops/stats = %d %s", r.status, r.body)
	}
	if s.WindowSeconds != 300 || s.BucketSeconds != 5 || len(s.Buckets) != 60 || s.StuckAfterSeconds != 0.001 {
		t.Errorf("window %vs in %d buckets of %vs (stuck after %vs), want 300s in 60 of 5s (0.001s)",
			s.WindowSeconds, len(s.Buckets), s.BucketSeconds, s.StuckAfterSeconds)
	}
	want := map[string]int{"PENDING": 1, "CONFIRMED": 1, "FAILED": 1, "COMPENSATING": 0, "CANCELLING": 0, "CANCELLED": 0}
	for st, n := range want {
		if got, ok := s.Window.ByStatus[st]; !ok || got != n {
			t.Errorf("window %s = %d (present %v), want %d", st, got, ok, n)
		}
	}
	if s.Window.Total != 3 || s.Unsettled.Total != 1 || s.Unsettled.ByStatus["PENDING"] != 1 || s.Unsettled.Stuck != 1 {
		t.Errorf("window total %d, unsettled %+v; want 3 and one stuck PENDING", s.Window.Total, s.Unsettled)
	}
	if s.Settle.Samples != 2 || s.Settle.P50Ms == nil || s.Settle.MaxMs == nil || *s.Settle.MaxMs < *s.Settle.P50Ms {
		t.Errorf("settle = %+v, want 2 samples with p50 <= max", s.Settle)
	}
	orders, settled := 0, 0
	for i, b := range s.Buckets {
		orders += b.Orders
		settled += b.Settled
		if i > 0 && !b.Start.Equal(s.Buckets[i-1].Start.Add(5*time.Second)) {
			t.Errorf("bucket %d starts at %v, 5s after %v expected", i, b.Start, s.Buckets[i-1].Start)
		}
		if b.Orders == 0 && (b.OrdersPerSecond != 0 || b.SettleP50Ms != nil) {
			t.Errorf("empty bucket %d = %+v", i, b)
		}
	}
	if orders != 3 || settled != 2 {
		t.Errorf("buckets hold %d orders, %d settled; want 3, 2", orders, settled)
	}
	if last := s.Buckets[len(s.Buckets)-1]; time.Since(last.Start) > 5*time.Second || time.Since(last.Start) < 0 {
		t.Errorf("last bucket starts at %v, want it to hold now", last.Start)
	}

	if r := h.do("GET", "/ops/stats?window=1h", adminToken, ""); r.status != http.StatusOK {
		t.Errorf("window=1h = %d %s", r.status, r.body)
	} else if err := json.Unmarshal(r.body, &s); err != nil || s.BucketSeconds != 60 {
		t.Errorf("window=1h: bucket %vs (%v), want 60s", s.BucketSeconds, err)
	}
	for _, bad := range []string{"10s", "2h", "soon", "-5m"} {
		h.do("GET", "/ops/stats?window="+bad, adminToken, "").problem(t, http.StatusBadRequest, "validation_failed")
	}
}

type failingActivity struct{}

func (failingActivity) Activity(context.Context, order.Window, time.Time, int) (order.Activity, error) {
	return order.Activity{}, errors.New("orders database gone")
}

func TestStatsInternalError(t *testing.T) {
	t.Parallel()
	h := newHarnessWith(t, modeApplied, func(c *httpapi.Config) { c.Activity = failingActivity{} })
	r := h.do("GET", "/ops/stats", adminToken, "")
	r.problem(t, http.StatusInternalServerError, "internal_error")
	if strings.Contains(string(r.body), "orders database gone") {
		t.Errorf("500 reveals the cause: %s", r.body)
	}
	// Without an activity reader the path does not exist.
	newHarness(t, modeApplied).do("GET", "/ops/stats", adminToken, "").problem(t, http.StatusNotFound, "not_found")
}
