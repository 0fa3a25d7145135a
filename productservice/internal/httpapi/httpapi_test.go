package httpapi_test

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/stockfence/stockfence/productservice/internal/httpapi"
	"github.com/stockfence/stockfence/productservice/internal/mysql"
	"github.com/stockfence/stockfence/shared/contract"
	schema "github.com/stockfence/stockfence/sql"
	"github.com/stockfence/stockfence/sql/schematest"
)

const (
	serviceToken = "service-token"
	adminToken   = "admin-token"
)

// env is one product service over a fresh database.
type env struct {
	t   *testing.T
	url string
	db  *sql.DB
}

func newEnv(t *testing.T) *env {
	t.Helper()
	return newStoreEnv(t, func(s *mysql.Store) httpapi.Store { return s })
}

// newStoreEnv is newEnv with the router's store made from the database's by
// wrap (the coalescer, for instance).
func newStoreEnv(t *testing.T, wrap func(*mysql.Store) httpapi.Store) *env {
	t.Helper()
	db := schematest.Open(t, schema.Products, 8)
	srv := httptest.NewServer(httpapi.New(httpapi.Config{
		Store:        wrap(mysql.New(db)),
		Logger:       slog.New(slog.NewTextHandler(io.Discard, nil)),
		ServiceToken: serviceToken,
		AdminToken:   adminToken,
		Ready:        func(context.Context) error { return nil },
	}))
	t.Cleanup(srv.Close)
	return &env{t: t, url: srv.URL, db: db}
}

