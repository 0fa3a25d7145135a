package oracle

import (
	"context"
	"database/sql"
	"fmt"
	"slices"
	"strings"
)

type checker struct {
	opts Options
	ps   *productSnapshot
	os   *ordersSnapshot
	out  []Violation

	// Findings that join the products snapshot with the later orders
	// snapshot, kept only if a re-read of the products database confirms
	// them (see recheck).
	byAttempt []candidate // re-read by attempt id
	byOrder   []candidate // re-read by order id
}

// candidate is a finding to confirm against a fresh read of the reservation
// log; confirm returns the violation to report, or false to drop it.
type candidate struct {
	key     string // attempt id or order id
	confirm func(fresh *recheckView) (Violation, bool)
}

type recheckView struct {
	attempts map[string]*prodAttempt   // attempt id -> row
	orders   map[string][]*prodAttempt // order id -> rows
}

func (c *checker) report(v Violation) { c.out = append(c.out, v) }

// checkProducts: stock = SUM(ledger); stock = initial + restocks - what the
// APPLIED attempts' items took; stock >= 0.
func (c *checker) checkProducts() {
	taken := make(map[int64]int64)
	for _, a := range c.ps.attempts {
		if a.status != statusApplied {
			continue
		}
		for p, q := range a.items {
			taken[p] += q
		}
	}
	for id, stock := range c.ps.stock {
		l := c.ps.ledger[id]
		if l == nil {
			l = &ledgerSums{}
		}
		if stock != l.total {
			c.report(Violation{Kind: KindStockMismatch, ProductID: id,
				Detail: fmt.Sprintf("stock %d, ledger sums to %d", stock, l.total)})
		}
		if want := l.initial + l.restock - taken[id]; stock != want {
			c.report(Violation{Kind: KindStockNotExplained, ProductID: id,
				Detail: fmt.Sprintf("stock %d, but initial %d + restocks %d - applied reservations %d = %d",
					stock, l.initial, l.restock, taken[id], want)})
		}
		if stock < 0 {
			c.report(Violation{Kind: KindNegativeStock, ProductID: id, Detail: fmt.Sprintf("stock %d", stock)})
		}
	}
}

// checkMovements: every reserve/compensate movement belongs to an attempt
// whose status allows it and matches that attempt's items.
func (c *checker) checkMovements() {
	for _, m := range c.ps.movements {
		v := Violation{Kind: KindUnattributedMovement, ProductID: m.productID, AttemptID: m.attemptID.String}
		what := fmt.Sprintf("%s movement of %+d", m.kind, m.delta)
		if !m.attemptID.Valid || m.attemptID.String == "" {
			v.Detail = what + " names no attempt"
			c.report(v)
			continue
		}
		a := c.ps.attempts[m.attemptID.String]
		if a == nil {
			v.Detail = what + " for an attempt the reservation log does not know"
			c.report(v)
			continue
		}
		v.OrderID = a.orderID
		allowed := a.status == statusCompensated || (m.kind == "reserve" && a.status == statusApplied)
		if !allowed {
			v.Detail = fmt.Sprintf("%s for an attempt that is %s", what, a.status)
			c.report(v)
			continue
		}
		if a.items == nil {
			continue // unreadable items are reported by checkAttempts
		}
		q, ok := a.items[m.productID]
		if !ok {
			v.Detail = what + " for a product that is not among the attempt's items"
			c.report(v)
			continue
		}
		want := q
		if m.kind == "reserve" {
			want = -q
		}
		if m.delta != want {
			v.Detail = fmt.Sprintf("%s, the attempt's items say %+d", what, want)
			c.report(v)
		}
	}
}

