package main

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strings"

	"github.com/stockfence/stockfence/shared/envconf"
	"github.com/stockfence/stockfence/shared/mysqldb"
)

// Config is the product service's configuration, read once from the
// environment variables of the contract (names in the comments).
type Config struct {
	HTTPAddr string // PRODUCT_HTTP_ADDR
	MySQLDSN string // PRODUCT_MYSQL_DSN
	// MySQLMaxConns bounds the connection pool (PRODUCT_MYSQL_MAX_CONNS, an
	// addition to the contract). Reservations of one hot product queue on its
	// row lock, so more connections only add waiting.
	MySQLMaxConns int
	// KafkaBrokers (KAFKA_BROKERS) are the bootstrap servers of the
	// compensation consumer and of the producer of results and dead letters.
	KafkaBrokers string
	ServiceToken string // SERVICE_TOKEN, required
	AdminToken   string // ADMIN_TOKEN, required
	// Coalesce (PRODUCT_COALESCE, on or off) applies concurrent
	// reservations in batches of up to CoalesceMaxBatch
	// (PRODUCT_COALESCE_MAX_BATCH), CoalesceLanes (PRODUCT_COALESCE_LANES)
	// batches at a time; off is one transaction per reservation. Additions
	// to the contract.
	Coalesce                        bool
	CoalesceLanes, CoalesceMaxBatch int
	// PprofAddr, when set, serves Go's runtime profiles there
	// (PRODUCT_PPROF_ADDR, e.g. 127.0.0.1:6060; an addition to the contract).
	PprofAddr string
}

// parseConfig reads the configuration through getenv, applying defaults and
// naming every variable that is missing or wrong.
func parseConfig(getenv func(string) string) (Config, error) {
	env := envconf.New(getenv)
	cfg := Config{
		HTTPAddr:      env.String("PRODUCT_HTTP_ADDR", "127.0.0.1:8081"),
		MySQLDSN:      env.String("PRODUCT_MYSQL_DSN", "root@tcp(127.0.0.1:3306)/products?parseTime=true"),
		MySQLMaxConns: env.Int("PRODUCT_MYSQL_MAX_CONNS", 32, 1, 1000),
		KafkaBrokers:  env.String("KAFKA_BROKERS", "127.0.0.1:9092"),
		PprofAddr:     env.String("PRODUCT_PPROF_ADDR", ""),
		ServiceToken:  env.Required("SERVICE_TOKEN"),
		AdminToken:    env.Required("ADMIN_TOKEN"),
		Coalesce:      env.Switch("PRODUCT_COALESCE", "on"),
		CoalesceLanes: env.Int("PRODUCT_COALESCE_LANES", 2, 1, 64),
		// Up to 200 reservations per transaction: past that a batch's lock
		// hold time grows faster than its throughput.
		CoalesceMaxBatch: env.Int("PRODUCT_COALESCE_MAX_BATCH", 200, 1, 2000),
	}
	if cfg.ServiceToken != "" && cfg.ServiceToken == cfg.AdminToken {
		env.Fail("SERVICE_TOKEN", errors.New("must differ from ADMIN_TOKEN"))
	}
	if _, err := mysqldb.Config(cfg.MySQLDSN); err != nil {
		env.Fail("PRODUCT_MYSQL_DSN", err)
	}
	if err := checkBrokers(cfg.KafkaBrokers); err != nil {
		env.Fail("KAFKA_BROKERS", err)
	}
	return cfg, env.Err()
}

// checkBrokers checks that s is a comma-separated list of host:port.
func checkBrokers(s string) error {
	for _, b := range strings.Split(s, ",") {
		b = strings.TrimSpace(b)
		if _, _, err := net.SplitHostPort(b); err != nil || b == "" {
			return fmt.Errorf("%q is not a comma-separated list of host:port", s)
		}
	}
	return nil
}

// LogValue prints the configuration with the secrets masked.
func (c Config) LogValue() slog.Value {
	return slog.GroupValue(
		slog.String("PRODUCT_HTTP_ADDR", c.HTTPAddr),
		slog.String("PRODUCT_MYSQL_DSN", mysqldb.RedactDSN(c.MySQLDSN)),
		slog.Int("PRODUCT_MYSQL_MAX_CONNS", c.MySQLMaxConns),
		slog.String("KAFKA_BROKERS", c.KafkaBrokers),
		slog.String("PRODUCT_PPROF_ADDR", c.PprofAddr),
		slog.Bool("PRODUCT_COALESCE", c.Coalesce),
		slog.Int("PRODUCT_COALESCE_LANES", c.CoalesceLanes),
		slog.Int("PRODUCT_COALESCE_MAX_BATCH", c.CoalesceMaxBatch),
		slog.String("SERVICE_TOKEN", envconf.Mask(c.ServiceToken)),
		slog.String("ADMIN_TOKEN", envconf.Mask(c.AdminToken)),
	)
}
