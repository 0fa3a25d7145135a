package mysql_test

import (
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/stockfence/stockfence/productservice/internal/stock"
	"github.com/stockfence/stockfence/shared/contract"
)

// ledgerOf returns the ledger figures of an attempt as both reads of the log
// report them, failing if they disagree.
func (e *env) ledgerOf(attemptID string) contract.AttemptLedger {
	e.t.Helper()
	one, err := e.store.AttemptWithLedger(e.ctx, attemptID)
	if err != nil {
		e.t.Fatal(err)
	}
	if one.Ledger == nil {
		e.t.Fatalf("attempt %s read without its ledger", attemptID)
	}
	page, _, err := e.store.Attempts(e.ctx, stock.LogCursor{}, 1000)
	if err != nil {
		e.t.Fatal(err)
	}
	for _, r := range page {
		if r.AttemptID != attemptID {
			continue
		}
		if r.Ledger == nil || *r.Ledger != *one.Ledger {
			e.t.Fatalf("log page ledger of %s = %+v, single read %+v", attemptID, r.Ledger, *one.Ledger)
		}
		return *one.Ledger
	}
	e.t.Fatalf("attempt %s not in the log", attemptID)
	return contract.AttemptLedger{}
}

func (e *env) books() contract.Ledger {
	e.t.Helper()
	books, err := e.store.Ledger(e.ctx)
	if err != nil {
		e.t.Fatal(err)
	}
	return books
}

func TestAttemptLedgerFigures(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	a, b := e.product("A", 10), e.product("B", 5)
	applied := e.reserve(contract.StatusApplied, contract.Item{ProductID: b.ID, Quantity: 2}, contract.Item{ProductID: a.ID, Quantity: 3})
	rejected := e.reserve(contract.StatusRejected, contract.Item{ProductID: a.ID, Quantity: 50})
	compensated := e.reserve(contract.StatusApplied, contract.Item{ProductID: a.ID, Quantity: 4})
	e.compensate(compensated.AttemptID, compensated.OrderID, contract.StatusCompensated)
	fenced := uuid.NewString()
	if _, wasFenced, err := e.store.Resolve(e.ctx, fenced, uuid.NewString()); err != nil || !wasFenced {
		t.Fatalf("resolve of an attempt never seen: fenced %v, err %v; want fenced", wasFenced, err)
	}

	tests := []struct {
		name      string
		attemptID string
		want      contract.AttemptLedger
	}{
		{"applied", applied.AttemptID, contract.AttemptLedger{Taken: 5}},
		{"rejected", rejected.AttemptID, contract.AttemptLedger{}},
		{"compensated", compensated.AttemptID, contract.AttemptLedger{Taken: 4, Returned: 4}},
		{"fenced", fenced, contract.AttemptLedger{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := e.ledgerOf(tt.attemptID); got != tt.want {
				t.Fatalf("ledger = %+v, want %+v", got, tt.want)
			}
		})
	}

	// The answers of reserve, its replay, resolve and the plain read carry
	// no ledger: their bodies are what they always were.
	res, replayed, err := e.store.Reserve(e.ctx, applied)
	if err != nil || !replayed || res.Ledger != nil {
		t.Fatalf("replayed reserve = %+v (replayed %v, err %v), want no ledger", res, replayed, err)
	}
	if res, fenced, err := e.store.Resolve(e.ctx, compensated.AttemptID, compensated.OrderID); err != nil || res.Ledger != nil || fenced {
		t.Fatalf("resolve = %+v (fenced %v, err %v), want no ledger and not fenced", res, fenced, err)
	}
	if res, err := e.store.Attempt(e.ctx, applied.AttemptID); err != nil || res.Ledger != nil {
		t.Fatalf("attempt = %+v (%v), want no ledger", res, err)
	}
	if _, err := e.store.AttemptWithLedger(e.ctx, uuid.NewString()); !errors.Is(err, stock.ErrAttemptNotFound) {
		t.Fatalf("unknown attempt = %v, want ErrAttemptNotFound", err)
	}
}

// TestAttemptLedgerPaging pages the log with its ledger figures in pages
// smaller than the log: every attempt once, each with its own figures.
func TestAttemptLedgerPaging(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	a := e.product("A", 100)
	want := map[string]int64{}
	for i := range 7 {
		req := e.reserve(contract.StatusApplied, contract.Item{ProductID: a.ID, Quantity: i + 1})
		want[req.AttemptID] = int64(i + 1)
	}
	seen := map[string]bool{}
	var after stock.LogCursor
	for pages := 0; ; pages++ {
		if pages > 5 {
			t.Fatal("paging does not end")
		}
		page, next, err := e.store.Attempts(e.ctx, after, 3)
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range page {
			if seen[r.AttemptID] {
				t.Fatalf("attempt %s on two pages", r.AttemptID)
			}
			seen[r.AttemptID] = true
			if r.Ledger == nil || r.Ledger.Taken != want[r.AttemptID] || r.Ledger.Returned != 0 {
				t.Fatalf("ledger of %s = %+v, want taken %d", r.AttemptID, r.Ledger, want[r.AttemptID])
			}
		}
		if next == (stock.LogCursor{}) {
			break
		}
		after = next
	}
	if len(seen) != len(want) {
		t.Fatalf("paged %d attempts, want %d", len(seen), len(want))
	}
}

