// Package ordering is the order service's application layer: it places
// orders (record first, then one reserve call, then store the answer),
// drives orders whose outcome is unknown to an end (resolve, new attempt,
// give up), and reads them, over a store and a product client it defines as
// small interfaces.
package ordering

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/google/uuid"

	"github.com/stockfence/stockfence/orderservice/internal/order"
	"github.com/stockfence/stockfence/shared/contract"
)

// settleTimeout is the least time given to storing an answer that has
// already arrived (and to noting why an order waits): the answer is known and
// worth recording even if the budget is nearly spent. With more of the
// budget left, storing may take that long (the pool may be busy under load).
const settleTimeout = 2 * time.Second

// Store keeps orders. Its contract is that of the orders database adapter
// (internal/mysql.Store).
type Store interface {
	// Create stores a new order and its idempotency key in one transaction,
	// or returns the order the key already created (created false), or
	// order.ErrIdempotencyKeyReused.
	Create(ctx context.Context, o order.Order, idemKey, requestHash string) (order.Order, bool, error)
	// ByKey returns the order the customer's idempotency key created, if
	// any, or order.ErrIdempotencyKeyReused for another request.
	ByKey(ctx context.Context, customerID, key, requestHash string) (order.Order, bool, error)
	// Get returns the customer's order or order.ErrNotFound.
	Get(ctx context.Context, customerID, orderID string) (order.Order, error)
	// Load returns any customer's order or order.ErrNotFound.
	Load(ctx context.Context, orderID string) (order.Order, error)
	// List returns a page of the customer's orders, newest first.
	List(ctx context.Context, customerID, cursor string, limit int) (order.Page, error)
	// Settle applies a definite answer about an open attempt, idempotently.
	Settle(ctx context.Context, orderID, attemptID string, r contract.Reservation) (order.Order, error)
	// StartAttempt records a new SENT attempt under the order's lock, or
	// returns the order as it stands with order.ErrAttemptNotOpen.
	StartAttempt(ctx context.Context, orderID, attemptID string, nextCheckAt time.Time) (order.Order, error)
	// GiveUp fails an order whose attempts all did nothing.
	GiveUp(ctx context.Context, orderID string) (order.Order, error)
	// RecordUnknown notes why an attempt's outcome is unknown.
	RecordUnknown(ctx context.Context, orderID, errText string) error
	// Cancel cancels the customer's order, writing its compensation to the
	// outbox when stock may be held.
	Cancel(ctx context.Context, customerID, orderID string) (order.Order, error)
	// ResendCompensation makes the order's sent compensation due for
	// publishing again.
	ResendCompensation(ctx context.Context, orderID string) error
	// ApplyResult settles a CANCELLING or COMPENSATING order with the
	// outcome of its compensation, idempotently.
	ApplyResult(ctx context.Context, r contract.CompensationResult) (order.Order, error)
}

// Product is the product service as the flow needs it.
type Product interface {
	// Reserve sends one reservation request and returns the definite answer,
	// or an error when the outcome is unknown. It never resends.
	Reserve(ctx context.Context, req contract.ReserveRequest) (contract.Reservation, error)
	// Resolve learns (and fences, if it never arrived) an attempt's outcome,
	// retrying with backoff until ctx ends; an error means still unknown.
	Resolve(ctx context.Context, attemptID, orderID string) (contract.Reservation, error)
	// Available reports whether calls may be made now; when not, retryAfter
	// is how long until they may.
	Available() (retryAfter time.Duration, ok bool)
}

// UnavailableError means the product service is known to be down (its
// circuit breaker is open): nothing was recorded and nothing reserved, and a
// retry after RetryAfter may succeed.
type UnavailableError struct {
	RetryAfter time.Duration
}

func (e *UnavailableError) Error() string {
	return fmt.Sprintf("product service unavailable; retry after %s", e.RetryAfter)
}

// Reasons drive stops short of settling an order without an error of a call.
var (
	errBreakerOpen   = errors.New("product service unavailable (circuit breaker open)")
	errNoTime        = errors.New("no time left for another attempt")
	errAwaitedResult = errors.New("no compensation result yet; compensation sent again")
)

