package authz_test

import (
	"fmt"
	"net/http"
)

// Services of the matrix.
const (
	orderSvc   = "orderservice"
	productSvc = "productservice"
)

// route is one route of one service as its router and its openapi.yaml
// spell it, who may call it, and a probe: a concrete request that the right
// credential (none for a public route) gets want for, and that every other
// credential must be refused without anything changing.
type route struct {
	service string
	method  string
	pattern string
	class   class
	// notAPI marks a route that openapi.yaml leaves out on purpose (pages,
	// their assets, the Prometheus endpoint); it must be public.
	notAPI bool
	// path and body build the probe; nil path means the pattern as is.
	path    func(f fixture) string
	body    func(f fixture) string
	headers []string
	want    int
}

func (r route) String() string { return r.service + " " + r.method + " " + r.pattern }

// matrix lists every route of both services. A route added to a router
// must be added here: the completeness check compares this list with what
// each running service documents, and the services' own tests hold that
// document equal to their routers. The positive probes run in this order,
// after every refusal, and some change state (the last ones of each
// service).
var matrix = []route{
	// The order service.
	{service: orderSvc, method: http.MethodGet, pattern: "/healthz", class: public, want: http.StatusOK},
	{service: orderSvc, method: http.MethodGet, pattern: "/readyz", class: public, want: http.StatusOK},
	{service: orderSvc, method: http.MethodGet, pattern: "/metrics", class: public, notAPI: true, want: http.StatusOK},
	{service: orderSvc, method: http.MethodGet, pattern: "/openapi.yaml", class: public, want: http.StatusOK},
	{service: orderSvc, method: http.MethodGet, pattern: "/catalog", class: public, want: http.StatusOK},
	// The storefront and dashboard pages: static shells; their data calls
	// carry tokens.
	{service: orderSvc, method: http.MethodGet, pattern: "/", class: public, notAPI: true, want: http.StatusOK},
	{service: orderSvc, method: http.MethodGet, pattern: "/ops", class: public, notAPI: true, want: http.StatusMovedPermanently},
	{service: orderSvc, method: http.MethodGet, pattern: "/ops/", class: public, notAPI: true, want: http.StatusOK},
	{service: orderSvc, method: http.MethodGet, pattern: "/assets/{name}", class: public, notAPI: true,
		path: func(fixture) string { return "/assets/storefront.js" }, want: http.StatusOK},
	// Routed only on a local demo (STOREFRONT_DEMO_TOKEN); it hands out
	// that one customer token to anyone.
	{service: orderSvc, method: http.MethodGet, pattern: "/demo/token", class: public, want: http.StatusOK},
	{service: orderSvc, method: http.MethodGet, pattern: "/orders", class: customer, want: http.StatusOK},
	{service: orderSvc, method: http.MethodGet, pattern: "/orders/{id}", class: customer,
		path: func(f fixture) string { return "/orders/" + f.kept }, want: http.StatusOK},
	{service: orderSvc, method: http.MethodGet, pattern: "/ops/orders", class: admin,
		path: func(fixture) string { return "/ops/orders?status=CONFIRMED&limit=10" }, want: http.StatusOK},
	{service: orderSvc, method: http.MethodPost, pattern: "/ops/orders/{id}/recheck", class: admin,
		path: func(f fixture) string { return "/ops/orders/" + f.kept + "/recheck" }, want: http.StatusConflict},
	{service: orderSvc, method: http.MethodGet, pattern: "/ops/reconcile", class: admin, want: http.StatusOK},
	{service: orderSvc, method: http.MethodGet, pattern: "/ops/stats", class: admin, want: http.StatusOK},
	{service: orderSvc, method: http.MethodGet, pattern: "/ops/dlq", class: admin, want: http.StatusOK},
	{service: orderSvc, method: http.MethodPost, pattern: "/ops/dlq/replay", class: admin, want: http.StatusOK},
	{service: orderSvc, method: http.MethodPost, pattern: "/orders", class: customer,
		body:    func(f fixture) string { return fmt.Sprintf(`{"items":[{"productId":%d,"quantity":1}]}`, f.apple.ID) },
		headers: []string{"Idempotency-Key", "authz-matrix-order"}, want: http.StatusCreated},
	{service: orderSvc, method: http.MethodPost, pattern: "/orders/{id}/cancel", class: customer,
		path: func(f fixture) string { return "/orders/" + f.cancelled + "/cancel" }, want: http.StatusAccepted},

	// The product service.
	{service: productSvc, method: http.MethodGet, pattern: "/healthz", class: public, want: http.StatusOK},
	{service: productSvc, method: http.MethodGet, pattern: "/readyz", class: public, want: http.StatusOK},
	{service: productSvc, method: http.MethodGet, pattern: "/metrics", class: public, notAPI: true, want: http.StatusOK},
	{service: productSvc, method: http.MethodGet, pattern: "/openapi.yaml", class: public, want: http.StatusOK},
	{service: productSvc, method: http.MethodGet, pattern: "/products", class: public, want: http.StatusOK},
	{service: productSvc, method: http.MethodGet, pattern: "/products/{id}", class: public,
		path: func(f fixture) string { return fmt.Sprintf("/products/%d", f.apple.ID) }, want: http.StatusOK},
	{service: productSvc, method: http.MethodGet, pattern: "/reservations", class: service, want: http.StatusOK},
	{service: productSvc, method: http.MethodGet, pattern: "/reservations/{attemptId}", class: service,
		path: func(f fixture) string { return "/reservations/" + f.keptAttempt }, want: http.StatusOK},
	{service: productSvc, method: http.MethodPost, pattern: "/reservations/{attemptId}/resolve", class: service,
		path: func(f fixture) string { return "/reservations/" + f.keptAttempt + "/resolve" },
		body: func(f fixture) string { return fmt.Sprintf(`{"orderId":%q}`, f.kept) }, want: http.StatusOK},
	{service: productSvc, method: http.MethodGet, pattern: "/ledger", class: service, want: http.StatusOK},
	{service: productSvc, method: http.MethodGet, pattern: "/admin/dlq", class: admin, want: http.StatusOK},
	{service: productSvc, method: http.MethodPost, pattern: "/admin/dlq/replay", class: admin, want: http.StatusOK},
	// More than the stock: REJECTED (409), so no stock moves even when the
	// right token gets through; the refusals must not even log the attempt.
	{service: productSvc, method: http.MethodPost, pattern: "/reservations", class: service,
		body: func(f fixture) string {
			return fmt.Sprintf(`{"attemptId":"0199a1b2-0000-7000-8000-00000000a11c","orderId":"0199a1b2-0000-7000-8000-00000000b0b0",`+
				`"items":[{"productId":%d,"quantity":10000}]}`, f.pear.ID)
		}, want: http.StatusConflict},
	// The same as a batch of one: 200 with its 409 REJECTED result.
	{service: productSvc, method: http.MethodPost, pattern: "/reservations/batch", class: service,
		body: func(f fixture) string {
			return fmt.Sprintf(`{"reservations":[{"attemptId":"0199a1b2-0000-7000-8000-00000000ba7c","orderId":"0199a1b2-0000-7000-8000-00000000b0b1",`+
				`"items":[{"productId":%d,"quantity":10000}]}]}`, f.pear.ID)
		}, want: http.StatusOK},
	{service: productSvc, method: http.MethodPost, pattern: "/products", class: admin,
		body: func(fixture) string { return `{"sku":"AUTHZ-NEW","name":"New","priceCents":100,"stock":1}` }, want: http.StatusCreated},
	{service: productSvc, method: http.MethodPost, pattern: "/products/{id}/restock", class: admin,
		path: func(f fixture) string { return fmt.Sprintf("/products/%d/restock", f.apple.ID) },
		body: func(fixture) string { return `{"quantity":5}` }, want: http.StatusOK},
}

// probe is r's request with authorization.
func (r route) probe(s *system, f fixture, authorization string) request {
	base := s.OrderURL
	if r.service == productSvc {
		base = s.ProductURL
	}
	path := r.pattern
	if r.path != nil {
		path = r.path(f)
	}
	var body string
	if r.body != nil {
		body = r.body(f)
	}
	return request{method: r.method, url: base + path, authorization: authorization, body: body, headers: r.headers}
}
