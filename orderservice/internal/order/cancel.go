package order

import (
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/stockfence/stockfence/shared/contract"
)

// ErrNotCancellable: the order is FAILED or COMPENSATING; there is nothing a
// cancellation could change.
var ErrNotCancellable = errors.New("order cannot be cancelled")

// Reasons a compensation is sent.
const (
	// CompensateCancelled: the customer cancelled the order.
	CompensateCancelled = "customer_cancelled"
)

// Cancel returns the order after its customer cancelled it at now, and the
// attempt whose stock must be given back through a compensation (empty when
// nothing can be held):
//
//   - CONFIRMED: CANCELLING; compensate its APPLIED attempt.
//   - PENDING with an open attempt: CANCELLING; compensate that attempt. The
//     product side fences it if it never arrived, or gives its stock back if
//     it was applied; either way its result settles the order.
//   - PENDING with every attempt settled as not applied: CANCELLED at once.
//   - CANCELLING, CANCELLED: unchanged (a repeated cancel).
//   - FAILED, COMPENSATING: ErrNotCancellable.
func (o Order) Cancel(now time.Time) (Order, string, error) {
	n := o.clone()
	n.UpdatedAt = now
	switch o.Status {
	case StatusCancelling, StatusCancelled:
		return o, "", nil
	case StatusConfirmed:
		for _, a := range o.Attempts {
			if a.Status == AttemptApplied {
				n.Status = StatusCancelling
				n.awaitResult(now)
				return n, a.ID, nil
			}
		}
		return o, "", fmt.Errorf("order %s is CONFIRMED without an APPLIED attempt", o.ID)
	case StatusPending:
		n.NextCheckAt = nil
		if a, open := o.OpenAttempt(); open {
			n.Status = StatusCancelling
			n.awaitResult(now)
			return n, a.ID, nil
		}
		if !o.notApplied() {
			return o, "", fmt.Errorf("order %s is PENDING with an attempt that took stock", o.ID)
		}
		n.Status = StatusCancelled
		return n, "", nil
	}
	return o, "", fmt.Errorf("%w: order %s is %s", ErrNotCancellable, o.ID, o.Status)
}

// ApplyResult applies the product side's report that the compensation of
// attempt attemptID is done, the attempt now being status: CANCELLING becomes
// CANCELLED and COMPENSATING becomes FAILED, and the attempt takes the
// reported status. A result for an order in any other status, or about an
// attempt it is not waiting for, changes nothing and returns
// ErrAttemptNotOpen: results are delivered at least once.
func (o Order) ApplyResult(attemptID string, status contract.AttemptStatus, now time.Time) (Order, error) {
	if status == contract.StatusApplied || !status.Valid() {
		return o, fmt.Errorf("%w: compensation result %q for attempt %s", ErrInvalidReservation, status, attemptID)
	}
	if o.Status != StatusCancelling && o.Status != StatusCompensating {
		return o, fmt.Errorf("%w: order %s is %s", ErrAttemptNotOpen, o.ID, o.Status)
	}
	if a, ok := o.AwaitedAttempt(); !ok || a.ID != attemptID {
		return o, fmt.Errorf("%w: order %s does not wait on attempt %s", ErrAttemptNotOpen, o.ID, attemptID)
	}
	n := o.clone()
	idx := slices.IndexFunc(n.Attempts, func(a Attempt) bool { return a.ID == attemptID })
	n.Attempts[idx].Status = AttemptStatus(status)
	if n.Attempts[idx].ResolvedAt == nil {
		n.Attempts[idx].ResolvedAt = &now
	}
	n.UpdatedAt = now
	n.NextCheckAt = nil
	if o.Status == StatusCancelling {
		n.Status = StatusCancelled
	} else {
		n.Status = StatusFailed
	}
	return n, nil
}

// AwaitedAttempt returns the attempt whose compensation a CANCELLING or
// COMPENSATING order waits for (the one that may still hold stock); false
// for an order in any other status.
func (o Order) AwaitedAttempt() (Attempt, bool) {
	if o.Status != StatusCancelling && o.Status != StatusCompensating {
		return Attempt{}, false
	}
	for _, a := range o.Attempts {
		if a.Status == AttemptSent || a.Status == AttemptApplied {
			return a, true
		}
	}
	return Attempt{}, false
}

// ResultWait is how long an order waits for the result of its compensation
// before the recovery worker sends the compensation again (the product side
// applies it at most once, and answers every copy).
const ResultWait = 30 * time.Second

// awaitResult hands an order that now waits for a compensation result to the
// recovery worker, which resends the compensation if no result came in time.
func (o *Order) awaitResult(now time.Time) {
	next := now.Add(ResultWait)
	o.NextCheckAt = &next
}

// NextCheckDelay is how long the recovery worker waits after an order's
// checks-th unsuccessful check: RecheckDelay, and never less than ResultWait
// for an order waiting for a compensation result, so copies are not resent
// faster than results can come back.
func NextCheckDelay(status Status, checks int) time.Duration {
	d := RecheckDelay(checks)
	if status == StatusCancelling || status == StatusCompensating {
		d = max(d, ResultWait)
	}
	return d
}

// Compensation returns the message that asks the product side to give back
// what attempt attemptID of the order took.
func (o Order) Compensation(messageID, attemptID, reason string, now time.Time) contract.Compensation {
	return contract.Compensation{MessageID: messageID, AttemptID: attemptID, OrderID: o.ID, Reason: reason, CreatedAt: now}
}

// OutboxMessage is a message decided in an orders transaction and waiting in
// the outbox to be published. Attempts counts the publishes tried so far.
type OutboxMessage struct {
	ID       int64
	Topic    string
	Key      string
	Payload  []byte
	Attempts int
}
