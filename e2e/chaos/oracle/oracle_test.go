package oracle_test

import (
	"bufio"
	"context"
	"database/sql"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	_ "github.com/go-sql-driver/mysql"

	"github.com/stockfence/stockfence/e2e/chaos/oracle"
	"github.com/stockfence/stockfence/shared/mysqldb/mysqltest"
)

// Fixture ids.
const (
	orderConfirmed = "0a000000-0000-4000-8000-000000000001"
	orderCancelled = "0a000000-0000-4000-8000-000000000002"
	orderFailed    = "0a000000-0000-4000-8000-000000000003"
	orderPending   = "0a000000-0000-4000-8000-000000000004"

	attemptConfirmed = "0b000000-0000-4000-8000-000000000001" // APPLIED
	attemptCancelled = "0b000000-0000-4000-8000-000000000002" // COMPENSATED
	attemptFenced    = "0b000000-0000-4000-8000-000000000003" // ABORTED, first attempt of the failed order
	attemptRejected  = "0b000000-0000-4000-8000-000000000004" // REJECTED, second attempt of the failed order
	attemptPending   = "0b000000-0000-4000-8000-000000000005" // SENT, unknown to the product side
	attemptSecond    = "0b000000-0000-4000-8000-000000000006" // used by corruptions
	attemptUnknown   = "0b000000-0000-4000-8000-0000000000ff" // used by corruptions
)

// The consistent state: product 1 (initial 10) lost 2 to the confirmed order
// and 1 to the cancelled one, which gave it back: 8. Product 2 (initial 20,
// restocked 5) lost 3 to the confirmed order: 22.
var (
	productsSeed = []string{
		`INSERT INTO products (id, sku, name, price_cents, stock) VALUES
			(1, 'sku-1', 'One', 500, 8),
			(2, 'sku-2', 'Two', 250, 22)`,
		`INSERT INTO stock_attempts (attempt_id, order_id, status, items, reason, rejection) VALUES
			('` + attemptConfirmed + `', '` + orderConfirmed + `', 'APPLIED',
				'[{"productId":1,"quantity":2,"unitPriceCents":500},{"productId":2,"quantity":3,"unitPriceCents":250}]', NULL, NULL),
			('` + attemptCancelled + `', '` + orderCancelled + `', 'COMPENSATED',
				'[{"productId":1,"quantity":1,"unitPriceCents":500}]', NULL, NULL),
			('` + attemptFenced + `', '` + orderFailed + `', 'ABORTED', NULL, NULL, NULL),
			('` + attemptRejected + `', '` + orderFailed + `', 'REJECTED',
				'[{"productId":2,"quantity":100}]', 'insufficient_stock',
				'{"shortages":[{"productId":2,"requested":100,"available":22}]}')`,
		`INSERT INTO stock_movements (product_id, attempt_id, delta, kind) VALUES
			(1, NULL, 10, 'initial'),
			(2, NULL, 20, 'initial'),
			(2, NULL, 5, 'restock'),
			(1, '` + attemptConfirmed + `', -2, 'reserve'),
			(2, '` + attemptConfirmed + `', -3, 'reserve'),
			(1, '` + attemptCancelled + `', -1, 'reserve'),
			(1, '` + attemptCancelled + `', 1, 'compensate')`,
	}
	ordersSeed = []string{
		`INSERT INTO orders (id, customer_id, status, reason, total_cents) VALUES
			('` + orderConfirmed + `', 'alice', 'CONFIRMED', NULL, 1750),
			('` + orderCancelled + `', 'bob', 'CANCELLED', NULL, 500),
			('` + orderFailed + `', 'carol', 'FAILED', 'insufficient_stock', NULL),
			('` + orderPending + `', 'dave', 'PENDING', NULL, NULL)`,
		`INSERT INTO order_lines (order_id, line_no, product_id, quantity, unit_price_cents) VALUES
			('` + orderConfirmed + `', 1, 1, 2, 500),
			('` + orderConfirmed + `', 2, 2, 3, 250),
			('` + orderCancelled + `', 1, 1, 1, 500),
			('` + orderFailed + `', 1, 2, 100, NULL),
			('` + orderPending + `', 1, 1, 1, NULL)`,
		`INSERT INTO order_attempts (attempt_id, order_id, seq, status, resolved_at) VALUES
			('` + attemptConfirmed + `', '` + orderConfirmed + `', 1, 'APPLIED', NOW(6)),
			('` + attemptCancelled + `', '` + orderCancelled + `', 1, 'COMPENSATED', NOW(6)),
			('` + attemptFenced + `', '` + orderFailed + `', 1, 'ABORTED', NOW(6)),
			('` + attemptRejected + `', '` + orderFailed + `', 2, 'REJECTED', NOW(6)),
			('` + attemptPending + `', '` + orderPending + `', 1, 'SENT', NULL)`,
		`INSERT INTO outbox (message_id, topic, msg_key, payload, order_id, created_at, next_attempt_at, attempts, sent_at)
			VALUES ('0c000000-0000-4000-8000-000000000001', 'stock-compensations', '` + attemptCancelled + `',
				'{}', '` + orderCancelled + `', NOW(6), NOW(6), 1, NOW(6))`,
	}
)

