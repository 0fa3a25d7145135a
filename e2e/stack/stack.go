// Package stack runs the two services as child processes on loopback ports,
// the way `make run`, the e2e tests, the chaos suite and the bench need them:
// built from this checkout, configured only through the contract's
// environment variables, each logging to a file of its own, and each
// process stoppable, killable and restartable on its own. Kafka is an
// embedded broker (Broker) that can be stopped and started the same way, or
// an external one.
package stack

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// Options configures Start. Only the two DSNs are required.
type Options struct {
	// BinDir holds the productservice and orderservice binaries. Empty means
	// build them first with Build into <RepoRoot()>/bin.
	BinDir string
	// ProductsDSN and OrdersDSN are go-sql-driver DSNs of the two databases.
	// The services create the databases if missing and migrate them.
	ProductsDSN string
	OrdersDSN   string
	// ProductPort and OrderPort are the loopback ports to listen on; 0 picks a
	// free one. A fixed port that is taken is an error before anything starts.
	ProductPort int
	OrderPort   int
	// Env is added to both services' environment, ProductEnv and OrderEnv to
	// one each (they win over Env), e.g. {"PRODUCT_TIMEOUT": "200ms"}. They
	// override what Start sets itself.
	Env        map[string]string
	ProductEnv map[string]string
	OrderEnv   map[string]string
	// LogDir receives <name>.log for each process. Empty means a new
	// temporary directory, which is kept so the logs can be read afterwards.
	LogDir string
	// AdminToken, ServiceToken and JWTSecret are the shared secrets. Each one
	// left empty is generated with NewSecret.
	AdminToken   string
	ServiceToken string
	JWTSecret    string
	// KafkaBrokers is the KAFKA_BROKERS both services get. Empty means Start
	// starts an embedded Broker on a free port with its data in
	// <LogDir>/kafka; otherwise that Kafka is used and nothing is started.
	KafkaBrokers string
	// DemoCustomer, when set, makes Start mint a customer token for that
	// customer (valid for DemoTokenTTL) and give it to the order service as
	// STOREFRONT_DEMO_TOKEN, so that the storefront page signs the shopper
	// in by itself. Only a local stack does this; the services never mint
	// tokens.
	DemoCustomer string
	// RateLimited keeps the order service's per-customer limit on
	// POST /orders (ORDER_RATE_LIMIT, 60 a minute by default), as `make run`
	// does. Test crowds reuse a few customers for thousands of orders, so
	// by default the launcher turns it off; Env or OrderEnv can still set it.
	RateLimited bool
}

// DemoTokenTTL is how long the token minted for Options.DemoCustomer is
// valid.
const DemoTokenTTL = 24 * time.Hour

// Stack is a running pair of services. Its fields are read-only.
type Stack struct {
	// ProductURL and OrderURL are the services' base URLs, e.g.
	// http://127.0.0.1:8081.
	ProductURL string
	OrderURL   string
	// AdminToken, ServiceToken and JWTSecret are the secrets the services run
	// with (SERVICE_TOKEN, ADMIN_TOKEN, CUSTOMER_JWT_SECRET).
	AdminToken   string
	ServiceToken string
	JWTSecret    string
	// LogDir holds the processes' logs, <name>.log.
	LogDir string
	// KafkaBrokers is the KAFKA_BROKERS the services run with.
	KafkaBrokers string
	// DemoToken is the customer token the storefront hands out
	// (STOREFRONT_DEMO_TOKEN); empty unless Options.DemoCustomer was set.
	DemoToken string
	// Broker is the embedded Kafka broker, for fault injection (Stop and
	// Start it); nil when Options.KafkaBrokers named an external one.
	Broker *Broker
	// Product and Order are the two processes, for fault injection.
	Product *Process
	Order   *Process
}

