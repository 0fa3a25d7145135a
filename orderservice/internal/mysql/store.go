// Package mysql stores orders, their lines, their reservation attempts and the
// idempotency keys that created them in the orders database (the tables of
// sql/orders). Every write runs in one mysqldb.InTx transaction; every read of
// an order returns a consistent snapshot of it with its lines and attempts.
//
// All timestamps are written by the service in UTC, to the microsecond, rather
// than taken from the database clock, so they compare with the service's own
// clock and do not depend on the server's time zone.
package mysql

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/stockfence/stockfence/orderservice/internal/order"
	"github.com/stockfence/stockfence/shared/contract"
	"github.com/stockfence/stockfence/shared/mysqldb"
	schema "github.com/stockfence/stockfence/sql"
)

// opTimeout bounds every store call, whatever deadline the caller's context
// carries (or lacks).
const opTimeout = 5 * time.Second

// maxLastError is the width of orders.last_error, in characters.
const maxLastError = 500

// Store is the orders database. It is safe for concurrent use.
type Store struct {
	db  *sql.DB
	cap order.QuantityCap
}

// New returns a store over db, whose schema must be at the newest migration
// of schema.Orders.
func New(db *sql.DB) *Store {
	return &Store{db: db}
}

// LimitQuantity makes Create refuse orders that take a customer past cap
// (see order.QuantityCap). Call it before the store is used.
func (s *Store) LimitQuantity(cap order.QuantityCap) { s.cap = cap }

// QuantityCap returns the cap set by LimitQuantity (zero: none).
func (s *Store) QuantityCap() order.QuantityCap { return s.cap }

// errKeyTaken marks a Create that lost the race for its idempotency key.
var errKeyTaken = errors.New("idempotency key taken")

// errOrderStored marks a Create that found its own order stored already: an
// earlier transaction writing it (a batch's, whose commit's outcome was
// unknown) did commit.
var errOrderStored = errors.New("order already stored")

// Create stores o (a new PENDING order with its lines, its first SENT attempt
// and its next_check_at) in one transaction, together with the idempotency key
// idemKey of its customer when idemKey is not empty. If o itself is stored
// already (a batch that wrote it reported an unknown commit, and the commit
// went through), Create returns it as stored, created true.
//
// Callers look the key up first (ByKey); Create settles the race between
// concurrent calls with one key, which create one order: InnoDB makes the
// second insert of the key wait for the first transaction and then fail as a
// duplicate, after which nothing is written and the first call's order is
// returned with created false (same requestHash) or the error is
// order.ErrIdempotencyKeyReused.
func (s *Store) Create(ctx context.Context, o order.Order, idemKey, requestHash string) (order.Order, bool, error) {
	ctx, cancel := context.WithTimeout(ctx, opTimeout)
	defer cancel()
	err := mysqldb.InTx(ctx, s.db, func(tx *sql.Tx) error {
		if err := insertOrder(ctx, tx, o); err != nil {
			return err
		}
		if err := insertLines(ctx, tx, o.ID, o.Lines); err != nil {
			return err
		}
		for _, a := range o.Attempts {
			if err := insertAttempt(ctx, tx, o.ID, a); err != nil {
				return err
			}
		}
		if idemKey != "" {
			// After the order: the key references it.
			if err := insertKey(ctx, tx, o.CustomerID, idemKey, requestHash, o.ID, o.CreatedAt); err != nil {
				return err
			}
		}
		// Last, so that a concurrent copy of the same request has met the
		// key (and replays) before it could be refused here.
		return s.checkCap(ctx, tx, o)
	})
	if errors.Is(err, errOrderStored) {
		stored, err := s.Load(ctx, o.ID)
		if err != nil {
			return order.Order{}, false, err
		}
		if stored.CustomerID != o.CustomerID {
			return order.Order{}, false, fmt.Errorf("order id %s is taken by another customer's order", o.ID)
		}
		return stored, true, nil
	}
	if errors.Is(err, errKeyTaken) {
		existing, found, err := s.ByKey(ctx, o.CustomerID, idemKey, requestHash)
		if err != nil {
			return order.Order{}, false, err
		}
		if !found {
			return order.Order{}, false, fmt.Errorf("idempotency key of customer %s is taken but not readable", o.CustomerID)
		}
		return existing, false, nil
	}
	if err != nil {
		return order.Order{}, false, fmt.Errorf("create order %s: %w", o.ID, err)
	}
	return o, true, nil
}