type env struct {
	products, orders *sql.DB
}

// newEnv creates two fresh databases with the schema and the consistent
// state.
func newEnv(t *testing.T) *env {
	t.Helper()
	e := &env{
		products: openDB(t, mysqltest.New(t, "oracle_p")),
		orders:   openDB(t, mysqltest.New(t, "oracle_o")),
	}
	s := loadSchemas(t)
	exec(t, e.products, s.products...)
	exec(t, e.orders, s.orders...)
	exec(t, e.products, productsSeed...)
	exec(t, e.orders, ordersSeed...)
	return e
}

func (e *env) check(t *testing.T, settled bool) oracle.Report {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	rep, err := oracle.Check(ctx, e.products, e.orders, oracle.Options{Settled: settled})
	if err != nil {
		t.Fatalf("Check: %v", err)
	}
	return rep
}

func openDB(t *testing.T, dsn string) *sql.DB {
	t.Helper()
	db, err := sql.Open("mysql", dsn)
	if err != nil {
		t.Fatal(err)
	}
	db.SetMaxOpenConns(2)
	t.Cleanup(func() { db.Close() })
	return db
}

func exec(t *testing.T, db *sql.DB, stmts ...string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for _, s := range stmts {
		if _, err := db.ExecContext(ctx, s); err != nil {
			t.Fatalf("%s\n: %v", s, err)
		}
	}
}

type schemas struct{ products, orders []string }

var (
	schemaOnce sync.Once
	schema     schemas
	schemaErr  error
)

// loadSchemas reads the "+goose Up" statements of the migrations from the
// repository, so that the tests need no code of the services.
func loadSchemas(t *testing.T) schemas {
	t.Helper()
	schemaOnce.Do(func() {
		root, err := repoRoot()
		if err != nil {
			schemaErr = err
			return
		}
		for _, f := range []struct {
			dst   *[]string
			files []string
		}{
			{&schema.products, []string{"sql/products/001_init.sql"}},
			{&schema.orders, []string{"sql/orders/001_init.sql", "sql/orders/002_outbox.sql"}},
		} {
			for _, name := range f.files {
				stmts, err := gooseUp(filepath.Join(root, name))
				if err != nil {
					schemaErr = err
					return
				}
				*f.dst = append(*f.dst, stmts...)
			}
		}
	})
	if schemaErr != nil {
		t.Fatal(schemaErr)
	}
	return schema
}

func repoRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.work")); err == nil {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", os.ErrNotExist
		}
		dir = parent
	}
}

// gooseUp returns the statements between "-- +goose Up" and "-- +goose Down",
// split at lines that end with ";".
func gooseUp(path string) ([]string, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var (
		stmts []string
		cur   []string
		up    bool
	)
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := sc.Text()
		trimmed := strings.TrimSpace(line)
		switch {
		case strings.HasPrefix(trimmed, "-- +goose Up"):
			up = true
			continue
		case strings.HasPrefix(trimmed, "-- +goose Down"):
			up = false
			continue
		case !up:
			continue
		}
		cur = append(cur, line)
		if strings.HasSuffix(trimmed, ";") {
			if s := statement(cur); s != "" {
				stmts = append(stmts, s)
			}
			cur = nil
		}
	}
	if err := sc.Err(); err != nil {
		return nil, err
	}
	if s := statement(cur); s != "" {
		stmts = append(stmts, s)
	}
	return stmts, nil
}

// statement joins lines into one statement without its final ";", or ""
// when they hold only comments and blanks.
func statement(lines []string) string {
	code := false
	for _, l := range lines {
		if t := strings.TrimSpace(l); t != "" && !strings.HasPrefix(t, "--") {
			code = true
		}
	}
	if !code {
		return ""
	}
	return strings.TrimSuffix(strings.TrimSpace(strings.Join(lines, "\n")), ";")
}

