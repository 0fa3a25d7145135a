package httpapi_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/google/uuid"

	"github.com/stockfence/stockfence/productservice/internal/coalesce"
	"github.com/stockfence/stockfence/productservice/internal/httpapi"
	"github.com/stockfence/stockfence/productservice/internal/mysql"
	"github.com/stockfence/stockfence/productservice/internal/stock"
	"github.com/stockfence/stockfence/shared/contract"
	"github.com/stockfence/stockfence/shared/metrics/metricstest"
)

// newCoalescedEnv is newEnv with PRODUCT_COALESCE=on at the service's
// default lanes and batch size. observe, if set, is told every coalesced
// batch's size.
func newCoalescedEnv(t *testing.T, observe func(int)) *env {
	t.Helper()
	return newStoreEnv(t, func(s *mysql.Store) httpapi.Store {
		c := coalesce.New(s, coalesce.Config{Lanes: 4, MaxBatch: 200, Observe: observe})
		t.Cleanup(c.Close) // after the server's Close, registered later
		return coalesce.Store{Store: s, Coalescer: c}
	})
}

// rawResult is one result of a batch with its body as sent.
type rawResult struct {
	Status      int             `json:"status"`
	Reservation json.RawMessage `json:"reservation"`
	Problem     json.RawMessage `json:"problem"`
}

// reserveBatch sends reqs as one batch, which must answer 200 with one
// result per request.
func (e *env) reserveBatch(reqs []contract.ReserveRequest) []rawResult {
	e.t.Helper()
	status, body := e.do(http.MethodPost, "/reservations/batch", serviceToken, contract.ReserveBatchRequest{Reservations: reqs})
	if status != http.StatusOK {
		e.t.Fatalf("batch of %d: %d %.500s, want 200", len(reqs), status, body)
	}
	var resp struct {
		Results []rawResult `json:"results"`
	}
	mustDecode(e.t, body, &resp)
	if len(resp.Results) != len(reqs) {
		e.t.Fatalf("batch of %d answered %d results", len(reqs), len(resp.Results))
	}
	return resp.Results
}

// body is the result's body: its reservation or its problem, whichever it
// has; it must have exactly one.
func (r rawResult) body(t *testing.T) []byte {
	t.Helper()
	if (len(r.Reservation) == 0) == (len(r.Problem) == 0) {
		t.Fatalf("result %d has reservation %s and problem %s: want exactly one", r.Status, r.Reservation, r.Problem)
	}
	if len(r.Problem) > 0 {
		return r.Problem
	}
	return r.Reservation
}

// withoutTimes is a JSON object without its createdAt and updatedAt, in a
// canonical encoding.
func withoutTimes(t *testing.T, raw []byte) string {
	t.Helper()
	var v map[string]any
	mustDecode(t, raw, &v)
	delete(v, "createdAt")
	delete(v, "updatedAt")
	out, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(out)
}

// reservationCounts returns every series of stockfence_reservations_total
// the service at url serves, by its labels.
func reservationCounts(t *testing.T, url string) map[string]float64 {
	t.Helper()
	s := metricstest.Scrape(t, url+"/metrics")
	counts := map[string]float64{}
	for _, m := range s.Families["stockfence_reservations_total"].GetMetric() {
		var labels []string
		for _, l := range m.GetLabel() {
			labels = append(labels, l.GetName()+"="+l.GetValue())
		}
		counts[strings.Join(labels, ",")] = m.GetCounter().GetValue()
	}
	if len(counts) == 0 {
		t.Fatalf("%s serves no stockfence_reservations_total", url)
	}
	return counts
}

