package mysql

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/stockfence/stockfence/orderservice/internal/order"
	"github.com/stockfence/stockfence/shared/contract"
	"github.com/stockfence/stockfence/shared/mysqldb"
)

// CreateRequest is one Create call of a batch.
type CreateRequest struct {
	Order                order.Order
	IdemKey, RequestHash string
}

// errBatchCapped refuses a batch of creates on a store with a quantity cap.
var errBatchCapped = errors.New("create batch: the quantity cap needs each order's own transaction")

// CreateBatch stores every request's order (with lines, attempts,
// idempotency key) in one transaction with one multi-row INSERT per table
// (orders, order_lines, order_attempts, and idempotency_keys for the
// requests that carry a key), so that it is exactly as if Create had been
// called for each and each had created its order.
//
// It is all or nothing: any error (a duplicate idempotency key, also two
// requests of the batch sharing one key, a lost connection, ...) writes
// nothing (unless the commit's own fate is unknown, *mysqldb.CommitError)
// and is returned; the caller then calls Create for each request on
// its own, which settles key races. A duplicate's error keeps the server's
// error in its chain (mysqldb.IsDuplicate). A store with a quantity cap
// refuses every batch, writing nothing: the cap needs Create's per-customer
// lock.
func (s *Store) CreateBatch(ctx context.Context, reqs []CreateRequest) error {
	if s.cap.Limit > 0 {
		return errBatchCapped
	}
	if len(reqs) == 0 {
		return nil
	}
	const (
		ordersQ   = `INSERT INTO orders (id, customer_id, status, next_check_at, created_at, updated_at) VALUES `
		linesQ    = `INSERT INTO order_lines (order_id, line_no, product_id, quantity) VALUES `
		attemptsQ = `INSERT INTO order_attempts (attempt_id, order_id, seq, status, created_at, resolved_at) VALUES `
		keysQ     = `INSERT INTO idempotency_keys (customer_id, idem_key, request_hash, order_id, created_at) VALUES `
	)
	// The same columns and values as insertOrder, insertLines,
	// insertAttempt and insertKey.
	var orders, lines, attempts, keys []any
	for _, r := range reqs {
		o := r.Order
		orders = append(orders, o.ID, o.CustomerID, string(o.Status), nullTime(o.NextCheckAt), o.CreatedAt, o.UpdatedAt)
		for i, l := range o.Lines {
			lines = append(lines, o.ID, i+1, l.ProductID, l.Quantity)
		}
		for _, a := range o.Attempts {
			attempts = append(attempts, a.ID, o.ID, a.Seq, string(a.Status), a.CreatedAt, nullTime(a.ResolvedAt))
		}
		if r.IdemKey != "" {
			keys = append(keys, o.CustomerID, r.IdemKey, r.RequestHash, o.ID, o.CreatedAt)
		}
	}
	// Orders first: the other rows reference them. All four go in one
	// round trip.
	inserts := []struct {
		q, row string
		args   []any
	}{
		{ordersQ, "(?, ?, ?, ?, ?, ?)", orders},
		{linesQ, "(?, ?, ?, ?)", lines},
		{attemptsQ, "(?, ?, ?, ?, ?, ?)", attempts},
		{keysQ, "(?, ?, ?, ?, ?)", keys},
	}
	var script mysqldb.Script
	for _, ins := range inserts {
		if len(ins.args) > 0 {
			script.Add(ins.q+placeholders(len(ins.args)/strings.Count(ins.row, "?"), ins.row), ins.args...)
		}
	}
	ctx, cancel := context.WithTimeout(ctx, opTimeout)
	defer cancel()
	// One round trip: the inserts go with the BEGIN and the COMMIT.
	err := mysqldb.InScriptTx(ctx, s.db, func(*mysqldb.Tx) (*mysqldb.Script, error) {
		return &script, nil
	})
	if err != nil {
		return fmt.Errorf("create %d orders: %w", len(reqs), err)
	}
	return nil
}

// SettleRequest is one Settle call of a batch.
type SettleRequest struct {
	OrderID, AttemptID string
	Answer             contract.Reservation
}

// SettleOutcome is what Settle would have returned for one request.
type SettleOutcome struct {
	Order order.Order
	Err   error
}

