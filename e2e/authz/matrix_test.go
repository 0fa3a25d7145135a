package authz_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"go.yaml.in/yaml/v4"
)

// TestAuthorization runs the whole matrix on one running system. The steps
// share it and run in order: every refusal is checked while the databases
// are quiet, then the right credentials, which change state, then the logs.
func TestAuthorization(t *testing.T) {
	s := startSystem(t)
	f := s.setUp()
	creds := credentials(t, s)

	t.Run("matrix lists every documented route", func(t *testing.T) {
		checkDocumented(t, s)
	})
	t.Run("refusals", func(t *testing.T) {
		for _, r := range matrix {
			t.Run(r.String(), func(t *testing.T) {
				checkRefusals(t, s, f, r, creds)
			})
		}
	})
	t.Run("another customer's order is not found", func(t *testing.T) {
		checkOtherCustomer(t, s, f)
	})
	t.Run("body cannot set what the service decides", func(t *testing.T) {
		checkMassAssignment(t, s, f)
	})
	t.Run("right credentials get through", func(t *testing.T) {
		for _, r := range matrix {
			var auth string
			switch r.class {
			case customer:
				auth = "Bearer " + s.CustomerToken(alice, time.Hour)
			case service:
				auth = "Bearer " + s.ServiceToken
			case admin:
				auth = "Bearer " + s.AdminToken
			}
			if got := s.do(r.probe(s, f, auth)); got.status != r.want {
				t.Errorf("%s with the %s credential = %d %s, want %d", r, r.class, got.status, got.body, r.want)
			}
		}
	})
	t.Run("no secret in the logs", func(t *testing.T) {
		checkLogs(t, s)
	})
}

// checkDocumented compares the matrix with the security requirement of every
// operation each running service documents: the same routes, the same
// classes. The routes left out of the documents must be marked notAPI and be
// public.
func checkDocumented(t *testing.T, s *system) {
	schemes := map[string]class{"customerJwt": customer, "serviceToken": service, "adminToken": admin}
	for _, svc := range []struct{ name, url string }{{orderSvc, s.OrderURL}, {productSvc, s.ProductURL}} {
		r := s.do(request{method: http.MethodGet, url: svc.url + "/openapi.yaml"})
		if r.status != http.StatusOK {
			t.Fatalf("%s GET /openapi.yaml = %d", svc.name, r.status)
		}
		var doc struct {
			Security []map[string][]string           `yaml:"security"`
			Paths    map[string]map[string]yaml.Node `yaml:"paths"`
		}
		if err := yaml.Unmarshal(r.body, &doc); err != nil {
			t.Fatalf("%s openapi.yaml: %v", svc.name, err)
		}
		documented := map[string]class{}
		for path, item := range doc.Paths {
			for method, node := range item {
				method = strings.ToUpper(method)
				if !slices.Contains([]string{"GET", "PUT", "POST", "DELETE", "PATCH", "HEAD", "OPTIONS", "TRACE"}, method) {
					continue // parameters, summary, ... of the path item
				}
				var op struct {
					Security *[]map[string][]string `yaml:"security"`
				}
				if err := node.Decode(&op); err != nil {
					t.Fatalf("%s openapi.yaml %s %s: %v", svc.name, method, path, err)
				}
				reqs := doc.Security
				if op.Security != nil {
					reqs = *op.Security
				}
				key := svc.name + " " + method + " " + path
				switch {
				case len(reqs) == 0:
					documented[key] = public
				case len(reqs) == 1 && len(reqs[0]) == 1:
					for name := range reqs[0] {
						c, ok := schemes[name]
						if !ok {
							t.Errorf("%s: unknown security scheme %q", key, name)
						}
						documented[key] = c
					}
				default:
					t.Errorf("%s: security %v: the matrix knows one credential per route", key, reqs)
				}
			}
		}
		for _, r := range matrix {
			if r.service != svc.name {
				continue
			}
			c, ok := documented[r.String()]
			switch {
			case r.notAPI && ok:
				t.Errorf("%s is marked notAPI but documented", r)
			case r.notAPI && r.class != public:
				t.Errorf("%s is notAPI, so it must be public", r)
			case !r.notAPI && !ok:
				t.Errorf("%s is in the matrix but not documented in openapi.yaml", r)
			case ok && c != r.class:
				t.Errorf("%s is %s in the matrix but %s in openapi.yaml", r, r.class, c)
			}
			delete(documented, r.String())
		}
		for key, c := range documented {
			t.Errorf("%s (%s) is documented but missing from the authorization matrix", key, c)
		}
	}
}

