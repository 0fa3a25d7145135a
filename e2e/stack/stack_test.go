package stack_test

import (
	"encoding/json"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/stockfence/stockfence/e2e/stack"
	"github.com/stockfence/stockfence/shared/contract"
	"github.com/stockfence/stockfence/shared/mysqldb/mysqltest"
)

// startReal starts the real services, built from this checkout, on fresh
// databases. When the test fails, the logs' tails are printed.
func startReal(t *testing.T) *stack.Stack {
	t.Helper()
	opts := stack.Options{
		ProductsDSN: mysqltest.New(t, "e2e"),
		OrdersDSN:   mysqltest.New(t, "e2e"),
		LogDir:      t.TempDir(),
		Env:         map[string]string{"PRODUCT_MYSQL_MAX_CONNS": "4", "ORDER_MYSQL_MAX_CONNS": "4"},
	}
	s, err := stack.Start(t.Context(), opts)
	if err != nil {
		t.Fatalf("start: %v", err)
	}
	// Registered after the databases and the log dir, so it runs before they
	// are dropped and removed.
	t.Cleanup(func() {
		if err := s.Stop(); err != nil {
			t.Errorf("stop: %v", err)
		}
		if t.Failed() {
			for _, p := range []*stack.Process{s.Product, s.Order} {
				t.Logf("%s log (%s) ends with:\n%s", p.Name, p.LogPath, p.Tail(40))
			}
		}
	})
	return s
}

func TestStartStop(t *testing.T) {
	t.Parallel()
	s := startReal(t)

	for _, url := range []string{s.ProductURL, s.OrderURL} {
		if got := getStatus(t, url+"/healthz"); got != http.StatusOK {
			t.Errorf("GET %s/healthz = %d, want 200", url, got)
		}
	}

	// Kafka is the embedded broker, and both services were told so.
	if s.Broker == nil || !s.Broker.Running() || s.KafkaBrokers != s.Broker.Addr() {
		t.Fatalf("Broker %v, KafkaBrokers %q: want a running embedded broker at KafkaBrokers", s.Broker, s.KafkaBrokers)
	}
	for _, p := range []*stack.Process{s.Product, s.Order} {
		if got := loggedConfig(t, p.LogPath, "KAFKA_BROKERS"); got != s.KafkaBrokers {
			t.Errorf("%s started with KAFKA_BROKERS %q, want %q", p.Name, got, s.KafkaBrokers)
		}
	}

	item := contract.NewProduct{SKU: "E2E-STACK-1", Name: "Launcher test item", PriceCents: 1234, Stock: 7}
	seeded, err := stack.Seed(t.Context(), s.ProductURL, s.AdminToken, []contract.NewProduct{item})
	if err != nil {
		t.Fatalf("seed: %v", err)
	}
	if len(seeded) != 1 || seeded[0].ID <= 0 || seeded[0].SKU != item.SKU || seeded[0].Stock != item.Stock {
		t.Fatalf("seeded %+v, want one product like %+v with an id", seeded, item)
	}
	again, err := stack.Seed(t.Context(), s.ProductURL, s.AdminToken, []contract.NewProduct{item})
	if err != nil {
		t.Fatalf("seed again: %v", err)
	}
	if again[0] != seeded[0] {
		t.Errorf("seeding again gave %+v, want the existing %+v", again[0], seeded[0])
	}

	catalog := getCatalog(t, s.OrderURL+"/catalog")
	if !containsProduct(catalog, seeded[0]) {
		t.Errorf("GET /catalog on the order service = %+v, want it to hold %+v", catalog, seeded[0])
	}

	// The order service accepts the stack's customer tokens.
	req, err := http.NewRequestWithContext(t.Context(), http.MethodGet, s.OrderURL+"/orders", nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+s.CustomerToken("e2e-customer", time.Minute))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("GET /orders: %v", err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Errorf("GET /orders with a customer token = %d, want 200", resp.StatusCode)
	}

	if err := s.Stop(); err != nil {
		t.Fatalf("stop: %v", err)
	}
	for _, p := range []*stack.Process{s.Product, s.Order} {
		if p.Running() {
			t.Errorf("%s running after Stop", p.Name)
		}
		if _, err := http.Get(p.URL + "/healthz"); err == nil {
			t.Errorf("%s still answers after Stop", p.Name)
		}
	}
	if s.Broker.Running() {
		t.Error("embedded broker running after Stop")
	}
}

