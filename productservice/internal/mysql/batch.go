package mysql

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/stockfence/stockfence/productservice/internal/stock"
	"github.com/stockfence/stockfence/shared/contract"
	"github.com/stockfence/stockfence/shared/mysqldb"
)

// Outcome is the answer to one request of a batch, as Reserve would give it.
type Outcome struct {
	Res      contract.Reservation
	Replayed bool
	Err      error
}

// movementsPerInsert bounds the rows of one multi-row ledger insert (four
// placeholders each, well under MySQL's 65,535).
const movementsPerInsert = 1000

// ReserveBatch applies reqs, in order, in one transaction, with exactly the
// semantics of calling Reserve for each in turn: the product rows of all of
// them are locked once in id order, each request is checked against the stock
// its predecessors left (all-or-nothing per request), and then every attempt
// row (with its outcome), stock change and ledger row is written with a few
// multi-row statements, in one round trip, before the one commit. Holding a
// hot row's lock once for many reservations, instead of once each, is what
// lets a flash sale go faster than one transaction per reservation allows.
//
// Requests whose attempt is already recorded (replays, fenced attempts, and
// a second copy of an attempt within the batch) are answered from the log
// after the commit, as Reserve answers them: a batch whose attempt rows meet
// a recorded attempt is rolled back and run again without those requests.
// The outcomes are in the order of reqs. An error means the batch as a whole
// did not happen (nothing of it is applied unless the commit's own fate is
// unknown): the caller answers each request on its own path, with Reserve,
// which finds whatever was recorded.
func (s *Store) ReserveBatch(ctx context.Context, reqs []contract.ReserveRequest) ([]Outcome, error) {
	// Replays are rare (the order service never resends an attempt), so
	// the log is only looked up when an attempt row meets a recorded one:
	// most batches save that round trip.
	out, err := s.reserveBatch(ctx, reqs, nil)
	if !errors.Is(err, errAttemptExists) {
		return out, err
	}
	recorded, err := s.recordedIDs(ctx, reqs)
	if err != nil {
		return nil, err
	}
	return s.reserveBatch(ctx, reqs, recorded)
}

// reserveBatch is ReserveBatch with the attempts known to be recorded
// already answered from the log; errAttemptExists if another is.
func (s *Store) reserveBatch(ctx context.Context, reqs []contract.ReserveRequest, recorded map[string]bool) ([]Outcome, error) {
	out := make([]Outcome, len(reqs))
	var fresh, later []int // indexes into reqs: applied here / answered from the log
	inBatch := make(map[string]bool, len(reqs))
	for i, req := range reqs {
		if recorded[req.AttemptID] || inBatch[req.AttemptID] {
			later = append(later, i)
			continue
		}
		inBatch[req.AttemptID] = true
		fresh = append(fresh, i)
	}
	if len(fresh) > 0 {
		err := mysqldb.InScriptTx(ctx, s.db, func(tx *mysqldb.Tx) (*mysqldb.Script, error) {
			return applyBatch(ctx, tx, reqs, fresh, out)
		})
		if mysqldb.IsDuplicate(err) {
			return nil, errAttemptExists
		}
		if err != nil {
			return nil, err
		}
	}
	for _, i := range later {
		res, err := s.recorded(ctx, reqs[i])
		out[i] = Outcome{Res: res, Replayed: true, Err: err}
	}
	return out, nil
}

// recordedIDs returns which of the requests' attempts the log already holds.
func (s *Store) recordedIDs(ctx context.Context, reqs []contract.ReserveRequest) (map[string]bool, error) {
	args := make([]any, len(reqs))
	for i, req := range reqs {
		args[i] = req.AttemptID
	}
	// FORCE INDEX: with a long IN list on a small table the optimizer may
	// otherwise scan it.
	q := `SELECT attempt_id FROM stock_attempts FORCE INDEX (PRIMARY) WHERE attempt_id IN (?` + strings.Repeat(",?", len(reqs)-1) + `)`
	rows, err := s.db.QueryContext(ctx, q, args...)
	if err != nil {
		return nil, fmt.Errorf("look up attempts: %w", err)
	}
	defer rows.Close()
	recorded := make(map[string]bool)
	for rows.Next() {
		var id string
		if err := rows.Scan(&id); err != nil {
			return nil, fmt.Errorf("scan attempt id: %w", err)
		}
		recorded[id] = true
	}
	return recorded, rows.Err()
}

// applyBatch is the batch's transaction over the requests reqs[i], i in
// fresh, writing their outcomes into out. It locks the products (with the
// BEGIN), decides every request, and returns the writes to send with the
// COMMIT: each attempt row once, with its outcome, and the stock changes.
// An attempt of them already recorded (a replay, or a resolve fenced it
// meanwhile) fails that insert with a duplicate key, and so the whole batch:
// a resolve that gets there first wins, as when it fences Reserve's attempt
// row, and one that comes later waits on the uncommitted row and finds the
// outcome.
func applyBatch(ctx context.Context, tx mysqldb.Querier, reqs []contract.ReserveRequest, fresh []int, out []Outcome) (*mysqldb.Script, error) {
	var items []contract.Item
	for _, i := range fresh {
		items = append(items, reqs[i].Items...)
	}
	ids := stock.SortedIDs(items)
	locked, err := lockProducts(ctx, tx, ids)
	if err != nil {
		return nil, err
	}
	taken := make(map[int64]int64)
	var movements []any
	finish := make([]any, 0, 6*len(fresh))
	for _, i := range fresh {
		req := reqs[i]
		res := locked.Reserve(req)
		if res.Status == contract.StatusApplied {
			for _, it := range res.Items {
				taken[it.ProductID] += int64(it.Quantity)
				movements = append(movements, it.ProductID, req.AttemptID, -it.Quantity, kindReserve)
			}
		}
		lines, rejection, err := attemptJSON(req.Items, res)
		if err != nil {
			return nil, err
		}
		finish = append(finish, req.AttemptID, req.OrderID, res.Status, lines, nullString(res.Reason), rejection)
		out[i] = Outcome{Res: res}
	}

	// Every change, the attempts first.
	var writes mysqldb.Script
	writes.Add(`INSERT INTO stock_attempts (attempt_id, order_id, status, items, reason, rejection) VALUES `+
		rowsOf("(?, ?, ?, ?, ?, ?)", len(fresh)), finish...)
	for _, id := range ids {
		if n := taken[id]; n > 0 {
			writes.Add(`UPDATE products SET stock = stock - ? WHERE id = ?`, n, id)
		}
	}
	for chunk := range slices.Chunk(movements, 4*movementsPerInsert) {
		writes.Add(`INSERT INTO stock_movements (product_id, attempt_id, delta, kind) VALUES `+rowsOf("(?, ?, ?, ?)", len(chunk)/4), chunk...)
	}
	return &writes, nil
}

// rowsOf returns n copies of row, comma-separated, for a multi-row VALUES.
func rowsOf(row string, n int) string {
	return strings.TrimSuffix(strings.Repeat(row+",", n), ",")
}

// IsBatchConflict reports whether a batch failed because one of its attempts
// was recorded while it ran: answering each request on its own path is then
// the expected way on, not a sign of trouble.
func IsBatchConflict(err error) bool { return errors.Is(err, errAttemptExists) }
