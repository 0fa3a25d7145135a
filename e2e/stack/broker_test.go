package stack_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/confluentinc/confluent-kafka-go/v2/kafka"
	"github.com/twmb/franz-go/pkg/kfake"

	"github.com/stockfence/stockfence/e2e/faults"
	"github.com/stockfence/stockfence/e2e/stack"
	"github.com/stockfence/stockfence/shared/contract"
	"github.com/stockfence/stockfence/shared/kafkaclient"
)

// deliveryTimeout is the producers' message timeout: short, so that a
// publish to a stopped broker fails quickly.
const deliveryTimeout = 2 * time.Second

var discard = slog.New(slog.NewTextHandler(io.Discard, nil))

func startBroker(t *testing.T, dir string) *stack.Broker {
	t.Helper()
	b, err := stack.StartBroker(dir, 0)
	if err != nil {
		t.Fatalf("start broker: %v", err)
	}
	t.Cleanup(func() {
		if err := b.Close(); err != nil {
			t.Errorf("close broker: %v", err)
		}
	})
	return b
}

// TestBroker follows the broker through a Stop and Start and a Close and
// reload, as a Kafka outage and a restart of the launcher would: what was
// published and what a consumer group committed survive both.
func TestBroker(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	b := startBroker(t, dir)
	if !strings.HasPrefix(b.Addr(), "127.0.0.1:") || strings.HasSuffix(b.Addr(), ":0") {
		t.Fatalf("Addr = %q, want 127.0.0.1:<port>", b.Addr())
	}
	if !b.Running() {
		t.Fatal("not running after StartBroker")
	}
	checkTopics(t, b.Addr())

	p := newProducer(t, b.Addr())
	publish(t, p, "m1", "m2", "m3")
	if got := consume(t, b.Addr(), "g", 1); !slices.Equal(got, []string{"m1"}) {
		t.Fatalf("group g consumed %v, want [m1]", got)
	}

	// A connection open across the Stop is closed by it.
	conn, err := net.Dial("tcp", b.Addr())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	addr := b.Addr()
	if err := b.Stop(); err != nil {
		t.Fatalf("stop: %v", err)
	}
	if err := b.Stop(); err != nil {
		t.Errorf("second stop: %v", err)
	}
	if b.Running() {
		t.Error("running after Stop")
	}
	if b.Addr() != addr {
		t.Errorf("Addr after Stop = %q, want %q", b.Addr(), addr)
	}
	_ = conn.SetReadDeadline(time.Now().Add(2 * time.Second))
	if _, err := conn.Read(make([]byte, 1)); !errors.Is(err, io.EOF) {
		t.Errorf("read on a connection after Stop: err = %v, want EOF", err)
	}
	if c, err := net.DialTimeout("tcp", addr, time.Second); err == nil {
		c.Close()
		t.Error("a new connection was accepted after Stop")
	}
	// A publish while the broker is away is not acknowledged: it fails at its
	// delivery timeout, or is still waiting for a report 2 s later. (A
	// fresh producer: one that was connected can take librdkafka's maximum
	// reconnect backoff, 10 s, to report.)
	lost, err := kafkaclient.NewProducer(addr, "stack-test-lost", deliveryTimeout, discard)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), deliveryTimeout+2*time.Second)
	err = lost.Publish(ctx, msg("lost"))[0]
	cancel()
	lost.Close(0)
	if err == nil {
		t.Error("publish to a stopped broker succeeded")
	}

	if err := b.Start(); err != nil {
		t.Fatalf("start: %v", err)
	}
	if err := b.Start(); err != nil {
		t.Errorf("second start: %v", err)
	}
	if !b.Running() || b.Addr() != addr {
		t.Fatalf("after Start: running %v on %s, want running on %s", b.Running(), b.Addr(), addr)
	}
	// The producer from before the outage carries on.
	publishEventually(t, p, "m4")
	if got := consume(t, addr, "g", 3); !slices.Equal(got, []string{"m2", "m3", "m4"}) {
		t.Fatalf("group g consumed %v after Stop and Start, want [m2 m3 m4] (m1 was committed)", got)
	}

	// Close, then a new Broker on the same directory: a restarted launcher.
	if err := b.Close(); err != nil {
		t.Fatalf("close: %v", err)
	}
	if err := b.Close(); err != nil {
		t.Errorf("second close: %v", err)
	}
	if err := b.Start(); err == nil {
		t.Error("Start after Close succeeded, want an error")
	}
	b2 := startBroker(t, dir)
	checkTopics(t, b2.Addr())
	if got := consume(t, b2.Addr(), "fresh", 4); !slices.Equal(got, []string{"m1", "m2", "m3", "m4"}) {
		t.Fatalf("a new group consumed %v after the reload, want [m1 m2 m3 m4]", got)
	}
	p2 := newProducer(t, b2.Addr())
	publish(t, p2, "m5")
	if got := consume(t, b2.Addr(), "g", 1); !slices.Equal(got, []string{"m5"}) {
		t.Fatalf("group g consumed %v after the reload, want [m5] (m1-m4 were committed)", got)
	}
}

