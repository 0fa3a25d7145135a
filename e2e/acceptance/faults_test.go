package acceptance_test

import (
	"context"
	"database/sql"
	"fmt"
	"net"
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-sql-driver/mysql"
	"github.com/google/uuid"

	"github.com/stockfence/stockfence/e2e/faults"
	"github.com/stockfence/stockfence/e2e/stack"
	"github.com/stockfence/stockfence/shared/contract"
	"github.com/stockfence/stockfence/shared/mysqldb/mysqltest"
)

// Timings of the fault tests: short enough to keep the suite fast, with the
// sync budget several product timeouts long so a resolve fits in it.
var faultEnv = map[string]string{
	"PRODUCT_TIMEOUT":   "300ms",
	"ORDER_SYNC_BUDGET": "2s",
	"RECOVERY_INTERVAL": "200ms",
	"STUCK_AFTER":       "5s",
}

// settleBound is how long every order may take to settle once the faults
// are gone (worker backoff while the fault lasted included).
const settleBound = 60 * time.Second

// faultySystem is a system whose order service reaches the product service
// through a 502-injecting reverse proxy and a TCP fault proxy, and its
// database through another TCP fault proxy:
//
//	orderservice -> badGateway -> productLink -> productservice
//	orderservice -> ordersDB -> MariaDB
type faultySystem struct {
	*system
	badGateway  *faults.BadGateway
	productLink *faults.Proxy
	ordersDB    *faults.Proxy
}

// startFaulty starts a faulty system; env is laid over faultEnv.
func startFaulty(t *testing.T, env map[string]string) *faultySystem {
	t.Helper()
	productsDSN, ordersDSN := mysqltest.New(t, "e2e_products"), mysqltest.New(t, "e2e_orders")
	productPort := freePort(t)
	productLink, err := faults.NewProxy("product-link", "127.0.0.1:"+strconv.Itoa(productPort))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { productLink.Close() })
	badGateway, err := faults.NewBadGateway(productLink.URL())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { badGateway.Close() })
	cfg, err := mysql.ParseDSN(ordersDSN)
	if err != nil {
		t.Fatal(err)
	}
	ordersDB, err := faults.NewProxy("orders-db", cfg.Addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ordersDB.Close() })
	cfg.Addr = ordersDB.Addr()

	orderEnv := map[string]string{"PRODUCT_URL": badGateway.URL()}
	for _, layer := range []map[string]string{faultEnv, env} {
		for k, v := range layer {
			orderEnv[k] = v
		}
	}
	s := startWith(t, stack.Options{
		ProductsDSN: productsDSN,
		OrdersDSN:   cfg.FormatDSN(),
		ProductPort: productPort,
		OrderEnv:    orderEnv,
	}, productsDSN, ordersDSN)
	return &faultySystem{system: s, badGateway: badGateway, productLink: productLink, ordersDB: ordersDB}
}

func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// waitFor polls cond every 20 ms until it holds or d passes.
func (s *system) waitFor(what string, d time.Duration, cond func() bool) time.Duration {
	s.t.Helper()
	start := time.Now()
	for !cond() {
		if time.Since(start) > d {
			s.t.Fatalf("%s: not within %v", what, d)
		}
		time.Sleep(20 * time.Millisecond)
	}
	return time.Since(start)
}

// waitSettled waits until no order is unsettled and returns how long it
// took.
func (s *system) waitSettled(d time.Duration) time.Duration {
	s.t.Helper()
	return s.waitFor("every order settled", d, func() bool {
		return s.count(s.orders, `SELECT COUNT(*) FROM orders WHERE status NOT IN ('CONFIRMED', 'FAILED', 'CANCELLED')`) == 0
	})
}

func (s *system) appliedOnProductSide() int64 {
	return s.count(s.products, `SELECT COUNT(*) FROM stock_attempts WHERE status = 'APPLIED'`)
}

