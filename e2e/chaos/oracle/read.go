package oracle

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
)

// productSnapshot is what one consistent read of the products database holds.
type productSnapshot struct {
	stock     map[int64]int64         // product id -> products.stock
	ledger    map[int64]*ledgerSums   // product id -> sums of its movements by kind
	attempts  map[string]*prodAttempt // attempt id -> reservation log row
	movements []movement              // every reserve and compensate movement
}

type ledgerSums struct {
	total, initial, restock int64
}

type prodAttempt struct {
	id, orderID, status string
	// items sums the quantities of the attempt's lines by product (a product
	// named twice counts once, with both quantities). nil when the attempt has
	// no items or they could not be read (itemsErr says which).
	items    map[int64]int64
	itemsErr error
	// reserve and compensate are the attempt's ledger movements by product.
	reserve, compensate map[int64]int64
}

type movement struct {
	productID int64
	attemptID sql.NullString
	kind      string
	delta     int64
}

// ordersSnapshot is what one consistent read of the orders database holds.
type ordersSnapshot struct {
	orders   map[string]*orderRow
	attempts map[string]*orderAttempt // attempt id -> attempt
	unsent   []outboxRow
}

type orderRow struct {
	id, status string
	total      sql.NullInt64
	// lines and unpriced are read for CONFIRMED orders only.
	lines, unpriced int64
}

type orderAttempt struct {
	id, orderID, status string
}

type outboxRow struct {
	id             int64
	orderID, topic string
}

// snapshot runs read in one read-only REPEATABLE READ transaction, so that
// every query sees the database at the same instant.
func snapshot(ctx context.Context, db *sql.DB, name string, read func(*sql.Tx) error) error {
	tx, err := db.BeginTx(ctx, &sql.TxOptions{Isolation: sql.LevelRepeatableRead, ReadOnly: true})
	if err != nil {
		return fmt.Errorf("oracle: begin %s snapshot: %w", name, err)
	}
	defer func() { _ = tx.Rollback() }()
	if err := read(tx); err != nil {
		return fmt.Errorf("oracle: read %s: %w", name, err)
	}
	return tx.Commit()
}

// each runs q and calls scan once per row.
func each(ctx context.Context, tx interface {
	QueryContext(context.Context, string, ...any) (*sql.Rows, error)
}, q string, args []any, scan func(*sql.Rows) error) error {
	rows, err := tx.QueryContext(ctx, q, args...)
	if err != nil {
		return fmt.Errorf("%s: %w", firstWords(q), err)
	}
	defer rows.Close()
	for rows.Next() {
		if err := scan(rows); err != nil {
			return fmt.Errorf("%s: scan: %w", firstWords(q), err)
		}
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("%s: %w", firstWords(q), err)
	}
	return rows.Close()
}

func firstWords(q string) string {
	f := strings.Fields(q)
	if len(f) > 8 {
		f = f[:8]
	}
	return strings.Join(f, " ")
}

func readProducts(ctx context.Context, db *sql.DB) (*productSnapshot, error) {
	ps := &productSnapshot{
		stock:    make(map[int64]int64),
		ledger:   make(map[int64]*ledgerSums),
		attempts: make(map[string]*prodAttempt),
	}
	err := snapshot(ctx, db, "products", func(tx *sql.Tx) error {
		if err := each(ctx, tx, `SELECT id, stock FROM products`, nil, func(r *sql.Rows) error {
			var id, stock int64
			if err := r.Scan(&id, &stock); err != nil {
				return err
			}
			ps.stock[id] = stock
			return nil
		}); err != nil {
			return err
		}

		const sums = `SELECT product_id, kind, SUM(delta) FROM stock_movements GROUP BY product_id, kind`
		if err := each(ctx, tx, sums, nil, func(r *sql.Rows) error {
			var (
				id   int64
				kind string
				sum  int64
			)
			if err := r.Scan(&id, &kind, &sum); err != nil {
				return err
			}
			l := ps.ledger[id]
			if l == nil {
				l = &ledgerSums{}
				ps.ledger[id] = l
			}
			l.total += sum
			switch kind {
			case "initial":
				l.initial += sum
			case "restock":
				l.restock += sum
			}
			return nil
		}); err != nil {
			return err
		}

		const moves = `SELECT product_id, attempt_id, kind, delta FROM stock_movements
			WHERE kind IN ('reserve', 'compensate')`
		if err := each(ctx, tx, moves, nil, func(r *sql.Rows) error {
			var m movement
			if err := r.Scan(&m.productID, &m.attemptID, &m.kind, &m.delta); err != nil {
				return err
			}
			ps.movements = append(ps.movements, m)
			return nil
		}); err != nil {
			return err
		}

		const attempts = `SELECT attempt_id, order_id, status, items FROM stock_attempts`
		return each(ctx, tx, attempts, nil, func(r *sql.Rows) error {
			var (
				a     prodAttempt
				items []byte
			)
			if err := r.Scan(&a.id, &a.orderID, &a.status, &items); err != nil {
				return err
			}
			if a.status == statusApplied || a.status == statusCompensated {
				a.items, a.itemsErr = parseItems(items)
			}
			ps.attempts[a.id] = &a
			return nil
		})
	})
	if err != nil {
		return nil, err
	}
	for _, m := range ps.movements {
		if !m.attemptID.Valid {
			continue
		}
		a := ps.attempts[m.attemptID.String]
		if a == nil {
			continue
		}
		switch m.kind {
		case "reserve":
			if a.reserve == nil {
				a.reserve = make(map[int64]int64)
			}
			a.reserve[m.productID] += m.delta
		case "compensate":
			if a.compensate == nil {
				a.compensate = make(map[int64]int64)
			}
			a.compensate[m.productID] += m.delta
		}
	}
	return ps, nil
}

