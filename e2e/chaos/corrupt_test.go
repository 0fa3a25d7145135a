package chaos_test

import (
	"bytes"
	"database/sql"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/stockfence/stockfence/e2e/chaos/oracle"
	"github.com/stockfence/stockfence/e2e/stack"
	"github.com/stockfence/stockfence/shared/contract"
	"github.com/stockfence/stockfence/shared/mysqldb/mysqltest"
)

// TestOracleAndReconcileCatchEachBug corrupts the databases of a healthy
// system the way each bug would leave them, one at a time, and checks that
// both the oracle and the system's own GET /ops/reconcile report it - and
// that both are quiet before and after.
func TestOracleAndReconcileCatchEachBug(t *testing.T) {
	ctx := t.Context()
	root, err := stack.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	bin, err := stack.Build(ctx, root)
	if err != nil {
		t.Fatal(err)
	}
	productsDSN, ordersDSN := mysqltest.New(t, "corrupt_products"), mysqltest.New(t, "corrupt_orders")
	s, err := stack.Start(ctx, stack.Options{BinDir: bin, LogDir: t.TempDir(), ProductsDSN: productsDSN, OrdersDSN: ordersDSN,
		Env: map[string]string{"PRODUCT_MYSQL_MAX_CONNS": "4", "ORDER_MYSQL_MAX_CONNS": "4"}})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Stop()
	products, orders := open(t, productsDSN), open(t, ordersDSN)
	p, err := stack.Seed(ctx, s.ProductURL, s.AdminToken, []contract.NewProduct{{SKU: "C-1", Name: "Crate", PriceCents: 700, Stock: 10}})
	if err != nil {
		t.Fatal(err)
	}
	var confirmed string
	for i := range 3 {
		body := fmt.Sprintf(`{"items":[{"productId":%d,"quantity":1}]}`, p[0].ID)
		raw := post(t, s.OrderURL+"/orders", s.CustomerToken(fmt.Sprint("buyer-", i), time.Hour), body, http.StatusCreated)
		var o struct {
			OrderID string `json:"orderId"`
		}
		if err := json.Unmarshal(raw, &o); err != nil {
			t.Fatal(err)
		}
		confirmed = o.OrderID
	}
	var attempt string
	if err := products.QueryRow(`SELECT attempt_id FROM stock_attempts WHERE order_id = ?`, confirmed).Scan(&attempt); err != nil {
		t.Fatal(err)
	}
	ghost := uuid.NewString()

	check := func(want string) {
		t.Helper()
		rep, err := oracle.Check(ctx, products, orders, oracle.Options{Settled: true})
		if err != nil {
			t.Fatal(err)
		}
		var rec struct {
			OK         bool `json:"ok"`
			Violations []struct {
				Kind string `json:"kind"`
			} `json:"violations"`
		}
		if err := json.Unmarshal(get(t, s.OrderURL+"/ops/reconcile", s.AdminToken), &rec); err != nil {
			t.Fatal(err)
		}
		recKinds := map[string]bool{}
		for _, v := range rec.Violations {
			recKinds[v.Kind] = true
		}
		if want == "" {
			if !rep.OK() || !rec.OK {
				t.Fatalf("healthy system: oracle %v, reconcile ok=%v %v", rep.Violations, rec.OK, rec.Violations)
			}
			return
		}
		if rep.OK() || rep.Kinds()[want] == 0 {
			t.Errorf("oracle missed %s: %v", want, rep.Violations)
		}
		if rec.OK || !recKinds[want] {
			t.Errorf("reconcile missed %s: ok=%v %v", want, rec.OK, rec.Violations)
		}
	}
	check("")
	for _, c := range []struct {
		bug, kind string
		do, undo  string
		args      []any
	}{
		{"stock taken with no attempt", "stock_mismatch",
			`UPDATE products SET stock = stock - 1 WHERE id = ?`, `UPDATE products SET stock = stock + 1 WHERE id = ?`, []any{p[0].ID}},
		{"a second APPLIED attempt for one order", "double_applied",
			`INSERT INTO stock_attempts (attempt_id, order_id, status, items) VALUES ('` + ghost + `', ?, 'APPLIED', '[]')`,
			`DELETE FROM stock_attempts WHERE attempt_id = '` + ghost + `' AND order_id = ?`, []any{confirmed}},
		{"a COMPENSATED attempt whose stock never came back", "compensation_not_returned",
			`UPDATE stock_attempts SET status = 'COMPENSATED' WHERE attempt_id = ?`, `UPDATE stock_attempts SET status = 'APPLIED' WHERE attempt_id = ?`, []any{attempt}},
		{"a CONFIRMED order whose attempt was ABORTED", "confirmed_not_applied",
			`UPDATE stock_attempts SET status = 'ABORTED' WHERE attempt_id = ?`, `UPDATE stock_attempts SET status = 'APPLIED' WHERE attempt_id = ?`, []any{attempt}},
	} {
		t.Run(c.bug, func(t *testing.T) {
			mustExec(t, products, c.do, c.args...)
			check(c.kind)
			mustExec(t, products, c.undo, c.args...)
		})
		check("")
	}
}

func open(t *testing.T, dsn string) *sql.DB {
	t.Helper()
	db, err := sql.Open("mysql", dsn)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

func mustExec(t *testing.T, db *sql.DB, q string, args ...any) {
	t.Helper()
	if _, err := db.Exec(q, args...); err != nil {
		t.Fatalf("%s: %v", q, err)
	}
}

func post(t *testing.T, url, token, body string, want int) []byte {
	t.Helper()
	return do(t, http.MethodPost, url, token, body, want)
}

func get(t *testing.T, url, token string) []byte {
	t.Helper()
	return do(t, http.MethodGet, url, token, "", http.StatusOK)
}

func do(t *testing.T, method, url, token, body string, want int) []byte {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), method, url, bytes.NewBufferString(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != want {
		t.Fatalf("%s %s = %d %s, want %d", method, url, resp.StatusCode, raw, want)
	}
	return raw
}