func TestLedgerBooks(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	a, b := e.product("A", 10), e.product("B", 5)
	applied := e.reserve(contract.StatusApplied, contract.Item{ProductID: a.ID, Quantity: 3}, contract.Item{ProductID: b.ID, Quantity: 1})
	compensated := e.reserve(contract.StatusApplied, contract.Item{ProductID: a.ID, Quantity: 2})
	e.compensate(compensated.AttemptID, compensated.OrderID, contract.StatusCompensated)
	rejected := e.reserve(contract.StatusRejected, contract.Item{ProductID: b.ID, Quantity: 9})

	books := e.books()
	want := []contract.ProductBalance{{ProductID: a.ID, Stock: 7, LedgerSum: 7}, {ProductID: b.ID, Stock: 4, LedgerSum: 4}}
	if fmt.Sprint(books.Products) != fmt.Sprint(want) {
		t.Fatalf("clean products = %+v, want %+v", books.Products, want)
	}
	if books.Unattributed == nil || len(books.Unattributed) != 0 {
		t.Fatalf("clean unattributed = %#v, want an empty list", books.Unattributed)
	}

	// Movements written by hand: one without any attempt, one naming an
	// attempt never logged, a reserve of a REJECTED attempt, and a
	// compensate of an attempt that is still APPLIED.
	ghost := uuid.NewString()
	insert := `INSERT INTO stock_movements (product_id, attempt_id, delta, kind) VALUES (?, ?, ?, ?)`
	for _, m := range []struct {
		product   int64
		attemptID any
		delta     int64
		kind      string
	}{
		{a.ID, nil, -1, "reserve"},
		{b.ID, ghost, -2, "reserve"},
		{b.ID, rejected.AttemptID, -3, "reserve"},
		{a.ID, applied.AttemptID, 3, "compensate"},
	} {
		if _, err := e.db.ExecContext(e.ctx, insert, m.product, m.attemptID, m.delta, m.kind); err != nil {
			t.Fatal(err)
		}
	}
	// And a stock changed outside the ledger.
	if _, err := e.db.ExecContext(e.ctx, `UPDATE products SET stock = stock + 5 WHERE id = ?`, b.ID); err != nil {
		t.Fatal(err)
	}

	books = e.books()
	want = []contract.ProductBalance{{ProductID: a.ID, Stock: 7, LedgerSum: 9}, {ProductID: b.ID, Stock: 9, LedgerSum: -1}}
	if fmt.Sprint(books.Products) != fmt.Sprint(want) {
		t.Fatalf("products = %+v, want %+v", books.Products, want)
	}
	type movement struct {
		product   int64
		attemptID string
		kind      string
		delta     int64
		status    contract.AttemptStatus
	}
	wantMoves := []movement{
		{a.ID, "", "reserve", -1, ""},
		{b.ID, ghost, "reserve", -2, ""},
		{b.ID, rejected.AttemptID, "reserve", -3, contract.StatusRejected},
		{a.ID, applied.AttemptID, "compensate", 3, contract.StatusApplied},
	}
	if len(books.Unattributed) != len(wantMoves) {
		t.Fatalf("unattributed = %+v, want %d movements", books.Unattributed, len(wantMoves))
	}
	for i, m := range books.Unattributed {
		got := movement{m.ProductID, m.AttemptID, m.Kind, m.Delta, m.AttemptStatus}
		if got != wantMoves[i] {
			t.Errorf("unattributed[%d] = %+v, want %+v", i, got, wantMoves[i])
		}
		if m.MovementID <= 0 {
			t.Errorf("unattributed[%d] has movement id %d", i, m.MovementID)
		}
	}
	// The attempts' own figures follow the ledger, hand-written rows too.
	if got, want := e.ledgerOf(applied.AttemptID), (contract.AttemptLedger{Taken: 4, Returned: 3}); got != want {
		t.Fatalf("ledger of the applied attempt = %+v, want %+v", got, want)
	}
}

// TestLedgerIsOneSnapshot reads the books while reservations commit: every
// read balances, because stock and ledger come from one snapshot.
func TestLedgerIsOneSnapshot(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	a := e.product("A", 1000)
	done := make(chan struct{})
	go func() {
		defer close(done)
		for range 100 {
			req := contract.ReserveRequest{AttemptID: uuid.NewString(), OrderID: uuid.NewString(),
				Items: []contract.Item{{ProductID: a.ID, Quantity: 1}}}
			if _, _, err := e.store.Reserve(e.ctx, req); err != nil {
				t.Errorf("reserve: %v", err)
				return
			}
		}
	}()
	deadline := time.After(30 * time.Second)
	for {
		books := e.books()
		if p := books.Products[0]; p.Stock != p.LedgerSum {
			t.Fatalf("stock %d, ledger sum %d while reserving", p.Stock, p.LedgerSum)
		}
		select {
		case <-done:
			return
		case <-deadline:
			t.Fatal("reservations did not finish")
		default:
		}
	}
}
