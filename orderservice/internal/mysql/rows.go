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
	if err := rows.Close(); err != nil {
		return nil, fmt.Errorf("close orders: %w", err)
	}
	return orders, nil
}

// loadDetails fills in the lines (by line number) and attempts (by seq) of
// orders with one query each. The queries name their index: with the long
// IN list of a batch the optimizer may otherwise choose to scan a small
// table.
func loadDetails(ctx context.Context, tx *sql.Tx, orders []order.Order) error {
	if len(orders) == 0 {
		return nil
	}
	index := make(map[string]int, len(orders))
	ids := make([]any, len(orders))
	for i, o := range orders {
		index[o.ID] = i
		ids[i] = o.ID
	}
	in := "(" + placeholders(len(ids), "?") + ")"
	if err := loadLines(ctx, tx, in, ids, func(r lineRow) {
		o := &orders[index[r.OrderID]]
		l := order.Line{ProductID: r.ProductID, Quantity: r.Quantity}
		if r.UnitPriceCents.Valid {
			p := r.UnitPriceCents.Int64
			l.UnitPriceCents = &p
		}
		o.Lines = append(o.Lines, l)
	}); err != nil {
		return err
	}
	return loadAttempts(ctx, tx, in, ids, func(r attemptRow) {
		o := &orders[index[r.OrderID]]
		a := order.Attempt{ID: r.AttemptID, Seq: r.Seq, Status: order.AttemptStatus(r.Status), CreatedAt: r.CreatedAt.UTC()}
		if r.ResolvedAt.Valid {
			t := r.ResolvedAt.Time.UTC()
			a.ResolvedAt = &t
		}
		o.Attempts = append(o.Attempts, a)
	})
}

func loadLines(ctx context.Context, tx *sql.Tx, in string, ids []any, add func(lineRow)) error {
	const q = `SELECT order_id, line_no, product_id, quantity, unit_price_cents FROM order_lines FORCE INDEX (PRIMARY) WHERE order_id IN `
	rows, err := tx.QueryContext(ctx, q+in+` ORDER BY order_id, line_no`, ids...)
	if err != nil {
		return fmt.Errorf("query order lines: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var r lineRow
		if err := rows.Scan(&r.OrderID, &r.LineNo, &r.ProductID, &r.Quantity, &r.UnitPriceCents); err != nil {
			return fmt.Errorf("scan order line: %w", err)
		}
		add(r)
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("read order lines: %w", err)
	}
	return rows.Close()
}

func loadAttempts(ctx context.Context, tx *sql.Tx, in string, ids []any, add func(attemptRow)) error {
	const q = `SELECT attempt_id, order_id, seq, status, created_at, resolved_at FROM order_attempts FORCE INDEX (uq_order_attempts_seq) WHERE order_id IN `
	rows, err := tx.QueryContext(ctx, q+in+` ORDER BY order_id, seq`, ids...)
	if err != nil {
		return fmt.Errorf("query order attempts: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var r attemptRow
		if err := rows.Scan(&r.AttemptID, &r.OrderID, &r.Seq, &r.Status, &r.CreatedAt, &r.ResolvedAt); err != nil {
			return fmt.Errorf("scan order attempt: %w", err)
		}
		add(r)
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("read order attempts: %w", err)
	}
	return rows.Close()
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
