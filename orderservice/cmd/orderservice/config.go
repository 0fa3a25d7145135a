package main

import (
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"strings"
	"time"

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
	brokers, err := parseBrokers(env.String("KAFKA_BROKERS", "127.0.0.1:9092"))
	if err != nil {
		env.Fail("KAFKA_BROKERS", err)
	}
	cfg.KafkaBrokers = brokers
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

// LogValue prints the configuration with the tokens, the JWT secret and any
// password in the DSN masked.
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
	)
}