// checkRefusals sends r's probe with every credential that must not open it
// and checks each answer, and that neither database changed. A public route
// must answer every credential, garbage included, as it answers none.
func checkRefusals(t *testing.T, s *system, f fixture, r route, creds []credential) {
	before := s.fingerprint()
	for _, c := range creds {
		if c.opens == r.class {
			continue // the right credential: see "right credentials get through"
		}
		got := s.do(r.probe(s, f, c.header))
		if r.class == public {
			if got.status != r.want {
				t.Errorf("public route with %s = %d %s, want %d", c.name, got.status, got.body, r.want)
			}
			continue
		}
		if msg := got.problem(http.StatusUnauthorized, "unauthorized"); msg != "" {
			t.Errorf("%s: %s", c.name, msg)
		}
		if got.header.Get("WWW-Authenticate") == "" {
			t.Errorf("%s: 401 without WWW-Authenticate", c.name)
		}
		if after := s.fingerprint(); after != before {
			t.Fatalf("%s: the refused request changed a database:\nbefore %s\nafter  %s", c.name, before, after)
		}
	}
}

// checkOtherCustomer: another customer, with a valid token of her own,
// cannot tell alice's order from one that does not exist, cannot cancel it,
// and does not see it in her list; nor can one whose id differs from alice's
// only in letter case or spaces, which the database could take for hers.
func checkOtherCustomer(t *testing.T, s *system, f fixture) {
	for _, other := range []string{mallory, "Alice", "alice ", " alice", "alice\t"} {
		t.Run(fmt.Sprintf("%q", other), func(t *testing.T) {
			checkOtherCustomerAs(t, s, f, other)
		})
	}
	own := s.do(request{method: http.MethodGet, url: s.OrderURL + "/orders/" + f.kept, authorization: "Bearer " + s.CustomerToken(alice, time.Hour)})
	if own.status != http.StatusOK {
		t.Errorf("alice reads her order = %d %s, want 200", own.status, own.body)
	}
}

// checkOtherCustomerAs checks alice's orders against customer other. A
// token whose sub the service refuses (401) is as good as a 404.
func checkOtherCustomerAs(t *testing.T, s *system, f fixture, other string) {
	before := s.fingerprint()
	mal := "Bearer " + s.CustomerToken(other, time.Hour)
	if r := s.do(request{method: http.MethodGet, url: s.OrderURL + "/orders", authorization: mal}); r.status == http.StatusUnauthorized {
		if msg := r.problem(http.StatusUnauthorized, "unauthorized"); msg != "" {
			t.Error(msg)
		}
		return
	}
	unknown := uuid.NewString()
	for _, tt := range []struct {
		name, method, path string
	}{
		{"read", http.MethodGet, "/orders/" + f.kept},
		{"cancel", http.MethodPost, "/orders/" + f.kept + "/cancel"},
		{"cancel the one alice may cancel", http.MethodPost, "/orders/" + f.cancelled + "/cancel"},
	} {
		got := s.do(request{method: tt.method, url: s.OrderURL + tt.path, authorization: mal})
		if msg := got.problem(http.StatusNotFound, "not_found"); msg != "" {
			t.Errorf("%s alice's order: %s", tt.name, msg)
		}
		none := s.do(request{method: tt.method, url: s.OrderURL + strings.Replace(tt.path, f.kept, unknown, 1), authorization: mal})
		var a, b problemBody
		_ = json.Unmarshal(got.body, &a)
		_ = json.Unmarshal(none.body, &b)
		if a != b || got.status != none.status {
			t.Errorf("%s: alice's order answers %d %+v, an unknown one %d %+v: they must not differ", tt.name, got.status, a, none.status, b)
		}
	}
	list := s.do(request{method: http.MethodGet, url: s.OrderURL + "/orders", authorization: mal})
	if list.status != http.StatusOK || strings.Contains(string(list.body), f.kept) || strings.Contains(string(list.body), f.cancelled) {
		t.Errorf("%q's list = %d %s, want 200 without alice's orders", other, list.status, list.body)
	}
	if after := s.fingerprint(); after != before {
		t.Fatalf("%q changed a database:\nbefore %s\nafter  %s", other, before, after)
	}
}

