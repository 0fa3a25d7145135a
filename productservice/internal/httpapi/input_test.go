package httpapi_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"reflect"
	"regexp"
	"strings"
	"sync"
	"testing"

	"github.com/stockfence/stockfence/productservice/internal/httpapi"
	"github.com/stockfence/stockfence/productservice/internal/stock"
	"github.com/stockfence/stockfence/shared/contract"
)

// Tokens of the router the fuzzers drive.
const (
	fuzzServiceToken = "fuzz-service-token"
	fuzzAdminToken   = "fuzz-admin-token"
)

// recordingStore records what the router hands the store, and answers as a
// store that accepts everything would. It stands for the database: the
// fuzzers check what may reach it.
type recordingStore struct {
	mu       sync.Mutex
	reserved []contract.ReserveRequest
	resolved [][2]string
	created  []contract.NewProduct
	restocks [][2]int64
	pages    []pageCall
}

type pageCall struct {
	after stock.LogCursor
	limit int
}

func (s *recordingStore) reset() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.reserved, s.resolved, s.created, s.restocks, s.pages = nil, nil, nil, nil, nil
}

func (s *recordingStore) Products(context.Context) ([]contract.Product, error) {
	return []contract.Product{}, nil
}

func (s *recordingStore) Product(_ context.Context, id int64) (contract.Product, error) {
	return contract.Product{ID: id, SKU: "S", Name: "N"}, nil
}

func (s *recordingStore) CreateProduct(_ context.Context, p contract.NewProduct) (contract.Product, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.created = append(s.created, p)
	return contract.Product{ID: 1, SKU: p.SKU, Name: p.Name, PriceCents: p.PriceCents, Stock: p.Stock}, nil
}

func (s *recordingStore) Restock(_ context.Context, id, quantity int64) (contract.Product, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.restocks = append(s.restocks, [2]int64{id, quantity})
	return contract.Product{ID: id, SKU: "S", Name: "N", Stock: quantity}, nil
}

func (s *recordingStore) Reserve(_ context.Context, req contract.ReserveRequest) (contract.Reservation, bool, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.reserved = append(s.reserved, req)
	return contract.Reservation{AttemptID: req.AttemptID, OrderID: req.OrderID, Status: contract.StatusApplied}, false, nil
}

func (s *recordingStore) Resolve(_ context.Context, attemptID, orderID string) (contract.Reservation, bool, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.resolved = append(s.resolved, [2]string{attemptID, orderID})
	return contract.Reservation{AttemptID: attemptID, OrderID: orderID, Status: contract.StatusAborted}, true, nil
}

func (s *recordingStore) AttemptWithLedger(context.Context, string) (contract.Reservation, error) {
	return contract.Reservation{}, stock.ErrAttemptNotFound
}

func (s *recordingStore) Attempts(_ context.Context, after stock.LogCursor, limit int) ([]contract.Reservation, stock.LogCursor, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.pages = append(s.pages, pageCall{after, limit})
	return []contract.Reservation{}, stock.LogCursor{}, nil
}

func (s *recordingStore) Ledger(context.Context) (contract.Ledger, error) {
	return contract.Ledger{}, nil
}

func fuzzRouter() (http.Handler, *recordingStore) {
	store := &recordingStore{}
	return httpapi.New(httpapi.Config{
		Store:        store,
		Logger:       slog.New(slog.NewTextHandler(io.Discard, nil)),
		ServiceToken: fuzzServiceToken,
		AdminToken:   fuzzAdminToken,
		Ready:        func(context.Context) error { return nil },
	}), store
}

// send sends one request; the path and query are set as given, so that no
// fuzzed input can make building the request fail.
func send(h http.Handler, method, path, rawQuery, token, body string) *httptest.ResponseRecorder {
	req := httptest.NewRequest(method, "/", strings.NewReader(body))
	req.URL.Path, req.URL.RawQuery = path, rawQuery
	req.Header.Set("Authorization", "Bearer "+token)
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	return rec
}

// refusedAsInput fails t unless rec is a 400 validation_failed or 413
// body_too_large problem.
func refusedAsInput(t *testing.T, rec *httptest.ResponseRecorder) {
	t.Helper()
	var p struct {
		Status int    `json:"status"`
		Code   string `json:"code"`
	}
	_ = json.Unmarshal(rec.Body.Bytes(), &p)
	ok := rec.Header().Get("Content-Type") == "application/problem+json" && p.Status == rec.Code &&
		(rec.Code == http.StatusBadRequest && p.Code == "validation_failed" ||
			rec.Code == http.StatusRequestEntityTooLarge && p.Code == "body_too_large")
	if !ok {
		t.Fatalf("refused with %d %s, want a 400 or 413 problem", rec.Code, rec.Body)
	}
}

// canonicalID is the contract's form of attempt and order ids, written out
// independently of stock.ValidateID.
var canonicalID = regexp.MustCompile(`^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$`)

