package httpapi

import (
	"context"
	"errors"
	"math"
	"net/http"
	"strconv"
	"time"

	"github.com/go-chi/chi/v5"
	"github.com/google/uuid"

	"github.com/stockfence/stockfence/orderservice/internal/order"
	"github.com/stockfence/stockfence/orderservice/internal/ordering"
	"github.com/stockfence/stockfence/orderservice/internal/reconcile"
	"github.com/stockfence/stockfence/shared/contract"
	"github.com/stockfence/stockfence/shared/httpio"
	"github.com/stockfence/stockfence/shared/problem"
)

// readyTimeout bounds the readiness check.
const readyTimeout = 2 * time.Second

// placeRequest is the body of POST /orders. The customer comes from the token
// and prices from the product service: any other field is rejected.
type placeRequest struct {
	Items []contract.Item `json:"items"`
}

func (h *handler) placeOrder(w http.ResponseWriter, r *http.Request) {
	answer := trackPlace(w, r)
	defer h.metrics.placeDone(answer)
	w = answer.w
	key, err := idempotencyKey(r)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	var body placeRequest
	if p := httpio.Decode(w, r, &body); p != nil {
		problem.Write(w, p)
		return
	}
	o, created, err := h.svc.Place(r.Context(), customerID(r.Context()), key, body.Items)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	status := placeStatus(o.Status, created)
	if status == http.StatusCreated || status == http.StatusAccepted {
		w.Header().Set("Location", "/orders/"+o.ID)
	}
	answer.answered(o.Status)
	httpio.JSON(w, status, toOrderJSON(o))
}

// placeStatus is the status of a POST /orders answer. A new order: 201
// CONFIRMED, 409 FAILED, 202 while unsettled. A replay: 200 once CONFIRMED,
// CANCELLING or CANCELLED, 409 FAILED, 202 while PENDING or COMPENSATING.
func placeStatus(s order.Status, created bool) int {
	switch s {
	case order.StatusConfirmed:
		if created {
			return http.StatusCreated
		}
		return http.StatusOK
	case order.StatusFailed:
		return http.StatusConflict
	case order.StatusCancelling, order.StatusCancelled:
		return http.StatusOK
	default:
		return http.StatusAccepted
	}
}

// idempotencyKey returns the Idempotency-Key header, "" when absent. A header
// that is present must hold one valid key.
func idempotencyKey(r *http.Request) (string, error) {
	values := r.Header.Values("Idempotency-Key")
	switch len(values) {
	case 0:
		return "", nil
	case 1:
		if err := order.ValidateIdempotencyKey(values[0]); err != nil {
			return "", err
		}
		return values[0], nil
	default:
		return "", order.Invalid("Idempotency-Key", "must be sent once")
	}
}

func (h *handler) getOrder(w http.ResponseWriter, r *http.Request) {
	id := chi.URLParam(r, "id")
	if _, err := uuid.Parse(id); err != nil || len(id) != 36 {
		h.fail(w, r, order.ErrNotFound)
		return
	}
	o, err := h.svc.Get(r.Context(), customerID(r.Context()), id)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	httpio.JSON(w, http.StatusOK, toOrderJSON(o))
}

// cancelOrder serves POST /orders/{id}/cancel: 202 with the order CANCELLING
// while what it holds is given back, 200 once CANCELLED, 409 not_cancellable
// for FAILED and COMPENSATING orders.
func (h *handler) cancelOrder(w http.ResponseWriter, r *http.Request) {
	id := chi.URLParam(r, "id")
	if _, err := uuid.Parse(id); err != nil || len(id) != 36 {
		h.fail(w, r, order.ErrNotFound)
		return
	}
	o, err := h.svc.Cancel(r.Context(), customerID(r.Context()), id)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	status := http.StatusOK
	if o.Status == order.StatusCancelling {
		status = http.StatusAccepted
		w.Header().Set("Location", "/orders/"+o.ID)
	}
	httpio.JSON(w, status, toOrderJSON(o))
}

// orderListJSON is the body of GET /orders; next is empty on the last page.
type orderListJSON struct {
	Orders []orderJSON `json:"orders"`
	Next   string      `json:"next"`
}

