package mysql_test

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/stockfence/stockfence/orderservice/internal/mysql"
	"github.com/stockfence/stockfence/orderservice/internal/order"
	"github.com/stockfence/stockfence/shared/contract"
	"github.com/stockfence/stockfence/shared/mysqldb"
	schema "github.com/stockfence/stockfence/sql"
	"github.com/stockfence/stockfence/sql/schematest"
)

// batchOrder returns a new PENDING order created at base with the given
// lines, its next check 3s later: no timestamp of it depends on the clock.
func batchOrder(customer string, base time.Time, items ...contract.Item) order.Order {
	return order.New(uuid.Must(uuid.NewV7()).String(), uuid.Must(uuid.NewV7()).String(), customer, items, base, base.Add(3*time.Second))
}

// answer returns an answer of status about o's first attempt.
func answer(o order.Order, status contract.AttemptStatus) contract.Reservation {
	return contract.Reservation{AttemptID: o.Attempts[0].ID, OrderID: o.ID, Status: status}
}

// priced returns the APPLIED answer for o's first attempt that reserves its
// lines at the given unit prices, listed from the last line to the first.
func priced(o order.Order, prices ...int64) contract.Reservation {
	r := answer(o, contract.StatusApplied)
	for i := len(o.Lines) - 1; i >= 0; i-- {
		r.Items = append(r.Items, contract.ReservedItem{ProductID: o.Lines[i].ProductID, Quantity: o.Lines[i].Quantity, UnitPriceCents: prices[i]})
	}
	return r
}

