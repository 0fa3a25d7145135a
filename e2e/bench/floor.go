package bench

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"strings"

	"github.com/google/uuid"

	"github.com/stockfence/stockfence/shared/contract"
	"github.com/stockfence/stockfence/shared/mysqldb"
	schema "github.com/stockfence/stockfence/sql"
)

// IDs of the database floors.
const (
	idFloorSingle = "5a"
	idFloorBatch  = "5b"
)

// The product service's reservation SQL, statement for statement: Reserve
// and ReserveBatch in productservice/internal/mysql (store.go, batch.go),
// which another module cannot import. Keep them in step with those files.
const (
	sqlInsertAttempt = `INSERT INTO stock_attempts (attempt_id, order_id, status) VALUES (?, ?, 'REJECTED')`
	sqlLockProducts  = `SELECT id, price_cents, stock FROM products WHERE id IN (?) ORDER BY id FOR UPDATE`
	sqlTakeStock     = `UPDATE products SET stock = stock - ? WHERE id = ?`
	sqlMovements     = `INSERT INTO stock_movements (product_id, attempt_id, delta, kind) VALUES `
	sqlFinishAttempt = `UPDATE stock_attempts SET status = ?, items = ?, reason = ?, rejection = ? WHERE attempt_id = ?`
	sqlRecordBatch   = `INSERT INTO stock_attempts (attempt_id, order_id, status, items, reason, rejection) VALUES `
)

// dbFloor is scenario 5: the reservation SQL on one hot row with
// database/sql and no services, one reservation per transaction from
// floorConns connections (5a), then floorBatch per transaction from Lanes
// connections (5b), each for floorDuration on a fresh database.
func (r *runner) dbFloor(ctx context.Context) []Result {
	out := []Result{r.floorRun(ctx, idFloorSingle, r.prof.floorConns, 1)}
	if ctx.Err() == nil {
		out = append(out, r.floorRun(ctx, idFloorBatch, r.lanes, r.prof.floorBatch))
	}
	return out
}

func (r *runner) floorRun(ctx context.Context, id string, conns, batch int) Result {
	desc := "DB floor, 1 reservation per transaction"
	latencyOf := "transaction"
	if batch > 1 {
		desc = fmt.Sprintf("DB floor, %d reservations per transaction", batch)
		latencyOf = fmt.Sprintf("transaction of %d", batch)
	}
	mode := fmt.Sprintf("%d conns", conns)
	const unit = "reservations"
	name, err := r.freshDB(ctx, "bench_floor")
	if err != nil {
		return failed(id, desc, mode, unit, err)
	}
	res := func() Result {
		db, err := mysqldb.Open(ctx, r.dsn(name), conns)
		if err != nil {
			return failed(id, desc, mode, unit, err)
		}
		defer db.Close()
		if err := schema.Apply(ctx, db, schema.Products); err != nil {
			return failed(id, desc, mode, unit, err)
		}
		productID, err := seedFloor(ctx, db, r.prof.floorStock)
		if err != nil {
			return failed(id, desc, mode, unit, err)
		}
		fn := func(ctx context.Context, _ int, _ int64) (int64, error) {
			if batch == 1 {
				return reserveOne(ctx, db, productID)
			}
			return reserveBatch(ctx, db, productID, batch)
		}
		d := drive{label: fmt.Sprintf("%s %s", id, desc), unit: unit, workers: conns,
			duration: r.prof.floorDuration, progress: r.progress}
		out, err := d.run(ctx, fn)
		if err != nil {
			return failed(id, desc, mode, unit, err)
		}
		res := measured(id, desc, mode, unit, latencyOf, out)
		noErrors := checkf("all answered", out.errors == 0, "%s transactions failed", thousands(out.errors))
		if out.firstErr != nil {
			noErrors.Detail += "; first: " + out.firstErr.Error()
		}
		res.Checks = append(res.Checks, noErrors)
		pb, err := readProductBooks(ctx, r.admin, name)
		if err != nil {
			return withError(res, err)
		}
		applied := pb.attempts[string(contract.StatusApplied)]
		res.Checks = append(res.Checks, checkf("applied count", applied == out.units,
			"%s APPLIED in the log, %s counted by the harness", thousands(applied), thousands(out.units)))
		res.Checks = append(res.Checks, pb.checks(map[int64]int64{productID: r.prof.floorStock - out.units})...)
		per, note := pb.perTransaction()
		res.PerTransaction, res.Notes = per, []string{note}
		return res
	}()
	if err := r.dropDB(ctx, name); err != nil {
		res.Checks = append(res.Checks, Check{Name: "clean stop", Detail: err.Error()})
	}
	return res
}

// seedFloor creates the hot product with its initial ledger row, as the
// product service's CreateProduct does.
func seedFloor(ctx context.Context, db *sql.DB, stock int64) (int64, error) {
	var id int64
	err := mysqldb.InTx(ctx, db, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, `INSERT INTO products (sku, name, price_cents, stock) VALUES (?, ?, ?, ?)`,
			"bench-floor", "Floor item", hotPriceCents, stock)
		if err != nil {
			return fmt.Errorf("insert product: %w", err)
		}
		if id, err = res.LastInsertId(); err != nil {
			return fmt.Errorf("product id: %w", err)
		}
		if _, err := tx.ExecContext(ctx, `INSERT INTO stock_movements (product_id, delta, kind) VALUES (?, ?, ?)`,
			id, stock, contract.MovementInitial); err != nil {
			return fmt.Errorf("record initial stock: %w", err)
		}
		return nil
	})
	return id, err
}

// rejection is what an attempt row keeps of a refusal (as in the product
// service).
type rejection struct {
	Shortages []contract.Shortage `json:"shortages,omitempty"`
}

