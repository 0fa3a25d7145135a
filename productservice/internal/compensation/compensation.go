// Package compensation applies the compensations the order service sends over
// Kafka (topic stock-compensations), reports each attempt's status back
// (stock-compensation-results), dead-letters what keeps failing
// (stock-compensations-dlq) and replays the dead letters for ops.
package compensation

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"time"

	"github.com/confluentinc/confluent-kafka-go/v2/kafka"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/stockfence/stockfence/productservice/internal/stock"
	"github.com/stockfence/stockfence/shared/contract"
	"github.com/stockfence/stockfence/shared/kafkaclient"
	"github.com/stockfence/stockfence/shared/mysqldb"
)

// Group is the consumer group of the product service on
// contract.TopicCompensations.
const Group = "productservice"

// Store applies a compensation. Compensate must be idempotent: it returns the
// attempt's status afterwards (COMPENSATED, ABORTED for an attempt it fenced
// or found fenced, REJECTED), and an error wrapping stock.ErrAttemptMismatch
// for an attempt of another order.
type Store interface {
	Compensate(ctx context.Context, attemptID, orderID string) (contract.AttemptStatus, error)
}

// Publisher publishes messages and reports one error per message, nil once
// the broker acknowledged it. *kafkaclient.Producer is one.
type Publisher interface {
	Publish(ctx context.Context, msgs ...kafkaclient.Message) []error
}

// Retry is how a failing message is tried again: Tries tries in all, waiting
// Initial after the first failure and doubling up to Max. Publishing a result
// or a dead letter uses the same waits, without a limit on tries. A zero
// field takes its default.
type Retry struct {
	Tries   int
	Initial time.Duration
	Max     time.Duration
}

// Defaults of Retry: 5 tries, 100 ms doubling to at most 2 s, so a message
// that keeps failing is dead-lettered after 1.5 s of waiting.
const (
	DefaultTries   = 5
	DefaultInitial = 100 * time.Millisecond
	DefaultMax     = 2 * time.Second
)

func (r Retry) withDefaults() Retry {
	if r.Tries <= 0 {
		r.Tries = DefaultTries
	}
	if r.Initial <= 0 {
		r.Initial = DefaultInitial
	}
	if r.Max <= 0 {
		r.Max = DefaultMax
	}
	return r
}

// wait is how long to wait after the failure of try n (1-based).
func (r Retry) wait(n int) time.Duration {
	d := r.Initial
	for i := 1; i < n && d < r.Max; i++ {
		d *= 2
	}
	return min(d, r.Max)
}

// Config is what a Handler is built from. Retry's zero fields take
// DefaultRetry's values.
type Config struct {
	Store     Store
	Publisher Publisher
	Logger    *slog.Logger
	Retry     Retry
	// Metrics, if not nil, gets the counters of handled and dead-lettered
	// compensations (stockfence_compensations_total,
	// stockfence_compensations_dead_lettered_total).
	Metrics prometheus.Registerer
}

// Handler handles the messages of contract.TopicCompensations.
type Handler struct {
	store   Store
	pub     Publisher
	logger  *slog.Logger
	retry   Retry
	metrics *handlerMetrics
}

// NewHandler returns a Handler; pass its Handle to kafkaclient.Consumer.Run.
func NewHandler(cfg Config) *Handler {
	return &Handler{store: cfg.Store, pub: cfg.Publisher, logger: cfg.Logger, retry: cfg.Retry.withDefaults(),
		metrics: newHandlerMetrics(cfg.Metrics)}
}

