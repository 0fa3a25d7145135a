package main

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/golang-jwt/jwt/v5"

	"github.com/stockfence/stockfence/shared/envconf"
	"github.com/stockfence/stockfence/shared/mysqldb"
)

// Config is the order service's configuration, read from the environment
// variables of the contract (names in the comments) with their defaults.
type Config struct {
	// HTTPAddr is the listen address (ORDER_HTTP_ADDR).
	HTTPAddr string
	// MySQLDSN is the orders database, a go-sql-driver DSN (ORDER_MYSQL_DSN).
	MySQLDSN string
	// MySQLMaxConns bounds the connection pool (ORDER_MYSQL_MAX_CONNS, an
	// addition to the contract).
	MySQLMaxConns int
	// ProductURL is the product service's base URL (PRODUCT_URL).
	ProductURL string
	// KafkaBrokers are the bootstrap servers (KAFKA_BROKERS) of the outbox
	// relay's producer and the results consumer.
	KafkaBrokers []string
	// ServiceToken is presented to the product service (SERVICE_TOKEN).
	ServiceToken string
	// AdminToken guards the /ops endpoints (ADMIN_TOKEN).
	AdminToken string
	// CustomerJWTSecret is the HS256 key of customer tokens
	// (CUSTOMER_JWT_SECRET).
	CustomerJWTSecret string
	// ProductTimeout is the deadline of one product-service call
	// (PRODUCT_TIMEOUT).
	ProductTimeout time.Duration
	// SyncBudget is how long POST /orders works before answering 202
	// (ORDER_SYNC_BUDGET).
	SyncBudget time.Duration
	// RecoveryInterval is how often the recovery worker looks for due
	// orders (RECOVERY_INTERVAL).
	RecoveryInterval time.Duration
	// StuckAfter is the age past which an unsettled order is flagged stuck
	// (STUCK_AFTER).
	StuckAfter time.Duration
	// StorefrontDemoToken is a customer JWT, minted by the local launcher,
	// that the storefront page receives from GET /demo/token so a local demo
	// needs no sign-in (STOREFRONT_DEMO_TOKEN, optional, local runs only).
	// It must be signed with CustomerJWTSecret and unexpired, and the
	// service must listen on a loopback address; unset, no token is ever
	// handed out and the page asks the shopper for one. The service never
	// mints tokens.
	StorefrontDemoToken string
	// RateLimit is how many POST /orders one customer may send per
	// RateWindow on one instance (ORDER_RATE_LIMIT, 0 turns it off;
	// ORDER_RATE_WINDOW). Additions to the contract.
	RateLimit  int
	RateWindow time.Duration
	// MaxQuantity is how many units of one product a customer may have in
	// PENDING or CONFIRMED orders created within MaxQuantityWindow
	// (ORDER_MAX_QUANTITY, 0 turns it off; ORDER_MAX_QUANTITY_WINDOW).
	// Additions to the contract.
	MaxQuantity       int
	MaxQuantityWindow time.Duration
	// CORSOrigins are the origins whose pages may call the API from a
	// browser (ORDER_CORS_ORIGINS, comma-separated; empty: none, the
	// pages are served from the same origin). An addition to the contract.
	CORSOrigins []string
	// Coalesce (ORDER_COALESCE, on or off) creates concurrent orders,
	// sends their reservations (POST /reservations/batch) and stores the
	// answers in batches of up to
	// CoalesceMaxBatch (ORDER_COALESCE_MAX_BATCH), CoalesceLanes
	// (ORDER_COALESCE_LANES) batches of each kind at a time. Additions to
	// the contract.
	Coalesce                        bool
	CoalesceLanes, CoalesceMaxBatch int
	// PprofAddr, when set, serves Go's runtime profiles there
	// (ORDER_PPROF_ADDR, e.g. 127.0.0.1:6060; an addition to the contract).
	PprofAddr string
}

