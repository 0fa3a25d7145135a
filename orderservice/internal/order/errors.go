package order

import (
	"errors"
	"fmt"
	"time"

	"github.com/stockfence/stockfence/shared/problem"
)

// Sentinel errors of the order domain; check them with errors.Is.
var (
	// ErrNotFound: no such order, or it belongs to another customer (the two
	// are indistinguishable on purpose).
	ErrNotFound = errors.New("order not found")
	// ErrIdempotencyKeyReused: the customer already used the idempotency key
	// for a different request.
	ErrIdempotencyKeyReused = errors.New("idempotency key reused with a different request")
	// ErrAttemptNotOpen: an answer arrived for an attempt that is no longer
	// waiting for one (already settled, or the order left PENDING).
	ErrAttemptNotOpen = errors.New("attempt is not open")
	// ErrSettled: an operation meant for unsettled orders met a settled one.
	ErrSettled = errors.New("order is settled")
	// ErrInvalidReservation: the product side's answer cannot be applied to
	// the attempt (another attempt or order, or an unknown status).
	ErrInvalidReservation = errors.New("invalid reservation answer")
)

// ValidationError reports input that breaks the contract's limits. Fields
// names each offending field; nothing was written.
type ValidationError struct {
	Fields []problem.FieldError
}

// Invalid returns a ValidationError for one field.
func Invalid(field, message string) *ValidationError {
	return &ValidationError{Fields: []problem.FieldError{{Field: field, Message: message}}}
}

// Error describes the first invalid field.
func (e *ValidationError) Error() string {
	if len(e.Fields) == 0 {
		return "invalid input"
	}
	return fmt.Sprintf("invalid input: %s: %s", e.Fields[0].Field, e.Fields[0].Message)
}

// QuantityCap bounds how many units of one product a customer may hold in
// orders created within Window (PENDING or CONFIRMED ones: what a failed or
// cancelled order held is back in stock), so one account cannot hoard a
// flash sale. A zero Limit means no cap.
type QuantityCap struct {
	Limit  int
	Window time.Duration
}

// QuantityCapError refuses an order that would take a customer past the
// cap on ProductID: Held units are already in their orders of the window.
// Nothing was written.
type QuantityCapError struct {
	ProductID       int64
	Requested, Held int
	Cap             QuantityCap
}

func (e *QuantityCapError) Error() string {
	return fmt.Sprintf("product %d: %d requested and %d already ordered within %v; at most %d per customer",
		e.ProductID, e.Requested, e.Held, e.Cap.Window, e.Cap.Limit)
}