// checkCap refuses, with *order.QuantityCapError, an order (already
// inserted in tx) that takes its customer past the quantity cap. The
// customer's lock row serialises their concurrent orders on every instance
// until commit.
func (s *Store) checkCap(ctx context.Context, tx *sql.Tx, o order.Order) error {
	if s.cap.Limit <= 0 {
		return nil
	}
	const lock = `INSERT INTO customer_locks (customer_id) VALUES (?) ON DUPLICATE KEY UPDATE customer_id = customer_id`
	if _, err := tx.ExecContext(ctx, lock, o.CustomerID); err != nil {
		return fmt.Errorf("lock customer %s: %w", o.CustomerID, err)
	}
	ids := make([]any, 0, len(o.Lines)+2)
	ids = append(ids, o.CustomerID, o.CreatedAt.Add(-s.cap.Window))
	for _, l := range o.Lines {
		ids = append(ids, l.ProductID)
	}
	q := `SELECT l.product_id, SUM(l.quantity) FROM orders o JOIN order_lines l ON l.order_id = o.id
		WHERE o.customer_id = ? AND o.created_at >= ? AND o.status IN ('PENDING', 'CONFIRMED')
		AND l.product_id IN (` + placeholders(len(o.Lines), "?") + `) GROUP BY l.product_id`
	rows, err := tx.QueryContext(ctx, q, ids...)
	if err != nil {
		return fmt.Errorf("quantities held by customer %s: %w", o.CustomerID, err)
	}
	defer rows.Close()
	requested := make(map[int64]int, len(o.Lines))
	for _, l := range o.Lines {
		requested[l.ProductID] += l.Quantity
	}
	for rows.Next() {
		var (
			productID int64
			total     int
		)
		if err := rows.Scan(&productID, &total); err != nil {
			return fmt.Errorf("scan quantity held: %w", err)
		}
		if total > s.cap.Limit { // total includes this order's lines
			return &order.QuantityCapError{ProductID: productID, Requested: requested[productID], Held: total - requested[productID], Cap: s.cap}
		}
	}
	return rows.Err()
}

func insertOrder(ctx context.Context, tx *sql.Tx, o order.Order) error {
	const q = `INSERT INTO orders (id, customer_id, status, next_check_at, created_at, updated_at)
		VALUES (?, ?, ?, ?, ?, ?)`
	if _, err := tx.ExecContext(ctx, q, o.ID, o.CustomerID, string(o.Status), nullTime(o.NextCheckAt), o.CreatedAt, o.UpdatedAt); err != nil {
		if mysqldb.IsDuplicate(err) {
			// Order ids are new UUIDs: only this order can have it.
			return fmt.Errorf("insert order: %w: %w", errOrderStored, err)
		}
		return fmt.Errorf("insert order: %w", err)
	}
	return nil
}

func insertLines(ctx context.Context, tx *sql.Tx, orderID string, lines []order.Line) error {
	const q = `INSERT INTO order_lines (order_id, line_no, product_id, quantity) VALUES `
	if len(lines) == 0 {
		return nil
	}
	args := make([]any, 0, 4*len(lines))
	for i, l := range lines {
		args = append(args, orderID, i+1, l.ProductID, l.Quantity)
	}
	if _, err := tx.ExecContext(ctx, q+placeholders(len(lines), "(?, ?, ?, ?)"), args...); err != nil {
		return fmt.Errorf("insert %d order lines: %w", len(lines), err)
	}
	return nil
}

func insertAttempt(ctx context.Context, tx *sql.Tx, orderID string, a order.Attempt) error {
	const q = `INSERT INTO order_attempts (attempt_id, order_id, seq, status, created_at, resolved_at)
		VALUES (?, ?, ?, ?, ?, ?)`
	if _, err := tx.ExecContext(ctx, q, a.ID, orderID, a.Seq, string(a.Status), a.CreatedAt, nullTime(a.ResolvedAt)); err != nil {
		return fmt.Errorf("insert attempt %s: %w", a.ID, err)
	}
	return nil
}