// checkAttempts: the product side's attempts, on their own and against the
// orders snapshot.
func (c *checker) checkAttempts() {
	appliedByOrder := make(map[string][]string)
	for _, a := range c.ps.attempts {
		if a.status == statusApplied {
			appliedByOrder[a.orderID] = append(appliedByOrder[a.orderID], a.id)
		}
		if a.status != statusApplied && a.status != statusCompensated {
			continue
		}
		if a.itemsErr != nil {
			c.report(Violation{Kind: KindStockNotExplained, OrderID: a.orderID, AttemptID: a.id,
				Detail: fmt.Sprintf("%s attempt: %v", a.status, a.itemsErr)})
		}
		for p, q := range a.items {
			if _, ok := c.ps.stock[p]; !ok {
				c.report(Violation{Kind: KindStockNotExplained, OrderID: a.orderID, AttemptID: a.id, ProductID: p,
					Detail: fmt.Sprintf("%s attempt reserved %d of a product the catalog does not have", a.status, q)})
				continue
			}
			if _, ok := a.reserve[p]; !ok {
				c.report(Violation{Kind: KindStockNotExplained, OrderID: a.orderID, AttemptID: a.id, ProductID: p,
					Detail: fmt.Sprintf("%s attempt reserved %d but the ledger has no reserve movement for it", a.status, q)})
			}
		}
		if a.status == statusCompensated {
			c.checkCompensation(a)
		}
		if a.status == statusApplied {
			c.checkAppliedOrder(a)
		}
	}
	for orderID, ids := range appliedByOrder {
		if len(ids) > 1 {
			slices.Sort(ids)
			c.report(Violation{Kind: KindDoubleApplied, OrderID: orderID,
				Detail: fmt.Sprintf("%d attempts APPLIED: %s", len(ids), strings.Join(ids, ", "))})
		}
	}
}

// checkCompensation: a COMPENSATED attempt gave back exactly what it took.
func (c *checker) checkCompensation(a *prodAttempt) {
	products := make(map[int64]struct{})
	for p := range a.items {
		products[p] = struct{}{}
	}
	for p := range a.reserve {
		products[p] = struct{}{}
	}
	for p := range a.compensate {
		products[p] = struct{}{}
	}
	for p := range products {
		if a.compensate[p] != -a.reserve[p] {
			c.report(Violation{Kind: KindCompensationNotReturned, OrderID: a.orderID, AttemptID: a.id, ProductID: p,
				Detail: fmt.Sprintf("COMPENSATED attempt reserved %d and gave back %d", -a.reserve[p], a.compensate[p])})
		}
	}
}

// checkAppliedOrder: an APPLIED attempt belongs to a known order that keeps
// its stock.
func (c *checker) checkAppliedOrder(a *prodAttempt) {
	oa := c.os.attempts[a.id]
	switch {
	case oa == nil:
		c.report(Violation{Kind: KindAppliedUnknownOrder, OrderID: a.orderID, AttemptID: a.id,
			Detail: "APPLIED attempt that the orders database does not know"})
		return
	case oa.orderID != a.orderID:
		c.report(Violation{Kind: KindAppliedUnknownOrder, OrderID: a.orderID, AttemptID: a.id,
			Detail: fmt.Sprintf("APPLIED attempt that the orders database records for order %s", oa.orderID)})
		return
	}
	o := c.os.orders[a.orderID]
	if o == nil {
		c.report(Violation{Kind: KindAppliedUnknownOrder, OrderID: a.orderID, AttemptID: a.id,
			Detail: "APPLIED attempt of an order the orders database does not know"})
		return
	}
	stillApplied := func(v Violation) func(*recheckView) (Violation, bool) {
		return func(f *recheckView) (Violation, bool) {
			fa := f.attempts[a.id]
			return v, fa != nil && fa.status == statusApplied
		}
	}
	allowed := o.status == orderConfirmed || (!c.opts.Settled && unsettledStatus(o.status))
	if !allowed {
		v := Violation{Kind: KindAppliedOrderNotConfirmed, OrderID: a.orderID, AttemptID: a.id,
			Detail: fmt.Sprintf("APPLIED attempt of an order that is %s", o.status)}
		c.byAttempt = append(c.byAttempt, candidate{key: a.id, confirm: stillApplied(v)})
	}
	if o.status == orderFailed || o.status == orderCancelled {
		v := Violation{Kind: KindSettledHoldsStock, OrderID: a.orderID, AttemptID: a.id,
			Detail: fmt.Sprintf("%s order holds stock through an APPLIED attempt", o.status)}
		c.byAttempt = append(c.byAttempt, candidate{key: a.id, confirm: stillApplied(v)})
	}
}

