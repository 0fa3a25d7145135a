package mysqldb_test

import (
	"context"
	"database/sql/driver"
	"errors"
	"fmt"
	"net"
	"slices"
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

// TestScriptSendsItsStatementsInOneRoundTrip: a script's statements run in
// order in one write to the server; Query skips the results without rows;
// a failing statement stops the script with its own error, and rolling back
// undoes the statements before it.
func TestScriptSendsItsStatementsInOneRoundTrip(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	dsn, writes := mysqltest.CountRoundTrips(t, mysqltest.New(t, "mysqldb"))
	db, err := mysqldb.Open(ctx, dsn, 1)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	defer db.Close()
	if _, err := db.ExecContext(ctx, "CREATE TABLE t (id INT PRIMARY KEY, n INT NOT NULL)"); err != nil {
		t.Fatal(err)
	}

	err = mysqldb.InTx(ctx, db, func(tx *sql.Tx) error {
		var s mysqldb.Script
		s.Add("INSERT INTO t VALUES (?, ?), (?, ?)", 1, 10, 2, 20)
		s.Add("UPDATE t SET n = n + ? WHERE id = ?", 1, 1)
		before := writes.Load()
		if err := s.Exec(ctx, tx); err != nil {
			return err
		}
		if n := writes.Load() - before; n != 1 {
			t.Errorf("Exec of 2 statements took %d writes, want 1", n)
		}

		var q mysqldb.Script
		q.Add("INSERT INTO t VALUES (?, ?)", 3, 30)
		q.Add("SELECT id, n FROM t ORDER BY id")
		q.Add("SELECT COUNT(*) FROM t WHERE n > ?", 15)
		before = writes.Load()
		rows, err := q.Query(ctx, tx)
		if err != nil {
			return err
		}
		defer rows.Close()
		var got []int
		for rows.Next() {
			var id, n int
			if err := rows.Scan(&id, &n); err != nil {
				return err
			}
			got = append(got, id, n)
		}
		if want := []int{1, 11, 2, 20, 3, 30}; !slices.Equal(got, want) {
			t.Errorf("first result set = %v, want %v (the INSERT's result skipped)", got, want)
		}
		if !rows.NextResultSet() || !rows.Next() {
			return fmt.Errorf("no second result set: %v", rows.Err())
		}
		var count int
		if err := rows.Scan(&count); err != nil {
			return err
		}
		if count != 2 {
			t.Errorf("count = %d, want 2", count)
		}
		if n := writes.Load() - before; n != 1 {
			t.Errorf("Query of 3 statements took %d writes, want 1", n)
		}
		return rows.Close()
	})
	if err != nil {
		t.Fatalf("InTx: %v", err)
	}

	err = mysqldb.InTx(ctx, db, func(tx *sql.Tx) error {
		var s mysqldb.Script
		s.Add("INSERT INTO t VALUES (?, ?)", 4, 40)
		s.Add("INSERT INTO t VALUES (?, ?)", 1, 99) // duplicate: stops here
		s.Add("INSERT INTO t VALUES (?, ?)", 5, 50)
		return s.Exec(ctx, tx)
	})
	if !mysqldb.IsDuplicate(err) {
		t.Fatalf("err = %v, want the duplicate key of the second statement", err)
	}
	var n int
	if err := db.QueryRowContext(ctx, "SELECT COUNT(*) FROM t WHERE id IN (4, 5)").Scan(&n); err != nil {
		t.Fatal(err)
	}
	if n != 0 {
		t.Fatalf("%d rows of the failed script left after the rollback, want 0", n)
	}
}

// TestInScriptTxSendsBeginAndCommitWithItsStatements: a transaction of
// writes takes one round trip, one that reads first two; what fn's error or
// a refused statement of the last script stops is rolled back, the
// connection stays usable, and deadlocks are retried with the same script.
func TestInScriptTxSendsBeginAndCommitWithItsStatements(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	dsn, trips := mysqltest.CountRoundTrips(t, mysqltest.New(t, "mysqldb"))
	db, err := mysqldb.Open(ctx, dsn, 1) // one connection: what a failed transaction left, the next one meets
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	defer db.Close()
	if _, err := db.ExecContext(ctx, "CREATE TABLE t (id INT PRIMARY KEY, n INT NOT NULL)"); err != nil {
		t.Fatal(err)
	}
	count := func(q string) int {
		t.Helper()
		var n int
		if err := db.QueryRowContext(ctx, q).Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n
	}
	run := func(fn func(*mysqldb.Tx) (*mysqldb.Script, error)) (int64, error) {
		before := trips.Load()
		err := mysqldb.InScriptTx(ctx, db, fn)
		return trips.Load() - before, err
	}

	var writes mysqldb.Script
	writes.Add("INSERT INTO t VALUES (?, ?), (?, ?)", 1, 10, 2, 20)
	n, err := run(func(*mysqldb.Tx) (*mysqldb.Script, error) { return &writes, nil })
	if err != nil || n != 1 {
		t.Fatalf("writes: err %v, %d round trips, want 1", err, n)
	}

	n, err = run(func(tx *mysqldb.Tx) (*mysqldb.Script, error) {
		rows, err := tx.QueryContext(ctx, "SELECT n FROM t WHERE id IN (1, 2) FOR UPDATE")
		if err != nil {
			return nil, err
		}
		defer rows.Close()
		sum := 0
		for rows.Next() {
			var n int
			if err := rows.Scan(&n); err != nil {
				return nil, err
			}
			sum += n
		}
		if err := rows.Close(); err != nil {
			return nil, err
		}
		var s mysqldb.Script
		s.Add("INSERT INTO t VALUES (3, ?)", sum)
		return &s, nil
	})
	if err != nil || n != 2 || count("SELECT n FROM t WHERE id = 3") != 30 {
		t.Fatalf("read, then write: err %v, %d round trips, want 2", err, n)
	}

	stop := errors.New("stop")
	_, err = run(func(tx *mysqldb.Tx) (*mysqldb.Script, error) {
		if _, err := tx.ExecContext(ctx, "INSERT INTO t VALUES (4, 40)"); err != nil {
			return nil, err
		}
		return nil, stop
	})
	if !errors.Is(err, stop) || count("SELECT COUNT(*) FROM t WHERE id = 4") != 0 {
		t.Fatalf("fn's error: err %v, or its insert kept", err)
	}

	_, err = run(func(tx *mysqldb.Tx) (*mysqldb.Script, error) {
		if _, err := tx.ExecContext(ctx, "INSERT INTO t VALUES (5, 50)"); err != nil {
			return nil, err
		}
		var s mysqldb.Script
		s.Add("INSERT INTO t VALUES (6, 60)")
		s.Add("INSERT INTO t VALUES (1, 99)") // duplicate: no COMMIT
		return &s, nil
	})
	var commitErr *mysqldb.CommitError
	if !mysqldb.IsDuplicate(err) || errors.As(err, &commitErr) {
		t.Fatalf("refused last statement: err = %v, want the duplicate key, not an unknown commit", err)
	}
	if n := count("SELECT COUNT(*) FROM t WHERE id IN (5, 6)"); n != 0 {
		t.Fatalf("%d rows of the refused transaction kept", n)
	}
	if n := count("SELECT @@in_transaction"); n != 0 {
		t.Fatal("the connection was left in a transaction")
	}

	var runs int
	var again mysqldb.Script
	again.Add("INSERT INTO t VALUES (7, 70)")
	_, err = run(func(tx *mysqldb.Tx) (*mysqldb.Script, error) {
		if runs++; runs < 3 {
			if _, err := tx.ExecContext(ctx, "INSERT INTO t VALUES (8, 80)"); err != nil {
				return nil, err
			}
			return nil, &mysql.MySQLError{Number: 1213, Message: "Deadlock found"}
		}
		return &again, nil
	})
	if err != nil || runs != 3 {
		t.Fatalf("deadlocks: err %v after %d runs, want success on the third", err, runs)
	}
	if got := count("SELECT COUNT(*) FROM t WHERE id IN (7, 8)"); got != 1 || count("SELECT n FROM t WHERE id = 7") != 70 {
		t.Fatal("after the retries: want row 7 only")
	}
}