// attemptStatuses returns the order's attempt statuses in order, as the
// orders database and the product side's log have them.
func (s *system) attemptStatuses(orderID string) (orders, products []string) {
	s.t.Helper()
	rows, err := s.orders.Query(`SELECT attempt_id, status FROM order_attempts WHERE order_id = ? ORDER BY seq`, orderID)
	if err != nil {
		s.t.Fatal(err)
	}
	defer rows.Close()
	for rows.Next() {
		var id, st string
		if err := rows.Scan(&id, &st); err != nil {
			s.t.Fatal(err)
		}
		orders = append(orders, st)
		var ps sql.NullString
		if err := s.products.QueryRow(`SELECT status FROM stock_attempts WHERE attempt_id = ?`, id).Scan(&ps); err != nil && err != sql.ErrNoRows {
			s.t.Fatal(err)
		}
		products = append(products, ps.String)
	}
	return orders, products
}

// orderOf returns the id of the order in a POST /orders answer.
func orderOf(t *testing.T, r response) string {
	t.Helper()
	var o order
	r.decode(t, &o)
	if o.OrderID == "" {
		t.Fatalf("answer %d has no order: %s", r.status, r.body)
	}
	return o.OrderID
}

// TestLostAnswerAfterCommit: the product service commits but its answer
// comes back later than PRODUCT_TIMEOUT. The order is confirmed by resolving
// the attempt, which is recorded APPLIED; the stock is taken once.
func TestLostAnswerAfterCommit(t *testing.T) {
	t.Parallel()
	s := startFaulty(t, nil)
	p := s.seed(contract.NewProduct{SKU: "SLOW-1", Name: "Kettle", PriceCents: 3000, Stock: 5})[0]
	if err := s.productLink.Latency(faults.Downstream, 3*time.Second, 0); err != nil {
		t.Fatal(err)
	}
	answer := make(chan response, 1)
	go func() { answer <- s.placeOrder("slow", uuid.NewString(), contract.Item{ProductID: p.ID, Quantity: 2}) }()
	s.waitFor("the reservation committed", 10*time.Second, func() bool { return s.appliedOnProductSide() == 1 })
	// The reserve's answer is now lost (it times out); clear the link so the
	// resolve that follows gets through.
	time.Sleep(400 * time.Millisecond)
	if err := s.productLink.Clear(); err != nil {
		t.Fatal(err)
	}
	r := <-answer
	if r.status != http.StatusCreated && r.status != http.StatusAccepted {
		t.Fatalf("answer = %d %s, want 201 or 202", r.status, r.body)
	}
	id := orderOf(t, r)
	s.waitSettled(settleBound)
	orders, products := s.attemptStatuses(id)
	if fmt.Sprint(orders) != "[APPLIED]" || fmt.Sprint(products) != "[APPLIED]" {
		t.Fatalf("attempts = %v (product side %v), want one APPLIED", orders, products)
	}
	if st := s.count(s.orders, `SELECT COUNT(*) FROM orders WHERE id = ? AND status = 'CONFIRMED'`, id); st != 1 {
		t.Fatal("order not CONFIRMED")
	}
	if n := s.count(s.products, `SELECT stock FROM products WHERE id = ?`, p.ID); n != 3 {
		t.Fatalf("stock = %d, want 3 (taken once)", n)
	}
	s.checkConservation()
}

