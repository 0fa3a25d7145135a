package mysql

import (
	"errors"
	"testing"

	"github.com/google/uuid"

	"github.com/stockfence/stockfence/orderservice/internal/order"
)

// FuzzDecodeCursor decodes arbitrary cursors of a customer's order list
// (GET /orders?cursor=). Invariants: no panic; a cursor that does not decode
// is a validation error (a 400, never a 500); one that decodes names an
// order id in canonical form and a time in UTC; encoding that position and
// decoding it again gives it back, and the same cursor again.
func FuzzDecodeCursor(f *testing.F) {
	f.Fuzz(func(t *testing.T, s string) {
		pos, err := decodeCursor(s)
		if err != nil {
			var invalid *order.ValidationError
			if !errors.As(err, &invalid) {
				t.Fatalf("%q: error %v is not a validation error", s, err)
			}
			return
		}
		if _, err := uuid.Parse(pos.id); err != nil || len(pos.id) != 36 {
			t.Fatalf("%q decodes to order id %q", s, pos.id)
		}
		if pos.createdAt.Location().String() != "UTC" {
			t.Fatalf("%q decodes to a time in %s", s, pos.createdAt.Location())
		}
		c := encodeCursor(pos)
		again, err := decodeCursor(c)
		if err != nil {
			t.Fatalf("%q decodes to %+v, whose cursor %q does not decode: %v", s, pos, c, err)
		}
		// The cursor keeps microseconds, as the database does.
		if !again.createdAt.Equal(pos.createdAt.Truncate(1000)) || again.id != pos.id {
			t.Fatalf("%q decodes to %+v, its cursor to %+v", s, pos, again)
		}
		if encodeCursor(again) != c {
			t.Fatalf("%+v encodes to %q, then to %q", pos, c, encodeCursor(again))
		}
	})
}
