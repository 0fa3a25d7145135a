// Package recovery is the durable half of the create-order flow: a worker
// that claims unsettled orders whose next check is due and drives each to an
// end, however many order-service instances run it at once. Nothing depends
// on a goroutine surviving: the order rows say what is due.
package recovery

import (
	"context"
	"log/slog"
	"sync"
	"time"

	"github.com/stockfence/stockfence/orderservice/internal/order"
)

// Store is the part of the orders database the worker uses.
type Store interface {
	// ClaimDue claims up to limit due orders for lease (FOR UPDATE SKIP
	// LOCKED, so instances never take the same order).
	ClaimDue(ctx context.Context, limit int, lease time.Duration) ([]string, error)
	// RecordCheck notes an unsuccessful check and when to look again.
	RecordCheck(ctx context.Context, orderID, errText string, nextCheckAt time.Time) error
}

// Driver drives one order (ordering.Service.Advance): the order as it then
// stands, and an error if it is still unsettled.
type Driver interface {
	Advance(ctx context.Context, orderID string) (order.Order, error)
}

// Config configures a Worker.
type Config struct {
	// Interval is how often the worker looks for due orders
	// (RECOVERY_INTERVAL).
	Interval time.Duration
	// OrderBudget bounds the work on one order in one pass (resolve retries
	// included).
	OrderBudget time.Duration
	// Batch is how many orders one pass claims; Concurrency how many of them
	// are driven at once.
	Batch       int
	Concurrency int
	Logger      *slog.Logger
}

// Worker is the recovery worker. Run it in every order-service instance.
type Worker struct {
	store  Store
	driver Driver
	cfg    Config
	lease  time.Duration
	logger *slog.Logger
	wake   chan struct{}
}

// New returns a worker. Zero Batch and Concurrency default to 32 and 8.
func New(store Store, driver Driver, cfg Config) *Worker {
	if cfg.Batch <= 0 {
		cfg.Batch = 32
	}
	if cfg.Concurrency <= 0 {
		cfg.Concurrency = 8
	}
	logger := cfg.Logger
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	// A claimed order is not due again before its lease ends: long enough
	// for the whole batch, so a live worker never competes with another.
	passes := (cfg.Batch + cfg.Concurrency - 1) / cfg.Concurrency
	lease := time.Duration(passes)*cfg.OrderBudget + 10*time.Second
	return &Worker{store: store, driver: driver, cfg: cfg, lease: lease, logger: logger.With("component", "recovery"), wake: make(chan struct{}, 1)}
}

// Wake makes the worker look for due orders now rather than at its next
// tick (after an ops recheck). It never blocks.
func (w *Worker) Wake() {
	select {
	case w.wake <- struct{}{}:
	default:
	}
}

// Run looks for due orders every Interval (or when woken) until ctx ends.
// A full batch is followed by another pass at once, so a backlog drains at
// the speed of the product service rather than one batch per interval.
func (w *Worker) Run(ctx context.Context) {
	tick := time.NewTicker(w.cfg.Interval)
	defer tick.Stop()
	for {
		for ctx.Err() == nil && w.Pass(ctx) == w.cfg.Batch {
		}
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		case <-w.wake:
		}
	}
}

// Pass claims one batch of due orders and drives each, at most Concurrency
// at a time. It returns how many it claimed.
func (w *Worker) Pass(ctx context.Context) int {
	ids, err := w.store.ClaimDue(ctx, w.cfg.Batch, w.lease)
	if err != nil {
		if ctx.Err() == nil {
			w.logger.ErrorContext(ctx, "claim due orders", "err", err)
		}
		return 0
	}
	sem := make(chan struct{}, w.cfg.Concurrency)
	var wg sync.WaitGroup
	for _, id := range ids {
		sem <- struct{}{}
		wg.Add(1)
		go func() {
			defer func() { <-sem; wg.Done() }()
			w.check(ctx, id)
		}()
	}
	wg.Wait()
	return len(ids)
}

// check drives one claimed order and, if it is still unsettled, records why
// and when to look again (exponential backoff with jitter). It never gives
// up on an order: the order's own rules decide when it fails.
func (w *Worker) check(ctx context.Context, orderID string) {
	octx, cancel := context.WithTimeout(ctx, w.cfg.OrderBudget)
	defer cancel()
	o, err := w.driver.Advance(octx, orderID)
	if err == nil {
		w.logger.InfoContext(ctx, "order settled", "orderId", orderID, "status", o.Status, "checks", o.Checks+1)
		return
	}
	next := time.Now().UTC().Add(order.NextCheckDelay(o.Status, o.Checks+1))
	w.logger.WarnContext(ctx, "order still unsettled", "orderId", orderID, "checks", o.Checks+1, "nextCheckAt", next, "err", err)
	rctx, rcancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer rcancel()
	if rerr := w.store.RecordCheck(rctx, orderID, err.Error(), next); rerr != nil {
		// The lease ends and the order is claimed again: nothing is lost.
		w.logger.ErrorContext(ctx, "record check", "orderId", orderID, "err", rerr)
	}
}
