// Package httpapi is the order service's HTTP interface: the customer API
// (/orders), the public catalog proxy (/catalog), the operators' API (/ops),
// the storefront (/) and dashboard (/ops/) pages and the health and metrics
// endpoints, with problem+json errors for everything that is not an order.
//
// Order representation. Every field is always present except shortages,
// which appears only on a rejection that named some. A value not known yet is
// null: reason (null unless FAILED or COMPENSATING), totalCents and each
// item's unitPriceCents (null until the product service priced the
// reservation, i.e. until CONFIRMED), and each attempt's resolvedAt (null
// while the attempt is SENT). Times are RFC 3339 in UTC.
package httpapi

import (
	"context"
	"log/slog"
	"net/http"
	"strings"
	"time"

	"github.com/go-chi/chi/v5"
	"github.com/go-chi/cors"
	"github.com/go-chi/httprate"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/stockfence/stockfence/orderservice/internal/order"
	"github.com/stockfence/stockfence/shared/bearer"
	"github.com/stockfence/stockfence/shared/contract"
	"github.com/stockfence/stockfence/shared/metrics"
	"github.com/stockfence/stockfence/shared/middleware"
	"github.com/stockfence/stockfence/shared/problem"
)

// Problem codes of the order service, in addition to those of package
// problem.
const (
	CodeIdempotencyKeyReused = "idempotency_key_reused"
	CodeProductUnavailable   = "product_unavailable"
	CodeNotReady             = "not_ready"
	CodeAlreadySettled       = "already_settled"
	CodeNotCancellable       = "not_cancellable"
	CodeRateLimited          = "rate_limited"
	CodeQuantityLimit        = "quantity_limit_exceeded"
)

// Service places and reads orders (internal/ordering.Service).
type Service interface {
	Place(ctx context.Context, customerID, idemKey string, items []contract.Item) (order.Order, bool, error)
	Get(ctx context.Context, customerID, orderID string) (order.Order, error)
	List(ctx context.Context, customerID, cursor string, limit int) (order.Page, error)
	Cancel(ctx context.Context, customerID, orderID string) (order.Order, error)
}

// Catalog gives the product list that GET /catalog proxies. Any error means
// the product service could not answer.
type Catalog interface {
	Catalog(ctx context.Context) (contract.ProductList, error)
}

// Readiness reports whether the service can serve: nil when its database is
// reachable and migrated.
type Readiness interface {
	Ready(ctx context.Context) error
}

// Config holds what the handler needs.
type Config struct {
	Service   Service
	Catalog   Catalog
	Readiness Readiness
	// JWTSecret is the HS256 key customer tokens are signed with.
	JWTSecret []byte
	// Ops, AdminToken, StuckAfter and Wake serve the operators' /ops API:
	// ADMIN_TOKEN guards it, STUCK_AFTER flags orders, Wake pokes the
	// recovery worker after a recheck.
	Ops        Ops
	AdminToken string
	StuckAfter time.Duration
	Wake       func()
	// Reconciler serves GET /ops/reconcile; without it that path is 404.
	Reconciler Reconciler
	// Activity serves GET /ops/stats and DeadLetters GET /ops/dlq and
	// POST /ops/dlq/replay (admin token); without them those paths are 404.
	Activity    ActivityReader
	DeadLetters DeadLetters
	// DemoToken, when set, is a customer token that GET /demo/token hands
	// to the storefront page of a local demo (STOREFRONT_DEMO_TOKEN); empty,
	// that path is 404 and the page asks the shopper for a token.
	DemoToken string
	Logger    *slog.Logger
	// Metrics is the registry that GET /metrics serves and that the
	// router records its HTTP and orders-placed metrics in; nil gives the
	// router a registry of its own.
	Metrics *prometheus.Registry
	// RateLimit bounds each customer's POST /orders per RateWindow on this
	// instance (0: no limit); beyond it the answer is 429 rate_limited with
	// Retry-After.
	RateLimit  int
	RateWindow time.Duration
	// CORSOrigins may call the API from a browser page of theirs; empty:
	// no cross-origin access (the pages are same-origin).
	CORSOrigins []string
}

type handler struct {
	svc        Service
	catalog    Catalog
	ready      Readiness
	ops        Ops
	reconciler Reconciler
	activity   ActivityReader
	dlq        DeadLetters
	demoToken  string
	stuckAfter time.Duration
	wake       func()
	logger     *slog.Logger
	metrics    *apiMetrics
}

