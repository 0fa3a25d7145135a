package productclient_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stockfence/stockfence/orderservice/internal/productclient"
	"github.com/stockfence/stockfence/shared/contract"
	problemjson "github.com/stockfence/stockfence/shared/problem"
)

func batchOf(n, lines int) []contract.ReserveRequest {
	reqs := make([]contract.ReserveRequest, n)
	for i := range reqs {
		items := make([]contract.Item, lines)
		for l := range items {
			items[l] = contract.Item{ProductID: int64(l + 1), Quantity: 1}
		}
		reqs[i] = contract.ReserveRequest{AttemptID: fmt.Sprintf("attempt-%04d", i), OrderID: fmt.Sprintf("order-%04d", i), Items: items}
	}
	return reqs
}

// TestReserveBatchAnswersEachAsReserve: each result of one batch call is
// read as Reserve reads a whole response: 201/200 APPLIED and 409
// REJECTED/ABORTED/COMPENSATED are definite; a problem, a 5xx, a result for
// another attempt or with an unexpected status is an unknown outcome.
func TestReserveBatchAnswersEachAsReserve(t *testing.T) {
	t.Parallel()
	reqs := batchOf(8, 1)
	res := func(i int, s contract.AttemptStatus) *contract.Reservation {
		return &contract.Reservation{AttemptID: reqs[i].AttemptID, OrderID: reqs[i].OrderID, Status: s}
	}
	results := []contract.ReserveResult{
		{Status: http.StatusCreated, Reservation: res(0, contract.StatusApplied)},
		{Status: http.StatusOK, Reservation: res(1, contract.StatusApplied)},
		{Status: http.StatusConflict, Reservation: res(2, contract.StatusRejected)},
		{Status: http.StatusConflict, Reservation: res(3, contract.StatusAborted)},
		{Status: http.StatusBadRequest, Problem: problemjson.New(http.StatusBadRequest, problemjson.CodeValidationFailed, "bad")},
		{Status: http.StatusInternalServerError, Problem: problemjson.New(http.StatusInternalServerError, problemjson.CodeInternal, "oops")},
		{Status: http.StatusCreated, Reservation: res(0, contract.StatusApplied)}, // names another attempt
		{Status: http.StatusConflict, Reservation: res(7, contract.StatusApplied)},
	}
	var got contract.ReserveBatchRequest
	var path string
	srv, calls := server(t, func(w http.ResponseWriter, r *http.Request) {
		path = r.URL.Path
		_ = json.NewDecoder(r.Body).Decode(&got)
		answer(http.StatusOK, contract.ReserveBatchResponse{Results: results})(w, r)
	})
	answers := client(t, srv.URL, time.Second).ReserveBatch(context.Background(), reqs)
	if calls.Load() != 1 || path != "/reservations/batch" || len(got.Reservations) != len(reqs) {
		t.Fatalf("%d calls to %s with %d requests, want 1 to /reservations/batch with %d", calls.Load(), path, len(got.Reservations), len(reqs))
	}
	for i, want := range []contract.AttemptStatus{contract.StatusApplied, contract.StatusApplied, contract.StatusRejected, contract.StatusAborted} {
		if answers[i].Err != nil || answers[i].Res.Status != want || answers[i].Res.AttemptID != reqs[i].AttemptID {
			t.Errorf("answer %d = %+v, want %s", i, answers[i], want)
		}
	}
	for i := 4; i < len(reqs); i++ {
		if !errors.Is(answers[i].Err, productclient.ErrUnknownOutcome) {
			t.Errorf("answer %d: err = %v, want ErrUnknownOutcome", i, answers[i].Err)
		}
	}
}

