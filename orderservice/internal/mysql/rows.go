package mysql

import (
	"context"
	"database/sql"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"github.com/google/uuid"

	"github.com/stockfence/stockfence/orderservice/internal/order"
	"github.com/stockfence/stockfence/shared/mysqldb"
)

// orderColumns are the columns scanned by orderRow, in its order.
const orderColumns = `id, customer_id, status, reason, shortages, total_cents, next_check_at, checks, last_error, created_at, updated_at`

type orderRow struct {
	ID          string
	CustomerID  string
	Status      string
	Reason      sql.NullString
	Shortages   []byte
	TotalCents  sql.NullInt64
	NextCheckAt sql.NullTime
	Checks      int
	LastError   sql.NullString
	CreatedAt   time.Time
	UpdatedAt   time.Time
}

func (r *orderRow) dest() []any {
	return []any{&r.ID, &r.CustomerID, &r.Status, &r.Reason, &r.Shortages, &r.TotalCents,
		&r.NextCheckAt, &r.Checks, &r.LastError, &r.CreatedAt, &r.UpdatedAt}
}

func (r *orderRow) toOrder() (order.Order, error) {
	o := order.Order{
		ID:         r.ID,
		CustomerID: r.CustomerID,
		Status:     order.Status(r.Status),
		Reason:     r.Reason.String,
		Checks:     r.Checks,
		LastError:  r.LastError.String,
		CreatedAt:  r.CreatedAt.UTC(),
		UpdatedAt:  r.UpdatedAt.UTC(),
	}
	if r.TotalCents.Valid {
		o.TotalCents = &r.TotalCents.Int64
	}
	if r.NextCheckAt.Valid {
		t := r.NextCheckAt.Time.UTC()
		o.NextCheckAt = &t
	}
	if len(r.Shortages) > 0 {
		if err := json.Unmarshal(r.Shortages, &o.Shortages); err != nil {
			return order.Order{}, fmt.Errorf("decode shortages of order %s: %w", r.ID, err)
		}
	}
	return o, nil
}

type lineRow struct {
	OrderID        string
	LineNo         int
	ProductID      int64
	Quantity       int
	UnitPriceCents sql.NullInt64
}

type attemptRow struct {
	AttemptID  string
	OrderID    string
	Seq        int
	Status     string
	CreatedAt  time.Time
	ResolvedAt sql.NullTime
}

func queryOrders(ctx context.Context, tx *sql.Tx, q string, args ...any) ([]order.Order, error) {
	rows, err := tx.QueryContext(ctx, q, args...)
	if err != nil {
		return nil, fmt.Errorf("query orders: %w", err)
	}
	defer rows.Close()
	orders, err := scanOrders(rows)
	if err != nil {
		return nil, err
	}
	if err := rows.Close(); err != nil {
		return nil, fmt.Errorf("close orders: %w", err)
	}
	return orders, nil
}

// scanOrders reads the orders of rows' current result set.
func scanOrders(rows *sql.Rows) ([]order.Order, error) {
	var orders []order.Order
	for rows.Next() {
		var r orderRow
		if err := rows.Scan(r.dest()...); err != nil {
			return nil, fmt.Errorf("scan order: %w", err)
		}
		o, err := r.toOrder()
		if err != nil {
			return nil, err
		}
		orders = append(orders, o)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("read orders: %w", err)
	}
	return orders, nil
}

// lockOrders locks the orders ids (sorted, distinct) for update, in id
// order, and reads their lines and attempts, all in one round trip:
// whoever changes an order or its attempts holds its lock, so the reads
// after the lock are consistent. Ids of no order are left out.
func lockOrders(ctx context.Context, tx mysqldb.Querier, ids []string) ([]order.Order, error) {
	args := make([]any, len(ids))
	for i, id := range ids {
		args[i] = id
	}
	var s mysqldb.Script
	// FORCE INDEX: with a long IN list on a small table the optimizer may
	// otherwise scan it (and lock every row it reads).
	s.Add(`SELECT `+orderColumns+` FROM orders FORCE INDEX (PRIMARY) WHERE id IN (`+placeholders(len(ids), "?")+`) ORDER BY id FOR UPDATE`, args...)
	addDetailQueries(&s, args)
	rows, err := s.Query(ctx, tx)
	if err != nil {
		return nil, fmt.Errorf("lock %d orders: %w", len(ids), err)
	}
	defer rows.Close()
	orders, err := scanOrders(rows)
	if err != nil {
		return nil, err
	}
	if err := nextResultSet(rows, "order lines"); err != nil {
		return nil, err
	}
	if err := scanDetails(rows, orders); err != nil {
		return nil, err
	}
	return orders, rows.Close()
}

