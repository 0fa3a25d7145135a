package httpapi_test

import (
	"context"
	"io"
	"log/slog"
	"testing"

	"github.com/stockfence/stockfence/productservice/internal/httpapi"
	"github.com/stockfence/stockfence/shared/routetest"
)

// notAPI are the routes the OpenAPI document leaves out on purpose: the
// Prometheus scrape endpoint, which serves the text exposition format.
// Every other route is API and must be documented; an endpoint added to the
// router fails this test until it is.
var notAPI = map[string]bool{
	"GET /metrics": true,
}

// allRoutes stands in for the router's optional dead-letter dependency, so
// that New registers every route it can. It is never called: the test only
// walks the router.
type allRoutes struct{}

func (allRoutes) Pending(context.Context) (int64, error) { return 0, nil }
func (allRoutes) Replay(context.Context) (int, error)    { return 0, nil }

// TestOpenAPIDocument checks that the document GET /openapi.yaml serves is a
// valid OpenAPI 3 document and that it lists exactly the router's API
// routes, method by method. That responses match it is proven by the e2e
// apidoc test against the running service.
func TestOpenAPIDocument(t *testing.T) {
	h := httpapi.New(httpapi.Config{
		Logger:       slog.New(slog.NewTextHandler(io.Discard, nil)),
		ServiceToken: "openapi-test-service-token",
		AdminToken:   "openapi-test-admin-token",
		DeadLetters:  allRoutes{},
		Ready:        func(context.Context) error { return nil },
	})

	routetest.CheckDocument(t, h, notAPI)
}
