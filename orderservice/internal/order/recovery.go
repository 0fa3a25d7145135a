package order

import (
	"fmt"
	"math/rand/v2"
	"time"
)

// Limits on new attempts: an order whose attempts all did nothing gets a new
// one, up to MaxAttempts attempts or until it is MaxRetryAge old; after that
// it fails with ReasonProductUnavailable.
const (
	MaxAttempts = 5
	MaxRetryAge = 10 * time.Minute
)

// ReasonProductUnavailable: the product service could not be reached for
// long enough that the order was given up. No stock was taken.
const ReasonProductUnavailable = "product_unavailable"

// Recheck backoff of the recovery worker: base doubles per check, capped.
const (
	RecheckBase = time.Second
	RecheckCap  = 5 * time.Minute
)

// Step is what an unsettled order needs next.
type Step int

// The steps of a PENDING order.
const (
	// StepNone: the order is not PENDING; nothing to drive.
	StepNone Step = iota
	// StepResolve: an attempt is open (SENT); its outcome must be learnt.
	StepResolve
	// StepNewAttempt: every attempt is settled as not applied and another
	// one is allowed.
	StepNewAttempt
	// StepGiveUp: every attempt is settled as not applied and no other one
	// is allowed: the order fails with ReasonProductUnavailable.
	StepGiveUp
	// StepResendCompensation: a CANCELLING or COMPENSATING order got no
	// result in time: its compensation is sent again.
	StepResendCompensation
)

// NextStep says what an order needs at time now.
func (o Order) NextStep(now time.Time) Step {
	switch o.Status {
	case StatusPending:
	case StatusCancelling, StatusCompensating:
		return StepResendCompensation
	default:
		return StepNone
	}
	if _, open := o.OpenAttempt(); open {
		return StepResolve
	}
	if len(o.Attempts) >= MaxAttempts || now.Sub(o.CreatedAt) >= MaxRetryAge {
		return StepGiveUp
	}
	return StepNewAttempt
}

// notApplied reports whether every attempt is settled and none took stock
// that it kept: the only state in which a new attempt may start.
func (o Order) notApplied() bool {
	for _, a := range o.Attempts {
		if a.Status != AttemptAborted && a.Status != AttemptCompensated {
			return false
		}
	}
	return true
}

// StartAttempt returns the order with a new SENT attempt attemptID, to be
// stored before the reservation is sent. nextCheckAt hands the order to the
// recovery worker should the sender die. Only one attempt may ever be open,
// and only after every earlier one did nothing: anything else is
// ErrAttemptNotOpen (someone else moved the order first).
func (o Order) StartAttempt(attemptID string, now, nextCheckAt time.Time) (Order, error) {
	if o.NextStep(now) != StepNewAttempt || !o.notApplied() {
		return o, fmt.Errorf("%w: order %s is %s with %d attempts", ErrAttemptNotOpen, o.ID, o.Status, len(o.Attempts))
	}
	n := o.clone()
	n.Attempts = append(n.Attempts, Attempt{ID: attemptID, Seq: len(o.Attempts) + 1, Status: AttemptSent, CreatedAt: now})
	n.NextCheckAt = &nextCheckAt
	n.UpdatedAt = now
	return n, nil
}

// GiveUp returns the order FAILED with ReasonProductUnavailable. It is
// allowed only when every attempt is settled as not applied, so no stock can
// be held for a failed order; otherwise it is ErrAttemptNotOpen.
func (o Order) GiveUp(now time.Time) (Order, error) {
	if o.Status != StatusPending || !o.notApplied() {
		return o, fmt.Errorf("%w: order %s is %s and cannot be given up", ErrAttemptNotOpen, o.ID, o.Status)
	}
	n := o.clone()
	n.Status = StatusFailed
	n.Reason = ReasonProductUnavailable
	n.NextCheckAt = nil
	n.UpdatedAt = now
	return n, nil
}

// RecheckDelay is how long the recovery worker waits before looking at an
// order again after its checks-th unsuccessful check: RecheckBase doubled per
// check, capped at RecheckCap, with jitter (half fixed, half random) so that
// orders caught in one outage do not come back in step.
func RecheckDelay(checks int) time.Duration {
	d := RecheckCap
	if checks < 1 {
		checks = 1
	}
	if checks <= 20 {
		d = min(RecheckBase<<(checks-1), RecheckCap)
	}
	return d/2 + rand.N(d/2+1)
}

// Stuck reports whether an unsettled order has waited longer than
// stuckAfter: the dashboard flags it, and it keeps being retried.
func (o Order) Stuck(now time.Time, stuckAfter time.Duration) bool {
	return !o.Status.Settled() && now.Sub(o.CreatedAt) > stuckAfter
}