// Start starts the embedded Kafka broker unless Options.KafkaBrokers names
// one, then the product service, waits until it is ready, then does the same
// with the order service (pointed at the product service). If any fails,
// whatever was started is stopped and the error carries the failing
// process's log tail. The processes outlive ctx; call Stop.
func Start(ctx context.Context, opts Options) (s *Stack, err error) {
	if opts.ProductsDSN == "" || opts.OrdersDSN == "" {
		return nil, errors.New("start stack: ProductsDSN and OrdersDSN are required")
	}
	binDir := opts.BinDir
	if binDir == "" {
		root, err := RepoRoot()
		if err != nil {
			return nil, fmt.Errorf("start stack: %w", err)
		}
		if binDir, err = Build(ctx, root); err != nil {
			return nil, fmt.Errorf("start stack: %w", err)
		}
	}
	logDir := opts.LogDir
	if logDir == "" {
		dir, err := os.MkdirTemp("", "stockfence-stack-")
		if err != nil {
			return nil, fmt.Errorf("start stack: log dir: %w", err)
		}
		logDir = dir
	} else if err := os.MkdirAll(logDir, 0o755); err != nil {
		return nil, fmt.Errorf("start stack: log dir: %w", err)
	}
	kafkaBrokers := opts.KafkaBrokers
	var broker *Broker
	if kafkaBrokers == "" {
		// Started before the services' ports are picked, so that it holds
		// its own port while they look for free ones.
		if broker, err = StartBroker(filepath.Join(logDir, "kafka"), 0); err != nil {
			return nil, fmt.Errorf("start stack: %w", err)
		}
		kafkaBrokers = broker.Addr()
		defer func() {
			if err != nil {
				err = errors.Join(err, broker.Close())
			}
		}()
	}
	productAddr, err := loopbackAddr(opts.ProductPort)
	if err != nil {
		return nil, fmt.Errorf("start stack: product port: %w", err)
	}
	orderAddr, err := loopbackAddr(opts.OrderPort)
	if err != nil {
		return nil, fmt.Errorf("start stack: order port: %w", err)
	}

	s = &Stack{
		ProductURL:   "http://" + productAddr,
		OrderURL:     "http://" + orderAddr,
		AdminToken:   orSecret(opts.AdminToken),
		ServiceToken: orSecret(opts.ServiceToken),
		JWTSecret:    orSecret(opts.JWTSecret),
		LogDir:       logDir,
		KafkaBrokers: kafkaBrokers,
		Broker:       broker,
	}
	orderOnly := map[string]string{}
	if !opts.RateLimited {
		orderOnly["ORDER_RATE_LIMIT"] = "0"
	}
	if opts.DemoCustomer != "" {
		s.DemoToken = s.CustomerToken(opts.DemoCustomer, DemoTokenTTL)
		orderOnly["STOREFRONT_DEMO_TOKEN"] = s.DemoToken
	}
	common := map[string]string{
		"SERVICE_TOKEN": s.ServiceToken,
		"ADMIN_TOKEN":   s.AdminToken,
		"KAFKA_BROKERS": s.KafkaBrokers,
	}
	s.Product = newProcess(ProductBinary, filepath.Join(binDir, ProductBinary), s.ProductURL,
		filepath.Join(logDir, ProductBinary+".log"),
		environ(common, map[string]string{
			"PRODUCT_HTTP_ADDR": productAddr,
			"PRODUCT_MYSQL_DSN": opts.ProductsDSN,
		}, opts.Env, opts.ProductEnv))
	s.Order = newProcess(OrderBinary, filepath.Join(binDir, OrderBinary), s.OrderURL,
		filepath.Join(logDir, OrderBinary+".log"),
		environ(common, map[string]string{
			"ORDER_HTTP_ADDR":     orderAddr,
			"ORDER_MYSQL_DSN":     opts.OrdersDSN,
			"PRODUCT_URL":         s.ProductURL,
			"CUSTOMER_JWT_SECRET": s.JWTSecret,
		}, orderOnly, opts.Env, opts.OrderEnv))

	if err := s.Product.Start(ctx); err != nil {
		return nil, fmt.Errorf("start stack: %w", err)
	}
	if err := s.Order.Start(ctx); err != nil {
		return nil, errors.Join(fmt.Errorf("start stack: %w", err), s.Product.Stop())
	}
	return s, nil
}

// Stop stops the order service, then the product service, each as
// Process.Stop does, then closes the embedded broker (its data stays in
// <LogDir>/kafka), and reports every problem: a nil error means both
// services drained and exited cleanly. Stopping twice does nothing more.
func (s *Stack) Stop() error {
	err := errors.Join(s.Order.Stop(), s.Product.Stop())
	if s.Broker != nil {
		err = errors.Join(err, s.Broker.Close())
	}
	return err
}

// StartOrderInstance starts one more order service beside s.Order: the same
// binary, databases, product service, secrets and environment (with env
// laid over it, e.g. another PRODUCT_URL), on its own loopback port, logging
// to <LogDir>/<name>.log. Instances share the orders database as they do in
// production (their recovery workers and relays compete for the same rows).
// Stack.Stop does not stop it: the caller stops it.
func (s *Stack) StartOrderInstance(ctx context.Context, name string, env map[string]string) (*Process, error) {
	return s.startInstance(ctx, s.Order, "ORDER_HTTP_ADDR", name, env)
}

// StartProductInstance starts one more product service beside s.Product, as
// StartOrderInstance does for the order service: the same database and
// broker (its consumer joins the same group), its own port and log.
func (s *Stack) StartProductInstance(ctx context.Context, name string, env map[string]string) (*Process, error) {
	return s.startInstance(ctx, s.Product, "PRODUCT_HTTP_ADDR", name, env)
}

