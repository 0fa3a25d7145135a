// Package oracle checks the invariants of the order and stock system by
// reading its two databases directly, independently of the services' code:
// stock is conserved and explained by the reservation log, every reservation
// that holds stock belongs to an order that keeps it, and, once the faults are
// over, every order is settled and every compensation was published.
//
// The products database is read first, in one consistent snapshot (the
// product rows, the ledger summed by product and kind, the reserve and
// compensate movements, the reservation log); then the orders database, in
// one consistent snapshot of its own (orders, lines of confirmed orders,
// attempts, unsent outbox rows). The two are joined in Go by attempt id and
// order id; no SQL spans both servers. Because the order service records an
// attempt before it sends it, an attempt the product snapshot knows is always
// known to the later orders snapshot. Findings that could be produced by work
// committed between the two snapshots (an order confirmed or cancelled in the
// meantime) are re-read from the products database after the orders snapshot
// and kept only if they still hold, so Check can also run while traffic flows.
package oracle

import (
	"cmp"
	"context"
	"database/sql"
	"fmt"
	"slices"
	"strings"
)

// Violation kinds.
const (
	KindStockMismatch            = "stock_mismatch"
	KindStockNotExplained        = "stock_not_explained"
	KindNegativeStock            = "negative_stock"
	KindUnattributedMovement     = "unattributed_movement"
	KindAppliedUnknownOrder      = "applied_unknown_order"
	KindAppliedOrderNotConfirmed = "applied_order_not_confirmed"
	KindConfirmedNotApplied      = "confirmed_not_applied"
	KindDoubleApplied            = "double_applied"
	KindSettledHoldsStock        = "settled_holds_stock"
	KindCompensationNotReturned  = "compensation_not_returned"
	KindAttemptStatusDisagrees   = "attempt_status_disagrees"
	KindConfirmedUnpriced        = "confirmed_unpriced"
	KindUnsettled                = "unsettled"
	KindOutboxNotDrained         = "outbox_not_drained"
)

// Violation is one broken invariant. OrderID, AttemptID and ProductID are set
// when the violation concerns one.
type Violation struct {
	Kind, OrderID, AttemptID string
	ProductID                int64
	Detail                   string
}

func (v Violation) String() string {
	var b strings.Builder
	b.WriteString(v.Kind)
	if v.OrderID != "" {
		fmt.Fprintf(&b, " order=%s", v.OrderID)
	}
	if v.AttemptID != "" {
		fmt.Fprintf(&b, " attempt=%s", v.AttemptID)
	}
	if v.ProductID != 0 {
		fmt.Fprintf(&b, " product=%d", v.ProductID)
	}
	if v.Detail != "" {
		b.WriteString(": ")
		b.WriteString(v.Detail)
	}
	return b.String()
}

// Report is what Check found.
type Report struct {
	Orders, Attempts, Products int // how many were checked (attempts: distinct ids on either side)
	Unsettled                  int // orders PENDING, CANCELLING or COMPENSATING
	UnsentOutbox               int
	Violations                 []Violation
}

// OK reports whether no invariant is broken.
func (r Report) OK() bool { return len(r.Violations) == 0 }

// Kinds returns how many violations of each kind the report holds.
func (r Report) Kinds() map[string]int {
	m := make(map[string]int)
	for _, v := range r.Violations {
		m[v.Kind]++
	}
	return m
}

func (r Report) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "checked %d orders, %d attempts, %d products; %d unsettled, %d unsent outbox rows; %d violations",
		r.Orders, r.Attempts, r.Products, r.Unsettled, r.UnsentOutbox, len(r.Violations))
	for _, v := range r.Violations {
		b.WriteString("\n  ")
		b.WriteString(v.String())
	}
	return b.String()
}

// Options tune Check.
type Options struct {
	// Settled says the faults are over and the system had time to recover:
	// every order must be settled and the outbox drained.
	Settled bool
}

// Attempt and order statuses as stored.
const (
	statusSent        = "SENT"
	statusApplied     = "APPLIED"
	statusRejected    = "REJECTED"
	statusAborted     = "ABORTED"
	statusCompensated = "COMPENSATED"

	orderPending      = "PENDING"
	orderConfirmed    = "CONFIRMED"
	orderFailed       = "FAILED"
	orderCompensating = "COMPENSATING"
	orderCancelling   = "CANCELLING"
	orderCancelled    = "CANCELLED"
)

func unsettledStatus(s string) bool {
	return s == orderPending || s == orderCancelling || s == orderCompensating
}

// betweenSnapshotsKey carries a function that Check calls after the products
// snapshot and before the orders snapshot; tests use it to commit work in
// between, as live traffic would.
type betweenSnapshotsKey struct{}

// Check reads both databases and reports every broken invariant. An error
// means the databases could not be read, not that an invariant is broken.
func Check(ctx context.Context, products, orders *sql.DB, opts Options) (Report, error) {
	ps, err := readProducts(ctx, products)
	if err != nil {
		return Report{}, err
	}
	if hook, ok := ctx.Value(betweenSnapshotsKey{}).(func()); ok {
		hook()
	}
	osn, err := readOrders(ctx, orders)
	if err != nil {
		return Report{}, err
	}
	c := &checker{opts: opts, ps: ps, os: osn}
	c.checkProducts()
	c.checkMovements()
	c.checkAttempts()
	c.checkOrders()
	if err := c.recheck(ctx, products); err != nil {
		return Report{}, err
	}

	ids := make(map[string]struct{}, len(ps.attempts)+len(osn.attempts))
	for id := range ps.attempts {
		ids[id] = struct{}{}
	}
	for id := range osn.attempts {
		ids[id] = struct{}{}
	}
	rep := Report{
		Orders:       len(osn.orders),
		Attempts:     len(ids),
		Products:     len(ps.stock),
		UnsentOutbox: len(osn.unsent),
		Violations:   c.out,
	}
	for _, o := range osn.orders {
		if unsettledStatus(o.status) {
			rep.Unsettled++
		}
	}
	slices.SortFunc(rep.Violations, func(a, b Violation) int {
		return cmp.Or(
			cmp.Compare(a.Kind, b.Kind),
			cmp.Compare(a.ProductID, b.ProductID),
			cmp.Compare(a.OrderID, b.OrderID),
			cmp.Compare(a.AttemptID, b.AttemptID),
			cmp.Compare(a.Detail, b.Detail),
		)
	})
	return rep, nil
}
