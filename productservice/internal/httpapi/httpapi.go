// Package httpapi is the product service's HTTP interface: the public catalog,
// admin catalog writes, the reservation endpoints and the ledger the order
// service calls (the log and the ledger for reconciliation), and the admin
// view and replay of dead-lettered compensations.
package httpapi

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/go-chi/chi/v5"
	chimw "github.com/go-chi/chi/v5/middleware"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/stockfence/stockfence/productservice/internal/stock"
	"github.com/stockfence/stockfence/shared/bearer"
	"github.com/stockfence/stockfence/shared/contract"
	"github.com/stockfence/stockfence/shared/httpio"
	"github.com/stockfence/stockfence/shared/metrics"
	"github.com/stockfence/stockfence/shared/middleware"
	"github.com/stockfence/stockfence/shared/problem"
)

// Store is the storage the API needs.
type Store interface {
	Products(ctx context.Context) ([]contract.Product, error)
	Product(ctx context.Context, id int64) (contract.Product, error)
	CreateProduct(ctx context.Context, p contract.NewProduct) (contract.Product, error)
	Restock(ctx context.Context, id int64, quantity int64) (contract.Product, error)
	Reserve(ctx context.Context, req contract.ReserveRequest) (res contract.Reservation, replayed bool, err error)
	// Resolve fences an attempt never seen (fenced true) and returns it.
	Resolve(ctx context.Context, attemptID, orderID string) (res contract.Reservation, fenced bool, err error)
	// AttemptWithLedger returns a recorded attempt with its ledger figures
	// (GET /reservations/{attemptId}).
	AttemptWithLedger(ctx context.Context, attemptID string) (contract.Reservation, error)
	// Attempts pages through the log, each attempt with its ledger figures
	// (GET /reservations).
	Attempts(ctx context.Context, after stock.LogCursor, limit int) ([]contract.Reservation, stock.LogCursor, error)
	// Ledger returns the product side's own books (GET /ledger).
	Ledger(ctx context.Context) (contract.Ledger, error)
}

// DeadLetters is the dead-letter topic of compensations as ops see it.
type DeadLetters interface {
	// Pending returns how many dead letters have not been replayed yet.
	Pending(ctx context.Context) (int64, error)
	// Replay republishes the dead letters not replayed yet to the
	// compensations topic and returns how many it republished.
	Replay(ctx context.Context) (int, error)
}

// Config is what the router is built from.
type Config struct {
	Store        Store
	Logger       *slog.Logger
	ServiceToken string
	AdminToken   string
	// DeadLetters serves GET /admin/dlq and POST /admin/dlq/replay (admin
	// token); without it those paths are 404.
	DeadLetters DeadLetters
	// Ready reports whether the service can serve (database reachable,
	// migrations applied); /readyz answers 503 otherwise (the error is logged,
	// not sent).
	Ready func(ctx context.Context) error
	// Metrics is the registry that GET /metrics serves and that the
	// router records its HTTP, reservation and resolve metrics in; nil
	// gives the router a registry of its own.
	Metrics *prometheus.Registry
}

// Limits of GET /reservations.
const (
	defaultLogLimit = 100
	maxLogLimit     = 1000
)

type api struct {
	store   Store
	dlq     DeadLetters
	logger  *slog.Logger
	metrics *apiMetrics
}

