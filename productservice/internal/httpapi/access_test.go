package httpapi_test

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/stockfence/stockfence/productservice/internal/httpapi"
	"github.com/stockfence/stockfence/shared/contract"
	"github.com/stockfence/stockfence/shared/routetest"
)

// routeAccess says who may call each route New registers: "public",
// "service" (SERVICE_TOKEN) or "admin" (ADMIN_TOKEN). A route added to the
// router without an entry here fails TestEveryRouteHasAnAccessClass; the
// authorization matrix of e2e/authz tests each one against the running
// service and must list it too.
var routeAccess = map[string]string{
	"GET /healthz":                           "public",
	"GET /readyz":                            "public",
	"GET /metrics":                           "public",
	"GET /openapi.yaml":                      "public",
	"GET /products":                          "public",
	"GET /products/{id}":                     "public",
	"POST /products":                         "admin",
	"POST /products/{id}/restock":            "admin",
	"GET /admin/dlq":                         "admin",
	"POST /admin/dlq/replay":                 "admin",
	"POST /reservations":                     "service",
	"POST /reservations/batch":               "service",
	"GET /reservations":                      "service",
	"GET /reservations/{attemptId}":          "service",
	"POST /reservations/{attemptId}/resolve": "service",
	"GET /ledger":                            "service",
}

// accessStore answers the public reads; the protected routes must refuse
// before their handlers reach the rest of the store (nil: it would panic).
type accessStore struct{ httpapi.Store }

func (accessStore) Products(context.Context) ([]contract.Product, error) {
	return []contract.Product{}, nil
}

func (accessStore) Product(_ context.Context, id int64) (contract.Product, error) {
	return contract.Product{ID: id, SKU: "S", Name: "N"}, nil
}

// accessDeadLetters makes New register the dead-letter routes.
type accessDeadLetters struct{}

func (accessDeadLetters) Pending(context.Context) (int64, error) { return 0, nil }
func (accessDeadLetters) Replay(context.Context) (int, error)    { return 0, nil }

// TestEveryRouteHasAnAccessClass walks the router: every route must be
// classified in routeAccess (and every entry routed), a protected route must
// answer 401 problem+json to no token, to a wrong one and to the other
// class's token, and a public route must not ask for one.
func TestEveryRouteHasAnAccessClass(t *testing.T) {
	const service, admin = "access-test-service-token", "access-test-admin-token"
	h := httpapi.New(httpapi.Config{
		Store:        accessStore{},
		Logger:       slog.New(slog.NewTextHandler(io.Discard, nil)),
		ServiceToken: service,
		AdminToken:   admin,
		DeadLetters:  accessDeadLetters{},
		Ready:        func(context.Context) error { return nil },
	})
	routed := routetest.Routes(t, h)
	for r := range routeAccess {
		if !routed[r] {
			t.Errorf("routeAccess lists %s, which the router does not serve", r)
		}
	}
	for r := range routed {
		class, ok := routeAccess[r]
		if !ok {
			t.Errorf("route %s has no access class: add it to routeAccess and to the matrix of e2e/authz", r)
			continue
		}
		method, pattern, _ := strings.Cut(r, " ")
		path := strings.NewReplacer("{id}", "1", "{attemptId}", "0199a1b2-0000-7000-8000-000000000001").Replace(pattern)
		wrong := map[string]string{"no token": "", "a wrong token": "Bearer not-the-token"}
		switch class {
		case "service":
			wrong["the admin token"] = "Bearer " + admin
		case "admin":
			wrong["the service token"] = "Bearer " + service
		}
		for name, authorization := range wrong {
			req := httptest.NewRequest(method, path, nil)
			if authorization != "" {
				req.Header.Set("Authorization", authorization)
			}
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, req)
			if class == "public" {
				if rec.Code == http.StatusUnauthorized || rec.Code >= 500 {
					t.Errorf("public %s with %s = %d %s", r, name, rec.Code, rec.Body)
				}
				continue
			}
			var p struct {
				Code string `json:"code"`
			}
			_ = json.Unmarshal(rec.Body.Bytes(), &p)
			if rec.Code != http.StatusUnauthorized || rec.Header().Get("Content-Type") != "application/problem+json" || p.Code != "unauthorized" {
				t.Errorf("%s %s with %s = %d %q %s, want 401 problem unauthorized", class, r, name, rec.Code, rec.Header().Get("Content-Type"), rec.Body)
			}
		}
	}
}
