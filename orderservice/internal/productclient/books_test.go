package productclient_test

import (
	"context"
	"errors"
	"net/http"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stockfence/stockfence/orderservice/internal/productclient"
	"github.com/stockfence/stockfence/shared/contract"
)

func TestReservationsPages(t *testing.T) {
	t.Parallel()
	var queries []string
	srv, _ := server(t, func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodGet || r.URL.Path != "/reservations" || r.Header.Get("Authorization") != "Bearer "+token {
			w.WriteHeader(http.StatusBadRequest)
			return
		}
		queries = append(queries, r.URL.RawQuery)
		if r.URL.Query().Get("cursor") == "" {
			answer(http.StatusOK, contract.ReservationPage{Reservations: []contract.Reservation{
				{AttemptID: "a1", OrderID: "o1", Status: contract.StatusApplied, Ledger: &contract.AttemptLedger{Taken: 2}},
			}, Next: "next/1+"})(w, r)
			return
		}
		answer(http.StatusOK, map[string]any{"reservations": nil, "next": ""})(w, r)
	})
	c := client(t, srv.URL, time.Second)
	page, err := c.Reservations(context.Background(), "")
	if err != nil {
		t.Fatal(err)
	}
	if len(page.Reservations) != 1 || page.Reservations[0].Ledger == nil || page.Reservations[0].Ledger.Taken != 2 || page.Next != "next/1+" {
		t.Fatalf("first page = %+v", page)
	}
	page, err = c.Reservations(context.Background(), page.Next)
	if err != nil {
		t.Fatal(err)
	}
	if page.Reservations == nil || len(page.Reservations) != 0 || page.Next != "" {
		t.Fatalf("last page = %#v, want an empty list and no next", page)
	}
	want := []string{
		"updatedSince=1970-01-01T00:00:00Z&limit=1000",
		"updatedSince=1970-01-01T00:00:00Z&limit=1000&cursor=next%2F1%2B",
	}
	if len(queries) != 2 || queries[0] != want[0] || queries[1] != want[1] {
		t.Fatalf("queries = %q, want %q", queries, want)
	}
}

// TestBooksRetriedOutsideTheBreaker: reads of the log and the ledger are
// retried on 5xx, and a product service failing them never opens the
// breaker that guards reservations.
func TestBooksRetriedOutsideTheBreaker(t *testing.T) {
	t.Parallel()
	var fail atomic.Bool
	fail.Store(true)
	srv, calls := server(t, func(w http.ResponseWriter, r *http.Request) {
		if fail.Load() {
			w.WriteHeader(http.StatusServiceUnavailable)
			return
		}
		answer(http.StatusOK, contract.Ledger{Products: []contract.ProductBalance{{ProductID: 1, Stock: 3, LedgerSum: 3}}})(w, r)
	})
	c := client(t, srv.URL, time.Second)
	for range 4 {
		if _, err := c.Ledger(context.Background()); !errors.Is(err, productclient.ErrUnavailable) {
			t.Fatalf("ledger of a failing service = %v, want ErrUnavailable", err)
		}
	}
	if got := calls.Load(); got != 12 {
		t.Fatalf("calls = %d, want 12 (each read tried 3 times)", got)
	}
	if got := c.BreakerState(); got != "closed" {
		t.Fatalf("breaker = %s, want closed", got)
	}
	fail.Store(false)
	books, err := c.Ledger(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if len(books.Products) != 1 || books.Products[0].LedgerSum != 3 || books.Unattributed == nil {
		t.Fatalf("ledger = %#v", books)
	}
}

func TestBooksRejected(t *testing.T) {
	t.Parallel()
	srv, calls := server(t, answer(http.StatusUnauthorized, map[string]string{"code": "unauthorized"}))
	c := client(t, srv.URL, time.Second)
	if _, err := c.Reservations(context.Background(), ""); !errors.Is(err, productclient.ErrRejectedRequest) {
		t.Fatalf("reservations with a refused token = %v, want ErrRejectedRequest", err)
	}
	if got := calls.Load(); got != 1 {
		t.Fatalf("calls = %d, want 1 (a 4xx is not retried)", got)
	}
}