// New returns the service's HTTP handler.
func New(cfg Config) http.Handler {
	reg := cfg.Metrics
	if reg == nil {
		reg = metrics.NewRegistry()
	}
	a := &api{store: cfg.Store, dlq: cfg.DeadLetters, logger: cfg.Logger, metrics: newAPIMetrics(reg)}
	r := chi.NewRouter()
	r.Use(middleware.RequestID, metrics.HTTP(reg), middleware.Recover(cfg.Logger), middleware.AccessLog(cfg.Logger))
	r.NotFound(func(w http.ResponseWriter, r *http.Request) {
		problem.Write(w, problem.New(http.StatusNotFound, problem.CodeNotFound, "no such resource"))
	})
	r.MethodNotAllowed(func(w http.ResponseWriter, r *http.Request) {
		problem.Write(w, problem.Newf(http.StatusMethodNotAllowed, problem.CodeMethodNotAllowed, "%s is not allowed here", r.Method))
	})

	r.Get("/healthz", func(w http.ResponseWriter, r *http.Request) {
		httpio.JSON(w, http.StatusOK, map[string]string{"status": "ok"})
	})
	r.Get("/readyz", func(w http.ResponseWriter, r *http.Request) {
		if err := cfg.Ready(r.Context()); err != nil {
			cfg.Logger.WarnContext(r.Context(), "not ready", "err", err)
			problem.Write(w, problem.New(http.StatusServiceUnavailable, "not_ready", "the products database is not reachable or not migrated"))
			return
		}
		httpio.JSON(w, http.StatusOK, map[string]string{"status": "ready"})
	})
	r.Method(http.MethodGet, "/metrics", metrics.Handler(reg, cfg.Logger))

	r.Get("/openapi.yaml", serveOpenAPI)
	r.Get("/products", a.listProducts)
	r.Get("/products/{id}", a.getProduct)
	r.Group(func(r chi.Router) {
		r.Use(bearer.Require(cfg.AdminToken))
		r.Post("/products", a.createProduct)
		r.Post("/products/{id}/restock", a.restock)
		if a.dlq != nil {
			r.Get("/admin/dlq", a.deadLetters)
			r.Post("/admin/dlq/replay", a.replayDeadLetters)
		}
	})
	r.Group(func(r chi.Router) {
		r.Use(bearer.Require(cfg.ServiceToken))
		r.Post("/reservations", a.reserve)
		// A static segment wins over {attemptId}: GET /reservations/batch
		// still reaches getReservation (and is a 400), as before.
		r.Post("/reservations/batch", a.reserveBatch)
		r.Get("/reservations", a.listReservations)
		r.Get("/reservations/{attemptId}", a.getReservation)
		r.Post("/reservations/{attemptId}/resolve", a.resolve)
		r.Get("/ledger", a.ledger)
	})
	return r
}

func (a *api) listProducts(w http.ResponseWriter, r *http.Request) {
	products, err := a.store.Products(r.Context())
	if err != nil {
		a.fail(w, r, err)
		return
	}
	httpio.JSON(w, http.StatusOK, contract.ProductList{Products: products})
}

func (a *api) getProduct(w http.ResponseWriter, r *http.Request) {
	id, ok := productID(w, r)
	if !ok {
		return
	}
	p, err := a.store.Product(r.Context(), id)
	if err != nil {
		a.fail(w, r, err)
		return
	}
	httpio.JSON(w, http.StatusOK, p)
}

func (a *api) createProduct(w http.ResponseWriter, r *http.Request) {
	var in contract.NewProduct
	if p := httpio.Decode(w, r, &in); p != nil {
		problem.Write(w, p)
		return
	}
	if errs := stock.ValidateNewProduct(in); errs != nil {
		problem.Write(w, httpio.Invalid(errs))
		return
	}
	p, err := a.store.CreateProduct(r.Context(), in)
	if err != nil {
		a.fail(w, r, err)
		return
	}
	w.Header().Set("Location", fmt.Sprintf("/products/%d", p.ID))
	httpio.JSON(w, http.StatusCreated, p)
}

func (a *api) restock(w http.ResponseWriter, r *http.Request) {
	id, ok := productID(w, r)
	if !ok {
		return
	}
	var in contract.Restock
	if p := httpio.Decode(w, r, &in); p != nil {
		problem.Write(w, p)
		return
	}
	if errs := stock.ValidateRestock(in); errs != nil {
		problem.Write(w, httpio.Invalid(errs))
		return
	}
	p, err := a.store.Restock(r.Context(), id, in.Quantity)
	if err != nil {
		a.fail(w, r, err)
		return
	}
	httpio.JSON(w, http.StatusOK, p)
}

// reserve serves POST /reservations: it decodes the body (a body refused
// as such is counted invalid) and answers what reserveOne makes of the
// request.
func (a *api) reserve(w http.ResponseWriter, r *http.Request) {
	var req contract.ReserveRequest
	if p := httpio.Decode(w, r, &req); p != nil {
		a.metrics.reservations.WithLabelValues(outcomeInvalid, "").Inc()
		problem.Write(w, p)
		return
	}
	writeResult(w, a.reserveOne(r, req))
}

// reserveOne is POST /reservations for one decoded request, and so also for
// each request of POST /reservations/batch: it validates req, applies it
// with Store.Reserve, counts and logs the outcome, and returns the answer's
// status with its body. The body is the reservation for 201 (applied now),
// 200 (the replay of an applied one) and 409 (every other outcome: REJECTED,
// ABORTED, COMPENSATED), and a problem otherwise: 400 with the field errors
// of an invalid request, 422 attempt_mismatch, 500 internal_error. r gives
// the context and what errors are logged with.
func (a *api) reserveOne(r *http.Request, req contract.ReserveRequest) contract.ReserveResult {
	if errs := stock.ValidateReserve(req); errs != nil {
		a.metrics.reservations.WithLabelValues(outcomeInvalid, "").Inc()
		return problemResult(httpio.Invalid(errs))
	}
	res, replayed, err := a.store.Reserve(r.Context(), req)
	if err != nil {
		a.metrics.reservations.WithLabelValues(failureOutcome(err), "").Inc()
		return problemResult(a.failure(r, err))
	}
	a.metrics.reserved(res, replayed)
	// A replay answers byte for byte what the first call answered, so the
	// log's timestamps (which the first answer could not know) are left out.
	res.CreatedAt, res.UpdatedAt = nil, nil
	status := http.StatusConflict
	if res.Status == contract.StatusApplied {
		status = http.StatusCreated
		if replayed {
			status = http.StatusOK
		}
	}
	if res.Status == contract.StatusRejected && !replayed {
		a.logger.InfoContext(r.Context(), "reservation rejected",
			"attemptId", res.AttemptID, "orderId", res.OrderID, "reason", res.Reason)
	}
	return contract.ReserveResult{Status: status, Reservation: &res}
}