func insertKey(ctx context.Context, tx *sql.Tx, customerID, key, requestHash, orderID string, now time.Time) error {
	const q = `INSERT INTO idempotency_keys (customer_id, idem_key, request_hash, order_id, created_at)
		VALUES (?, ?, ?, ?, ?)`
	if _, err := tx.ExecContext(ctx, q, customerID, key, requestHash, orderID, now); err != nil {
		if mysqldb.IsDuplicate(err) {
			return fmt.Errorf("%w: %w", errKeyTaken, err)
		}
		return fmt.Errorf("insert idempotency key: %w", err)
	}
	return nil
}

// ByKey returns the order created with the customer's idempotency key, if
// any. A stored request hash other than requestHash is
// order.ErrIdempotencyKeyReused.
func (s *Store) ByKey(ctx context.Context, customerID, key, requestHash string) (order.Order, bool, error) {
	const q = `SELECT request_hash, order_id FROM idempotency_keys WHERE customer_id = ? AND idem_key = ?`
	var storedHash, orderID string
	err := s.db.QueryRowContext(ctx, q, customerID, key).Scan(&storedHash, &orderID)
	if errors.Is(err, sql.ErrNoRows) {
		return order.Order{}, false, nil
	}
	if err != nil {
		return order.Order{}, false, fmt.Errorf("read idempotency key: %w", err)
	}
	if storedHash != requestHash {
		return order.Order{}, false, order.ErrIdempotencyKeyReused
	}
	o, err := s.Get(ctx, customerID, orderID)
	if err != nil {
		return order.Order{}, false, err
	}
	return o, true, nil
}

// Get returns the customer's order orderID with its lines and attempts. An
// order of another customer is order.ErrNotFound, like one that does not exist.
// Customer ids compare byte for byte (the tables are utf8mb4_bin), so "Alice"
// never sees "alice"'s orders.
func (s *Store) Get(ctx context.Context, customerID, orderID string) (order.Order, error) {
	const q = `SELECT ` + orderColumns + ` FROM orders WHERE id = ? AND customer_id = ?`
	o, err := s.one(ctx, q, orderID, customerID)
	if err != nil {
		return order.Order{}, fmt.Errorf("get order %s: %w", orderID, err)
	}
	return o, nil
}

// one reads the single order q selects, with its lines and attempts, from
// one snapshot; no row is order.ErrNotFound.
func (s *Store) one(ctx context.Context, q string, args ...any) (order.Order, error) {
	ctx, cancel := context.WithTimeout(ctx, opTimeout)
	defer cancel()
	var o order.Order
	err := s.read(ctx, func(tx *sql.Tx) error {
		orders, err := queryOrders(ctx, tx, q, args...)
		if err != nil {
			return err
		}
		if len(orders) == 0 {
			return order.ErrNotFound
		}
		if err := loadDetails(ctx, tx, orders); err != nil {
			return err
		}
		o = orders[0]
		return nil
	})
	return o, err
}

// List returns up to limit of the customer's orders, newest first (by
// creation time, then id), starting after cursor (empty: from the newest).
// A cursor that this store did not hand out is a *order.ValidationError.
func (s *Store) List(ctx context.Context, customerID, cursor string, limit int) (order.Page, error) {
	const (
		first = `SELECT ` + orderColumns + ` FROM orders
			WHERE customer_id = ?
			ORDER BY created_at DESC, id DESC LIMIT ?`
		after = `SELECT ` + orderColumns + ` FROM orders
			WHERE customer_id = ?
			AND (created_at < ? OR (created_at = ? AND id < ?))
			ORDER BY created_at DESC, id DESC LIMIT ?`
	)
	if limit < 1 {
		return order.Page{}, order.Invalid("limit", "must be positive")
	}
	q, args := first, []any{customerID, limit + 1}
	if cursor != "" {
		c, err := decodeCursor(cursor)
		if err != nil {
			return order.Page{}, err
		}
		q, args = after, []any{customerID, c.createdAt, c.createdAt, c.id, limit + 1}
	}
	ctx, cancel := context.WithTimeout(ctx, opTimeout)
	defer cancel()
	var page order.Page
	err := s.read(ctx, func(tx *sql.Tx) error {
		orders, err := queryOrders(ctx, tx, q, args...)
		if err != nil {
			return err
		}
		if len(orders) > limit {
			orders = orders[:limit]
			last := orders[limit-1]
			page.Next = encodeCursor(cursorPos{createdAt: last.CreatedAt, id: last.ID})
		}
		if err := loadDetails(ctx, tx, orders); err != nil {
			return err
		}
		page.Orders = orders
		return nil
	})
	if err != nil {
		return order.Page{}, fmt.Errorf("list orders of %s: %w", customerID, err)
	}
	return page, nil
}

