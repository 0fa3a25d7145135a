package httpapi

import (
	"context"
	"net/http"

	"github.com/stockfence/stockfence/orderservice/internal/reconcile"
	"github.com/stockfence/stockfence/shared/httpio"
)

// Reconciler checks both databases against each other
// (internal/reconcile.Reconciler).
type Reconciler interface {
	// Run reads the product side's log and ledger and every order and
	// reports what disagrees; a product side that cannot be read is
	// reconcile.ErrProductUnavailable.
	Run(ctx context.Context) (reconcile.Report, error)
}

// reconcileJSON is the body of GET /ops/reconcile.
type reconcileJSON struct {
	OK              bool            `json:"ok"`
	CheckedOrders   int             `json:"checkedOrders"`
	CheckedAttempts int             `json:"checkedAttempts"`
	UnsettledOrders int             `json:"unsettledOrders"`
	RecentOrders    int             `json:"recentOrders"`
	Violations      []violationJSON `json:"violations"`
}

// violationJSON is one violation. Every field is present; orderId,
// attemptId and productId are null when the violation is not about one.
type violationJSON struct {
	Kind      reconcile.Kind `json:"kind"`
	OrderID   *string        `json:"orderId"`
	AttemptID *string        `json:"attemptId"`
	ProductID *int64         `json:"productId"`
	Detail    string         `json:"detail"`
}

func toReconcileJSON(r reconcile.Report) reconcileJSON {
	out := reconcileJSON{
		OK:              r.OK(),
		CheckedOrders:   r.CheckedOrders,
		CheckedAttempts: r.CheckedAttempts,
		UnsettledOrders: r.UnsettledOrders,
		RecentOrders:    r.RecentOrders,
		Violations:      make([]violationJSON, len(r.Violations)),
	}
	for i, v := range r.Violations {
		j := violationJSON{Kind: v.Kind, Detail: v.Detail}
		if v.OrderID != "" {
			j.OrderID = &v.OrderID
		}
		if v.AttemptID != "" {
			j.AttemptID = &v.AttemptID
		}
		if v.ProductID != 0 {
			j.ProductID = &v.ProductID
		}
		out.Violations[i] = j
	}
	return out
}

// reconcile serves GET /ops/reconcile: a check, across both databases, that
// stock is conserved and every unit held is explained by one order. 200 with
// the report whatever it found (ok false and the violations when something
// disagrees); 503 product_unavailable when the product side cannot be read.
func (h *handler) reconcile(w http.ResponseWriter, r *http.Request) {
	report, err := h.reconciler.Run(r.Context())
	if err != nil {
		h.fail(w, r, err)
		return
	}
	if !report.OK() {
		h.logger.WarnContext(r.Context(), "reconciliation found violations",
			"violations", len(report.Violations), "first", report.Violations[0].Kind)
	}
	httpio.JSON(w, http.StatusOK, toReconcileJSON(report))
}
