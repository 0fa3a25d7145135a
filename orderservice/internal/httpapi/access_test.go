package httpapi_test

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/stockfence/stockfence/orderservice/internal/httpapi"
	"github.com/stockfence/stockfence/orderservice/internal/order"
	"github.com/stockfence/stockfence/orderservice/internal/reconcile"
	"github.com/stockfence/stockfence/shared/contract"
	"github.com/stockfence/stockfence/shared/routetest"
)

// routeAccess says who may call each route New registers: "public",
// "customer" (an HS256 customer JWT) or "admin" (ADMIN_TOKEN). A route added
// to the router without an entry here fails TestEveryRouteHasAnAccessClass;
// the authorization matrix of e2e/authz tests each one against the running
// service and must list it too.
var routeAccess = map[string]string{
	"GET /healthz":                  "public",
	"GET /readyz":                   "public",
	"GET /metrics":                  "public",
	"GET /openapi.yaml":             "public",
	"GET /catalog":                  "public",
	"GET /":                         "public",
	"GET /ops":                      "public",
	"GET /ops/":                     "public",
	"GET /assets/{name}":            "public",
	"GET /demo/token":               "public",
	"POST /orders":                  "customer",
	"GET /orders":                   "customer",
	"GET /orders/{id}":              "customer",
	"POST /orders/{id}/cancel":      "customer",
	"GET /ops/orders":               "admin",
	"POST /ops/orders/{id}/recheck": "admin",
	"GET /ops/reconcile":            "admin",
	"GET /ops/stats":                "admin",
	"GET /ops/dlq":                  "admin",
	"POST /ops/dlq/replay":          "admin",
}

// accessStubs stands in for every dependency of the router, so that New
// registers every route it can and the public routes can answer. Only the
// public routes' methods are ever called: the protected routes must refuse
// before their handlers run.
type accessStubs struct{}

func (accessStubs) Catalog(context.Context) (contract.ProductList, error) {
	return contract.ProductList{Products: []contract.Product{}}, nil
}
func (accessStubs) Ready(context.Context) error                   { return nil }
func (accessStubs) Run(context.Context) (reconcile.Report, error) { return reconcile.Report{}, nil }
func (accessStubs) Activity(context.Context, order.Window, time.Time, int) (order.Activity, error) {
	return order.Activity{}, nil
}
func (accessStubs) DeadLetterCount(context.Context) (int64, error) { return 0, nil }
func (accessStubs) ReplayDeadLetters(context.Context) (int, error) { return 0, nil }

// TestEveryRouteHasAnAccessClass walks the router: every route must be
// classified in routeAccess (and every entry routed), a protected route must
// answer 401 problem+json to no token, to a wrong one and to the token of
// the other class, and a public route must not ask for one.
func TestEveryRouteHasAnAccessClass(t *testing.T) {
	const secret, admin = "access-test-jwt-secret", "access-test-admin-token"
	customerToken := hs256(t, secret, "alice")
	h := httpapi.New(httpapi.Config{
		Catalog:     accessStubs{},
		Readiness:   accessStubs{},
		JWTSecret:   []byte(secret),
		AdminToken:  admin,
		Reconciler:  accessStubs{},
		Activity:    accessStubs{},
		DeadLetters: accessStubs{},
		DemoToken:   "demo-token",
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
		path := strings.NewReplacer("{id}", "0199a1b2-0000-7000-8000-000000000001", "{name}", "storefront.js").Replace(pattern)
		wrong := map[string]string{"no token": "", "a wrong token": "Bearer not-the-token"}
		switch class {
		case "customer":
			wrong["the admin token"] = "Bearer " + admin
		case "admin":
			wrong["a customer token"] = "Bearer " + customerToken
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
