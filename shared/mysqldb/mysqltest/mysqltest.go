// Package mysqltest gives each integration test a database of its own on the
// local MariaDB, created fresh and dropped when the test ends, so tests can run
// in parallel without seeing each other's rows.
package mysqltest

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"errors"
	"net"
	"os"
	"sync/atomic"
	"testing"
	"time"

	"github.com/go-sql-driver/mysql"
)

// ServerEnv names the variable that points tests at another server; its value
// is a go-sql-driver DSN without a database, e.g. "root@tcp(127.0.0.1:3306)/".
const ServerEnv = "STOCKFENCE_TEST_MYSQL"

const defaultServer = "root@tcp(127.0.0.1:3306)/"

// HowToStart is the hint printed when the server cannot be reached.
const HowToStart = `start MariaDB with: start-stop-daemon --start --oknodo --background --exec "$(command -v mariadbd)" ` +
	`(or run "make db"), or point ` + ServerEnv + ` at a server`

// Server returns the DSN of the test server, without a database.
func Server() string {
	if dsn := os.Getenv(ServerEnv); dsn != "" {
		return dsn
	}
	return defaultServer
}

// New creates an empty database with a random name prefixed by prefix and
// returns its DSN. The database is dropped when t ends. If the server cannot
// be reached the test fails (it is never skipped) with a hint how to start it.
func New(t testing.TB, prefix string) string {
	t.Helper()
	cfg, err := mysql.ParseDSN(Server())
	if err != nil {
		t.Fatalf("parse %s: %v", ServerEnv, err)
	}
	name := prefix + "_" + randomSuffix()
	conn, err := mysql.NewConnector(cfg)
	if err != nil {
		t.Fatal(err)
	}
	db := sql.OpenDB(conn)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := db.PingContext(ctx); err != nil {
		db.Close()
		var serverErr *mysql.MySQLError
		if errors.As(err, &serverErr) {
			t.Fatalf("MariaDB at %s refused the test: %v (make db raises max_connections for the parallel tests)", cfg.Addr, err)
		}
		t.Fatalf("MariaDB is not reachable at %s: %v\n%s", cfg.Addr, err, HowToStart)
	}
	if _, err := db.ExecContext(ctx, "CREATE DATABASE `"+name+"`"); err != nil {
		db.Close()
		t.Fatalf("create test database %s: %v", name, err)
	}
	t.Cleanup(func() {
		defer db.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if _, err := db.ExecContext(ctx, "DROP DATABASE IF EXISTS `"+name+"`"); err != nil {
			t.Errorf("drop test database %s: %v", name, err)
		}
	})
	cfg.DBName = name
	cfg.ParseTime = true
	return cfg.FormatDSN()
}

// CountRoundTrips returns dsn changed to dial connections that count the
// writes made to them, and the counter: the driver writes each command it
// sends (a statement, a script of statements, a commit) with one write, so
// the count is the round trips made.
func CountRoundTrips(t testing.TB, dsn string) (string, *atomic.Int64) {
	t.Helper()
	cfg, err := mysql.ParseDSN(dsn)
	if err != nil {
		t.Fatalf("parse %s: %v", dsn, err)
	}
	writes := new(atomic.Int64)
	network, addr := cfg.Net, cfg.Addr
	cfg.Net = "counted-" + randomSuffix()
	mysql.RegisterDialContext(cfg.Net, func(ctx context.Context, _ string) (net.Conn, error) {
		c, err := (&net.Dialer{}).DialContext(ctx, network, addr)
		if err != nil {
			return nil, err
		}
		return countingConn{c, writes}, nil
	})
	return cfg.FormatDSN(), writes
}

type countingConn struct {
	net.Conn
	writes *atomic.Int64
}

func (c countingConn) Write(p []byte) (int, error) {
	c.writes.Add(1)
	return c.Conn.Write(p)
}

func randomSuffix() string {
	b := make([]byte, 6)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}
