// Package mysql stores the catalog, the reservation log (stock_attempts) and
// the ledger (stock_movements) in MySQL/MariaDB.
package mysql

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/stockfence/stockfence/productservice/internal/stock"
	"github.com/stockfence/stockfence/shared/contract"
	"github.com/stockfence/stockfence/shared/mysqldb"
)

// Movement kinds in the ledger.
const (
	kindInitial    = contract.MovementInitial
	kindRestock    = contract.MovementRestock
	kindReserve    = contract.MovementReserve
	kindCompensate = contract.MovementCompensate
)

// Store is the product service's storage. It is safe for concurrent use.
type Store struct {
	db *sql.DB
}

// New returns a Store over db, whose schema must be migrated.
func New(db *sql.DB) *Store { return &Store{db: db} }

type productRow struct {
	id         int64
	sku        string
	name       string
	priceCents int64
	stock      int64
}

func (r productRow) toContract() contract.Product {
	return contract.Product{ID: r.id, SKU: r.sku, Name: r.name, PriceCents: r.priceCents, Stock: r.stock}
}

// Products returns the whole catalog ordered by id.
func (s *Store) Products(ctx context.Context) ([]contract.Product, error) {
	const q = `SELECT id, sku, name, price_cents, stock FROM products ORDER BY id`
	rows, err := s.db.QueryContext(ctx, q)
	if err != nil {
		return nil, fmt.Errorf("list products: %w", err)
	}
	defer rows.Close()
	products := []contract.Product{}
	for rows.Next() {
		var r productRow
		if err := rows.Scan(&r.id, &r.sku, &r.name, &r.priceCents, &r.stock); err != nil {
			return nil, fmt.Errorf("scan product: %w", err)
		}
		products = append(products, r.toContract())
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list products: %w", err)
	}
	return products, rows.Close()
}

// Product returns one product or stock.ErrProductNotFound.
func (s *Store) Product(ctx context.Context, id int64) (contract.Product, error) {
	return product(ctx, s.db, id, "")
}

// queryer is what *sql.DB and *sql.Tx have in common.
type queryer interface {
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
}

func product(ctx context.Context, q queryer, id int64, suffix string) (contract.Product, error) {
	query := `SELECT id, sku, name, price_cents, stock FROM products WHERE id = ?` + suffix
	var r productRow
	err := q.QueryRowContext(ctx, query, id).Scan(&r.id, &r.sku, &r.name, &r.priceCents, &r.stock)
	if errors.Is(err, sql.ErrNoRows) {
		return contract.Product{}, fmt.Errorf("product %d: %w", id, stock.ErrProductNotFound)
	}
	if err != nil {
		return contract.Product{}, fmt.Errorf("get product %d: %w", id, err)
	}
	return r.toContract(), nil
}

// CreateProduct adds a product and records its initial stock in the ledger.
// A SKU in use is stock.ErrSKUTaken.
func (s *Store) CreateProduct(ctx context.Context, p contract.NewProduct) (contract.Product, error) {
	const (
		insertProduct  = `INSERT INTO products (sku, name, price_cents, stock) VALUES (?, ?, ?, ?)`
		insertMovement = `INSERT INTO stock_movements (product_id, delta, kind) VALUES (?, ?, ?)`
	)
	var created contract.Product
	err := mysqldb.InTx(ctx, s.db, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, insertProduct, p.SKU, p.Name, p.PriceCents, p.Stock)
		if mysqldb.IsDuplicate(err) {
			return fmt.Errorf("sku %q: %w", p.SKU, stock.ErrSKUTaken)
		}
		if err != nil {
			return fmt.Errorf("insert product: %w", err)
		}
		id, err := res.LastInsertId()
		if err != nil {
			return fmt.Errorf("product id: %w", err)
		}
		if _, err := tx.ExecContext(ctx, insertMovement, id, p.Stock, kindInitial); err != nil {
			return fmt.Errorf("record initial stock: %w", err)
		}
		created = contract.Product{ID: id, SKU: p.SKU, Name: p.Name, PriceCents: p.PriceCents, Stock: p.Stock}
		return nil
	})
	return created, err
}