// TestReserveBatchAnswersAsReserveDoes sends one list of requests of every
// kind as one batch to one fresh database and one by one, in order, with
// POST /reservations to another: every result of the batch must be the
// status and body the single call answered, both services must count the
// same outcomes, and both databases must end up the same. The requests
// compete for no stock, so their order can only matter where they name the
// same attempt, which a batch takes in request order. With and without the
// coalescer.
func TestReserveBatchAnswersAsReserveDoes(t *testing.T) {
	t.Parallel()
	for _, mode := range []struct {
		name   string
		newEnv func(t *testing.T) *env
	}{
		{"one transaction each", newEnv},
		{"coalesced", func(t *testing.T) *env { return newCoalescedEnv(t, nil) }},
	} {
		t.Run(mode.name, func(t *testing.T) {
			t.Parallel()
			batchEnv, singleEnv := mode.newEnv(t), newEnv(t)

			before := newRequest()   // applied before the batch
			fenced := newRequest()   // resolved (fenced) before the batch
			rejected := newRequest() // more than the stock of B
			applied := newRequest()  // applied by the batch, then replayed in it
			twoLines := newRequest() // applied by the batch
			unknown := newRequest()  // names a product that does not exist
			var products []contract.Product
			for _, e := range []*env{batchEnv, singleEnv} {
				a, b, c := e.product("A", 250, 1000), e.product("B", 1000, 1), e.product("C", 5, 50)
				products = append(products, a, b, c)
				before.Items = []contract.Item{{ProductID: a.ID, Quantity: 2}}
				fenced.Items = []contract.Item{{ProductID: a.ID, Quantity: 1}}
				rejected.Items = []contract.Item{{ProductID: a.ID, Quantity: 1}, {ProductID: b.ID, Quantity: 2}}
				applied.Items = []contract.Item{{ProductID: a.ID, Quantity: 3}}
				twoLines.Items = []contract.Item{{ProductID: c.ID, Quantity: 2}, {ProductID: a.ID, Quantity: 1}}
				unknown.Items = []contract.Item{{ProductID: a.ID, Quantity: 1}, {ProductID: 987654, Quantity: 1}}
				if status, _ := e.reserve(before); status != http.StatusCreated {
					t.Fatalf("reserve before the batch: %d", status)
				}
				if res := e.resolve(fenced.AttemptID, fenced.OrderID); res.Status != contract.StatusAborted {
					t.Fatalf("fence: %s", res.Status)
				}
			}
			if fmt.Sprint(products[:3]) != fmt.Sprint(products[3:]) {
				t.Fatalf("the two databases' products differ: %v and %v", products[:3], products[3:])
			}
			a := products[0]

			otherOrder := before
			otherOrder.OrderID = uuid.NewString()
			otherItems := applied
			otherItems.Items = []contract.Item{{ProductID: a.ID, Quantity: 4}}
			zero := newRequest(contract.Item{ProductID: a.ID, Quantity: 0})
			badIDs := contract.ReserveRequest{AttemptID: "attempt-1", OrderID: strings.ToUpper(uuid.NewString()),
				Items: []contract.Item{{ProductID: a.ID, Quantity: 1}}}
			twice := newRequest(contract.Item{ProductID: a.ID, Quantity: 1}, contract.Item{ProductID: a.ID, Quantity: 1})
			// Too large to be sent alone (more than MaxBodyBytes), though
			// well within the batch's limit.
			huge := newRequest()
			for i := range 3000 {
				huge.Items = append(huge.Items, contract.Item{ProductID: int64(i + 1), Quantity: 1})
			}

			cases := []struct {
				name string
				req  contract.ReserveRequest
				want int
			}{
				{"applied", applied, http.StatusCreated},
				{"two lines applied", twoLines, http.StatusCreated},
				{"replay of one applied earlier in the batch", applied, http.StatusOK},
				{"replay of one applied before", before, http.StatusOK},
				{"rejected for stock", rejected, http.StatusConflict},
				{"rejected again", rejected, http.StatusConflict},
				{"unknown product", unknown, http.StatusConflict},
				{"quantity 0", zero, http.StatusBadRequest},
				{"ids not lowercase uuids", badIDs, http.StatusBadRequest},
				{"one product twice", twice, http.StatusBadRequest},
				{"too large alone", huge, http.StatusRequestEntityTooLarge},
				{"fenced", fenced, http.StatusConflict},
				{"attempt reused with another order", otherOrder, http.StatusUnprocessableEntity},
				{"attempt of the batch reused with other items", otherItems, http.StatusUnprocessableEntity},
				{"fenced again", fenced, http.StatusConflict},
			}
			reqs := make([]contract.ReserveRequest, len(cases))
			for i, c := range cases {
				reqs[i] = c.req
			}
			results := batchEnv.reserveBatch(reqs)
			for i, c := range cases {
				status, body := singleEnv.do(http.MethodPost, "/reservations", serviceToken, c.req)
				if status != c.want {
					t.Fatalf("%s: POST /reservations = %d %.300s, want %d: the case does not test what it says", c.name, status, body, c.want)
				}
				got := results[i]
				if got.Status != status {
					t.Errorf("%s: batch result %d %.300s, POST /reservations %d %.300s", c.name, got.Status, got.body(t), status, body)
					continue
				}
				if g, w := withoutTimes(t, got.body(t)), withoutTimes(t, body); g != w {
					t.Errorf("%s: batch body\n%.500s\nPOST /reservations body\n%.500s", c.name, g, w)
				}
			}

			if g, w := reservationCounts(t, batchEnv.url), reservationCounts(t, singleEnv.url); fmt.Sprint(g) != fmt.Sprint(w) {
				t.Errorf("reservations_total after the batch\n%v\nafter the single calls\n%v", g, w)
			}
			s := metricstest.Scrape(t, batchEnv.url+"/metrics")
			if got, _ := s.Value("stockfence_http_requests_total", map[string]string{"route": "/reservations/batch", "method": "POST", "code": "200"}); got != 1 {
				t.Errorf("http_requests_total of the batch route = %v, want 1", got)
			}
			if got, _ := s.Value("stockfence_http_requests_total", map[string]string{"route": "/reservations", "method": "POST"}); got != 1 {
				t.Errorf("http_requests_total of POST /reservations = %v, want 1 (the one before the batch)", got)
			}

			const attempts = `SELECT CONCAT_WS('|', attempt_id, order_id, status, COALESCE(items, ''), COALESCE(reason, ''), COALESCE(rejection, ''))
				FROM stock_attempts ORDER BY attempt_id`
			if g, w := batchEnv.rows(attempts), singleEnv.rows(attempts); fmt.Sprint(g) != fmt.Sprint(w) {
				t.Errorf("attempt log after the batch\n%v\nafter the single calls\n%v", g, w)
			}
			const stocks = `SELECT CONCAT(id, ':', stock) FROM products ORDER BY id`
			if g, w := batchEnv.rows(stocks), singleEnv.rows(stocks); fmt.Sprint(g) != fmt.Sprint(w) {
				t.Errorf("stock after the batch %v, after the single calls %v", g, w)
			}
			batchEnv.checkLedger()
		})
	}
}