// TestLostRequest: the reservation never reaches the product service (held
// or reset on the way). Resolving fences the attempt ABORTED, a second
// attempt is applied, and never are two attempts of one order APPLIED.
func TestLostRequest(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		name   string
		inject func(*faults.Proxy) error
	}{
		{"held", func(p *faults.Proxy) error { return p.Timeout(faults.Upstream, 0) }},
		{"reset", func(p *faults.Proxy) error { return p.ResetPeer(faults.Upstream, 0) }},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			s := startFaulty(t, nil)
			p := s.seed(contract.NewProduct{SKU: "LOST-1", Name: "Scarf", PriceCents: 1500, Stock: 5})[0]
			if err := tt.inject(s.productLink); err != nil {
				t.Fatal(err)
			}
			r := s.placeOrder("lost", uuid.NewString(), contract.Item{ProductID: p.ID, Quantity: 1})
			if r.status != http.StatusAccepted {
				t.Fatalf("answer while the link is broken = %d %s, want 202 PENDING", r.status, r.body)
			}
			id := orderOf(t, r)
			if n := s.count(s.products, `SELECT COUNT(*) FROM stock_attempts`); n != 0 {
				t.Fatalf("%d attempts reached the product side through a broken link", n)
			}
			if err := s.productLink.Clear(); err != nil {
				t.Fatal(err)
			}
			took := s.waitSettled(settleBound)
			t.Logf("settled %v after the link was repaired", took)
			orders, products := s.attemptStatuses(id)
			if len(orders) < 2 || orders[0] != "ABORTED" || products[0] != "ABORTED" || orders[len(orders)-1] != "APPLIED" {
				t.Fatalf("attempts = %v (product side %v), want the first fenced ABORTED and the last APPLIED", orders, products)
			}
			if n := s.count(s.products, `SELECT stock FROM products WHERE id = ?`, p.ID); n != 4 {
				t.Fatalf("stock = %d, want 4", n)
			}
			s.checkConservation()
		})
	}
}

// TestBadGatewayAfterCommit: a proxy forwards the reservation, the product
// service commits, and the proxy answers 502. Resolve finds APPLIED.
func TestBadGatewayAfterCommit(t *testing.T) {
	t.Parallel()
	s := startFaulty(t, nil)
	p := s.seed(contract.NewProduct{SKU: "GW-1", Name: "Tent", PriceCents: 19900, Stock: 2})[0]
	s.badGateway.Fail(faults.PostPath("/reservations", "/reservations/batch"), 1)
	r := s.placeOrder("gw", uuid.NewString(), contract.Item{ProductID: p.ID, Quantity: 1})
	if r.status != http.StatusCreated {
		t.Fatalf("answer = %d %s, want 201 (resolved within the budget)", r.status, r.body)
	}
	if _, failed := s.badGateway.Stats(); failed != 1 {
		t.Fatalf("502s injected = %d, want 1", failed)
	}
	orders, products := s.attemptStatuses(orderOf(t, r))
	if fmt.Sprint(orders) != "[APPLIED]" || fmt.Sprint(products) != "[APPLIED]" {
		t.Fatalf("attempts = %v (product side %v), want one APPLIED", orders, products)
	}
	if n := s.count(s.products, `SELECT stock FROM products WHERE id = ?`, p.ID); n != 1 {
		t.Fatalf("stock = %d, want 1", n)
	}
	s.checkConservation()
}

