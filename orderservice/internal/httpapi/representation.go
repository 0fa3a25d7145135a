package httpapi

import (
	"time"

	"github.com/stockfence/stockfence/orderservice/internal/order"
	"github.com/stockfence/stockfence/shared/contract"
)

// orderJSON is the contract's order representation (see the package doc for
// which fields may be null).
type orderJSON struct {
	OrderID    string              `json:"orderId"`
	CustomerID string              `json:"customerId"`
	Status     order.Status        `json:"status"`
	Reason     *string             `json:"reason"`
	Shortages  []contract.Shortage `json:"shortages,omitempty"`
	Items      []itemJSON          `json:"items"`
	TotalCents *int64              `json:"totalCents"`
	Attempts   []attemptJSON       `json:"attempts"`
	CreatedAt  time.Time           `json:"createdAt"`
	UpdatedAt  time.Time           `json:"updatedAt"`
}

type itemJSON struct {
	ProductID      int64  `json:"productId"`
	Quantity       int    `json:"quantity"`
	UnitPriceCents *int64 `json:"unitPriceCents"`
}

type attemptJSON struct {
	AttemptID  string              `json:"attemptId"`
	Status     order.AttemptStatus `json:"status"`
	CreatedAt  time.Time           `json:"createdAt"`
	ResolvedAt *time.Time          `json:"resolvedAt"`
}

func toOrderJSON(o order.Order) orderJSON {
	out := orderJSON{
		OrderID:    o.ID,
		CustomerID: o.CustomerID,
		Status:     o.Status,
		Shortages:  o.Shortages,
		Items:      make([]itemJSON, len(o.Lines)),
		TotalCents: o.TotalCents,
		Attempts:   make([]attemptJSON, len(o.Attempts)),
		CreatedAt:  o.CreatedAt.UTC(),
		UpdatedAt:  o.UpdatedAt.UTC(),
	}
	if o.Reason != "" {
		out.Reason = &o.Reason
	}
	for i, l := range o.Lines {
		out.Items[i] = itemJSON{ProductID: l.ProductID, Quantity: l.Quantity, UnitPriceCents: l.UnitPriceCents}
	}
	for i, a := range o.Attempts {
		out.Attempts[i] = attemptJSON{AttemptID: a.ID, Status: a.Status, CreatedAt: a.CreatedAt.UTC(), ResolvedAt: a.ResolvedAt}
	}
	return out
}
