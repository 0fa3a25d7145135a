package acceptance_test

import (
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/stockfence/stockfence/e2e/faults"
	"github.com/stockfence/stockfence/shared/contract"
	"github.com/stockfence/stockfence/shared/kafkaclient"
)

// confirmedOrders places n one-unit orders of product p (each by its own
// customer) and returns their ids and customers; all must be confirmed.
func (s *system) confirmedOrders(p contract.Product, n int) (ids, customers []string) {
	s.t.Helper()
	for i := range n {
		customer := fmt.Sprintf("c-%d-%s", i, uuid.NewString()[:8])
		r := s.placeOrder(customer, uuid.NewString(), contract.Item{ProductID: p.ID, Quantity: 1})
		if r.status != http.StatusCreated {
			s.t.Fatalf("order %d = %d %s, want 201", i, r.status, r.body)
		}
		ids = append(ids, orderOf(s.t, r))
		customers = append(customers, customer)
	}
	return ids, customers
}

func (s *system) cancel(customer, orderID string) response {
	return s.call(http.MethodPost, s.OrderURL+"/orders/"+orderID+"/cancel", s.CustomerToken(customer, time.Hour), nil)
}

func (s *system) status(orderID string) string {
	s.t.Helper()
	var st string
	if err := s.orders.QueryRow(`SELECT status FROM orders WHERE id = ?`, orderID).Scan(&st); err != nil {
		s.t.Fatal(err)
	}
	return st
}

func (s *system) stockOf(productID int64) int64 {
	return s.count(s.products, `SELECT stock FROM products WHERE id = ?`, productID)
}

// TestCancelConfirmedOrder: a confirmed order is cancelled: CANCELLING at
// once, CANCELLED when the compensation's result comes back; the stock comes
// back exactly once and the ledger shows it.
func TestCancelConfirmedOrder(t *testing.T) {
	t.Parallel()
	s := start(t, nil)
	p := s.seed(contract.NewProduct{SKU: "CXL-1", Name: "Clock", PriceCents: 4200, Stock: 3})[0]
	ids, customers := s.confirmedOrders(p, 1)

	r := s.cancel(customers[0], ids[0])
	var o order
	r.decode(t, &o)
	if r.status != http.StatusAccepted || o.Status != "CANCELLING" {
		t.Fatalf("cancel = %d %s, want 202 CANCELLING", r.status, r.body)
	}
	took := s.waitFor("the order cancelled", 30*time.Second, func() bool { return s.status(ids[0]) == "CANCELLED" })
	t.Logf("CANCELLING -> CANCELLED in %v", took)
	if again := s.cancel(customers[0], ids[0]); again.status != http.StatusOK {
		t.Fatalf("repeated cancel = %d, want 200 once CANCELLED", again.status)
	}
	if n := s.stockOf(p.ID); n != 3 {
		t.Fatalf("stock = %d, want 3 (given back once)", n)
	}
	if n := s.count(s.products, `SELECT COUNT(*) FROM stock_movements WHERE product_id = ? AND kind = 'compensate' AND delta = 1`, p.ID); n != 1 {
		t.Fatalf("compensate movements = %d, want 1", n)
	}
	orders, products := s.attemptStatuses(ids[0])
	if fmt.Sprint(orders) != "[COMPENSATED]" || fmt.Sprint(products) != "[COMPENSATED]" {
		t.Fatalf("attempts = %v (product side %v), want COMPENSATED", orders, products)
	}
	s.checkConservation()
}

