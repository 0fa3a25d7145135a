// Package mysqldb opens MySQL/MariaDB pools the way both services need them
// (database created on first start, UTC times, interpolated parameters,
// several statements per round trip) and runs transactions that are retried
// as a whole on deadlock and lock-wait timeout.
package mysqldb

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"regexp"
	"strings"
	"time"

	"github.com/go-sql-driver/mysql"
)

// MySQL error numbers the services translate.
const (
	ErDupEntry        = 1062
	ErLockWaitTimeout = 1205
	ErLockDeadlock    = 1213

	erTooManyConnections = 1040
)

// maxTxAttempts bounds how often InTx runs a transaction that keeps hitting
// deadlocks or lock-wait timeouts.
const maxTxAttempts = 5

var dbNamePattern = regexp.MustCompile(`^[A-Za-z0-9_]{1,64}$`)

// Config parses dsn and normalises it: parseTime on, UTC, client-side
// parameter interpolation (no prepare round trip; values are still escaped
// by the driver, never concatenated by us) and multi-statement texts, so
// that Script can send several statements in one round trip.
func Config(dsn string) (*mysql.Config, error) {
	cfg, err := mysql.ParseDSN(dsn)
	if err != nil {
		return nil, fmt.Errorf("parse mysql dsn: %w", err)
	}
	if !dbNamePattern.MatchString(cfg.DBName) {
		return nil, fmt.Errorf("mysql dsn must name a database of letters, digits and underscores, got %q", cfg.DBName)
	}
	cfg.ParseTime = true
	cfg.Loc = time.UTC
	cfg.InterpolateParams = true
	cfg.MultiStatements = true
	return cfg, nil
}

// RedactDSN returns dsn with its password masked, for logs.
func RedactDSN(dsn string) string {
	cfg, err := mysql.ParseDSN(dsn)
	if err != nil {
		return "(invalid dsn)"
	}
	if cfg.Passwd != "" {
		cfg.Passwd = "***"
	}
	return cfg.FormatDSN()
}

// Open creates the DSN's database if it does not exist and returns a pool of
// at most maxConns connections to it, checked with a ping.
func Open(ctx context.Context, dsn string, maxConns int) (*sql.DB, error) {
	cfg, err := Config(dsn)
	if err != nil {
		return nil, err
	}
	isolation, err := createDatabase(ctx, cfg)
	if err != nil {
		return nil, err
	}
	// Every connection starts READ COMMITTED, the level InTx needs, so a
	// transaction costs no SET TRANSACTION round trip of its own.
	if cfg.Params == nil {
		cfg.Params = map[string]string{}
	}
	cfg.Params[isolation] = "'READ-COMMITTED'"
	conn, err := mysql.NewConnector(cfg)
	if err != nil {
		return nil, fmt.Errorf("mysql connector: %w", err)
	}
	db := sql.OpenDB(conn)
	db.SetMaxOpenConns(maxConns)
	db.SetMaxIdleConns(maxConns)
	db.SetConnMaxLifetime(5 * time.Minute)
	db.SetConnMaxIdleTime(time.Minute)
	if err := db.PingContext(ctx); err != nil {
		db.Close()
		return nil, fmt.Errorf("ping %s: %w", cfg.Addr, err)
	}
	return db, nil
}

// createDatabase creates cfg's database if it does not exist and returns the
// name of the server's session isolation variable: transaction_isolation
// (MySQL 8, MariaDB 11.1 and later) or tx_isolation (older MariaDB).
func createDatabase(ctx context.Context, cfg *mysql.Config) (string, error) {
	server := cfg.Clone()
	server.DBName = ""
	conn, err := mysql.NewConnector(server)
	if err != nil {
		return "", fmt.Errorf("mysql connector: %w", err)
	}
	db := sql.OpenDB(conn)
	defer db.Close()
	// The name is checked against dbNamePattern, so quoting it is safe.
	q := "CREATE DATABASE IF NOT EXISTS `" + cfg.DBName + "` CHARACTER SET utf8mb4 COLLATE utf8mb4_bin"
	if _, err := db.ExecContext(ctx, q); err != nil {
		return "", fmt.Errorf("create database %s on %s: %w", cfg.DBName, cfg.Addr, err)
	}
	var level string
	if err := db.QueryRowContext(ctx, "SELECT @@transaction_isolation").Scan(&level); err == nil {
		return "transaction_isolation", nil
	}
	if err := db.QueryRowContext(ctx, "SELECT @@tx_isolation").Scan(&level); err != nil {
		return "", fmt.Errorf("isolation variable of %s: %w", cfg.Addr, err)
	}
	return "tx_isolation", nil
}