// rows returns the single string column q selects, row by row.
func (e *env) rows(q string) []string {
	e.t.Helper()
	rows, err := e.db.Query(q)
	if err != nil {
		e.t.Fatal(err)
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var s string
		if err := rows.Scan(&s); err != nil {
			e.t.Fatal(err)
		}
		out = append(out, s)
	}
	if err := rows.Err(); err != nil {
		e.t.Fatal(err)
	}
	return out
}

// TestReserveBatchRefusedAsAWhole: a batch that is not one, that holds no
// request or too many, that is too large or that comes without the service
// token is refused with its problem, and nothing of it is applied or logged.
// Then a batch exactly as large as the limits allow is served.
func TestReserveBatchRefusedAsAWhole(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	p := e.product("A", 100, 5)
	batchOf := func(n int) contract.ReserveBatchRequest {
		reqs := make([]contract.ReserveRequest, n)
		for i := range reqs {
			reqs[i] = newRequest(contract.Item{ProductID: p.ID, Quantity: 1})
		}
		return contract.ReserveBatchRequest{Reservations: reqs}
	}
	encode := func(v any) string {
		raw, err := json.Marshal(v)
		if err != nil {
			t.Fatal(err)
		}
		return string(raw)
	}
	one := encode(batchOf(1))
	element := encode(newRequest(contract.Item{ProductID: p.ID, Quantity: 1}))
	oversized := strings.TrimSuffix(one, "}") + strings.Repeat(" ", contract.MaxBatchBodyBytes-len(one)+1) + "}"

	tests := []struct {
		name, token string
		body        any
		status      int
		code        string
		// field, when set, is the field error the problem must name.
		field string
	}{
		{"empty", serviceToken, `{"reservations":[]}`, http.StatusBadRequest, "validation_failed", "reservations"},
		{"no reservations field", serviceToken, `{}`, http.StatusBadRequest, "validation_failed", "reservations"},
		{"null reservations", serviceToken, `{"reservations":null}`, http.StatusBadRequest, "validation_failed", "reservations"},
		{"one too many", serviceToken, batchOf(contract.MaxBatchReservations + 1), http.StatusBadRequest, "validation_failed", "reservations"},
		{"unknown field", serviceToken, strings.TrimSuffix(one, "}") + `,"priority":1}`, http.StatusBadRequest, "validation_failed", ""},
		{"unknown field in a request", serviceToken, `{"reservations":[` + strings.TrimSuffix(element, "}") + `,"unitPriceCents":1}]}`, http.StatusBadRequest, "validation_failed", ""},
		{"wrong type in a request", serviceToken, strings.Replace(one, `"quantity":1`, `"quantity":"1"`, 1), http.StatusBadRequest, "validation_failed", ""},
		{"not an object", serviceToken, `[` + element + `]`, http.StatusBadRequest, "validation_failed", ""},
		{"not json", serviceToken, `{"reservations":[` + element, http.StatusBadRequest, "validation_failed", ""},
		{"two values", serviceToken, one + one, http.StatusBadRequest, "validation_failed", ""},
		{"no body", serviceToken, nil, http.StatusBadRequest, "validation_failed", ""},
		{"over the size limit", serviceToken, oversized, http.StatusRequestEntityTooLarge, "body_too_large", ""},
		{"no token", "", one, http.StatusUnauthorized, "unauthorized", ""},
		{"wrong token", "nope", one, http.StatusUnauthorized, "unauthorized", ""},
		{"admin token", adminToken, one, http.StatusUnauthorized, "unauthorized", ""},
	}
	invalid := 0
	for _, tt := range tests {
		if tt.status != http.StatusUnauthorized {
			invalid++
		}
		t.Run(tt.name, func(t *testing.T) {
			status, body := e.do(http.MethodPost, "/reservations/batch", tt.token, tt.body)
			var p struct {
				Status int    `json:"status"`
				Code   string `json:"code"`
				Errors []struct {
					Field string `json:"field"`
				} `json:"errors"`
			}
			mustDecode(t, body, &p)
			if status != tt.status || p.Status != tt.status || p.Code != tt.code {
				t.Fatalf("%d %.300s, want %d %s", status, body, tt.status, tt.code)
			}
			if tt.field != "" && (len(p.Errors) != 1 || p.Errors[0].Field != tt.field) {
				t.Fatalf("%.300s: want one error on %q", body, tt.field)
			}
		})
	}
	if n := e.count(`SELECT COUNT(*) FROM stock_attempts`); n != 0 {
		t.Fatalf("%d attempts written by refused batches", n)
	}
	if got := e.stock(p.ID); got != 5 {
		t.Fatalf("stock = %d, want 5", got)
	}
	s := metricstest.Scrape(t, e.url+"/metrics")
	if got, _ := s.Value("stockfence_reservations_total", map[string]string{"outcome": "invalid"}); got != float64(invalid) {
		t.Errorf("reservations_total{outcome=invalid} = %v, want %d: one per batch refused before the store", got, invalid)
	}

	// The limits themselves are allowed: MaxBatchReservations requests in a
	// body of exactly MaxBatchBodyBytes.
	full := batchOf(contract.MaxBatchReservations)
	raw := encode(full)
	raw = strings.TrimSuffix(raw, "}") + strings.Repeat(" ", contract.MaxBatchBodyBytes-len(raw)) + "}"
	if len(raw) != contract.MaxBatchBodyBytes {
		t.Fatalf("built a body of %d bytes", len(raw))
	}
	status, body := e.do(http.MethodPost, "/reservations/batch", serviceToken, raw)
	var resp contract.ReserveBatchResponse
	if status == http.StatusOK {
		mustDecode(t, body, &resp)
	}
	if status != http.StatusOK || len(resp.Results) != contract.MaxBatchReservations {
		t.Fatalf("batch at the limits: %d %.300s, want 200 with %d results", status, body, contract.MaxBatchReservations)
	}
	applied := 0
	for i, r := range resp.Results {
		if r.Reservation == nil || r.Reservation.AttemptID != full.Reservations[i].AttemptID {
			t.Fatalf("result %d = %+v, not for request %d's attempt", i, r, i)
		}
		if r.Status == http.StatusCreated {
			applied++
		}
	}
	if applied != 5 || e.stock(p.ID) != 0 {
		t.Fatalf("%d applied, stock %d; want 5 and 0", applied, e.stock(p.ID))
	}
	e.checkLedger()
}