// TestProductServiceDown: with the product service dead the breaker opens
// and orders are refused at once with 503; orders caught in flight stay
// PENDING and the recovery worker settles them once it is back.
func TestProductServiceDown(t *testing.T) {
	t.Parallel()
	s := startFaulty(t, nil)
	p := s.seed(contract.NewProduct{SKU: "DOWN-1", Name: "Lantern", PriceCents: 2500, Stock: 50})[0]
	if err := s.Product.Kill(); err != nil {
		t.Fatal(err)
	}
	var pending []string
	for i := 0; ; i++ {
		if i == 20 {
			t.Fatal("the breaker never opened")
		}
		r := s.placeOrder("down", uuid.NewString(), contract.Item{ProductID: p.ID, Quantity: 1})
		if r.status == http.StatusServiceUnavailable {
			break
		}
		if r.status != http.StatusAccepted {
			t.Fatalf("order %d while down = %d %s, want 202", i, r.status, r.body)
		}
		pending = append(pending, orderOf(t, r))
	}
	var worst time.Duration
	for range 20 {
		start := time.Now()
		r := s.placeOrder("down", uuid.NewString(), contract.Item{ProductID: p.ID, Quantity: 1})
		took := time.Since(start)
		worst = max(worst, took)
		if r.status != http.StatusServiceUnavailable || !r.isProblem() || r.header.Get("Retry-After") == "" {
			t.Fatalf("order with the breaker open = %d %s, want 503 with Retry-After", r.status, r.body)
		}
	}
	t.Logf("breaker open: 20 orders refused, slowest in %v; %d orders left pending", worst, len(pending))
	if worst > 50*time.Millisecond {
		t.Errorf("slowest 503 took %v, want under 50 ms", worst)
	}
	if n := s.count(s.orders, `SELECT COUNT(*) FROM orders`); n != int64(len(pending)) {
		t.Fatalf("%d orders recorded, want only the %d caught in flight", n, len(pending))
	}

	back := time.Now()
	if err := s.Product.Restart(t.Context()); err != nil {
		t.Fatal(err)
	}
	s.waitSettled(settleBound)
	t.Logf("orders caught in flight settled %v after the product service came back", time.Since(back))
	if n := s.count(s.orders, `SELECT COUNT(*) FROM orders WHERE status = 'CONFIRMED'`); n != int64(len(pending)) {
		t.Fatalf("CONFIRMED = %d, want %d", n, len(pending))
	}
	s.checkConservation()
}

// traffic is a crowd of shoppers placing orders until stopped. Each order
// is retried with its Idempotency-Key until it gets a definite answer, as a
// storefront does when the order service goes away under it.
type traffic struct {
	s       *system
	stop    chan struct{}
	stopped sync.Once
	wg      sync.WaitGroup
}

func startTraffic(s *system, shoppers int, products []contract.Product) *traffic {
	tr := &traffic{s: s, stop: make(chan struct{})}
	for i := range shoppers {
		tr.wg.Add(1)
		go func() {
			defer tr.wg.Done()
			customer := fmt.Sprintf("shopper-%d", i)
			for n := 0; ; n++ {
				select {
				case <-tr.stop:
					return
				default:
				}
				a, b := products[(i+n)%len(products)], products[(i+n+1)%len(products)]
				items := []contract.Item{{ProductID: a.ID, Quantity: 1}, {ProductID: b.ID, Quantity: 1}}
				tr.place(customer, uuid.NewString(), items)
			}
		}()
	}
	return tr
}