// CommitError reports a failed COMMIT. The transaction may or may not have
// been applied: callers must treat it as an unknown outcome, never retry
// blindly.
type CommitError struct{ Err error }

func (e *CommitError) Error() string { return "commit (outcome unknown): " + e.Err.Error() }
func (e *CommitError) Unwrap() error { return e.Err }

// InTx runs fn in a READ COMMITTED transaction and commits it; db must come
// from Open, whose connections start at that level. If fn or the
// commit fails, the transaction is rolled back. The whole transaction is run
// again, up to a bounded number of times with jittered backoff, when MySQL
// reports a deadlock (1213) or a lock-wait timeout (1205); fn must therefore be
// safe to run more than once. A failed commit is returned as *CommitError.
func InTx(ctx context.Context, db *sql.DB, fn func(*sql.Tx) error) error {
	return retrying(ctx, func() error { return runTx(ctx, db, fn) })
}

// retrying runs a transaction until it succeeds, fails for another reason
// than a deadlock or lock-wait timeout, or has run maxTxAttempts times.
func retrying(ctx context.Context, run func() error) error {
	for attempt := 1; ; attempt++ {
		err := run()
		if err == nil || !IsRetryable(err) || attempt == maxTxAttempts {
			return err
		}
		backoff := time.Duration(attempt*attempt)*5*time.Millisecond + rand.N(5*time.Millisecond)
		select {
		case <-ctx.Done():
			return errors.Join(err, ctx.Err())
		case <-time.After(backoff):
		}
	}
}

func runTx(ctx context.Context, db *sql.DB, fn func(*sql.Tx) error) error {
	// The connection is READ COMMITTED already (see Open).
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("begin: %w", err)
	}
	if err := fn(tx); err != nil {
		_ = tx.Rollback()
		return err
	}
	if err := tx.Commit(); err != nil {
		return &CommitError{Err: err}
	}
	return nil
}

// IsRetryable reports whether err is a deadlock or lock-wait timeout, after
// which the whole transaction can safely run again. A failed commit is not.
func IsRetryable(err error) bool {
	var ce *CommitError
	if errors.As(err, &ce) {
		return false
	}
	return hasNumber(err, ErLockDeadlock) || hasNumber(err, ErLockWaitTimeout)
}

// IsUnavailable reports whether err says the database could not be used for
// now - unreachable, a lost connection, no answer in time, too many
// connections, locks that stayed contended - rather than that it refused the
// statement. Retrying later can succeed without anything being fixed.
func IsUnavailable(err error) bool {
	var me *mysql.MySQLError
	if errors.As(err, &me) {
		return me.Number == erTooManyConnections || me.Number == ErLockDeadlock || me.Number == ErLockWaitTimeout
	}
	var ne net.Error
	return errors.Is(err, driver.ErrBadConn) || errors.Is(err, mysql.ErrInvalidConn) ||
		errors.Is(err, context.DeadlineExceeded) || errors.As(err, &ne)
}

// IsDuplicate reports whether err is a unique-key violation (1062).
func IsDuplicate(err error) bool { return hasNumber(err, ErDupEntry) }

func hasNumber(err error, number uint16) bool {
	var me *mysql.MySQLError
	return errors.As(err, &me) && me.Number == number
}

