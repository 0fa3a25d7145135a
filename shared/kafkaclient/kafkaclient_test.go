package kafkaclient_test

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"slices"
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

// TestLag: Lag reports nothing before Run has measured; then, also while a
// handler holds a message, what the group has not committed yet; and 0 once
// all is handled.
// A goroutine reads it all along, as a metrics scrape does.
func TestLag(t *testing.T) {
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
	// Each message takes longer than CheckEvery: the lag is measured while
	// a handler holds a message, and reflects every earlier commit.
	const handleTime = 300 * time.Millisecond
	cons.CheckEvery = 100 * time.Millisecond
	if lags, at := cons.Lag(); !at.IsZero() || lags != nil {
		t.Fatalf("Lag before Run = %v at %v, want nothing", lags, at)
	}
	p, err := kafkaclient.NewProducer(addr, "test", 10*time.Second, discard)
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close(time.Second)
	ctx, cancel := context.WithTimeout(context.Background(), 40*time.Second)
	defer cancel()
	const n = 3
	for i := range n {
		if err := p.Publish(ctx, kafkaclient.Message{Topic: "t", Value: []byte{byte('0' + i)}})[0]; err != nil {
			t.Fatalf("publish %d: %v", i, err)
		}
	}
	total := func() (int64, time.Time) {
		lags, at := cons.Lag()
		var sum int64
		for _, l := range lags {
			if l.Topic != "t" || l.Partition != 0 {
				t.Errorf("lag reported for %s/%d, want only t/0", l.Topic, l.Partition)
			}
			sum += l.Lag
		}
		return sum, at
	}

	scraped := make(chan struct{})
	go func() {
		defer close(scraped)
		for ctx.Err() == nil {
			total()
			time.Sleep(5 * time.Millisecond)
		}
	}()
	var (
		handled int64
		seen    []int64 // the lag Lag reported as each message arrived
	)
	done := make(chan struct{})
	go func() {
		defer close(done)
		cons.Run(ctx, func(context.Context, *kafka.Message) error {
			time.Sleep(handleTime)
			lag, at := total()
			if at.IsZero() {
				t.Errorf("message %d: no lag measured yet", handled)
			}
			seen = append(seen, lag)
			handled++
			return nil
		})
	}()
	for {
		if lag, at := total(); !at.IsZero() && lag == 0 {
			break
		}
		select {
		case <-ctx.Done():
			lag, at := total()
			t.Fatalf("lag %d measured at %v never reached 0", lag, at)
		case <-time.After(20 * time.Millisecond):
		}
	}
	cancel()
	<-done
	<-scraped
	if want := []int64{3, 2, 1}; !slices.Equal(seen, want) {
		t.Fatalf("lag measured while messages 1, 2 and 3 were handled = %v, want %v", seen, want)
	}
}