func TestConsistentState(t *testing.T) {
	t.Parallel()
	e := newEnv(t)

	rep := e.check(t, false)
	if !rep.OK() {
		t.Fatalf("consistent state, Settled=false: %v", rep)
	}
	if rep.Orders != 4 || rep.Attempts != 5 || rep.Products != 2 || rep.Unsettled != 1 || rep.UnsentOutbox != 0 {
		t.Errorf("counts: %v", rep)
	}

	rep = e.check(t, true)
	if rep.OK() || len(rep.Violations) != 1 {
		t.Fatalf("consistent state, Settled=true: want exactly one violation: %v", rep)
	}
	if v := rep.Violations[0]; v.Kind != oracle.KindUnsettled || v.OrderID != orderPending {
		t.Fatalf("want unsettled for %s, got %v", orderPending, v)
	}
}

// An APPLIED attempt whose order has not heard of the outcome yet is fine
// while faults go on, and a violation once everything must be settled.
func TestAppliedPendingOrder(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	exec(t, e.products,
		`INSERT INTO stock_attempts (attempt_id, order_id, status, items) VALUES ('`+attemptPending+`', '`+orderPending+`',
			'APPLIED', '[{"productId":1,"quantity":1,"unitPriceCents":500}]')`,
		`INSERT INTO stock_movements (product_id, attempt_id, delta, kind) VALUES (1, '`+attemptPending+`', -1, 'reserve')`,
		`UPDATE products SET stock = stock - 1 WHERE id = 1`,
	)
	if rep := e.check(t, false); !rep.OK() {
		t.Fatalf("Settled=false: %v", rep)
	}
	rep := e.check(t, true)
	want := map[string]int{oracle.KindUnsettled: 1, oracle.KindAppliedOrderNotConfirmed: 1}
	if got := rep.Kinds(); len(got) != len(want) || got[oracle.KindUnsettled] != 1 || got[oracle.KindAppliedOrderNotConfirmed] != 1 {
		t.Fatalf("Settled=true: want %v: %v", want, rep)
	}
}

