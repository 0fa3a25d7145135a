package httpapi_test

import (
	"bytes"
	"database/sql"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/stockfence/stockfence/orderservice/internal/httpapi"
	"github.com/stockfence/stockfence/orderservice/internal/mysql"
	"github.com/stockfence/stockfence/orderservice/internal/ordering"
	"github.com/stockfence/stockfence/orderservice/internal/productclient"
	"github.com/stockfence/stockfence/orderservice/internal/reconcile"
	"github.com/stockfence/stockfence/shared/contract"
	schema "github.com/stockfence/stockfence/sql"
	"github.com/stockfence/stockfence/sql/schematest"
)

const (
	serviceToken   = "test-service-token"
	jwtSecret      = "test-customer-secret"
	adminToken     = "test-admin-token"
	stuckAfter     = 30 * time.Second
	productTimeout = 200 * time.Millisecond
	syncBudget     = time.Second
)

// Modes of the fake product service's POST /reservations.
const (
	modeApplied  = "applied"  // 201 APPLIED, unit price 100 x product id
	modeRejected = "rejected" // 409 REJECTED insufficient_stock, one unit short per line
	modeFail     = "fail"     // 500
	modeSlow     = "slow"     // no answer until the client gives up
)

// fakeProducts is a product service the test controls. It counts reserve
// calls and remembers the last request id it was sent. It logs the attempts
// it answered (with their ledger figures) and serves that log, plus extraLog,
// on GET /reservations in pages of logPageSize, and ledger on GET /ledger.
type fakeProducts struct {
	mode      atomic.Value // string
	delay     atomic.Int64 // nanoseconds to wait before an applied answer
	calls     atomic.Int32
	resolves  atomic.Int32
	mu        sync.Mutex
	requestID string
	// booksDown makes GET /reservations and GET /ledger answer 500.
	booksDown   bool
	log         []contract.Reservation
	extraLog    []contract.Reservation
	ledger      contract.Ledger
	logQueries  []string
	logPageSize int
}

// logPageCursor is the Next of page i (from 0) of the fake's log.
func logPageCursor(i int) string { return fmt.Sprintf("page-%d", i+1) }

// books serves GET /reservations and GET /ledger.
func (f *fakeProducts) books(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if r.Header.Get("Authorization") != "Bearer "+serviceToken {
		w.WriteHeader(http.StatusUnauthorized)
		return
	}
	if f.booksDown {
		w.WriteHeader(http.StatusInternalServerError)
		return
	}
	if r.URL.Path == "/ledger" {
		writeJSON(w, http.StatusOK, f.ledger)
		return
	}
	f.logQueries = append(f.logQueries, r.URL.RawQuery)
	all := append(slices.Clone(f.log), f.extraLog...)
	size := max(f.logPageSize, 1)
	page := 0
	if c := r.URL.Query().Get("cursor"); c != "" {
		if _, err := fmt.Sscanf(c, "page-%d", &page); err != nil {
			w.WriteHeader(http.StatusBadRequest)
			return
		}
	}
	start, end := min(page*size, len(all)), min((page+1)*size, len(all))
	out := contract.ReservationPage{Reservations: all[start:end]}
	if end < len(all) {
		out.Next = logPageCursor(page)
	}
	writeJSON(w, http.StatusOK, out)
}

// record logs an answer the fake gave, with the ledger figures it implies.
func (f *fakeProducts) record(res contract.Reservation) {
	var taken int64
	if res.Status == contract.StatusApplied {
		for _, it := range res.Items {
			taken += int64(it.Quantity)
		}
	}
	res.Ledger = &contract.AttemptLedger{Taken: taken}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.log = append(f.log, res)
}

func (f *fakeProducts) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	switch {
	case r.Method == http.MethodGet && r.URL.Path == "/products":
		f.catalog(w)
	case r.Method == http.MethodPost && r.URL.Path == "/reservations":
		f.reserve(w, r)
	case r.Method == http.MethodGet && (r.URL.Path == "/reservations" || r.URL.Path == "/ledger"):
		f.books(w, r)
	case r.Method == http.MethodPost && strings.HasSuffix(r.URL.Path, "/resolve") && f.mode.Load() == modeFail:
		f.resolves.Add(1)
		w.WriteHeader(http.StatusInternalServerError)
	default:
		http.NotFound(w, r)
	}
}

