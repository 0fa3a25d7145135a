package coalesce_test

import (
	"context"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/google/uuid"

	"github.com/stockfence/stockfence/productservice/internal/coalesce"
	"github.com/stockfence/stockfence/productservice/internal/mysql"
	"github.com/stockfence/stockfence/shared/contract"
	schema "github.com/stockfence/stockfence/sql"
	"github.com/stockfence/stockfence/sql/schematest"
)

// TestFlashSaleOnOneRow: 600 concurrent shoppers for 250 units of one
// product, through the coalescer over the real store: exactly 250 applied,
// in batches, stock 0, the ledger agreeing.
func TestFlashSaleOnOneRow(t *testing.T) {
	t.Parallel()
	db := schematest.Open(t, schema.Products, 16)
	store := mysql.New(db)
	ctx := context.Background()
	p, err := store.CreateProduct(ctx, contract.NewProduct{SKU: "HOT", Name: "Hot", PriceCents: 100, Stock: 250})
	if err != nil {
		t.Fatal(err)
	}
	var biggest atomic.Int64
	c := coalesce.New(store, coalesce.Config{Lanes: 4, MaxBatch: 100, Observe: func(n int) {
		for cur := biggest.Load(); int64(n) > cur && !biggest.CompareAndSwap(cur, int64(n)); cur = biggest.Load() {
		}
	}})
	defer c.Close()
	var applied, rejected atomic.Int64
	var wg sync.WaitGroup
	for range 600 {
		wg.Go(func() {
			req := contract.ReserveRequest{AttemptID: uuid.NewString(), OrderID: uuid.NewString(), Items: []contract.Item{{ProductID: p.ID, Quantity: 1}}}
			res, _, err := c.Reserve(ctx, req)
			switch {
			case err != nil:
				t.Error(err)
			case res.Status == contract.StatusApplied:
				applied.Add(1)
			case res.Status == contract.StatusRejected:
				rejected.Add(1)
			}
		})
	}
	wg.Wait()
	if applied.Load() != 250 || rejected.Load() != 350 {
		t.Fatalf("applied %d, rejected %d; want 250 and 350", applied.Load(), rejected.Load())
	}
	var stock, ledger, attempts int64
	if err := db.QueryRow(`SELECT stock, (SELECT SUM(delta) FROM stock_movements WHERE product_id = p.id),
		(SELECT COUNT(*) FROM stock_attempts WHERE status = 'APPLIED') FROM products p WHERE id = ?`, p.ID).Scan(&stock, &ledger, &attempts); err != nil {
		t.Fatal(err)
	}
	if stock != 0 || ledger != 0 || attempts != 250 {
		t.Fatalf("stock %d, ledger %d, applied attempts %d; want 0, 0, 250", stock, ledger, attempts)
	}
	if biggest.Load() < 2 {
		t.Fatalf("largest batch %d: 600 concurrent requests were never coalesced", biggest.Load())
	}
}