// checkOrders: the orders side, on its own and against the products
// snapshot.
func (c *checker) checkOrders() {
	applied := make(map[string]bool)
	for _, a := range c.ps.attempts {
		if a.status == statusApplied {
			applied[a.orderID] = true
		}
	}
	for _, o := range c.os.orders {
		if c.opts.Settled && unsettledStatus(o.status) {
			c.report(Violation{Kind: KindUnsettled, OrderID: o.id, Detail: "order is " + o.status})
		}
		if o.status != orderConfirmed {
			continue
		}
		switch {
		case !o.total.Valid:
			c.report(Violation{Kind: KindConfirmedUnpriced, OrderID: o.id, Detail: "CONFIRMED order has no total"})
		case o.lines == 0:
			c.report(Violation{Kind: KindConfirmedUnpriced, OrderID: o.id, Detail: "CONFIRMED order has no lines"})
		case o.unpriced > 0:
			c.report(Violation{Kind: KindConfirmedUnpriced, OrderID: o.id,
				Detail: fmt.Sprintf("CONFIRMED order has %d of %d lines without a unit price", o.unpriced, o.lines)})
		}
		if !applied[o.id] {
			id := o.id
			c.byOrder = append(c.byOrder, candidate{key: id, confirm: func(f *recheckView) (Violation, bool) {
				// Applied (and possibly already compensated after a
				// cancellation) since the products snapshot: fine.
				var seen []string
				for _, a := range f.orders[id] {
					if a.status == statusApplied || a.status == statusCompensated {
						return Violation{}, false
					}
					seen = append(seen, a.id+" "+a.status)
				}
				slices.Sort(seen)
				detail := "CONFIRMED order has no APPLIED attempt on the product side"
				if len(seen) > 0 {
					detail += " (" + strings.Join(seen, ", ") + ")"
				}
				return Violation{Kind: KindConfirmedNotApplied, OrderID: id, Detail: detail}, true
			}})
		}
	}

	for _, oa := range c.os.attempts {
		if oa.status == statusSent {
			continue
		}
		if agrees(oa, c.ps.attempts[oa.id]) {
			continue
		}
		oa := oa
		c.byAttempt = append(c.byAttempt, candidate{key: oa.id, confirm: func(f *recheckView) (Violation, bool) {
			pa := f.attempts[oa.id]
			if agrees(oa, pa) {
				return Violation{}, false
			}
			product := "unknown"
			if pa != nil {
				product = pa.status
				if pa.orderID != oa.orderID {
					product += " for order " + pa.orderID
				}
			}
			return Violation{Kind: KindAttemptStatusDisagrees, OrderID: oa.orderID, AttemptID: oa.id,
				Detail: fmt.Sprintf("orders side says %s, product side says %s", oa.status, product)}, true
		}})
	}

	if c.opts.Settled {
		for _, r := range c.os.unsent {
			c.report(Violation{Kind: KindOutboxNotDrained, OrderID: r.orderID,
				Detail: fmt.Sprintf("outbox row %d (%s) not sent", r.id, r.topic)})
		}
	}
}

// agrees reports whether the product side's record of an attempt is one the
// orders side's settled status can stand on: the same order and the same
// status, or COMPENSATED since the orders side saw it APPLIED (the only
// transition after a first outcome).
func agrees(oa *orderAttempt, pa *prodAttempt) bool {
	if pa == nil || pa.orderID != oa.orderID {
		return false
	}
	return pa.status == oa.status || (oa.status == statusApplied && pa.status == statusCompensated)
}

// recheck confirms the cross-database findings against a read of the
// reservation log made after the orders snapshot. Work committed between the
// two snapshots (an order confirmed, cancelled and compensated, an attempt
// settled) can make the products snapshot look stale next to the orders
// snapshot; the product side only moves forward (none -> APPLIED|REJECTED|
// ABORTED, APPLIED -> COMPENSATED), so a finding that still holds on the
// fresh read is real.
func (c *checker) recheck(ctx context.Context, products *sql.DB) error {
	if len(c.byAttempt) == 0 && len(c.byOrder) == 0 {
		return nil
	}
	attemptIDs := uniqueKeys(c.byAttempt)
	orderIDs := uniqueKeys(c.byOrder)
	fresh, err := readAttemptStatuses(ctx, products, attemptIDs, orderIDs)
	if err != nil {
		return err
	}
	view := &recheckView{attempts: fresh, orders: make(map[string][]*prodAttempt)}
	for _, a := range fresh {
		view.orders[a.orderID] = append(view.orders[a.orderID], a)
	}
	for _, cs := range [][]candidate{c.byAttempt, c.byOrder} {
		for _, cand := range cs {
			if v, ok := cand.confirm(view); ok {
				c.report(v)
			}
		}
	}
	return nil
}

func uniqueKeys(cs []candidate) []string {
	seen := make(map[string]struct{}, len(cs))
	var out []string
	for _, c := range cs {
		if _, ok := seen[c.key]; !ok {
			seen[c.key] = struct{}{}
			out = append(out, c.key)
		}
	}
	slices.Sort(out)
	return out
}