// do sends a request with an optional bearer token and JSON body (a string is
// sent as is) and returns the status and body.
func (e *env) do(method, path, token string, body any) (int, []byte) {
	e.t.Helper()
	var rd io.Reader
	switch b := body.(type) {
	case nil:
	case string:
		rd = strings.NewReader(b)
	default:
		raw, err := json.Marshal(b)
		if err != nil {
			e.t.Fatal(err)
		}
		rd = bytes.NewReader(raw)
	}
	req, err := http.NewRequest(method, e.url+path, rd)
	if err != nil {
		e.t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		e.t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		e.t.Fatal(err)
	}
	if resp.StatusCode >= 400 && resp.StatusCode != http.StatusConflict && resp.Header.Get("Content-Type") != "application/problem+json" {
		e.t.Errorf("%s %s: %d with content type %q, want problem+json", method, path, resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	return resp.StatusCode, raw
}

func (e *env) product(sku string, priceCents, stock int64) contract.Product {
	e.t.Helper()
	status, body := e.do(http.MethodPost, "/products", adminToken, contract.NewProduct{SKU: sku, Name: "Product " + sku, PriceCents: priceCents, Stock: stock})
	if status != http.StatusCreated {
		e.t.Fatalf("create product: %d %s", status, body)
	}
	var p contract.Product
	mustDecode(e.t, body, &p)
	return p
}

func (e *env) reserve(req contract.ReserveRequest) (int, contract.Reservation) {
	e.t.Helper()
	status, body := e.do(http.MethodPost, "/reservations", serviceToken, req)
	var res contract.Reservation
	if status == http.StatusOK || status == http.StatusCreated || status == http.StatusConflict {
		mustDecode(e.t, body, &res)
	}
	return status, res
}

func (e *env) resolve(attemptID, orderID string) contract.Reservation {
	e.t.Helper()
	status, body := e.do(http.MethodPost, "/reservations/"+attemptID+"/resolve", serviceToken, contract.ResolveRequest{OrderID: orderID})
	if status != http.StatusOK {
		e.t.Fatalf("resolve: %d %s", status, body)
	}
	var res contract.Reservation
	mustDecode(e.t, body, &res)
	return res
}

func (e *env) stock(id int64) int64 {
	e.t.Helper()
	var n int64
	if err := e.db.QueryRow(`SELECT stock FROM products WHERE id = ?`, id).Scan(&n); err != nil {
		e.t.Fatal(err)
	}
	return n
}

func (e *env) count(q string, args ...any) int {
	e.t.Helper()
	var n int
	if err := e.db.QueryRow(q, args...).Scan(&n); err != nil {
		e.t.Fatal(err)
	}
	return n
}

// checkLedger asserts, for every product, stock = sum of its ledger deltas,
// and that every APPLIED attempt has exactly one reserve movement per line.
func (e *env) checkLedger() {
	e.t.Helper()
	if n := e.count(`SELECT COUNT(*) FROM products p
		WHERE p.stock <> (SELECT COALESCE(SUM(delta), 0) FROM stock_movements m WHERE m.product_id = p.id)`); n != 0 {
		e.t.Fatalf("%d products whose stock differs from their ledger", n)
	}
	if n := e.count(`SELECT COUNT(*) FROM stock_movements m LEFT JOIN stock_attempts a ON a.attempt_id = m.attempt_id
		WHERE m.kind = 'reserve' AND (a.status IS NULL OR a.status <> 'APPLIED')`); n != 0 {
		e.t.Fatalf("%d reserve movements without an APPLIED attempt", n)
	}
}

func mustDecode(t *testing.T, raw []byte, v any) {
	t.Helper()
	if err := json.Unmarshal(raw, v); err != nil {
		t.Fatalf("decode %s: %v", raw, err)
	}
}

func newRequest(items ...contract.Item) contract.ReserveRequest {
	return contract.ReserveRequest{AttemptID: uuid.NewString(), OrderID: uuid.NewString(), Items: items}
}

func TestCatalog(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	p := e.product("TSHIRT-1", 1999, 5)

	if status, body := e.do(http.MethodPost, "/products", adminToken, contract.NewProduct{SKU: "TSHIRT-1", Name: "again", Stock: 1}); status != http.StatusConflict || !strings.Contains(string(body), `"sku_taken"`) {
		t.Fatalf("duplicate sku: %d %s, want 409 sku_taken", status, body)
	}
	status, body := e.do(http.MethodGet, fmt.Sprintf("/products/%d", p.ID), "", nil)
	var got contract.Product
	mustDecode(t, body, &got)
	if status != http.StatusOK || got != p {
		t.Fatalf("get product: %d %+v, want 200 %+v", status, got, p)
	}
	if status, _ := e.do(http.MethodGet, "/products/999999", "", nil); status != http.StatusNotFound {
		t.Fatalf("unknown product: %d, want 404", status)
	}
	status, body = e.do(http.MethodPost, fmt.Sprintf("/products/%d/restock", p.ID), adminToken, contract.Restock{Quantity: 7})
	mustDecode(t, body, &got)
	if status != http.StatusOK || got.Stock != 12 {
		t.Fatalf("restock: %d %s, want 200 with stock 12", status, body)
	}
	var list contract.ProductList
	_, body = e.do(http.MethodGet, "/products", "", nil)
	mustDecode(t, body, &list)
	if len(list.Products) != 1 || list.Products[0].Stock != 12 {
		t.Fatalf("list = %+v", list)
	}
	e.checkLedger()
}

func TestAuthorization(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	p := e.product("A", 100, 10)
	reserve := newRequest(contract.Item{ProductID: p.ID, Quantity: 1})
	tests := []struct {
		name, method, path, token string
		body                      any
	}{
		{"create without token", http.MethodPost, "/products", "", contract.NewProduct{SKU: "B", Name: "b"}},
		{"create with service token", http.MethodPost, "/products", serviceToken, contract.NewProduct{SKU: "B", Name: "b"}},
		{"restock with wrong token", http.MethodPost, fmt.Sprintf("/products/%d/restock", p.ID), "nope", contract.Restock{Quantity: 1}},
		{"reserve without token", http.MethodPost, "/reservations", "", reserve},
		{"reserve with admin token", http.MethodPost, "/reservations", adminToken, reserve},
		{"resolve with wrong token", http.MethodPost, "/reservations/" + reserve.AttemptID + "/resolve", "nope", contract.ResolveRequest{OrderID: reserve.OrderID}},
		{"read log without token", http.MethodGet, "/reservations", "", nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if status, body := e.do(tt.method, tt.path, tt.token, tt.body); status != http.StatusUnauthorized {
				t.Fatalf("status = %d, want 401 (%s)", status, body)
			}
		})
	}
	if n := e.count(`SELECT COUNT(*) FROM stock_attempts`); n != 0 {
		t.Fatalf("%d attempts written by unauthorized calls", n)
	}
	if got := e.stock(p.ID); got != 10 {
		t.Fatalf("stock = %d, want 10", got)
	}
}

func TestReserveAppliesOnceAndReplays(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	a, b := e.product("A", 250, 10), e.product("B", 1000, 3)
	req := newRequest(contract.Item{ProductID: b.ID, Quantity: 2}, contract.Item{ProductID: a.ID, Quantity: 4})

	status, first := e.reserve(req)
	if status != http.StatusCreated || first.Status != contract.StatusApplied {
		t.Fatalf("reserve: %d %+v, want 201 APPLIED", status, first)
	}
	wantItems := []contract.ReservedItem{{ProductID: b.ID, Quantity: 2, UnitPriceCents: 1000}, {ProductID: a.ID, Quantity: 4, UnitPriceCents: 250}}
	if fmt.Sprint(first.Items) != fmt.Sprint(wantItems) {
		t.Fatalf("items = %v, want %v", first.Items, wantItems)
	}

	status, again := e.reserve(req)
	if status != http.StatusOK || again.Status != contract.StatusApplied || fmt.Sprint(again.Items) != fmt.Sprint(first.Items) {
		t.Fatalf("replay: %d %+v, want 200 with the recorded body", status, again)
	}
	if got, want := e.stock(a.ID), int64(6); got != want {
		t.Fatalf("stock of A = %d, want %d (applied once)", got, want)
	}
	if got, want := e.stock(b.ID), int64(1); got != want {
		t.Fatalf("stock of B = %d, want %d (applied once)", got, want)
	}

	other := req
	other.Items = []contract.Item{{ProductID: a.ID, Quantity: 1}}
	if status, body := e.do(http.MethodPost, "/reservations", serviceToken, other); status != http.StatusUnprocessableEntity || !strings.Contains(string(body), "attempt_mismatch") {
		t.Fatalf("same attempt, other items: %d %s, want 422 attempt_mismatch", status, body)
	}
	other = req
	other.OrderID = uuid.NewString()
	if status, _ := e.do(http.MethodPost, "/reservations", serviceToken, other); status != http.StatusUnprocessableEntity {
		t.Fatalf("same attempt, other order: %d, want 422", status)
	}

	status, body := e.do(http.MethodGet, "/reservations/"+req.AttemptID, serviceToken, nil)
	var read contract.Reservation
	mustDecode(t, body, &read)
	if status != http.StatusOK || read.Status != contract.StatusApplied || read.CreatedAt == nil {
		t.Fatalf("read: %d %s", status, body)
	}
	e.checkLedger()
}

func TestReserveRejectsAndLogsIt(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	a, b := e.product("A", 250, 10), e.product("B", 1000, 1)

	req := newRequest(contract.Item{ProductID: a.ID, Quantity: 1}, contract.Item{ProductID: b.ID, Quantity: 2})
	status, res := e.reserve(req)
	if status != http.StatusConflict || res.Status != contract.StatusRejected || res.Reason != contract.ReasonInsufficientStock {
		t.Fatalf("reserve: %d %+v, want 409 REJECTED insufficient_stock", status, res)
	}
	if want := []contract.Shortage{{ProductID: b.ID, Requested: 2, Available: 1}}; fmt.Sprint(res.Shortages) != fmt.Sprint(want) {
		t.Fatalf("shortages = %v, want %v", res.Shortages, want)
	}
	if e.stock(a.ID) != 10 || e.stock(b.ID) != 1 {
		t.Fatal("a rejected reservation changed stock")
	}
	status, again := e.reserve(req)
	if status != http.StatusConflict || again.Status != contract.StatusRejected || fmt.Sprint(again.Shortages) != fmt.Sprint(res.Shortages) {
		t.Fatalf("replay: %d %+v, want the recorded 409", status, again)
	}

	unknown := newRequest(contract.Item{ProductID: a.ID, Quantity: 1}, contract.Item{ProductID: 987654, Quantity: 1})
	status, res = e.reserve(unknown)
	if status != http.StatusConflict || res.Reason != contract.ReasonUnknownProduct || fmt.Sprint(res.UnknownProducts) != "[987654]" {
		t.Fatalf("unknown product: %d %+v", status, res)
	}
	if n := e.count(`SELECT COUNT(*) FROM stock_attempts WHERE status = 'REJECTED'`); n != 2 {
		t.Fatalf("%d rejected attempts logged, want 2", n)
	}
	e.checkLedger()
}

func TestResolveFencesAnAttemptNeverSeen(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	p := e.product("A", 100, 5)
	req := newRequest(contract.Item{ProductID: p.ID, Quantity: 1})

	// Reading does not fence.
	if status, _ := e.do(http.MethodGet, "/reservations/"+req.AttemptID, serviceToken, nil); status != http.StatusNotFound {
		t.Fatalf("read of unseen attempt: %d, want 404", status)
	}
	if res := e.resolve(req.AttemptID, req.OrderID); res.Status != contract.StatusAborted {
		t.Fatalf("resolve = %s, want ABORTED", res.Status)
	}
	status, res := e.reserve(req)
	if status != http.StatusConflict || res.Status != contract.StatusAborted {
		t.Fatalf("late reserve: %d %+v, want 409 ABORTED", status, res)
	}
	if got := e.stock(p.ID); got != 5 {
		t.Fatalf("stock = %d, want 5: a fenced reservation took stock", got)
	}
	if res := e.resolve(req.AttemptID, req.OrderID); res.Status != contract.StatusAborted {
		t.Fatalf("second resolve = %s, want ABORTED", res.Status)
	}
	if status, _ := e.do(http.MethodPost, "/reservations/"+req.AttemptID+"/resolve", serviceToken, contract.ResolveRequest{OrderID: uuid.NewString()}); status != http.StatusUnprocessableEntity {
		t.Fatalf("resolve for another order: %d, want 422", status)
	}

	applied := newRequest(contract.Item{ProductID: p.ID, Quantity: 2})
	if status, _ := e.reserve(applied); status != http.StatusCreated {
		t.Fatalf("reserve: %d", status)
	}
	if res := e.resolve(applied.AttemptID, applied.OrderID); res.Status != contract.StatusApplied || len(res.Items) != 1 || res.Items[0].UnitPriceCents != 100 {
		t.Fatalf("resolve of applied = %+v, want APPLIED with priced items", res)
	}
	e.checkLedger()
}

// TestResolveWaitsForAReservationInFlight holds the product row lock so a
// reservation stops mid-transaction (its attempt row inserted, not
// committed), then resolves it: the resolve must wait and answer APPLIED.
func TestResolveWaitsForAReservationInFlight(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	p := e.product("A", 100, 5)
	req := newRequest(contract.Item{ProductID: p.ID, Quantity: 2})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	blocker, err := e.db.BeginTx(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer blocker.Rollback()
	if _, err := blocker.ExecContext(ctx, `SELECT stock FROM products WHERE id = ? FOR UPDATE`, p.ID); err != nil {
		t.Fatal(err)
	}

	reserved := make(chan int, 1)
	go func() {
		status, _ := e.reserve(req)
		reserved <- status
	}()
	e.waitForBlockedQuery(ctx, "SELECT id, price_cents, stock FROM products")

	resolved := make(chan contract.Reservation, 1)
	go func() { resolved <- e.resolve(req.AttemptID, req.OrderID) }()
	e.waitForBlockedQuery(ctx, "INSERT INTO stock_attempts")
	select {
	case res := <-resolved:
		t.Fatalf("resolve answered %s while the reservation was in flight", res.Status)
	case <-time.After(100 * time.Millisecond):
	}

	if err := blocker.Commit(); err != nil {
		t.Fatal(err)
	}
	if status := <-reserved; status != http.StatusCreated {
		t.Fatalf("reserve: %d, want 201", status)
	}
	if res := <-resolved; res.Status != contract.StatusApplied {
		t.Fatalf("resolve = %s, want APPLIED (the reservation's true outcome)", res.Status)
	}
	if got := e.stock(p.ID); got != 3 {
		t.Fatalf("stock = %d, want 3", got)
	}
	e.checkLedger()
}

// waitForBlockedQuery waits until a connection to this test's database is
// executing a statement that starts with prefix. The statements waited for
// take microseconds unless blocked on a lock, so seeing one means it waits.
// (innodb_trx is no help: MariaDB can wait for a row lock in the optimizer's
// "Statistics" phase before the wait shows there.)
func (e *env) waitForBlockedQuery(ctx context.Context, prefix string) {
	e.t.Helper()
	const q = `SELECT COALESCE(info, '') FROM information_schema.processlist
		WHERE db = DATABASE() AND command = 'Query' AND id <> CONNECTION_ID()`
	for {
		rows, err := e.db.QueryContext(ctx, q)
		if err != nil {
			e.t.Fatal(err)
		}
		found := false
		for rows.Next() {
			var info string
			if err := rows.Scan(&info); err != nil {
				e.t.Fatal(err)
			}
			found = found || strings.HasPrefix(info, prefix)
		}
		rows.Close()
		if found {
			return
		}
		select {
		case <-ctx.Done():
			e.t.Fatalf("never saw a blocked %q", prefix)
		case <-time.After(5 * time.Millisecond):
		}
	}
}

// TestOppositeLockOrderNeverDeadlocks sends 200 concurrent two-line
// reservations, half listing the products A,B and half B,A. Rows are locked in
// id order, so no deadlock reaches a client; each is all-or-nothing.
func TestOppositeLockOrderNeverDeadlocks(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	a, b := e.product("A", 100, 150), e.product("B", 200, 150)

	const n = 200
	var (
		wg      sync.WaitGroup
		mu      sync.Mutex
		applied int
	)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			items := []contract.Item{{ProductID: a.ID, Quantity: 1}, {ProductID: b.ID, Quantity: 1}}
			if i%2 == 1 {
				items[0], items[1] = items[1], items[0]
			}
			status, res := e.reserve(newRequest(items...))
			mu.Lock()
			defer mu.Unlock()
			switch {
			case status == http.StatusCreated && res.Status == contract.StatusApplied:
				applied++
			case status == http.StatusConflict && res.Status == contract.StatusRejected:
			default:
				t.Errorf("reserve: %d %+v", status, res)
			}
		}()
	}
	wg.Wait()
	if applied != 150 {
		t.Fatalf("applied = %d, want 150", applied)
	}
	if e.stock(a.ID) != 0 || e.stock(b.ID) != 0 {
		t.Fatalf("stock = %d, %d; want 0, 0", e.stock(a.ID), e.stock(b.ID))
	}
	e.checkLedger()
}