// Restock adds quantity units to a product and records them in the ledger.
// A product that would exceed contract.MaxStock is stock.ErrStockLimit.
func (s *Store) Restock(ctx context.Context, id int64, quantity int64) (contract.Product, error) {
	const (
		update         = `UPDATE products SET stock = stock + ? WHERE id = ?`
		insertMovement = `INSERT INTO stock_movements (product_id, delta, kind) VALUES (?, ?, ?)`
	)
	var p contract.Product
	err := mysqldb.InTx(ctx, s.db, func(tx *sql.Tx) error {
		var err error
		if p, err = product(ctx, tx, id, " FOR UPDATE"); err != nil {
			return err
		}
		if p.Stock+quantity > contract.MaxStock {
			return fmt.Errorf("product %d has %d, restock %d: %w", id, p.Stock, quantity, stock.ErrStockLimit)
		}
		if _, err := tx.ExecContext(ctx, update, quantity, id); err != nil {
			return fmt.Errorf("restock product %d: %w", id, err)
		}
		if _, err := tx.ExecContext(ctx, insertMovement, id, quantity, kindRestock); err != nil {
			return fmt.Errorf("record restock: %w", err)
		}
		p.Stock += quantity
		return nil
	})
	return p, err
}

// errAttemptExists leaves the reservation transaction when the attempt row
// is already there (a replay, or a fenced attempt).
var errAttemptExists = errors.New("attempt exists")

// Reserve applies one reservation request in one transaction: the attempt row
// is inserted first (its primary key is the fence a resolve waits on), then
// every product row is locked in id order, the all-or-nothing rule decides,
// stock and ledger are updated when it fits, and the outcome is recorded on
// the attempt row (rejections too). Deadlocks and lock-wait timeouts rerun the
// whole transaction.
//
// If the attempt was recorded before, nothing changes and the recorded
// reservation is returned with replayed = true; if it was recorded for another
// order or other items, the error is stock.ErrAttemptMismatch.
func (s *Store) Reserve(ctx context.Context, req contract.ReserveRequest) (res contract.Reservation, replayed bool, err error) {
	const (
		insertAttempt = `INSERT INTO stock_attempts (attempt_id, order_id, status) VALUES (?, ?, 'REJECTED')`
		finishAttempt = `UPDATE stock_attempts SET status = ?, items = ?, reason = ?, rejection = ? WHERE attempt_id = ?`
	)
	err = mysqldb.InTx(ctx, s.db, func(tx *sql.Tx) error {
		if _, err := tx.ExecContext(ctx, insertAttempt, req.AttemptID, req.OrderID); err != nil {
			if mysqldb.IsDuplicate(err) {
				return errAttemptExists
			}
			return fmt.Errorf("insert attempt %s: %w", req.AttemptID, err)
		}
		locked, err := lockProducts(ctx, tx, stock.SortedIDs(req.Items))
		if err != nil {
			return err
		}
		res = locked.Reserve(req)
		if res.Status == contract.StatusApplied {
			if err := takeStock(ctx, tx, req.AttemptID, res.Items); err != nil {
				return err
			}
		}
		items, rejection, err := attemptJSON(req.Items, res)
		if err != nil {
			return err
		}
		if _, err := tx.ExecContext(ctx, finishAttempt, res.Status, items, nullString(res.Reason), rejection, req.AttemptID); err != nil {
			return fmt.Errorf("record attempt %s: %w", req.AttemptID, err)
		}
		return nil
	})
	if errors.Is(err, errAttemptExists) {
		res, err = s.recorded(ctx, req)
		return res, true, err
	}
	if err != nil {
		return contract.Reservation{}, false, err
	}
	return res, false, nil
}

