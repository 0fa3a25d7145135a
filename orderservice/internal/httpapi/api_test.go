package httpapi_test

import (
	"database/sql"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

const twoLines = `{"items":[{"productId":1,"quantity":2},{"productId":3,"quantity":1}]}`

func TestPlaceConfirmed(t *testing.T) {
	t.Parallel()
	h := newHarness(t, modeApplied)
	tok := token(t, "alice")
	r := h.do("POST", "/orders", tok, twoLines, "X-Request-Id", "req-confirm-1")
	if r.status != http.StatusCreated {
		t.Fatalf("status = %d, want 201 (body %s)", r.status, r.body)
	}
	o := r.order(t)
	if got, want := r.header.Get("Location"), "/orders/"+o.OrderID; got != want {
		t.Errorf("Location = %q, want %q", got, want)
	}
	if o.Status != "CONFIRMED" || o.CustomerID != "alice" || o.Reason != nil {
		t.Errorf("order = %s for %s reason %v, want CONFIRMED for alice with null reason", o.Status, o.CustomerID, o.Reason)
	}
	if o.TotalCents == nil || *o.TotalCents != 2*100+1*300 {
		t.Errorf("totalCents = %v, want 500", o.TotalCents)
	}
	wantPrices := []int64{100, 300}
	for i, it := range o.Items {
		if it.UnitPriceCents == nil || *it.UnitPriceCents != wantPrices[i] {
			t.Errorf("items[%d].unitPriceCents = %v, want %d", i, it.UnitPriceCents, wantPrices[i])
		}
	}
	if len(o.Attempts) != 1 || o.Attempts[0].Status != "APPLIED" || o.Attempts[0].ResolvedAt == nil {
		t.Errorf("attempts = %+v, want one APPLIED and resolved", o.Attempts)
	}
	if strings.Contains(string(r.body), "shortages") {
		t.Errorf("body has shortages, want none: %s", r.body)
	}
	if got := h.products.lastRequestID(); got != "req-confirm-1" {
		t.Errorf("request id at the product service = %q, want req-confirm-1", got)
	}
	if got := r.header.Get("X-Request-Id"); got != "req-confirm-1" {
		t.Errorf("X-Request-Id = %q, want req-confirm-1", got)
	}

	g := h.do("GET", "/orders/"+o.OrderID, tok, "")
	if g.status != http.StatusOK {
		t.Fatalf("GET status = %d, want 200 (body %s)", g.status, g.body)
	}
	got := g.order(t)
	if got.Status != "CONFIRMED" || got.TotalCents == nil || *got.TotalCents != 500 || len(got.Items) != 2 || got.Attempts[0].AttemptID != o.Attempts[0].AttemptID {
		t.Errorf("GET order = %+v, want the confirmed order %+v", got, o)
	}
}

func TestPlaceInsufficientStock(t *testing.T) {
	t.Parallel()
	h := newHarness(t, modeRejected)
	r := h.do("POST", "/orders", token(t, "alice"), twoLines)
	if r.status != http.StatusConflict {
		t.Fatalf("status = %d, want 409 (body %s)", r.status, r.body)
	}
	if ct := r.header.Get("Content-Type"); ct != "application/json" {
		t.Errorf("Content-Type = %q, want application/json (an order, not a problem)", ct)
	}
	o := r.order(t)
	if o.Status != "FAILED" || o.Reason == nil || *o.Reason != "insufficient_stock" {
		t.Errorf("order = %s reason %v, want FAILED insufficient_stock", o.Status, o.Reason)
	}
	if len(o.Shortages) != 2 || o.Shortages[0].ProductID != 1 || o.Shortages[0].Requested != 2 || o.Shortages[0].Available != 1 {
		t.Errorf("shortages = %+v, want one per line, one unit short", o.Shortages)
	}
	if o.TotalCents != nil || o.Items[0].UnitPriceCents != nil {
		t.Errorf("total %v, price %v, want null for a failed order", o.TotalCents, o.Items[0].UnitPriceCents)
	}
	if o.Attempts[0].Status != "REJECTED" {
		t.Errorf("attempt = %s, want REJECTED", o.Attempts[0].Status)
	}
}

func TestPlaceUnknownOutcome(t *testing.T) {
	t.Parallel()
	for _, mode := range []string{modeFail, modeSlow} {
		t.Run(mode, func(t *testing.T) {
			t.Parallel()
			h := newHarness(t, mode)
			start := time.Now()
			r := h.do("POST", "/orders", token(t, "alice"), twoLines)
			if r.status != http.StatusAccepted {
				t.Fatalf("status = %d, want 202 (body %s)", r.status, r.body)
			}
			if elapsed := time.Since(start); elapsed > syncBudget+time.Second {
				t.Errorf("answered after %s, want within the sync budget %s", elapsed, syncBudget)
			}
			o := r.order(t)
			if got, want := r.header.Get("Location"), "/orders/"+o.OrderID; got != want {
				t.Errorf("Location = %q, want %q", got, want)
			}
			if o.Status != "PENDING" || len(o.Attempts) != 1 || o.Attempts[0].Status != "SENT" || o.Attempts[0].ResolvedAt != nil {
				t.Errorf("order = %s attempts %+v, want PENDING with one unresolved SENT attempt", o.Status, o.Attempts)
			}
			if n := h.products.calls.Load(); n != 1 {
				t.Errorf("reserve calls = %d, want 1", n)
			}
			var lastError sql.NullString
			var nextCheck sql.NullTime
			if err := h.db.QueryRow("SELECT last_error, next_check_at FROM orders WHERE id = ?", o.OrderID).Scan(&lastError, &nextCheck); err != nil {
				t.Fatal(err)
			}
			if !lastError.Valid || lastError.String == "" || !nextCheck.Valid {
				t.Errorf("last_error = %v, next_check_at = %v, want both set for the recovery worker", lastError, nextCheck)
			}

			// Still pending on a later read: no recovery worker runs here.
			g := h.do("GET", "/orders/"+o.OrderID, token(t, "alice"), "")
			if g.status != http.StatusOK || g.order(t).Attempts[0].Status != "SENT" {
				t.Errorf("GET = %d %s, want 200 with the attempt SENT", g.status, g.body)
			}
		})
	}
}

func TestIdempotentReplay(t *testing.T) {
	t.Parallel()
	tests := []struct {
		mode         string
		first, again int
	}{
		{modeApplied, http.StatusCreated, http.StatusOK},
		{modeRejected, http.StatusConflict, http.StatusConflict},
		{modeFail, http.StatusAccepted, http.StatusAccepted},
	}
	for _, tt := range tests {
		t.Run(tt.mode, func(t *testing.T) {
			t.Parallel()
			h := newHarness(t, tt.mode)
			tok := token(t, "alice")
			first := h.do("POST", "/orders", tok, twoLines, "Idempotency-Key", "key-1")
			if first.status != tt.first {
				t.Fatalf("first status = %d, want %d (body %s)", first.status, tt.first, first.body)
			}
			// Same lines, other order and spacing: the same request.
			same := `{"items": [{"quantity":1, "productId":3}, {"productId":1,"quantity":2}]}`
			again := h.do("POST", "/orders", tok, same, "Idempotency-Key", "key-1")
			if again.status != tt.again {
				t.Fatalf("replay status = %d, want %d (body %s)", again.status, tt.again, again.body)
			}
			if got, want := again.order(t).OrderID, first.order(t).OrderID; got != want {
				t.Errorf("replay order = %s, want %s", got, want)
			}
			if tt.again == http.StatusAccepted && again.header.Get("Location") == "" {
				t.Errorf("replay of a pending order has no Location")
			}
			if n := h.products.calls.Load(); n != 1 {
				t.Errorf("reserve calls = %d, want 1 (a replay does no new work)", n)
			}

			other := h.do("POST", "/orders", tok, `{"items":[{"productId":1,"quantity":3}]}`, "Idempotency-Key", "key-1")
			other.problem(t, http.StatusUnprocessableEntity, "idempotency_key_reused")

			// Keys belong to a customer: bob's key-1 is a new order. (In
			// fail mode the first order's failures opened the breaker,
			// which a replay ignores but a new order does not.)
			h.products.mode.Store(modeApplied)
			bob := h.do("POST", "/orders", token(t, "bob"), twoLines, "Idempotency-Key", "key-1")
			wantBob := http.StatusCreated
			if tt.mode == modeFail {
				wantBob = http.StatusServiceUnavailable
			}
			if bob.status != wantBob {
				t.Fatalf("bob's order = %d %s, want %d", bob.status, bob.body, wantBob)
			}
			if wantBob == http.StatusServiceUnavailable {
				return
			}
			if bob.order(t).OrderID == first.order(t).OrderID {
				t.Errorf("bob's order is alice's order %s", first.order(t).OrderID)
			}
			if got := h.count("orders"); got != 2 {
				t.Errorf("orders rows = %d, want 2", got)
			}
		})
	}
}

func TestConcurrentRequestsWithOneKey(t *testing.T) {
	t.Parallel()
	h := newHarness(t, modeApplied)
	h.products.delay.Store(int64(50 * time.Millisecond))
	tok := token(t, "alice")
	const n = 20
	var wg sync.WaitGroup
	responses := make([]response, n)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			responses[i] = h.do("POST", "/orders", tok, twoLines, "Idempotency-Key", "flash-1")
		}()
	}
	wg.Wait()
	ids := map[string]int{}
	for i, r := range responses {
		switch r.status {
		case http.StatusCreated, http.StatusOK, http.StatusAccepted:
		default:
			t.Fatalf("response %d = %d %s, want 201, 200 or 202", i, r.status, r.body)
		}
		ids[r.order(t).OrderID]++
	}
	if len(ids) != 1 {
		t.Errorf("order ids = %v, want one", ids)
	}
	if got := h.count("orders"); got != 1 {
		t.Errorf("orders rows = %d, want 1", got)
	}
	if got := h.count("idempotency_keys"); got != 1 {
		t.Errorf("idempotency_keys rows = %d, want 1", got)
	}
	if got := h.products.calls.Load(); got != 1 {
		t.Errorf("reserve calls = %d, want 1", got)
	}
}

