// Package acceptance_test drives both real services (built binaries, started
// by e2e/stack on fresh databases) through their HTTP APIs and checks the
// outcome against the databases directly, independently of the services'
// code.
package acceptance_test

import (
	"bytes"
	"database/sql"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	_ "github.com/go-sql-driver/mysql"

	"github.com/stockfence/stockfence/e2e/stack"
	"github.com/stockfence/stockfence/shared/contract"
	"github.com/stockfence/stockfence/shared/mysqldb/mysqltest"
)

// binDir holds the binaries built once for the whole package.
var binDir string

func TestMain(m *testing.M) {
	binDir = stack.BuildForTests()
	os.Exit(m.Run())
}

// system is both services on their own fresh databases, plus direct
// connections to those databases for the checks.
type system struct {
	*stack.Stack
	t        *testing.T
	client   *http.Client
	products *sql.DB
	orders   *sql.DB
}

func start(t *testing.T, orderEnv map[string]string) *system {
	t.Helper()
	productsDSN, ordersDSN := mysqltest.New(t, "e2e_products"), mysqltest.New(t, "e2e_orders")
	return startWith(t, stack.Options{ProductsDSN: productsDSN, OrdersDSN: ordersDSN, OrderEnv: orderEnv}, productsDSN, ordersDSN)
}

// startWith starts a stack with opts (binaries, logs and pool sizes filled
// in) and connects the checks to the databases directly, by the DSNs given:
// the services may reach theirs through a fault proxy.
func startWith(t *testing.T, opts stack.Options, productsDSN, ordersDSN string) *system {
	t.Helper()
	opts.BinDir = binDir
	opts.LogDir = t.TempDir()
	// Small pools: several stacks run at once against one MariaDB.
	opts.Env = map[string]string{"PRODUCT_MYSQL_MAX_CONNS": "8", "ORDER_MYSQL_MAX_CONNS": "8"}
	s, err := stack.Start(t.Context(), opts)
	if err != nil {
		t.Fatalf("start stack: %v", err)
	}
	sys := &system{
		Stack: s,
		t:     t,
		client: &http.Client{
			Timeout:   time.Minute,
			Transport: &http.Transport{MaxIdleConnsPerHost: 1000, MaxIdleConns: 1000},
		},
		products: openDB(t, productsDSN),
		orders:   openDB(t, ordersDSN),
	}
	t.Cleanup(func() {
		if err := s.Stop(); err != nil {
			t.Errorf("stop stack: %v", err)
		}
		if t.Failed() {
			for _, p := range []*stack.Process{s.Product, s.Order} {
				t.Logf("%s warnings and errors:\n%s\n%s log ends with:\n%s", p.Name, warnings(p.LogPath, 20), p.Name, p.Tail(10))
			}
		}
	})
	return sys
}