// TestSettleBatchIsSettleInTurn runs one sequence of answers of every kind
// through SettleBatch on one database and through Settle, one at a time, on
// another with the same orders and history: every outcome and every row of
// orders, order_lines, order_attempts and outbox must come out the same.
// Timestamps taken from the clock while the test runs differ between the
// two and are compared as "recent"; all others are compared exactly.
func TestSettleBatchIsSettleInTurn(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	recent := time.Now().UTC().Truncate(time.Second)
	base := recent.Add(-time.Hour)
	item := func(id int64, n int) contract.Item { return contract.Item{ProductID: id, Quantity: n} }

	var (
		one          = batchOrder("alice", base, item(7, 2))
		three        = batchOrder("alice", base, item(7, 2), item(3, 1), item(5, 4))
		rejected     = batchOrder("bob", base, items...)
		unknown      = batchOrder("bob", base, items...)
		noReason     = batchOrder("bob", base, items...)
		aborted      = batchOrder("carol", base, items...)
		compensated  = batchOrder("carol", base, items...)
		settledFirst = batchOrder("dave", base, items...)
		twice        = batchOrder("dave", base, item(7, 2))
		abortedTwice = batchOrder("dave", base, items...)
		retried      = batchOrder("erin", recent.Add(-time.Second), items...) // young enough for a new attempt
		invalid      = batchOrder("erin", base, items...)
		cancelled    = batchOrder("frank", base, items...)
		mismatched   = batchOrder("frank", base, items...)
		mismatched2  = batchOrder("frank", base, item(7, 2))
	)
	secondAttempt := uuid.Must(uuid.NewV7()).String()
	setUp := func(t *testing.T, store *mysql.Store) {
		t.Helper()
		for _, o := range []order.Order{one, three, rejected, unknown, noReason, aborted, compensated, settledFirst,
			twice, abortedTwice, retried, invalid, cancelled, mismatched, mismatched2} {
			if _, _, err := store.Create(ctx, o, "", ""); err != nil {
				t.Fatal(err)
			}
		}
		if _, err := store.Settle(ctx, settledFirst.ID, settledFirst.Attempts[0].ID, priced(settledFirst, 250, 40)); err != nil {
			t.Fatal(err)
		}
		// retried: its first attempt ABORTED, a second one SENT.
		if _, err := store.Settle(ctx, retried.ID, retried.Attempts[0].ID, answer(retried, contract.StatusAborted)); err != nil {
			t.Fatal(err)
		}
		if _, err := store.StartAttempt(ctx, retried.ID, secondAttempt, base.Add(10*time.Second)); err != nil {
			t.Fatal(err)
		}
		// cancelled: CANCELLING, its compensation in the outbox.
		if c, err := store.Cancel(ctx, cancelled.CustomerID, cancelled.ID); err != nil || c.Status != order.StatusCancelling {
			t.Fatalf("Cancel = %s, %v", c.Status, err)
		}
	}

	rejection := answer(rejected, contract.StatusRejected)
	rejection.Reason = contract.ReasonInsufficientStock
	rejection.Shortages = []contract.Shortage{{ProductID: 7, Requested: 2, Available: 1}, {ProductID: 3, Requested: 1, Available: 0}}
	unknownProduct := answer(unknown, contract.StatusRejected)
	unknownProduct.Reason = contract.ReasonUnknownProduct
	unknownProduct.UnknownProducts = []int64{3}
	otherOrder := priced(invalid, 250, 40)
	otherOrder.OrderID = one.ID
	badStatus := answer(invalid, "BOGUS")
	noSuchAttempt := uuid.NewString()
	wrongItems := priced(mismatched, 250, 40)
	wrongItems.Items[0].Quantity++
	otherProduct := priced(mismatched2, 99)
	otherProduct.Items[0].ProductID = 8
	retriedAnswer := priced(retried, 11, 12)
	retriedAnswer.AttemptID = secondAttempt
	req := func(o order.Order, r contract.Reservation) mysql.SettleRequest {
		return mysql.SettleRequest{OrderID: o.ID, AttemptID: r.AttemptID, Answer: r}
	}
	steps := []struct {
		req    mysql.SettleRequest
		status order.Status // of the order answered, when err is nil
		err    error        // the sentinel the error wraps
	}{
		{req(one, priced(one, 250)), order.StatusConfirmed, nil},
		{req(three, priced(three, 250, 40, 7)), order.StatusConfirmed, nil},
		{req(rejected, rejection), order.StatusFailed, nil},
		{req(unknown, unknownProduct), order.StatusFailed, nil},
		{req(noReason, answer(noReason, contract.StatusRejected)), order.StatusFailed, nil},
		{req(aborted, answer(aborted, contract.StatusAborted)), order.StatusPending, nil},
		{req(compensated, answer(compensated, contract.StatusCompensated)), order.StatusPending, nil},
		// Settled before the batch: the current order, no error.
		{req(settledFirst, answer(settledFirst, contract.StatusRejected)), order.StatusConfirmed, nil},
		// Two answers for one order: the second sees the first's result.
		{req(twice, priced(twice, 5)), order.StatusConfirmed, nil},
		{req(twice, answer(twice, contract.StatusRejected)), order.StatusConfirmed, nil},
		{req(abortedTwice, answer(abortedTwice, contract.StatusAborted)), order.StatusPending, nil},
		{req(abortedTwice, priced(abortedTwice, 1, 2)), order.StatusPending, nil},
		// An answer for the attempt settled before, then for the open one.
		{req(retried, priced(retried, 11, 12)), order.StatusPending, nil},
		{req(retried, retriedAnswer), order.StatusConfirmed, nil},
		// Answers that cannot be applied, before one that can.
		{mysql.SettleRequest{OrderID: invalid.ID, AttemptID: invalid.Attempts[0].ID, Answer: contract.Reservation{AttemptID: "other", OrderID: invalid.ID, Status: contract.StatusApplied}}, "", order.ErrInvalidReservation},
		{req(invalid, otherOrder), "", order.ErrInvalidReservation},
		{req(invalid, badStatus), "", order.ErrInvalidReservation},
		{mysql.SettleRequest{OrderID: invalid.ID, AttemptID: noSuchAttempt, Answer: contract.Reservation{AttemptID: noSuchAttempt, Status: contract.StatusApplied}}, "", order.ErrInvalidReservation},
		{req(invalid, answer(invalid, contract.StatusAborted)), order.StatusPending, nil},
		{mysql.SettleRequest{OrderID: uuid.NewString(), AttemptID: noSuchAttempt, Answer: contract.Reservation{AttemptID: noSuchAttempt, Status: contract.StatusApplied}}, "", order.ErrNotFound},
		// Moved on before the answer came: unchanged.
		{req(cancelled, priced(cancelled, 250, 40)), order.StatusCancelling, nil},
		// Applied with other items: COMPENSATING, a compensation in the outbox.
		{req(mismatched, wrongItems), order.StatusCompensating, nil},
		{req(mismatched, priced(mismatched, 250, 40)), order.StatusCompensating, nil},
		{req(mismatched2, otherProduct), order.StatusCompensating, nil},
	}
	batched, single := newStoreDB(t), newStoreDB(t)
	setUp(t, batched.store)
	setUp(t, single.store)

	reqs := make([]mysql.SettleRequest, len(steps))
	for i, s := range steps {
		reqs[i] = s.req
	}
	got, err := batched.store.SettleBatch(ctx, reqs)
	if err != nil {
		t.Fatalf("SettleBatch: %v", err)
	}
	if len(got) != len(reqs) {
		t.Fatalf("%d outcomes for %d requests", len(got), len(reqs))
	}
	for i, s := range steps {
		o, err := single.store.Settle(ctx, s.req.OrderID, s.req.AttemptID, s.req.Answer)
		want := mysql.SettleOutcome{Order: o, Err: err}
		if msg := diffOutcome(got[i], want, recent); msg != "" {
			t.Errorf("request %d: %s", i, msg)
		}
		switch {
		case s.err != nil && !errors.Is(got[i].Err, s.err):
			t.Errorf("request %d: err = %v, want %v", i, got[i].Err, s.err)
		case s.err == nil && (got[i].Err != nil || got[i].Order.Status != s.status):
			t.Errorf("request %d: order %s (err %v), want %s", i, got[i].Order.Status, got[i].Err, s.status)
		}
	}
	for _, q := range []string{
		`SELECT ` + orderCols + ` FROM orders ORDER BY id`,
		`SELECT order_id, line_no, product_id, quantity, unit_price_cents FROM order_lines ORDER BY order_id, line_no`,
		`SELECT attempt_id, order_id, seq, status, created_at, resolved_at FROM order_attempts ORDER BY attempt_id`,
		// ids, message ids and creation times differ; the order of the rows
		// must not.
		`SELECT topic, msg_key, payload, order_id, next_attempt_at, attempts, last_error, sent_at FROM outbox ORDER BY id`,
	} {
		b, s := dump(t, batched.db, q, recent), dump(t, single.db, q, recent)
		if !reflect.DeepEqual(b, s) {
			t.Errorf("%s:\nbatched:       %v\none at a time: %v", q, b, s)
		}
	}
	// The cancellation's compensation and those of the two mismatches.
	if n := count(t, batched.db, "outbox"); n != 3 {
		t.Errorf("outbox has %d rows, want 3", n)
	}
}