// parseConfig reads the configuration through getenv. Every problem found is
// reported, each naming its variable: a required variable that is missing, a
// duration that is not Go syntax or not positive, an unusable address, URL or
// DSN.
func parseConfig(getenv func(string) string) (Config, error) {
	env := envconf.New(getenv)
	cfg := Config{
		HTTPAddr:          env.String("ORDER_HTTP_ADDR", "127.0.0.1:8080"),
		MySQLDSN:          env.String("ORDER_MYSQL_DSN", "root@tcp(127.0.0.1:3306)/orders?parseTime=true"),
		MySQLMaxConns:     env.Int("ORDER_MYSQL_MAX_CONNS", 32, 1, 1000),
		ProductURL:        env.String("PRODUCT_URL", "http://127.0.0.1:8081"),
		ServiceToken:      env.Required("SERVICE_TOKEN"),
		AdminToken:        env.Required("ADMIN_TOKEN"),
		CustomerJWTSecret: env.Required("CUSTOMER_JWT_SECRET"),
		ProductTimeout:    env.Duration("PRODUCT_TIMEOUT", "1s"),
		SyncBudget:        env.Duration("ORDER_SYNC_BUDGET", "3s"),
		RecoveryInterval:  env.Duration("RECOVERY_INTERVAL", "1s"),
		StuckAfter:        env.Duration("STUCK_AFTER", "30s"),
		// Optional: only a local launcher sets it.
		StorefrontDemoToken: env.String("STOREFRONT_DEMO_TOKEN", ""),
		RateLimit:           env.Int("ORDER_RATE_LIMIT", 60, 0, 1_000_000),
		RateWindow:          env.Duration("ORDER_RATE_WINDOW", "1m"),
		MaxQuantity:         env.Int("ORDER_MAX_QUANTITY", 0, 0, 1_000_000),
		MaxQuantityWindow:   env.Duration("ORDER_MAX_QUANTITY_WINDOW", "24h"),
		PprofAddr:           env.String("ORDER_PPROF_ADDR", ""),
		Coalesce:            env.Switch("ORDER_COALESCE", "on"),
		CoalesceLanes:       env.Int("ORDER_COALESCE_LANES", 2, 1, 64),
		CoalesceMaxBatch:    env.Int("ORDER_COALESCE_MAX_BATCH", 200, 1, 2000),
	}
	if _, _, err := net.SplitHostPort(cfg.HTTPAddr); err != nil {
		env.Fail("ORDER_HTTP_ADDR", fmt.Errorf("%q is not host:port", cfg.HTTPAddr))
	}
	if _, err := mysqldb.Config(cfg.MySQLDSN); err != nil {
		env.Fail("ORDER_MYSQL_DSN", err)
	}
	if u, err := url.Parse(cfg.ProductURL); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		env.Fail("PRODUCT_URL", fmt.Errorf("%q is not an absolute http(s) URL", cfg.ProductURL))
	}
	origins, err := parseOrigins(env.String("ORDER_CORS_ORIGINS", ""))
	if err != nil {
		env.Fail("ORDER_CORS_ORIGINS", err)
	}
	cfg.CORSOrigins = origins
	brokers, err := parseBrokers(env.String("KAFKA_BROKERS", "127.0.0.1:9092"))
	if err != nil {
		env.Fail("KAFKA_BROKERS", err)
	}
	cfg.KafkaBrokers = brokers
	if cfg.StorefrontDemoToken != "" && cfg.CustomerJWTSecret != "" {
		if err := checkDemoToken(cfg.StorefrontDemoToken, cfg.CustomerJWTSecret, cfg.HTTPAddr, time.Now()); err != nil {
			env.Fail("STOREFRONT_DEMO_TOKEN", err)
		}
	}
	if err := env.Err(); err != nil {
		return Config{}, err
	}
	return cfg, nil
}

// parseBrokers splits a comma-separated list of host:port.
func parseBrokers(s string) ([]string, error) {
	var brokers []string
	for _, b := range strings.Split(s, ",") {
		b = strings.TrimSpace(b)
		if _, _, err := net.SplitHostPort(b); err != nil || b == "" {
			return nil, fmt.Errorf("%q is not a comma-separated list of host:port", s)
		}
		brokers = append(brokers, b)
	}
	return brokers, nil
}

