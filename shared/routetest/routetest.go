// Package routetest holds the checks both services' tests make of their
// routers: what a chi router serves, and whether the OpenAPI document it
// serves lists exactly that.
package routetest

import (
	"net/http"
	"net/http/httptest"
	"regexp"
	"slices"
	"testing"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/go-chi/chi/v5"
)

// Routes returns every route h serves, as "METHOD pattern" (chi's pattern,
// e.g. "GET /orders/{id}"). h must be a chi router.
func Routes(t testing.TB, h http.Handler) map[string]bool {
	t.Helper()
	routes, ok := h.(chi.Routes)
	if !ok {
		t.Fatalf("handler is %T, want a chi router to walk", h)
	}
	routed := map[string]bool{}
	err := chi.Walk(routes, func(method, pattern string, _ http.Handler, _ ...func(http.Handler) http.Handler) error {
		routed[method+" "+pattern] = true
		return nil
	})
	if err != nil {
		t.Fatalf("walk router: %v", err)
	}
	return routed
}

// CheckDocument checks that h serves a valid OpenAPI 3 document at
// GET /openapi.yaml (application/yaml) and that it lists exactly the routes
// h serves, method by method, except those in notAPI (pages, metrics).
func CheckDocument(t testing.TB, h http.Handler, notAPI map[string]bool) {
	t.Helper()
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
	var routed []string
	for r := range Routes(t, h) {
		if !notAPI[r] {
			routed = append(routed, openAPIPath(r))
		}
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
