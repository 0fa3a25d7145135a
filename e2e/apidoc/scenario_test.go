package apidoc_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/getkin/kin-openapi/openapi3filter"
	"github.com/google/uuid"

	"github.com/stockfence/stockfence/e2e/stack"
	"github.com/stockfence/stockfence/shared/contract"
	"github.com/stockfence/stockfence/shared/mysqldb/mysqltest"
)

// settleWithin bounds how long an order may take to reach the status a
// step waits for (a compensation's round trip over Kafka, the recovery
// worker after the product service is back).
const settleWithin = 90 * time.Second

// order is the part of the order representation the scenario steers by.
type order struct {
	OrderID  string `json:"orderId"`
	Status   string `json:"status"`
	Attempts []struct {
		AttemptID string `json:"attemptId"`
	} `json:"attempts"`
}

// TestResponsesMatchTheDocuments drives both services through every
// documented operation and the main error cases, validating each request
// and response against the document the service serves.
func TestResponsesMatchTheDocuments(t *testing.T) {
	secret := stack.NewSecret()
	s, err := stack.Start(t.Context(), stack.Options{
		BinDir:      binDir,
		ProductsDSN: mysqltest.New(t, "apidoc_products"),
		OrdersDSN:   mysqltest.New(t, "apidoc_orders"),
		LogDir:      t.TempDir(),
		JWTSecret:   secret,
		// Small pools: other stacks may share the MariaDB server.
		Env: map[string]string{"PRODUCT_MYSQL_MAX_CONNS": "8", "ORDER_MYSQL_MAX_CONNS": "8"},
		OrderEnv: map[string]string{
			// Room for a slow, busy machine: an order must get its
			// definite answer, not a 202. An order caught by the product
			// service going away still answers 202 at once, as soon as
			// the breaker opens.
			"PRODUCT_TIMEOUT":   "10s",
			"ORDER_SYNC_BUDGET": "30s",
			// Routes GET /demo/token.
			"STOREFRONT_DEMO_TOKEN": stack.SignCustomerToken(secret, "apidoc-demo", time.Hour),
		},
	})
	if err != nil {
		t.Fatalf("start stack: %v", err)
	}
	t.Cleanup(func() {
		if err := s.Stop(); err != nil {
			t.Errorf("stop stack: %v", err)
		}
		if t.Failed() {
			for _, p := range []*stack.Process{s.Product, s.Order} {
				t.Logf("%s log ends with:\n%s", p.Name, p.Tail(30))
			}
		}
	})

	products := loadDoc(t, "productservice", s.ProductURL)
	orders := loadDoc(t, "orderservice", s.OrderURL)
	catalog := productScenario(t, products, s)
	orderScenario(t, orders, products, s, catalog)
	outageScenario(t, orders, products, s, catalog)
	kafkaOutageScenario(t, products, orders, s)
	checkDriftIsCaught(t, orders)

	products.checkCoverage()
	orders.checkCoverage()
}

// seeded are the products the scenarios order.
type seeded struct {
	a, b, big contract.Product
}