// recorded returns the attempt as it was recorded, checking that the request
// is the one that recorded it. A fenced attempt has no items to compare.
func (s *Store) recorded(ctx context.Context, req contract.ReserveRequest) (contract.Reservation, error) {
	res, err := s.Attempt(ctx, req.AttemptID)
	if err != nil {
		return contract.Reservation{}, err
	}
	if res.OrderID != req.OrderID {
		return contract.Reservation{}, fmt.Errorf("attempt %s belongs to order %s: %w", req.AttemptID, res.OrderID, stock.ErrAttemptMismatch)
	}
	if res.Items != nil && !stock.SameItems(res.Items, req.Items) {
		return contract.Reservation{}, fmt.Errorf("attempt %s was for other items: %w", req.AttemptID, stock.ErrAttemptMismatch)
	}
	return res, nil
}

func lockProducts(ctx context.Context, tx mysqldb.Querier, ids []int64) (stock.Locked, error) {
	q := `SELECT id, price_cents, stock FROM products WHERE id IN (?` + strings.Repeat(",?", len(ids)-1) + `) ORDER BY id FOR UPDATE`
	args := make([]any, len(ids))
	for i, id := range ids {
		args[i] = id
	}
	rows, err := tx.QueryContext(ctx, q, args...)
	if err != nil {
		return nil, fmt.Errorf("lock products %v: %w", ids, err)
	}
	defer rows.Close()
	locked := make(stock.Locked, len(ids))
	for rows.Next() {
		var (
			id  int64
			row stock.Row
		)
		if err := rows.Scan(&id, &row.PriceCents, &row.Stock); err != nil {
			return nil, fmt.Errorf("scan product: %w", err)
		}
		locked[id] = &row
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("lock products %v: %w", ids, err)
	}
	return locked, rows.Close()
}

func takeStock(ctx context.Context, tx *sql.Tx, attemptID string, items []contract.ReservedItem) error {
	const update = `UPDATE products SET stock = stock - ? WHERE id = ?`
	movements := `INSERT INTO stock_movements (product_id, attempt_id, delta, kind) VALUES ` +
		strings.TrimSuffix(strings.Repeat("(?, ?, ?, ?),", len(items)), ",")
	args := make([]any, 0, 4*len(items))
	for _, it := range items {
		if _, err := tx.ExecContext(ctx, update, it.Quantity, it.ProductID); err != nil {
			return fmt.Errorf("take stock of product %d: %w", it.ProductID, err)
		}
		args = append(args, it.ProductID, attemptID, -it.Quantity, kindReserve)
	}
	if _, err := tx.ExecContext(ctx, movements, args...); err != nil {
		return fmt.Errorf("record movements of attempt %s: %w", attemptID, err)
	}
	return nil
}

// rejection is what the attempt row keeps of a refusal.
type rejection struct {
	Shortages       []contract.Shortage `json:"shortages,omitempty"`
	UnknownProducts []int64             `json:"unknownProducts,omitempty"`
}

// attemptJSON encodes what the attempt row keeps: the lines in request order
// (with prices once applied) and, for a rejection, why.
func attemptJSON(req []contract.Item, res contract.Reservation) (items, rejected []byte, err error) {
	lines := res.Items
	if lines == nil {
		lines = make([]contract.ReservedItem, len(req))
		for i, it := range req {
			lines[i] = contract.ReservedItem{ProductID: it.ProductID, Quantity: it.Quantity}
		}
	}
	if items, err = json.Marshal(lines); err != nil {
		return nil, nil, fmt.Errorf("encode items: %w", err)
	}
	if res.Status == contract.StatusRejected {
		if rejected, err = json.Marshal(rejection{res.Shortages, res.UnknownProducts}); err != nil {
			return nil, nil, fmt.Errorf("encode rejection: %w", err)
		}
	}
	return items, rejected, nil
}

