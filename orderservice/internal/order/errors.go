package order

import (
	"errors"
	"fmt"

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
