package reconcile_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/stockfence/stockfence/orderservice/internal/order"
	"github.com/stockfence/stockfence/orderservice/internal/reconcile"
	"github.com/stockfence/stockfence/shared/contract"
)

var since = time.Date(2026, 5, 1, 12, 0, 0, 0, time.UTC)

func items(qs ...int) []contract.ReservedItem {
	out := make([]contract.ReservedItem, len(qs))
	for i, q := range qs {
		out[i] = contract.ReservedItem{ProductID: int64(i + 1), Quantity: q, UnitPriceCents: 100}
	}
	return out
}

func attempt(id, orderID string, status contract.AttemptStatus, taken, returned int64, lines ...int) contract.Reservation {
	return contract.Reservation{AttemptID: id, OrderID: orderID, Status: status, Items: items(lines...),
		Ledger: &contract.AttemptLedger{Taken: taken, Returned: returned}}
}

func ord(id string, status order.Status, updated time.Time, attempts ...order.Attempt) order.Order {
	return order.Order{ID: id, Status: status, Attempts: attempts, CreatedAt: updated, UpdatedAt: updated}
}

func att(id string, status order.AttemptStatus) order.Attempt {
	return order.Attempt{ID: id, Status: status}
}

// clean is a consistent state of both sides: every kind of settled order,
// an unsettled one whose attempt the product side already applied, and a
// settled one that changed after the check began.
func clean() reconcile.Input {
	before := since.Add(-time.Minute)
	return reconcile.Input{
		Since: since,
		Attempts: []contract.Reservation{
			attempt("a1", "o1", contract.StatusApplied, 5, 0, 2, 3),
			{AttemptID: "a2", OrderID: "o2", Status: contract.StatusRejected, Reason: contract.ReasonInsufficientStock, Ledger: &contract.AttemptLedger{}},
			// a3 changed while the log was read: listed twice, the later
			// form counts.
			attempt("a3", "o3", contract.StatusApplied, 3, 0, 3),
			{AttemptID: "a4a", OrderID: "o4", Status: contract.StatusAborted, Ledger: &contract.AttemptLedger{}},
			{AttemptID: "a4b", OrderID: "o4", Status: contract.StatusAborted, Ledger: &contract.AttemptLedger{}},
			attempt("a5", "o5", contract.StatusApplied, 1, 0, 1),
			attempt("a7", "o7", contract.StatusCompensated, 4, 4, 4),
			attempt("a3", "o3", contract.StatusCompensated, 3, 3, 3),
		},
		Ledger: contract.Ledger{
			Products:     []contract.ProductBalance{{ProductID: 1, Stock: 10, LedgerSum: 10}, {ProductID: 2, Stock: 4, LedgerSum: 4}},
			Unattributed: []contract.UnattributedMovement{},
		},
		Orders: []order.Order{
			ord("o1", order.StatusConfirmed, before, att("a1", order.AttemptApplied)),
			ord("o2", order.StatusFailed, before, att("a2", order.AttemptRejected)),
			ord("o3", order.StatusCancelled, before, att("a3", order.AttemptCompensated)),
			ord("o4", order.StatusFailed, before, att("a4a", order.AttemptAborted), att("a4b", order.AttemptAborted)),
			ord("o5", order.StatusPending, before, att("a5", order.AttemptSent)),
			// Confirmed after the log was read: not judged.
			ord("o6", order.StatusConfirmed, since.Add(time.Millisecond), att("a6", order.AttemptApplied)),
			ord("o7", order.StatusFailed, before, att("a7", order.AttemptCompensated)),
		},
	}
}

// edit changes the last log entry of attemptID.
func edit(in *reconcile.Input, attemptID string, fn func(*contract.Reservation)) {
	for i := len(in.Attempts) - 1; i >= 0; i-- {
		if in.Attempts[i].AttemptID == attemptID {
			fn(&in.Attempts[i])
			return
		}
	}
	panic("no attempt " + attemptID)
}

// key is what a test expects of a violation: kind, order, attempt, product.
func key(v reconcile.Violation) string {
	return fmt.Sprintf("%s %s %s %d", v.Kind, v.OrderID, v.AttemptID, v.ProductID)
}

