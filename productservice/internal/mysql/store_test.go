package mysql_test

import (
	"context"
	"database/sql"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/stockfence/stockfence/productservice/internal/mysql"
	"github.com/stockfence/stockfence/productservice/internal/stock"
	"github.com/stockfence/stockfence/shared/contract"
	schema "github.com/stockfence/stockfence/sql"
	"github.com/stockfence/stockfence/sql/schematest"
)

// env is a Store over a fresh database.
type env struct {
	t     *testing.T
	ctx   context.Context
	db    *sql.DB
	store *mysql.Store
}

func newEnv(t *testing.T) *env {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	t.Cleanup(cancel)
	db := schematest.Open(t, schema.Products, 16)
	return &env{t: t, ctx: ctx, db: db, store: mysql.New(db)}
}

func (e *env) product(sku string, stock int64) contract.Product {
	e.t.Helper()
	p, err := e.store.CreateProduct(e.ctx, contract.NewProduct{SKU: sku, Name: sku, PriceCents: 100, Stock: stock})
	if err != nil {
		e.t.Fatal(err)
	}
	return p
}

// reserve reserves items under a new attempt and checks the outcome.
func (e *env) reserve(want contract.AttemptStatus, items ...contract.Item) contract.ReserveRequest {
	e.t.Helper()
	req := contract.ReserveRequest{AttemptID: uuid.NewString(), OrderID: uuid.NewString(), Items: items}
	res, _, err := e.store.Reserve(e.ctx, req)
	if err != nil {
		e.t.Fatal(err)
	}
	if res.Status != want {
		e.t.Fatalf("reserve status = %s, want %s", res.Status, want)
	}
	return req
}

func (e *env) stock(id int64) int64 {
	e.t.Helper()
	return e.count(`SELECT stock FROM products WHERE id = ?`, id)
}

func (e *env) count(q string, args ...any) int64 {
	e.t.Helper()
	var n int64
	if err := e.db.QueryRowContext(e.ctx, q, args...).Scan(&n); err != nil {
		e.t.Fatal(err)
	}
	return n
}

func (e *env) status(attemptID string) contract.AttemptStatus {
	e.t.Helper()
	res, err := e.store.Attempt(e.ctx, attemptID)
	if err != nil {
		e.t.Fatal(err)
	}
	return res.Status
}

// checkLedger asserts stock = SUM(ledger) for every product, and that every
// compensate movement belongs to a COMPENSATED attempt and mirrors its
// reserve movement.
func (e *env) checkLedger() {
	e.t.Helper()
	if n := e.count(`SELECT COUNT(*) FROM products p
		WHERE p.stock <> (SELECT COALESCE(SUM(delta), 0) FROM stock_movements m WHERE m.product_id = p.id)`); n != 0 {
		e.t.Fatalf("%d products whose stock differs from their ledger", n)
	}
	if n := e.count(`SELECT COUNT(*) FROM stock_movements c
		JOIN stock_attempts a ON a.attempt_id = c.attempt_id
		LEFT JOIN stock_movements r ON r.attempt_id = c.attempt_id AND r.product_id = c.product_id AND r.kind = 'reserve'
		WHERE c.kind = 'compensate' AND (a.status <> 'COMPENSATED' OR r.delta IS NULL OR r.delta <> -c.delta)`); n != 0 {
		e.t.Fatalf("%d compensate movements that do not undo a reservation of a COMPENSATED attempt", n)
	}
}

func (e *env) compensate(attemptID, orderID string, want contract.AttemptStatus) {
	e.t.Helper()
	got, err := e.store.Compensate(e.ctx, attemptID, orderID)
	if err != nil {
		e.t.Fatalf("compensate: %v", err)
	}
	if got != want {
		e.t.Fatalf("compensate status = %s, want %s", got, want)
	}
}