func openDB(t *testing.T, dsn string) *sql.DB {
	t.Helper()
	db, err := sql.Open("mysql", dsn)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

// response is what a call returned.
type response struct {
	status int
	header http.Header
	body   []byte
}

func (r response) decode(t *testing.T, v any) {
	t.Helper()
	if err := json.Unmarshal(r.body, v); err != nil {
		t.Fatalf("decode %d %s: %v", r.status, r.body, err)
	}
}

func (r response) isProblem() bool {
	return r.header.Get("Content-Type") == "application/problem+json"
}

// call sends a request. body is JSON-encoded unless it is a string; headers
// are name/value pairs.
func (s *system) call(method, url, token string, body any, headers ...string) response {
	var rd io.Reader
	switch b := body.(type) {
	case nil:
	case string:
		rd = strings.NewReader(b)
	default:
		raw, err := json.Marshal(b)
		if err != nil {
			s.t.Error(err)
			return response{}
		}
		rd = bytes.NewReader(raw)
	}
	req, err := http.NewRequestWithContext(s.t.Context(), method, url, rd)
	if err != nil {
		s.t.Error(err)
		return response{}
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	for i := 0; i+1 < len(headers); i += 2 {
		req.Header.Set(headers[i], headers[i+1])
	}
	resp, err := s.client.Do(req)
	if err != nil {
		s.t.Errorf("%s %s: %v", method, url, err)
		return response{}
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		s.t.Errorf("%s %s: read body: %v", method, url, err)
	}
	return response{status: resp.StatusCode, header: resp.Header, body: raw}
}

// order is the order representation of the contract.
type order struct {
	OrderID    string              `json:"orderId"`
	CustomerID string              `json:"customerId"`
	Status     string              `json:"status"`
	Reason     *string             `json:"reason"`
	Shortages  []contract.Shortage `json:"shortages"`
	Items      []struct {
		ProductID      int64  `json:"productId"`
		Quantity       int    `json:"quantity"`
		UnitPriceCents *int64 `json:"unitPriceCents"`
	} `json:"items"`
	TotalCents *int64 `json:"totalCents"`
	Attempts   []struct {
		AttemptID string `json:"attemptId"`
		Status    string `json:"status"`
	} `json:"attempts"`
}

// placeOrder posts an order as customer with an optional idempotency key.
func (s *system) placeOrder(customer, key string, items ...contract.Item) response {
	var headers []string
	if key != "" {
		headers = []string{"Idempotency-Key", key}
	}
	return s.call(http.MethodPost, s.OrderURL+"/orders", s.CustomerToken(customer, time.Hour),
		map[string]any{"items": items}, headers...)
}

func (s *system) seed(products ...contract.NewProduct) []contract.Product {
	s.t.Helper()
	seeded, err := stack.Seed(s.t.Context(), s.ProductURL, s.AdminToken, products)
	if err != nil {
		s.t.Fatalf("seed: %v", err)
	}
	return seeded
}

func (s *system) count(db *sql.DB, q string, args ...any) int64 {
	s.t.Helper()
	var n sql.NullInt64
	if err := db.QueryRow(q, args...).Scan(&n); err != nil {
		s.t.Fatalf("%s: %v", q, err)
	}
	return n.Int64
}

// checkConservation asserts, from the databases, that for every product
// initial = stock + sold, where sold counts the units of CONFIRMED orders;
// that the ledger explains the stock; and that every CONFIRMED order has
// exactly one APPLIED attempt on the product side, and nothing else applied.
func (s *system) checkConservation() {
	s.t.Helper()
	if n := s.count(s.products, `SELECT COUNT(*) FROM products p
		WHERE p.stock <> (SELECT COALESCE(SUM(delta), 0) FROM stock_movements m WHERE m.product_id = p.id)`); n != 0 {
		s.t.Errorf("%d products whose stock differs from their ledger", n)
	}
	sold := map[int64]int64{}
	rows, err := s.orders.Query(`SELECT l.product_id, SUM(l.quantity) FROM order_lines l
		JOIN orders o ON o.id = l.order_id WHERE o.status = 'CONFIRMED' GROUP BY l.product_id`)
	if err != nil {
		s.t.Fatal(err)
	}
	for rows.Next() {
		var id, q int64
		if err := rows.Scan(&id, &q); err != nil {
			s.t.Fatal(err)
		}
		sold[id] = q
	}
	rows.Close()
	rows, err = s.products.Query(`SELECT p.id, p.stock, m.delta FROM products p
		JOIN stock_movements m ON m.product_id = p.id AND m.kind = 'initial'`)
	if err != nil {
		s.t.Fatal(err)
	}
	defer rows.Close()
	for rows.Next() {
		var id, stock, initial int64
		if err := rows.Scan(&id, &stock, &initial); err != nil {
			s.t.Fatal(err)
		}
		if initial != stock+sold[id] {
			s.t.Errorf("product %d: initial %d != stock %d + sold %d", id, initial, stock, sold[id])
		}
	}
	// Every attempt the product side applied belongs to a CONFIRMED order that
	// recorded it APPLIED, and every CONFIRMED order has such an attempt.
	applied := s.strings(s.products, `SELECT attempt_id FROM stock_attempts WHERE status = 'APPLIED'`)
	confirmed := s.strings(s.orders, `SELECT a.attempt_id FROM order_attempts a
		JOIN orders o ON o.id = a.order_id WHERE o.status = 'CONFIRMED' AND a.status = 'APPLIED'`)
	if fmt.Sprint(applied) != fmt.Sprint(confirmed) {
		s.t.Errorf("APPLIED attempts on the product side (%d) differ from those of CONFIRMED orders (%d)", len(applied), len(confirmed))
	}
	if n := s.count(s.orders, `SELECT COUNT(*) FROM orders o WHERE o.status = 'CONFIRMED'`); n != int64(len(confirmed)) {
		s.t.Errorf("%d CONFIRMED orders but %d APPLIED attempts among them", n, len(confirmed))
	}
	if n := s.count(s.orders, `SELECT COUNT(*) FROM (SELECT order_id FROM order_attempts
		WHERE status = 'APPLIED' GROUP BY order_id HAVING COUNT(*) > 1) x`); n != 0 {
		s.t.Errorf("%d orders with more than one APPLIED attempt", n)
	}
}

// strings returns the single string column of q, sorted.
func (s *system) strings(db *sql.DB, q string) []string {
	s.t.Helper()
	rows, err := db.Query(q + " ORDER BY 1")
	if err != nil {
		s.t.Fatalf("%s: %v", q, err)
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var v string
		if err := rows.Scan(&v); err != nil {
			s.t.Fatal(err)
		}
		out = append(out, v)
	}
	if err := rows.Err(); err != nil {
		s.t.Fatal(err)
	}
	return out
}

// signedElsewhere is a well-formed customer token signed with a key the
// services do not know.
func signedElsewhere() string {
	return stack.SignCustomerToken("some-other-secret", "bad-input", time.Hour)
}

// warnings returns the last n WARN and ERROR lines of a service log.
func warnings(path string, n int) string {
	raw, err := os.ReadFile(path)
	if err != nil {
		return err.Error()
	}
	var out []string
	for _, line := range strings.Split(string(raw), "\n") {
		if strings.Contains(line, `"level":"WARN"`) || strings.Contains(line, `"level":"ERROR"`) {
			out = append(out, line)
		}
	}
	return strings.Join(out[max(0, len(out)-n):], "\n")
}
