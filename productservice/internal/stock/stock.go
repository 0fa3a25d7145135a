// Package stock is the product side's domain: products, the all-or-nothing
// reservation rule, and the errors storage and HTTP translate. It has no SQL
// and no HTTP, so the rule is tested without a database.
package stock

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/google/uuid"

	"github.com/stockfence/stockfence/shared/contract"
	"github.com/stockfence/stockfence/shared/problem"
)

// Sentinel errors of the product side.
var (
	ErrProductNotFound = errors.New("product not found")
	ErrSKUTaken        = errors.New("sku already taken")
	ErrStockLimit      = errors.New("stock limit exceeded")
	ErrAttemptNotFound = errors.New("attempt never seen")
	// ErrAttemptMismatch means an attempt id was reused for a different order
	// or different items: a client bug, refused without touching stock.
	ErrAttemptMismatch = errors.New("attempt id reused with a different request")
)

// LogCursor is a position in the attempt log, which is ordered by
// (UpdatedAt, AttemptID). The zero value is the start of the log.
type LogCursor struct {
	UpdatedAt time.Time
	AttemptID string
}

// Row is a product row as a reservation sees it while holding its lock.
type Row struct {
	PriceCents int64
	Stock      int64
}

// Locked is the running stock of the rows locked by one transaction, keyed by
// product id. Several requests can be checked against it in turn: each one
// that fits takes its units, so the next one sees what is left.
type Locked map[int64]*Row

// Reserve applies the all-or-nothing rule to one request: if every product
// exists and has enough stock, the units are taken from l and an APPLIED
// reservation with unit prices is returned; otherwise l is unchanged and the
// reservation is REJECTED with reason unknown_product (which wins) or
// insufficient_stock and the shortages.
func (l Locked) Reserve(req contract.ReserveRequest) contract.Reservation {
	res := contract.Reservation{AttemptID: req.AttemptID, OrderID: req.OrderID}
	for _, it := range req.Items {
		row, ok := l[it.ProductID]
		switch {
		case !ok:
			res.UnknownProducts = append(res.UnknownProducts, it.ProductID)
		case row.Stock < int64(it.Quantity):
			res.Shortages = append(res.Shortages, contract.Shortage{
				ProductID: it.ProductID, Requested: it.Quantity, Available: int(row.Stock),
			})
		}
	}
	switch {
	case len(res.UnknownProducts) > 0:
		res.Status, res.Reason, res.Shortages = contract.StatusRejected, contract.ReasonUnknownProduct, nil
		return res
	case len(res.Shortages) > 0:
		res.Status, res.Reason = contract.StatusRejected, contract.ReasonInsufficientStock
		return res
	}
	res.Status = contract.StatusApplied
	res.Items = make([]contract.ReservedItem, len(req.Items))
	for i, it := range req.Items {
		row := l[it.ProductID]
		row.Stock -= int64(it.Quantity)
		res.Items[i] = contract.ReservedItem{ProductID: it.ProductID, Quantity: it.Quantity, UnitPriceCents: row.PriceCents}
	}
	return res
}

// SortedIDs returns the distinct product ids of items in ascending order: the
// order in which rows are locked, so that two transactions never wait on each
// other's locks in a cycle.
func SortedIDs(items []contract.Item) []int64 {
	ids := make([]int64, 0, len(items))
	for _, it := range items {
		ids = append(ids, it.ProductID)
	}
	slices.Sort(ids)
	return slices.Compact(ids)
}

// SameItems reports whether an attempt recorded with recorded lines was for
// the same lines as items, ignoring order and prices.
func SameItems(recorded []contract.ReservedItem, items []contract.Item) bool {
	if len(recorded) != len(items) {
		return false
	}
	want := make(map[int64]int, len(items))
	for _, it := range items {
		want[it.ProductID] = it.Quantity
	}
	for _, r := range recorded {
		if q, ok := want[r.ProductID]; !ok || q != r.Quantity {
			return false
		}
	}
	return true
}

// ValidateID checks that id is a UUID in canonical lowercase form, so one
// attempt can never be stored under two spellings.
func ValidateID(field, id string) []problem.FieldError {
	if _, err := uuid.Parse(id); err != nil || len(id) != 36 || id != strings.ToLower(id) {
		return []problem.FieldError{{Field: field, Message: "must be a UUID in canonical lowercase form"}}
	}
	return nil
}

// ValidateReserve checks a reservation request against the contract's limits.
func ValidateReserve(req contract.ReserveRequest) []problem.FieldError {
	errs := ValidateID("attemptId", req.AttemptID)
	errs = append(errs, ValidateID("orderId", req.OrderID)...)
	return append(errs, contract.ValidateItems(req.Items)...)
}

// ValidateNewProduct checks a catalog entry before it is created.
func ValidateNewProduct(p contract.NewProduct) []problem.FieldError {
	var errs []problem.FieldError
	if n := len(strings.TrimSpace(p.SKU)); n == 0 || len(p.SKU) > 64 || n != len(p.SKU) {
		errs = append(errs, problem.FieldError{Field: "sku", Message: "must be 1 to 64 characters without surrounding spaces"})
	}
	if n := len(strings.TrimSpace(p.Name)); n == 0 || len(p.Name) > 200 {
		errs = append(errs, problem.FieldError{Field: "name", Message: "must be 1 to 200 characters"})
	}
	if p.PriceCents < 0 || p.PriceCents > 1_000_000_000_00 {
		errs = append(errs, problem.FieldError{Field: "priceCents", Message: "must be between 0 and 100000000000"})
	}
	if p.Stock < 0 || p.Stock > contract.MaxStock {
		errs = append(errs, problem.FieldError{Field: "stock", Message: fmt.Sprintf("must be between 0 and %d", contract.MaxStock)})
	}
	return errs
}

// ValidateRestock checks a restock quantity.
func ValidateRestock(r contract.Restock) []problem.FieldError {
	if r.Quantity < 1 || r.Quantity > contract.MaxRestock {
		return []problem.FieldError{{Field: "quantity", Message: fmt.Sprintf("must be between 1 and %d", contract.MaxRestock)}}
	}
	return nil
}