// Resolve answers what became of an attempt. An attempt never seen is fenced:
// recorded ABORTED, so a reservation for it that arrives later is refused,
// and fenced is true. If the reservation is in flight, the insert waits on
// its attempt row until it commits or rolls back, so the answer is always the
// final truth. An attempt recorded for another order is
// stock.ErrAttemptMismatch.
func (s *Store) Resolve(ctx context.Context, attemptID, orderID string) (res contract.Reservation, fenced bool, err error) {
	const fence = `INSERT INTO stock_attempts (attempt_id, order_id, status) VALUES (?, ?, 'ABORTED')`
	err = mysqldb.InTx(ctx, s.db, func(tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx, fence, attemptID, orderID)
		if mysqldb.IsDuplicate(err) {
			return errAttemptExists
		}
		return err
	})
	if err != nil && !errors.Is(err, errAttemptExists) {
		return contract.Reservation{}, false, fmt.Errorf("fence attempt %s: %w", attemptID, err)
	}
	fenced = err == nil
	res, err = s.Attempt(ctx, attemptID)
	if err != nil {
		return contract.Reservation{}, false, err
	}
	if res.OrderID != orderID {
		return contract.Reservation{}, false, fmt.Errorf("attempt %s belongs to order %s: %w", attemptID, res.OrderID, stock.ErrAttemptMismatch)
	}
	return res, fenced, nil
}

// Compensate gives back whatever attempt attemptID of order orderID took, in
// one transaction, and returns the attempt's status afterwards:
//
//   - never seen: it is fenced (recorded ABORTED, so a reservation for it
//     arriving later is refused) and ABORTED is returned;
//   - APPLIED: its units are added back, one 'compensate' ledger row per line
//     is written, and it becomes COMPENSATED;
//   - COMPENSATED, ABORTED, REJECTED: nothing changes; its status is returned.
//
// Locks are taken in the reservation's order, attempt row first, then product
// rows by id, and the ledger's unique key (attempt, product, kind) makes a
// second application impossible, so concurrent and repeated calls restore the
// stock once. An attempt recorded for another order is
// stock.ErrAttemptMismatch, which no retry can cure.
func (s *Store) Compensate(ctx context.Context, attemptID, orderID string) (contract.AttemptStatus, error) {
	const (
		fence  = `INSERT INTO stock_attempts (attempt_id, order_id, status) VALUES (?, ?, 'ABORTED')`
		finish = `UPDATE stock_attempts SET status = 'COMPENSATED' WHERE attempt_id = ?`
	)
	var status contract.AttemptStatus
	err := mysqldb.InTx(ctx, s.db, func(tx *sql.Tx) error {
		r, found, err := lockAttempt(ctx, tx, attemptID)
		if err != nil {
			return err
		}
		if !found {
			_, err := tx.ExecContext(ctx, fence, attemptID, orderID)
			if err == nil {
				status = contract.StatusAborted
				return nil
			}
			if !mysqldb.IsDuplicate(err) {
				return fmt.Errorf("fence attempt %s: %w", attemptID, err)
			}
			// A reservation inserted it after our read and has committed by
			// now (the insert waited on it): lock what it recorded.
			if r, found, err = lockAttempt(ctx, tx, attemptID); err != nil {
				return err
			}
			if !found {
				return fmt.Errorf("attempt %s vanished after a duplicate key", attemptID)
			}
		}
		if r.orderID != orderID {
			return fmt.Errorf("attempt %s belongs to order %s: %w", attemptID, r.orderID, stock.ErrAttemptMismatch)
		}
		status = contract.AttemptStatus(r.status)
		if status != contract.StatusApplied {
			return nil
		}
		var items []contract.ReservedItem
		if err := json.Unmarshal(r.items, &items); err != nil {
			return fmt.Errorf("decode items of attempt %s: %w", attemptID, err)
		}
		if len(items) == 0 {
			return fmt.Errorf("applied attempt %s has no items", attemptID)
		}
		if err := giveBack(ctx, tx, attemptID, items); err != nil {
			return err
		}
		if _, err := tx.ExecContext(ctx, finish, attemptID); err != nil {
			return fmt.Errorf("record compensation of attempt %s: %w", attemptID, err)
		}
		status = contract.StatusCompensated
		return nil
	})
	if err != nil {
		return "", err
	}
	return status, nil
}

// lockedAttempt is what Compensate reads of an attempt row under its lock.
type lockedAttempt struct {
	orderID, status string
	items           []byte
}

