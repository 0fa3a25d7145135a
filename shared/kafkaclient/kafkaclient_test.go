package kafkaclient_test

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/confluentinc/confluent-kafka-go/v2/kafka"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/stockfence/stockfence/shared/kafkaclient"
)

var discard = slog.New(slog.NewTextHandler(io.Discard, nil))

func broker(t *testing.T) string {
	t.Helper()
	c, err := kfake.NewCluster(kfake.Ports(0), kfake.SeedTopics(2, "t"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	return c.ListenAddrs()[0]
}

// TestPublishConsumeCommit: published messages are consumed once each; an
// offset is committed only after the handler returns nil, so a message whose
// handling was cut short is delivered again to the next member.
func TestPublishConsumeCommit(t *testing.T) {
	addr := broker(t)
	p, err := kafkaclient.NewProducer(addr, "test", 10*time.Second, discard)
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close(5 * time.Second)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	var msgs []kafkaclient.Message
	for _, v := range []string{"a", "b", "c"} {
		msgs = append(msgs, kafkaclient.Message{Topic: "t", Key: []byte("k"), Value: []byte(v), Headers: map[string]string{"h": v}})
	}
	for i, err := range p.Publish(ctx, msgs...) {
		if err != nil {
			t.Fatalf("publish %d: %v", i, err)
		}
	}

	// The first member handles "a" and is stopped while handling "b".
	first, err := kafkaclient.NewConsumer(addr, "g", []string{"t"}, discard)
	if err != nil {
		t.Fatal(err)
	}
	fctx, stop := context.WithCancel(ctx)
	var seen []string
	first.Run(fctx, func(ctx context.Context, m *kafka.Message) error {
		v := string(m.Value)
		if kafkaclient.Header(m, "h") != v {
			t.Errorf("header h = %q, want %q", kafkaclient.Header(m, "h"), v)
		}
		seen = append(seen, v)
		if v == "b" {
			stop()
			return ctx.Err()
		}
		return nil
	})
	if len(seen) != 2 || seen[0] != "a" {
		t.Fatalf("first member saw %v, want a then b", seen)
	}

	// The next member starts after "a" (committed) and gets "b" again.
	second, err := kafkaclient.NewConsumer(addr, "g", []string{"t"}, discard)
	if err != nil {
		t.Fatal(err)
	}
	sctx, stop2 := context.WithCancel(ctx)
	var (
		mu   sync.Mutex
		more []string
	)
	go func() {
		<-time.After(20 * time.Second)
		stop2()
	}()
	second.Run(sctx, func(ctx context.Context, m *kafka.Message) error {
		mu.Lock()
		defer mu.Unlock()
		more = append(more, string(m.Value))
		if len(more) == 2 {
			stop2()
		}
		return nil
	})
	if len(more) != 2 || more[0] != "b" || more[1] != "c" {
		t.Fatalf("second member saw %v, want b then c", more)
	}
}

func TestPublishFailsWhenUndeliverable(t *testing.T) {
	p, err := kafkaclient.NewProducer("127.0.0.1:1", "test", 500*time.Millisecond, discard)
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close(100 * time.Millisecond)
	errs := p.Publish(context.Background(), kafkaclient.Message{Topic: "t", Value: []byte("x")})
	var kerr kafka.Error
	if errs[0] == nil || !errors.As(errs[0], &kerr) {
		t.Fatalf("publish to no broker = %v, want a delivery error", errs[0])
	}
}

// TestStalledMemberRejoins: a member whose fetches the broker never answers
// (as when librdkafka is stuck mid-rebalance) holds a waiting message; the
// watchdog rebuilds it and the message is handled long before librdkafka's
// own request timeout (60 s) would notice.
func TestStalledMemberRejoins(t *testing.T) {
	c, err := kfake.NewCluster(kfake.Ports(0), kfake.SeedTopics(1, "t"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	addr := c.ListenAddrs()[0]

	cons, err := kafkaclient.NewConsumer(addr, "g", []string{"t"}, discard)
	if err != nil {
		t.Fatal(err)
	}
	cons.StallAfter, cons.CheckEvery = 3*time.Second, 500*time.Millisecond
	ctx, cancel := context.WithTimeout(context.Background(), 40*time.Second)
	defer cancel()
	handled := make(chan string, 1)
	done := make(chan struct{})
	go func() {
		defer close(done)
		cons.Run(ctx, func(ctx context.Context, m *kafka.Message) error {
			handled <- string(m.Value)
			return nil
		})
	}()

	// Swallow every fetch for 8 s: the member is assigned the partition but
	// never sees what waits in it.
	swallowUntil := time.Now().Add(8 * time.Second)
	var swallowed atomic.Int32
	c.ControlKey(int16(kmsg.Fetch), func(kmsg.Request) (kmsg.Response, error, bool) {
		c.KeepControl()
		if time.Now().Before(swallowUntil) {
			swallowed.Add(1)
			return nil, nil, true
		}
		return nil, nil, false
	})
	p, err := kafkaclient.NewProducer(addr, "test", 10*time.Second, discard)
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close(time.Second)
	if err := p.Publish(ctx, kafkaclient.Message{Topic: "t", Value: []byte("x")})[0]; err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	select {
	case v := <-handled:
		if v != "x" {
			t.Fatalf("handled %q, want x", v)
		}
		if swallowed.Load() == 0 {
			t.Fatal("no fetch was swallowed: the test did not stall the member")
		}
		t.Logf("handled %v after publishing (%d fetches swallowed)", time.Since(start).Round(100*time.Millisecond), swallowed.Load())
	case <-time.After(25 * time.Second):
		t.Fatal("the stalled member never handled the waiting message")
	}
	cancel()
	<-done
}
