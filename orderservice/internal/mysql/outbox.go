package mysql

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/google/uuid"

	"github.com/stockfence/stockfence/orderservice/internal/order"
	"github.com/stockfence/stockfence/shared/contract"
	"github.com/stockfence/stockfence/shared/mysqldb"
)

// Cancel cancels the customer's order under its row lock (see
// order.Order.Cancel). When stock may be held, the order becomes CANCELLING
// and the compensation is written to the outbox in the same transaction, so
// it is published if and only if the cancellation committed; the order is
// due for the recovery worker after order.ResultWait, which sends the
// compensation again if no result came. Another customer's order is
// order.ErrNotFound.
func (s *Store) Cancel(ctx context.Context, customerID, orderID string) (order.Order, error) {
	const update = `UPDATE orders SET status = ?, next_check_at = ?, updated_at = ? WHERE id = ?`
	return s.change(ctx, orderID, func(tx *sql.Tx, cur order.Order, now time.Time) (order.Order, error) {
		if cur.CustomerID != customerID {
			return cur, order.ErrNotFound
		}
		next, attemptID, err := cur.Cancel(now)
		if err != nil || next.Status == cur.Status {
			return next, err
		}
		if _, err := tx.ExecContext(ctx, update, string(next.Status), nullTime(next.NextCheckAt), now, orderID); err != nil {
			return cur, fmt.Errorf("update order: %w", err)
		}
		if attemptID != "" {
			if err := insertCompensation(ctx, tx, next, attemptID, order.CompensateCancelled, now); err != nil {
				return cur, err
			}
		}
		return next, nil
	})
}

// ApplyResult applies a compensation result under the order's row lock (see
// order.Order.ApplyResult): CANCELLING -> CANCELLED, COMPENSATING -> FAILED.
// A result that was already applied, or that the order does not wait for,
// changes nothing; an unknown order is order.ErrNotFound.
func (s *Store) ApplyResult(ctx context.Context, r contract.CompensationResult) (order.Order, error) {
	const (
		attemptQ = `UPDATE order_attempts SET status = ?, resolved_at = ? WHERE attempt_id = ?`
		orderQ   = `UPDATE orders SET status = ?, next_check_at = NULL, updated_at = ? WHERE id = ?`
	)
	o, err := s.change(ctx, r.OrderID, func(tx *sql.Tx, cur order.Order, now time.Time) (order.Order, error) {
		next, err := cur.ApplyResult(r.AttemptID, r.Status, now)
		if err != nil {
			return cur, err
		}
		for _, a := range next.Attempts {
			if a.ID == r.AttemptID {
				if _, err := tx.ExecContext(ctx, attemptQ, string(a.Status), nullTime(a.ResolvedAt), a.ID); err != nil {
					return cur, fmt.Errorf("update attempt: %w", err)
				}
			}
		}
		if _, err := tx.ExecContext(ctx, orderQ, string(next.Status), now, next.ID); err != nil {
			return cur, fmt.Errorf("update order: %w", err)
		}
		return next, nil
	})
	if errors.Is(err, order.ErrAttemptNotOpen) {
		return o, nil
	}
	return o, err
}

// insertCompensation writes the compensation of attemptID to the outbox.
func insertCompensation(ctx context.Context, tx *sql.Tx, o order.Order, attemptID, reason string, now time.Time) error {
	var s mysqldb.Script
	if err := addCompensation(&s, o, attemptID, reason, now); err != nil {
		return err
	}
	if err := s.Exec(ctx, tx); err != nil {
		return fmt.Errorf("insert outbox message: %w", err)
	}
	return nil
}

// addCompensation adds the outbox insert of attemptID's compensation to s.
func addCompensation(s *mysqldb.Script, o order.Order, attemptID, reason string, now time.Time) error {
	const q = `INSERT INTO outbox (message_id, topic, msg_key, payload, order_id, created_at, next_attempt_at)
		VALUES (?, ?, ?, ?, ?, ?, ?)`
	id, err := uuid.NewV7()
	if err != nil {
		return fmt.Errorf("message id: %w", err)
	}
	payload, err := json.Marshal(o.Compensation(id.String(), attemptID, reason, now))
	if err != nil {
		return fmt.Errorf("encode compensation: %w", err)
	}
	s.Add(q, id.String(), contract.TopicCompensations, attemptID, string(payload), o.ID, now, now)
	return nil
}

// ClaimOutbox claims up to limit unsent messages that are due, oldest first,
// with FOR UPDATE SKIP LOCKED (several relays never take the same row), and
// leases them for lease: no other relay takes them before it ends, and a
// relay that dies leaves them to be claimed again.
func (s *Store) ClaimOutbox(ctx context.Context, limit int, lease time.Duration) ([]order.OutboxMessage, error) {
	const (
		claim = `SELECT id, topic, msg_key, payload, attempts FROM outbox
			WHERE sent_at IS NULL AND next_attempt_at <= ? ORDER BY id LIMIT ? FOR UPDATE SKIP LOCKED`
		extend = `UPDATE outbox SET next_attempt_at = ? WHERE id IN `
	)
	ctx, cancel := context.WithTimeout(ctx, opTimeout)
	defer cancel()
	var msgs []order.OutboxMessage
	err := mysqldb.InTx(ctx, s.db, func(tx *sql.Tx) error {
		msgs = msgs[:0]
		now := time.Now().UTC()
		rows, err := tx.QueryContext(ctx, claim, now, limit)
		if err != nil {
			return fmt.Errorf("select outbox: %w", err)
		}
		defer rows.Close()
		for rows.Next() {
			var m order.OutboxMessage
			if err := rows.Scan(&m.ID, &m.Topic, &m.Key, &m.Payload, &m.Attempts); err != nil {
				return fmt.Errorf("scan outbox: %w", err)
			}
			msgs = append(msgs, m)
		}
		if err := rows.Err(); err != nil {
			return fmt.Errorf("read outbox: %w", err)
		}
		if err := rows.Close(); err != nil || len(msgs) == 0 {
			return err
		}
		args := []any{now.Add(lease)}
		for _, m := range msgs {
			args = append(args, m.ID)
		}
		if _, err := tx.ExecContext(ctx, extend+"("+placeholders(len(msgs), "?")+")", args...); err != nil {
			return fmt.Errorf("lease outbox: %w", err)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("claim outbox: %w", err)
	}
	return msgs, nil
}

// MarkSent records that the broker acknowledged message id.
func (s *Store) MarkSent(ctx context.Context, id int64) error {
	const q = `UPDATE outbox SET sent_at = ?, attempts = attempts + 1, last_error = NULL WHERE id = ?`
	ctx, cancel := context.WithTimeout(ctx, opTimeout)
	defer cancel()
	if _, err := s.db.ExecContext(ctx, q, time.Now().UTC(), id); err != nil {
		return fmt.Errorf("mark outbox %d sent: %w", id, err)
	}
	return nil
}

// MarkFailed records a failed publish of message id and when to try again.
func (s *Store) MarkFailed(ctx context.Context, id int64, errText string, next time.Time) error {
	const q = `UPDATE outbox SET attempts = attempts + 1, last_error = ?, next_attempt_at = ? WHERE id = ?`
	ctx, cancel := context.WithTimeout(ctx, opTimeout)
	defer cancel()
	if _, err := s.db.ExecContext(ctx, q, truncate(errText, maxLastError), next, id); err != nil {
		return fmt.Errorf("mark outbox %d failed: %w", id, err)
	}
	return nil
}