func (f *fakeProducts) catalog(w http.ResponseWriter) {
	if f.mode.Load() == modeFail {
		w.WriteHeader(http.StatusInternalServerError)
		return
	}
	writeJSON(w, http.StatusOK, contract.ProductList{Products: []contract.Product{
		{ID: 1, SKU: "APL", Name: "Apple", PriceCents: 100, Stock: 10},
		{ID: 2, SKU: "BAN", Name: "Banana", PriceCents: 200, Stock: 0},
	}})
}

func (f *fakeProducts) reserve(w http.ResponseWriter, r *http.Request) {
	f.calls.Add(1)
	f.mu.Lock()
	f.requestID = r.Header.Get("X-Request-Id")
	f.mu.Unlock()
	if r.Header.Get("Authorization") != "Bearer "+serviceToken {
		w.WriteHeader(http.StatusUnauthorized)
		return
	}
	var req contract.ReserveRequest
	if err := json.NewDecoder(r.Body).Decode(&req); err != nil {
		w.WriteHeader(http.StatusBadRequest)
		return
	}
	// Read to the end: only then does the server notice a client that hangs up.
	_, _ = io.Copy(io.Discard, r.Body)
	switch f.mode.Load() {
	case modeApplied:
		time.Sleep(time.Duration(f.delay.Load()))
		items := make([]contract.ReservedItem, len(req.Items))
		for i, it := range req.Items {
			items[i] = contract.ReservedItem{ProductID: it.ProductID, Quantity: it.Quantity, UnitPriceCents: 100 * it.ProductID}
		}
		res := contract.Reservation{AttemptID: req.AttemptID, OrderID: req.OrderID, Status: contract.StatusApplied, Items: items}
		f.record(res)
		writeJSON(w, http.StatusCreated, res)
	case modeRejected:
		shortages := make([]contract.Shortage, len(req.Items))
		for i, it := range req.Items {
			shortages[i] = contract.Shortage{ProductID: it.ProductID, Requested: it.Quantity, Available: it.Quantity - 1}
		}
		res := contract.Reservation{AttemptID: req.AttemptID, OrderID: req.OrderID, Status: contract.StatusRejected,
			Reason: contract.ReasonInsufficientStock, Shortages: shortages}
		f.record(res)
		writeJSON(w, http.StatusConflict, res)
	case modeFail:
		w.WriteHeader(http.StatusInternalServerError)
	case modeSlow:
		select {
		case <-r.Context().Done():
		case <-time.After(5 * time.Second):
		}
	}
}

func (f *fakeProducts) lastRequestID() string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.requestID
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

// harness is the real router over the real store on a fresh database, with a
// fake product service.
type harness struct {
	t        *testing.T
	url      string
	db       *sql.DB
	store    *mysql.Store
	products *fakeProducts
}

func newHarness(t *testing.T, mode string) *harness {
	t.Helper()
	return newHarnessWith(t, mode, nil)
}

// newHarnessWith is newHarness with configure applied to the handler's
// configuration (when not nil) before the server starts.
func newHarnessWith(t *testing.T, mode string, configure func(*httpapi.Config)) *harness {
	t.Helper()
	db := schematest.Open(t, schema.Orders, 8)

	products := &fakeProducts{}
	products.mode.Store(mode)
	productSrv := httptest.NewServer(products)
	t.Cleanup(productSrv.Close)
	client, err := productclient.New(productclient.Config{BaseURL: productSrv.URL, ServiceToken: serviceToken, Timeout: productTimeout})
	if err != nil {
		t.Fatal(err)
	}
	store := mysql.New(db)
	reconciler := reconcile.New(client, store, reconcile.Config{})
	svc := ordering.New(store, client, ordering.Config{SyncBudget: syncBudget, ProductTimeout: productTimeout})
	cfg := httpapi.Config{
		Service:    svc,
		Catalog:    client,
		Readiness:  store,
		JWTSecret:  []byte(jwtSecret),
		Ops:        store,
		AdminToken: adminToken,
		StuckAfter: stuckAfter,
		Reconciler: reconciler,
	}
	if configure != nil {
		configure(&cfg)
	}
	api := httptest.NewServer(httpapi.New(cfg))
	t.Cleanup(api.Close)
	return &harness{t: t, url: api.URL, db: db, store: store, products: products}
}