func (h *handler) listOrders(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	limit := order.DefaultPageSize
	if s := q.Get("limit"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil {
			h.fail(w, r, order.Invalid("limit", "must be an integer"))
			return
		}
		limit = n
	}
	page, err := h.svc.List(r.Context(), customerID(r.Context()), q.Get("cursor"), limit)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	out := orderListJSON{Orders: make([]orderJSON, len(page.Orders)), Next: page.Next}
	for i, o := range page.Orders {
		out.Orders[i] = toOrderJSON(o)
	}
	httpio.JSON(w, http.StatusOK, out)
}

func (h *handler) getCatalog(w http.ResponseWriter, r *http.Request) {
	list, err := h.catalog.Catalog(r.Context())
	if err != nil {
		h.logger.WarnContext(r.Context(), "catalog unavailable", "err", err)
		w.Header().Set("Retry-After", "1")
		problem.Write(w, problem.New(http.StatusServiceUnavailable, CodeProductUnavailable, "the product service cannot answer; retry shortly"))
		return
	}
	httpio.JSON(w, http.StatusOK, list)
}

func (h *handler) healthz(w http.ResponseWriter, _ *http.Request) {
	httpio.JSON(w, http.StatusOK, map[string]string{"status": "ok"})
}

func (h *handler) readyz(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := context.WithTimeout(r.Context(), readyTimeout)
	defer cancel()
	if err := h.ready.Ready(ctx); err != nil {
		h.logger.WarnContext(ctx, "not ready", "err", err)
		problem.Write(w, problem.New(http.StatusServiceUnavailable, CodeNotReady, "the orders database is not reachable or not migrated"))
		return
	}
	httpio.JSON(w, http.StatusOK, map[string]string{"status": "ready"})
}

// fail is the one place that turns an error into a response: domain errors
// into their problems, anything else into a logged 500 that reveals nothing.
func (h *handler) fail(w http.ResponseWriter, r *http.Request, err error) {
	var (
		invalid     *order.ValidationError
		unavailable *ordering.UnavailableError
		capped      *order.QuantityCapError
	)
	switch {
	case errors.As(err, &capped):
		problem.Write(w, problem.Newf(http.StatusConflict, CodeQuantityLimit,
			"at most %d of product %d per customer within %v: %d already ordered, %d requested; nothing was reserved",
			capped.Cap.Limit, capped.ProductID, capped.Cap.Window, capped.Held, capped.Requested))
	case errors.As(err, &unavailable):
		w.Header().Set("Retry-After", strconv.Itoa(int(math.Ceil(unavailable.RetryAfter.Seconds()))))
		problem.Write(w, problem.New(http.StatusServiceUnavailable, CodeProductUnavailable,
			"the product service is unavailable; nothing was reserved, retry with the same Idempotency-Key after Retry-After seconds"))
	case errors.Is(err, reconcile.ErrProductUnavailable):
		h.logger.WarnContext(r.Context(), "product books unavailable", "err", err)
		w.Header().Set("Retry-After", "5")
		problem.Write(w, problem.New(http.StatusServiceUnavailable, CodeProductUnavailable,
			"the product service's log or ledger could not be read; nothing was checked, retry shortly"))
	case errors.As(err, &invalid) && len(invalid.Fields) > 0:
		problem.Write(w, httpio.Invalid(invalid.Fields))
	case errors.Is(err, order.ErrNotCancellable):
		problem.Write(w, problem.New(http.StatusConflict, CodeNotCancellable, "a FAILED or COMPENSATING order cannot be cancelled"))
	case errors.Is(err, order.ErrNotFound):
		problem.Write(w, problem.New(http.StatusNotFound, problem.CodeNotFound, "no such order"))
	case errors.Is(err, order.ErrIdempotencyKeyReused):
		problem.Write(w, problem.New(http.StatusUnprocessableEntity, CodeIdempotencyKeyReused,
			"this Idempotency-Key was already used for a different request"))
	default:
		httpio.Internal(w, r, h.logger, err)
	}
}