// productScenario exercises the product service's catalog, reservation,
// ledger and admin endpoints.
func productScenario(t *testing.T, d *apiDoc, s *stack.Stack) seeded {
	admin, service := s.AdminToken, s.ServiceToken

	for _, p := range []string{"/healthz", "/readyz", "/openapi.yaml"} {
		d.do(call{method: http.MethodGet, path: p, status: http.StatusOK})
	}
	r := d.do(call{method: http.MethodGet, path: "/healthz", headers: map[string]string{"X-Request-Id": "apidoc-request-1"}, status: http.StatusOK})
	if got := r.header.Get("X-Request-Id"); got != "apidoc-request-1" {
		t.Errorf("X-Request-Id = %q, want the request's own apidoc-request-1", got)
	}

	// Catalog writes.
	var cat seeded
	create := func(np contract.NewProduct) contract.Product {
		var p contract.Product
		d.do(call{method: http.MethodPost, path: "/products", token: admin, body: np, status: http.StatusCreated}).decode(t, &p)
		return p
	}
	cat.a = create(contract.NewProduct{SKU: "APIDOC-A", Name: "Teapot", PriceCents: 1250, Stock: 10})
	cat.b = create(contract.NewProduct{SKU: "APIDOC-B", Name: "Cup", PriceCents: 300, Stock: 5})
	cat.big = create(contract.NewProduct{SKU: "APIDOC-BIG", Name: "Sand", PriceCents: 1, Stock: contract.MaxStock - 1})
	d.do(call{method: http.MethodPost, path: "/products", token: admin, status: http.StatusConflict,
		body: contract.NewProduct{SKU: "APIDOC-A", Name: "Another teapot", PriceCents: 1, Stock: 1}})
	d.do(call{method: http.MethodPost, path: "/products", token: admin, status: http.StatusBadRequest, invalid: true,
		body: contract.NewProduct{SKU: " padded ", Name: "", PriceCents: -1, Stock: 0}})
	d.do(call{method: http.MethodPost, path: "/products", token: admin, status: http.StatusBadRequest, invalid: true,
		body: map[string]any{"sku": "APIDOC-C", "name": "Spoon", "priceCents": 1, "stock": 1, "color": "red"}})
	d.do(call{method: http.MethodPost, path: "/products", token: admin, status: http.StatusBadRequest, invalid: true,
		body: `{"sku": "APIDOC-C",`})
	d.do(call{method: http.MethodPost, path: "/products", token: admin, status: http.StatusRequestEntityTooLarge,
		body: padded(`{"sku":"APIDOC-C","name":"Spoon","priceCents":1,"stock":1}`)})
	d.do(call{method: http.MethodPost, path: "/products", status: http.StatusUnauthorized, invalid: true,
		body: contract.NewProduct{SKU: "APIDOC-C", Name: "Spoon", PriceCents: 1, Stock: 1}})
	d.do(call{method: http.MethodPost, path: "/products", token: service, status: http.StatusUnauthorized,
		body: contract.NewProduct{SKU: "APIDOC-C", Name: "Spoon", PriceCents: 1, Stock: 1}})

	// Catalog reads.
	d.do(call{method: http.MethodGet, path: "/products", status: http.StatusOK})
	d.do(call{method: http.MethodGet, path: fmt.Sprintf("/products/%d", cat.a.ID), status: http.StatusOK})
	d.do(call{method: http.MethodGet, path: "/products/999999999", status: http.StatusNotFound})
	d.do(call{method: http.MethodGet, path: "/products/teapot", status: http.StatusNotFound, invalid: true})

	// Restock.
	restock := func(id int64) string { return fmt.Sprintf("/products/%d/restock", id) }
	d.do(call{method: http.MethodPost, path: restock(cat.a.ID), token: admin, body: contract.Restock{Quantity: 5}, status: http.StatusOK})
	cat.a.Stock += 5
	d.do(call{method: http.MethodPost, path: restock(cat.a.ID), token: admin, body: contract.Restock{Quantity: 0}, status: http.StatusBadRequest, invalid: true})
	d.do(call{method: http.MethodPost, path: restock(999999999), token: admin, body: contract.Restock{Quantity: 1}, status: http.StatusNotFound})
	d.do(call{method: http.MethodPost, path: restock(cat.big.ID), token: admin, body: contract.Restock{Quantity: contract.MaxRestock}, status: http.StatusConflict})
	d.do(call{method: http.MethodPost, path: restock(cat.a.ID), token: admin, body: padded(`{"quantity":1}`), status: http.StatusRequestEntityTooLarge})
	d.do(call{method: http.MethodPost, path: restock(cat.a.ID), token: service, body: contract.Restock{Quantity: 1}, status: http.StatusUnauthorized})

	// Reservations: applied, replayed, mismatched, rejected twice over,
	// fenced, and bad input. They take stock for orders the order service
	// never heard of, which GET /ops/reconcile reports later.
	applied := contract.ReserveRequest{AttemptID: uuid.NewString(), OrderID: uuid.NewString(),
		Items: []contract.Item{{ProductID: cat.a.ID, Quantity: 1}}}
	d.do(call{method: http.MethodPost, path: "/reservations", token: service, body: applied, status: http.StatusCreated})
	d.do(call{method: http.MethodPost, path: "/reservations", token: service, body: applied, status: http.StatusOK})
	cat.a.Stock--
	mismatched := applied
	mismatched.Items = []contract.Item{{ProductID: cat.a.ID, Quantity: 2}}
	d.do(call{method: http.MethodPost, path: "/reservations", token: service, body: mismatched, status: http.StatusUnprocessableEntity})
	short := contract.ReserveRequest{AttemptID: uuid.NewString(), OrderID: uuid.NewString(),
		Items: []contract.Item{{ProductID: cat.a.ID, Quantity: 1}, {ProductID: cat.b.ID, Quantity: 100}}}
	d.do(call{method: http.MethodPost, path: "/reservations", token: service, body: short, status: http.StatusConflict})
	d.do(call{method: http.MethodPost, path: "/reservations", token: service, body: short, status: http.StatusConflict})
	unknown := contract.ReserveRequest{AttemptID: uuid.NewString(), OrderID: uuid.NewString(),
		Items: []contract.Item{{ProductID: 999999999, Quantity: 1}}}
	d.do(call{method: http.MethodPost, path: "/reservations", token: service, body: unknown, status: http.StatusConflict})
	fenced := contract.ReserveRequest{AttemptID: uuid.NewString(), OrderID: uuid.NewString(),
		Items: []contract.Item{{ProductID: cat.b.ID, Quantity: 1}}}
	resolve := func(attemptID string) string { return "/reservations/" + attemptID + "/resolve" }
	d.do(call{method: http.MethodPost, path: resolve(fenced.AttemptID), token: service,
		body: contract.ResolveRequest{OrderID: fenced.OrderID}, status: http.StatusOK})
	d.do(call{method: http.MethodPost, path: "/reservations", token: service, body: fenced, status: http.StatusConflict})
	d.do(call{method: http.MethodPost, path: resolve(applied.AttemptID), token: service,
		body: contract.ResolveRequest{OrderID: applied.OrderID}, status: http.StatusOK})
	d.do(call{method: http.MethodPost, path: resolve(applied.AttemptID), token: service,
		body: contract.ResolveRequest{OrderID: uuid.NewString()}, status: http.StatusUnprocessableEntity})
	d.do(call{method: http.MethodPost, path: resolve(applied.AttemptID), token: service,
		body: map[string]string{"orderId": "order-1"}, status: http.StatusBadRequest, invalid: true})
	d.do(call{method: http.MethodPost, path: resolve(strings.ToUpper(uuid.NewString())), token: service,
		body: contract.ResolveRequest{OrderID: uuid.NewString()}, status: http.StatusBadRequest, invalid: true})
	d.do(call{method: http.MethodPost, path: resolve(uuid.NewString()), token: service,
		body: padded(fmt.Sprintf(`{"orderId":%q}`, uuid.NewString())), status: http.StatusRequestEntityTooLarge})
	d.do(call{method: http.MethodPost, path: resolve(uuid.NewString()), token: admin,
		body: contract.ResolveRequest{OrderID: uuid.NewString()}, status: http.StatusUnauthorized})
	upper := applied
	upper.AttemptID = strings.ToUpper(uuid.NewString())
	d.do(call{method: http.MethodPost, path: "/reservations", token: service, body: upper, status: http.StatusBadRequest, invalid: true})
	d.do(call{method: http.MethodPost, path: "/reservations", token: service, status: http.StatusBadRequest, invalid: true,
		body: contract.ReserveRequest{AttemptID: uuid.NewString(), OrderID: uuid.NewString()}})
	d.do(call{method: http.MethodPost, path: "/reservations", token: service, status: http.StatusRequestEntityTooLarge,
		body: padded(fmt.Sprintf(`{"attemptId":%q,"orderId":%q,"items":[{"productId":%d,"quantity":1}]}`, uuid.NewString(), uuid.NewString(), cat.a.ID))})
	d.do(call{method: http.MethodPost, path: "/reservations", body: applied, status: http.StatusUnauthorized, invalid: true})
	d.do(call{method: http.MethodPost, path: "/reservations", token: admin, body: applied, status: http.StatusUnauthorized})

	// Batches: each request is answered as POST /reservations answers it
	// alone, in request order: applied now, its replay, the replay of one
	// applied before, rejected, fenced, the attempt reused for another
	// order, and one product twice (which the document cannot call invalid,
	// but the service refuses).
	batchNew := contract.ReserveRequest{AttemptID: uuid.NewString(), OrderID: uuid.NewString(),
		Items: []contract.Item{{ProductID: cat.big.ID, Quantity: 1}}}
	reused := applied
	reused.OrderID = uuid.NewString()
	twice := contract.ReserveRequest{AttemptID: uuid.NewString(), OrderID: uuid.NewString(),
		Items: []contract.Item{{ProductID: cat.big.ID, Quantity: 1}, {ProductID: cat.big.ID, Quantity: 1}}}
	batch := func(reqs ...contract.ReserveRequest) contract.ReserveBatchRequest {
		return contract.ReserveBatchRequest{Reservations: reqs}
	}
	checkResults := func(r response, want ...int) {
		t.Helper()
		var got contract.ReserveBatchResponse
		r.decode(t, &got)
		var statuses []int
		for _, res := range got.Results {
			statuses = append(statuses, res.Status)
		}
		if fmt.Sprint(statuses) != fmt.Sprint(want) {
			t.Errorf("POST /reservations/batch results %v, want %v: %s", statuses, want, r.body)
		}
	}
	checkResults(d.do(call{method: http.MethodPost, path: "/reservations/batch", token: service, status: http.StatusOK,
		body: batch(batchNew, batchNew, applied, short, fenced, reused, twice)}),
		http.StatusCreated, http.StatusOK, http.StatusOK, http.StatusConflict, http.StatusConflict, http.StatusUnprocessableEntity, http.StatusBadRequest)
	// Requests the document rejects are still answered one by one: a
	// quantity of 0 (400), and 3,000 lines, too large to be sent alone (413).
	tooLarge := contract.ReserveRequest{AttemptID: uuid.NewString(), OrderID: uuid.NewString()}
	for i := range 3000 {
		tooLarge.Items = append(tooLarge.Items, contract.Item{ProductID: int64(i + 1), Quantity: 1})
	}
	checkResults(d.do(call{method: http.MethodPost, path: "/reservations/batch", token: service, status: http.StatusOK, invalid: true,
		body: batch(contract.ReserveRequest{AttemptID: uuid.NewString(), OrderID: uuid.NewString(),
			Items: []contract.Item{{ProductID: cat.big.ID, Quantity: 0}}}, tooLarge)}),
		http.StatusBadRequest, http.StatusRequestEntityTooLarge)
	tooMany := make([]contract.ReserveRequest, contract.MaxBatchReservations+1)
	for i := range tooMany {
		tooMany[i] = contract.ReserveRequest{AttemptID: uuid.NewString(), OrderID: uuid.NewString(),
			Items: []contract.Item{{ProductID: cat.big.ID, Quantity: 1}}}
	}
	oneBatch, err := json.Marshal(batch(batchNew))
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []call{
		{body: batch(), status: http.StatusBadRequest, invalid: true},
		{body: batch(tooMany...), status: http.StatusBadRequest, invalid: true},
		{body: map[string]any{"reservations": []contract.ReserveRequest{batchNew}, "priority": 1}, status: http.StatusBadRequest, invalid: true},
		{body: `{"reservations": [`, status: http.StatusBadRequest, invalid: true},
		{body: append(bytes.Repeat([]byte(" "), contract.MaxBatchBodyBytes), oneBatch...), status: http.StatusRequestEntityTooLarge},
		{body: batch(batchNew), status: http.StatusUnauthorized, invalid: true},
		{body: batch(batchNew), token: admin, status: http.StatusUnauthorized},
	} {
		c.method, c.path = http.MethodPost, "/reservations/batch"
		if c.token == "" && c.status != http.StatusUnauthorized {
			c.token = service
		}
		d.do(c)
	}

	// The log.
	d.do(call{method: http.MethodGet, path: "/reservations/" + applied.AttemptID, token: service, status: http.StatusOK})
	d.do(call{method: http.MethodGet, path: "/reservations/" + short.AttemptID, token: service, status: http.StatusOK})
	d.do(call{method: http.MethodGet, path: "/reservations/" + uuid.NewString(), token: service, status: http.StatusNotFound})
	d.do(call{method: http.MethodGet, path: "/reservations/attempt-1", token: service, status: http.StatusBadRequest, invalid: true})
	d.do(call{method: http.MethodGet, path: "/reservations/" + applied.AttemptID, status: http.StatusUnauthorized, invalid: true})
	var page contract.ReservationPage
	d.do(call{method: http.MethodGet, path: "/reservations?limit=1", token: service, status: http.StatusOK}).decode(t, &page)
	if page.Next == "" {
		t.Errorf("GET /reservations?limit=1 over several attempts has no next cursor")
	}
	d.do(call{method: http.MethodGet, path: "/reservations?limit=1&cursor=" + url.QueryEscape(page.Next), token: service, status: http.StatusOK})
	since := time.Now().Add(-time.Hour).UTC().Format(time.RFC3339)
	d.do(call{method: http.MethodGet, path: "/reservations?updatedSince=" + url.QueryEscape(since), token: service, status: http.StatusOK})
	d.do(call{method: http.MethodGet, path: "/reservations?cursor=not-a-cursor", token: service, status: http.StatusBadRequest})
	d.do(call{method: http.MethodGet, path: "/reservations?limit=5000", token: service, status: http.StatusBadRequest, invalid: true})
	d.do(call{method: http.MethodGet, path: "/reservations?updatedSince=yesterday", token: service, status: http.StatusBadRequest, invalid: true})
	d.do(call{method: http.MethodGet, path: "/reservations", token: admin, status: http.StatusUnauthorized})

	// The ledger and the dead letters.
	d.do(call{method: http.MethodGet, path: "/ledger", token: service, status: http.StatusOK})
	d.do(call{method: http.MethodGet, path: "/ledger", token: admin, status: http.StatusUnauthorized})
	d.do(call{method: http.MethodGet, path: "/admin/dlq", token: admin, status: http.StatusOK})
	d.do(call{method: http.MethodPost, path: "/admin/dlq/replay", token: admin, status: http.StatusOK})
	d.do(call{method: http.MethodGet, path: "/admin/dlq", token: service, status: http.StatusUnauthorized})
	d.do(call{method: http.MethodPost, path: "/admin/dlq/replay", status: http.StatusUnauthorized, invalid: true})

	// What the document does not list.
	d.do(call{method: http.MethodGet, path: "/no/such/path", status: http.StatusNotFound})
	d.do(call{method: http.MethodDelete, path: "/products", token: admin, status: http.StatusMethodNotAllowed})
	return cat
}

