// Package reconcile proves, across both databases, that stock is conserved
// and that every unit the product side holds is explained by exactly one
// order: it compares the product service's attempt log and ledger with the
// orders database and reports every disagreement as a Violation with a
// stable Kind.
//
// Check is the comparison itself, pure and tested in memory. Reconciler
// gathers its input over small interfaces: first the product side (the whole
// attempt log, then the ledger), then the orders, so that every attempt the
// log shows belongs to an order the orders read can see. Settled orders that
// changed after the check began are left unjudged (their product-side change
// may have been read before it happened), like unsettled orders, whose
// attempts may legitimately be in flight.
package reconcile

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/stockfence/stockfence/orderservice/internal/order"
	"github.com/stockfence/stockfence/shared/contract"
)

// Kind names what a violation is; the words are stable (dashboards and
// scripts match on them).
type Kind string

// Violation kinds.
const (
	// KindStockMismatch: a product whose stock differs from the sum of its
	// ledger (stock changed outside the ledger, or a lost movement).
	KindStockMismatch Kind = "stock_mismatch"
	// KindUnattributedMovement: a reserve or compensate movement that no
	// attempt explains (attempt missing, or in a status that does not allow
	// it).
	KindUnattributedMovement Kind = "unattributed_movement"
	// KindDoubleApplied: an order with more than one APPLIED attempt on the
	// product side, i.e. its stock taken twice. Judged for every order,
	// settled or not: no instant of any flow allows it.
	KindDoubleApplied Kind = "double_applied"
	// KindAppliedUnknownOrder: an APPLIED or COMPENSATED product-side
	// attempt whose order, or whose attempt id under that order, the orders
	// database does not know: stock taken for nobody.
	KindAppliedUnknownOrder Kind = "applied_unknown_order"
	// KindConfirmedNotApplied: a CONFIRMED order without exactly one APPLIED
	// attempt on the product side (sold without stock, or twice).
	KindConfirmedNotApplied Kind = "confirmed_not_applied"
	// KindSettledHoldsStock: a FAILED or CANCELLED order with an APPLIED
	// attempt on the product side (a leak: stock held for nothing).
	KindSettledHoldsStock Kind = "settled_holds_stock"
	// KindCompensationNotReturned: an attempt whose ledger disagrees with its
	// status: COMPENSATED but not all it took came back (or it took other
	// than its items), or APPLIED but it took other than its items or
	// something came back.
	KindCompensationNotReturned Kind = "compensation_not_returned"
)

// Violation is one disagreement. OrderID, AttemptID and ProductID are set
// when the violation is about one (ProductID 0 otherwise); Detail says what
// was seen, for people.
type Violation struct {
	Kind      Kind
	OrderID   string
	AttemptID string
	ProductID int64
	Detail    string
}

// Report is the outcome of one check. CheckedOrders counts every order read
// from the orders database, of which UnsettledOrders (PENDING, COMPENSATING,
// CANCELLING) and RecentOrders (settled, but changed after the check began)
// were not judged. CheckedAttempts counts the distinct attempts of the
// product log. Violations is sorted by kind, order, attempt and product, and
// never nil.
type Report struct {
	CheckedOrders   int
	CheckedAttempts int
	UnsettledOrders int
	RecentOrders    int
	Violations      []Violation
}

// OK reports whether the check found nothing wrong.
func (r Report) OK() bool { return len(r.Violations) == 0 }

// Input is what Check compares. Attempts is the product side's log as read
// page by page; an attempt listed twice (it changed while the log was read)
// counts in its last form. Since is when the reading began: settled orders
// whose UpdatedAt is not before it are not judged. The zero Since judges
// every settled order.
type Input struct {
	Attempts []contract.Reservation
	Ledger   contract.Ledger
	Orders   []order.Order
	Since    time.Time
}

// Check compares the product side's log and ledger with the orders and
// returns every violation found. It does no I/O.
func Check(in Input) Report {
	c := checker{
		attempts:       make(map[string]contract.Reservation, len(in.Attempts)),
		appliedByOrder: map[string][]string{},
		orders:         make(map[string]order.Order, len(in.Orders)),
		attemptOrder:   map[string]string{},
	}
	for _, a := range in.Attempts {
		c.attempts[a.AttemptID] = a
	}
	for _, o := range in.Orders {
		c.orders[o.ID] = o
		for _, a := range o.Attempts {
			c.attemptOrder[a.ID] = o.ID
		}
	}
	c.checkLedger(in.Ledger)
	c.checkAttempts()
	report := Report{CheckedOrders: len(in.Orders), CheckedAttempts: len(c.attempts)}
	for _, o := range in.Orders {
		switch {
		case !o.Status.Settled():
			report.UnsettledOrders++
		case !in.Since.IsZero() && !o.UpdatedAt.Before(in.Since):
			report.RecentOrders++
		default:
			c.checkOrder(o)
		}
	}
	slices.SortFunc(c.violations, func(a, b Violation) int {
		return cmp.Or(cmp.Compare(a.Kind, b.Kind), cmp.Compare(a.OrderID, b.OrderID),
			cmp.Compare(a.AttemptID, b.AttemptID), cmp.Compare(a.ProductID, b.ProductID), cmp.Compare(a.Detail, b.Detail))
	})
	report.Violations = c.violations
	if report.Violations == nil {
		report.Violations = []Violation{}
	}
	return report
}