// TestReserveBatchSameAttemptTwice: requests of one batch that name the same
// attempt are two concurrent POST /reservations: one applies, the other is
// answered from the log (a replay, or 422 if it differs), and the stock is
// taken once. With and without the coalescer.
func TestReserveBatchSameAttemptTwice(t *testing.T) {
	t.Parallel()
	for name, newEnv := range map[string]func(*testing.T) *env{
		"one transaction each": newEnv,
		"coalesced":            func(t *testing.T) *env { return newCoalescedEnv(t, nil) },
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			e := newEnv(t)
			p := e.product("A", 100, 10)
			req := newRequest(contract.Item{ProductID: p.ID, Quantity: 3})
			other := req
			other.Items = []contract.Item{{ProductID: p.ID, Quantity: 1}}
			filler := newRequest(contract.Item{ProductID: p.ID, Quantity: 1})
			results := e.reserveBatch([]contract.ReserveRequest{req, filler, req, other, req})
			var got []int
			for _, r := range results {
				got = append(got, r.Status)
			}
			if want := []int{http.StatusCreated, http.StatusCreated, http.StatusOK, http.StatusUnprocessableEntity, http.StatusOK}; fmt.Sprint(got) != fmt.Sprint(want) {
				t.Fatalf("statuses %v, want %v", got, want)
			}
			if string(results[2].Reservation) != string(results[0].Reservation) || string(results[4].Reservation) != string(results[0].Reservation) {
				t.Fatalf("replays %s and %s differ from the first answer %s", results[2].Reservation, results[4].Reservation, results[0].Reservation)
			}
			if got := e.stock(p.ID); got != 6 {
				t.Fatalf("stock = %d, want 6: the attempt applied once and the filler once", got)
			}
			if n := e.count(`SELECT COUNT(*) FROM stock_movements WHERE attempt_id = ?`, req.AttemptID); n != 1 {
				t.Fatalf("%d movements for the attempt, want 1", n)
			}
			e.checkLedger()
		})
	}
}

