package bench

import (
	"context"
	"database/sql"
	"fmt"
	"slices"
	"strings"
)

// productBooks is what the product database says after a run, read
// directly with SQL, independently of the service's code.
type productBooks struct {
	// stock, ledger and lowest are per product id: the stock column, the
	// sum of its ledger, and the lowest running sum of its ledger in
	// movement order. Movements of a product are inserted under its row
	// lock, so their ids follow commit order and a negative running sum
	// would be a moment of negative stock.
	stock, ledger, lowest map[int64]int64
	// attempts counts the attempt log by status.
	attempts map[string]int64
	// transactions estimates how many transactions wrote the attempts: the
	// distinct created_at values (a multi-row insert stamps its rows with
	// one statement time; single inserts almost never share a
	// microsecond).
	transactions int64
}

// readProductBooks reads the books of products database name.
func readProductBooks(ctx context.Context, db *sql.DB, name string) (productBooks, error) {
	b := productBooks{stock: map[int64]int64{}, ledger: map[int64]int64{}, lowest: map[int64]int64{}, attempts: map[string]int64{}}
	q := "SELECT p.id, p.stock, COALESCE(l.total, 0), COALESCE(l.lowest, 0) FROM `" + name + "`.products p " +
		"LEFT JOIN (SELECT product_id, SUM(delta) AS total, MIN(running) AS lowest FROM (" +
		"SELECT product_id, delta, SUM(delta) OVER (PARTITION BY product_id ORDER BY id) AS running " +
		"FROM `" + name + "`.stock_movements) m GROUP BY product_id) l ON l.product_id = p.id"
	if err := scanRows(ctx, db, q, func(rows *sql.Rows) error {
		var id, stock, ledger, lowest int64
		if err := rows.Scan(&id, &stock, &ledger, &lowest); err != nil {
			return err
		}
		b.stock[id], b.ledger[id], b.lowest[id] = stock, ledger, lowest
		return nil
	}); err != nil {
		return b, fmt.Errorf("read stock and ledger of %s: %w", name, err)
	}
	q = "SELECT status, COUNT(*) FROM `" + name + "`.stock_attempts GROUP BY status"
	if err := scanRows(ctx, db, q, func(rows *sql.Rows) error {
		var status string
		var n int64
		if err := rows.Scan(&status, &n); err != nil {
			return err
		}
		b.attempts[status] = n
		return nil
	}); err != nil {
		return b, fmt.Errorf("count attempts of %s: %w", name, err)
	}
	q = "SELECT COUNT(DISTINCT created_at) FROM `" + name + "`.stock_attempts"
	if err := db.QueryRowContext(ctx, q).Scan(&b.transactions); err != nil {
		return b, fmt.Errorf("count attempt transactions of %s: %w", name, err)
	}
	return b, nil
}

// checks returns the stock checks: every product's stock is what the
// harness expects (want), equals its ledger sum, and never went negative.
func (b productBooks) checks(want map[int64]int64) []Check {
	var wrongStock, wrongLedger, negative []string
	for _, id := range sortedKeys(want) {
		if b.stock[id] != want[id] {
			wrongStock = append(wrongStock, fmt.Sprintf("product %d has %d, want %d", id, b.stock[id], want[id]))
		}
	}
	for _, id := range sortedKeys(b.stock) {
		if b.ledger[id] != b.stock[id] {
			wrongLedger = append(wrongLedger, fmt.Sprintf("product %d: stock %d, ledger %d", id, b.stock[id], b.ledger[id]))
		}
		if b.lowest[id] < 0 || b.stock[id] < 0 {
			negative = append(negative, fmt.Sprintf("product %d went down to %d", id, min(b.lowest[id], b.stock[id])))
		}
	}
	describe := func(problems []string, fine string) string {
		if len(problems) == 0 {
			return fine
		}
		if len(problems) > 3 {
			return fmt.Sprintf("%s and %d more", strings.Join(problems[:3], "; "), len(problems)-3)
		}
		return strings.Join(problems, "; ")
	}
	final := fmt.Sprintf("all %d products as expected", len(want))
	if len(want) == 1 {
		for id, n := range want {
			final = fmt.Sprintf("product %d has %s, as expected", id, thousands(n))
		}
	}
	return []Check{
		{Name: "final stock", OK: len(wrongStock) == 0, Detail: describe(wrongStock, final)},
		{Name: "ledger = stock", OK: len(wrongLedger) == 0, Detail: describe(wrongLedger, "stock equals the sum of the ledger for every product")},
		{Name: "never negative", OK: len(negative) == 0, Detail: describe(negative, "no running ledger sum below 0")},
	}
}

// perTransaction returns how many reservations a transaction applied, on
// average, and a note saying so.
func (b productBooks) perTransaction() (float64, string) {
	var total int64
	for _, n := range b.attempts {
		total += n
	}
	if b.transactions == 0 {
		return 0, "no attempts recorded"
	}
	per := float64(total) / float64(b.transactions)
	statuses := make([]string, 0, len(b.attempts))
	for _, status := range sortedKeys(b.attempts) {
		statuses = append(statuses, status+" "+thousands(b.attempts[status]))
	}
	return per, fmt.Sprintf("≈ %.1f reservations per product-side transaction (%s attempts: %s; %s distinct insert times)",
		per, thousands(total), strings.Join(statuses, ", "), thousands(b.transactions))
}

