package httpapi_test

import (
	"context"
	"testing"
	"time"

	"github.com/stockfence/stockfence/orderservice/internal/httpapi"
	"github.com/stockfence/stockfence/orderservice/internal/order"
	"github.com/stockfence/stockfence/orderservice/internal/reconcile"
	"github.com/stockfence/stockfence/shared/routetest"
)

// notAPI are the routes the OpenAPI document leaves out on purpose: the
// storefront and dashboard pages and their assets, which serve HTML, scripts
// and styles to browsers, and the Prometheus scrape endpoint, which serves
// the text exposition format. Every other route is API and must be
// documented; a JSON endpoint added to the router fails this test until it
// is.
var notAPI = map[string]bool{
	"GET /":              true,
	"GET /ops":           true, // redirects to /ops/
	"GET /ops/":          true,
	"GET /assets/{name}": true,
	"GET /metrics":       true,
}

// allRoutes stands in for every optional dependency of the router, so that
// New registers every route it can. It is never called: the test only walks
// the router.
type allRoutes struct{}

func (allRoutes) Run(context.Context) (reconcile.Report, error) { return reconcile.Report{}, nil }

func (allRoutes) Activity(context.Context, order.Window, time.Time, int) (order.Activity, error) {
	return order.Activity{}, nil
}

func (allRoutes) DeadLetterCount(context.Context) (int64, error) { return 0, nil }
func (allRoutes) ReplayDeadLetters(context.Context) (int, error) { return 0, nil }

// TestOpenAPIDocument checks that the document GET /openapi.yaml serves is a
// valid OpenAPI 3 document and that it lists exactly the router's API
// routes, method by method. That responses match it is proven by the e2e
// apidoc test against the running service.
func TestOpenAPIDocument(t *testing.T) {
	h := httpapi.New(httpapi.Config{
		JWTSecret:   []byte("openapi-test-secret"),
		AdminToken:  "openapi-test-admin-token",
		Reconciler:  allRoutes{},
		Activity:    allRoutes{},
		DeadLetters: allRoutes{},
		DemoToken:   "demo-token",
	})

	routetest.CheckDocument(t, h, notAPI)
}