// TestReserveBatchFlashSaleThroughTheCoalescer: one batch of 300 one-unit
// requests for a product with 100 in stock, with the coalescer on: they are
// applied concurrently (so in coalesced transactions of several), exactly
// 100 are applied and 200 rejected, each result answers its own request,
// and the stock and the ledger end at 0.
func TestReserveBatchFlashSaleThroughTheCoalescer(t *testing.T) {
	t.Parallel()
	var biggest atomic.Int64
	e := newCoalescedEnv(t, func(n int) {
		for cur := biggest.Load(); int64(n) > cur && !biggest.CompareAndSwap(cur, int64(n)); cur = biggest.Load() {
		}
	})
	p := e.product("HOT", 100, 100)
	reqs := make([]contract.ReserveRequest, 300)
	for i := range reqs {
		reqs[i] = newRequest(contract.Item{ProductID: p.ID, Quantity: 1})
	}
	status, body := e.do(http.MethodPost, "/reservations/batch", serviceToken, contract.ReserveBatchRequest{Reservations: reqs})
	if status != http.StatusOK {
		t.Fatalf("batch: %d %.300s", status, body)
	}
	var resp contract.ReserveBatchResponse
	mustDecode(t, body, &resp)
	if len(resp.Results) != len(reqs) {
		t.Fatalf("%d results for %d requests", len(resp.Results), len(reqs))
	}
	applied, rejected := 0, 0
	for i, r := range resp.Results {
		switch {
		case r.Reservation == nil || r.Reservation.AttemptID != reqs[i].AttemptID || r.Reservation.OrderID != reqs[i].OrderID:
			t.Fatalf("result %d = %+v does not answer request %d", i, r, i)
		case r.Status == http.StatusCreated && r.Reservation.Status == contract.StatusApplied:
			applied++
		case r.Status == http.StatusConflict && r.Reservation.Status == contract.StatusRejected && r.Reservation.Reason == contract.ReasonInsufficientStock:
			rejected++
		default:
			t.Fatalf("result %d = %d %+v", i, r.Status, *r.Reservation)
		}
	}
	if applied != 100 || rejected != 200 {
		t.Fatalf("applied %d, rejected %d; want 100 and 200", applied, rejected)
	}
	if got := e.stock(p.ID); got != 0 {
		t.Fatalf("stock = %d, want 0", got)
	}
	if n := e.count(`SELECT COUNT(*) FROM stock_attempts WHERE status = 'APPLIED'`); n != 100 {
		t.Fatalf("%d APPLIED attempts, want 100", n)
	}
	if n := e.count(`SELECT COUNT(*) FROM stock_attempts WHERE status = 'REJECTED'`); n != 200 {
		t.Fatalf("%d REJECTED attempts, want 200", n)
	}
	e.checkLedger()
	if biggest.Load() < 2 {
		t.Fatalf("largest coalesced transaction %d: the batch's requests were not applied concurrently", biggest.Load())
	}
}