func TestCheckClean(t *testing.T) {
	t.Parallel()
	r := reconcile.Check(clean())
	if !r.OK() || r.Violations == nil || len(r.Violations) != 0 {
		t.Fatalf("violations = %#v, want an empty list", r.Violations)
	}
	if r.CheckedOrders != 7 || r.CheckedAttempts != 7 || r.UnsettledOrders != 1 || r.RecentOrders != 1 {
		t.Fatalf("report = %+v, want 7 orders, 7 attempts, 1 unsettled, 1 recent", r)
	}
	if r := reconcile.Check(reconcile.Input{}); !r.OK() || r.Violations == nil {
		t.Fatalf("empty input = %+v, want ok with an empty list", r)
	}
}

func TestCheckReportsEachCorruption(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		corrupt func(in *reconcile.Input)
		want    []string
	}{
		{
			name:    "stock changed outside the ledger",
			corrupt: func(in *reconcile.Input) { in.Ledger.Products[1].Stock = 5 },
			want:    []string{"stock_mismatch   2"},
		},
		{
			name: "movements no attempt explains",
			corrupt: func(in *reconcile.Input) {
				in.Ledger.Unattributed = []contract.UnattributedMovement{
					{MovementID: 8, ProductID: 1, Kind: contract.MovementReserve, Delta: -1},
					{MovementID: 9, ProductID: 2, AttemptID: "a2", Kind: contract.MovementReserve, Delta: -2, AttemptStatus: contract.StatusRejected},
					{MovementID: 10, ProductID: 1, AttemptID: "ghost", Kind: contract.MovementCompensate, Delta: 3},
				}
			},
			want: []string{"unattributed_movement   1", "unattributed_movement  ghost 1", "unattributed_movement o2 a2 2"},
		},
		{
			name: "an order applied twice",
			corrupt: func(in *reconcile.Input) {
				in.Attempts = append(in.Attempts, attempt("a1b", "o1", contract.StatusApplied, 5, 0, 2, 3))
				in.Orders[0].Attempts = append(in.Orders[0].Attempts, att("a1b", order.AttemptAborted))
			},
			want: []string{"confirmed_not_applied o1 a1 0", "double_applied o1  0"},
		},
		{
			name: "an unsettled order applied twice is judged too",
			corrupt: func(in *reconcile.Input) {
				in.Attempts = append(in.Attempts, attempt("a5b", "o5", contract.StatusApplied, 1, 0, 1))
				in.Orders[4].Attempts = append(in.Orders[4].Attempts, att("a5b", order.AttemptSent))
			},
			want: []string{"double_applied o5  0"},
		},
		{
			name: "stock taken for an order nobody knows",
			corrupt: func(in *reconcile.Input) {
				in.Attempts = append(in.Attempts, attempt("az", "oz", contract.StatusApplied, 2, 0, 2))
			},
			want: []string{"applied_unknown_order oz az 0"},
		},
		{
			name: "a compensated attempt the order does not record",
			corrupt: func(in *reconcile.Input) {
				in.Attempts = append(in.Attempts, attempt("a2x", "o2", contract.StatusCompensated, 1, 1, 1))
			},
			want: []string{"applied_unknown_order o2 a2x 0"},
		},
		{
			name: "an attempt recorded under another order",
			corrupt: func(in *reconcile.Input) {
				edit(in, "a7", func(a *contract.Reservation) { a.OrderID = "o4" })
			},
			want: []string{"applied_unknown_order o4 a7 0"},
		},
		{
			name: "confirmed but aborted on the product side",
			corrupt: func(in *reconcile.Input) {
				edit(in, "a1", func(a *contract.Reservation) {
					a.Status, a.Items, a.Ledger = contract.StatusAborted, nil, &contract.AttemptLedger{}
				})
			},
			want: []string{"confirmed_not_applied o1 a1 0"},
		},
		{
			name: "confirmed but missing from the log",
			corrupt: func(in *reconcile.Input) {
				in.Attempts = slices.DeleteFunc(in.Attempts, func(a contract.Reservation) bool { return a.AttemptID == "a1" })
			},
			want: []string{"confirmed_not_applied o1 a1 0"},
		},
		{
			name: "cancelled but the stock was never given back",
			corrupt: func(in *reconcile.Input) {
				edit(in, "a3", func(a *contract.Reservation) {
					a.Status, a.Ledger = contract.StatusApplied, &contract.AttemptLedger{Taken: 3}
				})
			},
			want: []string{"settled_holds_stock o3 a3 0"},
		},
		{
			name: "failed but its stock is held",
			corrupt: func(in *reconcile.Input) {
				edit(in, "a7", func(a *contract.Reservation) {
					a.Status, a.Ledger = contract.StatusApplied, &contract.AttemptLedger{Taken: 4}
				})
			},
			want: []string{"settled_holds_stock o7 a7 0"},
		},
		{
			name: "compensated but only part came back",
			corrupt: func(in *reconcile.Input) {
				edit(in, "a3", func(a *contract.Reservation) { a.Ledger.Returned = 1 })
			},
			want: []string{"compensation_not_returned o3 a3 0"},
		},
		{
			name: "applied but took less than its items",
			corrupt: func(in *reconcile.Input) {
				edit(in, "a1", func(a *contract.Reservation) { a.Ledger.Taken = 2 })
			},
			want: []string{"compensation_not_returned o1 a1 0"},
		},
		{
			name: "applied but something came back",
			corrupt: func(in *reconcile.Input) {
				edit(in, "a1", func(a *contract.Reservation) { a.Ledger.Returned = 5 })
			},
			want: []string{"compensation_not_returned o1 a1 0"},
		},
		{
			name: "applied without ledger figures",
			corrupt: func(in *reconcile.Input) {
				edit(in, "a5", func(a *contract.Reservation) { a.Ledger = nil })
			},
			want: []string{"compensation_not_returned o5 a5 0"},
		},
		{
			name: "the later form of an attempt counts",
			corrupt: func(in *reconcile.Input) {
				// Compensated first, applied again last: impossible, and
				// so the order is judged on the APPLIED form.
				in.Attempts = append(in.Attempts, attempt("a3", "o3", contract.StatusApplied, 3, 0, 3))
			},
			want: []string{"settled_holds_stock o3 a3 0"},
		},
		{
			name: "a settled order that changed during the check is not judged",
			corrupt: func(in *reconcile.Input) {
				in.Orders[0].UpdatedAt = since
				in.Attempts = slices.DeleteFunc(in.Attempts, func(a contract.Reservation) bool { return a.AttemptID == "a1" })
			},
			want: nil,
		},
		{
			name: "every settled order is judged with a zero Since",
			corrupt: func(in *reconcile.Input) {
				in.Since = time.Time{}
			},
			want: []string{"confirmed_not_applied o6 a6 0"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			in := clean()
			tt.corrupt(&in)
			r := reconcile.Check(in)
			var got []string
			for _, v := range r.Violations {
				got = append(got, key(v))
				if v.Detail == "" {
					t.Errorf("violation %s has no detail", key(v))
				}
			}
			if !slices.Equal(got, tt.want) {
				t.Fatalf("violations = %q, want %q\n%+v", got, tt.want, r.Violations)
			}
			if r.OK() != (len(tt.want) == 0) {
				t.Fatalf("OK = %v with %d violations", r.OK(), len(got))
			}
		})
	}
}

