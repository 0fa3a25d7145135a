package mysql_test

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/stockfence/stockfence/orderservice/internal/order"
	"github.com/stockfence/stockfence/shared/contract"
)

// TestQuantityCap: a customer may hold at most Limit units of a product in
// PENDING or CONFIRMED orders of the window. An order past it is refused
// with what was held and nothing is written; failed, cancelled and older
// orders do not count; other customers and products are not affected; a
// replay of an accepted order's key is not refused.
func TestQuantityCap(t *testing.T) {
	t.Parallel()
	store, db := newStore(t)
	store.LimitQuantity(order.QuantityCap{Limit: 3, Window: time.Hour})
	ctx := context.Background()
	place := func(customer string, qty int, key string) (order.Order, error) {
		now := time.Now().UTC().Truncate(time.Microsecond)
		o := order.New(uuid.Must(uuid.NewV7()).String(), uuid.Must(uuid.NewV7()).String(), customer,
			[]contract.Item{{ProductID: 7, Quantity: qty}, {ProductID: 3, Quantity: 1}}, now, now.Add(3*time.Second))
		got, _, err := store.Create(ctx, o, key, order.RequestHash(o.Items()))
		return got, err
	}

	first, err := place("alice", 2, "k1")
	if err != nil {
		t.Fatal(err)
	}
	_, err = place("alice", 2, "k2")
	var capped *order.QuantityCapError
	if !errors.As(err, &capped) || capped.ProductID != 7 || capped.Held != 2 || capped.Requested != 2 {
		t.Fatalf("err = %v, want a cap error on product 7 with 2 held and 2 requested", err)
	}
	var n int
	if err := db.QueryRow(`SELECT COUNT(*) FROM orders WHERE customer_id = 'alice'`).Scan(&n); err != nil || n != 1 {
		t.Fatalf("alice has %d orders (%v), want only the first", n, err)
	}
	if _, err := place("alice", 1, "k3"); err != nil {
		t.Fatalf("1 more unit (3 in all): %v", err)
	}
	if _, err := place("bob", 3, "k1"); err != nil {
		t.Fatalf("another customer: %v", err)
	}
	// The same request again (same key, same body) is a replay, not a new order.
	if got, err := place("alice", 2, "k1"); err != nil || got.ID != first.ID {
		t.Fatalf("replay of k1 = %s, %v; want order %s", got.ID, err, first.ID)
	}

	// What failed or was cancelled is back in stock; what is older than the
	// window no longer counts.
	if _, err := db.Exec(`UPDATE orders SET status = 'CANCELLED' WHERE id = ?`, first.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := place("alice", 2, "k4"); err != nil {
		t.Fatalf("after cancelling 2 units: %v", err)
	}
	if _, err := db.Exec(`UPDATE orders SET created_at = created_at - INTERVAL 2 HOUR WHERE customer_id = 'alice'`); err != nil {
		t.Fatal(err)
	}
	if _, err := place("alice", 3, "k5"); err != nil {
		t.Fatalf("after the window: %v", err)
	}
}

// TestQuantityCapConcurrent: ten concurrent orders of one customer, two
// units each, under a cap of five: exactly two get through.
func TestQuantityCapConcurrent(t *testing.T) {
	t.Parallel()
	store, db := newStore(t)
	store.LimitQuantity(order.QuantityCap{Limit: 5, Window: time.Hour})
	ctx := context.Background()
	var wg sync.WaitGroup
	errs := make(chan error, 10)
	for range 10 {
		wg.Go(func() {
			now := time.Now().UTC().Truncate(time.Microsecond)
			o := order.New(uuid.Must(uuid.NewV7()).String(), uuid.Must(uuid.NewV7()).String(), "carol",
				[]contract.Item{{ProductID: 9, Quantity: 2}}, now, now.Add(3*time.Second))
			_, _, err := store.Create(ctx, o, uuid.NewString(), order.RequestHash(o.Items()))
			errs <- err
		})
	}
	wg.Wait()
	close(errs)
	created, capped := 0, 0
	for err := range errs {
		var c *order.QuantityCapError
		switch {
		case err == nil:
			created++
		case errors.As(err, &c):
			capped++
		default:
			t.Fatal(err)
		}
	}
	var units int
	if err := db.QueryRow(`SELECT COALESCE(SUM(quantity), 0) FROM order_lines`).Scan(&units); err != nil {
		t.Fatal(err)
	}
	if created != 2 || capped != 8 || units != 4 {
		t.Fatalf("created %d, capped %d, units %d; want 2, 8, 4", created, capped, units)
	}
}