// InScriptTx is InTx for a transaction that costs no round trip of its own:
// fn's first statement through tx carries the START TRANSACTION, and the
// script fn returns (nil or empty: nothing more) is sent with the COMMIT, so
// a transaction of statements that need no answer takes one round trip, and
// one that reads first takes two. A statement of the last script that the
// server refuses (a duplicate key, a deadlock) means the COMMIT did not run:
// the transaction is rolled back and the error returned (and retried, as by
// InTx, when it is a deadlock or a lock-wait timeout); any other failure of
// that last round trip leaves the outcome unknown, *CommitError.
func InScriptTx(ctx context.Context, db *sql.DB, fn func(tx *Tx) (*Script, error)) error {
	return retrying(ctx, func() error { return runScriptTx(ctx, db, fn) })
}

func runScriptTx(ctx context.Context, db *sql.DB, fn func(*Tx) (*Script, error)) error {
	conn, err := db.Conn(ctx)
	if err != nil {
		return fmt.Errorf("connection: %w", err)
	}
	defer conn.Close()
	tx := &Tx{conn: conn}
	last, err := fn(tx)
	if err != nil {
		tx.rollback(ctx)
		return err
	}
	if last == nil {
		last = &Script{}
	}
	if last.Empty() && !tx.begun {
		return nil // nothing was sent
	}
	// A copy with the COMMIT: fn may return the same script on every run.
	commit := Script{args: last.args}
	commit.text.WriteString(last.text.String())
	commit.Add("COMMIT")
	if _, err := tx.ExecContext(ctx, commit.text.String(), commit.args...); err != nil {
		var refused *mysql.MySQLError
		if errors.As(err, &refused) {
			// The server stops at the statement it refuses: the COMMIT
			// after it never ran.
			tx.rollback(ctx)
			return err
		}
		return &CommitError{Err: err}
	}
	return nil
}

// Tx is a transaction of InScriptTx: the first statement sent through it
// begins it. Its connection starts READ COMMITTED (see Open).
type Tx struct {
	conn  *sql.Conn
	begun bool
}

// ExecContext runs query in the transaction.
func (t *Tx) ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error) {
	return t.conn.ExecContext(ctx, t.begin(query), args...)
}

// QueryContext runs query in the transaction.
func (t *Tx) QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error) {
	return t.conn.QueryContext(ctx, t.begin(query), args...)
}

// begin puts START TRANSACTION before the first query sent.
func (t *Tx) begin(query string) string {
	if t.begun {
		return query
	}
	t.begun = true
	return "START TRANSACTION;\n" + query
}

// rollback ends a transaction that failed; a connection that cannot roll
// back is not used again.
func (t *Tx) rollback(ctx context.Context) {
	if !t.begun {
		return
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	if _, err := t.conn.ExecContext(ctx, "ROLLBACK"); err != nil {
		_ = t.conn.Raw(func(any) error { return driver.ErrBadConn })
	}
}

// Querier runs statements: a *sql.Tx or a *Tx.
type Querier interface {
	ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error)
	QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error)
}

// Script is a list of statements sent to the server as one text, in one
// round trip: every statement of a transaction that does not need the answer
// of another can go together. The server runs them in order and stops at the
// first that fails, whose error is the script's; inside a transaction,
// rolling back then undoes the ones before it.
type Script struct {
	text strings.Builder
	args []any
}

// Add appends statement q with its arguments.
func (s *Script) Add(q string, args ...any) {
	if s.text.Len() > 0 {
		s.text.WriteString(";\n")
	}
	s.text.WriteString(q)
	s.args = append(s.args, args...)
}

// Empty reports whether nothing was added.
func (s *Script) Empty() bool { return s.text.Len() == 0 }

// Exec runs the statements in one round trip, if there are any.
func (s *Script) Exec(ctx context.Context, tx Querier) error {
	if s.Empty() {
		return nil
	}
	_, err := tx.ExecContext(ctx, s.text.String(), s.args...)
	return err
}

// Query runs the statements in one round trip and returns the result sets
// of those that have rows, in order (rows.NextResultSet moves on to the
// next); statements without rows (an INSERT taking locks before a SELECT,
// say) are skipped over.
func (s *Script) Query(ctx context.Context, tx Querier) (*sql.Rows, error) {
	return tx.QueryContext(ctx, s.text.String(), s.args...)
}
