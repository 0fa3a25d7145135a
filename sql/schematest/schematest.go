// Package schematest gives a test a fresh, migrated database of its own on
// the test MariaDB (see shared/mysqldb/mysqltest), opened as the services
// open theirs.
package schematest

import (
	"context"
	"database/sql"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stockfence/stockfence/shared/mysqldb"
	"github.com/stockfence/stockfence/shared/mysqldb/mysqltest"
	schema "github.com/stockfence/stockfence/sql"
)

// Open creates a database for set, applies its migrations, and returns a pool
// of at most conns connections to it. The pool is closed and the database
// dropped when t ends; a server that cannot be reached fails t.
func Open(t testing.TB, set schema.Set, conns int) *sql.DB {
	t.Helper()
	return open(t, set, mysqltest.New(t, string(set)), conns)
}

// OpenCounted is Open with a counter of the round trips made over the
// pool's connections (see mysqltest.CountRoundTrips).
func OpenCounted(t testing.TB, set schema.Set, conns int) (*sql.DB, *atomic.Int64) {
	t.Helper()
	dsn, trips := mysqltest.CountRoundTrips(t, mysqltest.New(t, string(set)))
	return open(t, set, dsn, conns), trips
}

func open(t testing.TB, set schema.Set, dsn string, conns int) *sql.DB {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	db, err := mysqldb.Open(ctx, dsn, conns)
	if err != nil {
		t.Fatalf("open test database: %v", err)
	}
	t.Cleanup(func() { db.Close() })
	if err := schema.Apply(ctx, db, set); err != nil {
		t.Fatalf("migrate %s: %v", set, err)
	}
	return db
}
