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
	"slices"
	"strconv"
	"sync/atomic"
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
// It watches the group through an admin client of its own (separate
// connections, so a member stuck behind a parked request does not blind it):
// when the group is stable, messages wait on a partition and the group's
// committed offset there has not moved for StallAfter, the member is closed
// and created afresh, so it joins the group again and resumes from the
// committed offsets. The rejoin starts a rebalance, which also drops a member
// that died without its session ever timing out: kfake can keep a member that
// was killed while its JoinGroup answer was on the way, and its partitions
// then wait forever. While the group rebalances nothing is done: a rejoin
// would only prolong it. Without this, compensations or their results could
// wait in the topic until someone restarted a process.
type Consumer struct {
	c      *kafka.Consumer // used by Run only
	admin  *kafka.AdminClient
	conf   kafka.ConfigMap
	group  string
	topics []string
	logger *slog.Logger
	// lag is the group's backlog as last measured, read by Lag from any
	// goroutine; stalled carries the watchdog's verdicts to Run.
	lag     atomic.Pointer[lagMeasurement]
	stalled chan string

	// StallAfter is how long messages may wait on a partition of a stable
	// group whose committed offset does not move before the member rejoins;
	// CheckEvery how often the group is looked at (and the lag measured).
	// Set them before Run.
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
		group:      group,
		topics:     topics,
		logger:     logger.With("group", group),
		stalled:    make(chan string, 1),
		StallAfter: DefaultStallAfter,
		CheckEvery: DefaultCheckEvery,
	}
	var err error
	c.admin, err = kafka.NewAdminClient(&kafka.ConfigMap{
		"bootstrap.servers":        brokers,
		"client.id":                group + "-watchdog",
		"log_level":                logLevel,
		"reconnect.backoff.max.ms": reconnectBackoffMaxMs,
	})
	if err != nil {
		return nil, fmt.Errorf("kafka admin client: %w", err)
	}
	if c.c, err = c.join(); err != nil {
		c.admin.Close()
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
	watchCtx, stopWatching := context.WithCancel(ctx)
	watched := make(chan struct{})
	go func() {
		defer close(watched)
		c.watch(watchCtx)
	}()
	defer func() {
		stopWatching()
		<-watched
		c.admin.Close()
		c.close(c.c)
	}()
	var lastWarn time.Time
	for ctx.Err() == nil {
		select {
		case reason := <-c.stalled:
			c.logger.Warn("kafka consumer group stalled; rejoining", "reason", reason)
			c.rebuild()
		default:
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

// watch looks at the group every CheckEvery until ctx ends: it records the
// lag, and tells Run when the group is stalled. It works beside a handler
// that holds a message (the lag keeps being measured); Run acts on a verdict
// once the handler returns.
func (c *Consumer) watch(ctx context.Context) {
	w := newWatchdog(c.StallAfter)
	tick := time.NewTicker(c.CheckEvery)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		look := c.look(ctx)
		now := time.Now()
		if look.err == nil {
			c.lag.Store(&lagMeasurement{lags: look.backlog, at: now})
		}
		if reason := w.observe(now, look); reason != "" {
			select {
			case c.stalled <- reason:
			default: // Run has not taken the last verdict yet
			}
			w = newWatchdog(c.StallAfter)
		}
	}
}

// watchdog decides, from successive looks at the group, whether it is
// stalled.
type watchdog struct {
	stallAfter time.Duration
	// waiting holds, for each partition with messages waiting while the
	// group is stable, the committed offset last seen and since when it
	// has not moved.
	waiting map[string]stuckSince
}

type stuckSince struct {
	committed int64
	since     time.Time
}

func newWatchdog(stallAfter time.Duration) *watchdog {
	return &watchdog{stallAfter: stallAfter, waiting: map[string]stuckSince{}}
}

// look is one look at the group: its state and its backlog, or why the
// broker could not tell.
type look struct {
	state   kafka.ConsumerGroupState
	backlog []PartitionLag
	err     error
}

// observe takes one look at now and returns why the group is stalled, or ""
// when it is not: it is stable, and a partition has had messages waiting
// with its committed offset unmoved for stallAfter. While the group
// rebalances (or has no members yet) the clocks start again: a rebalance
// that waits for a dead member ends by itself, and a rejoin would restart
// it. A look the broker could not answer changes nothing (a member cut off
// from the broker gains nothing by rejoining).
func (w *watchdog) observe(now time.Time, l look) string {
	if l.err != nil {
		return ""
	}
	if l.state != kafka.ConsumerGroupStateStable {
		clear(w.waiting)
		return ""
	}
	seen := make(map[string]bool, len(l.backlog))
	stalled := ""
	for _, p := range l.backlog {
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
			stalled = fmt.Sprintf("%s: %d messages wait and the committed offset %d has not moved for %v in a stable group",
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

// PartitionLag is how far a group is behind on one partition.
type PartitionLag struct {
	Topic     string
	Partition int32
	// Committed is the group's committed offset (-1 when it has none);
	// End the partition's high watermark; Lag the messages in between.
	Committed, End, Lag int64
}

func (p PartitionLag) key() string { return partitionKey(p.Topic, p.Partition) }

func partitionKey(topic string, partition int32) string {
	return topic + "/" + strconv.Itoa(int(partition))
}

// lagMeasurement is one look at the group's backlog and when it was taken.
type lagMeasurement struct {
	lags []PartitionLag
	at   time.Time
}

// Lag returns the group's backlog on every partition of the consumer's
// topics as Run last measured it (every CheckEvery, for its watchdog), and
// when; at is zero before the first answer from the broker, and stops
// moving while the broker does not answer. It does no I/O and is safe to
// call from any goroutine while Run runs, whatever the watchdog does to the
// librdkafka consumer.
func (c *Consumer) Lag() (lags []PartitionLag, at time.Time) {
	m := c.lag.Load()
	if m == nil {
		return nil, time.Time{}
	}
	return slices.Clone(m.lags), m.at
}

// adminTimeout bounds each look at the group; closeWait is how long a
// stalled consumer is given to leave the group.
const (
	adminTimeout = 5 * time.Second
	closeWait    = 5 * time.Second
)

// look asks the broker, through the admin client, for the group's state and
// for its committed offsets beside the ends of every partition of the
// consumer's topics.
func (c *Consumer) look(ctx context.Context) look {
	ctx, cancel := context.WithTimeout(ctx, adminTimeout)
	defer cancel()
	described, err := c.admin.DescribeConsumerGroups(ctx, []string{c.group})
	if err != nil {
		return look{err: fmt.Errorf("describe group: %w", err)}
	}
	if len(described.ConsumerGroupDescriptions) != 1 {
		return look{err: errors.New("describe group: no answer for the group")}
	}
	desc := described.ConsumerGroupDescriptions[0]
	if desc.Error.Code() != kafka.ErrNoError {
		return look{err: fmt.Errorf("describe group: %w", desc.Error)}
	}
	backlog, err := c.backlog(ctx)
	return look{state: desc.State, backlog: backlog, err: err}
}

// backlog compares the group's committed offsets with the ends of every
// partition of the consumer's topics.
func (c *Consumer) backlog(ctx context.Context) ([]PartitionLag, error) {
	var parts []kafka.TopicPartition
	for _, topic := range c.topics {
		md, err := c.admin.GetMetadata(&topic, false, int(adminTimeout.Milliseconds()))
		if err != nil {
			return nil, fmt.Errorf("metadata of %s: %w", topic, err)
		}
		for _, p := range md.Topics[topic].Partitions {
			parts = append(parts, kafka.TopicPartition{Topic: &topic, Partition: p.ID})
		}
	}
	offsets, err := c.admin.ListConsumerGroupOffsets(ctx, []kafka.ConsumerGroupTopicPartitions{{Group: c.group, Partitions: parts}})
	if err != nil {
		return nil, fmt.Errorf("committed offsets: %w", err)
	}
	if len(offsets.ConsumerGroupsTopicPartitions) != 1 {
		return nil, errors.New("committed offsets: no answer for the group")
	}
	earliest, err := c.ends(ctx, parts, kafka.EarliestOffsetSpec)
	if err != nil {
		return nil, err
	}
	latest, err := c.ends(ctx, parts, kafka.LatestOffsetSpec)
	if err != nil {
		return nil, err
	}
	lags := make([]PartitionLag, 0, len(parts))
	for _, tp := range offsets.ConsumerGroupsTopicPartitions[0].Partitions {
		if tp.Error != nil {
			return nil, fmt.Errorf("committed offset of %s/%d: %w", *tp.Topic, tp.Partition, tp.Error)
		}
		key := partitionKey(*tp.Topic, tp.Partition)
		pl := PartitionLag{Topic: *tp.Topic, Partition: tp.Partition, Committed: -1, End: latest[key]}
		from := earliest[key] // no commit yet: the group starts at the earliest message
		if tp.Offset >= 0 {
			pl.Committed = int64(tp.Offset)
			from = max(pl.Committed, from)
		}
		pl.Lag = max(pl.End-from, 0)
		lags = append(lags, pl)
	}
	return lags, nil
}

// ends returns the earliest or latest offset of each partition.
func (c *Consumer) ends(ctx context.Context, parts []kafka.TopicPartition, spec kafka.OffsetSpec) (map[string]int64, error) {
	req := make(map[kafka.TopicPartition]kafka.OffsetSpec, len(parts))
	for _, tp := range parts {
		req[tp] = spec
	}
	res, err := c.admin.ListOffsets(ctx, req)
	if err != nil {
		return nil, fmt.Errorf("list offsets: %w", err)
	}
	ends := make(map[string]int64, len(parts))
	for tp, info := range res.ResultInfos {
		if info.Error.Code() != kafka.ErrNoError {
			return nil, fmt.Errorf("offsets of %s/%d: %w", *tp.Topic, tp.Partition, info.Error)
		}
		ends[partitionKey(*tp.Topic, tp.Partition)] = int64(info.Offset)
	}
	return ends, nil
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