// TestDuplicateCompensationsAndAProductServiceKill: every compensation is
// delivered twice (republished straight to the topic), and the product
// service is killed while it works through them: each order's stock comes
// back exactly once.
func TestDuplicateCompensationsAndAProductServiceKill(t *testing.T) {
	t.Parallel()
	s := start(t, nil)
	p := s.seed(contract.NewProduct{SKU: "DUP-1", Name: "Vase", PriceCents: 3100, Stock: 40})[0]
	ids, customers := s.confirmedOrders(p, 20)
	for i, id := range ids {
		if r := s.cancel(customers[i], id); r.status != http.StatusAccepted {
			t.Fatalf("cancel = %d", r.status)
		}
	}
	// Deliver every compensation a second time, as a relay that lost its
	// acknowledgement would.
	pub, err := kafkaclient.NewProducer(s.KafkaBrokers, "test-duplicates", 30*time.Second, slog.New(slog.NewTextHandler(io.Discard, nil)))
	must(t, err)
	defer pub.Close(5 * time.Second)
	rows, err := s.orders.Query(`SELECT msg_key, payload FROM outbox`)
	must(t, err)
	var dups []kafkaclient.Message
	for rows.Next() {
		var key, payload string
		must(t, rows.Scan(&key, &payload))
		dups = append(dups, kafkaclient.Message{Topic: contract.TopicCompensations, Key: []byte(key), Value: []byte(payload)})
	}
	rows.Close()
	for _, err := range pub.Publish(t.Context(), dups...) {
		must(t, err)
	}
	s.waitFor("a first compensation applied", 30*time.Second, func() bool {
		return s.count(s.products, `SELECT COUNT(*) FROM stock_attempts WHERE status = 'COMPENSATED'`) > 0
	})
	must(t, s.Product.Kill())
	must(t, s.Product.Restart(t.Context()))
	s.waitFor("every order cancelled", 60*time.Second, func() bool {
		return s.count(s.orders, `SELECT COUNT(*) FROM orders WHERE status = 'CANCELLED'`) == int64(len(ids))
	})
	if n := s.stockOf(p.ID); n != 40 {
		t.Fatalf("stock = %d, want 40 (each unit back exactly once)", n)
	}
	if n := s.count(s.products, `SELECT COUNT(*) FROM stock_movements WHERE kind = 'compensate'`); n != int64(len(ids)) {
		t.Fatalf("compensate movements = %d, want %d", n, len(ids))
	}
	s.checkConservation()
}

// TestCompensationBeforeReservation: a pending order is cancelled while its
// reservation is still on the way; the compensation arrives first and fences
// the attempt, and the late reservation is refused ABORTED. Nothing is taken.
func TestCompensationBeforeReservation(t *testing.T) {
	t.Parallel()
	s := startFaulty(t, nil)
	p := s.seed(contract.NewProduct{SKU: "EARLY-1", Name: "Rug", PriceCents: 8800, Stock: 2})[0]
	must(t, s.productLink.Latency(faults.Upstream, 4*time.Second, 0))

	customer := "early"
	placed := make(chan response, 1)
	go func() {
		placed <- s.placeOrder(customer, uuid.NewString(), contract.Item{ProductID: p.ID, Quantity: 1})
	}()
	var id string
	s.waitFor("the order recorded", 10*time.Second, func() bool {
		return s.orders.QueryRow(`SELECT id FROM orders WHERE customer_id = ?`, customer).Scan(&id) == nil
	})
	if r := s.cancel(customer, id); r.status != http.StatusAccepted {
		t.Fatalf("cancel of the pending order = %d %s, want 202", r.status, r.body)
	}
	s.waitFor("the order cancelled", 30*time.Second, func() bool { return s.status(id) == "CANCELLED" })
	<-placed
	// Let the delayed reservation arrive: it must find the fence.
	s.waitFor("the late reservation refused", 15*time.Second, func() bool {
		return s.count(s.products, `SELECT COUNT(*) FROM stock_attempts WHERE order_id = ? AND status = 'ABORTED'`, id) == 1
	})
	time.Sleep(5 * time.Second) // past the 4 s delay: the reservation has arrived
	if n := s.count(s.products, `SELECT COUNT(*) FROM stock_attempts WHERE order_id = ? AND status <> 'ABORTED'`, id); n != 0 {
		t.Fatalf("%d attempts of the cancelled order were applied", n)
	}
	if n := s.stockOf(p.ID); n != 2 {
		t.Fatalf("stock = %d, want 2", n)
	}
	s.checkConservation()
}

