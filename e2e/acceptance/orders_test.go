package acceptance_test

import (
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/stockfence/stockfence/shared/contract"
)

// generous gives the services room under contention on a small machine: these
// tests assert business outcomes (no oversell, all-or-nothing), not latency,
// so an answer must not be turned into a 202 by a deadline.
var generous = map[string]string{"PRODUCT_TIMEOUT": "30s", "ORDER_SYNC_BUDGET": "60s"}

// TestFlashSale: 500 customers at once order one unit of a product that has
// 100. Exactly 100 are confirmed, 400 fail with insufficient_stock, no answer
// is a 5xx, the stock ends at 0 and the ledger shows -100.
func TestFlashSale(t *testing.T) {
	t.Parallel()
	s := start(t, generous)
	hot := s.seed(contract.NewProduct{SKU: "HOT-1", Name: "Limited sneaker", PriceCents: 12900, Stock: 100})[0]

	const customers = 500
	statuses := make([]int, customers)
	orders := make([]order, customers)
	var wg sync.WaitGroup
	begin := make(chan struct{})
	for i := range customers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-begin
			r := s.placeOrder(fmt.Sprintf("customer-%03d", i), uuid.NewString(), contract.Item{ProductID: hot.ID, Quantity: 1})
			statuses[i] = r.status
			if r.status == http.StatusCreated || r.status == http.StatusConflict {
				r.decode(t, &orders[i])
			}
		}()
	}
	started := time.Now()
	close(begin)
	wg.Wait()
	t.Logf("%d orders answered in %v", customers, time.Since(started))

	count := map[int]int{}
	for i, st := range statuses {
		count[st]++
		o := orders[i]
		switch st {
		case http.StatusCreated:
			if o.Status != "CONFIRMED" || o.TotalCents == nil || *o.TotalCents != 12900 {
				t.Errorf("201 with %+v, want CONFIRMED with total 12900", o)
			}
		case http.StatusConflict:
			if o.Status != "FAILED" || o.Reason == nil || *o.Reason != contract.ReasonInsufficientStock {
				t.Errorf("409 with %+v, want FAILED insufficient_stock", o)
			}
		}
	}
	if count[http.StatusCreated] != 100 || count[http.StatusConflict] != 400 {
		t.Fatalf("answers by status = %v, want 100 x 201 and 400 x 409", count)
	}
	if n := s.count(s.products, `SELECT stock FROM products WHERE id = ?`, hot.ID); n != 0 {
		t.Errorf("stock = %d, want 0", n)
	}
	if n := s.count(s.products, `SELECT SUM(delta) FROM stock_movements WHERE product_id = ? AND kind = 'reserve'`, hot.ID); n != -100 {
		t.Errorf("ledger reserve sum = %d, want -100", n)
	}
	if n := s.count(s.orders, `SELECT COUNT(*) FROM orders WHERE status = 'CONFIRMED'`); n != 100 {
		t.Errorf("CONFIRMED orders = %d, want 100", n)
	}
	if n := s.count(s.orders, `SELECT COUNT(*) FROM orders WHERE status = 'FAILED'`); n != 400 {
		t.Errorf("FAILED orders = %d, want 400", n)
	}
	s.checkConservation()
}

// TestOppositeLineOrder: 200 concurrent two-line orders over the same two
// products, half listing them A,B and half B,A. No deadlock reaches a
// customer, every order is all-or-nothing and stock is conserved.
func TestOppositeLineOrder(t *testing.T) {
	t.Parallel()
	s := start(t, generous)
	p := s.seed(
		contract.NewProduct{SKU: "PAIR-A", Name: "Left glove", PriceCents: 500, Stock: 150},
		contract.NewProduct{SKU: "PAIR-B", Name: "Right glove", PriceCents: 700, Stock: 150},
	)
	a, b := p[0], p[1]

	const n = 200
	var (
		wg        sync.WaitGroup
		mu        sync.Mutex
		confirmed int
	)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			items := []contract.Item{{ProductID: a.ID, Quantity: 1}, {ProductID: b.ID, Quantity: 1}}
			if i%2 == 1 {
				items[0], items[1] = items[1], items[0]
			}
			r := s.placeOrder(fmt.Sprintf("pair-%03d", i), uuid.NewString(), items...)
			var o order
			if r.status == http.StatusCreated || r.status == http.StatusConflict {
				r.decode(t, &o)
			}
			mu.Lock()
			defer mu.Unlock()
			switch {
			case r.status == http.StatusCreated && o.Status == "CONFIRMED" && len(o.Items) == 2 && *o.TotalCents == 1200:
				confirmed++
			case r.status == http.StatusConflict && o.Status == "FAILED":
			default:
				t.Errorf("order: %d %s", r.status, r.body)
			}
		}()
	}
	wg.Wait()
	if confirmed != 150 {
		t.Errorf("confirmed = %d, want 150", confirmed)
	}
	for _, id := range []int64{a.ID, b.ID} {
		if st := s.count(s.products, `SELECT stock FROM products WHERE id = ?`, id); st != 0 {
			t.Errorf("stock of %d = %d, want 0", id, st)
		}
	}
	s.checkConservation()
}