// TestBrokerConcurrentStopStart: Stop, Start and Running from several
// goroutines at once leave a broker that works.
func TestBrokerConcurrentStopStart(t *testing.T) {
	t.Parallel()
	b := startBroker(t, t.TempDir())
	var wg sync.WaitGroup
	for range 4 {
		wg.Go(func() {
			for range 5 {
				if err := b.Stop(); err != nil {
					t.Errorf("stop: %v", err)
				}
				_ = b.Running()
				if err := b.Start(); err != nil {
					t.Errorf("start: %v", err)
				}
			}
		})
	}
	wg.Wait()
	if !b.Running() {
		t.Fatal("not running after the last Start")
	}
	checkTopics(t, b.Addr())
}

// TestBrokerStartWaitsForPort: a port still taken when Start comes is waited
// for; a fixed port that is taken at StartBroker is an error at once.
func TestBrokerStartWaitsForPort(t *testing.T) {
	t.Parallel()
	b := startBroker(t, t.TempDir())
	if err := b.Stop(); err != nil {
		t.Fatal(err)
	}
	l, err := net.Listen("tcp", b.Addr())
	if err != nil {
		t.Fatalf("take the broker's port: %v", err)
	}
	time.AfterFunc(500*time.Millisecond, func() { l.Close() })
	start := time.Now()
	if err := b.Start(); err != nil {
		t.Fatalf("start while the port is taken for 500ms: %v", err)
	}
	if took := time.Since(start); took < 400*time.Millisecond {
		t.Errorf("start took %v, want it to have waited for the port", took)
	}

	var port int
	if _, err := fmt.Sscan(b.Addr()[strings.LastIndex(b.Addr(), ":")+1:], &port); err != nil {
		t.Fatal(err)
	}
	if _, err := stack.StartBroker(t.TempDir(), port); err == nil || !strings.Contains(err.Error(), "not free") {
		t.Errorf("StartBroker on a taken port: err = %v, want one saying the port is not free", err)
	}
}

// TestBrokerCreatesMissingTopics: kfake ignores its seed topics when it
// reloads a data directory, so StartBroker creates the contract topics that
// a directory lacks, and keeps what it has.
func TestBrokerCreatesMissingTopics(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	c, err := kfake.NewCluster(kfake.Ports(0), kfake.DataDir(dir), kfake.SeedTopics(1, "other"))
	if err != nil {
		t.Fatal(err)
	}
	c.Close()
	if _, err := os.Stat(filepath.Join(dir, "meta.json")); err != nil {
		t.Fatalf("kfake saved no state: %v", err)
	}
	b := startBroker(t, dir)
	md := checkTopics(t, b.Addr())
	if got := len(md.Topics["other"].Partitions); got != 1 {
		t.Errorf("topic other has %d partitions after the reload, want 1", got)
	}
}