func TestBadInputChangesNothing(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	p := e.product("A", 100, 5)
	lines := make([]contract.Item, contract.MaxLines+1)
	for i := range lines {
		lines[i] = contract.Item{ProductID: int64(i + 1), Quantity: 1}
	}
	valid := newRequest(contract.Item{ProductID: p.ID, Quantity: 1})
	body := func(items string) string {
		return fmt.Sprintf(`{"attemptId":%q,"orderId":%q,"items":%s}`, valid.AttemptID, valid.OrderID, items)
	}
	tests := []struct {
		name string
		body any
		want int
	}{
		{"oversized body", body(`[{"productId":1,"quantity":1,"pad":"` + strings.Repeat("x", contract.MaxBodyBytes) + `"}]`), http.StatusRequestEntityTooLarge},
		{"unknown field", body(`[{"productId":1,"quantity":1,"unitPriceCents":1}]`), http.StatusBadRequest},
		{"zero quantity", body(`[{"productId":1,"quantity":0}]`), http.StatusBadRequest},
		{"negative quantity", body(`[{"productId":1,"quantity":-1}]`), http.StatusBadRequest},
		{"101 lines", contract.ReserveRequest{AttemptID: valid.AttemptID, OrderID: valid.OrderID, Items: lines}, http.StatusBadRequest},
		{"no lines", body(`[]`), http.StatusBadRequest},
		{"not json", `{"attemptId":`, http.StatusBadRequest},
		{"two values", body(`[{"productId":1,"quantity":1}]`) + `{}`, http.StatusBadRequest},
		{"attempt id not a uuid", `{"attemptId":"x","orderId":"` + valid.OrderID + `","items":[{"productId":1,"quantity":1}]}`, http.StatusBadRequest},
		{"quantity as string", body(`[{"productId":1,"quantity":"1"}]`), http.StatusBadRequest},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			status, body := e.do(http.MethodPost, "/reservations", serviceToken, tt.body)
			if status != tt.want {
				t.Fatalf("status = %d, want %d (%s)", status, tt.want, body)
			}
		})
	}
	if n := e.count(`SELECT COUNT(*) FROM stock_attempts`); n != 0 {
		t.Fatalf("%d attempts written by bad requests", n)
	}
	if got := e.stock(p.ID); got != 5 {
		t.Fatalf("stock = %d, want 5", got)
	}
}