func TestOtherCustomersOrderIsNotFound(t *testing.T) {
	t.Parallel()
	h := newHarness(t, modeApplied)
	r := h.do("POST", "/orders", token(t, "alice"), twoLines)
	if r.status != http.StatusCreated {
		t.Fatalf("status = %d, want 201", r.status)
	}
	id := r.order(t).OrderID
	h.do("GET", "/orders/"+id, token(t, "bob"), "").problem(t, http.StatusNotFound, "not_found")
	h.do("GET", "/orders/0190a000-0000-7000-8000-000000000000", token(t, "alice"), "").problem(t, http.StatusNotFound, "not_found")
	h.do("GET", "/orders/not-an-id", token(t, "alice"), "").problem(t, http.StatusNotFound, "not_found")

	list := h.do("GET", "/orders", token(t, "bob"), "")
	if list.status != http.StatusOK || !strings.Contains(string(list.body), `"orders":[]`) {
		t.Errorf("bob's list = %d %s, want 200 with no orders", list.status, list.body)
	}
}

func TestListPagination(t *testing.T) {
	t.Parallel()
	h := newHarness(t, modeApplied)
	tok := token(t, "alice")
	var created []string
	for i := range 25 {
		r := h.do("POST", "/orders", tok, fmt.Sprintf(`{"items":[{"productId":%d,"quantity":1}]}`, i+1))
		if r.status != http.StatusCreated {
			t.Fatalf("order %d: status = %d, want 201", i, r.status)
		}
		created = append(created, r.order(t).OrderID)
	}
	// Someone else's orders never show up.
	h.do("POST", "/orders", token(t, "bob"), twoLines)

	var (
		got    []string
		cursor string
		sizes  []int
	)
	for page := 0; ; page++ {
		if page > 5 {
			t.Fatal("pagination does not end")
		}
		path := "/orders?limit=10"
		if cursor != "" {
			path += "&cursor=" + url.QueryEscape(cursor)
		}
		r := h.do("GET", path, tok, "")
		if r.status != http.StatusOK {
			t.Fatalf("GET %s = %d %s", path, r.status, r.body)
		}
		var body struct {
			Orders []orderBody `json:"orders"`
			Next   string      `json:"next"`
		}
		if err := json.Unmarshal(r.body, &body); err != nil {
			t.Fatal(err)
		}
		sizes = append(sizes, len(body.Orders))
		for _, o := range body.Orders {
			if o.CustomerID != "alice" || len(o.Items) != 1 || len(o.Attempts) != 1 {
				t.Errorf("listed order %+v, want alice's with its line and attempt", o)
			}
			got = append(got, o.OrderID)
		}
		if body.Next == "" {
			break
		}
		cursor = body.Next
	}
	if fmt.Sprint(sizes) != "[10 10 5]" {
		t.Errorf("page sizes = %v, want [10 10 5]", sizes)
	}
	if len(got) != 25 {
		t.Fatalf("listed %d orders, want 25", len(got))
	}
	for i, id := range got {
		if want := created[len(created)-1-i]; id != want {
			t.Fatalf("order %d = %s, want %s (newest first, each once)", i, id, want)
		}
	}

	def := h.do("GET", "/orders", tok, "")
	var body struct{ Orders []orderBody }
	if err := json.Unmarshal(def.body, &body); err != nil || len(body.Orders) != 20 {
		t.Errorf("default page = %d orders (%v), want 20", len(body.Orders), err)
	}
}