// TestReserveBatchLeavesTheAttemptRoutes: /reservations/batch is a static
// segment beside /reservations/{attemptId}; the attempt routes still serve
// an attempt the batch applied, and GET /reservations/batch is still the
// read of an attempt id that is no UUID.
func TestReserveBatchLeavesTheAttemptRoutes(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	p := e.product("A", 100, 5)
	req := newRequest(contract.Item{ProductID: p.ID, Quantity: 2})
	if r := e.reserveBatch([]contract.ReserveRequest{req}); r[0].Status != http.StatusCreated {
		t.Fatalf("batch: %d %s", r[0].Status, r[0].body(t))
	}
	if status, body := e.do(http.MethodGet, "/reservations/"+req.AttemptID, serviceToken, nil); status != http.StatusOK || !strings.Contains(string(body), `"APPLIED"`) {
		t.Fatalf("GET /reservations/{attemptId}: %d %s", status, body)
	}
	if res := e.resolve(req.AttemptID, req.OrderID); res.Status != contract.StatusApplied {
		t.Fatalf("resolve: %s", res.Status)
	}
	if status, body := e.do(http.MethodGet, "/reservations/batch", serviceToken, nil); status != http.StatusBadRequest || !strings.Contains(string(body), `"attemptId"`) {
		t.Fatalf("GET /reservations/batch: %d %s, want 400 on attemptId", status, body)
	}
	if status, _ := e.do(http.MethodPost, "/reservations/batch/resolve", serviceToken, contract.ResolveRequest{OrderID: req.OrderID}); status != http.StatusBadRequest {
		t.Fatalf("POST /reservations/batch/resolve: %d, want 400 (attempt id batch)", status)
	}
	if status, _ := e.do(http.MethodPut, "/reservations/batch", serviceToken, nil); status != http.StatusMethodNotAllowed {
		t.Fatalf("PUT /reservations/batch: %d, want 405", status)
	}
}