func TestReservationLogPaging(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	p := e.product("A", 100, 100)
	since := time.Now().UTC().Add(-time.Minute).Format(time.RFC3339)
	want := map[string]bool{}
	for range 7 {
		req := newRequest(contract.Item{ProductID: p.ID, Quantity: 1})
		e.reserve(req)
		want[req.AttemptID] = true
	}
	seen := map[string]bool{}
	path := "/reservations?limit=3&updatedSince=" + since
	for pages := 0; ; pages++ {
		if pages > 5 {
			t.Fatal("paging does not end")
		}
		status, body := e.do(http.MethodGet, path, serviceToken, nil)
		if status != http.StatusOK {
			t.Fatalf("page: %d %s", status, body)
		}
		var page contract.ReservationPage
		mustDecode(t, body, &page)
		for _, r := range page.Reservations {
			if seen[r.AttemptID] {
				t.Fatalf("attempt %s on two pages", r.AttemptID)
			}
			seen[r.AttemptID] = true
		}
		if page.Next == "" {
			break
		}
		path = "/reservations?limit=3&cursor=" + page.Next
	}
	if len(seen) != len(want) {
		t.Fatalf("paged %d attempts, want %d", len(seen), len(want))
	}
	if status, _ := e.do(http.MethodGet, "/reservations?cursor=garbage", serviceToken, nil); status != http.StatusBadRequest {
		t.Fatalf("bad cursor: %d, want 400", status)
	}
	future := time.Now().Add(time.Hour).UTC().Format(time.RFC3339)
	_, body := e.do(http.MethodGet, "/reservations?updatedSince="+future, serviceToken, nil)
	var page contract.ReservationPage
	mustDecode(t, body, &page)
	if len(page.Reservations) != 0 || page.Next != "" {
		t.Fatalf("future page = %+v, want empty", page)
	}
}