// place retries one order until the order service gives it a status (any
// answer but a transport error or a 5xx); a 202 is a status.
func (tr *traffic) place(customer, key string, items []contract.Item) {
	for {
		r := tr.s.callQuiet(customer, key, items)
		if r.status != 0 && r.status < 500 {
			return
		}
		select {
		case <-tr.stop:
			return
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// halt stops the shoppers and waits for them; it may be called again.
func (tr *traffic) halt() {
	tr.stopped.Do(func() { close(tr.stop) })
	tr.wg.Wait()
}

// callQuiet posts an order and reports a transport error as status 0
// instead of failing the test: the order service may be dead.
func (s *system) callQuiet(customer, key string, items []contract.Item) response {
	body := fmt.Sprintf(`{"items":[{"productId":%d,"quantity":%d},{"productId":%d,"quantity":%d}]}`,
		items[0].ProductID, items[0].Quantity, items[1].ProductID, items[1].Quantity)
	ctx, cancel := context.WithTimeout(s.t.Context(), 10*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, s.OrderURL+"/orders", strings.NewReader(body))
	if err != nil {
		return response{}
	}
	req.Header.Set("Authorization", "Bearer "+s.CustomerToken(customer, time.Hour))
	req.Header.Set("Idempotency-Key", key)
	resp, err := s.client.Do(req)
	if err != nil {
		return response{}
	}
	resp.Body.Close()
	return response{status: resp.StatusCode, header: resp.Header}
}

// TestKillOrderServiceAtEachStep kills the order service with SIGKILL while
// shoppers place orders, once at each step of the flow (held there by a
// fault), and restarts it. Every order settles, no stock leaks, nothing is
// applied twice.
func TestKillOrderServiceAtEachStep(t *testing.T) {
	t.Parallel()
	s := startFaulty(t, nil)
	// Stock enough never to run out: each step waits for new APPLIED
	// reservations, which a sold-out catalog would never give.
	catalog := s.seed(
		contract.NewProduct{SKU: "KILL-A", Name: "Mug", PriceCents: 900, Stock: 100_000},
		contract.NewProduct{SKU: "KILL-B", Name: "Cap", PriceCents: 1900, Stock: 100_000},
		contract.NewProduct{SKU: "KILL-C", Name: "Pen", PriceCents: 300, Stock: 100_000},
	)
	tr := startTraffic(s.system, 6, catalog)
	defer tr.halt()

	steps := []struct {
		name string
		// hold puts the flow's in-flight orders at the step and waits
		// until at least one more is there. (Few get there: the breaker
		// opens after a handful of lost answers.)
		hold func()
	}{
		{"after recording, before the reserve arrives", func() {
			must(t, s.productLink.Timeout(faults.Upstream, 0))
			before := s.count(s.orders, `SELECT COUNT(*) FROM order_attempts WHERE status = 'SENT'`)
			s.waitFor("attempts recorded and held", 10*time.Second, func() bool {
				return s.count(s.orders, `SELECT COUNT(*) FROM order_attempts WHERE status = 'SENT'`) > before
			})
		}},
		{"after the product commit, before the answer", func() {
			must(t, s.productLink.Latency(faults.Downstream, 10*time.Second, 0))
			before := s.appliedOnProductSide()
			s.waitFor("reservations committed, answers held", 10*time.Second, func() bool { return s.appliedOnProductSide() > before })
		}},
		{"while resolving a lost answer", func() {
			must(t, s.productLink.Latency(faults.Downstream, 10*time.Second, 0))
			before := s.appliedOnProductSide()
			s.waitFor("reservations committed, answers held", 10*time.Second, func() bool { return s.appliedOnProductSide() > before })
			time.Sleep(700 * time.Millisecond) // past PRODUCT_TIMEOUT: resolving
		}},
		{"after the answer, while confirming", func() {
			must(t, s.productLink.Latency(faults.Downstream, time.Second, 0))
			before := s.appliedOnProductSide()
			s.waitFor("reservations committed", 10*time.Second, func() bool { return s.appliedOnProductSide() > before })
			must(t, s.ordersDB.Latency(faults.Upstream, 10*time.Second, 0))
			time.Sleep(1200 * time.Millisecond) // the answers arrive; confirming stalls
		}},
	}
	for _, step := range steps {
		step.hold()
		if err := s.Order.Kill(); err != nil {
			t.Fatalf("%s: kill: %v", step.name, err)
		}
		must(t, s.productLink.Clear())
		must(t, s.ordersDB.Clear())
		if err := s.Order.Restart(t.Context()); err != nil {
			t.Fatalf("%s: restart: %v", step.name, err)
		}
		t.Logf("killed and restarted %s", step.name)
		time.Sleep(500 * time.Millisecond) // traffic flows again
	}
	tr.halt()
	took := s.waitSettled(settleBound)
	orders := s.count(s.orders, `SELECT COUNT(*) FROM orders`)
	t.Logf("%d orders placed around 4 kills; all settled %v after the traffic stopped", orders, took)
	if orders < 20 {
		t.Errorf("only %d orders were placed: the test exercised little", orders)
	}
	s.checkConservation()
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// TestTwoOrderInstances runs two order services with their recovery workers
// on one orders database: orders that a crashed instance left right after
// recording them (attempt SENT, never sent) are each settled exactly once,
// while both instances take live traffic.
func TestTwoOrderInstances(t *testing.T) {
	t.Parallel()
	// The live orders must not time out while 60 orphans are being settled
	// on a busy machine: this test is about sharing the work, not faults.
	s := startFaulty(t, generous)
	catalog := s.seed(
		contract.NewProduct{SKU: "TWO-A", Name: "Bowl", PriceCents: 1200, Stock: 1000},
		contract.NewProduct{SKU: "TWO-B", Name: "Spoon", PriceCents: 200, Stock: 1000},
	)
	// Orders a crashed instance left behind: recorded, due, never sent.
	const orphans = 60
	for i := range orphans {
		id, attempt := uuid.Must(uuid.NewV7()).String(), uuid.Must(uuid.NewV7()).String()
		tx, err := s.orders.Begin()
		must(t, err)
		_, err = tx.Exec(`INSERT INTO orders (id, customer_id, status, next_check_at, created_at, updated_at)
			VALUES (?, ?, 'PENDING', NOW(6) - INTERVAL 1 SECOND, NOW(6), NOW(6))`, id, fmt.Sprintf("orphan-%d", i))
		must(t, err)
		_, err = tx.Exec(`INSERT INTO order_lines (order_id, line_no, product_id, quantity) VALUES (?, 1, ?, 1), (?, 2, ?, 2)`,
			id, catalog[0].ID, id, catalog[1].ID)
		must(t, err)
		_, err = tx.Exec(`INSERT INTO order_attempts (attempt_id, order_id, seq, status, created_at) VALUES (?, ?, 1, 'SENT', NOW(6))`, attempt, id)
		must(t, err)
		must(t, tx.Commit())
	}
	second, err := s.StartOrderInstance(t.Context(), "orderservice-2", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		if err := second.Stop(); err != nil {
			t.Errorf("stop second instance: %v", err)
		}
	}()

	var wg sync.WaitGroup
	for i := range 40 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			base := s.OrderURL
			if i%2 == 1 {
				base = second.URL
			}
			body := fmt.Sprintf(`{"items":[{"productId":%d,"quantity":1}]}`, catalog[i%2].ID)
			r := s.call(http.MethodPost, base+"/orders", s.CustomerToken(fmt.Sprintf("live-%d", i), time.Hour), body, "Idempotency-Key", uuid.NewString())
			if r.status != http.StatusCreated {
				t.Errorf("live order on %s = %d %s", base, r.status, r.body)
			}
		}()
	}
	wg.Wait()
	took := s.waitSettled(settleBound)
	t.Logf("%d orphaned orders settled by two workers in %v", orphans, took)

	if n := s.count(s.orders, `SELECT COUNT(*) FROM orders WHERE status = 'CONFIRMED'`); n != orphans+40 {
		t.Errorf("CONFIRMED = %d, want %d", n, orphans+40)
	}
	// Each orphan's first attempt was never sent: it must have been fenced,
	// on both sides, and exactly one later attempt applied.
	rows, err := s.orders.Query(`SELECT o.id, a.attempt_id FROM orders o
		JOIN order_attempts a ON a.order_id = o.id AND a.seq = 1 WHERE o.customer_id LIKE 'orphan-%'`)
	must(t, err)
	defer rows.Close()
	for rows.Next() {
		var id, first string
		must(t, rows.Scan(&id, &first))
		orders, products := s.attemptStatuses(id)
		applied := 0
		for _, st := range products {
			if st == "APPLIED" {
				applied++
			}
		}
		if orders[0] != "ABORTED" || products[0] != "ABORTED" || applied != 1 {
			t.Errorf("orphan %s: attempts %v (product side %v), want the first fenced and one APPLIED", id, orders, products)
		}
	}
	for _, p := range []*stack.Process{s.Order, second} {
		log, err := os.ReadFile(p.LogPath)
		must(t, err)
		settled := strings.Count(string(log), `"msg":"order settled"`)
		t.Logf("%s settled %d orphans", p.LogPath, settled)
		if settled == 0 {
			t.Errorf("instance logging to %s settled no orphan: the workers did not share the work", p.LogPath)
		}
	}
	s.checkConservation()
}
