package mysql

import (
	"context"
	"database/sql"
	"fmt"

	"github.com/stockfence/stockfence/orderservice/internal/order"
)

// Backlog counts the unsettled orders by status and the unsent outbox
// messages, each with the creation time of the oldest. Both queries read
// index ranges only as long as what they count (ix_orders_status,
// ix_outbox_due), so they are cheap enough to run at every metrics scrape.
func (s *Store) Backlog(ctx context.Context) (order.Backlog, error) {
	const (
		unsettled = `SELECT status, COUNT(*), MIN(created_at) FROM orders
			WHERE status IN ('PENDING', 'COMPENSATING', 'CANCELLING') GROUP BY status`
		unsent = `SELECT COUNT(*), MIN(created_at) FROM outbox WHERE sent_at IS NULL`
	)
	ctx, cancel := context.WithTimeout(ctx, opTimeout)
	defer cancel()
	b := order.Backlog{Unsettled: make(map[order.Status]int64, 3)}
	rows, err := s.db.QueryContext(ctx, unsettled)
	if err != nil {
		return order.Backlog{}, fmt.Errorf("count unsettled orders: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var (
			status string
			n      int64
			oldest sql.NullTime
		)
		if err := rows.Scan(&status, &n, &oldest); err != nil {
			return order.Backlog{}, fmt.Errorf("scan unsettled orders: %w", err)
		}
		b.Unsettled[order.Status(status)] = n
		if oldest.Valid && (b.OldestUnsettled.IsZero() || oldest.Time.Before(b.OldestUnsettled)) {
			b.OldestUnsettled = oldest.Time
		}
	}
	if err := rows.Err(); err != nil {
		return order.Backlog{}, fmt.Errorf("read unsettled orders: %w", err)
	}
	if err := rows.Close(); err != nil {
		return order.Backlog{}, fmt.Errorf("read unsettled orders: %w", err)
	}
	var oldest sql.NullTime
	if err := s.db.QueryRowContext(ctx, unsent).Scan(&b.Unsent, &oldest); err != nil {
		return order.Backlog{}, fmt.Errorf("count unsent outbox messages: %w", err)
	}
	if oldest.Valid {
		b.OldestUnsent = oldest.Time
	}
	return b, nil
}
