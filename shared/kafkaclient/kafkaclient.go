// Package kafkaclient wraps confluent-kafka-go the way both services use it:
// an idempotent producer (acks=all) whose every publish waits for and checks
// its delivery report, and a consumer group member that commits an offset
// only after its handler has finished with the message.
package kafkaclient

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"time"

	"github.com/confluentinc/confluent-kafka-go/v2/kafka"
)

// librdkafka's own log level: warnings and worse (its default, info, is
// chatty about telemetry).
const logLevel = 4

// reconnectBackoffMaxMs caps librdkafka's reconnect backoff (default 10 s),
// so clients find a broker that came back within a second.
const reconnectBackoffMaxMs = 1000

// Message is one record to publish.
type Message struct {
	Topic   string
	Key     []byte
	Value   []byte
	Headers map[string]string
}

// Producer publishes messages. It is safe for concurrent use.
type Producer struct {
	p      *kafka.Producer
	logger *slog.Logger
	done   chan struct{}
}

// NewProducer returns an idempotent producer (enable.idempotence, acks=all:
// no duplicates from its own retries, nothing acknowledged before every
// in-sync replica has it) for the comma-separated brokers. Messages that
// cannot be delivered within deliveryTimeout fail their Publish.
func NewProducer(brokers, clientID string, deliveryTimeout time.Duration, logger *slog.Logger) (*Producer, error) {
	p, err := kafka.NewProducer(&kafka.ConfigMap{
		"bootstrap.servers":        brokers,
		"client.id":                clientID,
		"enable.idempotence":       true,
		"acks":                     "all",
		"linger.ms":                2,
		"message.timeout.ms":       int(deliveryTimeout.Milliseconds()),
		"log_level":                logLevel,
		"reconnect.backoff.max.ms": reconnectBackoffMaxMs,
	})
	if err != nil {
		return nil, fmt.Errorf("kafka producer: %w", err)
	}
	pr := &Producer{p: p, logger: logger, done: make(chan struct{})}
	go pr.events()
	return pr, nil
}

// events logs what the producer reports outside delivery reports (broker
// connection errors, fatal idempotence errors).
func (p *Producer) events() {
	defer close(p.done)
	for e := range p.p.Events() {
		if err, ok := e.(kafka.Error); ok {
			p.logger.Warn("kafka producer", "err", err, "code", err.Code(), "fatal", err.IsFatal())
		}
	}
}

// Publish sends msgs and waits for every delivery report. It returns one
// error per message, nil for each that the broker acknowledged. A message
// whose report has not come when ctx ends reports ctx's error; it may still
// be delivered later, so callers must treat it as unsent but possibly
// published (consumers are idempotent).
func (p *Producer) Publish(ctx context.Context, msgs ...Message) []error {
	errs := make([]error, len(msgs))
	reports := make(chan kafka.Event, len(msgs))
	index := make(map[*kafka.Message]int, len(msgs))
	pending := 0
	for i, m := range msgs {
		km := &kafka.Message{
			TopicPartition: kafka.TopicPartition{Topic: &m.Topic, Partition: kafka.PartitionAny},
			Key:            m.Key,
			Value:          m.Value,
		}
		for k, v := range m.Headers {
			km.Headers = append(km.Headers, kafka.Header{Key: k, Value: []byte(v)})
		}
		if err := p.p.Produce(km, reports); err != nil {
			errs[i] = fmt.Errorf("produce to %s: %w", m.Topic, err)
			continue
		}
		index[km] = i
		pending++
	}
	for pending > 0 {
		select {
		case e := <-reports:
			m, ok := e.(*kafka.Message)
			if !ok {
				continue
			}
			pending--
			if err := m.TopicPartition.Error; err != nil {
				errs[index[m]] = fmt.Errorf("deliver to %s: %w", *m.TopicPartition.Topic, err)
			}
			delete(index, m)
		case <-ctx.Done():
			for _, i := range index {
				errs[i] = fmt.Errorf("delivery report: %w", ctx.Err())
			}
			return errs
		}
	}
	return errs
}

// Close delivers what is queued, waiting at most timeout, and closes the
// producer.
func (p *Producer) Close(timeout time.Duration) {
	if left := p.p.Flush(int(timeout.Milliseconds())); left > 0 {
		p.logger.Warn("kafka producer closed with undelivered messages", "count", left)
	}
	p.p.Close()
	<-p.done
}

// Handler handles one consumed message. Returning nil commits its offset;
// returning an error (only when ctx ended) leaves it uncommitted, so it is
// delivered again after a restart or rebalance. Handlers must therefore be
// idempotent, and must do their own retrying.
type Handler func(ctx context.Context, m *kafka.Message) error

