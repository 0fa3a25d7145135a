package httpapi

import (
	"context"
	"net/http"
	"time"

	chimw "github.com/go-chi/chi/v5/middleware"

	"github.com/stockfence/stockfence/shared/httpio"
	"github.com/stockfence/stockfence/shared/problem"
)

// DeadLetters reaches the compensation dead-letter topic, which the product
// service owns, with the product service's admin credentials
// (internal/productclient.Client), so that the dashboard needs one origin.
type DeadLetters interface {
	// DeadLetterCount returns how many dead letters were not replayed yet.
	DeadLetterCount(ctx context.Context) (int64, error)
	// ReplayDeadLetters republishes them and returns how many it did; it
	// may work for up to 30 s.
	ReplayDeadLetters(ctx context.Context) (int, error)
}

// replayWriteTimeout is how long POST /ops/dlq/replay may take to answer:
// longer than the replay itself may run, whatever the server's write
// timeout.
const replayWriteTimeout = 45 * time.Second

// deadLetterCount serves GET /ops/dlq: 200 {"count": N}; 503
// product_unavailable when the product service or its Kafka cannot tell.
func (h *handler) deadLetterCount(w http.ResponseWriter, r *http.Request) {
	n, err := h.dlq.DeadLetterCount(r.Context())
	if err != nil {
		h.deadLettersUnavailable(w, r, err, "count")
		return
	}
	httpio.JSON(w, http.StatusOK, struct {
		Count int64 `json:"count"`
	}{n})
}

// replayDeadLetters serves POST /ops/dlq/replay: 200 {"replayed": N}; 503
// product_unavailable when the replay could not be done (what it
// republished stays republished; compensations are idempotent, so calling
// again is safe).
func (h *handler) replayDeadLetters(w http.ResponseWriter, r *http.Request) {
	// Best effort: a writer that cannot move its deadline keeps the
	// server's.
	_ = http.NewResponseController(w).SetWriteDeadline(time.Now().Add(replayWriteTimeout))
	n, err := h.dlq.ReplayDeadLetters(r.Context())
	if err != nil {
		h.deadLettersUnavailable(w, r, err, "replay")
		return
	}
	h.logger.InfoContext(r.Context(), "dead letters replayed through ops", "replayed", n)
	httpio.JSON(w, http.StatusOK, struct {
		Replayed int `json:"replayed"`
	}{n})
}

// deadLettersUnavailable logs why the dead letters could not be reached and
// answers 503 without the cause's text.
func (h *handler) deadLettersUnavailable(w http.ResponseWriter, r *http.Request, err error, what string) {
	h.logger.WarnContext(r.Context(), "dead letters unavailable", "op", what,
		"requestId", chimw.GetReqID(r.Context()), "err", err)
	w.Header().Set("Retry-After", "5")
	problem.Write(w, problem.Newf(http.StatusServiceUnavailable, CodeProductUnavailable,
		"the product service could not %s the dead letters (it or its Kafka is unavailable); retry shortly", what))
}