// TestIdempotency: one attempt sent twice applies once; one Idempotency-Key
// sent twice gives one order; the same key with another body is refused.
func TestIdempotency(t *testing.T) {
	t.Parallel()
	s := start(t, nil)
	p := s.seed(contract.NewProduct{SKU: "IDEM-1", Name: "Mug", PriceCents: 900, Stock: 10})[0]

	t.Run("same attempt twice", func(t *testing.T) {
		req := contract.ReserveRequest{AttemptID: uuid.NewString(), OrderID: uuid.NewString(), Items: []contract.Item{{ProductID: p.ID, Quantity: 2}}}
		first := s.call(http.MethodPost, s.ProductURL+"/reservations", s.ServiceToken, req)
		second := s.call(http.MethodPost, s.ProductURL+"/reservations", s.ServiceToken, req)
		if first.status != http.StatusCreated || second.status != http.StatusOK {
			t.Fatalf("statuses = %d, %d; want 201, 200", first.status, second.status)
		}
		if string(first.body) != string(second.body) {
			t.Fatalf("replay body differs:\n%s\n%s", first.body, second.body)
		}
		if n := s.count(s.products, `SELECT COUNT(*) FROM stock_movements WHERE attempt_id = ?`, req.AttemptID); n != 1 {
			t.Fatalf("%d ledger rows for the attempt, want 1", n)
		}
	})

	t.Run("same key twice", func(t *testing.T) {
		key := uuid.NewString()
		first := s.placeOrder("idem-customer", key, contract.Item{ProductID: p.ID, Quantity: 1})
		second := s.placeOrder("idem-customer", key, contract.Item{ProductID: p.ID, Quantity: 1})
		if first.status != http.StatusCreated || second.status != http.StatusOK {
			t.Fatalf("statuses = %d, %d; want 201, 200", first.status, second.status)
		}
		var a, b order
		first.decode(t, &a)
		second.decode(t, &b)
		if a.OrderID != b.OrderID || b.Status != "CONFIRMED" {
			t.Fatalf("orders %s and %s (%s), want the same CONFIRMED order", a.OrderID, b.OrderID, b.Status)
		}
		other := s.placeOrder("idem-customer", key, contract.Item{ProductID: p.ID, Quantity: 2})
		if other.status != http.StatusUnprocessableEntity || !other.isProblem() || !strings.Contains(string(other.body), "idempotency_key_reused") {
			t.Fatalf("same key, other body: %d %s; want 422 idempotency_key_reused", other.status, other.body)
		}
		// The key belongs to the customer: another customer's same key is a new order.
		mine := s.placeOrder("idem-other", key, contract.Item{ProductID: p.ID, Quantity: 1})
		var c order
		mine.decode(t, &c)
		if mine.status != http.StatusCreated || c.OrderID == a.OrderID {
			t.Fatalf("another customer with the same key: %d %s", mine.status, mine.body)
		}
	})
	if n := s.count(s.products, `SELECT stock FROM products WHERE id = ?`, p.ID); n != 10-2-1-1 {
		t.Errorf("stock = %d, want %d", n, 10-2-1-1)
	}
}

