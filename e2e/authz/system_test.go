package authz_test

import (
	"bytes"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/go-sql-driver/mysql"

	"github.com/stockfence/stockfence/e2e/stack"
	"github.com/stockfence/stockfence/shared/contract"
	"github.com/stockfence/stockfence/shared/mysqldb/mysqltest"
)

// binDir holds the binaries built once for the package.
var binDir string

func TestMain(m *testing.M) {
	binDir = stack.BuildForTests()
	os.Exit(m.Run())
}

// system is the running pair of services with direct connections to their
// databases, and every secret they were given.
type system struct {
	*stack.Stack
	t        *testing.T
	client   *http.Client
	products *sql.DB
	orders   *sql.DB
	// dbPassword is the password in both services' DSNs.
	dbPassword string
	// sent collects every credential a request carried, to be looked for
	// in the logs afterwards.
	sent map[string]bool
}

// startSystem creates two fresh databases, a MariaDB account with a password
// that may use only them, and starts both services on them with distinctive
// secrets and a demo customer (so GET /demo/token is routed).
func startSystem(t *testing.T) *system {
	t.Helper()
	productsDSN, ordersDSN := mysqltest.New(t, "authz_products"), mysqltest.New(t, "authz_orders")
	user, password := "sf_authz_"+randomHex(6), "authz-db-password-"+randomHex(16)
	root := openDB(t, mysqltest.Server())
	productsCfg, ordersCfg := parseDSN(t, productsDSN), parseDSN(t, ordersDSN)
	// Account names cannot be bound as parameters; both are hex made here.
	for _, q := range []string{
		fmt.Sprintf("CREATE USER '%s'@'%%' IDENTIFIED BY '%s'", user, password),
		fmt.Sprintf("GRANT ALL PRIVILEGES ON `%s`.* TO '%s'@'%%'", productsCfg.DBName, user),
		fmt.Sprintf("GRANT ALL PRIVILEGES ON `%s`.* TO '%s'@'%%'", ordersCfg.DBName, user),
	} {
		if _, err := root.Exec(q); err != nil {
			t.Fatalf("set up the services' database account: %v", err)
		}
	}
	t.Cleanup(func() {
		if _, err := root.Exec(fmt.Sprintf("DROP USER IF EXISTS '%s'@'%%'", user)); err != nil {
			t.Errorf("drop database account %s: %v", user, err)
		}
	})
	withPassword := func(cfg *mysql.Config) string {
		c := cfg.Clone()
		c.User, c.Passwd = user, password
		return c.FormatDSN()
	}

	s, err := stack.Start(t.Context(), stack.Options{
		BinDir:       binDir,
		LogDir:       t.TempDir(),
		ProductsDSN:  withPassword(productsCfg),
		OrdersDSN:    withPassword(ordersCfg),
		AdminToken:   "authz-admin-token-" + randomHex(16),
		ServiceToken: "authz-service-token-" + randomHex(16),
		JWTSecret:    "authz-jwt-secret-" + randomHex(16),
		DemoCustomer: "demo-shopper",
		// Answers must be definite: these tests check who gets in, not
		// latency. Small pools: other stacks may share the server.
		Env: map[string]string{
			"PRODUCT_TIMEOUT": "30s", "ORDER_SYNC_BUDGET": "60s",
			"PRODUCT_MYSQL_MAX_CONNS": "8", "ORDER_MYSQL_MAX_CONNS": "8",
		},
	})
	if err != nil {
		t.Fatalf("start stack: %v", err)
	}
	sys := &system{
		Stack: s,
		t:     t,
		client: &http.Client{
			Timeout: time.Minute,
			// The redirect of GET /ops is the answer under test.
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
		},
		products:   openDB(t, productsDSN),
		orders:     openDB(t, ordersDSN),
		dbPassword: password,
		sent:       map[string]bool{},
	}
	t.Cleanup(func() {
		if err := s.Stop(); err != nil {
			t.Errorf("stop stack: %v", err)
		}
		if t.Failed() {
			for _, p := range []*stack.Process{s.Product, s.Order} {
				t.Logf("%s log ends with:\n%s", p.Name, p.Tail(15))
			}
		}
	})
	return sys
}

func parseDSN(t *testing.T, dsn string) *mysql.Config {
	t.Helper()
	cfg, err := mysql.ParseDSN(dsn)
	if err != nil {
		t.Fatalf("parse DSN: %v", err)
	}
	return cfg
}

