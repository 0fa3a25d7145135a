package order

import (
	"fmt"
	"math"
	"slices"
	"time"

	"github.com/stockfence/stockfence/shared/contract"
)

// Settle applies the product side's definite answer r about the order's open
// attempt and returns the order as it must now be stored; o itself is not
// modified.
//
//   - APPLIED with exactly the order's lines: CONFIRMED, with unit prices and
//     total.
//   - APPLIED with other items: COMPENSATING with reason reservation_mismatch;
//     the stock was taken for something the customer did not ask for and has to
//     be given back.
//   - REJECTED: FAILED with the product side's reason and shortages.
//   - ABORTED: the attempt certainly did nothing; the order stays PENDING for a
//     new attempt.
//   - COMPENSATED: whatever the attempt took was given back, so for this order
//     it did nothing either; the order stays PENDING like ABORTED.
//
// An order that has left PENDING or whose attempt is no longer SENT returns
// ErrAttemptNotOpen (the answer was already applied: callers treat this as
// success). An answer about another order, an attempt the order does not have
// or with an unknown status returns ErrInvalidReservation.
func (o Order) Settle(r contract.Reservation, now time.Time) (Order, error) {
	if r.OrderID != "" && r.OrderID != o.ID {
		return o, fmt.Errorf("%w: answer for order %s applied to order %s", ErrInvalidReservation, r.OrderID, o.ID)
	}
	idx := slices.IndexFunc(o.Attempts, func(a Attempt) bool { return a.ID == r.AttemptID })
	if idx < 0 {
		return o, fmt.Errorf("%w: order %s has no attempt %s", ErrInvalidReservation, o.ID, r.AttemptID)
	}
	if !r.Status.Valid() {
		return o, fmt.Errorf("%w: status %q", ErrInvalidReservation, r.Status)
	}
	if o.Status != StatusPending || o.Attempts[idx].Status != AttemptSent {
		return o, fmt.Errorf("%w: order %s is %s, attempt %s is %s", ErrAttemptNotOpen, o.ID, o.Status, r.AttemptID, o.Attempts[idx].Status)
	}

	n := o.clone()
	n.Attempts[idx].Status = AttemptStatus(r.Status)
	n.Attempts[idx].ResolvedAt = &now
	n.UpdatedAt = now
	switch r.Status {
	case contract.StatusApplied:
		n.NextCheckAt = nil
		if !n.price(r.Items) {
			n.Status = StatusCompensating
			n.Reason = ReasonReservationMismatch
			n.awaitResult(now)
			return n, nil
		}
		n.Status = StatusConfirmed
	case contract.StatusRejected:
		n.NextCheckAt = nil
		n.Status = StatusFailed
		n.Reason = rejectionReason(r.Reason)
		n.Shortages = shortages(n.Lines, r)
	case contract.StatusAborted, contract.StatusCompensated:
		// The order keeps waiting; a new attempt is started by whoever holds
		// the order next (request path or recovery worker).
	}
	return n, nil
}

// price fills in the unit prices and total from the reserved items. It
// reports false, leaving o unpriced, when the items are not exactly the
// order's lines (same products, same quantities) or the prices are unusable.
func (o *Order) price(items []contract.ReservedItem) bool {
	if len(items) != len(o.Lines) {
		return false
	}
	byProduct := make(map[int64]contract.ReservedItem, len(items))
	for _, it := range items {
		if _, dup := byProduct[it.ProductID]; dup {
			return false
		}
		byProduct[it.ProductID] = it
	}
	prices := make([]int64, len(o.Lines))
	var total int64
	for i, l := range o.Lines {
		it, ok := byProduct[l.ProductID]
		if !ok || it.Quantity != l.Quantity || it.UnitPriceCents < 0 {
			return false
		}
		if it.UnitPriceCents > 0 && int64(l.Quantity) > (math.MaxInt64-total)/it.UnitPriceCents {
			return false
		}
		prices[i] = it.UnitPriceCents
		total += int64(l.Quantity) * it.UnitPriceCents
	}
	for i := range o.Lines {
		o.Lines[i].UnitPriceCents = &prices[i]
	}
	o.TotalCents = &total
	return true
}

func rejectionReason(reason string) string {
	if reason == "" || len(reason) > maxReasonLen {
		return ReasonRejected
	}
	return reason
}

// shortages returns the rejection's shortages. A rejection for unknown
// products that lists only their ids is turned into shortages with nothing
// available, so clients read one shape for both reasons.
func shortages(lines []Line, r contract.Reservation) []contract.Shortage {
	if len(r.Shortages) > 0 || len(r.UnknownProducts) == 0 {
		return slices.Clone(r.Shortages)
	}
	var out []contract.Shortage
	for _, l := range lines {
		if slices.Contains(r.UnknownProducts, l.ProductID) {
			out = append(out, contract.Shortage{ProductID: l.ProductID, Requested: l.Quantity, Available: 0})
		}
	}
	return out
}

// clone returns a deep copy so that Settle never changes its receiver's
// slices.
func (o Order) clone() Order {
	n := o
	n.Lines = make([]Line, len(o.Lines))
	for i, l := range o.Lines {
		n.Lines[i] = l
		if l.UnitPriceCents != nil {
			p := *l.UnitPriceCents
			n.Lines[i].UnitPriceCents = &p
		}
	}
	n.Attempts = slices.Clone(o.Attempts)
	n.Shortages = slices.Clone(o.Shortages)
	return n
}