func TestCompensateGivesBackOnce(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	a, b := e.product("A", 10), e.product("B", 5)
	req := e.reserve(contract.StatusApplied, contract.Item{ProductID: b.ID, Quantity: 2}, contract.Item{ProductID: a.ID, Quantity: 3})
	other := e.reserve(contract.StatusApplied, contract.Item{ProductID: a.ID, Quantity: 1})

	e.compensate(req.AttemptID, req.OrderID, contract.StatusCompensated)
	if got, want := e.stock(a.ID), int64(9); got != want {
		t.Fatalf("stock of A = %d, want %d", got, want)
	}
	if got, want := e.stock(b.ID), int64(5); got != want {
		t.Fatalf("stock of B = %d, want %d", got, want)
	}
	if got := e.status(req.AttemptID); got != contract.StatusCompensated {
		t.Fatalf("attempt status = %s, want COMPENSATED", got)
	}
	if got := e.status(other.AttemptID); got != contract.StatusApplied {
		t.Fatalf("other attempt status = %s, want APPLIED", got)
	}

	// Twice: nothing more is given back.
	e.compensate(req.AttemptID, req.OrderID, contract.StatusCompensated)
	if got, want := e.stock(a.ID), int64(9); got != want {
		t.Fatalf("stock of A after a second compensation = %d, want %d", got, want)
	}
	if n := e.count(`SELECT COUNT(*) FROM stock_movements WHERE attempt_id = ? AND kind = 'compensate'`, req.AttemptID); n != 2 {
		t.Fatalf("compensate movements = %d, want 2 (one per line)", n)
	}
	e.checkLedger()

	// A replay of the reservation reports it compensated and takes nothing.
	res, replayed, err := e.store.Reserve(e.ctx, req)
	if err != nil {
		t.Fatal(err)
	}
	if !replayed || res.Status != contract.StatusCompensated {
		t.Fatalf("reserve replay = %s (replayed %v), want COMPENSATED replayed", res.Status, replayed)
	}
	if got, want := e.stock(a.ID), int64(9); got != want {
		t.Fatalf("stock of A after a replayed reservation = %d, want %d", got, want)
	}
}