// loadDetails fills in the lines (by line number) and attempts (by seq) of
// orders, in one round trip.
func loadDetails(ctx context.Context, tx *sql.Tx, orders []order.Order) error {
	if len(orders) == 0 {
		return nil
	}
	ids := make([]any, len(orders))
	for i, o := range orders {
		ids[i] = o.ID
	}
	var s mysqldb.Script
	addDetailQueries(&s, ids)
	rows, err := s.Query(ctx, tx)
	if err != nil {
		return fmt.Errorf("query order lines and attempts: %w", err)
	}
	defer rows.Close()
	if err := scanDetails(rows, orders); err != nil {
		return err
	}
	return rows.Close()
}

// addDetailQueries adds the reads of the lines and then the attempts of the
// orders ids to s. They name their index: with the long IN list of a batch
// the optimizer may otherwise choose to scan a small table.
func addDetailQueries(s *mysqldb.Script, ids []any) {
	in := "(" + placeholders(len(ids), "?") + ")"
	s.Add(`SELECT order_id, line_no, product_id, quantity, unit_price_cents FROM order_lines FORCE INDEX (PRIMARY) WHERE order_id IN `+in+` ORDER BY order_id, line_no`, ids...)
	s.Add(`SELECT attempt_id, order_id, seq, status, created_at, resolved_at FROM order_attempts FORCE INDEX (uq_order_attempts_seq) WHERE order_id IN `+in+` ORDER BY order_id, seq`, ids...)
}

// scanDetails reads what addDetailQueries asked for, the lines from rows'
// current result set and the attempts from the next, into orders.
func scanDetails(rows *sql.Rows, orders []order.Order) error {
	index := make(map[string]int, len(orders))
	for i, o := range orders {
		index[o.ID] = i
	}
	for rows.Next() {
		var r lineRow
		if err := rows.Scan(&r.OrderID, &r.LineNo, &r.ProductID, &r.Quantity, &r.UnitPriceCents); err != nil {
			return fmt.Errorf("scan order line: %w", err)
		}
		i, ok := index[r.OrderID]
		if !ok {
			continue
		}
		l := order.Line{ProductID: r.ProductID, Quantity: r.Quantity}
		if r.UnitPriceCents.Valid {
			p := r.UnitPriceCents.Int64
			l.UnitPriceCents = &p
		}
		orders[i].Lines = append(orders[i].Lines, l)
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("read order lines: %w", err)
	}
	if err := nextResultSet(rows, "order attempts"); err != nil {
		return err
	}
	for rows.Next() {
		var r attemptRow
		if err := rows.Scan(&r.AttemptID, &r.OrderID, &r.Seq, &r.Status, &r.CreatedAt, &r.ResolvedAt); err != nil {
			return fmt.Errorf("scan order attempt: %w", err)
		}
		i, ok := index[r.OrderID]
		if !ok {
			continue
		}
		a := order.Attempt{ID: r.AttemptID, Seq: r.Seq, Status: order.AttemptStatus(r.Status), CreatedAt: r.CreatedAt.UTC()}
		if r.ResolvedAt.Valid {
			t := r.ResolvedAt.Time.UTC()
			a.ResolvedAt = &t
		}
		orders[i].Attempts = append(orders[i].Attempts, a)
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("read order attempts: %w", err)
	}
	return nil
}

// nextResultSet moves rows on to the result set of what, which must come.
func nextResultSet(rows *sql.Rows, what string) error {
	if rows.NextResultSet() {
		return nil
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("read %s: %w", what, err)
	}
	return fmt.Errorf("read %s: no result", what)
}

// cursorPos is the position after which a page of List starts: the last
// order of the previous page.
type cursorPos struct {
	createdAt time.Time
	id        string
}

// encodeCursor returns the opaque cursor of pos: URL-safe base64 of
// "<created_at RFC 3339 with microseconds> <order id>".
func encodeCursor(pos cursorPos) string {
	raw := pos.createdAt.UTC().Format("2006-01-02T15:04:05.000000Z07:00") + " " + pos.id
	return base64.RawURLEncoding.EncodeToString([]byte(raw))
}

func decodeCursor(s string) (cursorPos, error) {
	invalid := order.Invalid("cursor", "is not a cursor returned by this service")
	raw, err := base64.RawURLEncoding.DecodeString(s)
	if err != nil {
		return cursorPos{}, invalid
	}
	ts, id, ok := strings.Cut(string(raw), " ")
	if !ok {
		return cursorPos{}, invalid
	}
	createdAt, err := time.Parse(time.RFC3339Nano, ts)
	if err != nil {
		return cursorPos{}, invalid
	}
	if _, err := uuid.Parse(id); err != nil || len(id) != 36 {
		return cursorPos{}, invalid
	}
	return cursorPos{createdAt: createdAt.UTC(), id: id}, nil
}