// checker holds the indexes one Check builds and the violations it finds.
type checker struct {
	// attempts is the product log by attempt id, last form wins.
	attempts map[string]contract.Reservation
	// appliedByOrder lists the APPLIED attempts of each order id the
	// product log names, in attempt id order once checkAttempts ran.
	appliedByOrder map[string][]string
	orders         map[string]order.Order
	// attemptOrder maps every attempt id the orders database knows to its
	// order.
	attemptOrder map[string]string
	violations   []Violation
}

func (c *checker) add(v Violation) { c.violations = append(c.violations, v) }

// checkLedger reports the product side's own books: stock against ledger,
// and movements that no attempt explains.
func (c *checker) checkLedger(l contract.Ledger) {
	for _, p := range l.Products {
		if p.Stock != p.LedgerSum {
			c.add(Violation{Kind: KindStockMismatch, ProductID: p.ProductID,
				Detail: fmt.Sprintf("stock is %d but the ledger sums to %d", p.Stock, p.LedgerSum)})
		}
	}
	for _, m := range l.Unattributed {
		why := "names no attempt"
		switch {
		case m.AttemptID == "":
		case m.AttemptStatus == "":
			why = "names an attempt the log does not have"
		default:
			why = fmt.Sprintf("belongs to an attempt that is %s", m.AttemptStatus)
		}
		v := Violation{Kind: KindUnattributedMovement, AttemptID: m.AttemptID, ProductID: m.ProductID,
			Detail: fmt.Sprintf("%s movement %d of %+d units %s", m.Kind, m.MovementID, m.Delta, why)}
		if a, ok := c.attempts[m.AttemptID]; ok {
			v.OrderID = a.OrderID
		}
		c.add(v)
	}
}

// checkAttempts reports what the product log shows by itself (an attempt's
// ledger against its status, two APPLIED attempts of one order) and the
// attempts that took stock for an order or attempt the orders database does
// not know.
func (c *checker) checkAttempts() {
	for _, a := range c.attempts {
		if a.Status != contract.StatusApplied && a.Status != contract.StatusCompensated {
			continue
		}
		if a.Status == contract.StatusApplied {
			c.appliedByOrder[a.OrderID] = append(c.appliedByOrder[a.OrderID], a.AttemptID)
		}
		c.checkAttemptLedger(a)
		if owner, known := c.attemptOrder[a.AttemptID]; !known || owner != a.OrderID {
			detail := fmt.Sprintf("%s attempt of an order the orders database does not know", a.Status)
			switch {
			case known:
				detail = fmt.Sprintf("%s attempt that the orders database records under order %s", a.Status, owner)
			case c.orders[a.OrderID].ID != "":
				detail = fmt.Sprintf("%s attempt that the orders database does not record for this order", a.Status)
			}
			c.add(Violation{Kind: KindAppliedUnknownOrder, OrderID: a.OrderID, AttemptID: a.AttemptID, Detail: detail})
		}
	}
	for orderID, applied := range c.appliedByOrder {
		slices.Sort(applied)
		if len(applied) > 1 {
			c.add(Violation{Kind: KindDoubleApplied, OrderID: orderID,
				Detail: fmt.Sprintf("the product side holds %d APPLIED attempts for this order: %s", len(applied), strings.Join(applied, ", "))})
		}
	}
}

// checkAttemptLedger compares what the ledger shows for an attempt that took
// stock with its items and status. A log entry without ledger figures counts
// as a ledger that shows nothing.
func (c *checker) checkAttemptLedger(a contract.Reservation) {
	var want int64
	for _, it := range a.Items {
		want += int64(it.Quantity)
	}
	var got contract.AttemptLedger
	if a.Ledger != nil {
		got = *a.Ledger
	}
	bad := got.Taken != want
	if a.Status == contract.StatusApplied {
		bad = bad || got.Returned != 0
	} else {
		bad = bad || got.Returned != got.Taken
	}
	if bad {
		c.add(Violation{Kind: KindCompensationNotReturned, OrderID: a.OrderID, AttemptID: a.AttemptID,
			Detail: fmt.Sprintf("%s attempt for %d units: the ledger shows %d taken and %d returned", a.Status, want, got.Taken, got.Returned)})
	}
}