func TestCheckDetails(t *testing.T) {
	t.Parallel()
	in := clean()
	in.Ledger.Products[0].Stock = 7
	in.Attempts = append(in.Attempts, attempt("a1b", "o1", contract.StatusApplied, 5, 0, 2, 3))
	in.Orders[0].Attempts = append(in.Orders[0].Attempts, att("a1b", order.AttemptAborted))
	details := map[reconcile.Kind]string{}
	for _, v := range reconcile.Check(in).Violations {
		details[v.Kind] = v.Detail
	}
	for kind, want := range map[reconcile.Kind]string{
		reconcile.KindStockMismatch: "stock is 7 but the ledger sums to 10",
		reconcile.KindDoubleApplied: "2 APPLIED attempts for this order: a1, a1b",
	} {
		if !strings.Contains(details[kind], want) {
			t.Errorf("%s detail = %q, want it to say %q", kind, details[kind], want)
		}
	}
}

// fakeProducts serves a log in pages and a ledger, and notes the calls.
type fakeProducts struct {
	pages   []contract.ReservationPage
	ledger  contract.Ledger
	err     error
	cursors []string
	calls   *[]string
}

func (f *fakeProducts) Reservations(_ context.Context, cursor string) (contract.ReservationPage, error) {
	*f.calls = append(*f.calls, "log")
	f.cursors = append(f.cursors, cursor)
	if f.err != nil {
		return contract.ReservationPage{}, f.err
	}
	return f.pages[len(f.cursors)-1], nil
}

