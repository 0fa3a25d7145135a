package httpapi_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"regexp"
	"slices"
	"testing"
	"time"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/go-chi/chi/v5"

	"github.com/stockfence/stockfence/orderservice/internal/httpapi"
	"github.com/stockfence/stockfence/orderservice/internal/order"
	"github.com/stockfence/stockfence/orderservice/internal/reconcile"
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

	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/openapi.yaml", nil))
	if rec.Code != http.StatusOK {
		t.Fatalf("GET /openapi.yaml status = %d, want 200", rec.Code)
	}
	if got := rec.Header().Get("Content-Type"); got != "application/yaml" {
		t.Fatalf("GET /openapi.yaml Content-Type = %q, want application/yaml", got)
	}
	loader := openapi3.NewLoader()
	doc, err := loader.LoadFromData(rec.Body.Bytes())
	if err != nil {
		t.Fatalf("load document: %v", err)
	}
	if err := doc.Validate(loader.Context); err != nil {
		t.Fatalf("document is not valid OpenAPI 3: %v", err)
	}

	var documented []string
	for path, item := range doc.Paths.Map() {
		for method := range item.Operations() {
			documented = append(documented, method+" "+path)
		}
	}
	routes, ok := h.(chi.Routes)
	if !ok {
		t.Fatalf("httpapi.New returned %T, want a chi router to walk", h)
	}
	var routed []string
	err = chi.Walk(routes, func(method, route string, _ http.Handler, _ ...func(http.Handler) http.Handler) error {
		if r := method + " " + openAPIPath(route); !notAPI[r] {
			routed = append(routed, r)
		}
		return nil
	})
	if err != nil {
		t.Fatalf("walk router: %v", err)
	}
	slices.Sort(documented)
	slices.Sort(routed)
	for _, r := range routed {
		if !slices.Contains(documented, r) {
			t.Errorf("route %s is not in openapi.yaml", r)
		}
	}
	for _, d := range documented {
		if !slices.Contains(routed, d) {
			t.Errorf("openapi.yaml documents %s, which the router does not serve", d)
		}
	}
}

// chiParam matches a chi URL parameter with a regular expression,
// {name:regexp}.
var chiParam = regexp.MustCompile(`\{([^}:]+):[^}]*\}`)

// openAPIPath turns a chi route pattern into an OpenAPI path template.
func openAPIPath(route string) string {
	return chiParam.ReplaceAllString(route, "{$1}")
}
