package coalesce_test

import (
	"context"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/stockfence/stockfence/orderservice/internal/coalesce"
	"github.com/stockfence/stockfence/orderservice/internal/mysql"
	"github.com/stockfence/stockfence/orderservice/internal/order"
	"github.com/stockfence/stockfence/shared/contract"
	schema "github.com/stockfence/stockfence/sql"
	"github.com/stockfence/stockfence/sql/schematest"
)

// TestFlashSale: 400 shoppers at once create an order each (a quarter of
// them sending their request twice with one idempotency key) and store the
// product service's answer, through the coalesced store on the real
// database: the creates and the answers go in batches, every shopper gets
// its own order, a replay gets the order its key created, and every order
// ends as its answer says.
func TestFlashSale(t *testing.T) {
	t.Parallel()
	db := schematest.Open(t, schema.Orders, 16)
	var batched [2]atomic.Int64 // biggest create and settle batch
	store := coalesce.New(mysql.New(db), coalesce.Config{Lanes: 2, MaxBatch: 100, Observe: func(kind string, n int) {
		b := &batched[0]
		if kind == "settle" {
			b = &batched[1]
		}
		for cur := b.Load(); int64(n) > cur && !b.CompareAndSwap(cur, int64(n)); cur = b.Load() {
		}
	}})
	defer store.Close()

	ctx := context.Background()
	price := int64(250)
	var confirmed, failed atomic.Int64
	var wg sync.WaitGroup
	for i := range 400 {
		wg.Go(func() {
			items := []contract.Item{{ProductID: 7, Quantity: 1 + i%3}}
			now := time.Now().UTC().Truncate(time.Microsecond)
			o := order.New(uuid.NewString(), uuid.NewString(), "shopper-"+uuid.NewString()[:8], items, now, now.Add(time.Minute))
			key := uuid.NewString()
			copies := 1
			if i%4 == 0 { // a quarter send their request twice
				copies = 2
			}
			var created order.Order
			for c := range copies {
				// Each copy is a new order to the service, as Place makes it.
				try := o
				if c > 0 {
					try = order.New(uuid.NewString(), uuid.NewString(), o.CustomerID, items, now, now.Add(time.Minute))
				}
				got, isNew, err := store.Create(ctx, try, key, order.RequestHash(items))
				if err != nil {
					t.Errorf("create: %v", err)
					return
				}
				if isNew != (c == 0) || got.ID != o.ID {
					t.Errorf("create copy %d: order %s new %v, want %s new %v", c, got.ID, isNew, o.ID, c == 0)
					return
				}
				created = got
			}
			a := created.Attempts[0]
			answer := contract.Reservation{AttemptID: a.ID, OrderID: o.ID, Status: contract.StatusApplied,
				Items: []contract.ReservedItem{{ProductID: 7, Quantity: items[0].Quantity, UnitPriceCents: price}}}
			if i%2 == 1 {
				answer = contract.Reservation{AttemptID: a.ID, OrderID: o.ID, Status: contract.StatusRejected, Reason: contract.ReasonInsufficientStock,
					Shortages: []contract.Shortage{{ProductID: 7, Requested: items[0].Quantity, Available: 0}}}
			}
			settled, err := store.Settle(ctx, o.ID, a.ID, answer)
			if err != nil {
				t.Errorf("settle: %v", err)
				return
			}
			stored, err := store.Get(ctx, o.CustomerID, o.ID)
			if err != nil {
				t.Errorf("get: %v", err)
				return
			}
			want := order.StatusConfirmed
			if i%2 == 1 {
				want = order.StatusFailed
			}
			if settled.Status != want || stored.Status != want {
				t.Errorf("order %d: settled %s, stored %s; want %s", i, settled.Status, stored.Status, want)
			}
			if want == order.StatusConfirmed {
				if stored.TotalCents == nil || *stored.TotalCents != price*int64(items[0].Quantity) {
					t.Errorf("order %d: total %v, want %d", i, stored.TotalCents, price*int64(items[0].Quantity))
				}
				confirmed.Add(1)
			} else {
				failed.Add(1)
			}
		})
	}
	wg.Wait()
	if confirmed.Load() != 200 || failed.Load() != 200 {
		t.Fatalf("confirmed %d, failed %d; want 200 each", confirmed.Load(), failed.Load())
	}
	var orders int
	if err := db.QueryRowContext(ctx, `SELECT COUNT(*) FROM orders`).Scan(&orders); err != nil {
		t.Fatal(err)
	}
	if orders != 400 {
		t.Fatalf("%d orders stored, want 400 (replays must not create)", orders)
	}
	if batched[0].Load() < 2 || batched[1].Load() < 2 {
		t.Fatalf("biggest create batch %d, settle batch %d: want concurrent calls coalesced", batched[0].Load(), batched[1].Load())
	}
}