// Settle applies the product side's definite answer r about attempt attemptID
// of order orderID (see order.Order.Settle) under the order row's lock and
// returns the order as stored. An answer that was already applied, or that
// arrives after the order moved on, changes nothing and returns the current
// order, so Settle is idempotent.
func (s *Store) Settle(ctx context.Context, orderID, attemptID string, r contract.Reservation) (order.Order, error) {
	if r.AttemptID != attemptID {
		return order.Order{}, fmt.Errorf("settle attempt %s: %w: answer names attempt %s", attemptID, order.ErrInvalidReservation, r.AttemptID)
	}
	out, err := s.change(ctx, orderID, func(tx *sql.Tx, cur order.Order, now time.Time) (order.Order, error) {
		next, err := cur.Settle(r, now)
		if err != nil {
			return cur, err
		}
		var writes mysqldb.Script
		if err := writeSettlements(&writes, []order.Order{next}, map[string]bool{attemptID: true}); err != nil {
			return cur, err
		}
		// Stock taken for something the customer did not ask for goes
		// back, decided in this same transaction.
		if next.Status == order.StatusCompensating {
			if err := addCompensation(&writes, next, attemptID, next.Reason, now); err != nil {
				return cur, err
			}
		}
		if err := writes.Exec(ctx, tx); err != nil {
			return cur, fmt.Errorf("write the settlement: %w", err)
		}
		return next, nil
	})
	if errors.Is(err, order.ErrAttemptNotOpen) {
		return out, nil // already applied, or the order moved on
	}
	if err != nil {
		return order.Order{}, fmt.Errorf("settle attempt %s: %w", attemptID, err)
	}
	return out, nil
}

// lockOrder locks the order for update and reads it whole (see lockOrders).
func lockOrder(ctx context.Context, tx *sql.Tx, orderID string) (order.Order, error) {
	orders, err := lockOrders(ctx, tx, []string{orderID})
	if err != nil {
		return order.Order{}, err
	}
	if len(orders) == 0 {
		return order.Order{}, order.ErrNotFound
	}
	return orders[0], nil
}

// writeSettlements stores what order.Order.Settle changed: the attempts it
// settled (the ids in settled, all of orders' attempts), and the status,
// reason, shortages, total, next check and update time of orders and their
// lines' unit prices. Every order and attempt is given once, as it now
// stands, read and changed under the orders' locks (which whoever changes an
// order or its attempts holds). It adds three statements (two when no line
// has a price) to s whatever their number, each linear in it.
func writeSettlements(s *mysqldb.Script, orders []order.Order, settled map[string]bool) error {
	var attempts, rows, lines [][]any
	for _, o := range orders {
		for _, a := range o.Attempts {
			if settled[a.ID] {
				attempts = append(attempts, []any{a.ID, o.ID, a.Seq, string(a.Status), nullTime(a.ResolvedAt)})
			}
		}
		shortages, err := encodeShortages(o.Shortages)
		if err != nil {
			return err
		}
		rows = append(rows, []any{o.ID, o.CustomerID, string(o.Status), nullString(o.Reason), shortages,
			nullInt(o.TotalCents), nullTime(o.NextCheckAt), o.UpdatedAt})
		for i, l := range o.Lines {
			if l.UnitPriceCents != nil {
				lines = append(lines, []any{o.ID, i + 1, l.ProductID, l.Quantity, *l.UnitPriceCents})
			}
		}
	}
	if len(attempts) > 0 {
		updateRows(s, "order_attempts", []string{"attempt_id", "order_id", "seq", "status", "resolved_at"},
			[]string{"status", "resolved_at"}, attempts)
	}
	if len(rows) > 0 {
		updateRows(s, "orders", []string{"id", "customer_id", "status", "reason", "shortages", "total_cents", "next_check_at", "updated_at"},
			[]string{"status", "reason", "shortages", "total_cents", "next_check_at", "updated_at"}, rows)
	}
	if len(lines) > 0 {
		updateRows(s, "order_lines", []string{"order_id", "line_no", "product_id", "quantity", "unit_price_cents"},
			[]string{"unit_price_cents"}, lines)
	}
	return nil
}

