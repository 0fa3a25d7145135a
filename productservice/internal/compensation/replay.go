package compensation

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/confluentinc/confluent-kafka-go/v2/kafka"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/stockfence/stockfence/shared/contract"
	"github.com/stockfence/stockfence/shared/kafkaclient"
	"github.com/stockfence/stockfence/shared/metrics"
)

// ReplayGroup is the consumer group whose committed offsets on
// contract.TopicCompensationsDLQ mark what has been replayed.
const ReplayGroup = "productservice-dlq-replay"

// HeaderReplayedFrom is set on a compensation republished from the DLQ: the
// dead letter's original-offset header, "<partition>/<offset>" on
// contract.TopicCompensations.
const HeaderReplayedFrom = "replayed-from"

// Defaults of ReplayConfig.
const (
	DefaultReplayIdle   = 2 * time.Second
	DefaultReplayBudget = 20 * time.Second
)

// ReplayConfig is what a Replayer is built from. Zero durations take their
// defaults.
type ReplayConfig struct {
	Brokers   string // comma-separated bootstrap servers
	Publisher Publisher
	Logger    *slog.Logger
	// Idle ends a replay when nothing arrived for this long, although the
	// high watermarks taken at its start were not reached (records removed
	// by retention, a broker that stopped answering).
	Idle time.Duration
	// Budget bounds one replay, so that it answers within the HTTP write
	// timeout; what is left is replayed by the next call.
	Budget time.Duration
	// Metrics, if not nil, gets the gauge of what Pending counts
	// (stockfence_compensations_dlq_pending_messages), asked at scrape
	// time at most every 30 s.
	Metrics prometheus.Registerer
}

// Replayer reads the dead-letter topic for ops: how many dead letters wait,
// and republishing them once their cause is fixed. It is safe for concurrent
// use; replays in one process run one at a time.
type Replayer struct {
	cfg       ReplayConfig
	mu        sync.Mutex
	closed    chan struct{}
	closeOnce sync.Once
}

// NewReplayer returns a Replayer. It connects to Kafka only when used.
func NewReplayer(cfg ReplayConfig) *Replayer {
	if cfg.Idle <= 0 {
		cfg.Idle = DefaultReplayIdle
	}
	if cfg.Budget <= 0 {
		cfg.Budget = DefaultReplayBudget
	}
	r := &Replayer{cfg: cfg, closed: make(chan struct{})}
	if cfg.Metrics != nil {
		metrics.Register(cfg.Metrics, newPendingCollector(r))
	}
	return r
}

// Close ends a replay in flight after the record it is on and refuses new
// ones, so that shutdown does not wait for a long replay.
func (r *Replayer) Close() { r.closeOnce.Do(func() { close(r.closed) }) }

// Pending returns how many dead letters have not been replayed yet: the sum
// over the partitions of the DLQ of the high watermark minus ReplayGroup's
// committed offset (or the low watermark, if later or nothing is
// committed). A DLQ topic that does not exist holds nothing.
func (r *Replayer) Pending(ctx context.Context) (int64, error) {
	c, err := r.consumer()
	if err != nil {
		return 0, err
	}
	defer r.closeConsumer(c)
	parts, err := r.positions(ctx, c)
	if err != nil {
		return 0, err
	}
	var n int64
	for _, p := range parts {
		n += p.high - p.next
	}
	return n, nil
}