// parseOrigins reads a comma-separated list of origins, each scheme://host
// with an optional port and nothing else.
func parseOrigins(s string) ([]string, error) {
	if strings.TrimSpace(s) == "" {
		return nil, nil
	}
	var origins []string
	for _, o := range strings.Split(s, ",") {
		o = strings.TrimSpace(o)
		u, err := url.Parse(o)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.Path != "" || u.RawQuery != "" || u.User != nil {
			return nil, fmt.Errorf("%q is not an origin like https://shop.example.com", o)
		}
		origins = append(origins, o)
	}
	return origins, nil
}

// checkDemoToken refuses a demo token anywhere but on a loopback listener
// (it is handed to whoever asks), and one that the service itself would
// refuse: not HS256 with secret, without exp or expired at now, or without a
// usable sub.
func checkDemoToken(token, secret, addr string, now time.Time) error {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("needs ORDER_HTTP_ADDR to be host:port: %w", err)
	}
	if ip := net.ParseIP(host); host != "localhost" && (ip == nil || !ip.IsLoopback()) {
		return fmt.Errorf("is for local demos only: ORDER_HTTP_ADDR must be a loopback address, not %q", addr)
	}
	parser := jwt.NewParser(jwt.WithValidMethods([]string{"HS256"}), jwt.WithExpirationRequired(),
		jwt.WithTimeFunc(func() time.Time { return now }))
	var claims jwt.RegisteredClaims
	if _, err := parser.ParseWithClaims(token, &claims, func(*jwt.Token) (any, error) { return []byte(secret), nil }); err != nil {
		return fmt.Errorf("is not a valid customer token signed with CUSTOMER_JWT_SECRET: %w", err)
	}
	if claims.Subject == "" || utf8.RuneCountInString(claims.Subject) > 128 || strings.TrimSpace(claims.Subject) != claims.Subject {
		return errors.New("must name the customer in sub (1 to 128 characters, no surrounding white space)")
	}
	return nil
}

// LogValue prints the configuration with the tokens (the demo token too), the
// JWT secret and any password in the DSN masked.
func (c Config) LogValue() slog.Value {
	return slog.GroupValue(
		slog.String("ORDER_HTTP_ADDR", c.HTTPAddr),
		slog.String("ORDER_MYSQL_DSN", mysqldb.RedactDSN(c.MySQLDSN)),
		slog.Int("ORDER_MYSQL_MAX_CONNS", c.MySQLMaxConns),
		slog.String("PRODUCT_URL", c.ProductURL),
		slog.Any("KAFKA_BROKERS", c.KafkaBrokers),
		slog.String("SERVICE_TOKEN", envconf.Mask(c.ServiceToken)),
		slog.String("ADMIN_TOKEN", envconf.Mask(c.AdminToken)),
		slog.String("CUSTOMER_JWT_SECRET", envconf.Mask(c.CustomerJWTSecret)),
		slog.String("PRODUCT_TIMEOUT", c.ProductTimeout.String()),
		slog.String("ORDER_SYNC_BUDGET", c.SyncBudget.String()),
		slog.String("RECOVERY_INTERVAL", c.RecoveryInterval.String()),
		slog.String("STUCK_AFTER", c.StuckAfter.String()),
		slog.String("STOREFRONT_DEMO_TOKEN", envconf.Mask(c.StorefrontDemoToken)),
		slog.Int("ORDER_RATE_LIMIT", c.RateLimit),
		slog.String("ORDER_RATE_WINDOW", c.RateWindow.String()),
		slog.Int("ORDER_MAX_QUANTITY", c.MaxQuantity),
		slog.String("ORDER_MAX_QUANTITY_WINDOW", c.MaxQuantityWindow.String()),
		slog.Bool("ORDER_COALESCE", c.Coalesce),
		slog.Int("ORDER_COALESCE_LANES", c.CoalesceLanes),
		slog.Int("ORDER_COALESCE_MAX_BATCH", c.CoalesceMaxBatch),
		slog.String("ORDER_PPROF_ADDR", c.PprofAddr),
		slog.String("ORDER_CORS_ORIGINS", strings.Join(c.CORSOrigins, ",")),
	)
}
