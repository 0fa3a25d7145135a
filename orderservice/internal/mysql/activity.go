package mysql

import (
	"context"
	"database/sql"
	"fmt"
	"slices"
	"time"

	"github.com/stockfence/stockfence/orderservice/internal/order"
)

// allStatuses lists every order status: an IN list over them lets a range on
// created_at use ix_orders_status (status, created_at), one range per status,
// reading the index alone.
var allStatuses = []order.Status{order.StatusPending, order.StatusConfirmed, order.StatusFailed,
	order.StatusCompensating, order.StatusCancelling, order.StatusCancelled}

// Activity reads the dashboard's figures for window w in one snapshot:
// orders created in the window by status and by bucket, every unsettled
// order by status with how many were created before stuckBefore, and the
// newest maxSettles orders of the window that settled by themselves
// (CONFIRMED or FAILED) with how long each took (updated_at - created_at:
// nothing changes such an order after it settles, short of a cancellation,
// which takes it out of CONFIRMED). Every query is a range on
// ix_orders_status, bounded by the window, by what is unsettled or by
// maxSettles.
func (s *Store) Activity(ctx context.Context, w order.Window, stuckBefore time.Time, maxSettles int) (order.Activity, error) {
	ctx, cancel := context.WithTimeout(ctx, opTimeout)
	defer cancel()
	a := order.Activity{
		Window:    w,
		Created:   make(map[order.Status]int, len(allStatuses)),
		PerBucket: make([]int, w.Buckets),
		Unsettled: map[order.Status]int{order.StatusPending: 0, order.StatusCompensating: 0, order.StatusCancelling: 0},
	}
	for _, st := range allStatuses {
		a.Created[st] = 0
	}
	err := s.read(ctx, func(tx *sql.Tx) error {
		if err := createdPerBucket(ctx, tx, w, &a); err != nil {
			return err
		}
		if err := unsettledCounts(ctx, tx, stuckBefore, &a); err != nil {
			return err
		}
		for _, st := range []order.Status{order.StatusConfirmed, order.StatusFailed} {
			if err := settleTimes(ctx, tx, st, w, maxSettles, &a); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return order.Activity{}, fmt.Errorf("read activity: %w", err)
	}
	slices.SortFunc(a.Settles, func(x, y order.Settle) int { return y.CreatedAt.Compare(x.CreatedAt) })
	a.Settles = a.Settles[:min(len(a.Settles), maxSettles)]
	return a, nil
}

func createdPerBucket(ctx context.Context, tx *sql.Tx, w order.Window, a *order.Activity) error {
	q := `SELECT status, TIMESTAMPDIFF(MICROSECOND, ?, created_at) DIV ? AS bucket, COUNT(*)
		FROM orders WHERE status IN (` + placeholders(len(allStatuses), "?") + `) AND created_at >= ? AND created_at < ?
		GROUP BY status, bucket`
	args := []any{w.Start, w.Bucket.Microseconds()}
	for _, st := range allStatuses {
		args = append(args, string(st))
	}
	args = append(args, w.Start, w.End())
	rows, err := tx.QueryContext(ctx, q, args...)
	if err != nil {
		return fmt.Errorf("count orders per bucket: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var (
			status string
			bucket int64
			n      int
		)
		if err := rows.Scan(&status, &bucket, &n); err != nil {
			return fmt.Errorf("scan orders per bucket: %w", err)
		}
		a.Created[order.Status(status)] += n
		if bucket >= 0 && bucket < int64(len(a.PerBucket)) {
			a.PerBucket[bucket] += n
		}
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("read orders per bucket: %w", err)
	}
	return rows.Close()
}

func unsettledCounts(ctx context.Context, tx *sql.Tx, stuckBefore time.Time, a *order.Activity) error {
	const q = `SELECT status, COUNT(*), COALESCE(SUM(created_at < ?), 0)
		FROM orders WHERE status IN ('PENDING', 'COMPENSATING', 'CANCELLING') GROUP BY status`
	rows, err := tx.QueryContext(ctx, q, stuckBefore)
	if err != nil {
		return fmt.Errorf("count unsettled orders: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var (
			status   string
			n, stuck int
		)
		if err := rows.Scan(&status, &n, &stuck); err != nil {
			return fmt.Errorf("scan unsettled orders: %w", err)
		}
		a.Unsettled[order.Status(status)] = n
		a.Stuck += stuck
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("read unsettled orders: %w", err)
	}
	return rows.Close()
}

func settleTimes(ctx context.Context, tx *sql.Tx, status order.Status, w order.Window, limit int, a *order.Activity) error {
	// A backward range scan of ix_orders_status: no sort, at most limit rows.
	const q = `SELECT created_at, updated_at FROM orders
		WHERE status = ? AND created_at >= ? AND created_at < ? ORDER BY created_at DESC LIMIT ?`
	rows, err := tx.QueryContext(ctx, q, string(status), w.Start, w.End(), limit)
	if err != nil {
		return fmt.Errorf("read settle times of %s orders: %w", status, err)
	}
	defer rows.Close()
	for rows.Next() {
		var created, updated time.Time
		if err := rows.Scan(&created, &updated); err != nil {
			return fmt.Errorf("scan settle time: %w", err)
		}
		a.Settles = append(a.Settles, order.Settle{CreatedAt: created.UTC(), Took: max(updated.Sub(created), 0)})
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("read settle times of %s orders: %w", status, err)
	}
	return rows.Close()
}