// fakeDeadLetters answers the DLQ endpoints without Kafka.
type fakeDeadLetters struct {
	pending  int64
	replayed int
	err      error
}

func (f *fakeDeadLetters) Pending(context.Context) (int64, error) { return f.pending, f.err }
func (f *fakeDeadLetters) Replay(context.Context) (int, error)    { return f.replayed, f.err }

func TestDeadLetterEndpoints(t *testing.T) {
	t.Parallel()
	serve := func(dlq httpapi.DeadLetters) *env {
		srv := httptest.NewServer(httpapi.New(httpapi.Config{
			Logger:       slog.New(slog.NewTextHandler(io.Discard, nil)),
			ServiceToken: serviceToken,
			AdminToken:   adminToken,
			DeadLetters:  dlq,
			Ready:        func(context.Context) error { return nil },
		}))
		t.Cleanup(srv.Close)
		return &env{t: t, url: srv.URL}
	}
	tests := []struct {
		name, method, path, token string
		dlq                       httpapi.DeadLetters
		wantStatus                int
		wantBody                  string
	}{
		{"count", http.MethodGet, "/admin/dlq", adminToken, &fakeDeadLetters{pending: 3}, http.StatusOK, `{"count":3}`},
		{"replay", http.MethodPost, "/admin/dlq/replay", adminToken, &fakeDeadLetters{replayed: 2}, http.StatusOK, `{"replayed":2}`},
		{"count without token", http.MethodGet, "/admin/dlq", "", &fakeDeadLetters{}, http.StatusUnauthorized, ""},
		{"replay with service token", http.MethodPost, "/admin/dlq/replay", serviceToken, &fakeDeadLetters{}, http.StatusUnauthorized, ""},
		{"count while kafka is away", http.MethodGet, "/admin/dlq", adminToken, &fakeDeadLetters{err: errors.New("all brokers down")}, http.StatusServiceUnavailable, ""},
		{"replay while kafka is away", http.MethodPost, "/admin/dlq/replay", adminToken, &fakeDeadLetters{err: errors.New("all brokers down")}, http.StatusServiceUnavailable, ""},
		{"no dead-letter topic wired", http.MethodGet, "/admin/dlq", adminToken, nil, http.StatusNotFound, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			status, body := serve(tt.dlq).do(tt.method, tt.path, tt.token, nil)
			if status != tt.wantStatus {
				t.Fatalf("status = %d, want %d (%s)", status, tt.wantStatus, body)
			}
			if tt.wantBody != "" && strings.TrimSpace(string(body)) != tt.wantBody {
				t.Fatalf("body = %s, want %s", body, tt.wantBody)
			}
			if status == http.StatusServiceUnavailable && strings.Contains(string(body), "brokers") {
				t.Fatalf("body %s leaks the internal error", body)
			}
		})
	}
}