func TestCorruptions(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name             string
		products, orders []string
		settled          bool
		want             string
	}{
		{
			name:     "stock taken without attempt",
			products: []string{`UPDATE products SET stock = stock - 1 WHERE id = 1`},
			want:     oracle.KindStockMismatch,
		},
		{
			name: "reserve movement of an unknown attempt",
			products: []string{
				`INSERT INTO stock_movements (product_id, attempt_id, delta, kind) VALUES (1, '` + attemptUnknown + `', -1, 'reserve')`,
				`UPDATE products SET stock = stock - 1 WHERE id = 1`,
			},
			want: oracle.KindUnattributedMovement,
		},
		{
			name: "compensate movement of an APPLIED attempt",
			products: []string{
				`INSERT INTO stock_movements (product_id, attempt_id, delta, kind) VALUES (1, '` + attemptConfirmed + `', 2, 'compensate')`,
				`UPDATE products SET stock = stock + 2 WHERE id = 1`,
			},
			want: oracle.KindUnattributedMovement,
		},
		{
			name: "stock given back without compensation",
			products: []string{
				`DELETE FROM stock_movements WHERE attempt_id = '` + attemptConfirmed + `' AND product_id = 2`,
				`UPDATE products SET stock = stock + 3 WHERE id = 2`,
			},
			want: oracle.KindStockNotExplained,
		},
		{
			name: "second APPLIED attempt for one order",
			products: []string{
				`INSERT INTO stock_attempts (attempt_id, order_id, status, items) VALUES ('` + attemptSecond + `', '` + orderConfirmed + `',
					'APPLIED', '[{"productId":1,"quantity":1,"unitPriceCents":500}]')`,
				`INSERT INTO stock_movements (product_id, attempt_id, delta, kind) VALUES (1, '` + attemptSecond + `', -1, 'reserve')`,
				`UPDATE products SET stock = stock - 1 WHERE id = 1`,
			},
			orders: []string{
				`INSERT INTO order_attempts (attempt_id, order_id, seq, status) VALUES ('` + attemptSecond + `', '` + orderConfirmed + `', 2, 'APPLIED')`,
			},
			want: oracle.KindDoubleApplied,
		},
		{
			name:     "COMPENSATED without giving stock back",
			products: []string{`UPDATE stock_attempts SET status = 'COMPENSATED' WHERE attempt_id = '` + attemptConfirmed + `'`},
			want:     oracle.KindCompensationNotReturned,
		},
		{
			name:     "CONFIRMED order whose attempt was ABORTED",
			products: []string{`UPDATE stock_attempts SET status = 'ABORTED' WHERE attempt_id = '` + attemptConfirmed + `'`},
			want:     oracle.KindConfirmedNotApplied,
		},
		{
			name:   "FAILED order with an APPLIED attempt",
			orders: []string{`UPDATE orders SET status = 'FAILED' WHERE id = '` + orderConfirmed + `'`},
			want:   oracle.KindSettledHoldsStock,
		},
		{
			name:   "CANCELLED order with an APPLIED attempt",
			orders: []string{`UPDATE orders SET status = 'CANCELLED' WHERE id = '` + orderConfirmed + `'`},
			want:   oracle.KindAppliedOrderNotConfirmed,
		},
		{
			name:   "APPLIED attempt the orders side does not know",
			orders: []string{`DELETE FROM order_attempts WHERE attempt_id = '` + attemptConfirmed + `'`},
			want:   oracle.KindAppliedUnknownOrder,
		},
		{
			name:   "orders side APPLIED, product side REJECTED",
			orders: []string{`UPDATE order_attempts SET status = 'APPLIED' WHERE attempt_id = '` + attemptRejected + `'`},
			want:   oracle.KindAttemptStatusDisagrees,
		},
		{
			name:   "CONFIRMED order without a price",
			orders: []string{`UPDATE order_lines SET unit_price_cents = NULL WHERE order_id = '` + orderConfirmed + `' AND line_no = 2`},
			want:   oracle.KindConfirmedUnpriced,
		},
		{
			name: "unsent outbox row",
			orders: []string{
				`INSERT INTO outbox (message_id, topic, msg_key, payload, order_id, created_at, next_attempt_at)
					VALUES ('0c000000-0000-4000-8000-000000000002', 'stock-compensations', '` + attemptConfirmed + `',
					'{}', '` + orderConfirmed + `', NOW(6), NOW(6))`,
			},
			settled: true,
			want:    oracle.KindOutboxNotDrained,
		},
		// negative_stock cannot be set up: ck_products_stock refuses it.
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			e := newEnv(t)
			exec(t, e.products, tc.products...)
			exec(t, e.orders, tc.orders...)
			rep := e.check(t, tc.settled)
			if rep.OK() {
				t.Fatalf("want %s, report is OK: %v", tc.want, rep)
			}
			if rep.Kinds()[tc.want] == 0 {
				t.Fatalf("want %s: %v", tc.want, rep)
			}
			t.Log(rep)
		})
	}
}

// Work committed between the products snapshot and the orders snapshot, as
// live traffic does, must not be mistaken for a violation: the findings that
// join the two snapshots are confirmed against a fresh read first.
func TestWorkBetweenSnapshots(t *testing.T) {
	t.Parallel()
	const orderNew = "0a000000-0000-4000-8000-000000000005"
	for _, tc := range []struct {
		name             string
		products, orders []string
	}{
		{
			name: "order placed and confirmed",
			products: []string{
				`INSERT INTO stock_attempts (attempt_id, order_id, status, items) VALUES ('` + attemptSecond + `', '` + orderNew + `',
					'APPLIED', '[{"productId":1,"quantity":1,"unitPriceCents":500}]')`,
				`INSERT INTO stock_movements (product_id, attempt_id, delta, kind) VALUES (1, '` + attemptSecond + `', -1, 'reserve')`,
				`UPDATE products SET stock = stock - 1 WHERE id = 1`,
			},
			orders: []string{
				`INSERT INTO orders (id, customer_id, status, total_cents) VALUES ('` + orderNew + `', 'erin', 'CONFIRMED', 500)`,
				`INSERT INTO order_lines (order_id, line_no, product_id, quantity, unit_price_cents) VALUES ('` + orderNew + `', 1, 1, 1, 500)`,
				`INSERT INTO order_attempts (attempt_id, order_id, seq, status, resolved_at) VALUES ('` + attemptSecond + `', '` + orderNew + `', 1, 'APPLIED', NOW(6))`,
			},
		},
		{
			name: "confirmed order cancelled and compensated",
			products: []string{
				`UPDATE stock_attempts SET status = 'COMPENSATED' WHERE attempt_id = '` + attemptConfirmed + `'`,
				`INSERT INTO stock_movements (product_id, attempt_id, delta, kind) VALUES
					(1, '` + attemptConfirmed + `', 2, 'compensate'), (2, '` + attemptConfirmed + `', 3, 'compensate')`,
				`UPDATE products SET stock = stock + 2 WHERE id = 1`,
				`UPDATE products SET stock = stock + 3 WHERE id = 2`,
			},
			orders: []string{
				`UPDATE orders SET status = 'CANCELLED' WHERE id = '` + orderConfirmed + `'`,
				`UPDATE order_attempts SET status = 'COMPENSATED' WHERE attempt_id = '` + attemptConfirmed + `'`,
				`INSERT INTO outbox (message_id, topic, msg_key, payload, order_id, created_at, next_attempt_at, attempts, sent_at)
					VALUES ('0c000000-0000-4000-8000-000000000003', 'stock-compensations', '` + attemptConfirmed + `',
					'{}', '` + orderConfirmed + `', NOW(6), NOW(6), 1, NOW(6))`,
			},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			e := newEnv(t)
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			ctx = oracle.WithBetweenSnapshots(ctx, func() {
				exec(t, e.products, tc.products...)
				exec(t, e.orders, tc.orders...)
			})
			rep, err := oracle.Check(ctx, e.products, e.orders, oracle.Options{})
			if err != nil {
				t.Fatalf("Check: %v", err)
			}
			if !rep.OK() {
				t.Fatalf("work between the snapshots reported as violations: %v", rep)
			}
			// And once it is all visible, the state is still consistent.
			if rep := e.check(t, false); !rep.OK() {
				t.Fatalf("after: %v", rep)
			}
		})
	}
}