// orderScenario exercises the order service's customer and ops endpoints
// while the product service is up.
func orderScenario(t *testing.T, d, products *apiDoc, s *stack.Stack, cat seeded) {
	alice, bob := s.CustomerToken("apidoc-alice", time.Hour), s.CustomerToken("apidoc-bob", time.Hour)
	admin := s.AdminToken
	key := func() map[string]string { return map[string]string{"Idempotency-Key": uuid.NewString()} }
	items := func(lines ...contract.Item) map[string]any { return map[string]any{"items": lines} }

	for _, p := range []string{"/healthz", "/readyz", "/openapi.yaml", "/catalog", "/demo/token"} {
		d.do(call{method: http.MethodGet, path: p, status: http.StatusOK})
	}

	// Placing: confirmed, replayed, key reused, failed twice over.
	k1 := key()
	var confirmed order
	d.do(call{method: http.MethodPost, path: "/orders", token: alice, headers: k1, status: http.StatusCreated,
		body: items(contract.Item{ProductID: cat.a.ID, Quantity: 2}, contract.Item{ProductID: cat.b.ID, Quantity: 1})}).decode(t, &confirmed)
	d.do(call{method: http.MethodPost, path: "/orders", token: alice, headers: k1, status: http.StatusOK,
		body: items(contract.Item{ProductID: cat.a.ID, Quantity: 2}, contract.Item{ProductID: cat.b.ID, Quantity: 1})})
	d.do(call{method: http.MethodPost, path: "/orders", token: alice, headers: k1, status: http.StatusUnprocessableEntity,
		body: items(contract.Item{ProductID: cat.a.ID, Quantity: 3})})
	k2 := key()
	var failed order
	d.do(call{method: http.MethodPost, path: "/orders", token: alice, headers: k2, status: http.StatusConflict,
		body: items(contract.Item{ProductID: cat.b.ID, Quantity: 100})}).decode(t, &failed)
	d.do(call{method: http.MethodPost, path: "/orders", token: alice, headers: k2, status: http.StatusConflict,
		body: items(contract.Item{ProductID: cat.b.ID, Quantity: 100})})
	d.do(call{method: http.MethodPost, path: "/orders", token: alice, status: http.StatusConflict,
		body: items(contract.Item{ProductID: 999999999, Quantity: 1})})

	// Placing with bad input or no valid token.
	d.do(call{method: http.MethodPost, path: "/orders", token: alice, status: http.StatusBadRequest, invalid: true,
		body: map[string]any{"items": []contract.Item{{ProductID: cat.a.ID, Quantity: 1}}, "customerId": "apidoc-bob"}})
	d.do(call{method: http.MethodPost, path: "/orders", token: alice, status: http.StatusBadRequest, invalid: true,
		body: items()})
	d.do(call{method: http.MethodPost, path: "/orders", token: alice, status: http.StatusBadRequest, invalid: true,
		body: items(contract.Item{ProductID: cat.a.ID, Quantity: 0})})
	// One product twice: the document cannot say that lines must name
	// different products, but the service refuses it.
	d.do(call{method: http.MethodPost, path: "/orders", token: alice, status: http.StatusBadRequest,
		body: items(contract.Item{ProductID: cat.a.ID, Quantity: 1}, contract.Item{ProductID: cat.a.ID, Quantity: 2})})
	d.do(call{method: http.MethodPost, path: "/orders", token: alice, status: http.StatusBadRequest, invalid: true,
		body: `{"items": [`})
	d.do(call{method: http.MethodPost, path: "/orders", token: alice, status: http.StatusBadRequest, invalid: true,
		headers: map[string]string{"Idempotency-Key": strings.Repeat("k", 65)}, body: items(contract.Item{ProductID: cat.a.ID, Quantity: 1})})
	d.do(call{method: http.MethodPost, path: "/orders", token: alice, status: http.StatusRequestEntityTooLarge,
		body: padded(fmt.Sprintf(`{"items":[{"productId":%d,"quantity":1}]}`, cat.a.ID))})
	d.do(call{method: http.MethodPost, path: "/orders", status: http.StatusUnauthorized, invalid: true,
		body: items(contract.Item{ProductID: cat.a.ID, Quantity: 1})})
	d.do(call{method: http.MethodPost, path: "/orders", token: s.CustomerToken("apidoc-alice", -time.Minute), status: http.StatusUnauthorized,
		body: items(contract.Item{ProductID: cat.a.ID, Quantity: 1})})
	d.do(call{method: http.MethodPost, path: "/orders", token: stack.SignCustomerToken("another-secret", "apidoc-alice", time.Hour),
		status: http.StatusUnauthorized, body: items(contract.Item{ProductID: cat.a.ID, Quantity: 1})})
	d.do(call{method: http.MethodPost, path: "/orders", token: admin, status: http.StatusUnauthorized,
		body: items(contract.Item{ProductID: cat.a.ID, Quantity: 1})})

	// Reading.
	var list struct {
		Next string `json:"next"`
	}
	d.do(call{method: http.MethodGet, path: "/orders", token: alice, status: http.StatusOK})
	d.do(call{method: http.MethodGet, path: "/orders?limit=1", token: alice, status: http.StatusOK}).decode(t, &list)
	if list.Next == "" {
		t.Errorf("GET /orders?limit=1 over 3 orders has no next cursor")
	}
	d.do(call{method: http.MethodGet, path: "/orders?limit=1&cursor=" + url.QueryEscape(list.Next), token: alice, status: http.StatusOK})
	d.do(call{method: http.MethodGet, path: "/orders", token: bob, status: http.StatusOK})
	d.do(call{method: http.MethodGet, path: "/orders?limit=many", token: alice, status: http.StatusBadRequest, invalid: true})
	d.do(call{method: http.MethodGet, path: "/orders?limit=0", token: alice, status: http.StatusBadRequest, invalid: true})
	d.do(call{method: http.MethodGet, path: "/orders?cursor=not-a-cursor", token: alice, status: http.StatusBadRequest})
	d.do(call{method: http.MethodGet, path: "/orders", status: http.StatusUnauthorized, invalid: true})
	d.do(call{method: http.MethodGet, path: "/orders/" + confirmed.OrderID, token: alice, status: http.StatusOK})
	d.do(call{method: http.MethodGet, path: "/orders/" + failed.OrderID, token: alice, status: http.StatusOK})
	d.do(call{method: http.MethodGet, path: "/orders/" + confirmed.OrderID, token: bob, status: http.StatusNotFound})
	d.do(call{method: http.MethodGet, path: "/orders/" + uuid.NewString(), token: alice, status: http.StatusNotFound})
	d.do(call{method: http.MethodGet, path: "/orders/order-1", token: alice, status: http.StatusNotFound, invalid: true})
	d.do(call{method: http.MethodGet, path: "/orders/" + confirmed.OrderID, status: http.StatusUnauthorized, invalid: true})

	// Ops, while everything is settled.
	recheck := func(id string) string { return "/ops/orders/" + id + "/recheck" }
	d.do(call{method: http.MethodGet, path: "/ops/orders", token: admin, status: http.StatusOK})
	d.do(call{method: http.MethodGet, path: "/ops/orders?status=confirmed,FAILED&limit=10", token: admin, status: http.StatusOK})
	d.do(call{method: http.MethodGet, path: "/ops/orders?status=LOST", token: admin, status: http.StatusBadRequest})
	d.do(call{method: http.MethodGet, path: "/ops/orders?limit=0", token: admin, status: http.StatusBadRequest, invalid: true})
	d.do(call{method: http.MethodGet, path: "/ops/orders", token: alice, status: http.StatusUnauthorized})
	d.do(call{method: http.MethodPost, path: recheck(confirmed.OrderID), token: admin, status: http.StatusConflict})
	d.do(call{method: http.MethodPost, path: recheck(uuid.NewString()), token: admin, status: http.StatusNotFound})
	d.do(call{method: http.MethodPost, path: recheck(confirmed.OrderID), status: http.StatusUnauthorized, invalid: true})
	// The product scenario reserved stock for orders this service never
	// saw: the report is 200 with ok false and violations.
	var report struct {
		OK bool `json:"ok"`
	}
	d.do(call{method: http.MethodGet, path: "/ops/reconcile", token: admin, status: http.StatusOK}).decode(t, &report)
	if report.OK {
		t.Errorf("GET /ops/reconcile ok = true, want violations for the reservations of unknown orders")
	}
	d.do(call{method: http.MethodGet, path: "/ops/reconcile", token: alice, status: http.StatusUnauthorized})
	d.do(call{method: http.MethodGet, path: "/ops/stats", token: admin, status: http.StatusOK})
	d.do(call{method: http.MethodGet, path: "/ops/stats?window=15m", token: admin, status: http.StatusOK})
	d.do(call{method: http.MethodGet, path: "/ops/stats?window=10s", token: admin, status: http.StatusBadRequest})
	d.do(call{method: http.MethodGet, path: "/ops/stats", status: http.StatusUnauthorized, invalid: true})
	d.do(call{method: http.MethodGet, path: "/ops/dlq", token: admin, status: http.StatusOK})
	d.do(call{method: http.MethodPost, path: "/ops/dlq/replay", token: admin, status: http.StatusOK})
	d.do(call{method: http.MethodGet, path: "/ops/dlq", token: alice, status: http.StatusUnauthorized})
	d.do(call{method: http.MethodPost, path: "/ops/dlq/replay", status: http.StatusUnauthorized, invalid: true})

	// Cancelling: a confirmed order goes CANCELLING then CANCELLED; a
	// repeat answers 200; a failed order cannot be cancelled.
	cancel := func(id string) string { return "/orders/" + id + "/cancel" }
	d.do(call{method: http.MethodPost, path: cancel(confirmed.OrderID), token: alice, status: http.StatusAccepted})
	waitStatus(t, d, alice, confirmed.OrderID, "CANCELLED")
	d.do(call{method: http.MethodPost, path: cancel(confirmed.OrderID), token: alice, status: http.StatusOK})
	d.do(call{method: http.MethodPost, path: "/orders", token: alice, headers: k1, status: http.StatusOK,
		body: items(contract.Item{ProductID: cat.a.ID, Quantity: 2}, contract.Item{ProductID: cat.b.ID, Quantity: 1})})
	d.do(call{method: http.MethodPost, path: cancel(failed.OrderID), token: alice, status: http.StatusConflict})
	d.do(call{method: http.MethodPost, path: cancel(confirmed.OrderID), token: bob, status: http.StatusNotFound})
	d.do(call{method: http.MethodPost, path: cancel("order-1"), token: alice, status: http.StatusNotFound, invalid: true})
	d.do(call{method: http.MethodPost, path: cancel(confirmed.OrderID), status: http.StatusUnauthorized, invalid: true})

	// The cancelled order's attempt is COMPENSATED on the product side:
	// replaying its reservation is a 409 of that shape.
	if len(confirmed.Attempts) == 1 {
		products.do(call{method: http.MethodPost, path: "/reservations", token: s.ServiceToken, status: http.StatusConflict,
			body: contract.ReserveRequest{AttemptID: confirmed.Attempts[0].AttemptID, OrderID: confirmed.OrderID,
				Items: []contract.Item{{ProductID: cat.a.ID, Quantity: 2}, {ProductID: cat.b.ID, Quantity: 1}}}})
	}

	// What the document does not list.
	d.do(call{method: http.MethodGet, path: "/no/such/path", status: http.StatusNotFound})
	d.do(call{method: http.MethodDelete, path: "/orders", token: alice, status: http.StatusMethodNotAllowed})
	d.do(call{method: http.MethodPut, path: "/orders/" + confirmed.OrderID, token: alice, status: http.StatusMethodNotAllowed})
}