// checkMassAssignment: a customer's order body may hold items of productId
// and quantity only; anything that tries to set the customer, a price, a
// status, an id or a total is 400 validation_failed and creates nothing.
func checkMassAssignment(t *testing.T, s *system, f fixture) {
	before := s.fingerprint()
	item := fmt.Sprintf(`"productId":%d,"quantity":1`, f.apple.ID)
	topLevel := []string{
		`"customerId":"mallory"`, `"CustomerId":"mallory"`, `"price":1`, `"priceCents":1`, `"unitPriceCents":1`,
		`"totalCents":1`, `"status":"CONFIRMED"`, `"attemptId":"0199a1b2-0000-7000-8000-000000000001"`,
		`"orderId":"0199a1b2-0000-7000-8000-000000000002"`, `"reason":null`, `"attempts":[]`,
	}
	perItem := []string{
		`"unitPriceCents":1`, `"priceCents":1`, `"price":1`, `"customerId":"mallory"`,
		`"status":"APPLIED"`, `"attemptId":"0199a1b2-0000-7000-8000-000000000001"`, `"totalCents":1`,
	}
	var bodies []string
	for _, field := range topLevel {
		bodies = append(bodies, `{"items":[{`+item+`}],`+field+`}`, `{`+field+`,"items":[{`+item+`}]}`)
	}
	for _, field := range perItem {
		bodies = append(bodies, `{"items":[{`+item+`,`+field+`}]}`)
	}
	token := "Bearer " + s.CustomerToken(alice, time.Hour)
	for i, body := range bodies {
		got := s.do(request{method: http.MethodPost, url: s.OrderURL + "/orders", authorization: token, body: body,
			headers: []string{"Idempotency-Key", fmt.Sprintf("mass-assignment-%d", i)}})
		if msg := got.problem(http.StatusBadRequest, "validation_failed"); msg != "" {
			t.Errorf("%s: %s", body, msg)
		}
	}
	if after := s.fingerprint(); after != before {
		t.Fatalf("a refused body changed a database:\nbefore %s\nafter  %s", before, after)
	}
}

// checkLogs stops both services (so their shutdown is logged too) and reads
// their logs: they must hold the start-up configuration with every secret
// masked, and none of the secrets (tokens, JWT key, database password) nor
// any credential a request carried.
func checkLogs(t *testing.T, s *system) {
	if err := s.Stop(); err != nil {
		t.Errorf("stop: %v", err)
	}
	secrets := map[string]string{
		"ADMIN_TOKEN":           s.AdminToken,
		"SERVICE_TOKEN":         s.ServiceToken,
		"CUSTOMER_JWT_SECRET":   s.JWTSecret,
		"the database password": s.dbPassword,
		"STOREFRONT_DEMO_TOKEN": s.DemoToken,
	}
	for c := range s.sent {
		if len(c) >= 8 {
			secrets["a credential sent: "+c] = c
		}
		// A JWT's signature alone is as good as a leak of the token.
		if parts := strings.Split(c, "."); len(parts) == 3 && len(parts[2]) >= 8 {
			secrets["the signature of "+c] = parts[2]
		}
	}
	for _, p := range []struct {
		name, path string
		masked     []string
	}{
		{"orderservice", s.Order.LogPath, []string{`"ADMIN_TOKEN":"********"`, `"SERVICE_TOKEN":"********"`,
			`"CUSTOMER_JWT_SECRET":"********"`, `"STOREFRONT_DEMO_TOKEN":"********"`}},
		{"productservice", s.Product.LogPath, []string{`"ADMIN_TOKEN":"********"`, `"SERVICE_TOKEN":"********"`}},
	} {
		raw, err := os.ReadFile(p.path)
		if err != nil {
			t.Fatalf("read %s log: %v", p.name, err)
		}
		log := string(raw)
		for _, m := range p.masked {
			if !strings.Contains(log, m) {
				t.Errorf("%s log lacks %s: the start-up configuration was not printed as expected", p.name, m)
			}
		}
		if !strings.Contains(log, ":***@tcp(") {
			t.Errorf("%s log lacks its DSN with the password masked", p.name)
		}
		if !strings.Contains(log, `"status":401`) {
			t.Errorf("%s log has no refused request: the check below would prove little", p.name)
		}
		for what, secret := range secrets {
			if secret != "" && strings.Contains(log, secret) {
				t.Errorf("%s log contains %s", p.name, what)
			}
		}
	}
}