// New returns the service's HTTP handler. Every response carries an
// X-Request-Id; panics become 500 problems; unknown routes are 404 and known
// routes with another method 405 problems.
func New(cfg Config) http.Handler {
	logger := cfg.Logger
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	h := &handler{svc: cfg.Service, catalog: cfg.Catalog, ready: cfg.Readiness, ops: cfg.Ops,
		reconciler: cfg.Reconciler, stuckAfter: cfg.StuckAfter, wake: cfg.Wake, logger: logger,
		activity: cfg.Activity, dlq: cfg.DeadLetters, demoToken: cfg.DemoToken}
	if h.wake == nil {
		h.wake = func() {}
	}
	reg := cfg.Metrics
	if reg == nil {
		reg = metrics.NewRegistry()
	}
	h.metrics = newAPIMetrics(reg)

	r := chi.NewRouter()
	r.Use(middleware.RequestID, metrics.HTTP(reg), middleware.AccessLog(logger), middleware.Recover(logger))
	if len(cfg.CORSOrigins) > 0 {
		r.Use(cors.Handler(cors.Options{
			AllowedOrigins: cfg.CORSOrigins,
			AllowedMethods: []string{http.MethodGet, http.MethodPost},
			AllowedHeaders: []string{"Authorization", "Content-Type", "Idempotency-Key"},
			ExposedHeaders: []string{"Location", "Retry-After", "X-Request-Id"},
			MaxAge:         600,
		}))
	}
	r.NotFound(func(w http.ResponseWriter, r *http.Request) {
		problem.Write(w, problem.Newf(http.StatusNotFound, problem.CodeNotFound, "no resource at %s", r.URL.Path))
	})
	r.MethodNotAllowed(func(w http.ResponseWriter, req *http.Request) {
		if allowed := allowedMethods(r, req.URL.Path); allowed != "" {
			w.Header().Set("Allow", allowed)
		}
		problem.Write(w, problem.Newf(http.StatusMethodNotAllowed, problem.CodeMethodNotAllowed, "%s is not allowed on %s", req.Method, req.URL.Path))
	})

	r.Get("/healthz", h.healthz)
	r.Get("/readyz", h.readyz)
	r.Method(http.MethodGet, "/metrics", metrics.Handler(reg, logger))
	r.Get("/catalog", h.getCatalog)
	r.Get("/openapi.yaml", serveOpenAPI)
	// The storefront and the dashboard: public static shells whose data
	// calls carry their tokens.
	r.Get("/", h.storefrontPage)
	r.Get("/ops", h.redirectToDashboard)
	r.Get("/ops/", h.dashboardPage)
	r.Get("/assets/{name}", h.asset)
	if h.demoToken != "" {
		r.Get("/demo/token", h.getDemoToken)
	}
	r.Group(func(r chi.Router) {
		r.Use(authenticate(cfg.JWTSecret))
		r.With(rateLimit(cfg.RateLimit, cfg.RateWindow)).Post("/orders", h.placeOrder)
		r.Get("/orders", h.listOrders)
		r.Get("/orders/{id}", h.getOrder)
		r.Post("/orders/{id}/cancel", h.cancelOrder)
	})
	r.Group(func(r chi.Router) {
		r.Use(bearer.Require(cfg.AdminToken))
		r.Get("/ops/orders", h.listOpsOrders)
		r.Post("/ops/orders/{id}/recheck", h.recheck)
		if h.reconciler != nil {
			r.Get("/ops/reconcile", h.reconcile)
		}
		if h.activity != nil {
			r.Get("/ops/stats", h.stats)
		}
		if h.dlq != nil {
			r.Get("/ops/dlq", h.deadLetterCount)
			r.Post("/ops/dlq/replay", h.replayDeadLetters)
		}
	})
	return r
}

// allowedMethods lists the methods routed for path, for the Allow header of a
// 405.
func allowedMethods(r chi.Routes, path string) string {
	var allowed []string
	for _, m := range []string{http.MethodGet, http.MethodHead, http.MethodPost, http.MethodPut, http.MethodPatch, http.MethodDelete} {
		if r.Match(chi.NewRouteContext(), m, path) {
			allowed = append(allowed, m)
		}
	}
	return strings.Join(allowed, ", ")
}

// rateLimit allows each customer (the JWT's sub) limit requests per window
// and answers the rest 429 rate_limited with Retry-After; limit 0 allows all.
// The count is per instance (go-chi/httprate, in memory).
func rateLimit(limit int, window time.Duration) func(http.Handler) http.Handler {
	if limit <= 0 {
		return func(next http.Handler) http.Handler { return next }
	}
	return httprate.LimitBy(limit, window,
		func(r *http.Request) (string, error) { return customerID(r.Context()), nil },
		httprate.WithLimitHandler(func(w http.ResponseWriter, r *http.Request) {
			problem.Write(w, problem.Newf(http.StatusTooManyRequests, CodeRateLimited,
				"at most %d orders per %v per customer; try again after Retry-After seconds", limit, window))
		}))
}