// problemResult is the result whose answer is p.
func problemResult(p *problem.Problem) contract.ReserveResult {
	return contract.ReserveResult{Status: p.Status, Problem: p}
}

// writeResult writes res as the whole response, as POST /reservations
// answers.
func writeResult(w http.ResponseWriter, res contract.ReserveResult) {
	if res.Problem != nil {
		problem.Write(w, res.Problem)
		return
	}
	httpio.JSON(w, res.Status, res.Reservation)
}

func (a *api) getReservation(w http.ResponseWriter, r *http.Request) {
	id := chi.URLParam(r, "attemptId")
	if errs := stock.ValidateID("attemptId", id); errs != nil {
		problem.Write(w, httpio.Invalid(errs))
		return
	}
	res, err := a.store.AttemptWithLedger(r.Context(), id)
	if err != nil {
		a.fail(w, r, err)
		return
	}
	httpio.JSON(w, http.StatusOK, res)
}

// ledger serves GET /ledger: every product's stock beside the sum of its
// ledger, and the reserve and compensate movements no attempt explains.
func (a *api) ledger(w http.ResponseWriter, r *http.Request) {
	books, err := a.store.Ledger(r.Context())
	if err != nil {
		a.fail(w, r, err)
		return
	}
	httpio.JSON(w, http.StatusOK, books)
}

func (a *api) resolve(w http.ResponseWriter, r *http.Request) {
	id := chi.URLParam(r, "attemptId")
	var req contract.ResolveRequest
	if p := httpio.Decode(w, r, &req); p != nil {
		a.metrics.resolves.WithLabelValues(outcomeInvalid).Inc()
		problem.Write(w, p)
		return
	}
	errs := append(stock.ValidateID("attemptId", id), stock.ValidateID("orderId", req.OrderID)...)
	if errs != nil {
		a.metrics.resolves.WithLabelValues(outcomeInvalid).Inc()
		problem.Write(w, httpio.Invalid(errs))
		return
	}
	res, fenced, err := a.store.Resolve(r.Context(), id, req.OrderID)
	if err != nil {
		a.metrics.resolves.WithLabelValues(failureOutcome(err)).Inc()
		a.fail(w, r, err)
		return
	}
	a.metrics.resolved(res, fenced)
	a.logger.InfoContext(r.Context(), "attempt resolved", "attemptId", id, "orderId", req.OrderID, "status", res.Status, "fenced", fenced)
	httpio.JSON(w, http.StatusOK, res)
}

// deadLetters answers {"count": N}: the compensations in the dead-letter
// topic that were not replayed yet.
func (a *api) deadLetters(w http.ResponseWriter, r *http.Request) {
	n, err := a.dlq.Pending(r.Context())
	if err != nil {
		a.fail(w, r, &kafkaError{fmt.Errorf("count dead letters: %w", err)})
		return
	}
	httpio.JSON(w, http.StatusOK, struct {
		Count int64 `json:"count"`
	}{n})
}

// replayDeadLetters republishes the dead letters not replayed yet and
// answers {"replayed": N}.
func (a *api) replayDeadLetters(w http.ResponseWriter, r *http.Request) {
	n, err := a.dlq.Replay(r.Context())
	if err != nil {
		a.fail(w, r, &kafkaError{fmt.Errorf("replay dead letters (%d replayed): %w", n, err)})
		return
	}
	a.logger.InfoContext(r.Context(), "dead letters replayed", "replayed", n)
	httpio.JSON(w, http.StatusOK, struct {
		Replayed int `json:"replayed"`
	}{n})
}

// kafkaError marks a DLQ operation that Kafka did not let finish. What it
// did is committed, so the client may simply try again.
type kafkaError struct{ err error }

func (e *kafkaError) Error() string { return e.err.Error() }
func (e *kafkaError) Unwrap() error { return e.err }

