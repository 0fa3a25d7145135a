package mysql

import (
	"context"
	"database/sql"
	"fmt"

	"github.com/stockfence/stockfence/orderservice/internal/order"
)

// OrdersAfter returns up to limit orders, whoever their customer, with ids
// greater than afterID (empty: from the first), in id order, with their lines
// and attempts. Each page is one snapshot; paging on with the last id
// returned reaches every order, so reconciliation can read them all without
// holding one long transaction. Fewer than limit orders means there are no
// more.
func (s *Store) OrdersAfter(ctx context.Context, afterID string, limit int) ([]order.Order, error) {
	const q = `SELECT ` + orderColumns + ` FROM orders WHERE id > ? ORDER BY id LIMIT ?`
	if limit < 1 {
		return nil, order.Invalid("limit", "must be positive")
	}
	ctx, cancel := context.WithTimeout(ctx, opTimeout)
	defer cancel()
	var orders []order.Order
	err := s.read(ctx, func(tx *sql.Tx) error {
		var err error
		if orders, err = queryOrders(ctx, tx, q, afterID, limit); err != nil {
			return err
		}
		return loadDetails(ctx, tx, orders)
	})
	if err != nil {
		return nil, fmt.Errorf("list orders after %q: %w", afterID, err)
	}
	return orders, nil
}