// orderCols are the columns of orders, as the store reads them.
const orderCols = `id, customer_id, status, reason, shortages, total_cents, next_check_at, checks, last_error, created_at, updated_at`

// storeDB is a store with its own database.
type storeDB struct {
	store *mysql.Store
	db    *sql.DB
}

func newStoreDB(t *testing.T) storeDB {
	t.Helper()
	store, db := newStore(t)
	return storeDB{store, db}
}

// diffOutcome describes how a batch's outcome differs from Settle's, or
// returns "": orders compared with their recent timestamps blurred, errors
// by their text and the sentinels they wrap.
func diffOutcome(got, want mysql.SettleOutcome, recent time.Time) string {
	if (got.Err == nil) != (want.Err == nil) {
		return fmt.Sprintf("err = %v, Settle's %v", got.Err, want.Err)
	}
	if got.Err != nil {
		if got.Err.Error() != want.Err.Error() {
			return fmt.Sprintf("err = %q, Settle's %q", got.Err, want.Err)
		}
		for _, s := range []error{order.ErrNotFound, order.ErrInvalidReservation, order.ErrAttemptNotOpen} {
			if errors.Is(got.Err, s) != errors.Is(want.Err, s) {
				return fmt.Sprintf("err = %v, Settle's %v: not the same kind", got.Err, want.Err)
			}
		}
	}
	g, w := blur(got.Order, recent), blur(want.Order, recent)
	if !reflect.DeepEqual(g, w) {
		return fmt.Sprintf("order\n%+v\nSettle's\n%+v", g, w)
	}
	return ""
}

