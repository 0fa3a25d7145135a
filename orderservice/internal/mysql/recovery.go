package mysql

import (
	"context"
	"database/sql"
	"fmt"
	"time"

	"github.com/stockfence/stockfence/orderservice/internal/order"
	"github.com/stockfence/stockfence/shared/mysqldb"
)

// Load returns an order whoever its customer is (for the recovery worker and
// the ops API), or order.ErrNotFound.
func (s *Store) Load(ctx context.Context, orderID string) (order.Order, error) {
	const q = `SELECT ` + orderColumns + ` FROM orders WHERE id = ?`
	o, err := s.one(ctx, q, orderID)
	if err != nil {
		return order.Order{}, fmt.Errorf("load order %s: %w", orderID, err)
	}
	return o, nil
}

// StartAttempt records a new SENT attempt attemptID for the order under its
// row lock (see order.Order.StartAttempt), so the request path and any
// recovery worker can never open two attempts at once. nextCheckAt is when
// the worker may take over. If someone else moved the order first, the error
// wraps order.ErrAttemptNotOpen and the order is returned as it stands.
func (s *Store) StartAttempt(ctx context.Context, orderID, attemptID string, nextCheckAt time.Time) (order.Order, error) {
	const update = `UPDATE orders SET next_check_at = ?, updated_at = ? WHERE id = ?`
	return s.change(ctx, orderID, func(tx *sql.Tx, cur order.Order, now time.Time) (order.Order, error) {
		next, err := cur.StartAttempt(attemptID, now, nextCheckAt)
		if err != nil {
			return cur, err
		}
		if err := insertAttempt(ctx, tx, orderID, next.Attempts[len(next.Attempts)-1]); err != nil {
			return cur, err
		}
		if _, err := tx.ExecContext(ctx, update, nextCheckAt, now, orderID); err != nil {
			return cur, fmt.Errorf("update order: %w", err)
		}
		return next, nil
	})
}

// GiveUp fails the order with order.ReasonProductUnavailable under its row
// lock, when every attempt is settled as not applied (see
// order.Order.GiveUp); otherwise the error wraps order.ErrAttemptNotOpen.
func (s *Store) GiveUp(ctx context.Context, orderID string) (order.Order, error) {
	const update = `UPDATE orders SET status = ?, reason = ?, next_check_at = NULL, updated_at = ? WHERE id = ?`
	return s.change(ctx, orderID, func(tx *sql.Tx, cur order.Order, now time.Time) (order.Order, error) {
		next, err := cur.GiveUp(now)
		if err != nil {
			return cur, err
		}
		if _, err := tx.ExecContext(ctx, update, string(next.Status), next.Reason, now, orderID); err != nil {
			return cur, fmt.Errorf("update order: %w", err)
		}
		return next, nil
	})
}

// change runs fn on the order read under its row lock, in one transaction.
// When fn fails, the transaction is rolled back and the order is returned as
// it was read, with fn's error.
func (s *Store) change(ctx context.Context, orderID string, fn func(*sql.Tx, order.Order, time.Time) (order.Order, error)) (order.Order, error) {
	ctx, cancel := context.WithTimeout(ctx, opTimeout)
	defer cancel()
	var out order.Order
	err := mysqldb.InTx(ctx, s.db, func(tx *sql.Tx) error {
		cur, err := lockOrder(ctx, tx, orderID)
		if err != nil {
			return err
		}
		out, err = fn(tx, cur, time.Now().UTC().Truncate(time.Microsecond))
		return err
	})
	if err != nil {
		return out, fmt.Errorf("order %s: %w", orderID, err)
	}
	return out, nil
}