func TestListRejectsBadParameters(t *testing.T) {
	t.Parallel()
	h := newHarness(t, modeApplied)
	tok := token(t, "alice")
	for _, q := range []string{"limit=0", "limit=101", "limit=-1", "limit=ten", "cursor=bm9wZQ", "cursor=%25%25"} {
		t.Run(q, func(t *testing.T) {
			h.do("GET", "/orders?"+q, tok, "").problem(t, http.StatusBadRequest, "validation_failed")
		})
	}
}

func TestBadInputWritesNothing(t *testing.T) {
	t.Parallel()
	h := newHarness(t, modeApplied)
	valid := token(t, "alice")
	lines := func(n int, dup bool) string {
		items := make([]string, n)
		for i := range items {
			id := i + 1
			if dup && i > 0 {
				id = 1
			}
			items[i] = fmt.Sprintf(`{"productId":%d,"quantity":1}`, id)
		}
		return `{"items":[` + strings.Join(items, ",") + `]}`
	}
	now := time.Now()
	tests := []struct {
		name    string
		token   string
		body    string
		headers []string
		status  int
		code    string
	}{
		{"oversized body", valid, `{"items":[{"productId":1,"quantity":1}],"pad":"` + strings.Repeat("x", 70<<10) + `"}`, nil, http.StatusRequestEntityTooLarge, "body_too_large"},
		{"unknown field", valid, `{"items":[{"productId":1,"quantity":1}],"note":"x"}`, nil, http.StatusBadRequest, "validation_failed"},
		{"customer id in body", valid, `{"customerId":"bob","items":[{"productId":1,"quantity":1}]}`, nil, http.StatusBadRequest, "validation_failed"},
		{"price in line", valid, `{"items":[{"productId":1,"quantity":1,"unitPriceCents":1}]}`, nil, http.StatusBadRequest, "validation_failed"},
		{"status in body", valid, `{"status":"CONFIRMED","items":[{"productId":1,"quantity":1}]}`, nil, http.StatusBadRequest, "validation_failed"},
		{"attempt in body", valid, `{"attemptId":"x","items":[{"productId":1,"quantity":1}]}`, nil, http.StatusBadRequest, "validation_failed"},
		{"quantity zero", valid, `{"items":[{"productId":1,"quantity":0}]}`, nil, http.StatusBadRequest, "validation_failed"},
		{"quantity negative", valid, `{"items":[{"productId":1,"quantity":-2}]}`, nil, http.StatusBadRequest, "validation_failed"},
		{"quantity too large", valid, `{"items":[{"productId":1,"quantity":10001}]}`, nil, http.StatusBadRequest, "validation_failed"},
		{"quantity fractional", valid, `{"items":[{"productId":1,"quantity":1.5}]}`, nil, http.StatusBadRequest, "validation_failed"},
		{"product id zero", valid, `{"items":[{"productId":0,"quantity":1}]}`, nil, http.StatusBadRequest, "validation_failed"},
		{"101 lines", valid, lines(101, false), nil, http.StatusBadRequest, "validation_failed"},
		{"duplicate product", valid, lines(2, true), nil, http.StatusBadRequest, "validation_failed"},
		{"no lines", valid, `{"items":[]}`, nil, http.StatusBadRequest, "validation_failed"},
		{"empty body", valid, ``, nil, http.StatusBadRequest, "validation_failed"},
		{"not json", valid, `{"items":`, nil, http.StatusBadRequest, "validation_failed"},
		{"two values", valid, `{"items":[{"productId":1,"quantity":1}]} {}`, nil, http.StatusBadRequest, "validation_failed"},
		{"idempotency key too long", valid, twoLines, []string{"Idempotency-Key", strings.Repeat("k", 65)}, http.StatusBadRequest, "validation_failed"},
		{"idempotency key not ascii", valid, twoLines, []string{"Idempotency-Key", "clé"}, http.StatusBadRequest, "validation_failed"},
		{"idempotency key twice", valid, twoLines, []string{"Idempotency-Key", "a", "Idempotency-Key", "b"}, http.StatusBadRequest, "validation_failed"},
		{"no token", "", twoLines, nil, http.StatusUnauthorized, "unauthorized"},
		{"basic auth", "", twoLines, []string{"Authorization", "Basic YWxpY2U6cHc="}, http.StatusUnauthorized, "unauthorized"},
		{"garbage token", "not.a.jwt", twoLines, nil, http.StatusUnauthorized, "unauthorized"},
		{"expired token", sign(t, jwt.SigningMethodHS256, []byte(jwtSecret), jwt.MapClaims{"sub": "alice", "exp": now.Add(-time.Minute).Unix()}), twoLines, nil, http.StatusUnauthorized, "unauthorized"},
		{"token without exp", sign(t, jwt.SigningMethodHS256, []byte(jwtSecret), jwt.MapClaims{"sub": "alice"}), twoLines, nil, http.StatusUnauthorized, "unauthorized"},
		{"wrong signature", sign(t, jwt.SigningMethodHS256, []byte("another-secret"), jwt.MapClaims{"sub": "alice", "exp": now.Add(time.Hour).Unix()}), twoLines, nil, http.StatusUnauthorized, "unauthorized"},
		{"alg none", sign(t, jwt.SigningMethodNone, jwt.UnsafeAllowNoneSignatureType, jwt.MapClaims{"sub": "alice", "exp": now.Add(time.Hour).Unix()}), twoLines, nil, http.StatusUnauthorized, "unauthorized"},
		{"alg HS512", sign(t, jwt.SigningMethodHS512, []byte(jwtSecret), jwt.MapClaims{"sub": "alice", "exp": now.Add(time.Hour).Unix()}), twoLines, nil, http.StatusUnauthorized, "unauthorized"},
		{"no sub", sign(t, jwt.SigningMethodHS256, []byte(jwtSecret), jwt.MapClaims{"exp": now.Add(time.Hour).Unix()}), twoLines, nil, http.StatusUnauthorized, "unauthorized"},
		{"sub too long", token(t, strings.Repeat("a", 129)), twoLines, nil, http.StatusUnauthorized, "unauthorized"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := h.do("POST", "/orders", tt.token, tt.body, tt.headers...)
			r.problem(t, tt.status, tt.code)
			if tt.status == http.StatusUnauthorized && r.header.Get("WWW-Authenticate") == "" {
				t.Errorf("401 without WWW-Authenticate")
			}
		})
	}
	for _, table := range []string{"orders", "order_lines", "order_attempts", "idempotency_keys"} {
		if got := h.count(table); got != 0 {
			t.Errorf("%s rows = %d, want 0", table, got)
		}
	}
	if got := h.products.calls.Load(); got != 0 {
		t.Errorf("reserve calls = %d, want 0", got)
	}
}