// blur returns o with every timestamp from recent on replaced by recent.
func blur(o order.Order, recent time.Time) order.Order {
	at := func(t time.Time) time.Time {
		if !t.Before(recent) {
			return recent
		}
		return t
	}
	ptr := func(t *time.Time) *time.Time {
		if t == nil {
			return nil
		}
		b := at(*t)
		return &b
	}
	o.CreatedAt, o.UpdatedAt, o.NextCheckAt = at(o.CreatedAt), at(o.UpdatedAt), ptr(o.NextCheckAt)
	attempts := make([]order.Attempt, len(o.Attempts))
	for i, a := range o.Attempts {
		a.CreatedAt, a.ResolvedAt = at(a.CreatedAt), ptr(a.ResolvedAt)
		attempts[i] = a
	}
	o.Attempts = attempts
	return o
}

// dump returns the rows q selects as text, timestamps from recent on as
// "recent", outbox payloads without their message id and creation time.
func dump(t *testing.T, db *sql.DB, q string, recent time.Time) []string {
	t.Helper()
	rows, err := db.Query(q)
	if err != nil {
		t.Fatalf("%s: %v", q, err)
	}
	defer rows.Close()
	cols, err := rows.Columns()
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for rows.Next() {
		vals := make([]any, len(cols))
		ptrs := make([]any, len(cols))
		for i := range vals {
			ptrs[i] = &vals[i]
		}
		if err := rows.Scan(ptrs...); err != nil {
			t.Fatal(err)
		}
		fields := make([]string, len(cols))
		for i, v := range vals {
			switch v := v.(type) {
			case nil:
				fields[i] = "NULL"
			case time.Time:
				fields[i] = v.UTC().Format(time.RFC3339Nano)
				if !v.Before(recent) {
					fields[i] = "recent"
				}
			case []byte:
				fields[i] = string(v)
			default:
				fields[i] = fmt.Sprint(v)
			}
			if cols[i] == "payload" {
				var m map[string]any
				if err := json.Unmarshal([]byte(fields[i]), &m); err != nil {
					t.Fatalf("payload %s: %v", fields[i], err)
				}
				delete(m, "messageId")
				delete(m, "createdAt")
				b, _ := json.Marshal(m)
				fields[i] = string(b)
			}
		}
		out = append(out, cols[0]+"="+strings.Join(fields, " | "))
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

// count returns the number of rows of table.
func count(t *testing.T, db *sql.DB, table string) int {
	t.Helper()
	var n int
	if err := db.QueryRow("SELECT COUNT(*) FROM " + table).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

// createTables are the tables Create writes.
var createTables = []string{"orders", "order_lines", "order_attempts", "idempotency_keys"}

// counts returns the number of rows of each of createTables.
func counts(t *testing.T, db *sql.DB) []int {
	t.Helper()
	var n []int
	for _, table := range createTables {
		n = append(n, count(t, db, table))
	}
	return n
}

// createRequests returns n requests for new orders of 1 to 3 lines of five
// customers, every other one with an idempotency key named after prefix.
func createRequests(n int, prefix string, base time.Time) []mysql.CreateRequest {
	reqs := make([]mysql.CreateRequest, n)
	for i := range reqs {
		its := []contract.Item{{ProductID: 7, Quantity: i%4 + 1}, {ProductID: 3, Quantity: 1}, {ProductID: int64(100 + i), Quantity: 2}}[:i%3+1]
		o := batchOrder(fmt.Sprintf("customer-%d", i%5), base.Add(time.Duration(i)*time.Microsecond), its...)
		reqs[i] = mysql.CreateRequest{Order: o}
		if i%2 == 0 {
			reqs[i].IdemKey, reqs[i].RequestHash = fmt.Sprintf("%s-%d", prefix, i), order.RequestHash(its)
		}
	}
	return reqs
}

// TestCreateBatchIsCreateForEach: a batch stores its orders exactly as
// Create does, one at a time, on another database; a batch with a key taken
// before, or two requests with one key, or on a store with a quantity cap,
// writes nothing.
func TestCreateBatchIsCreateForEach(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	base := time.Now().UTC().Truncate(time.Microsecond)
	batched, single := newStoreDB(t), newStoreDB(t)
	reqs := createRequests(50, "k", base)
	if err := batched.store.CreateBatch(ctx, reqs); err != nil {
		t.Fatalf("CreateBatch: %v", err)
	}
	for _, r := range reqs {
		if _, created, err := single.store.Create(ctx, r.Order, r.IdemKey, r.RequestHash); err != nil || !created {
			t.Fatalf("Create = %v, %v", created, err)
		}
	}
	for _, r := range reqs {
		b, err := batched.store.Get(ctx, r.Order.CustomerID, r.Order.ID)
		if err != nil {
			t.Fatalf("Get: %v", err)
		}
		s, err := single.store.Get(ctx, r.Order.CustomerID, r.Order.ID)
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(b, s) || !reflect.DeepEqual(b, r.Order) {
			t.Errorf("order %s:\nbatched  %+v\nCreate's %+v\ngiven    %+v", r.Order.ID, b, s, r.Order)
		}
		if r.IdemKey == "" {
			continue
		}
		b, found, err := batched.store.ByKey(ctx, r.Order.CustomerID, r.IdemKey, r.RequestHash)
		if err != nil || !found || !reflect.DeepEqual(b, s) {
			t.Errorf("ByKey %s = %s, %v, %v; want order %s", r.IdemKey, b.ID, found, err, r.Order.ID)
		}
	}
	never := base.Add(24 * time.Hour)
	for _, table := range createTables {
		q := "SELECT * FROM " + table + " ORDER BY 1, 2"
		if b, s := dump(t, batched.db, q, never), dump(t, single.db, q, never); !reflect.DeepEqual(b, s) {
			t.Errorf("%s:\nbatched: %v\nCreate's: %v", table, b, s)
		}
	}

	before := counts(t, batched.db)
	if want := []int{50, 99, 50, 25}; !reflect.DeepEqual(before, want) {
		t.Fatalf("rows %v, want %v", before, want)
	}
	taken := createRequests(5, "new", base)
	taken[3].Order.CustomerID, taken[3].IdemKey, taken[3].RequestHash = reqs[0].Order.CustomerID, reqs[0].IdemKey, reqs[0].RequestHash
	err := batched.store.CreateBatch(ctx, taken)
	if err == nil || !mysqldb.IsDuplicate(err) {
		t.Errorf("batch with a key taken before: err = %v, want a duplicate", err)
	}
	if n := counts(t, batched.db); !reflect.DeepEqual(n, before) {
		t.Errorf("batch with a key taken before wrote rows: %v, were %v", n, before)
	}
	shared := createRequests(4, "shared", base)
	for _, i := range []int{1, 3} {
		shared[i].Order.CustomerID, shared[i].IdemKey = "customer-1", "one-key"
		shared[i].RequestHash = order.RequestHash(shared[i].Order.Items())
	}
	if err := batched.store.CreateBatch(ctx, shared); err == nil || !mysqldb.IsDuplicate(err) {
		t.Errorf("batch with two requests of one key: err = %v, want a duplicate", err)
	}
	if n := counts(t, batched.db); !reflect.DeepEqual(n, before) {
		t.Errorf("batch with two requests of one key wrote rows: %v, were %v", n, before)
	}
	capped := mysql.New(batched.db)
	capped.LimitQuantity(order.QuantityCap{Limit: 100, Window: time.Hour})
	if err := capped.CreateBatch(ctx, createRequests(3, "capped", base)); err == nil {
		t.Error("batch on a store with a quantity cap: err = nil, want an error")
	}
	if n := counts(t, batched.db); !reflect.DeepEqual(n, before) {
		t.Errorf("batch on a store with a quantity cap wrote rows: %v, were %v", n, before)
	}
}

// TestBatchStatements: a batch runs the same few statements, in fewer round
// trips, whatever its size. The store's pool has one connection, so the
// session's Questions counter sees every statement the store sends.
func TestBatchStatements(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	// Migrating takes a second connection (for its lock); then one only.
	db, trips := schematest.OpenCounted(t, schema.Orders, 2)
	db.SetMaxOpenConns(1)
	store := mysql.New(db)
	var roundTrips int
	statements := func(run func()) int {
		t.Helper()
		// One statement: the connection's id and its counter together.
		const q = `SELECT CONNECTION_ID(), VARIABLE_VALUE FROM information_schema.SESSION_STATUS WHERE VARIABLE_NAME = 'QUESTIONS'`
		var conn1, conn2, n1, n2 int
		if err := db.QueryRow(q).Scan(&conn1, &n1); err != nil {
			t.Fatal(err)
		}
		before := trips.Load()
		run()
		roundTrips = int(trips.Load() - before)
		if err := db.QueryRow(q).Scan(&conn2, &n2); err != nil {
			t.Fatal(err)
		}
		if conn1 != conn2 {
			t.Fatalf("the store's connection changed (%d, then %d): statements cannot be counted", conn1, conn2)
		}
		return n2 - n1 - 1 // the first counter query
	}
	if n := statements(func() {}); n != 0 {
		t.Fatalf("%d statements counted for none", n)
	}

	base := time.Now().UTC().Truncate(time.Microsecond)
	settle := func(reqs []mysql.CreateRequest) func() {
		return func() {
			answers := make([]mysql.SettleRequest, len(reqs))
			for i, r := range reqs {
				o := r.Order
				a := answer(o, []contract.AttemptStatus{contract.StatusApplied, contract.StatusRejected, contract.StatusAborted}[i%3])
				if a.Status == contract.StatusApplied {
					a = priced(o, 10, 20, 30)
				}
				answers[i] = mysql.SettleRequest{OrderID: o.ID, AttemptID: a.AttemptID, Answer: a}
			}
			out, err := store.SettleBatch(ctx, answers)
			if err != nil {
				t.Fatalf("SettleBatch: %v", err)
			}
			for i, o := range out {
				if o.Err != nil || o.Order.Status == order.StatusCompensating {
					t.Fatalf("request %d: %s, %v", i, o.Order.Status, o.Err)
				}
			}
		}
	}
	create := func(reqs []mysql.CreateRequest) func() {
		return func() {
			if err := store.CreateBatch(ctx, reqs); err != nil {
				t.Fatalf("CreateBatch: %v", err)
			}
		}
	}
	small, large := createRequests(3, "small", base), createRequests(100, "large", base)
	// BEGIN, four inserts, COMMIT, all in one round trip.
	for _, reqs := range [][]mysql.CreateRequest{small, large} {
		if n := statements(create(reqs)); n != 6 || roundTrips != 1 {
			t.Errorf("CreateBatch of %d orders ran %d statements in %d round trips, want 6 in 1", len(reqs), n, roundTrips)
		}
	}
	// BEGIN with the lock and the reads of lines and attempts; three
	// updates with the COMMIT.
	for _, reqs := range [][]mysql.CreateRequest{small, large} {
		if n := statements(settle(reqs)); n != 8 || roundTrips != 2 {
			t.Errorf("SettleBatch of %d orders ran %d statements in %d round trips, want 8 in 2", len(reqs), n, roundTrips)
		}
	}
	if n := count(t, db, "order_lines WHERE unit_price_cents IS NOT NULL"); n == 0 {
		t.Error("no line was priced")
	}
}
