package coalesce_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/stockfence/stockfence/productservice/internal/coalesce"
	"github.com/stockfence/stockfence/productservice/internal/mysql"
	"github.com/stockfence/stockfence/shared/contract"
	schema "github.com/stockfence/stockfence/sql"
	"github.com/stockfence/stockfence/sql/schematest"
)

// fakeStore answers every request APPLIED with its attempt id, holding each
// batch until release is closed (when set), and records the batch sizes.
type fakeStore struct {
	mu       sync.Mutex
	batches  []int
	singles  int
	release  chan struct{}
	batchErr error
}

func (f *fakeStore) Reserve(_ context.Context, req contract.ReserveRequest) (contract.Reservation, bool, error) {
	f.mu.Lock()
	f.singles++
	f.mu.Unlock()
	return contract.Reservation{AttemptID: req.AttemptID, OrderID: req.OrderID, Status: contract.StatusApplied}, false, nil
}

func (f *fakeStore) ReserveBatch(_ context.Context, reqs []contract.ReserveRequest) ([]mysql.Outcome, error) {
	if f.release != nil {
		<-f.release
	}
	f.mu.Lock()
	f.batches = append(f.batches, len(reqs))
	err := f.batchErr
	f.mu.Unlock()
	if err != nil {
		return nil, err
	}
	out := make([]mysql.Outcome, len(reqs))
	for i, req := range reqs {
		out[i] = mysql.Outcome{Res: contract.Reservation{AttemptID: req.AttemptID, OrderID: req.OrderID, Status: contract.StatusApplied}}
	}
	return out, nil
}

func request(i int) contract.ReserveRequest {
	return contract.ReserveRequest{AttemptID: fmt.Sprintf("a%d", i), OrderID: fmt.Sprintf("o%d", i)}
}

// reserveAll sends n requests at once and checks each caller got the answer
// to its own request.
func reserveAll(t *testing.T, c *coalesce.Coalescer, n int) {
	t.Helper()
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			req := request(i)
			res, _, err := c.Reserve(context.Background(), req)
			if err != nil || res.AttemptID != req.AttemptID {
				t.Errorf("request %d: got %+v, %v", i, res, err)
			}
		})
	}
	wg.Wait()
}

// TestRequestsArrivingDuringABatchFormTheNext: while one batch is held,
// the requests that arrive queue up and go together in the next ones, no
// larger than MaxBatch; a lone request goes through on its own at once.
func TestRequestsArrivingDuringABatchFormTheNext(t *testing.T) {
	t.Parallel()
	store := &fakeStore{release: make(chan struct{})}
	c := coalesce.New(store, coalesce.Config{Lanes: 1, MaxBatch: 50})
	defer c.Close()

	first := make(chan error)
	go func() {
		_, _, err := c.Reserve(context.Background(), request(-1))
		first <- err
	}()
	// The lone first request is being applied (held); 120 more arrive.
	time.Sleep(50 * time.Millisecond)
	done := make(chan struct{})
	go func() {
		reserveAll(t, c, 120)
		close(done)
	}()
	time.Sleep(100 * time.Millisecond)
	close(store.release)
	if err := <-first; err != nil {
		t.Fatal(err)
	}
	<-done
	store.mu.Lock()
	defer store.mu.Unlock()
	if store.batches[0] != 1 {
		t.Fatalf("first batch = %d requests, want the lone one", store.batches[0])
	}
	total := 0
	for _, n := range store.batches[1:] {
		if n > 50 {
			t.Fatalf("batch of %d, above MaxBatch 50", n)
		}
		total += n
	}
	if total != 120 || len(store.batches) > 4 {
		t.Fatalf("batches %v: want the 120 waiting requests in at most 3 batches", store.batches)
	}
}

// TestFailedBatchFallsBackToOneAtATime: a batch that fails as a whole is
// answered request by request.
func TestFailedBatchFallsBackToOneAtATime(t *testing.T) {
	t.Parallel()
	store := &fakeStore{batchErr: errors.New("connection lost")}
	c := coalesce.New(store, coalesce.Config{Lanes: 2, MaxBatch: 10})
	defer c.Close()
	reserveAll(t, c, 40)
	if store.singles != 40 {
		t.Fatalf("%d requests answered one at a time, want all 40", store.singles)
	}
}

// TestGoneCallerIsLeftOut: a request whose caller gave up before its batch
// started is not applied.
func TestGoneCallerIsLeftOut(t *testing.T) {
	t.Parallel()
	store := &fakeStore{release: make(chan struct{})}
	c := coalesce.New(store, coalesce.Config{Lanes: 1, MaxBatch: 10})
	defer c.Close()
	go c.Reserve(context.Background(), request(0)) // holds the lane
	time.Sleep(50 * time.Millisecond)
	ctx, cancel := context.WithCancel(context.Background())
	gone := make(chan error)
	go func() {
		_, _, err := c.Reserve(ctx, request(1))
		gone <- err
	}()
	time.Sleep(50 * time.Millisecond)
	cancel()
	if err := <-gone; !errors.Is(err, context.Canceled) {
		t.Fatalf("err = %v, want context.Canceled", err)
	}
	close(store.release)
	c.Close()
	store.mu.Lock()
	defer store.mu.Unlock()
	if len(store.batches) != 1 {
		t.Fatalf("batches %v: the gone request must not have been applied", store.batches)
	}
}

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