func (s *Stack) startInstance(ctx context.Context, like *Process, addrVar, name string, env map[string]string) (*Process, error) {
	addr, err := loopbackAddr(0)
	if err != nil {
		return nil, fmt.Errorf("start instance %s: %w", name, err)
	}
	// exec keeps the last of duplicate variables, so these win.
	vars := append(slices.Clone(like.env), addrVar+"="+addr)
	for k, v := range env {
		vars = append(vars, k+"="+v)
	}
	p := newProcess(like.Name, like.path, "http://"+addr, filepath.Join(s.LogDir, name+".log"), vars)
	if err := p.Start(ctx); err != nil {
		return nil, fmt.Errorf("start instance %s: %w", name, err)
	}
	return p, nil
}

// CustomerToken returns a customer JWT for sub, signed with the stack's
// JWTSecret (HS256) and expiring after ttl; a negative ttl gives a token that
// has already expired, for tests of the refusal.
func (s *Stack) CustomerToken(sub string, ttl time.Duration) string {
	return SignCustomerToken(s.JWTSecret, sub, ttl)
}

// SignCustomerToken returns an HS256 JWT signed with secret whose claims are
// sub, iat (now) and exp (now + ttl), as the order service expects them.
func SignCustomerToken(secret, sub string, ttl time.Duration) string {
	now := time.Now()
	claims := jwt.RegisteredClaims{
		Subject:   sub,
		IssuedAt:  jwt.NewNumericDate(now),
		ExpiresAt: jwt.NewNumericDate(now.Add(ttl)),
	}
	token, err := jwt.NewWithClaims(jwt.SigningMethodHS256, claims).SignedString([]byte(secret))
	if err != nil {
		// HMAC signing with a []byte key has no failure mode; reaching this is
		// a broken jwt library, not a condition to handle.
		panic(fmt.Sprintf("sign customer token: %v", err))
	}
	return token
}

// NewSecret returns 32 random bytes from crypto/rand, hex-encoded: usable as a
// bearer token or an HS256 key, and safe to paste into a shell.
func NewSecret() string {
	b := make([]byte, 32)
	_, _ = rand.Read(b) // never fails: crypto/rand crashes the program instead
	return hex.EncodeToString(b)
}

func orSecret(s string) string {
	if s != "" {
		return s
	}
	return NewSecret()
}

// loopbackAddr returns 127.0.0.1:port, checking that a fixed port is free; 0
// asks the kernel for a free port. The port is released before the service
// binds it; on loopback the race with another process is negligible.
func loopbackAddr(port int) (string, error) {
	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
	l, err := net.Listen("tcp", addr)
	if err != nil {
		return "", fmt.Errorf("%s is not free (is another stack running?): %w", addr, err)
	}
	addr = l.Addr().String()
	if err := l.Close(); err != nil {
		return "", fmt.Errorf("release %s: %w", addr, err)
	}
	return addr, nil
}

// environ returns the launcher's environment without any service variable,
// so a stray PRODUCT_TIMEOUT in a developer's shell cannot change a test,
// followed by the layers in order (later layers win).
func environ(layers ...map[string]string) []string {
	var env []string
	for _, kv := range os.Environ() {
		name, _, _ := strings.Cut(kv, "=")
		if !isServiceVar(name) {
			env = append(env, kv)
		}
	}
	merged := map[string]string{}
	for _, layer := range layers {
		for k, v := range layer {
			merged[k] = v
		}
	}
	for k, v := range merged {
		env = append(env, k+"="+v)
	}
	return env
}

func isServiceVar(name string) bool {
	switch name {
	case "PRODUCT_HTTP_ADDR", "PRODUCT_MYSQL_DSN", "ORDER_HTTP_ADDR", "ORDER_MYSQL_DSN", "PRODUCT_URL",
		"KAFKA_BROKERS", "SERVICE_TOKEN", "ADMIN_TOKEN", "CUSTOMER_JWT_SECRET", "PRODUCT_TIMEOUT",
		"ORDER_SYNC_BUDGET", "RECOVERY_INTERVAL", "STUCK_AFTER", "STOREFRONT_DEMO_TOKEN",
		"ORDER_RATE_LIMIT", "ORDER_RATE_WINDOW", "ORDER_CORS_ORIGINS", "ORDER_MAX_QUANTITY", "ORDER_MAX_QUANTITY_WINDOW", "ORDER_MYSQL_MAX_CONNS", "PRODUCT_MYSQL_MAX_CONNS",
		"PRODUCT_COALESCE", "PRODUCT_COALESCE_LANES", "PRODUCT_COALESCE_MAX_BATCH",
		"ORDER_COALESCE", "ORDER_COALESCE_LANES", "ORDER_COALESCE_MAX_BATCH":
		return true
	}
	return false
}