// Handle applies one compensation and publishes the attempt's status as a
// contract.CompensationResult keyed by attempt id, every time, so a
// redelivered message re-publishes (harmless: results are idempotent too).
// A message that cannot be decoded or applied is tried Retry.Tries times,
// then its original key and value go to contract.TopicCompensationsDLQ with
// the last error, the number of tries and its original partition/offset in
// headers, and Handle returns nil so that the partition moves on.
//
// Handle returns an error only when ctx ends first (shutdown); the message is
// then left uncommitted and delivered again later, which is safe because
// applying is idempotent. Publishing is retried until it succeeds or ctx
// ends, so a Kafka outage holds the partition rather than losing a result.
func (h *Handler) Handle(ctx context.Context, m *kafka.Message) error {
	log := h.logger.With("topic", topicOf(m), "offset", offsetOf(m))
	var (
		c      contract.Compensation
		status contract.AttemptStatus
		err    error
	)
	for try, waits := 1, 1; ; waits++ {
		if c, err = decode(m.Value); err == nil {
			status, err = h.store.Compensate(ctx, c.AttemptID, c.OrderID)
		}
		if err == nil {
			break
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		// An unreachable database is waited out, holding the partition
		// (every message behind this one would fail the same way); only
		// failures of this message count towards the dead-letter topic.
		if mysqldb.IsUnavailable(err) {
			log.Warn("products database unavailable; waiting", "attemptId", c.AttemptID, "err", err)
			if err := sleep(ctx, h.retry.wait(min(waits, 10))); err != nil {
				return err
			}
			continue
		}
		if try == h.retry.Tries {
			log.Error("compensation dead-lettered", "attemptId", c.AttemptID, "orderId", c.OrderID,
				"key", string(m.Key), "tries", try, "err", err)
			if err := h.publish(ctx, log, deadLetter(m, err, try)); err != nil {
				return err
			}
			h.metrics.deadLettered.Inc()
			return nil
		}
		log.Warn("compensation failed, will retry", "attemptId", c.AttemptID, "orderId", c.OrderID,
			"try", try, "err", err)
		if err := sleep(ctx, h.retry.wait(try)); err != nil {
			return err
		}
		try++
	}
	h.metrics.handled.WithLabelValues(strings.ToLower(string(status))).Inc()
	// Three strings cannot fail to encode; an error here would otherwise
	// stop the consumer, as only a shutdown may.
	value, _ := json.Marshal(contract.CompensationResult{AttemptID: c.AttemptID, OrderID: c.OrderID, Status: status})
	log.Info("compensation handled", "attemptId", c.AttemptID, "orderId", c.OrderID,
		"messageId", c.MessageID, "status", status)
	return h.publish(ctx, log, kafkaclient.Message{
		Topic: contract.TopicCompensationResults,
		Key:   []byte(c.AttemptID),
		Value: value,
	})
}

// decode reads a compensation. Unknown fields are allowed (messages may gain
// fields); the ids are required in the canonical form the log stores, and
// createdAt must be a time that can be written back (Go's parser takes a
// zone offset of 24 hours, which RFC 3339 and the encoder do not).
func decode(value []byte) (contract.Compensation, error) {
	var c contract.Compensation
	if err := json.Unmarshal(value, &c); err != nil {
		return contract.Compensation{}, fmt.Errorf("decode compensation: %w", err)
	}
	if stock.ValidateID("attemptId", c.AttemptID) != nil || stock.ValidateID("orderId", c.OrderID) != nil {
		return c, fmt.Errorf("decode compensation: attemptId %q and orderId %q must be lowercase UUIDs", c.AttemptID, c.OrderID)
	}
	if _, err := c.CreatedAt.MarshalJSON(); err != nil {
		return c, fmt.Errorf("decode compensation: createdAt: %w", err)
	}
	return c, nil
}

// deadLetter is the DLQ record of m after tries failed tries.
func deadLetter(m *kafka.Message, err error, tries int) kafkaclient.Message {
	return kafkaclient.Message{
		Topic: contract.TopicCompensationsDLQ,
		Key:   m.Key,
		Value: m.Value,
		Headers: map[string]string{
			contract.HeaderError:          err.Error(),
			contract.HeaderAttempts:       strconv.Itoa(tries),
			contract.HeaderOriginalOffset: offsetOf(m),
		},
	}
}

// publish sends msg until the broker acknowledges it or ctx ends.
func (h *Handler) publish(ctx context.Context, log *slog.Logger, msg kafkaclient.Message) error {
	for try := 1; ; try++ {
		err := h.pub.Publish(ctx, msg)[0]
		if err == nil {
			return nil
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		log.Warn("publish failed, will retry", "to", msg.Topic, "key", string(msg.Key), "try", try, "err", err)
		if err := sleep(ctx, h.retry.wait(try)); err != nil {
			return err
		}
		try++
	}
}

func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

// offsetOf is where m is on its topic, "<partition>/<offset>".
func offsetOf(m *kafka.Message) string {
	return fmt.Sprintf("%d/%d", m.TopicPartition.Partition, int64(m.TopicPartition.Offset))
}

func topicOf(m *kafka.Message) string {
	if m.TopicPartition.Topic == nil {
		return ""
	}
	return *m.TopicPartition.Topic
}