func TestCompensateConcurrently(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	a, b := e.product("A", 10), e.product("B", 10)
	req := e.reserve(contract.StatusApplied, contract.Item{ProductID: a.ID, Quantity: 4}, contract.Item{ProductID: b.ID, Quantity: 1})

	var wg sync.WaitGroup
	errs := make(chan error, 10)
	for range 10 {
		wg.Go(func() {
			status, err := e.store.Compensate(e.ctx, req.AttemptID, req.OrderID)
			if err == nil && status != contract.StatusCompensated {
				err = errors.New("status " + string(status))
			}
			errs <- err
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Errorf("compensate: %v", err)
		}
	}
	if got, want := e.stock(a.ID), int64(10); got != want {
		t.Fatalf("stock of A = %d, want %d", got, want)
	}
	if got, want := e.stock(b.ID), int64(10); got != want {
		t.Fatalf("stock of B = %d, want %d", got, want)
	}
	e.checkLedger()
}

// TestCompensateWhileReserving runs compensations of applied attempts while
// new reservations of the same products (lines in both orders) go on: the
// lock orders agree, so nothing fails, and the stock is conserved.
func TestCompensateWhileReserving(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	a, b := e.product("A", 1000), e.product("B", 1000)
	var applied []contract.ReserveRequest
	for range 20 {
		applied = append(applied, e.reserve(contract.StatusApplied, contract.Item{ProductID: b.ID, Quantity: 3}, contract.Item{ProductID: a.ID, Quantity: 2}))
	}
	var wg sync.WaitGroup
	errs := make(chan error, 60)
	for i, req := range applied {
		wg.Go(func() {
			_, err := e.store.Compensate(e.ctx, req.AttemptID, req.OrderID)
			errs <- err
		})
		wg.Go(func() {
			items := []contract.Item{{ProductID: a.ID, Quantity: 1}, {ProductID: b.ID, Quantity: 1}}
			if i%2 == 1 {
				items[0], items[1] = items[1], items[0]
			}
			_, _, err := e.store.Reserve(e.ctx, contract.ReserveRequest{AttemptID: uuid.NewString(), OrderID: uuid.NewString(), Items: items})
			errs <- err
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Errorf("concurrent call: %v", err)
		}
	}
	// 20 new reservations took one of each; every earlier one was given back.
	if got, want := e.stock(a.ID), int64(980); got != want {
		t.Fatalf("stock of A = %d, want %d", got, want)
	}
	if got, want := e.stock(b.ID), int64(980); got != want {
		t.Fatalf("stock of B = %d, want %d", got, want)
	}
	e.checkLedger()
}

// TestCompensateRacingItsReservation sends each attempt's reservation and
// its compensation at the same moment. Whichever comes first, the attempt
// ends ABORTED (nothing taken) or COMPENSATED (taken and given back), and
// the stock is whole again.
func TestCompensateRacingItsReservation(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	a := e.product("A", 100)
	var wg sync.WaitGroup
	reqs := make([]contract.ReserveRequest, 30)
	for i := range reqs {
		req := contract.ReserveRequest{AttemptID: uuid.NewString(), OrderID: uuid.NewString(), Items: []contract.Item{{ProductID: a.ID, Quantity: 1}}}
		reqs[i] = req
		wg.Go(func() {
			if _, _, err := e.store.Reserve(e.ctx, req); err != nil {
				t.Errorf("reserve: %v", err)
			}
		})
		wg.Go(func() {
			if _, err := e.store.Compensate(e.ctx, req.AttemptID, req.OrderID); err != nil {
				t.Errorf("compensate: %v", err)
			}
		})
	}
	wg.Wait()
	for _, req := range reqs {
		if got := e.status(req.AttemptID); got != contract.StatusAborted && got != contract.StatusCompensated {
			t.Errorf("attempt %s = %s, want ABORTED or COMPENSATED", req.AttemptID, got)
		}
	}
	if got, want := e.stock(a.ID), int64(100); got != want {
		t.Fatalf("stock = %d, want %d", got, want)
	}
	e.checkLedger()
}

func TestCompensateFencesAnAttemptNeverSeen(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	a := e.product("A", 10)
	req := contract.ReserveRequest{AttemptID: uuid.NewString(), OrderID: uuid.NewString(), Items: []contract.Item{{ProductID: a.ID, Quantity: 3}}}

	e.compensate(req.AttemptID, req.OrderID, contract.StatusAborted)
	e.compensate(req.AttemptID, req.OrderID, contract.StatusAborted)

	res, replayed, err := e.store.Reserve(e.ctx, req)
	if err != nil {
		t.Fatal(err)
	}
	if !replayed || res.Status != contract.StatusAborted {
		t.Fatalf("late reservation = %s (replayed %v), want ABORTED replayed", res.Status, replayed)
	}
	if got, want := e.stock(a.ID), int64(10); got != want {
		t.Fatalf("stock = %d, want %d", got, want)
	}
	e.checkLedger()
}

func TestCompensateLeavesOthersAlone(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	a := e.product("A", 2)
	rejected := e.reserve(contract.StatusRejected, contract.Item{ProductID: a.ID, Quantity: 3})
	aborted := contract.ReserveRequest{AttemptID: uuid.NewString(), OrderID: uuid.NewString()}
	if _, fenced, err := e.store.Resolve(e.ctx, aborted.AttemptID, aborted.OrderID); err != nil || !fenced {
		t.Fatalf("resolve of an attempt never seen: fenced %v, err %v; want fenced", fenced, err)
	}
	tests := []struct {
		name string
		req  contract.ReserveRequest
		want contract.AttemptStatus
	}{
		{"rejected", rejected, contract.StatusRejected},
		{"aborted", aborted, contract.StatusAborted},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e.compensate(tt.req.AttemptID, tt.req.OrderID, tt.want)
			if got := e.status(tt.req.AttemptID); got != tt.want {
				t.Fatalf("attempt status = %s, want %s", got, tt.want)
			}
		})
	}
	if got, want := e.stock(a.ID), int64(2); got != want {
		t.Fatalf("stock = %d, want %d", got, want)
	}
	if n := e.count(`SELECT COUNT(*) FROM stock_movements WHERE kind = 'compensate'`); n != 0 {
		t.Fatalf("compensate movements = %d, want 0", n)
	}
}