// itemsWithinLimits checks lines against the contract, independently of
// contract.ValidateItems.
func itemsWithinLimits(items []contract.Item) error {
	if len(items) < 1 || len(items) > 100 {
		return fmt.Errorf("%d lines", len(items))
	}
	seen := map[int64]bool{}
	for _, it := range items {
		if it.ProductID < 1 || it.Quantity < 1 || it.Quantity > 10_000 || seen[it.ProductID] {
			return fmt.Errorf("line %+v", it)
		}
		seen[it.ProductID] = true
	}
	return nil
}

// roundTrips checks that v, encoded and decoded again, is unchanged.
func roundTrips[T any](t *testing.T, v T) {
	t.Helper()
	raw, err := json.Marshal(v)
	if err != nil {
		t.Fatalf("encode %+v: %v", v, err)
	}
	var again T
	if err := json.Unmarshal(raw, &again); err != nil {
		t.Fatalf("decode %s: %v", raw, err)
	}
	if !reflect.DeepEqual(v, again) {
		t.Fatalf("%+v encoded and decoded is %+v", v, again)
	}
}

// FuzzReserveBody sends arbitrary bodies to POST /reservations. Invariants:
// no 5xx; the store sees only requests with canonical lowercase ids and
// lines within the contract's limits, which encode and decode unchanged;
// everything else is a 400 or 413 problem.
func FuzzReserveBody(f *testing.F) {
	h, store := fuzzRouter()
	f.Fuzz(func(t *testing.T, body string) {
		store.reset()
		rec := send(h, http.MethodPost, "/reservations", "", fuzzServiceToken, body)
		if len(store.reserved) == 0 {
			refusedAsInput(t, rec)
			return
		}
		req := store.reserved[0]
		if rec.Code != http.StatusCreated {
			t.Fatalf("status = %d %s, want 201", rec.Code, rec.Body)
		}
		if !canonicalID.MatchString(req.AttemptID) || !canonicalID.MatchString(req.OrderID) {
			t.Fatalf("the store got ids %q and %q", req.AttemptID, req.OrderID)
		}
		if err := itemsWithinLimits(req.Items); err != nil {
			t.Fatalf("the store got items beyond the limits: %v", err)
		}
		roundTrips(t, req)
	})
}

// FuzzReserveBatchBody sends arbitrary bodies to POST /reservations/batch.
// Invariants: no 5xx; a batch refused as a whole is a 400 or 413 problem and
// reaches the store with nothing; a batch served is 200 with one result per
// request, each 201 (the store got it: canonical ids, lines within the
// limits) or a 400 or 413 validation problem, and the store got exactly
// the requests answered 201.
func FuzzReserveBatchBody(f *testing.F) {
	h, store := fuzzRouter()
	f.Fuzz(func(t *testing.T, body string) {
		store.reset()
		rec := send(h, http.MethodPost, "/reservations/batch", "", fuzzServiceToken, body)
		if rec.Code != http.StatusOK {
			if len(store.reserved) != 0 {
				t.Fatalf("refused with %d, yet the store got %d requests", rec.Code, len(store.reserved))
			}
			refusedAsInput(t, rec)
			return
		}
		var batch contract.ReserveBatchRequest
		var resp contract.ReserveBatchResponse
		if err := json.Unmarshal([]byte(body), &batch); err != nil {
			t.Fatalf("200 for a body that does not decode: %v", err)
		}
		if err := json.Unmarshal(rec.Body.Bytes(), &resp); err != nil {
			t.Fatalf("decode answer %s: %v", rec.Body, err)
		}
		if n := len(batch.Reservations); n < 1 || n > contract.MaxBatchReservations || len(resp.Results) != n {
			t.Fatalf("%d results for %d requests", len(resp.Results), n)
		}
		applied := 0
		for i, r := range resp.Results {
			switch {
			case r.Status == http.StatusCreated && r.Reservation != nil && r.Reservation.AttemptID == batch.Reservations[i].AttemptID:
				applied++
			case (r.Status == http.StatusBadRequest && r.Problem != nil && r.Problem.Code == "validation_failed" ||
				r.Status == http.StatusRequestEntityTooLarge && r.Problem != nil && r.Problem.Code == "body_too_large") &&
				r.Problem.Status == r.Status && r.Reservation == nil:
			default:
				t.Fatalf("result %d = %+v", i, r)
			}
		}
		if applied != len(store.reserved) {
			t.Fatalf("%d results 201, the store got %d requests", applied, len(store.reserved))
		}
		for _, req := range store.reserved {
			if !canonicalID.MatchString(req.AttemptID) || !canonicalID.MatchString(req.OrderID) {
				t.Fatalf("the store got ids %q and %q", req.AttemptID, req.OrderID)
			}
			if err := itemsWithinLimits(req.Items); err != nil {
				t.Fatalf("the store got items beyond the limits: %v", err)
			}
		}
	})
}