// Consumer is one member of a consumer group.
//
// It watches the group: when messages wait on a partition and the group's
// committed offset there has not moved for StallAfter, or the broker has not
// answered for that long, the member is closed and created afresh, so it
// joins the group again and resumes from the committed offsets. A rejoin
// starts a rebalance, which also drops a member that died without its
// session ever timing out: kfake can keep a member that was killed while its
// JoinGroup answer was on the way, and its partitions then wait forever.
// Without this, compensations or their results would wait in the topic until
// someone restarted a process.
type Consumer struct {
	c      *kafka.Consumer
	conf   kafka.ConfigMap
	topics []string
	logger *slog.Logger

	// StallAfter is how long messages may wait on a partition whose
	// committed offset does not move before the member is rebuilt;
	// CheckEvery how often the group's progress is looked at. Set them
	// before Run.
	StallAfter, CheckEvery time.Duration
}

// Default watchdog settings: longer than a rebalance that waits for a dead
// member (session timeout, then the rebalance timeout).
const (
	DefaultStallAfter = 45 * time.Second
	DefaultCheckEvery = 5 * time.Second
)

// NewConsumer joins group on the comma-separated brokers and subscribes to
// topics. A group without committed offsets starts from the earliest
// message, so nothing published before its first start is missed. Offsets
// are committed only by Run, after each message is handled.
func NewConsumer(brokers, group string, topics []string, logger *slog.Logger) (*Consumer, error) {
	c := &Consumer{
		conf: kafka.ConfigMap{
			"bootstrap.servers":        brokers,
			"group.id":                 group,
			"auto.offset.reset":        "earliest",
			"enable.auto.commit":       false,
			"enable.auto.offset.store": false,
			"session.timeout.ms":       10000,
			// Also the group's rebalance timeout: how long a rebalance
			// waits for a member that died without leaving (SIGKILL)
			// before going on without it. librdkafka's default, 5 min,
			// would stall the member's partitions that long.
			"max.poll.interval.ms":     20000,
			"log_level":                logLevel,
			"reconnect.backoff.max.ms": reconnectBackoffMaxMs,
		},
		topics:     topics,
		logger:     logger.With("group", group),
		StallAfter: DefaultStallAfter,
		CheckEvery: DefaultCheckEvery,
	}
	var err error
	if c.c, err = c.join(); err != nil {
		return nil, err
	}
	return c, nil
}

// join creates a librdkafka consumer and subscribes it.
func (c *Consumer) join() (*kafka.Consumer, error) {
	kc, err := kafka.NewConsumer(&c.conf)
	if err != nil {
		return nil, fmt.Errorf("kafka consumer: %w", err)
	}
	if err := kc.SubscribeTopics(c.topics, nil); err != nil {
		kc.Close()
		return nil, fmt.Errorf("subscribe to %v: %w", c.topics, err)
	}
	return kc, nil
}

// Run hands every message to handle, one at a time, and commits its offset
// once handle returns nil, until ctx ends; then it leaves the group. Broker
// trouble is logged and waited out; a stalled group is rejoined.
func (c *Consumer) Run(ctx context.Context, handle Handler) {
	defer func() { c.close(c.c) }()
	w := newWatchdog(c.StallAfter, time.Now())
	nextCheck := time.Now().Add(c.CheckEvery)
	var lastWarn time.Time
	for ctx.Err() == nil {
		if now := time.Now(); now.After(nextCheck) {
			backlog, err := c.backlog()
			if reason := w.observe(now, backlog, err); reason != "" {
				c.logger.Warn("kafka consumer group stalled; rejoining", "reason", reason)
				c.rebuild()
				w = newWatchdog(c.StallAfter, time.Now())
			}
			nextCheck = time.Now().Add(c.CheckEvery)
		}
		m, err := c.c.ReadMessage(200 * time.Millisecond)
		if err != nil {
			var kerr kafka.Error
			if errors.As(err, &kerr) && kerr.IsTimeout() {
				continue
			}
			if time.Since(lastWarn) > 10*time.Second {
				c.logger.Warn("kafka consume", "err", err)
				lastWarn = time.Now()
			}
			continue
		}
		if err := handle(ctx, m); err != nil {
			return // ctx ended mid-message: it stays uncommitted
		}
		for {
			_, err := c.c.CommitMessage(m)
			if err == nil || ctx.Err() != nil {
				break
			}
			// Not committing only means a redelivery, which handlers
			// tolerate; still, keep trying while the broker is away.
			c.logger.Warn("kafka commit", "topic", *m.TopicPartition.Topic, "offset", m.TopicPartition.Offset, "err", err)
			select {
			case <-ctx.Done():
			case <-time.After(time.Second):
			}
		}
	}
}

// watchdog decides, from successive looks at the group's backlog, whether
// the group is stalled.
type watchdog struct {
	stallAfter time.Duration
	lastAnswer time.Time // the broker last answered
	// waiting holds, for each partition with messages waiting, the
	// committed offset last seen and since when it has not moved.
	waiting map[string]stuckSince
}

type stuckSince struct {
	committed int64
	since     time.Time
}

