// Package contract holds the wire types that cross the boundary between the
// order service and the product service, and the input limits both enforce.
// Field names are part of the public contract: add, never rename.
package contract

import (
	"time"

	"github.com/stockfence/stockfence/shared/problem"
)

// AttemptStatus is the product side's record of one reservation attempt.
// Transitions: none -> APPLIED | REJECTED | ABORTED; APPLIED -> COMPENSATED.
type AttemptStatus string

// The product side's attempt statuses.
const (
	StatusApplied     AttemptStatus = "APPLIED"
	StatusRejected    AttemptStatus = "REJECTED"
	StatusAborted     AttemptStatus = "ABORTED"
	StatusCompensated AttemptStatus = "COMPENSATED"
)

// Valid reports whether s is one of the four product-side statuses.
func (s AttemptStatus) Valid() bool {
	switch s {
	case StatusApplied, StatusRejected, StatusAborted, StatusCompensated:
		return true
	}
	return false
}

// Rejection reasons.
const (
	ReasonInsufficientStock = "insufficient_stock"
	ReasonUnknownProduct    = "unknown_product"
)

// Item is one requested line: a product and how many units of it.
type Item struct {
	ProductID int64 `json:"productId"`
	Quantity  int   `json:"quantity"`
}

// ReservedItem is a line of an applied reservation with the unit price the
// product service charged at the moment it took the stock.
type ReservedItem struct {
	ProductID      int64 `json:"productId"`
	Quantity       int   `json:"quantity"`
	UnitPriceCents int64 `json:"unitPriceCents"`
}

// Shortage explains why a line could not be reserved.
type Shortage struct {
	ProductID int64 `json:"productId"`
	Requested int   `json:"requested"`
	Available int   `json:"available"`
}

// ReserveRequest is the body of POST /reservations.
type ReserveRequest struct {
	AttemptID string `json:"attemptId"`
	OrderID   string `json:"orderId"`
	Items     []Item `json:"items"`
}

// ResolveRequest is the body of POST /reservations/{attemptId}/resolve.
type ResolveRequest struct {
	OrderID string `json:"orderId"`
}

// Reservation is the product side's answer about one attempt: the body of a
// reserve, a replay, a resolve and a read. Items are present when the attempt
// took stock (APPLIED, COMPENSATED); Reason and Shortages when REJECTED.
// UnknownProducts lists the ids behind reason unknown_product. Ledger is set
// only by the reads of the log (GET /reservations and
// GET /reservations/{attemptId}), so the reserve and resolve answers stay as
// they were.
type Reservation struct {
	AttemptID       string         `json:"attemptId"`
	OrderID         string         `json:"orderId"`
	Status          AttemptStatus  `json:"status"`
	Items           []ReservedItem `json:"items,omitempty"`
	Reason          string         `json:"reason,omitempty"`
	Shortages       []Shortage     `json:"shortages,omitempty"`
	UnknownProducts []int64        `json:"unknownProducts,omitempty"`
	CreatedAt       *time.Time     `json:"createdAt,omitempty"`
	UpdatedAt       *time.Time     `json:"updatedAt,omitempty"`
	Ledger          *AttemptLedger `json:"ledger,omitempty"`
}

// AttemptLedger is what the product side's ledger (its stock movements)
// shows for one attempt, summed over its products: Taken is the number of
// units its reserve movements took (a positive number), Returned the number
// its compensate movements gave back. An APPLIED attempt has Taken equal to
// the sum of its items' quantities and Returned 0; a COMPENSATED one has
// Returned equal to Taken; any other attempt has both 0.
type AttemptLedger struct {
	Taken    int64 `json:"taken"`
	Returned int64 `json:"returned"`
}

// ReservationPage is the body of GET /reservations: the attempt log ordered by
// last change. Next is the cursor of the following page, empty at the end.
type ReservationPage struct {
	Reservations []Reservation `json:"reservations"`
	Next         string        `json:"next"`
}

// ReserveBatchRequest is the body of POST /reservations/batch: up to
// MaxBatchReservations reservation requests (at most MaxBatchBodyBytes in
// all) sent in one call. Each is applied exactly as POST /reservations would
// apply it on its own (its own attempt, its own all-or-nothing answer,
// idempotency and fencing unchanged); the batch only saves the round trips.
type ReserveBatchRequest struct {
	Reservations []ReserveRequest `json:"reservations"`
}

// ReserveBatchResponse is the 200 answer of POST /reservations/batch: one
// result per request, in the order of the request.
type ReserveBatchResponse struct {
	Results []ReserveResult `json:"results"`
}

// ReserveResult is what POST /reservations would have answered one request
// of a batch: its HTTP status and its body, the reservation (201, 200 for a
// replay, 409 REJECTED/ABORTED/COMPENSATED) or the problem (4xx, 5xx).
type ReserveResult struct {
	Status      int              `json:"status"`
	Reservation *Reservation     `json:"reservation,omitempty"`
	Problem     *problem.Problem `json:"problem,omitempty"`
}