// TestLedgerEndpoints: the log reads carry each attempt's ledger figures,
// the reserve and resolve answers do not, and GET /ledger shows the books,
// hand-made damage included.
func TestLedgerEndpoints(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	a, b := e.product("A", 100, 10), e.product("B", 200, 5)
	req := newRequest(contract.Item{ProductID: a.ID, Quantity: 3}, contract.Item{ProductID: b.ID, Quantity: 2})

	status, body := e.do(http.MethodPost, "/reservations", serviceToken, req)
	if status != http.StatusCreated || strings.Contains(string(body), `"ledger"`) {
		t.Fatalf("reserve: %d %s, want 201 without a ledger", status, body)
	}
	if status, body := e.do(http.MethodPost, "/reservations", serviceToken, req); status != http.StatusOK || strings.Contains(string(body), `"ledger"`) {
		t.Fatalf("replay: %d %s, want 200 without a ledger", status, body)
	}
	if status, body := e.do(http.MethodPost, "/reservations/"+req.AttemptID+"/resolve", serviceToken, contract.ResolveRequest{OrderID: req.OrderID}); status != http.StatusOK || strings.Contains(string(body), `"ledger"`) {
		t.Fatalf("resolve: %d %s, want 200 without a ledger", status, body)
	}

	status, body = e.do(http.MethodGet, "/reservations/"+req.AttemptID, serviceToken, nil)
	if status != http.StatusOK || !strings.Contains(string(body), `"ledger":{"taken":5,"returned":0}`) {
		t.Fatalf("read: %d %s, want the ledger taken 5 returned 0", status, body)
	}
	status, body = e.do(http.MethodGet, "/reservations?updatedSince=1970-01-01T00:00:00Z&limit=1000", serviceToken, nil)
	var page contract.ReservationPage
	mustDecode(t, body, &page)
	if status != http.StatusOK || len(page.Reservations) != 1 || page.Reservations[0].Ledger == nil ||
		*page.Reservations[0].Ledger != (contract.AttemptLedger{Taken: 5}) {
		t.Fatalf("log: %d %s, want one attempt with taken 5", status, body)
	}

	status, body = e.do(http.MethodGet, "/ledger", serviceToken, nil)
	want := fmt.Sprintf(`{"products":[{"productId":%d,"stock":7,"ledgerSum":7},{"productId":%d,"stock":3,"ledgerSum":3}],"unattributed":[]}`, a.ID, b.ID)
	if status != http.StatusOK || strings.TrimSpace(string(body)) != want {
		t.Fatalf("ledger: %d %s, want %s", status, body, want)
	}

	if _, err := e.db.Exec(`INSERT INTO stock_movements (product_id, delta, kind) VALUES (?, -1, 'reserve')`, a.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := e.db.Exec(`UPDATE products SET stock = 1 WHERE id = ?`, b.ID); err != nil {
		t.Fatal(err)
	}
	status, body = e.do(http.MethodGet, "/ledger", serviceToken, nil)
	var books contract.Ledger
	mustDecode(t, body, &books)
	wantProducts := []contract.ProductBalance{{ProductID: a.ID, Stock: 7, LedgerSum: 6}, {ProductID: b.ID, Stock: 1, LedgerSum: 3}}
	if status != http.StatusOK || fmt.Sprint(books.Products) != fmt.Sprint(wantProducts) {
		t.Fatalf("damaged ledger products: %d %s, want %+v", status, body, wantProducts)
	}
	if len(books.Unattributed) != 1 || books.Unattributed[0].ProductID != a.ID || books.Unattributed[0].AttemptID != "" ||
		books.Unattributed[0].Kind != "reserve" || books.Unattributed[0].Delta != -1 {
		t.Fatalf("damaged ledger unattributed: %s", body)
	}

	for _, tok := range []string{"", adminToken, "nope"} {
		if status, body := e.do(http.MethodGet, "/ledger", tok, nil); status != http.StatusUnauthorized {
			t.Errorf("GET /ledger with token %q: %d %s, want 401", tok, status, body)
		}
	}
}
