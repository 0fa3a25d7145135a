package mysql_test

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/stockfence/stockfence/productservice/internal/mysql"
	"github.com/stockfence/stockfence/productservice/internal/stock"
	"github.com/stockfence/stockfence/shared/contract"
	schema "github.com/stockfence/stockfence/sql"
	"github.com/stockfence/stockfence/sql/schematest"
)

// TestReserveBatchIsReserveInTurn runs one sequence of requests of every
// kind through ReserveBatch on one database and through Reserve, one at a
// time, on another with the same catalog and history: every answer, the
// stock, the ledger and the attempt log must come out the same.
func TestReserveBatchIsReserveInTurn(t *testing.T) {
	t.Parallel()
	batched, single := newEnv(t), newEnv(t)
	newReq := func(items ...contract.Item) contract.ReserveRequest {
		return contract.ReserveRequest{AttemptID: uuid.NewString(), OrderID: uuid.NewString(), Items: items}
	}
	item := func(id int64, n int) contract.Item { return contract.Item{ProductID: id, Quantity: n} }

	// The same catalog and history on both: p1 with 5, p2 with 5; one
	// attempt already applied, one fenced before it arrived.
	pre := newReq(item(2, 1))
	fenced := newReq(item(1, 1))
	for _, e := range []*env{batched, single} {
		e.product("P1", 5)
		e.product("P2", 5)
		if _, _, err := e.store.Reserve(e.ctx, pre); err != nil {
			t.Fatal(err)
		}
		if _, _, err := e.store.Resolve(e.ctx, fenced.AttemptID, fenced.OrderID); err != nil {
			t.Fatal(err)
		}
	}

	a := newReq(item(1, 2))
	b := newReq(item(1, 2), item(2, 1))
	reqs := []contract.ReserveRequest{
		a,                                // applied
		b,                                // applied, two products
		newReq(item(1, 2)),               // rejected: 1 left after a and b
		newReq(item(1, 1)),               // applied: the last unit
		newReq(item(999, 1), item(2, 1)), // rejected: unknown product
		b,                                // a second copy within the batch: the recorded answer
		pre,                              // applied before: the recorded answer
		fenced,                           // fenced before: ABORTED
		{AttemptID: pre.AttemptID, OrderID: pre.OrderID, Items: []contract.Item{item(2, 3)}}, // mismatch
		newReq(item(2, 2)), // applied: 5 - 1 (pre) - 1 (b) - 2 leaves 1
	}

	got, err := batched.store.ReserveBatch(batched.ctx, reqs)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != len(reqs) {
		t.Fatalf("%d outcomes for %d requests", len(got), len(reqs))
	}
	for i, req := range reqs {
		res, replayed, err := single.store.Reserve(single.ctx, req)
		want := mysql.Outcome{Res: res, Replayed: replayed, Err: err}
		if !sameOutcome(got[i], want) {
			t.Errorf("request %d: batch answered %+v, one at a time %+v", i, got[i], want)
		}
	}
	if got[8].Err == nil || !errors.Is(got[8].Err, stock.ErrAttemptMismatch) {
		t.Errorf("mismatched request: err = %v, want ErrAttemptMismatch", got[8].Err)
	}
	wantStatus := []contract.AttemptStatus{contract.StatusApplied, contract.StatusApplied, contract.StatusRejected,
		contract.StatusApplied, contract.StatusRejected, contract.StatusApplied, contract.StatusApplied, contract.StatusAborted, "", contract.StatusApplied}
	for i, st := range wantStatus {
		if got[i].Res.Status != st {
			t.Errorf("request %d: status %q, want %q", i, got[i].Res.Status, st)
		}
	}

	for _, id := range []int64{1, 2} {
		if b, s := batched.stock(id), single.stock(id); b != s {
			t.Errorf("product %d: stock %d batched, %d one at a time", id, b, s)
		}
	}
	if b, s := batched.stock(1), int64(0); b != s {
		t.Errorf("product 1: stock %d, want 0", b)
	}
	for _, q := range []string{
		`SELECT COUNT(*) FROM stock_movements WHERE kind = 'reserve'`,
		`SELECT COALESCE(SUM(delta), 0) FROM stock_movements`,
		`SELECT COUNT(*) FROM stock_attempts`,
		`SELECT COUNT(*) FROM stock_attempts WHERE status = 'APPLIED'`,
	} {
		if b, s := batched.count(q), single.count(q); b != s {
			t.Errorf("%s: %d batched, %d one at a time", q, b, s)
		}
	}
	batched.checkLedger()
}

// sameOutcome compares two answers from two databases: errors by their
// sentinel, reservations without their timestamps.
func sameOutcome(a, b mysql.Outcome) bool {
	a.Res.CreatedAt, a.Res.UpdatedAt, b.Res.CreatedAt, b.Res.UpdatedAt = nil, nil, nil, nil
	if (a.Err == nil) != (b.Err == nil) || a.Err != nil && errors.Is(a.Err, stock.ErrAttemptMismatch) != errors.Is(b.Err, stock.ErrAttemptMismatch) {
		return false
	}
	return a.Replayed == b.Replayed && reflect.DeepEqual(a.Res, b.Res)
}

