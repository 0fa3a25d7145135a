package contract

// Movement kinds of the product side's ledger (stock_movements.kind). For
// every product, stock = the sum of its movements' deltas.
const (
	// MovementInitial is the stock a product was created with.
	MovementInitial = "initial"
	// MovementRestock is stock added by POST /products/{id}/restock.
	MovementRestock = "restock"
	// MovementReserve is stock taken by an applied reservation (a negative
	// delta); it is legitimate only for an APPLIED or COMPENSATED attempt.
	MovementReserve = "reserve"
	// MovementCompensate is stock given back by a compensation (a positive
	// delta); it is legitimate only for a COMPENSATED attempt.
	MovementCompensate = "compensate"
)

// Ledger is the body of GET /ledger: the product side's own books, for
// reconciliation. Products lists every product in id order with its stock and
// the sum of its ledger; the two differ only when the stock was changed
// outside the ledger. Unattributed lists the reserve and compensate movements
// that no attempt explains, in ledger order; it is empty when the books are
// sound.
type Ledger struct {
	Products     []ProductBalance       `json:"products"`
	Unattributed []UnattributedMovement `json:"unattributed"`
}

// ProductBalance is one product's stock and the sum of its ledger deltas
// (LedgerSum), which must be equal.
type ProductBalance struct {
	ProductID int64 `json:"productId"`
	Stock     int64 `json:"stock"`
	LedgerSum int64 `json:"ledgerSum"`
}

// UnattributedMovement is a reserve or compensate movement whose attempt is
// missing from the log (AttemptStatus empty; AttemptID empty too when the
// movement names none) or has a status that does not allow it: a reserve
// needs an APPLIED or COMPENSATED attempt, a compensate a COMPENSATED one.
// MovementID is the ledger row's id.
type UnattributedMovement struct {
	MovementID    int64         `json:"movementId"`
	ProductID     int64         `json:"productId"`
	AttemptID     string        `json:"attemptId"`
	Kind          string        `json:"kind"`
	Delta         int64         `json:"delta"`
	AttemptStatus AttemptStatus `json:"attemptStatus,omitempty"`
}