// ClaimDue claims up to limit unsettled orders whose next_check_at has come, for
// one recovery worker: it locks them with FOR UPDATE SKIP LOCKED (so several
// workers never wait on, or take, each other's orders), moves their
// next_check_at by lease so no other worker takes them while this one works,
// and returns their ids, most overdue first. A worker that dies leaves them to
// be claimed again when the lease ends.
func (s *Store) ClaimDue(ctx context.Context, limit int, lease time.Duration) ([]string, error) {
	const (
		claim = `SELECT id FROM orders WHERE next_check_at <= ? AND status IN ('PENDING', 'CANCELLING', 'COMPENSATING')
			ORDER BY next_check_at LIMIT ? FOR UPDATE SKIP LOCKED`
		extend = `UPDATE orders SET next_check_at = ? WHERE id IN `
	)
	ctx, cancel := context.WithTimeout(ctx, opTimeout)
	defer cancel()
	var ids []string
	err := mysqldb.InTx(ctx, s.db, func(tx *sql.Tx) error {
		ids = ids[:0]
		now := time.Now().UTC()
		rows, err := tx.QueryContext(ctx, claim, now, limit)
		if err != nil {
			return fmt.Errorf("select due orders: %w", err)
		}
		defer rows.Close()
		for rows.Next() {
			var id string
			if err := rows.Scan(&id); err != nil {
				return fmt.Errorf("scan due order: %w", err)
			}
			ids = append(ids, id)
		}
		if err := rows.Err(); err != nil {
			return fmt.Errorf("read due orders: %w", err)
		}
		if err := rows.Close(); err != nil {
			return err
		}
		if len(ids) == 0 {
			return nil
		}
		args := []any{now.Add(lease)}
		for _, id := range ids {
			args = append(args, id)
		}
		if _, err := tx.ExecContext(ctx, extend+"("+placeholders(len(ids), "?")+")", args...); err != nil {
			return fmt.Errorf("lease due orders: %w", err)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("claim due orders: %w", err)
	}
	return ids, nil
}

// RecordCheck notes an unsuccessful check of an unsettled order: one more
// check, why (errText, cut to 500 characters), and when to look again. An
// order settled meanwhile is not touched.
func (s *Store) RecordCheck(ctx context.Context, orderID, errText string, nextCheckAt time.Time) error {
	const q = `UPDATE orders SET checks = checks + 1, last_error = ?, next_check_at = ?, updated_at = updated_at
		WHERE id = ? AND status IN ('PENDING', 'CANCELLING', 'COMPENSATING')`
	ctx, cancel := context.WithTimeout(ctx, opTimeout)
	defer cancel()
	if _, err := s.db.ExecContext(ctx, q, truncate(errText, maxLastError), nextCheckAt, orderID); err != nil {
		return fmt.Errorf("record check of order %s: %w", orderID, err)
	}
	return nil
}

// Recheck makes an unsettled order due now, so the recovery worker looks at
// it at its next pass (a PENDING order is resolved, a CANCELLING or
// COMPENSATING one has its compensation sent again). A settled order is
// order.ErrSettled, an unknown one order.ErrNotFound.
func (s *Store) Recheck(ctx context.Context, orderID string) error {
	const due = `UPDATE orders SET next_check_at = ?, updated_at = updated_at WHERE id = ?`
	_, err := s.change(ctx, orderID, func(tx *sql.Tx, cur order.Order, now time.Time) (order.Order, error) {
		if cur.Status.Settled() {
			return cur, order.ErrSettled
		}
		if _, err := tx.ExecContext(ctx, due, now, orderID); err != nil {
			return cur, fmt.Errorf("recheck: %w", err)
		}
		return cur, nil
	})
	return err
}

// ResendCompensation makes the order's compensation, if it was sent, due
// for publishing again: the recovery worker's answer to a result that did not
// come. The product side applies a compensation at most once and answers
// every copy.
func (s *Store) ResendCompensation(ctx context.Context, orderID string) error {
	const q = `UPDATE outbox SET sent_at = NULL, next_attempt_at = ? WHERE order_id = ? AND sent_at IS NOT NULL`
	ctx, cancel := context.WithTimeout(ctx, opTimeout)
	defer cancel()
	if _, err := s.db.ExecContext(ctx, q, time.Now().UTC(), orderID); err != nil {
		return fmt.Errorf("resend compensation of order %s: %w", orderID, err)
	}
	return nil
}

// Orders returns up to limit orders in any of statuses, oldest first, with
// their lines and attempts: the ops view of what is not settled.
func (s *Store) Orders(ctx context.Context, statuses []order.Status, limit int) ([]order.Order, error) {
	if len(statuses) == 0 {
		return nil, nil
	}
	q := `SELECT ` + orderColumns + ` FROM orders WHERE status IN (` + placeholders(len(statuses), "?") + `)
		ORDER BY created_at, id LIMIT ?`
	args := make([]any, 0, len(statuses)+1)
	for _, st := range statuses {
		args = append(args, string(st))
	}
	args = append(args, limit)
	ctx, cancel := context.WithTimeout(ctx, opTimeout)
	defer cancel()
	var orders []order.Order
	err := s.read(ctx, func(tx *sql.Tx) error {
		var err error
		if orders, err = queryOrders(ctx, tx, q, args...); err != nil {
			return err
		}
		return loadDetails(ctx, tx, orders)
	})
	if err != nil {
		return nil, fmt.Errorf("list orders by status: %w", err)
	}
	return orders, nil
}