// TestKafkaDownWhileCancelling: with the broker gone for 30 s, cancellations
// are still accepted and wait in the outbox; once it is back everything is
// delivered and every order settles. Nothing is lost.
func TestKafkaDownWhileCancelling(t *testing.T) {
	t.Parallel()
	s := start(t, nil)
	p := s.seed(contract.NewProduct{SKU: "KDOWN-1", Name: "Bench", PriceCents: 12000, Stock: 10})[0]
	ids, customers := s.confirmedOrders(p, 6)
	must(t, s.Broker.Stop())
	down := time.Now()
	for i, id := range ids {
		if r := s.cancel(customers[i], id); r.status != http.StatusAccepted {
			t.Fatalf("cancel while Kafka is down = %d %s, want 202", r.status, r.body)
		}
	}
	time.Sleep(2 * time.Second)
	if n := s.count(s.orders, `SELECT COUNT(*) FROM outbox WHERE sent_at IS NULL`); n != int64(len(ids)) {
		t.Fatalf("unsent outbox rows = %d, want %d waiting for Kafka", n, len(ids))
	}
	if n := s.count(s.orders, `SELECT COUNT(*) FROM orders WHERE status = 'CANCELLING'`); n != int64(len(ids)) {
		t.Fatalf("CANCELLING orders = %d, want %d", n, len(ids))
	}
	time.Sleep(30*time.Second - time.Since(down))
	must(t, s.Broker.Start())
	took := s.waitFor("every cancellation settled", 90*time.Second, func() bool {
		return s.count(s.orders, `SELECT COUNT(*) FROM orders WHERE status = 'CANCELLED'`) == int64(len(ids))
	})
	t.Logf("Kafka down %v; all %d cancellations settled %v after it came back", 30*time.Second, len(ids), took)
	if n := s.count(s.orders, `SELECT COUNT(*) FROM outbox WHERE sent_at IS NULL`); n != 0 {
		t.Fatalf("%d outbox rows still unsent", n)
	}
	if n := s.stockOf(p.ID); n != 10 {
		t.Fatalf("stock = %d, want 10", n)
	}
	s.checkConservation()
}

// TestPoisonCompensationAndReplay: a compensation that cannot be applied (the
// ledger table is gone) goes to the dead-letter topic after its retries; the
// order stays CANCELLING, visible to ops. Once the cause is fixed, replaying
// the DLQ settles it.
func TestPoisonCompensationAndReplay(t *testing.T) {
	t.Parallel()
	s := start(t, nil)
	p := s.seed(contract.NewProduct{SKU: "POISON-1", Name: "Stool", PriceCents: 5000, Stock: 5})[0]
	ids, customers := s.confirmedOrders(p, 1)
	_, err := s.products.Exec(`RENAME TABLE stock_movements TO stock_movements_away`)
	must(t, err)
	if r := s.cancel(customers[0], ids[0]); r.status != http.StatusAccepted {
		t.Fatalf("cancel = %d", r.status)
	}
	dlq := func() int {
		r := s.call(http.MethodGet, s.ProductURL+"/admin/dlq", s.AdminToken, nil)
		var body struct {
			Count int `json:"count"`
		}
		r.decode(t, &body)
		return body.Count
	}
	s.waitFor("the compensation dead-lettered", 60*time.Second, func() bool { return dlq() == 1 })
	if st := s.status(ids[0]); st != "CANCELLING" {
		t.Fatalf("order = %s, want CANCELLING while its compensation is dead-lettered", st)
	}
	ops := s.call(http.MethodGet, s.OrderURL+"/ops/orders?status=unsettled", s.AdminToken, nil)
	var list opsOrders
	ops.decode(t, &list)
	if len(list.Orders) != 1 || list.Orders[0].OrderID != ids[0] {
		t.Fatalf("ops unsettled = %s, want the cancelling order", ops.body)
	}

	_, err = s.products.Exec(`RENAME TABLE stock_movements_away TO stock_movements`)
	must(t, err)
	r := s.call(http.MethodPost, s.ProductURL+"/admin/dlq/replay", s.AdminToken, nil)
	var replayed struct {
		Replayed int `json:"replayed"`
	}
	r.decode(t, &replayed)
	if r.status != http.StatusOK || replayed.Replayed != 1 {
		t.Fatalf("replay = %d %s, want 200 with 1 replayed", r.status, r.body)
	}
	s.waitFor("the order cancelled after the replay", 30*time.Second, func() bool { return s.status(ids[0]) == "CANCELLED" })
	if n := s.stockOf(p.ID); n != 5 {
		t.Fatalf("stock = %d, want 5", n)
	}
	if n := dlq(); n != 0 {
		t.Fatalf("DLQ count after replay = %d, want 0", n)
	}
	s.checkConservation()
}

type opsOrders struct {
	Orders []struct {
		OrderID string `json:"orderId"`
		Status  string `json:"status"`
	} `json:"orders"`
}