// token returns a valid customer token for sub.
func token(t testing.TB, sub string) string {
	t.Helper()
	return sign(t, jwt.SigningMethodHS256, []byte(jwtSecret), jwt.MapClaims{"sub": sub, "exp": time.Now().Add(time.Hour).Unix()})
}

func sign(t testing.TB, method jwt.SigningMethod, key any, claims jwt.MapClaims) string {
	t.Helper()
	s, err := jwt.NewWithClaims(method, claims).SignedString(key)
	if err != nil {
		t.Fatalf("sign token: %v", err)
	}
	return s
}

type response struct {
	status int
	header http.Header
	body   []byte
}

// do sends a request; token and body may be empty, headers come in pairs.
func (h *harness) do(method, path, token, body string, headers ...string) response {
	h.t.Helper()
	var rd io.Reader
	if body != "" {
		rd = bytes.NewBufferString(body)
	}
	req, err := http.NewRequest(method, h.url+path, rd)
	if err != nil {
		h.t.Fatal(err)
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	for i := 0; i+1 < len(headers); i += 2 {
		req.Header.Add(headers[i], headers[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		h.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		h.t.Fatal(err)
	}
	return response{status: resp.StatusCode, header: resp.Header, body: b}
}

// orderBody is the order representation as a client reads it; pointers tell
// null from zero.
type orderBody struct {
	OrderID    string              `json:"orderId"`
	CustomerID string              `json:"customerId"`
	Status     string              `json:"status"`
	Reason     *string             `json:"reason"`
	Shortages  []contract.Shortage `json:"shortages"`
	Items      []struct {
		ProductID      int64  `json:"productId"`
		Quantity       int    `json:"quantity"`
		UnitPriceCents *int64 `json:"unitPriceCents"`
	} `json:"items"`
	TotalCents *int64 `json:"totalCents"`
	Attempts   []struct {
		AttemptID  string     `json:"attemptId"`
		Status     string     `json:"status"`
		CreatedAt  time.Time  `json:"createdAt"`
		ResolvedAt *time.Time `json:"resolvedAt"`
	} `json:"attempts"`
	CreatedAt time.Time `json:"createdAt"`
	UpdatedAt time.Time `json:"updatedAt"`
}

func (r response) order(t testing.TB) orderBody {
	t.Helper()
	var o orderBody
	if err := json.Unmarshal(r.body, &o); err != nil {
		t.Fatalf("decode order %s: %v", r.body, err)
	}
	return o
}

type problemBody struct {
	Type   string `json:"type"`
	Title  string `json:"title"`
	Status int    `json:"status"`
	Code   string `json:"code"`
	Detail string `json:"detail"`
}

// problem checks that r is a problem+json response with status and code.
func (r response) problem(t testing.TB, status int, code string) {
	t.Helper()
	if r.status != status {
		t.Fatalf("status = %d, want %d (body %s)", r.status, status, r.body)
	}
	if ct := r.header.Get("Content-Type"); ct != "application/problem+json" {
		t.Errorf("Content-Type = %q, want application/problem+json", ct)
	}
	var p problemBody
	if err := json.Unmarshal(r.body, &p); err != nil {
		t.Fatalf("decode problem %s: %v", r.body, err)
	}
	if p.Code != code || p.Status != status {
		t.Errorf("problem = %+v, want code %s status %d", p, code, status)
	}
}

func (h *harness) count(table string) int {
	h.t.Helper()
	var n int
	if err := h.db.QueryRow("SELECT COUNT(*) FROM " + table).Scan(&n); err != nil {
		h.t.Fatalf("count %s: %v", table, err)
	}
	return n
}
