package mysqldb_test

import (
	"context"
	"database/sql/driver"
	"errors"
	"fmt"
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"database/sql"

	"github.com/go-sql-driver/mysql"

	"github.com/stockfence/stockfence/shared/mysqldb"
	"github.com/stockfence/stockfence/shared/mysqldb/mysqltest"
)

func TestConfigRejectsBadDatabaseName(t *testing.T) {
	for _, dsn := range []string{"root@tcp(127.0.0.1:3306)/", "root@tcp(127.0.0.1:3306)/a-b", "root@tcp(127.0.0.1:3306)/x`y"} {
		if _, err := mysqldb.Config(dsn); err == nil {
			t.Errorf("Config(%q) = nil error, want one", dsn)
		}
	}
}

func TestIsRetryable(t *testing.T) {
	tests := []struct {
		err  error
		want bool
	}{
		{&mysql.MySQLError{Number: 1213}, true},
		{&mysql.MySQLError{Number: 1205}, true},
		{&mysql.MySQLError{Number: 1062}, false},
		{&mysqldb.CommitError{Err: &mysql.MySQLError{Number: 1213}}, false},
		{errors.New("boom"), false},
	}
	for _, tt := range tests {
		if got := mysqldb.IsRetryable(tt.err); got != tt.want {
			t.Errorf("IsRetryable(%v) = %v, want %v", tt.err, got, tt.want)
		}
	}
}

func TestIsUnavailable(t *testing.T) {
	tests := []struct {
		err  error
		want bool
	}{
		{fmt.Errorf("ping: %w", &net.OpError{Op: "dial", Err: errors.New("connection refused")}), true},
		{fmt.Errorf("query: %w", driver.ErrBadConn), true},
		{fmt.Errorf("op: %w", context.DeadlineExceeded), true},
		{&mysql.MySQLError{Number: 1040}, true},
		{&mysql.MySQLError{Number: 1146, Message: "Table doesn't exist"}, false},
		{&mysql.MySQLError{Number: 1062}, false},
		{errors.New("decode: bad json"), false},
	}
	for _, tt := range tests {
		if got := mysqldb.IsUnavailable(tt.err); got != tt.want {
			t.Errorf("IsUnavailable(%v) = %v, want %v", tt.err, got, tt.want)
		}
	}
}

func TestOpenCreatesDatabaseAndInTxRetriesDeadlocks(t *testing.T) {
	dsn := mysqltest.New(t, "mysqldb")
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	// Drop the database the helper made: Open must create it again.
	cfg, _ := mysql.ParseDSN(dsn)
	admin := cfg.Clone()
	admin.DBName = ""
	adminDB, err := sql.Open("mysql", admin.FormatDSN())
	if err != nil {
		t.Fatal(err)
	}
	defer adminDB.Close()
	if _, err := adminDB.ExecContext(ctx, "DROP DATABASE `"+cfg.DBName+"`"); err != nil {
		t.Fatal(err)
	}

	db, err := mysqldb.Open(ctx, dsn, 4)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	defer db.Close()
	if _, err := db.ExecContext(ctx, "CREATE TABLE t (id INT PRIMARY KEY, n INT NOT NULL)"); err != nil {
		t.Fatal(err)
	}

	var runs atomic.Int32
	err = mysqldb.InTx(ctx, db, func(tx *sql.Tx) error {
		if _, err := tx.ExecContext(ctx, "INSERT INTO t VALUES (?, 1)", runs.Load()); err != nil {
			return err
		}
		if runs.Add(1) < 3 {
			return &mysql.MySQLError{Number: 1213, Message: "Deadlock found"}
		}
		return nil
	})
	if err != nil {
		t.Fatalf("InTx: %v", err)
	}
	if got, want := runs.Load(), int32(3); got != want {
		t.Fatalf("runs = %d, want %d", got, want)
	}
	var rows int
	if err := db.QueryRowContext(ctx, "SELECT COUNT(*) FROM t").Scan(&rows); err != nil {
		t.Fatal(err)
	}
	if rows != 1 {
		t.Fatalf("rows = %d, want 1 (the failed runs must have rolled back)", rows)
	}

	err = mysqldb.InTx(ctx, db, func(tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx, "INSERT INTO t VALUES (10, 1)")
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	err = mysqldb.InTx(ctx, db, func(tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx, "INSERT INTO t VALUES (10, 1)")
		return err
	})
	if !mysqldb.IsDuplicate(err) {
		t.Fatalf("second insert err = %v, want a duplicate-key error", err)
	}
}

// TestInTxIsReadCommitted: a transaction of InTx sees what another one
// committed after its first read (READ COMMITTED; REPEATABLE READ, the
// server's default, would keep showing the first value), on every connection
// of the pool.
func TestInTxIsReadCommitted(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	db, err := mysqldb.Open(ctx, mysqltest.New(t, "mysqldb"), 6)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	defer db.Close()
	if _, err := db.ExecContext(ctx, "CREATE TABLE t (id INT PRIMARY KEY, n INT NOT NULL)"); err != nil {
		t.Fatal(err)
	}
	if _, err := db.ExecContext(ctx, "INSERT INTO t VALUES (1, 0)"); err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	for i := range 3 { // three transactions at once, each on its own connection, and the updates on others
		wg.Go(func() {
			err := mysqldb.InTx(ctx, db, func(tx *sql.Tx) error {
				var before, after int
				if err := tx.QueryRowContext(ctx, "SELECT n FROM t WHERE id = 1").Scan(&before); err != nil {
					return err
				}
				if _, err := db.ExecContext(ctx, "UPDATE t SET n = n + 1 WHERE id = 1"); err != nil {
					return err
				}
				if err := tx.QueryRowContext(ctx, "SELECT n FROM t WHERE id = 1").Scan(&after); err != nil {
					return err
				}
				if after == before {
					t.Errorf("transaction %d: still read %d after another committed an update: not READ COMMITTED", i, before)
				}
				return nil
			})
			if err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
}
