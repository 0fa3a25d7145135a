// Package compensation moves compensations between the orders database and
// Kafka: the outbox relay publishes what order transactions decided, and the
// result handler applies what the product service reports back.
package compensation

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/confluentinc/confluent-kafka-go/v2/kafka"

	"github.com/stockfence/stockfence/orderservice/internal/order"
	"github.com/stockfence/stockfence/shared/contract"
	"github.com/stockfence/stockfence/shared/kafkaclient"
)

// OutboxStore is the outbox as the relay needs it (internal/mysql.Store).
type OutboxStore interface {
	ClaimOutbox(ctx context.Context, limit int, lease time.Duration) ([]order.OutboxMessage, error)
	MarkSent(ctx context.Context, id int64) error
	MarkFailed(ctx context.Context, id int64, errText string, next time.Time) error
}

// Publisher publishes messages and reports, per message, whether the broker
// acknowledged it (kafkaclient.Producer).
type Publisher interface {
	Publish(ctx context.Context, msgs ...kafkaclient.Message) []error
}

// Relay settings.
const (
	relayBatch = 100
	// relayLease must outlast a publish (the producer's delivery timeout).
	relayLease   = time.Minute
	retryBase    = time.Second
	retryCap     = time.Minute
	relayTimeout = 45 * time.Second
)

// Relay publishes outbox messages. Run one in every order-service instance:
// rows are claimed with SKIP LOCKED, so relays share the work.
type Relay struct {
	store    OutboxStore
	pub      Publisher
	interval time.Duration
	logger   *slog.Logger
	wake     chan struct{}
}

// NewRelay returns a relay that looks for due messages every interval (and
// at once when woken).
func NewRelay(store OutboxStore, pub Publisher, interval time.Duration, logger *slog.Logger) *Relay {
	return &Relay{store: store, pub: pub, interval: interval, logger: logger.With("component", "relay"), wake: make(chan struct{}, 1)}
}

// Wake makes the relay look now (after a transaction wrote to the outbox).
// It never blocks.
func (r *Relay) Wake() {
	select {
	case r.wake <- struct{}{}:
	default:
	}
}

// Run relays until ctx ends. A full batch is followed at once by another.
func (r *Relay) Run(ctx context.Context) {
	tick := time.NewTicker(r.interval)
	defer tick.Stop()
	for {
		for ctx.Err() == nil && r.Pass(ctx) == relayBatch {
		}
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		case <-r.wake:
		}
	}
}

// Pass claims one batch of due messages, publishes them, and marks each sent
// or failed (to be tried again after a backoff: 1 s doubling per failure, up
// to a minute). It returns how many it claimed. A message whose publish
// outcome is unknown is tried again: the product side applies a compensation
// at most once whatever it receives.
func (r *Relay) Pass(ctx context.Context) int {
	msgs, err := r.store.ClaimOutbox(ctx, relayBatch, relayLease)
	if err != nil {
		if ctx.Err() == nil {
			r.logger.ErrorContext(ctx, "claim outbox", "err", err)
		}
		return 0
	}
	if len(msgs) == 0 {
		return 0
	}
	out := make([]kafkaclient.Message, len(msgs))
	for i, m := range msgs {
		out[i] = kafkaclient.Message{Topic: m.Topic, Key: []byte(m.Key), Value: m.Payload}
	}
	pctx, cancel := context.WithTimeout(ctx, relayTimeout)
	defer cancel()
	errs := r.pub.Publish(pctx, out...)
	wctx, wcancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer wcancel()
	for i, m := range msgs {
		if errs[i] == nil {
			if err := r.store.MarkSent(wctx, m.ID); err != nil {
				// The lease ends and it is published again: harmless.
				r.logger.ErrorContext(ctx, "mark outbox message sent", "id", m.ID, "err", err)
			}
			continue
		}
		delay := min(retryBase<<min(m.Attempts, 10), retryCap)
		r.logger.WarnContext(ctx, "publish outbox message", "id", m.ID, "attemptId", m.Key, "attempts", m.Attempts+1, "retryIn", delay, "err", errs[i])
		if err := r.store.MarkFailed(wctx, m.ID, errs[i].Error(), time.Now().UTC().Add(delay)); err != nil {
			r.logger.ErrorContext(ctx, "mark outbox message failed", "id", m.ID, "err", err)
		}
	}
	return len(msgs)
}

// ResultStore applies compensation results (internal/mysql.Store).
type ResultStore interface {
	ApplyResult(ctx context.Context, r contract.CompensationResult) (order.Order, error)
}

// ResultHandler returns the handler of stock-compensation-results: it
// applies each result to its order (CANCELLING -> CANCELLED, COMPENSATING ->
// FAILED), idempotently, retrying while the orders database is unavailable;
// the offset is committed only once the result is stored. A result that can
// never apply (undecodable, unknown order) is logged and skipped.
func ResultHandler(store ResultStore, logger *slog.Logger) kafkaclient.Handler {
	logger = logger.With("component", "results")
	return func(ctx context.Context, m *kafka.Message) error {
		var r contract.CompensationResult
		if err := json.Unmarshal(m.Value, &r); err != nil || r.OrderID == "" || r.AttemptID == "" {
			logger.ErrorContext(ctx, "skip undecodable compensation result", "offset", m.TopicPartition.String(), "err", err)
			return nil
		}
		for wait := 100 * time.Millisecond; ; wait = min(2*wait, 5*time.Second) {
			o, err := store.ApplyResult(ctx, r)
			switch {
			case err == nil:
				logger.InfoContext(ctx, "compensation result applied", "orderId", r.OrderID, "attemptId", r.AttemptID, "result", r.Status, "status", o.Status)
				return nil
			case errors.Is(err, order.ErrNotFound), errors.Is(err, order.ErrInvalidReservation):
				logger.ErrorContext(ctx, "skip compensation result", "orderId", r.OrderID, "attemptId", r.AttemptID, "err", err)
				return nil
			}
			logger.WarnContext(ctx, "apply compensation result; retrying", "orderId", r.OrderID, "attemptId", r.AttemptID, "retryIn", wait, "err", err)
			select {
			case <-ctx.Done():
				return fmt.Errorf("apply result of attempt %s: %w", r.AttemptID, ctx.Err())
			case <-time.After(wait):
			}
		}
	}
}