// SettleBatch applies reqs in one transaction with the same results as
// calling Settle for each in turn, in slice order. It locks every order
// named (one SELECT ... FOR UPDATE, in id order), loads their lines and
// attempts, applies order.Order.Settle in memory request by request (a
// later request for an order sees what an earlier one made of it), and then
// writes every change with a fixed number of statements whatever the size
// of the batch (writeSettlements), plus one outbox row for each order that
// became COMPENSATING, as Settle does: two round trips, the lock and reads
// with the BEGIN, the writes with the COMMIT.
//
// Each outcome is what Settle would have answered: an answer already
// applied, or arriving after the order moved on, returns the current order
// with no error; a mismatched answer or an unknown order is that request's
// Err only. The error return is for the transaction as a whole: nothing was
// written (unless the commit's own fate is unknown), and the caller settles
// each request with Settle, which finds whatever was stored.
func (s *Store) SettleBatch(ctx context.Context, reqs []SettleRequest) ([]SettleOutcome, error) {
	out := make([]SettleOutcome, len(reqs))
	var ids []string
	for i, r := range reqs {
		// Answered without the database, as Settle does.
		if r.Answer.AttemptID != r.AttemptID {
			out[i].Err = fmt.Errorf("settle attempt %s: %w: answer names attempt %s", r.AttemptID, order.ErrInvalidReservation, r.Answer.AttemptID)
			continue
		}
		ids = append(ids, r.OrderID)
	}
	if len(ids) == 0 {
		return out, nil
	}
	slices.Sort(ids)
	ids = slices.Compact(ids)
	ctx, cancel := context.WithTimeout(ctx, opTimeout)
	defer cancel()
	err := mysqldb.InScriptTx(ctx, s.db, func(tx *mysqldb.Tx) (*mysqldb.Script, error) {
		return settleBatch(ctx, tx, reqs, ids, out)
	})
	if err != nil {
		return nil, fmt.Errorf("settle %d answers: %w", len(reqs), err)
	}
	return out, nil
}

// settleBatch is SettleBatch's transaction over the orders ids (sorted,
// distinct): it locks and reads them in tx and returns the writes to commit
// with (nil: none). It sets out[i] for every request it answers, from what
// it reads in tx, so a retried transaction starts afresh.
func settleBatch(ctx context.Context, tx mysqldb.Querier, reqs []SettleRequest, ids []string, out []SettleOutcome) (*mysqldb.Script, error) {
	locked, err := lockOrders(ctx, tx, ids)
	if err != nil {
		return nil, err
	}
	current := make(map[string]order.Order, len(locked))
	for _, o := range locked {
		current[o.ID] = o
	}

	now := time.Now().UTC().Truncate(time.Microsecond)
	// What the requests changed, for the writes after the loop.
	type compensation struct {
		o         order.Order // as it became COMPENSATING
		attemptID string      // whose stock goes back
	}
	var (
		changed       []string // orders settled, in the order of their first change
		isChanged     = make(map[string]bool)
		settled       = make(map[string]bool) // attempt ids
		compensations []compensation
	)
	for i, r := range reqs {
		if r.Answer.AttemptID != r.AttemptID {
			continue // answered by SettleBatch
		}
		cur, ok := current[r.OrderID]
		if !ok {
			out[i] = SettleOutcome{Err: fmt.Errorf("settle attempt %s: order %s: %w", r.AttemptID, r.OrderID, order.ErrNotFound)}
			continue
		}
		next, err := cur.Settle(r.Answer, now)
		if errors.Is(err, order.ErrAttemptNotOpen) {
			out[i] = SettleOutcome{Order: cur} // already applied, or the order moved on
			continue
		}
		if err != nil {
			out[i] = SettleOutcome{Err: fmt.Errorf("settle attempt %s: order %s: %w", r.AttemptID, r.OrderID, err)}
			continue
		}
		if !isChanged[r.OrderID] {
			isChanged[r.OrderID] = true
			changed = append(changed, r.OrderID)
		}
		current[r.OrderID] = next
		settled[r.AttemptID] = true
		// Stock taken for something the customer did not ask for goes
		// back, decided in this same transaction.
		if next.Status == order.StatusCompensating {
			compensations = append(compensations, compensation{next, r.AttemptID})
		}
		out[i] = SettleOutcome{Order: next}
	}
	if len(changed) == 0 {
		return nil, nil
	}

	// Each order and attempt is written once, as the last request left it.
	orders := make([]order.Order, len(changed))
	for i, id := range changed {
		orders[i] = current[id]
	}
	var writes mysqldb.Script
	if err := writeSettlements(&writes, orders, settled); err != nil {
		return nil, err
	}
	for _, c := range compensations {
		if err := addCompensation(&writes, c.o, c.attemptID, c.o.Reason, now); err != nil {
			return nil, err
		}
	}
	return &writes, nil
}