// outageScenario takes the product service away: the catalog and the
// reconciliation answer 503, the first order waits PENDING (202), the
// breaker then refuses orders (503), and the pending order can be read,
// replayed, rechecked and cancelled until the product service is back.
func outageScenario(t *testing.T, d, products *apiDoc, s *stack.Stack, cat seeded) {
	carol, admin := s.CustomerToken("apidoc-carol", time.Hour), s.AdminToken
	body := map[string]any{"items": []contract.Item{{ProductID: cat.a.ID, Quantity: 1}}}
	if err := s.Product.Kill(); err != nil {
		t.Fatalf("kill the product service: %v", err)
	}
	d.do(call{method: http.MethodGet, path: "/catalog", status: http.StatusServiceUnavailable})
	d.do(call{method: http.MethodGet, path: "/ops/reconcile", token: admin, status: http.StatusServiceUnavailable})
	d.do(call{method: http.MethodGet, path: "/ops/dlq", token: admin, status: http.StatusServiceUnavailable})
	d.do(call{method: http.MethodPost, path: "/ops/dlq/replay", token: admin, status: http.StatusServiceUnavailable})

	var (
		pending    order
		pendingKey map[string]string
	)
	for i := 0; ; i++ {
		if i == 20 {
			t.Fatal("the order service's breaker never opened while the product service was down")
		}
		k := map[string]string{"Idempotency-Key": uuid.NewString()}
		r := d.do(call{method: http.MethodPost, path: "/orders", token: carol, headers: k, body: body})
		if r.status == http.StatusServiceUnavailable {
			break
		}
		if r.status != http.StatusAccepted {
			t.Fatalf("order while the product service is down = %d %s, want 202 or 503", r.status, r.body)
		}
		if pending.OrderID == "" {
			r.decode(t, &pending)
			pendingKey = k
		}
	}
	if pending.OrderID == "" {
		t.Fatal("no order was caught PENDING before the breaker opened")
	}
	d.do(call{method: http.MethodGet, path: "/orders/" + pending.OrderID, token: carol, status: http.StatusOK})
	d.do(call{method: http.MethodPost, path: "/orders", token: carol, headers: pendingKey, body: body, status: http.StatusAccepted})
	d.do(call{method: http.MethodPost, path: "/ops/orders/" + pending.OrderID + "/recheck", token: admin, status: http.StatusAccepted})
	d.do(call{method: http.MethodGet, path: "/ops/orders?status=unsettled", token: admin, status: http.StatusOK})
	d.do(call{method: http.MethodPost, path: "/orders/" + pending.OrderID + "/cancel", token: carol, status: http.StatusAccepted})
	d.do(call{method: http.MethodPost, path: "/orders/" + pending.OrderID + "/cancel", token: carol, status: http.StatusAccepted})
	d.do(call{method: http.MethodPost, path: "/orders", token: carol, headers: pendingKey, body: body, status: http.StatusOK})

	if err := s.Product.Restart(t.Context()); err != nil {
		t.Fatalf("restart the product service: %v", err)
	}
	waitStatus(t, d, carol, pending.OrderID, "CANCELLED")
	products.do(call{method: http.MethodGet, path: "/readyz", status: http.StatusOK})
}