// orderBooks is what the orders database says after a run, cross-checked
// with the products database on the same server.
type orderBooks struct {
	// byStatus counts orders by status, failed counts FAILED orders by
	// reason.
	byStatus, failed map[string]int64
	// confirmedApplied counts CONFIRMED orders with an attempt that the
	// product side records as APPLIED; appliedNotConfirmed counts APPLIED
	// product-side attempts whose order is missing or not CONFIRMED.
	confirmedApplied, appliedNotConfirmed int64
}

// readOrderBooks reads orders database orders and joins it with products
// database products.
func readOrderBooks(ctx context.Context, db *sql.DB, orders, products string) (orderBooks, error) {
	b := orderBooks{byStatus: map[string]int64{}, failed: map[string]int64{}}
	q := "SELECT status, COALESCE(reason, ''), COUNT(*) FROM `" + orders + "`.orders GROUP BY status, reason"
	if err := scanRows(ctx, db, q, func(rows *sql.Rows) error {
		var status, reason string
		var n int64
		if err := rows.Scan(&status, &reason, &n); err != nil {
			return err
		}
		b.byStatus[status] += n
		if status == statusFailed {
			b.failed[reason] += n
		}
		return nil
	}); err != nil {
		return b, fmt.Errorf("count orders of %s: %w", orders, err)
	}
	q = "SELECT COUNT(DISTINCT o.id) FROM `" + orders + "`.orders o " +
		"JOIN `" + orders + "`.order_attempts oa ON oa.order_id = o.id " +
		"JOIN `" + products + "`.stock_attempts sa ON sa.attempt_id = oa.attempt_id AND sa.status = 'APPLIED' " +
		"WHERE o.status = 'CONFIRMED'"
	if err := db.QueryRowContext(ctx, q).Scan(&b.confirmedApplied); err != nil {
		return b, fmt.Errorf("match confirmed orders with applied attempts: %w", err)
	}
	q = "SELECT COUNT(*) FROM `" + products + "`.stock_attempts sa " +
		"LEFT JOIN `" + orders + "`.order_attempts oa ON oa.attempt_id = sa.attempt_id " +
		"LEFT JOIN `" + orders + "`.orders o ON o.id = oa.order_id " +
		"WHERE sa.status = 'APPLIED' AND (o.status IS NULL OR o.status <> 'CONFIRMED')"
	if err := db.QueryRowContext(ctx, q).Scan(&b.appliedNotConfirmed); err != nil {
		return b, fmt.Errorf("match applied attempts with confirmed orders: %w", err)
	}
	return b, nil
}

// unsettled is how many orders are in none of the terminal statuses.
func (b orderBooks) unsettled() int64 {
	var n int64
	for status, c := range b.byStatus {
		if status != statusConfirmed && status != statusFailed && status != statusCancelled {
			n += c
		}
	}
	return n
}

// checks returns the order-side checks: every order settled, confirmed and
// failed as many as wanted, and confirmed orders exactly the applied
// attempts (applied is the product side's APPLIED count).
func (b orderBooks) checks(wantConfirmed, wantFailed, applied int64) []Check {
	confirmed, failed := b.byStatus[statusConfirmed], b.byStatus[statusFailed]
	return []Check{
		checkf("all settled", b.unsettled() == 0, "%s orders not settled", thousands(b.unsettled())),
		checkf("confirmed count", confirmed == wantConfirmed, "%s CONFIRMED, want %s", thousands(confirmed), thousands(wantConfirmed)),
		checkf("failed count", failed == wantFailed, "%s FAILED%s, want %s", thousands(failed), reasons(b.failed), thousands(wantFailed)),
		checkf("confirmed = applied", b.confirmedApplied == confirmed && applied == confirmed && b.appliedNotConfirmed == 0,
			"%s CONFIRMED orders, %s of them with an APPLIED attempt; %s APPLIED attempts, %s of them without a CONFIRMED order",
			thousands(confirmed), thousands(b.confirmedApplied), thousands(applied), thousands(b.appliedNotConfirmed)),
	}
}

// matches checks that what the shoppers were told (abandoned orders looked
// up once settled) is what the orders database holds: confirmed CONFIRMED
// orders and other orders in any other status.
func (b orderBooks) matches(confirmed, other int64) Check {
	var total int64
	for _, n := range b.byStatus {
		total += n
	}
	dbConfirmed := b.byStatus[statusConfirmed]
	return checkf("client = database", confirmed == dbConfirmed && other == total-dbConfirmed,
		"shoppers were told %s CONFIRMED and %s otherwise; the database has %s and %s",
		thousands(confirmed), thousands(other), thousands(dbConfirmed), thousands(total-dbConfirmed))
}

// reasons formats FAILED reasons as " (insufficient_stock 10,000)".
func reasons(m map[string]int64) string {
	if len(m) == 0 {
		return ""
	}
	s := " ("
	for i, r := range sortedKeys(m) {
		if i > 0 {
			s += ", "
		}
		if r == "" {
			s += "no reason"
		} else {
			s += r
		}
		s += " " + thousands(m[r])
	}
	return s + ")"
}

func scanRows(ctx context.Context, db *sql.DB, q string, scan func(*sql.Rows) error) error {
	rows, err := db.QueryContext(ctx, q)
	if err != nil {
		return err
	}
	defer rows.Close()
	for rows.Next() {
		if err := scan(rows); err != nil {
			return err
		}
	}
	if err := rows.Err(); err != nil {
		return err
	}
	return rows.Close()
}

func sortedKeys[K int64 | string, V any](m map[K]V) []K {
	keys := make([]K, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}
