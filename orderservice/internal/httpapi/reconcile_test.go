package httpapi_test

import (
	"encoding/json"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"

	"github.com/google/uuid"

	"github.com/stockfence/stockfence/shared/contract"
)

// reconcileBody is GET /ops/reconcile as a client reads it; pointers tell
// null from zero.
type reconcileBody struct {
	OK              bool `json:"ok"`
	CheckedOrders   int  `json:"checkedOrders"`
	CheckedAttempts int  `json:"checkedAttempts"`
	UnsettledOrders int  `json:"unsettledOrders"`
	RecentOrders    int  `json:"recentOrders"`
	Violations      []struct {
		Kind      string  `json:"kind"`
		OrderID   *string `json:"orderId"`
		AttemptID *string `json:"attemptId"`
		ProductID *int64  `json:"productId"`
		Detail    string  `json:"detail"`
	} `json:"violations"`
}

// keys returns the sorted keys of a JSON object.
func keys(t *testing.T, raw []byte) []string {
	t.Helper()
	var m map[string]json.RawMessage
	if err := json.Unmarshal(raw, &m); err != nil {
		t.Fatalf("decode %s: %v", raw, err)
	}
	var out []string
	for k := range m {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}

func (h *harness) reconcile() (reconcileBody, []byte) {
	h.t.Helper()
	r := h.do("GET", "/ops/reconcile", adminToken, "")
	if r.status != http.StatusOK {
		h.t.Fatalf("GET /ops/reconcile = %d %s, want 200", r.status, r.body)
	}
	var body reconcileBody
	if err := json.Unmarshal(r.body, &body); err != nil {
		h.t.Fatalf("decode %s: %v", r.body, err)
	}
	return body, r.body
}

func TestReconcile(t *testing.T) {
	t.Parallel()
	h := newHarness(t, modeApplied)
	for _, tok := range []string{"", "wrong", serviceToken, token(t, "alice")} {
		if r := h.do("GET", "/ops/reconcile", tok, ""); r.status != http.StatusUnauthorized {
			t.Errorf("GET /ops/reconcile with token %q = %d, want 401", tok, r.status)
		}
	}

	// Two confirmed orders and a failed one: three attempts in the log,
	// served two to a page.
	for range 2 {
		if o := h.do("POST", "/orders", token(t, "alice"), twoLines).order(t); o.Status != "CONFIRMED" {
			t.Fatalf("order = %s, want CONFIRMED", o.Status)
		}
	}
	h.products.mode.Store(modeRejected)
	if o := h.do("POST", "/orders", token(t, "bob"), twoLines).order(t); o.Status != "FAILED" {
		t.Fatalf("order = %s, want FAILED", o.Status)
	}
	h.products.mu.Lock()
	h.products.logPageSize = 2
	h.products.ledger = contract.Ledger{
		Products:     []contract.ProductBalance{{ProductID: 1, Stock: 6, LedgerSum: 6}, {ProductID: 3, Stock: 8, LedgerSum: 8}},
		Unattributed: []contract.UnattributedMovement{},
	}
	h.products.mu.Unlock()

	body, raw := h.reconcile()
	if want := []string{"checkedAttempts", "checkedOrders", "ok", "recentOrders", "unsettledOrders", "violations"}; !slices.Equal(keys(t, raw), want) {
		t.Fatalf("keys = %q, want %q", keys(t, raw), want)
	}
	if !body.OK || body.CheckedOrders != 3 || body.CheckedAttempts != 3 || body.UnsettledOrders != 0 || body.RecentOrders != 0 ||
		!strings.Contains(string(raw), `"violations":[]`) {
		t.Fatalf("clean reconcile = %s", raw)
	}
	h.products.mu.Lock()
	queries := slices.Clone(h.products.logQueries)
	h.products.mu.Unlock()
	if len(queries) != 2 {
		t.Fatalf("log reads = %q, want two pages", queries)
	}
	first, _ := url.ParseQuery(queries[0])
	second, _ := url.ParseQuery(queries[1])
	if first.Get("updatedSince") != "1970-01-01T00:00:00Z" || first.Get("limit") != "1000" || first.Has("cursor") {
		t.Errorf("first page query = %q, want updatedSince=1970-01-01T00:00:00Z&limit=1000", queries[0])
	}
	if second.Get("cursor") != "page-1" || second.Get("limit") != "1000" {
		t.Errorf("second page query = %q, want cursor=page-1 and limit=1000", queries[1])
	}

	// Damage both sides: a product's stock changed by hand, and stock
	// taken for an order this service never created.
	stray := contract.Reservation{AttemptID: uuid.NewString(), OrderID: uuid.NewString(), Status: contract.StatusApplied,
		Items: []contract.ReservedItem{{ProductID: 1, Quantity: 1, UnitPriceCents: 100}}, Ledger: &contract.AttemptLedger{Taken: 1}}
	h.products.mu.Lock()
	h.products.ledger.Products[1].Stock = 7
	h.products.extraLog = append(h.products.extraLog, stray)
	h.products.mu.Unlock()

	body, raw = h.reconcile()
	if body.OK || body.CheckedAttempts != 4 || len(body.Violations) != 2 {
		t.Fatalf("damaged reconcile = %s, want ok false with two violations", raw)
	}
	var violations []json.RawMessage
	var whole struct {
		Violations *[]json.RawMessage `json:"violations"`
	}
	whole.Violations = &violations
	if err := json.Unmarshal(raw, &whole); err != nil {
		t.Fatal(err)
	}
	for _, v := range violations {
		if want := []string{"attemptId", "detail", "kind", "orderId", "productId"}; !slices.Equal(keys(t, v), want) {
			t.Fatalf("violation keys = %q, want %q", keys(t, v), want)
		}
	}
	unknown, mismatch := body.Violations[0], body.Violations[1]
	if unknown.Kind != "applied_unknown_order" || unknown.OrderID == nil || *unknown.OrderID != stray.OrderID ||
		unknown.AttemptID == nil || *unknown.AttemptID != stray.AttemptID || unknown.ProductID != nil || unknown.Detail == "" {
		t.Errorf("first violation = %s, want applied_unknown_order of the stray attempt", violations[0])
	}
	if mismatch.Kind != "stock_mismatch" || mismatch.OrderID != nil || mismatch.AttemptID != nil ||
		mismatch.ProductID == nil || *mismatch.ProductID != 3 || !strings.Contains(mismatch.Detail, "7") {
		t.Errorf("second violation = %s, want stock_mismatch of product 3", violations[1])
	}

	// A product service that cannot show its books: nothing is checked.
	h.products.mu.Lock()
	h.products.booksDown = true
	h.products.mu.Unlock()
	r := h.do("GET", "/ops/reconcile", adminToken, "")
	r.problem(t, http.StatusServiceUnavailable, "product_unavailable")
	if r.header.Get("Retry-After") == "" {
		t.Error("503 without Retry-After")
	}
}