// Config configures a Service.
type Config struct {
	// SyncBudget is how long Place may work before it answers with a PENDING
	// order (ORDER_SYNC_BUDGET). It also sets next_check_at of every new
	// attempt, after which the recovery worker takes over.
	SyncBudget time.Duration
	// ProductTimeout is the deadline of one product call (PRODUCT_TIMEOUT):
	// a new attempt is only started with at least this much time left.
	ProductTimeout time.Duration
	// Logger receives unknown outcomes and failed writes.
	Logger *slog.Logger
	// OutboxWritten is called after a transaction wrote a compensation to the
	// outbox, to wake the relay; nil if nobody needs waking.
	OutboxWritten func()
}

// Service places, drives and reads orders. It is safe for concurrent use.
type Service struct {
	store   Store
	product Product
	budget  time.Duration
	timeout time.Duration
	logger  *slog.Logger
	outbox  func()
}

// New returns a service over store and product.
func New(store Store, product Product, cfg Config) *Service {
	logger := cfg.Logger
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	outbox := cfg.OutboxWritten
	if outbox == nil {
		outbox = func() {}
	}
	return &Service{store: store, product: product, budget: cfg.SyncBudget, timeout: cfg.ProductTimeout, logger: logger, outbox: outbox}
}

// Place creates customerID's order for items and drives it, within the sync
// budget, as far as it goes. It returns the order as it then stands and
// whether this call created it:
//
//   - invalid items or key: *order.ValidationError, nothing written;
//   - idemKey already used by the customer for the same items: the existing
//     order, created false, and no new work (also while the product service
//     is down); for other items: order.ErrIdempotencyKeyReused;
//   - the product service known to be down: *UnavailableError, nothing
//     written (checked before anything is recorded);
//   - otherwise the order CONFIRMED, FAILED or COMPENSATING, or still PENDING
//     when no definite answer came in time; the recovery worker takes it from
//     there.
//
// Once the order is recorded, Place no longer fails: every later problem
// leaves the order PENDING. Work continues if ctx is cancelled (a client
// hanging up must not leave an answer unrecorded); it is bounded by the sync
// budget instead.
func (s *Service) Place(ctx context.Context, customerID, idemKey string, items []contract.Item) (order.Order, bool, error) {
	if customerID == "" {
		return order.Order{}, false, order.Invalid("customerId", "is required")
	}
	if errs := contract.ValidateItems(items); len(errs) > 0 {
		return order.Order{}, false, &order.ValidationError{Fields: errs}
	}
	hash := order.RequestHash(items)
	if idemKey != "" {
		if err := order.ValidateIdempotencyKey(idemKey); err != nil {
			return order.Order{}, false, err
		}
	}
	if wait, ok := s.product.Available(); !ok {
		// A replay answers with the order as it stands, even while the
		// product service is down.
		if idemKey != "" {
			if existing, found, err := s.store.ByKey(ctx, customerID, idemKey, hash); err != nil || found {
				return existing, false, err
			}
		}
		return order.Order{}, false, &UnavailableError{RetryAfter: wait}
	}
	// A replay is not looked up first: Create meets the key and answers
	// with the order it created, which saves every new order a read.
	orderID, err := uuid.NewV7()
	if err != nil {
		return order.Order{}, false, fmt.Errorf("new order id: %w", err)
	}
	attemptID, err := uuid.NewV7()
	if err != nil {
		return order.Order{}, false, fmt.Errorf("new attempt id: %w", err)
	}

	budget, cancel := context.WithTimeout(context.WithoutCancel(ctx), s.budget)
	defer cancel()
	now := time.Now().UTC().Truncate(time.Microsecond)
	o := order.New(orderID.String(), attemptID.String(), customerID, items, now, now.Add(s.budget))
	stored, created, err := s.store.Create(budget, o, idemKey, hash)
	if err != nil || !created {
		return stored, false, err
	}
	// Per the design, a request that finds the breaker open after its
	// attempts did nothing fails the order rather than keep the customer
	// waiting; the recovery worker instead waits for the service.
	driven, err := s.drive(budget, stored, true, true)
	if err != nil {
		s.logger.WarnContext(ctx, "order left pending for the recovery worker",
			"orderId", stored.ID, "err", err)
		s.noteUnknown(ctx, driven.ID, err)
	}
	return driven, true, nil
}