// failingStore fails Reserve the ways a database can: a mismatch, an
// internal error, a panic, by the attempt's first hex digit; other attempts
// are applied.
type failingStore struct{ httpapi.Store }

func (failingStore) Reserve(_ context.Context, req contract.ReserveRequest) (contract.Reservation, bool, error) {
	switch req.AttemptID[0] {
	case 'a':
		return contract.Reservation{}, false, fmt.Errorf("attempt %s belongs to order x: %w", req.AttemptID, stock.ErrAttemptMismatch)
	case 'b':
		return contract.Reservation{}, false, errors.New("connection refused")
	case 'c':
		panic("the driver panicked")
	}
	return contract.Reservation{AttemptID: req.AttemptID, OrderID: req.OrderID, Status: contract.StatusApplied,
		Items: []contract.ReservedItem{{ProductID: 1, Quantity: 1, UnitPriceCents: 1}}}, false, nil
}

// TestReserveBatchStoreFailures: when the store fails a request of a batch,
// its result is what POST /reservations answers the same failure (422, a
// 500 that reveals nothing, also for a panic), the other requests are
// answered, and the counts agree.
func TestReserveBatchStoreFailures(t *testing.T) {
	t.Parallel()
	serve := func() *env {
		srv := httptest.NewServer(httpapi.New(httpapi.Config{
			Store:        failingStore{},
			Logger:       slog.New(slog.NewTextHandler(io.Discard, nil)),
			ServiceToken: serviceToken,
			AdminToken:   adminToken,
			Ready:        func(context.Context) error { return nil },
		}))
		t.Cleanup(srv.Close)
		return &env{t: t, url: srv.URL}
	}
	batchEnv, singleEnv := serve(), serve()
	withPrefix := func(c byte) contract.ReserveRequest {
		req := newRequest(contract.Item{ProductID: 1, Quantity: 1})
		req.AttemptID = string(c) + req.AttemptID[1:]
		return req
	}
	reqs := []contract.ReserveRequest{withPrefix('a'), withPrefix('b'), withPrefix('c'), withPrefix('d')}
	wants := []int{http.StatusUnprocessableEntity, http.StatusInternalServerError, http.StatusInternalServerError, http.StatusCreated}
	results := batchEnv.reserveBatch(reqs)
	for i, req := range reqs {
		status, body := singleEnv.do(http.MethodPost, "/reservations", serviceToken, req)
		if status != wants[i] {
			t.Fatalf("request %d alone: %d %s, want %d", i, status, body, wants[i])
		}
		if results[i].Status != status || !bytes.Equal(results[i].body(t), bytes.TrimSpace(body)) {
			t.Errorf("request %d: batch %d %s, alone %d %s", i, results[i].Status, results[i].body(t), status, body)
		}
		if strings.Contains(string(results[i].body(t)), "refused") || strings.Contains(string(results[i].body(t)), "panicked") {
			t.Errorf("request %d: %s reveals the error", i, results[i].body(t))
		}
	}
	if g, w := reservationCounts(t, batchEnv.url), reservationCounts(t, singleEnv.url); fmt.Sprint(g) != fmt.Sprint(w) {
		t.Errorf("reservations_total after the batch\n%v\nafter the single calls\n%v", g, w)
	}
}
