package httpapi

import (
	_ "embed"
	"net/http"
)

// openAPIDocument is the OpenAPI 3 description of every route New registers
// except the HTML pages, their assets and /metrics. It is served as is at
// GET /openapi.yaml; the e2e apidoc test validates the running service's
// real responses against what it serves, and TestOpenAPIDocument checks that
// it lists exactly the router's API routes.
//
//go:embed openapi.yaml
var openAPIDocument []byte

// serveOpenAPI answers GET /openapi.yaml with the embedded document.
func serveOpenAPI(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Content-Type", "application/yaml")
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write(openAPIDocument)
}