// parseItems reads stock_attempts.items: the lines in request order,
// [{"productId","quantity","unitPriceCents"}], summed by product.
func parseItems(raw []byte) (map[int64]int64, error) {
	if raw == nil {
		return nil, errors.New("items are missing")
	}
	var lines []struct {
		ProductID *int64 `json:"productId"`
		Quantity  *int64 `json:"quantity"`
	}
	if err := json.Unmarshal(raw, &lines); err != nil {
		return nil, fmt.Errorf("items are unreadable: %v", err)
	}
	if len(lines) == 0 {
		return nil, errors.New("items are empty")
	}
	m := make(map[int64]int64, len(lines))
	for i, l := range lines {
		if l.ProductID == nil || l.Quantity == nil {
			return nil, fmt.Errorf("item %d lacks productId or quantity", i)
		}
		if *l.Quantity <= 0 {
			return nil, fmt.Errorf("item %d has quantity %d", i, *l.Quantity)
		}
		m[*l.ProductID] += *l.Quantity
	}
	return m, nil
}

func readOrders(ctx context.Context, db *sql.DB) (*ordersSnapshot, error) {
	osn := &ordersSnapshot{
		orders:   make(map[string]*orderRow),
		attempts: make(map[string]*orderAttempt),
	}
	err := snapshot(ctx, db, "orders", func(tx *sql.Tx) error {
		if err := each(ctx, tx, `SELECT id, status, total_cents FROM orders`, nil, func(r *sql.Rows) error {
			var o orderRow
			if err := r.Scan(&o.id, &o.status, &o.total); err != nil {
				return err
			}
			osn.orders[o.id] = &o
			return nil
		}); err != nil {
			return err
		}

		const lines = `SELECT l.order_id, COUNT(*), COALESCE(SUM(l.unit_price_cents IS NULL), 0)
			FROM order_lines l JOIN orders o ON o.id = l.order_id
			WHERE o.status = 'CONFIRMED'
			GROUP BY l.order_id`
		if err := each(ctx, tx, lines, nil, func(r *sql.Rows) error {
			var (
				id              string
				count, unpriced int64
			)
			if err := r.Scan(&id, &count, &unpriced); err != nil {
				return err
			}
			if o := osn.orders[id]; o != nil {
				o.lines, o.unpriced = count, unpriced
			}
			return nil
		}); err != nil {
			return err
		}

		if err := each(ctx, tx, `SELECT attempt_id, order_id, status FROM order_attempts`, nil, func(r *sql.Rows) error {
			var a orderAttempt
			if err := r.Scan(&a.id, &a.orderID, &a.status); err != nil {
				return err
			}
			osn.attempts[a.id] = &a
			return nil
		}); err != nil {
			return err
		}

		const unsent = `SELECT id, order_id, topic FROM outbox WHERE sent_at IS NULL ORDER BY id`
		return each(ctx, tx, unsent, nil, func(r *sql.Rows) error {
			var o outboxRow
			if err := r.Scan(&o.id, &o.orderID, &o.topic); err != nil {
				return err
			}
			osn.unsent = append(osn.unsent, o)
			return nil
		})
	})
	if err != nil {
		return nil, err
	}
	return osn, nil
}

// recheckChunk bounds the placeholders of one re-read query.
const recheckChunk = 500

// readAttemptStatuses re-reads, after the orders snapshot, the reservation log
// rows with the given attempt ids or order ids: attempt id -> row.
func readAttemptStatuses(ctx context.Context, db *sql.DB, attemptIDs, orderIDs []string) (map[string]*prodAttempt, error) {
	out := make(map[string]*prodAttempt)
	run := func(column string, ids []string) error {
		for len(ids) > 0 {
			n := min(len(ids), recheckChunk)
			chunk := ids[:n]
			ids = ids[n:]
			q := `SELECT attempt_id, order_id, status FROM stock_attempts WHERE ` + column +
				` IN (?` + strings.Repeat(",?", len(chunk)-1) + `)`
			args := make([]any, len(chunk))
			for i, id := range chunk {
				args[i] = id
			}
			if err := each(ctx, db, q, args, func(r *sql.Rows) error {
				var a prodAttempt
				if err := r.Scan(&a.id, &a.orderID, &a.status); err != nil {
					return err
				}
				out[a.id] = &a
				return nil
			}); err != nil {
				return fmt.Errorf("oracle: re-read products: %w", err)
			}
		}
		return nil
	}
	if err := run("attempt_id", attemptIDs); err != nil {
		return nil, err
	}
	if err := run("order_id", orderIDs); err != nil {
		return nil, err
	}
	return out, nil
}