// FuzzResolve sends arbitrary attempt ids (as a path segment) and bodies to
// POST /reservations/{attemptId}/resolve. Invariants: no 5xx; the store is
// asked to resolve (and so possibly fence) only canonical lowercase ids,
// exactly those of the path and the body; everything else is a 400 or 413
// problem (or 404 when the segment is no single path segment).
func FuzzResolve(f *testing.F) {
	h, store := fuzzRouter()
	f.Fuzz(func(t *testing.T, attemptID, body string) {
		store.reset()
		rec := send(h, http.MethodPost, "/reservations/"+attemptID+"/resolve", "", fuzzServiceToken, body)
		if len(store.resolved) == 0 {
			if rec.Code == http.StatusNotFound || rec.Code == http.StatusMethodNotAllowed {
				return // the path did not name the route
			}
			refusedAsInput(t, rec)
			return
		}
		got := store.resolved[0]
		if rec.Code != http.StatusOK || got[0] != attemptID || !canonicalID.MatchString(got[0]) || !canonicalID.MatchString(got[1]) {
			t.Fatalf("path %q body %q: the store resolved %q (answer %d)", attemptID, body, got, rec.Code)
		}
		var req contract.ResolveRequest
		if err := json.Unmarshal([]byte(body), &req); err != nil || req.OrderID != got[1] {
			t.Fatalf("body %q holds order %q (%v), the store got %q", body, req.OrderID, err, got[1])
		}
		roundTrips(t, req)
	})
}

// FuzzCreateProductBody sends arbitrary bodies to POST /products. Invariants:
// no 5xx; the store creates only products whose SKU is 1 to 64 bytes without
// surrounding spaces, whose name is 1 to 200 bytes and not blank, whose price
// is 0 to 100,000,000,000 cents and whose stock is 0 to MaxStock, and which
// encode and decode unchanged; everything else is a 400 or 413 problem.
func FuzzCreateProductBody(f *testing.F) {
	h, store := fuzzRouter()
	f.Fuzz(func(t *testing.T, body string) {
		store.reset()
		rec := send(h, http.MethodPost, "/products", "", fuzzAdminToken, body)
		if len(store.created) == 0 {
			refusedAsInput(t, rec)
			return
		}
		p := store.created[0]
		switch {
		case rec.Code != http.StatusCreated:
			t.Fatalf("status = %d %s, want 201", rec.Code, rec.Body)
		case p.SKU == "" || len(p.SKU) > 64 || strings.TrimSpace(p.SKU) != p.SKU:
			t.Fatalf("created SKU %q", p.SKU)
		case strings.TrimSpace(p.Name) == "" || len(p.Name) > 200:
			t.Fatalf("created name %q", p.Name)
		case p.PriceCents < 0 || p.PriceCents > 100_000_000_000:
			t.Fatalf("created price %d", p.PriceCents)
		case p.Stock < 0 || p.Stock > contract.MaxStock:
			t.Fatalf("created stock %d", p.Stock)
		}
		roundTrips(t, p)
	})
}

// FuzzRestockBody sends arbitrary product ids (as a path segment) and bodies
// to POST /products/{id}/restock. Invariants: no 5xx; the store restocks only
// a positive product id, the one of the path, by 1 to MaxRestock units;
// everything else is a 400 or 413 problem, or 404 for an id that is not a
// positive integer.
func FuzzRestockBody(f *testing.F) {
	h, store := fuzzRouter()
	f.Fuzz(func(t *testing.T, id, body string) {
		store.reset()
		rec := send(h, http.MethodPost, "/products/"+id+"/restock", "", fuzzAdminToken, body)
		if len(store.restocks) == 0 {
			if rec.Code == http.StatusNotFound || rec.Code == http.StatusMethodNotAllowed {
				return // no such product id, or the path did not name the route
			}
			refusedAsInput(t, rec)
			return
		}
		got := store.restocks[0]
		if rec.Code != http.StatusOK || got[0] < 1 || fmt.Sprint(got[0]) != strings.TrimLeft(strings.TrimPrefix(id, "+"), "0") ||
			got[1] < 1 || got[1] > contract.MaxRestock {
			t.Fatalf("path id %q body %q: the store restocked %v (answer %d)", id, body, got, rec.Code)
		}
		roundTrips(t, contract.Restock{Quantity: got[1]})
	})
}

// FuzzReservationsQuery sends arbitrary query strings to GET /reservations,
// which parses updatedSince, cursor and limit by hand. Invariants: no 5xx;
// the store is asked for 1 to 1,000 attempts after a position whose attempt
// id is empty or canonical; anything else is a 400 validation problem.
func FuzzReservationsQuery(f *testing.F) {
	h, store := fuzzRouter()
	f.Fuzz(func(t *testing.T, rawQuery string) {
		store.reset()
		rec := send(h, http.MethodGet, "/reservations", rawQuery, fuzzServiceToken, "")
		if len(store.pages) == 0 {
			refusedAsInput(t, rec)
			return
		}
		page := store.pages[0]
		if rec.Code != http.StatusOK || page.limit < 1 || page.limit > 1000 {
			t.Fatalf("?%s: the store was asked for %d attempts (answer %d)", rawQuery, page.limit, rec.Code)
		}
		if id := page.after.AttemptID; id != "" && !canonicalID.MatchString(id) {
			t.Fatalf("?%s: the store was asked for attempts after %q", rawQuery, id)
		}
		q, _ := url.ParseQuery(rawQuery)
		if q.Get("cursor") == "" && page.after.AttemptID != "" {
			t.Fatalf("?%s: a position without a cursor", rawQuery)
		}
	})
}