// TestReserveBatchOversellsNothing: many requests for one hot row in one
// batch take exactly the stock there is, in arrival order.
func TestReserveBatchOversellsNothing(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	p := e.product("HOT", 100)
	var reqs []contract.ReserveRequest
	for range 250 {
		reqs = append(reqs, contract.ReserveRequest{AttemptID: uuid.NewString(), OrderID: uuid.NewString(),
			Items: []contract.Item{{ProductID: p.ID, Quantity: 1}}})
	}
	got, err := e.store.ReserveBatch(e.ctx, reqs)
	if err != nil {
		t.Fatal(err)
	}
	for i, o := range got {
		want := contract.StatusApplied
		if i >= 100 {
			want = contract.StatusRejected
		}
		if o.Err != nil || o.Res.Status != want {
			t.Fatalf("request %d: %s (%v), want %s: the first 100 in arrival order get the stock", i, o.Res.Status, o.Err, want)
		}
	}
	if s := e.stock(p.ID); s != 0 {
		t.Fatalf("stock = %d, want 0", s)
	}
	e.checkLedger()
}

// TestReserveBatchRoundTrips: a batch of many products costs two round
// trips (begin and lock; every write and commit) whatever its size; a batch
// holding a replay costs a rolled-back try and a lookup more, and answers
// the replay from the log.
func TestReserveBatchRoundTrips(t *testing.T) {
	t.Parallel()
	db, trips := schematest.OpenCounted(t, schema.Products, 4)
	e := &env{t: t, ctx: context.Background(), db: db, store: mysql.New(db)}
	var ids []int64
	for i := range 20 {
		ids = append(ids, e.product(fmt.Sprintf("P%d", i), 1000).ID)
	}
	var reqs []contract.ReserveRequest
	for i := range 200 {
		reqs = append(reqs, contract.ReserveRequest{AttemptID: uuid.NewString(), OrderID: uuid.NewString(),
			Items: []contract.Item{{ProductID: ids[i%20], Quantity: 1}, {ProductID: ids[(i+7)%20], Quantity: 2}}})
	}
	run := func(reqs []contract.ReserveRequest) ([]mysql.Outcome, int64) {
		t.Helper()
		before := trips.Load()
		got, err := e.store.ReserveBatch(e.ctx, reqs)
		if err != nil {
			t.Fatal(err)
		}
		return got, trips.Load() - before
	}
	got, n := run(reqs)
	if n != 2 {
		t.Errorf("a batch of %d requests over %d products took %d round trips, want 2", len(reqs), len(ids), n)
	}
	for i, o := range got {
		if o.Err != nil || o.Res.Status != contract.StatusApplied || o.Replayed {
			t.Fatalf("request %d: %+v", i, o)
		}
	}

	replay := append([]contract.ReserveRequest{reqs[0]}, contract.ReserveRequest{AttemptID: uuid.NewString(),
		OrderID: uuid.NewString(), Items: []contract.Item{{ProductID: ids[0], Quantity: 1}}})
	got, n = run(replay)
	// begin and lock, writes (refused), rollback; lookup; begin and lock,
	// writes and commit; the replay's answer from the log.
	if n != 7 {
		t.Errorf("a batch with a replay took %d round trips, want 7", n)
	}
	if !got[0].Replayed || got[0].Res.Status != contract.StatusApplied || got[1].Replayed || got[1].Res.Status != contract.StatusApplied {
		t.Fatalf("outcomes %+v", got)
	}
	e.checkLedger()
}

// TestResolveDuringABatch: a resolve of one of a batch's attempts while the
// batch waits for its products' lock, and then the batch, agree on that
// attempt's outcome, and the stock and ledger say the same. (A resolve that
// fences the attempt first makes the batch roll back and run again without
// it, answering it from the log.)
func TestResolveDuringABatch(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	p := e.product("HOT", 10)
	item := []contract.Item{{ProductID: p.ID, Quantity: 2}}
	x := contract.ReserveRequest{AttemptID: uuid.NewString(), OrderID: uuid.NewString(), Items: item}
	y := contract.ReserveRequest{AttemptID: uuid.NewString(), OrderID: uuid.NewString(), Items: item}

	blocker, err := e.db.BeginTx(e.ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer blocker.Rollback()
	if _, err := blocker.ExecContext(e.ctx, `SELECT stock FROM products WHERE id = ? FOR UPDATE`, p.ID); err != nil {
		t.Fatal(err)
	}
	batched := make(chan []mysql.Outcome, 1)
	go func() {
		out, err := e.store.ReserveBatch(e.ctx, []contract.ReserveRequest{x, y})
		if err != nil {
			t.Errorf("ReserveBatch: %v", err)
		}
		batched <- out
	}()
	e.waitForBlockedQuery("SELECT id, price_cents, stock FROM products")
	resolved := make(chan contract.Reservation, 1)
	go func() {
		res, _, err := e.store.Resolve(e.ctx, x.AttemptID, x.OrderID)
		if err != nil {
			t.Errorf("Resolve: %v", err)
		}
		resolved <- res
	}()
	time.Sleep(100 * time.Millisecond) // the resolve done, or waiting on the batch
	if err := blocker.Commit(); err != nil {
		t.Fatal(err)
	}
	out, res := <-batched, <-resolved
	if out == nil {
		t.FailNow()
	}
	if out[0].Res.Status != res.Status {
		t.Fatalf("attempt x: batch answered %s, resolve %s", out[0].Res.Status, res.Status)
	}
	if out[1].Res.Status != contract.StatusApplied {
		t.Fatalf("attempt y: %s, want APPLIED", out[1].Res.Status)
	}
	want := int64(10 - 2)
	if res.Status == contract.StatusApplied {
		want -= 2
	}
	if got := e.stock(p.ID); got != want {
		t.Fatalf("stock = %d, want %d (x %s)", got, want, res.Status)
	}
	t.Logf("x %s (replayed %v)", res.Status, out[0].Replayed)
	e.checkLedger()
}
