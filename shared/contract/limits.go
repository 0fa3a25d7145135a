package contract

import (
	"fmt"

	"github.com/stockfence/stockfence/shared/problem"
)

// Input limits of both services.
const (
	MaxBodyBytes = 64 << 10
	MaxLines     = 100
	MaxQuantity  = 10_000
	// MaxStock bounds a product's stock so sums never overflow.
	MaxStock = 1_000_000_000
	// MaxRestock bounds one restock.
	MaxRestock = 1_000_000
	// MaxBatchReservations and MaxBatchBodyBytes bound one
	// POST /reservations/batch (each of its requests is also bound by the
	// limits of POST /reservations).
	MaxBatchReservations = 500
	MaxBatchBodyBytes    = 8 << 20
)

// ValidateItems checks the line limits shared by orders and reservations:
// 1 to MaxLines lines, positive product ids, quantities 1 to MaxQuantity, and
// no product twice (duplicates are rejected rather than merged, so what a
// client sent is exactly what is stored). It returns the field errors found.
func ValidateItems(items []Item) []problem.FieldError {
	var errs []problem.FieldError
	switch {
	case len(items) == 0:
		return []problem.FieldError{{Field: "items", Message: "at least one line is required"}}
	case len(items) > MaxLines:
		return []problem.FieldError{{Field: "items", Message: fmt.Sprintf("at most %d lines are allowed, got %d", MaxLines, len(items))}}
	}
	seen := make(map[int64]int, len(items))
	for i, it := range items {
		field := fmt.Sprintf("items[%d]", i)
		if it.ProductID <= 0 {
			errs = append(errs, problem.FieldError{Field: field + ".productId", Message: "must be a positive integer"})
		}
		if it.Quantity < 1 || it.Quantity > MaxQuantity {
			errs = append(errs, problem.FieldError{Field: field + ".quantity", Message: fmt.Sprintf("must be between 1 and %d", MaxQuantity)})
		}
		if j, dup := seen[it.ProductID]; dup && it.ProductID > 0 {
			errs = append(errs, problem.FieldError{Field: field + ".productId", Message: fmt.Sprintf("product %d already appears in items[%d]", it.ProductID, j)})
		}
		seen[it.ProductID] = i
	}
	return errs
}