func openDB(t *testing.T, dsn string) *sql.DB {
	t.Helper()
	db, err := sql.Open("mysql", dsn)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// request is one call: the Authorization header (none when empty), a body
// and further headers in name/value pairs.
type request struct {
	method, url, authorization, body string
	headers                          []string
}

// response is what a call returned.
type response struct {
	status int
	header http.Header
	body   []byte
}

func (s *system) do(req request) response {
	s.t.Helper()
	var rd io.Reader
	if req.body != "" {
		rd = strings.NewReader(req.body)
	}
	r, err := http.NewRequestWithContext(s.t.Context(), req.method, req.url, rd)
	if err != nil {
		s.t.Fatal(err)
	}
	if req.body != "" {
		r.Header.Set("Content-Type", "application/json")
	}
	if req.authorization != "" {
		r.Header.Set("Authorization", req.authorization)
		_, credential, _ := strings.Cut(req.authorization, " ")
		if credential == "" {
			credential = req.authorization
		}
		s.sent[strings.TrimSpace(credential)] = true
	}
	for i := 0; i+1 < len(req.headers); i += 2 {
		r.Header.Add(req.headers[i], req.headers[i+1])
	}
	resp, err := s.client.Do(r)
	if err != nil {
		s.t.Fatalf("%s %s: %v", req.method, req.url, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		s.t.Fatalf("%s %s: read body: %v", req.method, req.url, err)
	}
	return response{status: resp.StatusCode, header: resp.Header, body: body}
}

// problemBody is an RFC 9457 problem as the contract shapes it.
type problemBody struct {
	Type   string `json:"type"`
	Title  string `json:"title"`
	Status int    `json:"status"`
	Detail string `json:"detail"`
	Code   string `json:"code"`
}

// problem returns what is wrong with r as the problem+json answer with
// status and code, or "" when it is one.
func (r response) problem(status int, code string) string {
	if r.status != status {
		return fmt.Sprintf("status %d, want %d (body %s)", r.status, status, bytes.TrimSpace(r.body))
	}
	if ct := r.header.Get("Content-Type"); ct != "application/problem+json" {
		return fmt.Sprintf("Content-Type %q, want application/problem+json", ct)
	}
	var p problemBody
	if err := json.Unmarshal(r.body, &p); err != nil {
		return fmt.Sprintf("body is not a problem: %v: %s", err, r.body)
	}
	if p.Status != status || p.Code != code {
		return fmt.Sprintf("problem status %d code %q, want %d %q", p.Status, p.Code, status, code)
	}
	return ""
}

// fingerprint sums up both databases: every table's checksum. A refused
// request must leave it as it was. The services are quiet while it is
// compared (every order is settled, no message is in flight), so any
// difference is the request's doing.
func (s *system) fingerprint() string {
	s.t.Helper()
	var b strings.Builder
	for _, db := range []*sql.DB{s.products, s.orders} {
		tables := s.column(db, `SELECT table_name FROM information_schema.tables
			WHERE table_schema = DATABASE() ORDER BY table_name`)
		if len(tables) == 0 {
			s.t.Fatal("fingerprint: no tables")
		}
		quoted := make([]string, len(tables))
		for i, t := range tables {
			quoted[i] = "`" + t + "`"
		}
		rows, err := db.Query("CHECKSUM TABLE " + strings.Join(quoted, ", "))
		if err != nil {
			s.t.Fatalf("checksum tables: %v", err)
		}
		for rows.Next() {
			var name string
			var sum sql.NullInt64
			if err := rows.Scan(&name, &sum); err != nil {
				s.t.Fatal(err)
			}
			fmt.Fprintf(&b, "%s=%d;", name, sum.Int64)
		}
		if err := rows.Err(); err != nil {
			s.t.Fatal(err)
		}
		rows.Close()
	}
	return b.String()
}

func (s *system) column(db *sql.DB, q string, args ...any) []string {
	s.t.Helper()
	rows, err := db.Query(q, args...)
	if err != nil {
		s.t.Fatalf("%s: %v", q, err)
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var v string
		if err := rows.Scan(&v); err != nil {
			s.t.Fatal(err)
		}
		out = append(out, v)
	}
	if err := rows.Err(); err != nil {
		s.t.Fatal(err)
	}
	return out
}

// fixture is what the probes refer to: seeded products and two confirmed
// orders of one customer.
type fixture struct {
	apple, pear contract.Product
	// kept is an order of alice that stays CONFIRMED; its attempt is
	// keptAttempt. cancelled is the one the positive cancel probe cancels.
	kept, keptAttempt, cancelled string
}

// Customers of the fixture.
const (
	alice   = "alice"
	mallory = "mallory"
)

func (s *system) setUp() fixture {
	s.t.Helper()
	seeded, err := stack.Seed(s.t.Context(), s.ProductURL, s.AdminToken, []contract.NewProduct{
		{SKU: "AUTHZ-APPLE", Name: "Apple", PriceCents: 120, Stock: 100},
		{SKU: "AUTHZ-PEAR", Name: "Pear", PriceCents: 90, Stock: 100},
	})
	if err != nil {
		s.t.Fatalf("seed: %v", err)
	}
	f := fixture{apple: seeded[0], pear: seeded[1]}
	f.kept, f.keptAttempt = s.confirmedOrder(alice, f.apple.ID)
	f.cancelled, _ = s.confirmedOrder(alice, f.pear.ID)
	return f
}

// confirmedOrder places a one-unit order and returns its id and attempt.
func (s *system) confirmedOrder(customer string, productID int64) (orderID, attemptID string) {
	s.t.Helper()
	r := s.do(request{method: http.MethodPost, url: s.OrderURL + "/orders",
		authorization: "Bearer " + s.CustomerToken(customer, time.Hour),
		body:          fmt.Sprintf(`{"items":[{"productId":%d,"quantity":1}]}`, productID),
		headers:       []string{"Idempotency-Key", "setup-" + randomHex(8)}})
	if r.status != http.StatusCreated {
		s.t.Fatalf("place order = %d %s, want 201", r.status, r.body)
	}
	var o struct {
		OrderID  string `json:"orderId"`
		Attempts []struct {
			AttemptID string `json:"attemptId"`
		} `json:"attempts"`
	}
	if err := json.Unmarshal(r.body, &o); err != nil || len(o.Attempts) != 1 {
		s.t.Fatalf("decode order %s: %v", r.body, err)
	}
	return o.OrderID, o.Attempts[0].AttemptID
}
