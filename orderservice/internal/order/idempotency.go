package order

import (
	"cmp"
	"crypto/sha256"
	"encoding/hex"
	"slices"
	"strconv"

	"github.com/stockfence/stockfence/shared/contract"
)

// MaxIdempotencyKeyLen is the longest Idempotency-Key the service accepts.
const MaxIdempotencyKeyLen = 64

// ValidateIdempotencyKey checks a non-empty key: 1 to MaxIdempotencyKeyLen
// printable ASCII characters (space through tilde).
func ValidateIdempotencyKey(key string) error {
	const field = "Idempotency-Key"
	if key == "" || len(key) > MaxIdempotencyKeyLen {
		return Invalid(field, "must be 1 to 64 printable ASCII characters")
	}
	for i := 0; i < len(key); i++ {
		if key[i] < 0x20 || key[i] > 0x7e {
			return Invalid(field, "must be 1 to 64 printable ASCII characters")
		}
	}
	return nil
}

// RequestHash returns the hex SHA-256 of the canonical form of an order
// request, the fingerprint stored with an idempotency key. The canonical form
// lists the lines sorted by product id (ids are unique within an order), so
// the same lines sent in another order or with other JSON spacing are the same
// request; any other difference in product or quantity is a different one.
func RequestHash(items []contract.Item) string {
	sorted := slices.Clone(items)
	slices.SortFunc(sorted, func(a, b contract.Item) int { return cmp.Compare(a.ProductID, b.ProductID) })
	buf := []byte("order-request/v1\n")
	for _, it := range sorted {
		buf = strconv.AppendInt(buf, it.ProductID, 10)
		buf = append(buf, ':')
		buf = strconv.AppendInt(buf, int64(it.Quantity), 10)
		buf = append(buf, '\n')
	}
	sum := sha256.Sum256(buf)
	return hex.EncodeToString(sum[:])
}
