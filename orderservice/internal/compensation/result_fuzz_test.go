package compensation_test

import (
	"context"
	"encoding/json"
	"testing"
	"time"

	"github.com/confluentinc/confluent-kafka-go/v2/kafka"

	"github.com/stockfence/stockfence/orderservice/internal/compensation"
	"github.com/stockfence/stockfence/orderservice/internal/order"
	"github.com/stockfence/stockfence/shared/contract"
)

// resultRecorder records the results handed to the store and answers as the
// store does for an order it does not have.
type resultRecorder struct{ got []contract.CompensationResult }

func (s *resultRecorder) ApplyResult(_ context.Context, r contract.CompensationResult) (order.Order, error) {
	s.got = append(s.got, r)
	return order.Order{}, order.ErrNotFound
}

// FuzzResultHandler hands arbitrary values of stock-compensation-results to
// the results handler. Invariants: no panic; the handler returns nil at once
// (a value that can never apply is skipped, never retried, so it cannot stall
// the partition); the store sees only a result naming an attempt and an
// order, exactly as the value holds it, and that result encodes and decodes
// unchanged.
func FuzzResultHandler(f *testing.F) {
	store := &resultRecorder{}
	handle := compensation.ResultHandler(store, discard)
	topic := contract.TopicCompensationResults
	f.Fuzz(func(t *testing.T, value []byte) {
		store.got = nil
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		m := &kafka.Message{TopicPartition: kafka.TopicPartition{Topic: &topic, Partition: 0, Offset: 7}, Value: value}
		if err := handle(ctx, m); err != nil {
			t.Fatalf("%q: handler = %v, want nil", value, err)
		}
		if len(store.got) == 0 {
			return
		}
		r := store.got[0]
		if len(store.got) != 1 || r.AttemptID == "" || r.OrderID == "" {
			t.Fatalf("%q reached the store as %+v", value, store.got)
		}
		var want contract.CompensationResult
		if err := json.Unmarshal(value, &want); err != nil || want != r {
			t.Fatalf("%q holds %+v (%v), the store got %+v", value, want, err, r)
		}
		raw, err := json.Marshal(r)
		if err != nil {
			t.Fatal(err)
		}
		var again contract.CompensationResult
		if err := json.Unmarshal(raw, &again); err != nil || again != r {
			t.Fatalf("%+v encoded and decoded is %+v (%v)", r, again, err)
		}
	})
}