// lockAttempt locks an attempt row. A row inserted by a reservation still in
// flight makes it wait for that transaction's outcome.
func lockAttempt(ctx context.Context, tx *sql.Tx, attemptID string) (lockedAttempt, bool, error) {
	const q = `SELECT order_id, status, items FROM stock_attempts WHERE attempt_id = ? FOR UPDATE`
	var r lockedAttempt
	err := tx.QueryRowContext(ctx, q, attemptID).Scan(&r.orderID, &r.status, &r.items)
	if errors.Is(err, sql.ErrNoRows) {
		return lockedAttempt{}, false, nil
	}
	if err != nil {
		return lockedAttempt{}, false, fmt.Errorf("lock attempt %s: %w", attemptID, err)
	}
	return r, true, nil
}

// giveBack adds the units of an applied attempt back to its products, locked
// in id order like a reservation locks them, and records them in the ledger.
func giveBack(ctx context.Context, tx *sql.Tx, attemptID string, items []contract.ReservedItem) error {
	const update = `UPDATE products SET stock = stock + ? WHERE id = ?`
	lines := make([]contract.Item, len(items))
	for i, it := range items {
		lines[i] = contract.Item{ProductID: it.ProductID, Quantity: it.Quantity}
	}
	if _, err := lockProducts(ctx, tx, stock.SortedIDs(lines)); err != nil {
		return err
	}
	movements := `INSERT INTO stock_movements (product_id, attempt_id, delta, kind) VALUES ` +
		strings.TrimSuffix(strings.Repeat("(?, ?, ?, ?),", len(items)), ",")
	args := make([]any, 0, 4*len(items))
	for _, it := range items {
		if _, err := tx.ExecContext(ctx, update, it.Quantity, it.ProductID); err != nil {
			return fmt.Errorf("give back stock of product %d: %w", it.ProductID, err)
		}
		args = append(args, it.ProductID, attemptID, it.Quantity, kindCompensate)
	}
	if _, err := tx.ExecContext(ctx, movements, args...); err != nil {
		return fmt.Errorf("record compensation movements of attempt %s: %w", attemptID, err)
	}
	return nil
}

const attemptColumns = `attempt_id, order_id, status, items, reason, rejection, created_at, updated_at`

type attemptRow struct {
	attemptID, orderID, status string
	items, rejection           []byte
	reason                     sql.NullString
	createdAt, updatedAt       time.Time
}

func (r *attemptRow) dest() []any {
	return []any{&r.attemptID, &r.orderID, &r.status, &r.items, &r.reason, &r.rejection, &r.createdAt, &r.updatedAt}
}

func (r *attemptRow) toContract() (contract.Reservation, error) {
	res := contract.Reservation{
		AttemptID: r.attemptID, OrderID: r.orderID, Status: contract.AttemptStatus(r.status),
		Reason: r.reason.String, CreatedAt: &r.createdAt, UpdatedAt: &r.updatedAt,
	}
	if r.items != nil && (res.Status == contract.StatusApplied || res.Status == contract.StatusCompensated) {
		if err := json.Unmarshal(r.items, &res.Items); err != nil {
			return res, fmt.Errorf("decode items of attempt %s: %w", r.attemptID, err)
		}
	}
	if r.rejection != nil {
		var rej rejection
		if err := json.Unmarshal(r.rejection, &rej); err != nil {
			return res, fmt.Errorf("decode rejection of attempt %s: %w", r.attemptID, err)
		}
		res.Shortages, res.UnknownProducts = rej.Shortages, rej.UnknownProducts
	}
	return res, nil
}

// Attempt returns the recorded attempt or stock.ErrAttemptNotFound. It never
// writes: reading an attempt does not fence it.
func (s *Store) Attempt(ctx context.Context, attemptID string) (contract.Reservation, error) {
	const q = `SELECT ` + attemptColumns + ` FROM stock_attempts WHERE attempt_id = ?`
	var r attemptRow
	err := s.db.QueryRowContext(ctx, q, attemptID).Scan(r.dest()...)
	if errors.Is(err, sql.ErrNoRows) {
		return contract.Reservation{}, fmt.Errorf("attempt %s: %w", attemptID, stock.ErrAttemptNotFound)
	}
	if err != nil {
		return contract.Reservation{}, fmt.Errorf("get attempt %s: %w", attemptID, err)
	}
	return r.toContract()
}

