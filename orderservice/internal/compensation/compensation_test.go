package compensation_test

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/confluentinc/confluent-kafka-go/v2/kafka"

	"github.com/stockfence/stockfence/orderservice/internal/compensation"
	"github.com/stockfence/stockfence/orderservice/internal/order"
	"github.com/stockfence/stockfence/shared/contract"
	"github.com/stockfence/stockfence/shared/kafkaclient"
)

var discard = slog.New(slog.NewTextHandler(io.Discard, nil))

type fakeOutbox struct {
	mu     sync.Mutex
	rows   []order.OutboxMessage
	sent   map[int64]bool
	failed map[int64]time.Time
}

func (f *fakeOutbox) ClaimOutbox(_ context.Context, limit int, _ time.Duration) ([]order.OutboxMessage, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	n := min(limit, len(f.rows))
	out := f.rows[:n]
	f.rows = f.rows[n:]
	return out, nil
}

func (f *fakeOutbox) MarkSent(_ context.Context, id int64) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.sent[id] = true
	return nil
}

func (f *fakeOutbox) MarkFailed(_ context.Context, id int64, _ string, next time.Time) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.failed[id] = next
	return nil
}

// publisher acknowledges every message except those whose key is in fail.
type publisher struct {
	fail map[string]bool
	got  []kafkaclient.Message
}

func (p *publisher) Publish(_ context.Context, msgs ...kafkaclient.Message) []error {
	errs := make([]error, len(msgs))
	for i, m := range msgs {
		p.got = append(p.got, m)
		if p.fail[string(m.Key)] {
			errs[i] = errors.New("broker down")
		}
	}
	return errs
}

func TestRelayMarksSentAndBacksOffFailures(t *testing.T) {
	store := &fakeOutbox{sent: map[int64]bool{}, failed: map[int64]time.Time{}, rows: []order.OutboxMessage{
		{ID: 1, Topic: contract.TopicCompensations, Key: "a1", Payload: []byte(`{}`)},
		{ID: 2, Topic: contract.TopicCompensations, Key: "a2", Payload: []byte(`{}`), Attempts: 3},
	}}
	pub := &publisher{fail: map[string]bool{"a2": true}}
	r := compensation.NewRelay(store, pub, time.Hour, discard)
	start := time.Now()
	if n := r.Pass(context.Background()); n != 2 {
		t.Fatalf("Pass = %d, want 2", n)
	}
	if len(pub.got) != 2 || string(pub.got[0].Key) != "a1" || pub.got[0].Topic != contract.TopicCompensations {
		t.Fatalf("published %+v", pub.got)
	}
	if !store.sent[1] || store.sent[2] {
		t.Fatalf("sent = %v, want only 1", store.sent)
	}
	// Fourth failure: 1 s doubled three times.
	if wait := store.failed[2].Sub(start); wait < 7*time.Second || wait > 9*time.Second {
		t.Fatalf("message 2 retried in %v, want 8 s", wait)
	}
}

type resultStore struct {
	calls int
	errs  []error
	got   contract.CompensationResult
}

func (s *resultStore) ApplyResult(_ context.Context, r contract.CompensationResult) (order.Order, error) {
	s.calls++
	s.got = r
	if len(s.errs) > 0 {
		err := s.errs[0]
		s.errs = s.errs[1:]
		return order.Order{}, err
	}
	return order.Order{ID: r.OrderID, Status: order.StatusCancelled}, nil
}

func message(value string) *kafka.Message {
	topic := contract.TopicCompensationResults
	return &kafka.Message{TopicPartition: kafka.TopicPartition{Topic: &topic}, Value: []byte(value)}
}

func TestResultHandler(t *testing.T) {
	ctx := context.Background()
	valid := `{"attemptId":"a1","orderId":"o1","status":"COMPENSATED"}`

	store := &resultStore{errs: []error{errors.New("orders db down"), errors.New("orders db down")}}
	if err := compensation.ResultHandler(store, discard)(ctx, message(valid)); err != nil {
		t.Fatalf("handler = %v, want nil after the database came back", err)
	}
	if store.calls != 3 || store.got.Status != contract.StatusCompensated {
		t.Fatalf("calls = %d, got %+v; want 3 tries of the result", store.calls, store.got)
	}

	for _, bad := range []string{`not json`, `{"status":"COMPENSATED"}`} {
		store := &resultStore{}
		if err := compensation.ResultHandler(store, discard)(ctx, message(bad)); err != nil || store.calls != 0 {
			t.Fatalf("undecodable %q: err %v, calls %d; want skipped", bad, err, store.calls)
		}
	}
	unknown := &resultStore{errs: []error{order.ErrNotFound}}
	if err := compensation.ResultHandler(unknown, discard)(ctx, message(valid)); err != nil || unknown.calls != 1 {
		t.Fatalf("unknown order: err %v, calls %d; want skipped after one try", err, unknown.calls)
	}

	stopped, cancel := context.WithCancel(ctx)
	cancel()
	down := &resultStore{errs: []error{errors.New("down")}}
	if err := compensation.ResultHandler(down, discard)(stopped, message(valid)); err == nil {
		t.Fatal("handler returned nil after its context ended without storing the result")
	}
}