// TestReserveBatchLostAnswer: when the call's answer is lost or unusable,
// every request of it is unknown, and it is sent once.
func TestReserveBatchLostAnswer(t *testing.T) {
	t.Parallel()
	reqs := batchOf(5, 1)
	tests := map[string]http.HandlerFunc{
		"503":           answer(http.StatusServiceUnavailable, problemjson.New(http.StatusServiceUnavailable, "unavailable", "down")),
		"400":           answer(http.StatusBadRequest, problemjson.New(http.StatusBadRequest, problemjson.CodeValidationFailed, "bad")),
		"short":         answer(http.StatusOK, contract.ReserveBatchResponse{Results: make([]contract.ReserveResult, 4)}),
		"not json":      func(w http.ResponseWriter, _ *http.Request) { _, _ = w.Write([]byte("<html>")) },
		"slow":          func(w http.ResponseWriter, r *http.Request) { time.Sleep(300 * time.Millisecond) },
		"hung up":       func(w http.ResponseWriter, r *http.Request) { panic(http.ErrAbortHandler) },
		"empty results": answer(http.StatusOK, contract.ReserveBatchResponse{}),
	}
	for name, h := range tests {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			srv, calls := server(t, h)
			answers := client(t, srv.URL, 100*time.Millisecond).ReserveBatch(context.Background(), reqs)
			for i, a := range answers {
				if !errors.Is(a.Err, productclient.ErrUnknownOutcome) || !strings.Contains(a.Err.Error(), reqs[i].AttemptID) {
					t.Errorf("answer %d: err = %v, want ErrUnknownOutcome naming its attempt", i, a.Err)
				}
			}
			if n := calls.Load(); n != 1 {
				t.Errorf("calls = %d, want 1 (never resent)", n)
			}
		})
	}
}

// TestReserveBatchUnsupported: a product service without the batch endpoint
// applied nothing, which the answers say with ErrBatchUnsupported.
func TestReserveBatchUnsupported(t *testing.T) {
	t.Parallel()
	srv, _ := server(t, answer(http.StatusNotFound, problemjson.New(http.StatusNotFound, "not_found", "no such route")))
	for i, a := range client(t, srv.URL, time.Second).ReserveBatch(context.Background(), batchOf(3, 1)) {
		if !errors.Is(a.Err, productclient.ErrBatchUnsupported) || errors.Is(a.Err, productclient.ErrUnknownOutcome) {
			t.Errorf("answer %d: err = %v, want ErrBatchUnsupported only", i, a.Err)
		}
	}
}

// TestReserveBatchSplitsAtTheLimit: more requests than one batch may hold
// go in several calls, none over the limit, each request in exactly one, in
// order.
func TestReserveBatchSplitsAtTheLimit(t *testing.T) {
	t.Parallel()
	var (
		mu   sync.Mutex
		seen []string
	)
	srv, calls := server(t, func(w http.ResponseWriter, r *http.Request) {
		var b contract.ReserveBatchRequest
		if err := json.NewDecoder(r.Body).Decode(&b); err != nil {
			t.Error(err)
		}
		if len(b.Reservations) > contract.MaxBatchReservations {
			t.Errorf("batch of %d requests, over the limit", len(b.Reservations))
		}
		out := contract.ReserveBatchResponse{Results: make([]contract.ReserveResult, len(b.Reservations))}
		mu.Lock()
		for i, req := range b.Reservations {
			seen = append(seen, req.AttemptID)
			out.Results[i] = contract.ReserveResult{Status: http.StatusCreated,
				Reservation: &contract.Reservation{AttemptID: req.AttemptID, OrderID: req.OrderID, Status: contract.StatusApplied}}
		}
		mu.Unlock()
		answer(http.StatusOK, out)(w, r)
	})
	reqs := batchOf(2*contract.MaxBatchReservations+10, 1)
	answers := client(t, srv.URL, 5*time.Second).ReserveBatch(context.Background(), reqs)
	if calls.Load() != 3 || len(seen) != len(reqs) {
		t.Fatalf("%d calls with %d requests, want 3 with %d", calls.Load(), len(seen), len(reqs))
	}
	for i, a := range answers {
		if a.Err != nil || a.Res.AttemptID != reqs[i].AttemptID || seen[i] != reqs[i].AttemptID {
			t.Fatalf("answer %d = %+v (sent %s), want APPLIED for %s", i, a, seen[i], reqs[i].AttemptID)
		}
	}
}