// Replay republishes every dead letter that was not replayed yet to
// contract.TopicCompensations with its original key and value and a
// HeaderReplayedFrom header, committing ReplayGroup's offset after each one
// is acknowledged, and returns how many it republished. It stops once it
// has caught up with the high watermarks taken at its start (so what fails
// again and is dead-lettered anew waits for the next replay), when nothing
// arrives for Idle, or when its Budget is spent. A record republished but
// not committed (an error in between) is republished by the next replay:
// compensations are idempotent.
func (r *Replayer) Replay(ctx context.Context) (int, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	select {
	case <-r.closed:
		return 0, errors.New("replayer closed")
	default:
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	go func() {
		select {
		case <-r.closed:
			cancel()
		case <-ctx.Done():
		}
	}()
	deadline := time.Now().Add(r.cfg.Budget)

	c, err := r.consumer()
	if err != nil {
		return 0, err
	}
	defer r.closeConsumer(c)
	parts, err := r.positions(ctx, c)
	if err != nil {
		return 0, err
	}
	topic := contract.TopicCompensationsDLQ
	var assign []kafka.TopicPartition
	for _, p := range parts {
		if p.next < p.high {
			assign = append(assign, kafka.TopicPartition{Topic: &topic, Partition: p.partition, Offset: kafka.Offset(p.next)})
		}
	}
	behind := len(assign)
	if behind == 0 {
		return 0, nil
	}
	if err := c.Assign(assign); err != nil {
		return 0, fmt.Errorf("assign %s: %w", topic, err)
	}

	replayed := 0
	lastProgress := time.Now()
	for behind > 0 && time.Now().Before(deadline) {
		if ctx.Err() != nil {
			return replayed, ctx.Err()
		}
		if time.Since(lastProgress) > r.cfg.Idle {
			r.cfg.Logger.Warn("dlq replay stopped before the high watermarks: nothing arrived", "replayed", replayed, "idle", r.cfg.Idle)
			break
		}
		m, err := c.ReadMessage(100 * time.Millisecond)
		if err != nil {
			var kerr kafka.Error
			if !errors.As(err, &kerr) || !kerr.IsTimeout() {
				r.cfg.Logger.Warn("dlq replay read", "err", err)
			}
			continue
		}
		p := parts[m.TopicPartition.Partition]
		offset := int64(m.TopicPartition.Offset)
		if p == nil || offset < p.next || offset >= p.high {
			continue // newer than this replay: left for the next one
		}
		if err := r.republish(ctx, m); err != nil {
			return replayed, err
		}
		commit := m.TopicPartition
		commit.Offset++
		if _, err := c.CommitOffsets([]kafka.TopicPartition{commit}); err != nil {
			return replayed, fmt.Errorf("commit %s %d/%d: %w", topic, commit.Partition, offset, err)
		}
		replayed++
		lastProgress = time.Now()
		p.next = offset + 1
		if p.next == p.high {
			behind--
		}
	}
	r.cfg.Logger.Info("dlq replayed", "replayed", replayed, "caughtUp", behind == 0)
	return replayed, nil
}

func (r *Replayer) republish(ctx context.Context, m *kafka.Message) error {
	from := kafkaclient.Header(m, contract.HeaderOriginalOffset)
	err := r.cfg.Publisher.Publish(ctx, kafkaclient.Message{
		Topic:   contract.TopicCompensations,
		Key:     m.Key,
		Value:   m.Value,
		Headers: map[string]string{HeaderReplayedFrom: from},
	})[0]
	if err != nil {
		return fmt.Errorf("republish dead letter %s: %w", offsetOf(m), err)
	}
	r.cfg.Logger.Info("dead letter replayed", "key", string(m.Key), "dlqOffset", offsetOf(m), "replayedFrom", from)
	return nil
}

// position is where ReplayGroup stands on one partition of the DLQ: the
// next offset to replay and the high watermark.
type position struct {
	partition  int32
	next, high int64
}

// positions returns the replay group's position on every partition of the
// DLQ, indexed by partition.
func (r *Replayer) positions(ctx context.Context, c *kafka.Consumer) (map[int32]*position, error) {
	topic := contract.TopicCompensationsDLQ
	md, err := c.GetMetadata(&topic, false, timeoutMs(ctx))
	if err != nil {
		return nil, fmt.Errorf("metadata of %s: %w", topic, err)
	}
	tm, ok := md.Topics[topic]
	if ok && tm.Error.Code() == kafka.ErrUnknownTopicOrPart {
		return map[int32]*position{}, nil
	}
	if !ok || tm.Error.Code() != kafka.ErrNoError {
		return nil, fmt.Errorf("metadata of %s: %v", topic, tm.Error)
	}
	tps := make([]kafka.TopicPartition, len(tm.Partitions))
	for i, p := range tm.Partitions {
		tps[i] = kafka.TopicPartition{Topic: &topic, Partition: p.ID, Offset: kafka.OffsetInvalid}
	}
	committed, err := c.Committed(tps, timeoutMs(ctx))
	var kerr kafka.Error
	if errors.As(err, &kerr) && kerr.Code() == kafka.ErrGroupIDNotFound {
		// Some brokers answer so for a group that never committed.
		committed, err = tps, nil
	}
	if err != nil {
		return nil, fmt.Errorf("committed offsets of %s on %s: %w", ReplayGroup, topic, err)
	}
	out := make(map[int32]*position, len(committed))
	for _, tp := range committed {
		low, high, err := c.QueryWatermarkOffsets(topic, tp.Partition, timeoutMs(ctx))
		if err != nil {
			return nil, fmt.Errorf("watermarks of %s/%d: %w", topic, tp.Partition, err)
		}
		next := low
		if tp.Offset >= 0 {
			next = max(int64(tp.Offset), low)
		}
		out[tp.Partition] = &position{partition: tp.Partition, next: min(next, high), high: high}
	}
	return out, nil
}

// consumer returns a client of ReplayGroup that is assigned partitions
// explicitly, never subscribed, so it neither joins the group nor waits for
// a rebalance.
func (r *Replayer) consumer() (*kafka.Consumer, error) {
	c, err := kafka.NewConsumer(&kafka.ConfigMap{
		"bootstrap.servers":        r.cfg.Brokers,
		"group.id":                 ReplayGroup,
		"client.id":                ReplayGroup,
		"enable.auto.commit":       false,
		"enable.auto.offset.store": false,
		"auto.offset.reset":        "earliest",
		"log_level":                4,
	})
	if err != nil {
		return nil, fmt.Errorf("dlq consumer: %w", err)
	}
	return c, nil
}

func (r *Replayer) closeConsumer(c *kafka.Consumer) {
	if err := c.Close(); err != nil {
		r.cfg.Logger.Warn("dlq consumer close", "err", err)
	}
}

// timeoutMs is what is left of ctx for one Kafka request, at most 5 s.
func timeoutMs(ctx context.Context) int {
	d := 5 * time.Second
	if dl, ok := ctx.Deadline(); ok {
		d = min(d, time.Until(dl))
	}
	return max(int(d.Milliseconds()), 1)
}
