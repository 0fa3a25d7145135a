package httpapi

import (
	"testing"

	"github.com/stockfence/stockfence/productservice/internal/stock"
)

// FuzzDecodeCursor decodes arbitrary cursors of GET /reservations.
// Invariants: no panic; a cursor that decodes names a canonical attempt id;
// encoding what it decodes to and decoding that again gives the same
// position, and the same cursor again.
func FuzzDecodeCursor(f *testing.F) {
	f.Fuzz(func(t *testing.T, s string) {
		c, err := decodeCursor(s)
		if err != nil {
			return
		}
		if stock.ValidateID("cursor", c.AttemptID) != nil {
			t.Fatalf("%q decodes to attempt %q", s, c.AttemptID)
		}
		again, err := decodeCursor(encodeCursor(c))
		if err != nil {
			t.Fatalf("%q decodes to %+v, whose cursor %q does not decode: %v", s, c, encodeCursor(c), err)
		}
		if !again.UpdatedAt.Equal(c.UpdatedAt) || again.AttemptID != c.AttemptID {
			t.Fatalf("%q decodes to %+v, its cursor to %+v", s, c, again)
		}
		if encodeCursor(again) != encodeCursor(c) {
			t.Fatalf("%+v and %+v, the same position, encode differently", c, again)
		}
	})
}