// updateRows adds to s a statement that sets the columns update of existing
// rows of table to the values of rows, each a row of cols starting with the
// primary key: INSERT ... ON DUPLICATE KEY UPDATE, which finds each row by its
// key. The caller knows every row exists (it holds their locks), so nothing
// is inserted; the columns that are not the key or updated are given their
// current values only to satisfy the insert's NOT NULL columns. One statement
// costs time linear in the rows, where an UPDATE with a CASE per column
// compares every row with every key.
func updateRows(s *mysqldb.Script, table string, cols, update []string, rows [][]any) {
	var b strings.Builder
	b.WriteString("INSERT INTO " + table + " (" + strings.Join(cols, ", ") + ") VALUES ")
	b.WriteString(placeholders(len(rows), "("+placeholders(len(cols), "?")+")"))
	b.WriteString(" ON DUPLICATE KEY UPDATE ")
	for i, col := range update {
		if i > 0 {
			b.WriteString(", ")
		}
		b.WriteString(col + " = VALUES(" + col + ")")
	}
	args := make([]any, 0, len(rows)*len(cols))
	for _, r := range rows {
		args = append(args, r...)
	}
	s.Add(b.String(), args...)
}

// RecordUnknown notes why the outcome of the order's open attempt is unknown
// (errText, cut to 500 characters) and leaves the order PENDING for the
// recovery worker. It changes nothing once the order has left PENDING.
func (s *Store) RecordUnknown(ctx context.Context, orderID, errText string) error {
	// updated_at is kept as it is: it tells clients when the order's
	// representation last changed, and last_error is not part of it.
	const q = `UPDATE orders SET last_error = ?, updated_at = updated_at WHERE id = ? AND status = 'PENDING'`
	ctx, cancel := context.WithTimeout(ctx, opTimeout)
	defer cancel()
	err := mysqldb.InTx(ctx, s.db, func(tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx, q, truncate(errText, maxLastError), orderID)
		return err
	})
	if err != nil {
		return fmt.Errorf("record unknown outcome of order %s: %w", orderID, err)
	}
	return nil
}

// Ready reports whether the database answers and has every migration of the
// orders schema applied.
func (s *Store) Ready(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, opTimeout)
	defer cancel()
	if err := s.db.PingContext(ctx); err != nil {
		return fmt.Errorf("ping orders database: %w", err)
	}
	current, err := schema.Current(ctx, s.db, schema.Orders)
	if err != nil {
		return fmt.Errorf("check orders migrations: %w", err)
	}
	if !current {
		return errors.New("orders migrations are not all applied")
	}
	return nil
}

// read runs fn in a read-only REPEATABLE READ transaction, so an order, its
// lines and its attempts come from one snapshot even while Settle commits.
func (s *Store) read(ctx context.Context, fn func(*sql.Tx) error) error {
	tx, err := s.db.BeginTx(ctx, &sql.TxOptions{Isolation: sql.LevelRepeatableRead, ReadOnly: true})
	if err != nil {
		return fmt.Errorf("begin read: %w", err)
	}
	if err := fn(tx); err != nil {
		_ = tx.Rollback()
		return err
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("end read: %w", err)
	}
	return nil
}

func truncate(s string, n int) string {
	s = strings.ToValidUTF8(s, "?")
	if utf8.RuneCountInString(s) <= n {
		return s
	}
	return string([]rune(s)[:n])
}

func placeholders(n int, group string) string {
	return strings.TrimSuffix(strings.Repeat(group+", ", n), ", ")
}

func nullTime(t *time.Time) sql.NullTime {
	if t == nil {
		return sql.NullTime{}
	}
	return sql.NullTime{Time: *t, Valid: true}
}

func nullInt(v *int64) sql.NullInt64 {
	if v == nil {
		return sql.NullInt64{}
	}
	return sql.NullInt64{Int64: *v, Valid: true}
}

func nullString(s string) sql.NullString {
	return sql.NullString{String: s, Valid: s != ""}
}

func encodeShortages(s []contract.Shortage) (any, error) {
	if len(s) == 0 {
		return nil, nil
	}
	b, err := json.Marshal(s)
	if err != nil {
		return nil, fmt.Errorf("encode shortages: %w", err)
	}
	return string(b), nil
}