// checkOrder judges a settled order against the product log.
func (c *checker) checkOrder(o order.Order) {
	applied := c.appliedByOrder[o.ID]
	switch o.Status {
	case order.StatusConfirmed:
		if len(applied) == 1 {
			return
		}
		v := Violation{Kind: KindConfirmedNotApplied, OrderID: o.ID,
			Detail: fmt.Sprintf("CONFIRMED order with %d APPLIED attempts on the product side", len(applied))}
		for _, a := range o.Attempts {
			if a.Status == order.AttemptApplied {
				v.AttemptID = a.ID
				v.Detail += fmt.Sprintf("; the orders database records attempt %s as APPLIED and the product side has it %s",
					a.ID, c.productStatus(a.ID))
			}
		}
		c.add(v)
	case order.StatusFailed, order.StatusCancelled:
		for _, id := range applied {
			c.add(Violation{Kind: KindSettledHoldsStock, OrderID: o.ID, AttemptID: id,
				Detail: fmt.Sprintf("%s order whose attempt still holds %d units on the product side", o.Status, c.held(id))})
		}
	}
}

// productStatus is how the product log has an attempt, for details.
func (c *checker) productStatus(attemptID string) string {
	a, ok := c.attempts[attemptID]
	if !ok {
		return "not in its log"
	}
	return string(a.Status)
}

// held is how many units an APPLIED attempt's items hold.
func (c *checker) held(attemptID string) int64 {
	var n int64
	for _, it := range c.attempts[attemptID].Items {
		n += int64(it.Quantity)
	}
	return n
}

// ErrProductUnavailable means the product side's log or ledger could not be
// read, so nothing was checked.
var ErrProductUnavailable = errors.New("product service books unavailable")

// Products reads the product side's books (internal/productclient.Client).
type Products interface {
	// Reservations returns the page of the attempt log after cursor ("":
	// the first), each attempt with its ledger figures; an empty Next ends
	// the log.
	Reservations(ctx context.Context, cursor string) (contract.ReservationPage, error)
	// Ledger returns every product's stock and ledger sum and the
	// movements no attempt explains.
	Ledger(ctx context.Context) (contract.Ledger, error)
}

// Orders reads the orders database (internal/mysql.Store).
type Orders interface {
	// OrdersAfter returns up to limit orders with ids greater than
	// afterID, in id order, with their attempts; fewer than limit means no
	// more.
	OrdersAfter(ctx context.Context, afterID string, limit int) ([]order.Order, error)
}

// DefaultTimeout is the default Config.Timeout.
const DefaultTimeout = 15 * time.Second

// ordersPageSize is how many orders one read of the orders database takes.
const ordersPageSize = 500

// Config configures a Reconciler.
type Config struct {
	// Timeout bounds one whole run (DefaultTimeout when zero).
	Timeout time.Duration
	// Now is the clock that stamps the start of a run, to be compared with
	// the orders' updated_at (written by the services' clocks); time.Now
	// when nil.
	Now func() time.Time
}

// Reconciler runs checks over the live databases. It is safe for
// concurrent use.
type Reconciler struct {
	products Products
	orders   Orders
	timeout  time.Duration
	now      func() time.Time
}

// New returns a Reconciler reading products and orders.
func New(products Products, orders Orders, cfg Config) *Reconciler {
	if cfg.Timeout <= 0 {
		cfg.Timeout = DefaultTimeout
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	return &Reconciler{products: products, orders: orders, timeout: cfg.Timeout, now: cfg.Now}
}

// Run reads the product side's whole attempt log and its ledger, then every
// order, and returns Check's report, within Timeout. It only reads. A
// product side that cannot be read is an error wrapping
// ErrProductUnavailable; an orders database that cannot be read is returned
// as it is.
func (r *Reconciler) Run(ctx context.Context) (Report, error) {
	ctx, cancel := context.WithTimeout(ctx, r.timeout)
	defer cancel()
	in := Input{Since: r.now().UTC()}
	var err error
	if in.Attempts, err = r.readLog(ctx); err != nil {
		return Report{}, err
	}
	if in.Ledger, err = r.products.Ledger(ctx); err != nil {
		return Report{}, fmt.Errorf("%w: %w", ErrProductUnavailable, err)
	}
	if in.Orders, err = r.readOrders(ctx); err != nil {
		return Report{}, err
	}
	return Check(in), nil
}

// readLog pages through the whole attempt log.
func (r *Reconciler) readLog(ctx context.Context) ([]contract.Reservation, error) {
	var (
		all    []contract.Reservation
		cursor string
	)
	for {
		page, err := r.products.Reservations(ctx, cursor)
		if err != nil {
			return nil, fmt.Errorf("%w: %w", ErrProductUnavailable, err)
		}
		all = append(all, page.Reservations...)
		if page.Next == "" {
			return all, nil
		}
		if page.Next == cursor {
			return nil, fmt.Errorf("%w: the attempt log repeats cursor %q", ErrProductUnavailable, cursor)
		}
		cursor = page.Next
	}
}

// readOrders pages through every order by id.
func (r *Reconciler) readOrders(ctx context.Context) ([]order.Order, error) {
	var (
		all   []order.Order
		after string
	)
	for {
		page, err := r.orders.OrdersAfter(ctx, after, ordersPageSize)
		if err != nil {
			return nil, fmt.Errorf("read orders: %w", err)
		}
		all = append(all, page...)
		if len(page) < ordersPageSize {
			return all, nil
		}
		after = page[len(page)-1].ID
	}
}
