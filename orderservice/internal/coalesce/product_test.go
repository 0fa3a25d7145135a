package coalesce_test

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/stockfence/stockfence/orderservice/internal/coalesce"
	"github.com/stockfence/stockfence/orderservice/internal/productclient"
	"github.com/stockfence/stockfence/shared/contract"
)

// fakeProducts answers every reservation APPLIED, by batch or one at a time
// (or, without batches, 404 to a batch), counting the calls of each kind.
type fakeProducts struct {
	noBatches       bool
	batches, single atomic.Int64
	requests        atomic.Int64
}

func (f *fakeProducts) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	applied := func(req contract.ReserveRequest) *contract.Reservation {
		f.requests.Add(1)
		return &contract.Reservation{AttemptID: req.AttemptID, OrderID: req.OrderID, Status: contract.StatusApplied}
	}
	w.Header().Set("Content-Type", "application/json")
	switch {
	case r.URL.Path == "/reservations/batch" && f.noBatches:
		http.NotFound(w, r)
	case r.URL.Path == "/reservations/batch":
		f.batches.Add(1)
		var b contract.ReserveBatchRequest
		_ = json.NewDecoder(r.Body).Decode(&b)
		time.Sleep(5 * time.Millisecond) // let the next batch gather
		out := contract.ReserveBatchResponse{Results: make([]contract.ReserveResult, len(b.Reservations))}
		for i, req := range b.Reservations {
			out.Results[i] = contract.ReserveResult{Status: http.StatusCreated, Reservation: applied(req)}
		}
		_ = json.NewEncoder(w).Encode(out)
	case r.URL.Path == "/reservations":
		f.single.Add(1)
		var req contract.ReserveRequest
		_ = json.NewDecoder(r.Body).Decode(&req)
		w.WriteHeader(http.StatusCreated)
		_ = json.NewEncoder(w).Encode(applied(req))
	default:
		http.NotFound(w, r)
	}
}

// TestReservationsGoInBatches: concurrent reserve calls share batch calls,
// and each gets the answer for its own attempt; a product service without
// batches gets each request on its own, once.
func TestReservationsGoInBatches(t *testing.T) {
	t.Parallel()
	for _, noBatches := range []bool{false, true} {
		fake := &fakeProducts{noBatches: noBatches}
		srv := httptest.NewServer(fake)
		t.Cleanup(srv.Close)
		client, err := productclient.New(productclient.Config{BaseURL: srv.URL, ServiceToken: "t", Timeout: 5 * time.Second})
		if err != nil {
			t.Fatal(err)
		}
		p := coalesce.NewProduct(client, coalesce.Config{Lanes: 2, MaxBatch: 50})
		var wg sync.WaitGroup
		for range 300 {
			wg.Go(func() {
				req := contract.ReserveRequest{AttemptID: uuid.NewString(), OrderID: uuid.NewString(), Items: []contract.Item{{ProductID: 1, Quantity: 1}}}
				res, err := p.Reserve(context.Background(), req)
				if err != nil || res.AttemptID != req.AttemptID || res.Status != contract.StatusApplied {
					t.Errorf("reserve %s = %+v, %v; want APPLIED for its attempt", req.AttemptID, res, err)
				}
			})
		}
		wg.Wait()
		p.Close()
		if fake.requests.Load() != 300 {
			t.Fatalf("without batches %v: %d reservations applied, want 300", noBatches, fake.requests.Load())
		}
		if noBatches && fake.single.Load() != 300 {
			t.Fatalf("without batches: %d single calls, want 300", fake.single.Load())
		}
		if !noBatches && (fake.single.Load() != 0 || fake.batches.Load() >= 300/2) {
			t.Fatalf("%d batch calls and %d single calls for 300 reservations: want them coalesced", fake.batches.Load(), fake.single.Load())
		}
	}
}