func TestKillRestart(t *testing.T) {
	t.Parallel()
	s := startReal(t)
	seeded, err := stack.Seed(t.Context(), s.ProductURL, s.AdminToken, []contract.NewProduct{
		{SKU: "E2E-STACK-2", Name: "Survives a crash", PriceCents: 500, Stock: 3},
	})
	if err != nil {
		t.Fatalf("seed: %v", err)
	}

	if err := s.Product.Kill(); err != nil {
		t.Fatalf("kill product service: %v", err)
	}
	if s.Product.Running() {
		t.Fatal("product service running after Kill")
	}
	if _, err := http.Get(s.ProductURL + "/healthz"); err == nil {
		t.Fatal("product service answers after Kill")
	}

	if err := s.Product.Restart(t.Context()); err != nil {
		t.Fatalf("restart product service: %v", err)
	}
	if got := getStatus(t, s.ProductURL+"/readyz"); got != http.StatusOK {
		t.Errorf("GET /readyz after restart = %d, want 200", got)
	}
	// Same address, same database: the order service reaches the restarted
	// process and the catalog survived.
	if catalog := getCatalog(t, s.OrderURL+"/catalog"); !containsProduct(catalog, seeded[0]) {
		t.Errorf("GET /catalog after restart = %+v, want it to hold %+v", catalog, seeded[0])
	}
}

func TestCustomerToken(t *testing.T) {
	t.Parallel()
	s := &stack.Stack{JWTSecret: stack.NewSecret()}
	raw := s.CustomerToken("alice", time.Hour)
	var claims jwt.RegisteredClaims
	_, err := jwt.ParseWithClaims(raw, &claims, func(*jwt.Token) (any, error) { return []byte(s.JWTSecret), nil },
		jwt.WithValidMethods([]string{"HS256"}), jwt.WithExpirationRequired())
	if err != nil {
		t.Fatalf("parse token: %v", err)
	}
	if claims.Subject != "alice" {
		t.Errorf("sub = %q, want alice", claims.Subject)
	}
	if left := time.Until(claims.ExpiresAt.Time); left < 59*time.Minute || left > time.Hour {
		t.Errorf("exp in %v, want about an hour", left)
	}

	expired := s.CustomerToken("alice", -time.Minute)
	if _, err := jwt.Parse(expired, func(*jwt.Token) (any, error) { return []byte(s.JWTSecret), nil }); err == nil {
		t.Error("a token with negative ttl parsed as valid")
	}
}

func TestRepoRoot(t *testing.T) {
	t.Parallel()
	root, err := stack.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(root, "e2e", "go.mod")); err != nil {
		t.Errorf("RepoRoot = %s, which has no e2e/go.mod: %v", root, err)
	}
}

// loggedConfig returns variable name as the start-up configuration line of
// a service's log prints it: the first JSON line that holds name, in a
// "config" object or at the top level. A list (the order service parses
// KAFKA_BROKERS into one) is joined with commas. The log must have such a
// line.
func loggedConfig(t *testing.T, logPath, name string) string {
	t.Helper()
	raw, err := os.ReadFile(logPath)
	if err != nil {
		t.Fatal(err)
	}
	for line := range strings.Lines(string(raw)) {
		var entry map[string]json.RawMessage
		if json.Unmarshal([]byte(line), &entry) != nil {
			continue
		}
		var config map[string]json.RawMessage
		if json.Unmarshal(entry["config"], &config) == nil && config[name] != nil {
			entry = config
		}
		value, ok := entry[name]
		if !ok {
			continue
		}
		var s string
		if json.Unmarshal(value, &s) == nil {
			return s
		}
		var list []string
		if json.Unmarshal(value, &list) == nil {
			return strings.Join(list, ",")
		}
		t.Fatalf("%s: %s in the configuration line is %s, want a string or a list", logPath, name, value)
	}
	t.Fatalf("%s has no configuration line with %s", logPath, name)
	return ""
}

func getCatalog(t *testing.T, url string) []contract.Product {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s = %d, want 200", url, resp.StatusCode)
	}
	var list contract.ProductList
	if err := json.NewDecoder(resp.Body).Decode(&list); err != nil {
		t.Fatalf("GET %s: decode: %v", url, err)
	}
	return list.Products
}

func containsProduct(list []contract.Product, want contract.Product) bool {
	for _, p := range list {
		if p == want {
			return true
		}
	}
	return false
}