// withLedgerHead and withLedgerTail wrap a SELECT of attemptColumns from
// stock_attempts so that each attempt also carries what the ledger shows for
// it (taken = -sum of its reserve deltas, returned = sum of its compensate
// deltas), in one statement and so from one snapshot. The ledger is
// aggregated only for the attempts the inner SELECT picks (the CTE is joined
// in the aggregate too), so a page costs an index lookup per attempt on
// uq_stock_movements_attempt, not a pass over the whole ledger.
const (
	withLedgerHead = `WITH page AS (`
	withLedgerTail = `)
		SELECT page.attempt_id, page.order_id, page.status, page.items, page.reason, page.rejection,
			page.created_at, page.updated_at, COALESCE(l.taken, 0), COALESCE(l.returned, 0)
		FROM page
		LEFT JOIN (
			SELECT m.attempt_id,
				-SUM(CASE WHEN m.kind = 'reserve' THEN m.delta ELSE 0 END) AS taken,
				SUM(CASE WHEN m.kind = 'compensate' THEN m.delta ELSE 0 END) AS returned
			FROM stock_movements m
			JOIN page pa ON pa.attempt_id = m.attempt_id
			WHERE m.kind IN ('reserve', 'compensate')
			GROUP BY m.attempt_id
		) l ON l.attempt_id = page.attempt_id
		ORDER BY page.updated_at, page.attempt_id`
)

// ledgerRow is an attempt row with its ledger figures.
type ledgerRow struct {
	attemptRow
	taken, returned int64
}

func (r *ledgerRow) dest() []any {
	return append(r.attemptRow.dest(), &r.taken, &r.returned)
}

func (r *ledgerRow) toContract() (contract.Reservation, error) {
	res, err := r.attemptRow.toContract()
	res.Ledger = &contract.AttemptLedger{Taken: r.taken, Returned: r.returned}
	return res, err
}

// AttemptWithLedger returns the recorded attempt, like Attempt, together
// with what the ledger shows for it (Reservation.Ledger). It never writes.
func (s *Store) AttemptWithLedger(ctx context.Context, attemptID string) (contract.Reservation, error) {
	const q = withLedgerHead + `SELECT ` + attemptColumns + ` FROM stock_attempts WHERE attempt_id = ?` + withLedgerTail
	var r ledgerRow
	err := s.db.QueryRowContext(ctx, q, attemptID).Scan(r.dest()...)
	if errors.Is(err, sql.ErrNoRows) {
		return contract.Reservation{}, fmt.Errorf("attempt %s: %w", attemptID, stock.ErrAttemptNotFound)
	}
	if err != nil {
		return contract.Reservation{}, fmt.Errorf("get attempt %s with its ledger: %w", attemptID, err)
	}
	return r.toContract()
}

// Attempts returns up to limit attempts changed after the cursor, oldest
// change first, each with what the ledger shows for it
// (Reservation.Ledger), and the cursor of the last one (zero when there are
// no more). One statement reads the page and its ledger figures.
func (s *Store) Attempts(ctx context.Context, after stock.LogCursor, limit int) ([]contract.Reservation, stock.LogCursor, error) {
	const q = withLedgerHead + `SELECT ` + attemptColumns + ` FROM stock_attempts
		WHERE updated_at > ? OR (updated_at = ? AND attempt_id > ?)
		ORDER BY updated_at, attempt_id LIMIT ?` + withLedgerTail
	rows, err := s.db.QueryContext(ctx, q, after.UpdatedAt, after.UpdatedAt, after.AttemptID, limit+1)
	if err != nil {
		return nil, stock.LogCursor{}, fmt.Errorf("list attempts: %w", err)
	}
	defer rows.Close()
	out := make([]contract.Reservation, 0, limit)
	more := false
	for rows.Next() {
		if len(out) == limit {
			more = true
			break
		}
		var r ledgerRow
		if err := rows.Scan(r.dest()...); err != nil {
			return nil, stock.LogCursor{}, fmt.Errorf("scan attempt: %w", err)
		}
		res, err := r.toContract()
		if err != nil {
			return nil, stock.LogCursor{}, err
		}
		out = append(out, res)
	}
	if err := rows.Err(); err != nil {
		return nil, stock.LogCursor{}, fmt.Errorf("list attempts: %w", err)
	}
	if !more {
		return out, stock.LogCursor{}, rows.Close()
	}
	last := out[len(out)-1]
	return out, stock.LogCursor{UpdatedAt: *last.UpdatedAt, AttemptID: last.AttemptID}, rows.Close()
}