func TestRoutes(t *testing.T) {
	t.Parallel()
	h := newHarness(t, modeApplied)

	for _, path := range []string{"/healthz", "/readyz"} {
		if r := h.do("GET", path, "", ""); r.status != http.StatusOK {
			t.Errorf("GET %s = %d %s, want 200", path, r.status, r.body)
		}
	}
	if r := h.do("GET", "/readyz", "", ""); !strings.Contains(string(r.body), `"status":"ready"`) {
		t.Errorf("readyz body = %s, want status ready", r.body)
	}

	cat := h.do("GET", "/catalog", "", "")
	if cat.status != http.StatusOK || !strings.Contains(string(cat.body), `"sku":"APL"`) {
		t.Errorf("GET /catalog = %d %s, want 200 with the product list", cat.status, cat.body)
	}

	h.do("GET", "/nope", "", "").problem(t, http.StatusNotFound, "not_found")
	del := h.do("DELETE", "/orders", token(t, "alice"), "")
	del.problem(t, http.StatusMethodNotAllowed, "method_not_allowed")
	if allow := del.header.Get("Allow"); !strings.Contains(allow, "GET") || !strings.Contains(allow, "POST") {
		t.Errorf("Allow = %q, want GET and POST", allow)
	}
	if id := del.header.Get("X-Request-Id"); id == "" {
		t.Errorf("problem response has no X-Request-Id")
	}

	h.products.mode.Store(modeFail)
	r := h.do("GET", "/catalog", "", "")
	r.problem(t, http.StatusServiceUnavailable, "product_unavailable")
	if r.header.Get("Retry-After") == "" {
		t.Errorf("503 without Retry-After")
	}
}

func TestReadyzWithoutSchema(t *testing.T) {
	t.Parallel()
	h := newHarness(t, modeApplied)
	if _, err := h.db.Exec("DROP TABLE goose_db_version"); err != nil {
		t.Fatal(err)
	}
	h.do("GET", "/readyz", "", "").problem(t, http.StatusServiceUnavailable, "not_ready")
	if r := h.do("GET", "/healthz", "", ""); r.status != http.StatusOK {
		t.Errorf("healthz = %d, want 200 whatever the database", r.status)
	}
}