func TestCompensateAnotherOrdersAttempt(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	a := e.product("A", 10)
	req := e.reserve(contract.StatusApplied, contract.Item{ProductID: a.ID, Quantity: 3})

	_, err := e.store.Compensate(e.ctx, req.AttemptID, uuid.NewString())
	if !errors.Is(err, stock.ErrAttemptMismatch) {
		t.Fatalf("compensate with another order = %v, want ErrAttemptMismatch", err)
	}
	if got := e.status(req.AttemptID); got != contract.StatusApplied {
		t.Fatalf("attempt status = %s, want APPLIED", got)
	}
	if got, want := e.stock(a.ID), int64(7); got != want {
		t.Fatalf("stock = %d, want %d", got, want)
	}
}

// TestCompensateWaitsForAReservationInFlight holds a reservation after it
// inserted its attempt row, then compensates the attempt: the compensation
// must wait and give back what the reservation took once it commits.
func TestCompensateWaitsForAReservationInFlight(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	a := e.product("A", 10)
	req := contract.ReserveRequest{AttemptID: uuid.NewString(), OrderID: uuid.NewString(), Items: []contract.Item{{ProductID: a.ID, Quantity: 3}}}

	blocker, err := e.db.BeginTx(e.ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer blocker.Rollback()
	if _, err := blocker.ExecContext(e.ctx, `SELECT stock FROM products WHERE id = ? FOR UPDATE`, a.ID); err != nil {
		t.Fatal(err)
	}
	reserved := make(chan error, 1)
	go func() {
		_, _, err := e.store.Reserve(e.ctx, req)
		reserved <- err
	}()
	e.waitForBlockedQuery("SELECT id, price_cents, stock FROM products")

	compensated := make(chan contract.AttemptStatus, 1)
	go func() {
		status, err := e.store.Compensate(e.ctx, req.AttemptID, req.OrderID)
		if err != nil {
			t.Errorf("compensate: %v", err)
		}
		compensated <- status
	}()
	e.waitForBlockedQuery("SELECT order_id, status, items FROM stock_attempts")

	if err := blocker.Commit(); err != nil {
		t.Fatal(err)
	}
	if err := <-reserved; err != nil {
		t.Fatalf("reserve: %v", err)
	}
	if got := <-compensated; got != contract.StatusCompensated {
		t.Fatalf("compensate = %s, want COMPENSATED", got)
	}
	if got, want := e.stock(a.ID), int64(10); got != want {
		t.Fatalf("stock = %d, want %d", got, want)
	}
	e.checkLedger()
}

// waitForBlockedQuery waits until another connection to this test's database
// is executing a statement that starts with prefix: those statements take
// microseconds unless they wait for a lock.
func (e *env) waitForBlockedQuery(prefix string) {
	e.t.Helper()
	const q = `SELECT COALESCE(info, '') FROM information_schema.processlist
		WHERE db = DATABASE() AND command = 'Query' AND id <> CONNECTION_ID()`
	for {
		rows, err := e.db.QueryContext(e.ctx, q)
		if err != nil {
			e.t.Fatal(err)
		}
		found := false
		for rows.Next() {
			var info string
			if err := rows.Scan(&info); err != nil {
				e.t.Fatal(err)
			}
			found = found || strings.HasPrefix(strings.TrimSpace(info), prefix)
		}
		if err := rows.Err(); err != nil {
			e.t.Fatal(err)
		}
		rows.Close()
		if found {
			return
		}
		select {
		case <-e.ctx.Done():
			e.t.Fatalf("no statement %q waiting: %v", prefix, e.ctx.Err())
		case <-time.After(5 * time.Millisecond):
		}
	}
}