// checkTopics fails unless every contract topic exists with 3 partitions.
func checkTopics(t *testing.T, addr string) *kafka.Metadata {
	t.Helper()
	admin, err := kafka.NewAdminClient(&kafka.ConfigMap{"bootstrap.servers": addr, "log_level": 4})
	if err != nil {
		t.Fatal(err)
	}
	defer admin.Close()
	md, err := admin.GetMetadata(nil, true, 10000)
	if err != nil {
		t.Fatalf("metadata from %s: %v", addr, err)
	}
	for _, topic := range contract.Topics {
		tm, ok := md.Topics[topic]
		if !ok || tm.Error.Code() != kafka.ErrNoError {
			t.Errorf("topic %s: present %v, error %v; want it to exist", topic, ok, tm.Error)
			continue
		}
		if got := len(tm.Partitions); got != 3 {
			t.Errorf("topic %s has %d partitions, want 3", topic, got)
		}
	}
	return md
}

func newProducer(t *testing.T, addr string) *kafkaclient.Producer {
	t.Helper()
	p, err := kafkaclient.NewProducer(addr, "stack-test", deliveryTimeout, discard)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Close(time.Second) })
	return p
}

// msg is a compensation-topic message; one key puts every message in one
// partition, so that they are consumed in the order published.
func msg(value string) kafkaclient.Message {
	return kafkaclient.Message{Topic: contract.TopicCompensations, Key: []byte("attempt-1"), Value: []byte(value)}
}

func publish(t *testing.T, p *kafkaclient.Producer, values ...string) {
	t.Helper()
	msgs := make([]kafkaclient.Message, len(values))
	for i, v := range values {
		msgs[i] = msg(v)
	}
	for i, err := range p.Publish(t.Context(), msgs...) {
		if err != nil {
			t.Fatalf("publish %s: %v", values[i], err)
		}
	}
}

// publishEventually publishes value, trying again while the producer
// reconnects to a broker that has just come back.
func publishEventually(t *testing.T, p *kafkaclient.Producer, value string) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for {
		err := p.Publish(t.Context(), msg(value))[0]
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("publish %s after the broker came back: %v", value, err)
		}
	}
}

// consume reads n messages as a member of group, committing each, and
// returns their values. It fails after 15 s.
func consume(t *testing.T, addr, group string, n int) []string {
	t.Helper()
	c, err := kafkaclient.NewConsumer(addr, group, []string{contract.TopicCompensations}, discard)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 15*time.Second)
	defer cancel()
	var got []string
	c.Run(ctx, func(_ context.Context, m *kafka.Message) error {
		got = append(got, string(m.Value))
		if len(got) == n {
			cancel() // Run commits this message, then leaves the group
		}
		return nil
	})
	if len(got) < n {
		t.Fatalf("group %s consumed %v within 15 s, want %d messages", group, got, n)
	}
	return got
}

// TestBrokerAdvertise: once the broker advertises a proxy, clients that
// bootstrap from the broker itself still reach it only through the proxy: with
// the proxy down nothing is delivered, with it up again everything is.
func TestBrokerAdvertise(t *testing.T) {
	t.Parallel()
	b := startBroker(t, t.TempDir())
	proxy, err := faults.NewProxy("kafka", b.Addr())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { proxy.Close() })
	if err := b.Advertise(proxy.Addr()); err != nil {
		t.Fatal(err)
	}
	if err := proxy.Down(); err != nil {
		t.Fatal(err)
	}
	p, err := kafkaclient.NewProducer(b.Addr(), "advertise", deliveryTimeout, discard)
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close(time.Second)
	msg := kafkaclient.Message{Topic: contract.TopicCompensations, Value: []byte("x")}
	if err := p.Publish(t.Context(), msg)[0]; err == nil {
		t.Fatal("delivered with the advertised proxy down: the client bypassed the proxy")
	}
	if err := proxy.Up(); err != nil {
		t.Fatal(err)
	}
	if err := p.Publish(t.Context(), msg)[0]; err != nil {
		t.Fatalf("not delivered through the proxy: %v", err)
	}
}