// Advance drives an unsettled order as far as ctx allows, for the recovery
// worker: it resolves the open attempt, starts a new one after an attempt
// that did nothing, or gives up when no more attempts are allowed; for a
// CANCELLING or COMPENSATING order whose result has not come, it sends the
// compensation again. It returns the order as it then stands; an error means
// it is still unsettled and why (to be looked at again later). A settled
// order is returned as it is.
func (s *Service) Advance(ctx context.Context, orderID string) (order.Order, error) {
	o, err := s.store.Load(ctx, orderID)
	if err != nil {
		return order.Order{}, err
	}
	if o.NextStep(time.Now().UTC()) == order.StepResendCompensation {
		return s.awaitCompensation(ctx, o)
	}
	return s.drive(ctx, o, false, false)
}

// awaitCompensation settles a CANCELLING or COMPENSATING order whose
// compensation result is overdue. It asks the product side's attempt log
// first (resolving fences an attempt that never arrived, which is what the
// compensation would do to it): an attempt that holds no stock any more
// settles the order as its result would have, so orders end even when
// results stop coming over Kafka. An attempt still APPLIED, or no answer,
// means the compensation has not been applied yet: it is sent again.
func (s *Service) awaitCompensation(ctx context.Context, o order.Order) (order.Order, error) {
	if a, ok := o.AwaitedAttempt(); ok {
		rctx, cancel := context.WithTimeout(ctx, s.timeout)
		res, err := s.product.Resolve(rctx, a.ID, o.ID)
		cancel()
		switch {
		case err != nil:
			s.logger.WarnContext(ctx, "compensation result overdue; attempt not resolved", "orderId", o.ID, "attemptId", a.ID, "err", err)
		case res.Status != contract.StatusApplied:
			settled, err := s.store.ApplyResult(ctx, contract.CompensationResult{OrderID: o.ID, AttemptID: a.ID, Status: res.Status})
			if err != nil {
				return o, fmt.Errorf("store compensation result: %w", err)
			}
			s.logger.InfoContext(ctx, "compensation result overdue; settled from the attempt log", "orderId", o.ID, "attemptId", a.ID, "attempt", res.Status, "status", settled.Status)
			return settled, nil
		}
	}
	if err := s.store.ResendCompensation(ctx, o.ID); err != nil {
		return o, fmt.Errorf("resend compensation: %w", err)
	}
	s.outbox()
	s.logger.WarnContext(ctx, "no compensation result in time; compensation sent again", "orderId", o.ID, "status", o.Status)
	return o, errAwaitedResult
}

// drive moves a PENDING order forward until it leaves PENDING or cannot go
// on: it sends the open attempt once (only when send: the caller just
// recorded it), resolves an unknown outcome, applies each definite answer,
// starts a new attempt after one that did nothing, and gives up when no more
// are allowed (or, when failFast, when the breaker is open). It returns the
// order as last stored and, if it is still PENDING, why.
func (s *Service) drive(ctx context.Context, o order.Order, send, failFast bool) (order.Order, error) {
	for {
		now := time.Now().UTC()
		switch o.NextStep(now) {
		case order.StepNone, order.StepResendCompensation:
			// Left PENDING (a cancellation got there first): its
			// compensation drives it from here.
			return o, nil
		case order.StepGiveUp:
			return s.giveUp(ctx, o)
		case order.StepNewAttempt:
			if _, ok := s.product.Available(); !ok {
				if failFast {
					return s.giveUp(ctx, o)
				}
				return o, errBreakerOpen
			}
			if deadline, ok := ctx.Deadline(); ok && time.Until(deadline) < s.timeout {
				return o, errNoTime
			}
			id, err := uuid.NewV7()
			if err != nil {
				return o, fmt.Errorf("new attempt id: %w", err)
			}
			next, err := s.store.StartAttempt(ctx, o.ID, id.String(), now.Add(s.budget))
			if errors.Is(err, order.ErrAttemptNotOpen) && next.NextStep(now) != order.StepNewAttempt {
				o = next // someone else moved the order: look again
				continue
			}
			if err != nil {
				return o, err
			}
			s.logger.InfoContext(ctx, "new attempt", "orderId", o.ID, "attemptId", id.String(), "seq", len(next.Attempts))
			o, send = next, true
		case order.StepResolve:
			a, _ := o.OpenAttempt()
			res, err := s.outcome(ctx, o, a, send)
			send = false
			if err != nil {
				return o, err
			}
			wctx, cancel := writeContext(ctx)
			settled, err := s.store.Settle(wctx, o.ID, a.ID, res)
			cancel()
			if err != nil {
				// The answer is durable on the product side; resolving
				// the attempt again gives it again.
				return o, fmt.Errorf("store answer %s: %w", res.Status, err)
			}
			if settled.Status == order.StatusCompensating {
				s.outbox()
			}
			o = settled
		}
	}
}