// Ledger returns the product side's own books (see contract.Ledger): every
// product's stock beside the sum of its ledger, and the reserve and
// compensate movements that no attempt explains. Both come from one
// read-only REPEATABLE READ snapshot, so a reservation committing meanwhile
// cannot make them disagree.
func (s *Store) Ledger(ctx context.Context) (contract.Ledger, error) {
	tx, err := s.db.BeginTx(ctx, &sql.TxOptions{Isolation: sql.LevelRepeatableRead, ReadOnly: true})
	if err != nil {
		return contract.Ledger{}, fmt.Errorf("begin ledger read: %w", err)
	}
	defer func() { _ = tx.Rollback() }()
	books := contract.Ledger{}
	if books.Products, err = balances(ctx, tx); err != nil {
		return contract.Ledger{}, err
	}
	if books.Unattributed, err = unattributed(ctx, tx); err != nil {
		return contract.Ledger{}, err
	}
	if err := tx.Commit(); err != nil {
		return contract.Ledger{}, fmt.Errorf("end ledger read: %w", err)
	}
	return books, nil
}

// balances returns every product's stock and ledger sum, in id order.
func balances(ctx context.Context, tx *sql.Tx) ([]contract.ProductBalance, error) {
	const q = `SELECT p.id, p.stock, COALESCE(l.total, 0)
		FROM products p
		LEFT JOIN (SELECT product_id, SUM(delta) AS total FROM stock_movements GROUP BY product_id) l
			ON l.product_id = p.id
		ORDER BY p.id`
	rows, err := tx.QueryContext(ctx, q)
	if err != nil {
		return nil, fmt.Errorf("sum ledger per product: %w", err)
	}
	defer rows.Close()
	out := []contract.ProductBalance{}
	for rows.Next() {
		var b contract.ProductBalance
		if err := rows.Scan(&b.ProductID, &b.Stock, &b.LedgerSum); err != nil {
			return nil, fmt.Errorf("scan product balance: %w", err)
		}
		out = append(out, b)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("sum ledger per product: %w", err)
	}
	return out, rows.Close()
}

// unattributed returns the reserve and compensate movements whose attempt is
// missing or in a status that does not allow them, in ledger order.
func unattributed(ctx context.Context, tx *sql.Tx) ([]contract.UnattributedMovement, error) {
	const q = `SELECT m.id, m.product_id, COALESCE(m.attempt_id, ''), m.kind, m.delta, COALESCE(a.status, '')
		FROM stock_movements m
		LEFT JOIN stock_attempts a ON a.attempt_id = m.attempt_id
		WHERE (m.kind = 'reserve' AND (a.status IS NULL OR a.status NOT IN ('APPLIED', 'COMPENSATED')))
			OR (m.kind = 'compensate' AND (a.status IS NULL OR a.status <> 'COMPENSATED'))
		ORDER BY m.id`
	rows, err := tx.QueryContext(ctx, q)
	if err != nil {
		return nil, fmt.Errorf("find unattributed movements: %w", err)
	}
	defer rows.Close()
	out := []contract.UnattributedMovement{}
	for rows.Next() {
		var (
			m      contract.UnattributedMovement
			status string
		)
		if err := rows.Scan(&m.MovementID, &m.ProductID, &m.AttemptID, &m.Kind, &m.Delta, &status); err != nil {
			return nil, fmt.Errorf("scan unattributed movement: %w", err)
		}
		m.AttemptStatus = contract.AttemptStatus(status)
		out = append(out, m)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("find unattributed movements: %w", err)
	}
	return out, rows.Close()
}

func nullString(s string) sql.NullString { return sql.NullString{String: s, Valid: s != ""} }