// kafkaOutageScenario stops the broker: the product service's dead-letter
// endpoints answer 503 kafka_unavailable, and the order service's, which
// forward to them, 503 product_unavailable, until it is back.
func kafkaOutageScenario(t *testing.T, d, orders *apiDoc, s *stack.Stack) {
	if s.Broker == nil {
		t.Fatal("the stack runs no embedded broker to stop")
	}
	if err := s.Broker.Stop(); err != nil {
		t.Fatalf("stop the broker: %v", err)
	}
	d.do(call{method: http.MethodGet, path: "/admin/dlq", token: s.AdminToken, status: http.StatusServiceUnavailable})
	d.do(call{method: http.MethodPost, path: "/admin/dlq/replay", token: s.AdminToken, status: http.StatusServiceUnavailable})
	orders.do(call{method: http.MethodGet, path: "/ops/dlq", token: s.AdminToken, status: http.StatusServiceUnavailable})
	if err := s.Broker.Start(); err != nil {
		t.Fatalf("start the broker again: %v", err)
	}
	d.do(call{method: http.MethodGet, path: "/admin/dlq", token: s.AdminToken, status: http.StatusOK})
}

// checkDriftIsCaught proves that the validation is not vacuous: a real
// response altered the ways a drifting handler would alter it (a status the
// document does not list, a field it does not know, a null where it allows
// none, a required field or header gone, another content type) fails.
func checkDriftIsCaught(t *testing.T, d *apiDoc) {
	r := d.do(call{method: http.MethodGet, path: "/catalog", status: http.StatusOK})
	req, err := http.NewRequestWithContext(t.Context(), http.MethodGet, d.base+"/catalog", nil)
	if err != nil {
		t.Fatal(err)
	}
	route, params, err := d.router.FindRoute(req)
	if err != nil {
		t.Fatalf("find route of GET /catalog: %v", err)
	}
	in := &openapi3filter.RequestValidationInput{Request: req, PathParams: params, Route: route}
	alter := func(f func(h http.Header, body []byte) (int, http.Header, []byte)) response {
		h := r.header.Clone()
		status, h, body := f(h, bytes.Clone(r.body))
		return response{status: status, header: h, body: body}
	}
	drifts := map[string]response{
		"undocumented status": alter(func(h http.Header, b []byte) (int, http.Header, []byte) { return http.StatusTeapot, h, b }),
		"unknown field": alter(func(h http.Header, b []byte) (int, http.Header, []byte) {
			return http.StatusOK, h, bytes.Replace(b, []byte(`"stock":`), []byte(`"color":"red","stock":`), 1)
		}),
		"null where none is allowed": alter(func(h http.Header, b []byte) (int, http.Header, []byte) {
			return http.StatusOK, h, []byte(`{"products":null}`)
		}),
		"required field gone": alter(func(h http.Header, b []byte) (int, http.Header, []byte) {
			return http.StatusOK, h, bytes.Replace(b, []byte(`"sku":`), []byte(`"skew":`), 1)
		}),
		"required header gone": alter(func(h http.Header, b []byte) (int, http.Header, []byte) {
			h.Del("X-Request-Id")
			return http.StatusOK, h, b
		}),
		"another content type": alter(func(h http.Header, b []byte) (int, http.Header, []byte) {
			h.Set("Content-Type", "text/plain")
			return http.StatusOK, h, b
		}),
	}
	for name, drift := range drifts {
		if err := d.validate(in, drift); err == nil {
			t.Errorf("drift %q: the altered response of GET /catalog passed validation: %d %v %s", name, drift.status, drift.header, drift.body)
		}
	}
}

// waitStatus polls the order, validating every answer, until it is in
// status want.
func waitStatus(t *testing.T, d *apiDoc, token, orderID, want string) {
	t.Helper()
	deadline := time.Now().Add(settleWithin)
	for {
		var o order
		d.do(call{method: http.MethodGet, path: "/orders/" + orderID, token: token, status: http.StatusOK}).decode(t, &o)
		if o.Status == want {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("order %s is still %s after %v, want %s", orderID, o.Status, settleWithin, want)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// padded returns body followed by enough spaces to pass the 64 KiB limit on
// request bodies: JSON that only its size makes the service refuse.
func padded(body string) []byte {
	return append([]byte(body), bytes.Repeat([]byte(" "), contract.MaxBodyBytes)...)
}