func (f *fakeProducts) Ledger(context.Context) (contract.Ledger, error) {
	*f.calls = append(*f.calls, "ledger")
	return f.ledger, nil
}

// fakeOrders pages through orders sorted by id.
type fakeOrders struct {
	orders []order.Order
	calls  *[]string
}

func (f *fakeOrders) OrdersAfter(_ context.Context, afterID string, limit int) ([]order.Order, error) {
	*f.calls = append(*f.calls, "orders")
	var out []order.Order
	for _, o := range f.orders {
		if o.ID > afterID && len(out) < limit {
			out = append(out, o)
		}
	}
	return out, nil
}

func TestRunReadsProductsFirstAndPages(t *testing.T) {
	t.Parallel()
	in := clean()
	var calls []string
	products := &fakeProducts{
		pages: []contract.ReservationPage{
			{Reservations: in.Attempts[:3], Next: "c1"},
			{Reservations: in.Attempts[3:6], Next: "c2"},
			{Reservations: in.Attempts[6:]},
		},
		ledger: in.Ledger,
		calls:  &calls,
	}
	// Enough unsettled orders to take two pages of the orders database.
	orders := slices.Clone(in.Orders)
	for i := range 600 {
		orders = append(orders, ord(fmt.Sprintf("p%04d", i), order.StatusPending, since.Add(-time.Hour)))
	}
	slices.SortFunc(orders, func(a, b order.Order) int { return strings.Compare(a.ID, b.ID) })
	r := reconcile.New(products, &fakeOrders{orders: orders, calls: &calls}, reconcile.Config{Now: func() time.Time { return since }})

	report, err := r.Run(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if !report.OK() || report.CheckedOrders != 607 || report.CheckedAttempts != 7 || report.UnsettledOrders != 601 || report.RecentOrders != 1 {
		t.Fatalf("report = %+v", report)
	}
	if want := []string{"", "c1", "c2"}; !slices.Equal(products.cursors, want) {
		t.Fatalf("cursors = %q, want %q", products.cursors, want)
	}
	if want := []string{"log", "log", "log", "ledger", "orders", "orders"}; !slices.Equal(calls, want) {
		t.Fatalf("calls = %q, want %q: the product side is read before the orders", calls, want)
	}
}

func TestRunFailures(t *testing.T) {
	t.Parallel()
	var calls []string
	down := &fakeProducts{err: errors.New("connection refused"), calls: &calls}
	_, err := reconcile.New(down, &fakeOrders{calls: &calls}, reconcile.Config{}).Run(context.Background())
	if !errors.Is(err, reconcile.ErrProductUnavailable) {
		t.Fatalf("product down: %v, want ErrProductUnavailable", err)
	}
	looping := &fakeProducts{pages: []contract.ReservationPage{{Next: "c"}, {Next: "c"}}, calls: &calls}
	_, err = reconcile.New(looping, &fakeOrders{calls: &calls}, reconcile.Config{}).Run(context.Background())
	if !errors.Is(err, reconcile.ErrProductUnavailable) {
		t.Fatalf("repeating cursor: %v, want ErrProductUnavailable", err)
	}
	if slices.Contains(calls, "orders") {
		t.Fatal("orders read although the product side could not be")
	}
}