// outcome learns what became of attempt a: by sending it when send (once,
// never again), and by resolving it when that answer is unknown or the
// attempt was sent before.
func (s *Service) outcome(ctx context.Context, o order.Order, a order.Attempt, send bool) (contract.Reservation, error) {
	if send {
		res, err := s.product.Reserve(ctx, contract.ReserveRequest{AttemptID: a.ID, OrderID: o.ID, Items: o.Items()})
		if err == nil {
			return res, nil
		}
		s.logger.WarnContext(ctx, "reservation outcome unknown; resolving", "orderId", o.ID, "attemptId", a.ID, "err", err)
	}
	res, err := s.product.Resolve(ctx, a.ID, o.ID)
	if err != nil {
		return res, fmt.Errorf("resolve attempt %s: %w", a.ID, err)
	}
	s.logger.InfoContext(ctx, "attempt resolved", "orderId", o.ID, "attemptId", a.ID, "status", res.Status)
	return res, nil
}

func (s *Service) giveUp(ctx context.Context, o order.Order) (order.Order, error) {
	failed, err := s.store.GiveUp(ctx, o.ID)
	if err != nil {
		return o, fmt.Errorf("give up: %w", err)
	}
	s.logger.WarnContext(ctx, "order failed: product service unavailable", "orderId", o.ID, "attempts", len(o.Attempts))
	return failed, nil
}

// noteUnknown records why an order is still waiting, for the dashboard.
func (s *Service) noteUnknown(ctx context.Context, orderID string, cause error) {
	wctx, cancel := writeContext(ctx)
	defer cancel()
	if err := s.store.RecordUnknown(wctx, orderID, cause.Error()); err != nil {
		s.logger.ErrorContext(ctx, "record unknown outcome", "orderId", orderID, "err", err)
	}
}

// writeContext returns the context for a write that must happen whatever
// became of ctx: ctx's values, and its deadline or settleTimeout from now,
// whichever is later.
func writeContext(ctx context.Context) (context.Context, context.CancelFunc) {
	timeout := settleTimeout
	if deadline, ok := ctx.Deadline(); ok {
		timeout = max(timeout, time.Until(deadline))
	}
	return context.WithTimeout(context.WithoutCancel(ctx), timeout)
}

// Cancel cancels the customer's order (see order.Order.Cancel): CANCELLING
// while a compensation gives back what it may hold, CANCELLED at once when it
// holds nothing, unchanged when already cancelling or cancelled;
// order.ErrNotCancellable for FAILED and COMPENSATING orders, order.ErrNotFound
// for another customer's.
func (s *Service) Cancel(ctx context.Context, customerID, orderID string) (order.Order, error) {
	o, err := s.store.Cancel(ctx, customerID, orderID)
	if err != nil {
		return o, err
	}
	if o.Status == order.StatusCancelling {
		s.outbox()
	}
	s.logger.InfoContext(ctx, "order cancel", "orderId", orderID, "status", o.Status)
	return o, nil
}

// Get returns the customer's order, or order.ErrNotFound (also for another
// customer's order).
func (s *Service) Get(ctx context.Context, customerID, orderID string) (order.Order, error) {
	return s.store.Get(ctx, customerID, orderID)
}

// List returns up to limit (1 to order.MaxPageSize) of the customer's orders,
// newest first, after cursor (empty: from the newest).
func (s *Service) List(ctx context.Context, customerID, cursor string, limit int) (order.Page, error) {
	if limit < 1 || limit > order.MaxPageSize {
		return order.Page{}, order.Invalid("limit", fmt.Sprintf("must be between 1 and %d", order.MaxPageSize))
	}
	return s.store.List(ctx, customerID, cursor, limit)
}