// TestFencing: an attempt resolved before its reservation arrives is fenced;
// the late reservation is refused and changes nothing.
func TestFencing(t *testing.T) {
	t.Parallel()
	s := start(t, nil)
	p := s.seed(contract.NewProduct{SKU: "FENCE-1", Name: "Lamp", PriceCents: 4500, Stock: 3})[0]
	req := contract.ReserveRequest{AttemptID: uuid.NewString(), OrderID: uuid.NewString(), Items: []contract.Item{{ProductID: p.ID, Quantity: 1}}}

	r := s.call(http.MethodPost, s.ProductURL+"/reservations/"+req.AttemptID+"/resolve", s.ServiceToken, contract.ResolveRequest{OrderID: req.OrderID})
	var res contract.Reservation
	r.decode(t, &res)
	if r.status != http.StatusOK || res.Status != contract.StatusAborted {
		t.Fatalf("resolve: %d %s, want 200 ABORTED", r.status, r.body)
	}
	r = s.call(http.MethodPost, s.ProductURL+"/reservations", s.ServiceToken, req)
	r.decode(t, &res)
	if r.status != http.StatusConflict || res.Status != contract.StatusAborted {
		t.Fatalf("late reserve: %d %s, want 409 ABORTED", r.status, r.body)
	}
	if n := s.count(s.products, `SELECT stock FROM products WHERE id = ?`, p.ID); n != 3 {
		t.Fatalf("stock = %d, want 3", n)
	}
	if n := s.count(s.products, `SELECT COUNT(*) FROM stock_movements WHERE attempt_id = ?`, req.AttemptID); n != 0 {
		t.Fatalf("%d ledger rows for a fenced attempt", n)
	}
}

// TestBadInputWritesNothing: every malformed or unauthorised order is refused
// with a problem body, and neither database changes.
func TestBadInputWritesNothing(t *testing.T) {
	t.Parallel()
	s := start(t, nil)
	p := s.seed(contract.NewProduct{SKU: "BAD-1", Name: "Chair", PriceCents: 100, Stock: 5})[0]
	token := s.CustomerToken("bad-input", time.Hour)
	item := fmt.Sprintf(`{"productId":%d,"quantity":1}`, p.ID)
	lines := make([]string, contract.MaxLines+1)
	for i := range lines {
		lines[i] = fmt.Sprintf(`{"productId":%d,"quantity":1}`, i+1)
	}
	tests := []struct {
		name, token, body string
		want              int
	}{
		{"oversized body", token, `{"items":[` + item + `],"note":"` + strings.Repeat("x", contract.MaxBodyBytes) + `"}`, http.StatusRequestEntityTooLarge},
		{"unknown field", token, `{"items":[` + item + `],"customerId":"someone-else"}`, http.StatusBadRequest},
		{"price in a line", token, fmt.Sprintf(`{"items":[{"productId":%d,"quantity":1,"unitPriceCents":1}]}`, p.ID), http.StatusBadRequest},
		{"quantity 0", token, fmt.Sprintf(`{"items":[{"productId":%d,"quantity":0}]}`, p.ID), http.StatusBadRequest},
		{"negative quantity", token, fmt.Sprintf(`{"items":[{"productId":%d,"quantity":-2}]}`, p.ID), http.StatusBadRequest},
		{"101 lines", token, `{"items":[` + strings.Join(lines, ",") + `]}`, http.StatusBadRequest},
		{"missing token", "", `{"items":[` + item + `]}`, http.StatusUnauthorized},
		{"wrong token", "not-a-jwt", `{"items":[` + item + `]}`, http.StatusUnauthorized},
		{"token signed with another key", signedElsewhere(), `{"items":[` + item + `]}`, http.StatusUnauthorized},
		{"expired token", s.CustomerToken("bad-input", -time.Minute), `{"items":[` + item + `]}`, http.StatusUnauthorized},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := s.call(http.MethodPost, s.OrderURL+"/orders", tt.token, tt.body, "Idempotency-Key", uuid.NewString())
			if r.status != tt.want || !r.isProblem() {
				t.Fatalf("status = %d (%s), want %d with problem+json", r.status, r.header.Get("Content-Type"), tt.want)
			}
		})
	}
	for _, q := range []string{`SELECT COUNT(*) FROM orders`, `SELECT COUNT(*) FROM order_attempts`, `SELECT COUNT(*) FROM idempotency_keys`} {
		if n := s.count(s.orders, q); n != 0 {
			t.Errorf("%s = %d, want 0", q, n)
		}
	}
	if n := s.count(s.products, `SELECT COUNT(*) FROM stock_attempts`); n != 0 {
		t.Errorf("%d reservation attempts, want 0", n)
	}
}
