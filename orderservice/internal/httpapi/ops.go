package httpapi

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/go-chi/chi/v5"

	"github.com/stockfence/stockfence/orderservice/internal/order"
	"github.com/stockfence/stockfence/shared/httpio"
	"github.com/stockfence/stockfence/shared/problem"
)

// Ops is what the operators' API reads and changes (internal/mysql.Store).
type Ops interface {
	// Orders returns up to limit orders in any of statuses, oldest first.
	Orders(ctx context.Context, statuses []order.Status, limit int) ([]order.Order, error)
	// Recheck makes an unsettled order due now; a settled one is
	// order.ErrSettled.
	Recheck(ctx context.Context, orderID string) error
}

// Limits of GET /ops/orders.
const (
	defaultOpsLimit = 100
	maxOpsLimit     = 500
)

// unsettled are the statuses of orders that still wait for something.
var unsettled = []order.Status{order.StatusPending, order.StatusCompensating, order.StatusCancelling}

// opsOrderJSON is one row of the ops view of orders.
type opsOrderJSON struct {
	OrderID     string        `json:"orderId"`
	CustomerID  string        `json:"customerId"`
	Status      order.Status  `json:"status"`
	Reason      *string       `json:"reason"`
	AgeSeconds  float64       `json:"ageSeconds"`
	Checks      int           `json:"checks"`
	LastError   *string       `json:"lastError"`
	Stuck       bool          `json:"stuck"`
	NextCheckAt *time.Time    `json:"nextCheckAt"`
	CreatedAt   time.Time     `json:"createdAt"`
	Attempts    []attemptJSON `json:"attempts"`
}

func (h *handler) toOpsJSON(o order.Order, now time.Time) opsOrderJSON {
	full := toOrderJSON(o)
	out := opsOrderJSON{
		OrderID:     o.ID,
		CustomerID:  o.CustomerID,
		Status:      o.Status,
		Reason:      full.Reason,
		AgeSeconds:  now.Sub(o.CreatedAt).Round(time.Millisecond).Seconds(),
		Checks:      o.Checks,
		Stuck:       o.Stuck(now, h.stuckAfter),
		NextCheckAt: o.NextCheckAt,
		CreatedAt:   full.CreatedAt,
		Attempts:    full.Attempts,
	}
	if o.LastError != "" {
		out.LastError = &o.LastError
	}
	return out
}

// listOpsOrders serves GET /ops/orders?status=unsettled|<STATUS>[,...]&limit=N:
// the orders in those statuses (default: unsettled), oldest first, with how
// long they have waited, how often they were checked, the last error and
// whether they are stuck.
func (h *handler) listOpsOrders(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	statuses, err := parseStatuses(q.Get("status"))
	if err != nil {
		h.fail(w, r, err)
		return
	}
	limit := defaultOpsLimit
	if s := q.Get("limit"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 || n > maxOpsLimit {
			h.fail(w, r, order.Invalid("limit", fmt.Sprintf("must be between 1 and %d", maxOpsLimit)))
			return
		}
		limit = n
	}
	orders, err := h.ops.Orders(r.Context(), statuses, limit)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	now := time.Now().UTC()
	out := struct {
		Orders []opsOrderJSON `json:"orders"`
	}{Orders: make([]opsOrderJSON, len(orders))}
	for i, o := range orders {
		out.Orders[i] = h.toOpsJSON(o, now)
	}
	httpio.JSON(w, http.StatusOK, out)
}

func parseStatuses(s string) ([]order.Status, error) {
	if s == "" || s == "unsettled" {
		return unsettled, nil
	}
	var out []order.Status
	for _, part := range strings.Split(s, ",") {
		st := order.Status(strings.ToUpper(strings.TrimSpace(part)))
		switch st {
		case order.StatusPending, order.StatusConfirmed, order.StatusFailed,
			order.StatusCompensating, order.StatusCancelling, order.StatusCancelled:
			out = append(out, st)
		default:
			return nil, order.Invalid("status", "must be unsettled or a comma-separated list of order statuses")
		}
	}
	return out, nil
}

// recheck serves POST /ops/orders/{id}/recheck: the order is resolved now
// instead of at its next_check_at. 202; 404 unknown; 409 already settled.
func (h *handler) recheck(w http.ResponseWriter, r *http.Request) {
	id := chi.URLParam(r, "id")
	err := h.ops.Recheck(r.Context(), id)
	if errors.Is(err, order.ErrSettled) {
		problem.Write(w, problem.New(http.StatusConflict, CodeAlreadySettled, "the order is settled; there is nothing to recheck"))
		return
	}
	if err != nil {
		h.fail(w, r, err)
		return
	}
	h.wake()
	h.logger.InfoContext(r.Context(), "recheck requested", "orderId", id)
	httpio.JSON(w, http.StatusAccepted, map[string]string{"orderId": id, "status": "recheck_scheduled"})
}