// reserveOne is Store.Reserve for one unit of productID: in one READ
// COMMITTED transaction, retried on deadlock and lock-wait timeout, insert
// the attempt row, lock the product row, take the stock and write the
// ledger row when it suffices, record the outcome on the attempt row. It
// returns how many reservations it applied (1, or 0 once the stock is gone).
func reserveOne(ctx context.Context, db *sql.DB, productID int64) (int64, error) {
	attemptID, orderID := uuid.NewString(), uuid.NewString()
	var applied int64
	err := mysqldb.InTx(ctx, db, func(tx *sql.Tx) error {
		applied = 0
		if _, err := tx.ExecContext(ctx, sqlInsertAttempt, attemptID, orderID); err != nil {
			return fmt.Errorf("insert attempt %s: %w", attemptID, err)
		}
		price, stock, err := lockProduct(ctx, tx, productID)
		if err != nil {
			return err
		}
		status, reason := contract.StatusRejected, sql.NullString{String: contract.ReasonInsufficientStock, Valid: true}
		line := contract.ReservedItem{ProductID: productID, Quantity: 1}
		var rejected []byte
		if stock >= 1 {
			if _, err := tx.ExecContext(ctx, sqlTakeStock, 1, productID); err != nil {
				return fmt.Errorf("take stock of product %d: %w", productID, err)
			}
			if _, err := tx.ExecContext(ctx, sqlMovements+"(?, ?, ?, ?)", productID, attemptID, -1, contract.MovementReserve); err != nil {
				return fmt.Errorf("record movements of attempt %s: %w", attemptID, err)
			}
			status, reason, line.UnitPriceCents, applied = contract.StatusApplied, sql.NullString{}, price, 1
		} else if rejected, err = json.Marshal(rejection{[]contract.Shortage{{ProductID: productID, Requested: 1, Available: int(stock)}}}); err != nil {
			return fmt.Errorf("encode rejection: %w", err)
		}
		items, err := json.Marshal([]contract.ReservedItem{line})
		if err != nil {
			return fmt.Errorf("encode items: %w", err)
		}
		if _, err := tx.ExecContext(ctx, sqlFinishAttempt, status, items, reason, rejected, attemptID); err != nil {
			return fmt.Errorf("record attempt %s: %w", attemptID, err)
		}
		return nil
	})
	return applied, err
}

// reserveBatch is Store.ReserveBatch for n reservations of one unit of
// productID: in one transaction, lock the product row once, check each
// request in order against the running stock, then in one round trip insert
// every attempt row with its outcome, take the stock with one update and
// write the ledger rows with one multi-row insert. It returns how many
// reservations it applied.
func reserveBatch(ctx context.Context, db *sql.DB, productID int64, n int) (int64, error) {
	attempts, orders := make([]string, n), make([]string, n)
	for i := range attempts {
		attempts[i], orders[i] = uuid.NewString(), uuid.NewString()
	}
	var applied int64
	err := mysqldb.InTx(ctx, db, func(tx *sql.Tx) error {
		applied = 0
		price, stock, err := lockProduct(ctx, tx, productID)
		if err != nil {
			return err
		}
		var movements []any
		finish := make([]any, 0, 6*n)
		for i := range attempts {
			status, reason := contract.StatusRejected, sql.NullString{String: contract.ReasonInsufficientStock, Valid: true}
			line := contract.ReservedItem{ProductID: productID, Quantity: 1}
			var rejected []byte
			if stock-applied >= 1 {
				applied++
				movements = append(movements, productID, attempts[i], -1, contract.MovementReserve)
				status, reason, line.UnitPriceCents = contract.StatusApplied, sql.NullString{}, price
			} else if rejected, err = json.Marshal(rejection{[]contract.Shortage{{ProductID: productID, Requested: 1, Available: int(stock - applied)}}}); err != nil {
				return fmt.Errorf("encode rejection: %w", err)
			}
			items, err := json.Marshal([]contract.ReservedItem{line})
			if err != nil {
				return fmt.Errorf("encode items: %w", err)
			}
			finish = append(finish, attempts[i], orders[i], status, items, reason, rejected)
		}
		var writes mysqldb.Script
		writes.Add(sqlRecordBatch+rowsOf("(?, ?, ?, ?, ?, ?)", n), finish...)
		if applied > 0 {
			writes.Add(sqlTakeStock, applied, productID)
			writes.Add(sqlMovements+rowsOf("(?, ?, ?, ?)", int(applied)), movements...)
		}
		if err := writes.Exec(ctx, tx); err != nil {
			return fmt.Errorf("record %d attempts: %w", n, err)
		}
		return nil
	})
	return applied, err
}

// lockProduct locks one product row as the product service locks the rows
// of a reservation, and returns its price and stock.
func lockProduct(ctx context.Context, tx *sql.Tx, productID int64) (price, stock int64, err error) {
	rows, err := tx.QueryContext(ctx, sqlLockProducts, productID)
	if err != nil {
		return 0, 0, fmt.Errorf("lock products [%d]: %w", productID, err)
	}
	defer rows.Close()
	found := false
	for rows.Next() {
		var id int64
		if err := rows.Scan(&id, &price, &stock); err != nil {
			return 0, 0, fmt.Errorf("scan product: %w", err)
		}
		found = true
	}
	if err := rows.Err(); err != nil {
		return 0, 0, fmt.Errorf("lock products [%d]: %w", productID, err)
	}
	if !found {
		return 0, 0, fmt.Errorf("product %d: not found", productID)
	}
	return price, stock, rows.Close()
}

// rowsOf returns n copies of row, comma-separated, for a multi-row VALUES.
func rowsOf(row string, n int) string {
	return strings.TrimSuffix(strings.Repeat(row+",", n), ",")
}
