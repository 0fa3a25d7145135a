package compensation_test

import (
	"context"
	"database/sql/driver"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/confluentinc/confluent-kafka-go/v2/kafka"
	"github.com/google/uuid"

	"github.com/stockfence/stockfence/productservice/internal/compensation"
	"github.com/stockfence/stockfence/productservice/internal/stock"
	"github.com/stockfence/stockfence/shared/contract"
	"github.com/stockfence/stockfence/shared/kafkaclient"
)

var discard = slog.New(slog.NewTextHandler(io.Discard, nil))

// fastRetry keeps the tests short: 3 tries, 10 ms doubling to 40 ms.
var fastRetry = compensation.Retry{Tries: 3, Initial: 10 * time.Millisecond, Max: 40 * time.Millisecond}

// fakeStore answers Compensate from a function and counts the calls.
type fakeStore struct {
	mu    sync.Mutex
	calls int
	fn    func(call int, attemptID, orderID string) (contract.AttemptStatus, error)
}

func (s *fakeStore) Compensate(_ context.Context, attemptID, orderID string) (contract.AttemptStatus, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.calls++
	return s.fn(s.calls, attemptID, orderID)
}

// fakePublisher records what it acknowledges; fail decides, per call, the
// error of a publish (nil: acknowledged).
type fakePublisher struct {
	mu    sync.Mutex
	sent  []kafkaclient.Message
	tries int
	fail  func(ctx context.Context, try int) error
}

func (p *fakePublisher) Publish(ctx context.Context, msgs ...kafkaclient.Message) []error {
	p.mu.Lock()
	p.tries++
	try := p.tries
	p.mu.Unlock()
	errs := make([]error, len(msgs))
	var err error
	if p.fail != nil {
		err = p.fail(ctx, try)
	}
	for i := range msgs {
		errs[i] = err
	}
	if err == nil {
		p.mu.Lock()
		p.sent = append(p.sent, msgs...)
		p.mu.Unlock()
	}
	return errs
}

func message(value string, key string) *kafka.Message {
	topic := contract.TopicCompensations
	return &kafka.Message{
		TopicPartition: kafka.TopicPartition{Topic: &topic, Partition: 2, Offset: 41},
		Key:            []byte(key),
		Value:          []byte(value),
	}
}

func compensationJSON(t *testing.T, attemptID, orderID string) string {
	t.Helper()
	raw, err := json.Marshal(contract.Compensation{
		MessageID: uuid.NewString(), AttemptID: attemptID, OrderID: orderID, Reason: "cancelled", CreatedAt: time.Now(),
	})
	if err != nil {
		t.Fatal(err)
	}
	return string(raw)
}

func TestHandleDecodes(t *testing.T) {
	t.Parallel()
	attemptID, orderID := uuid.NewString(), uuid.NewString()
	tests := []struct {
		name      string
		value     string
		wantTopic string
		wantCalls int
	}{
		{"valid", compensationJSON(t, attemptID, orderID), contract.TopicCompensationResults, 1},
		{"unknown fields allowed", `{"attemptId":"` + attemptID + `","orderId":"` + orderID + `","priority":7}`, contract.TopicCompensationResults, 1},
		{"not json", `not json`, contract.TopicCompensationsDLQ, 0},
		{"missing orderId", `{"attemptId":"` + attemptID + `"}`, contract.TopicCompensationsDLQ, 0},
		{"missing attemptId", `{"orderId":"` + orderID + `"}`, contract.TopicCompensationsDLQ, 0},
		{"uppercase id", `{"attemptId":"` + strings.ToUpper(attemptID) + `","orderId":"` + orderID + `"}`, contract.TopicCompensationsDLQ, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			store := &fakeStore{fn: func(int, string, string) (contract.AttemptStatus, error) {
				return contract.StatusCompensated, nil
			}}
			pub := &fakePublisher{}
			h := compensation.NewHandler(compensation.Config{Store: store, Publisher: pub, Logger: discard, Retry: fastRetry})
			if err := h.Handle(context.Background(), message(tt.value, attemptID)); err != nil {
				t.Fatalf("Handle = %v, want nil", err)
			}
			if store.calls != tt.wantCalls {
				t.Fatalf("Compensate calls = %d, want %d", store.calls, tt.wantCalls)
			}
			if len(pub.sent) != 1 || pub.sent[0].Topic != tt.wantTopic {
				t.Fatalf("published %+v, want one message to %s", pub.sent, tt.wantTopic)
			}
			got := pub.sent[0]
			if string(got.Key) != attemptID {
				t.Fatalf("key = %q, want %q", got.Key, attemptID)
			}
			if tt.wantTopic == contract.TopicCompensationsDLQ {
				if string(got.Value) != tt.value {
					t.Fatalf("dead letter value = %q, want the original %q", got.Value, tt.value)
				}
				if got.Headers[contract.HeaderAttempts] != "3" || got.Headers[contract.HeaderOriginalOffset] != "2/41" ||
					!strings.Contains(got.Headers[contract.HeaderError], "decode compensation") {
					t.Fatalf("dead letter headers = %v, want attempts 3, original-offset 2/41, a decode error", got.Headers)
				}
				return
			}
			var res contract.CompensationResult
			if err := json.Unmarshal(got.Value, &res); err != nil {
				t.Fatal(err)
			}
			if want := (contract.CompensationResult{AttemptID: attemptID, OrderID: orderID, Status: contract.StatusCompensated}); res != want {
				t.Fatalf("result = %+v, want %+v", res, want)
			}
		})
	}
}