// A soak-sized state: thousands of confirmed orders on a third product, plus
// more confirmed orders without an attempt than one re-read query takes.
func TestManyOrders(t *testing.T) {
	t.Parallel()
	const (
		applied = 5000
		missing = 700
		batch   = 1000
	)
	e := newEnv(t)
	exec(t, e.products,
		fmt.Sprintf(`INSERT INTO products (id, sku, name, price_cents, stock) VALUES (3, 'sku-3', 'Three', 100, %d)`, 100000-applied),
		`INSERT INTO stock_movements (product_id, attempt_id, delta, kind) VALUES (3, NULL, 100000, 'initial')`)
	id := func(prefix string, i int) string { return fmt.Sprintf("%s-0000-4000-8000-%012d", prefix, i) }
	for start := 0; start < applied+missing; start += batch {
		var pa, pm, o, ol, oa []string
		for i := start; i < min(start+batch, applied+missing); i++ {
			order, attempt := id("1a000000", i), id("1b000000", i)
			o = append(o, fmt.Sprintf("('%s', 'soak', 'CONFIRMED', 100)", order))
			ol = append(ol, fmt.Sprintf("('%s', 1, 3, 1, 100)", order))
			if i >= applied {
				continue // confirmed without any attempt: a violation
			}
			pa = append(pa, fmt.Sprintf(`('%s', '%s', 'APPLIED', '[{"productId":3,"quantity":1,"unitPriceCents":100}]')`, attempt, order))
			pm = append(pm, fmt.Sprintf("(3, '%s', -1, 'reserve')", attempt))
			oa = append(oa, fmt.Sprintf("('%s', '%s', 1, 'APPLIED')", attempt, order))
		}
		if len(pa) > 0 {
			exec(t, e.products,
				`INSERT INTO stock_attempts (attempt_id, order_id, status, items) VALUES `+strings.Join(pa, ","),
				`INSERT INTO stock_movements (product_id, attempt_id, delta, kind) VALUES `+strings.Join(pm, ","))
		}
		exec(t, e.orders,
			`INSERT INTO orders (id, customer_id, status, total_cents) VALUES `+strings.Join(o, ","),
			`INSERT INTO order_lines (order_id, line_no, product_id, quantity, unit_price_cents) VALUES `+strings.Join(ol, ","))
		if len(oa) > 0 {
			exec(t, e.orders, `INSERT INTO order_attempts (attempt_id, order_id, seq, status) VALUES `+strings.Join(oa, ","))
		}
	}
	began := time.Now()
	rep := e.check(t, false)
	t.Logf("checked %d orders, %d attempts in %v", rep.Orders, rep.Attempts, time.Since(began))
	if rep.Orders != 4+applied+missing || rep.Attempts != 5+applied {
		t.Errorf("counts: orders %d, attempts %d", rep.Orders, rep.Attempts)
	}
	kinds := rep.Kinds()
	if len(kinds) != 1 || kinds[oracle.KindConfirmedNotApplied] != missing {
		t.Fatalf("want %d confirmed_not_applied and nothing else, got %v", missing, kinds)
	}
}
