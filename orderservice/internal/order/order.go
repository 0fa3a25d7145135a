// Package order is the order service's domain: orders, their lines and
// reservation attempts, the statuses they move through, and the pure rules
// that decide how an answer of the product service changes an order. It has no
// SQL, no HTTP and no Kafka, so it is tested without a database.
package order

import (
	"time"

	"github.com/stockfence/stockfence/shared/contract"
)

// Status is where an order is in its life. Settled (terminal) statuses are
// CONFIRMED, FAILED and CANCELLED; the others wait for something.
type Status string

// Order statuses of the contract.
const (
	StatusPending      Status = "PENDING"
	StatusConfirmed    Status = "CONFIRMED"
	StatusFailed       Status = "FAILED"
	StatusCompensating Status = "COMPENSATING"
	StatusCancelling   Status = "CANCELLING"
	StatusCancelled    Status = "CANCELLED"
)

// Settled reports whether s is terminal: nothing more will happen to the order.
func (s Status) Settled() bool {
	switch s {
	case StatusConfirmed, StatusFailed, StatusCancelled:
		return true
	}
	return false
}

// AttemptStatus is what the order service knows of one reservation attempt:
// SENT while its outcome is unknown, then the product side's answer.
type AttemptStatus string

// Attempt statuses. All but SENT mirror contract.AttemptStatus.
const (
	AttemptSent        AttemptStatus = "SENT"
	AttemptApplied     AttemptStatus = AttemptStatus(contract.StatusApplied)
	AttemptRejected    AttemptStatus = AttemptStatus(contract.StatusRejected)
	AttemptAborted     AttemptStatus = AttemptStatus(contract.StatusAborted)
	AttemptCompensated AttemptStatus = AttemptStatus(contract.StatusCompensated)
)

// Reasons an order failed or is being undone that the order service itself
// decides; rejections carry the product side's reason
// (contract.ReasonInsufficientStock, contract.ReasonUnknownProduct).
const (
	// ReasonReservationMismatch: the product side applied a reservation whose
	// items differ from the order's lines, so the order must not be confirmed
	// and the stock has to be given back.
	ReasonReservationMismatch = "reservation_mismatch"
	// ReasonRejected stands in for a rejection that came without a usable
	// reason.
	ReasonRejected = "rejected"
)

// maxReasonLen is the width of orders.reason.
const maxReasonLen = 32

// Line is one product of an order as the customer asked for it. UnitPriceCents
// is nil until the product service has reserved the stock and named its price.
type Line struct {
	ProductID      int64
	Quantity       int
	UnitPriceCents *int64
}

// Attempt is one try to reserve an order's stock, identified by a UUID that is
// stored before the request leaves, so its outcome can always be resolved.
// ResolvedAt is nil while the attempt is SENT.
type Attempt struct {
	ID         string
	Seq        int
	Status     AttemptStatus
	CreatedAt  time.Time
	ResolvedAt *time.Time
}

// Order is a customer's order with its lines and attempts (attempts ordered by
// Seq). Reason is empty unless the order failed or is being undone; TotalCents
// is nil until the order is confirmed. NextCheckAt is when the recovery worker
// should look at the order again; nil once it no longer waits for a
// reservation answer.
type Order struct {
	ID          string
	CustomerID  string
	Status      Status
	Reason      string
	Shortages   []contract.Shortage
	Lines       []Line
	TotalCents  *int64
	Attempts    []Attempt
	NextCheckAt *time.Time
	Checks      int
	LastError   string
	CreatedAt   time.Time
	UpdatedAt   time.Time
}

// New returns a PENDING order of customerID for items with its first attempt
// SENT. The attempt is recorded before any call to the product service, and
// nextCheckAt hands the order to the recovery worker should this process die
// before the answer is stored.
func New(id, attemptID, customerID string, items []contract.Item, now, nextCheckAt time.Time) Order {
	lines := make([]Line, len(items))
	for i, it := range items {
		lines[i] = Line{ProductID: it.ProductID, Quantity: it.Quantity}
	}
	return Order{
		ID:          id,
		CustomerID:  customerID,
		Status:      StatusPending,
		Lines:       lines,
		Attempts:    []Attempt{{ID: attemptID, Seq: 1, Status: AttemptSent, CreatedAt: now}},
		NextCheckAt: &nextCheckAt,
		CreatedAt:   now,
		UpdatedAt:   now,
	}
}

// Items returns the order's lines as the wire items of a reservation request.
func (o Order) Items() []contract.Item {
	items := make([]contract.Item, len(o.Lines))
	for i, l := range o.Lines {
		items[i] = contract.Item{ProductID: l.ProductID, Quantity: l.Quantity}
	}
	return items
}

// OpenAttempt returns the attempt whose outcome is still unknown. At most one
// attempt of an order is ever open.
func (o Order) OpenAttempt() (Attempt, bool) {
	for _, a := range o.Attempts {
		if a.Status == AttemptSent {
			return a, true
		}
	}
	return Attempt{}, false
}

// Page sizes of a customer's order list.
const (
	DefaultPageSize = 20
	MaxPageSize     = 100
)

// Page is one page of a customer's orders, newest first. Next is the opaque
// cursor of the following page, empty on the last one.
type Page struct {
	Orders []Order
	Next   string
}