// TestHandleRetriesTheStore: failures short of the last try are retried; the
// mismatch error, which no retry cures, ends in the DLQ like any other.
func TestHandleRetriesTheStore(t *testing.T) {
	t.Parallel()
	attemptID, orderID := uuid.NewString(), uuid.NewString()
	tests := []struct {
		name      string
		fn        func(call int, attemptID, orderID string) (contract.AttemptStatus, error)
		wantCalls int
		wantTopic string
	}{
		{"succeeds on the last try", func(call int, _, _ string) (contract.AttemptStatus, error) {
			if call < 3 {
				return "", errors.New("database is away")
			}
			return contract.StatusAborted, nil
		}, 3, contract.TopicCompensationResults},
		{"keeps failing", func(int, string, string) (contract.AttemptStatus, error) {
			return "", errors.New("database is away")
		}, 3, contract.TopicCompensationsDLQ},
		{"mismatch", func(int, string, string) (contract.AttemptStatus, error) {
			return "", stock.ErrAttemptMismatch
		}, 3, contract.TopicCompensationsDLQ},
		{"an unreachable database is waited out, not dead-lettered", func(call int, _, _ string) (contract.AttemptStatus, error) {
			if call < 6 {
				return "", fmt.Errorf("compensate: %w", driver.ErrBadConn)
			}
			return contract.StatusCompensated, nil
		}, 6, contract.TopicCompensationResults},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			store := &fakeStore{fn: tt.fn}
			pub := &fakePublisher{}
			h := compensation.NewHandler(compensation.Config{Store: store, Publisher: pub, Logger: discard, Retry: fastRetry})
			if err := h.Handle(context.Background(), message(compensationJSON(t, attemptID, orderID), attemptID)); err != nil {
				t.Fatalf("Handle = %v, want nil", err)
			}
			if store.calls != tt.wantCalls {
				t.Fatalf("Compensate calls = %d, want %d", store.calls, tt.wantCalls)
			}
			if len(pub.sent) != 1 || pub.sent[0].Topic != tt.wantTopic {
				t.Fatalf("published %+v, want one message to %s", pub.sent, tt.wantTopic)
			}
		})
	}
}

// TestHandleWaitsForKafka: a result that cannot be published is retried
// until Kafka takes it; the message is committed only then.
func TestHandleWaitsForKafka(t *testing.T) {
	t.Parallel()
	attemptID, orderID := uuid.NewString(), uuid.NewString()
	store := &fakeStore{fn: func(int, string, string) (contract.AttemptStatus, error) { return contract.StatusCompensated, nil }}
	pub := &fakePublisher{fail: func(_ context.Context, try int) error {
		if try <= 6 {
			return errors.New("all brokers down")
		}
		return nil
	}}
	h := compensation.NewHandler(compensation.Config{Store: store, Publisher: pub, Logger: discard, Retry: fastRetry})
	if err := h.Handle(context.Background(), message(compensationJSON(t, attemptID, orderID), attemptID)); err != nil {
		t.Fatalf("Handle = %v, want nil", err)
	}
	if pub.tries != 7 || len(pub.sent) != 1 || pub.sent[0].Topic != contract.TopicCompensationResults {
		t.Fatalf("%d publishes, sent %+v; want 7 and one result", pub.tries, pub.sent)
	}
	if store.calls != 1 {
		t.Fatalf("Compensate calls = %d, want 1 (publishing is retried, not applying)", store.calls)
	}
}

// TestHandleStopsWithItsContext: at shutdown a handler stuck on Kafka (or on
// its retries) returns ctx's error, so the message stays uncommitted.
func TestHandleStopsWithItsContext(t *testing.T) {
	t.Parallel()
	attemptID, orderID := uuid.NewString(), uuid.NewString()
	tests := []struct {
		name  string
		store func(int, string, string) (contract.AttemptStatus, error)
	}{
		{"publishing", func(int, string, string) (contract.AttemptStatus, error) { return contract.StatusCompensated, nil }},
		{"retrying", func(int, string, string) (contract.AttemptStatus, error) { return "", errors.New("database is away") }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			pub := &fakePublisher{fail: func(context.Context, int) error { return errors.New("all brokers down") }}
			h := compensation.NewHandler(compensation.Config{
				Store: &fakeStore{fn: tt.store}, Publisher: pub, Logger: discard,
				Retry: compensation.Retry{Tries: 1000, Initial: 5 * time.Millisecond, Max: 5 * time.Millisecond},
			})
			ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
			defer cancel()
			err := h.Handle(ctx, message(compensationJSON(t, attemptID, orderID), attemptID))
			if !errors.Is(err, context.DeadlineExceeded) {
				t.Fatalf("Handle = %v, want the context's error", err)
			}
			if len(pub.sent) != 0 {
				t.Fatalf("sent %+v, want nothing", pub.sent)
			}
		})
	}
}

// TestReplayAfterClose: a closed Replayer (the service is shutting down)
// refuses to start a replay, without asking Kafka.
func TestReplayAfterClose(t *testing.T) {
	t.Parallel()
	r := compensation.NewReplayer(compensation.ReplayConfig{Brokers: "127.0.0.1:1", Publisher: &fakePublisher{}, Logger: discard})
	r.Close()
	r.Close()
	start := time.Now()
	if n, err := r.Replay(context.Background()); err == nil || n != 0 {
		t.Fatalf("Replay after Close = %d, %v; want 0 and an error", n, err)
	}
	if d := time.Since(start); d > time.Second {
		t.Fatalf("Replay after Close took %s, want an immediate refusal", d)
	}
}
