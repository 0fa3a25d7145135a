package httpapi_test

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"

	"github.com/getkin/kin-openapi/openapi3"

	"github.com/stockfence/stockfence/productservice/internal/httpapi"
	"github.com/stockfence/stockfence/shared/contract"
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

// TestOpenAPIDocumentStatesTheBatchLimits: the limits the document states
// for POST /reservations/batch are the contract's, which the handler
// enforces (the YAML cannot refer to the constants).
func TestOpenAPIDocumentStatesTheBatchLimits(t *testing.T) {
	rec := httptest.NewRecorder()
	httpapi.New(httpapi.Config{Logger: slog.New(slog.DiscardHandler), Ready: func(context.Context) error { return nil }}).
		ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/openapi.yaml", nil))
	doc, err := openapi3.NewLoader().LoadFromData(rec.Body.Bytes())
	if err != nil {
		t.Fatal(err)
	}
	schemas := doc.Components.Schemas
	for _, s := range []struct{ schema, property string }{{"ReserveBatchRequest", "reservations"}, {"ReserveBatchResponse", "results"}} {
		p := schemas[s.schema].Value.Properties[s.property].Value
		if p.MaxItems == nil {
			t.Errorf("%s.%s has no maxItems", s.schema, s.property)
		} else if p.MinItems != 1 || *p.MaxItems != contract.MaxBatchReservations {
			t.Errorf("%s.%s has %d to %d items, want 1 to %d", s.schema, s.property, p.MinItems, *p.MaxItems, contract.MaxBatchReservations)
		}
	}
	op := doc.Paths.Find("/reservations/batch").Post
	bytes := strconv.Itoa(contract.MaxBatchBodyBytes)
	for what, text := range map[string]string{
		"the 413's description":             *op.Responses.Status(http.StatusRequestEntityTooLarge).Value.Description,
		"the operation's description":       op.Description,
		"ReserveBatchRequest's description": schemas["ReserveBatchRequest"].Value.Description,
		"the document's description":        doc.Info.Description,
	} {
		if !strings.Contains(text, bytes+" bytes") {
			t.Errorf("%s does not state the limit of %s bytes: %q", what, bytes, text)
		}
	}
	for what, text := range map[string]string{
		"the summary":                       op.Summary,
		"the operation's description":       op.Description,
		"ReserveBatchRequest's description": schemas["ReserveBatchRequest"].Value.Description,
	} {
		if !strings.Contains(text, strconv.Itoa(contract.MaxBatchReservations)) {
			t.Errorf("%s does not state the limit of %d requests: %q", what, contract.MaxBatchReservations, text)
		}
	}
}