// listReservations pages through the attempt log for reconciliation:
// ?updatedSince=<RFC3339>&limit=N to start, then ?cursor=<next> to go on.
func (a *api) listReservations(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	var (
		after stock.LogCursor
		errs  []problem.FieldError
	)
	if c := q.Get("cursor"); c != "" {
		var err error
		if after, err = decodeCursor(c); err != nil {
			errs = append(errs, problem.FieldError{Field: "cursor", Message: "is not a cursor this service issued"})
		}
	} else if s := q.Get("updatedSince"); s != "" {
		t, err := time.Parse(time.RFC3339Nano, s)
		if err != nil {
			errs = append(errs, problem.FieldError{Field: "updatedSince", Message: "must be an RFC 3339 time"})
		}
		// Everything changed at or after t: start just before it.
		after.UpdatedAt = t.UTC().Add(-time.Microsecond)
	}
	limit := defaultLogLimit
	if s := q.Get("limit"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 || n > maxLogLimit {
			errs = append(errs, problem.FieldError{Field: "limit", Message: fmt.Sprintf("must be between 1 and %d", maxLogLimit)})
		}
		limit = n
	}
	if errs != nil {
		problem.Write(w, httpio.Invalid(errs))
		return
	}
	page, next, err := a.store.Attempts(r.Context(), after, limit)
	if err != nil {
		a.fail(w, r, err)
		return
	}
	out := contract.ReservationPage{Reservations: page}
	if next.AttemptID != "" {
		out.Next = encodeCursor(next)
	}
	httpio.JSON(w, http.StatusOK, out)
}

func encodeCursor(c stock.LogCursor) string {
	return base64.RawURLEncoding.EncodeToString([]byte(c.UpdatedAt.Format(time.RFC3339Nano) + "|" + c.AttemptID))
}

func decodeCursor(s string) (stock.LogCursor, error) {
	raw, err := base64.RawURLEncoding.DecodeString(s)
	if err != nil {
		return stock.LogCursor{}, err
	}
	ts, id, ok := strings.Cut(string(raw), "|")
	if !ok || stock.ValidateID("cursor", id) != nil {
		return stock.LogCursor{}, errors.New("malformed cursor")
	}
	t, err := time.Parse(time.RFC3339Nano, ts)
	return stock.LogCursor{UpdatedAt: t, AttemptID: id}, err
}

func productID(w http.ResponseWriter, r *http.Request) (int64, bool) {
	id, err := strconv.ParseInt(chi.URLParam(r, "id"), 10, 64)
	if err != nil || id <= 0 {
		problem.Write(w, problem.New(http.StatusNotFound, problem.CodeNotFound, "no such product"))
		return 0, false
	}
	return id, true
}

// fail writes the response failure maps err to.
func (a *api) fail(w http.ResponseWriter, r *http.Request, err error) {
	p := a.failure(r, err)
	if p.Code == codeKafkaUnavailable {
		w.Header().Set("Retry-After", "5")
	}
	problem.Write(w, p)
}

// codeKafkaUnavailable is the code of the 503 a DLQ operation answers when
// Kafka did not let it finish; the answer carries Retry-After.
const codeKafkaUnavailable = "kafka_unavailable"

// failure maps an error to its problem. Domain errors become their problem;
// Kafka trouble is logged and is 503 kafka_unavailable; anything else is
// logged with the request id and is 500 internal_error, as httpio.Internal
// answers, revealing nothing.
func (a *api) failure(r *http.Request, err error) *problem.Problem {
	switch {
	case errors.Is(err, stock.ErrProductNotFound):
		return problem.New(http.StatusNotFound, problem.CodeNotFound, "no such product")
	case errors.Is(err, stock.ErrAttemptNotFound):
		return problem.New(http.StatusNotFound, problem.CodeNotFound, "no such attempt")
	case errors.Is(err, stock.ErrSKUTaken):
		return problem.New(http.StatusConflict, "sku_taken", err.Error())
	case errors.Is(err, stock.ErrStockLimit):
		return problem.New(http.StatusConflict, "stock_limit", err.Error())
	case errors.Is(err, stock.ErrAttemptMismatch):
		return problem.New(http.StatusUnprocessableEntity, "attempt_mismatch", err.Error())
	case errors.As(err, new(*kafkaError)):
		a.logger.WarnContext(r.Context(), "kafka unavailable",
			"requestId", chimw.GetReqID(r.Context()), "method", r.Method, "path", r.URL.Path, "err", err)
		return problem.New(http.StatusServiceUnavailable, codeKafkaUnavailable, "Kafka did not answer; try again later")
	default:
		return httpio.InternalProblem(r, a.logger, err)
	}
}