func newWatchdog(stallAfter time.Duration, now time.Time) *watchdog {
	return &watchdog{stallAfter: stallAfter, lastAnswer: now, waiting: map[string]stuckSince{}}
}

// observe takes one look at the backlog (or the error asking for it) at now
// and returns why the group is stalled, or "" when it is not: a partition
// has had messages waiting with its committed offset unmoved for
// stallAfter, or the broker has not answered for stallAfter (a member cut
// off that long loses nothing by rejoining).
func (w *watchdog) observe(now time.Time, backlog []partitionLag, err error) string {
	if err != nil {
		if now.Sub(w.lastAnswer) >= w.stallAfter {
			return fmt.Sprintf("no answer from the broker for %v: %v", now.Sub(w.lastAnswer).Round(time.Second), err)
		}
		return ""
	}
	w.lastAnswer = now
	seen := make(map[string]bool, len(backlog))
	stalled := ""
	for _, p := range backlog {
		if p.Lag == 0 {
			continue
		}
		key := p.key()
		seen[key] = true
		prev, ok := w.waiting[key]
		if !ok || prev.committed != p.Committed {
			w.waiting[key] = stuckSince{committed: p.Committed, since: now}
			continue
		}
		if now.Sub(prev.since) >= w.stallAfter && stalled == "" {
			stalled = fmt.Sprintf("%s: %d messages wait and the committed offset %d has not moved for %v",
				key, p.Lag, p.Committed, now.Sub(prev.since).Round(time.Second))
		}
	}
	for key := range w.waiting {
		if !seen[key] {
			delete(w.waiting, key)
		}
	}
	return stalled
}

// rebuild replaces the librdkafka consumer with a new one that joins the
// group afresh. Closing the old one (leaving the group) may itself hang on a
// stuck coordinator: it is given a while, then abandoned.
func (c *Consumer) rebuild() {
	old := c.c
	closed := make(chan struct{})
	go func() {
		c.close(old)
		close(closed)
	}()
	select {
	case <-closed:
	case <-time.After(closeWait):
		c.logger.Warn("kafka consumer did not close in time; abandoned")
	}
	for {
		kc, err := c.join()
		if err == nil {
			c.c = kc
			return
		}
		c.logger.Error("kafka consumer rebuild", "err", err)
		time.Sleep(time.Second)
	}
}

func (c *Consumer) close(kc *kafka.Consumer) {
	if err := kc.Close(); err != nil {
		c.logger.Warn("kafka consumer close", "err", err)
	}
}

// partitionLag is how far a group is behind on one partition.
type partitionLag struct {
	Topic     string
	Partition int32
	// Committed is the group's committed offset (-1 when it has none);
	// End the partition's high watermark; Lag the messages in between.
	Committed, End, Lag int64
}

func (p partitionLag) key() string { return partitionKey(p.Topic, p.Partition) }

func partitionKey(topic string, partition int32) string {
	return topic + "/" + strconv.Itoa(int(partition))
}

// adminTimeoutMs bounds each question the watchdog asks the broker;
// closeWait how long a stalled consumer is given to leave the group.
const (
	adminTimeoutMs = 5000
	closeWait      = 5 * time.Second
)

// backlog compares the group's committed offsets with the ends of every
// partition of the consumer's topics.
func (c *Consumer) backlog() ([]partitionLag, error) {
	var parts []kafka.TopicPartition
	for _, topic := range c.topics {
		md, err := c.c.GetMetadata(&topic, false, adminTimeoutMs)
		if err != nil {
			return nil, fmt.Errorf("metadata of %s: %w", topic, err)
		}
		for _, p := range md.Topics[topic].Partitions {
			parts = append(parts, kafka.TopicPartition{Topic: &topic, Partition: p.ID})
		}
	}
	committed, err := c.c.Committed(parts, adminTimeoutMs)
	if err != nil {
		return nil, fmt.Errorf("committed offsets: %w", err)
	}
	lags := make([]partitionLag, 0, len(committed))
	for _, tp := range committed {
		low, high, err := c.c.QueryWatermarkOffsets(*tp.Topic, tp.Partition, adminTimeoutMs)
		if err != nil {
			return nil, fmt.Errorf("watermarks of %s/%d: %w", *tp.Topic, tp.Partition, err)
		}
		pl := partitionLag{Topic: *tp.Topic, Partition: tp.Partition, Committed: -1, End: high}
		from := low // no commit yet: the group starts at the earliest message
		if tp.Offset >= 0 {
			pl.Committed = int64(tp.Offset)
			from = max(pl.Committed, low)
		}
		pl.Lag = max(high-from, 0)
		lags = append(lags, pl)
	}
	return lags, nil
}

// Header returns the value of header key of m, "" when absent.
func Header(m *kafka.Message, key string) string {
	for _, h := range m.Headers {
		if h.Key == key {
			return string(h.Value)
		}
	}
	return ""
}
