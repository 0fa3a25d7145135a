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
type Consumer struct {
	c      *kafka.Consumer
	logger *slog.Logger
}

// NewConsumer joins group on the comma-separated brokers and subscribes to
// topics. A group without committed offsets starts from the earliest
// message, so nothing published before its first start is missed. Offsets
// are committed only by Run, after each message is handled.
func NewConsumer(brokers, group string, topics []string, logger *slog.Logger) (*Consumer, error) {
	c, err := kafka.NewConsumer(&kafka.ConfigMap{
		"bootstrap.servers":        brokers,
		"group.id":                 group,
		"auto.offset.reset":        "earliest",
		"enable.auto.commit":       false,
		"enable.auto.offset.store": false,
		"session.timeout.ms":       10000,
		// Also the group's rebalance timeout: how long a rebalance waits for
		// a member that died without leaving (SIGKILL) before going on
		// without it. librdkafka's default, 5 min, would stall the
		// member's partitions that long.
		"max.poll.interval.ms":     20000,
		"log_level":                logLevel,
		"reconnect.backoff.max.ms": reconnectBackoffMaxMs,
	})
	if err != nil {
		return nil, fmt.Errorf("kafka consumer: %w", err)
	}
	if err := c.SubscribeTopics(topics, nil); err != nil {
		c.Close()
		return nil, fmt.Errorf("subscribe to %v: %w", topics, err)
	}
	return &Consumer{c: c, logger: logger}, nil
}

// Run hands every message to handle, one at a time, and commits its offset
// once handle returns nil, until ctx ends; then it leaves the group. Broker
// trouble is logged and waited out.
func (c *Consumer) Run(ctx context.Context, handle Handler) {
	defer func() {
		if err := c.c.Close(); err != nil {
			c.logger.Warn("kafka consumer close", "err", err)
		}
	}()
	var lastWarn time.Time
	for ctx.Err() == nil {
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

// Header returns the value of header key of m, "" when absent.
func Header(m *kafka.Message, key string) string {
	for _, h := range m.Headers {
		if h.Key == key {
			return string(h.Value)
		}
	}
	return ""
}
