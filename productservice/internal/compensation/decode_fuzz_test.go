package compensation

import (
	"encoding/json"
	"regexp"
	"testing"

	"github.com/stockfence/stockfence/shared/contract"
)

// canonicalID is the log's form of attempt and order ids, written out
// independently of stock.ValidateID.
var canonicalID = regexp.MustCompile(`^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$`)

// FuzzDecodeCompensation decodes arbitrary values of stock-compensations.
// Invariants: no panic; a value that decodes names a canonical attempt id
// and order id (so a compensation can never reach the store under another
// spelling of an id); it encodes and decodes again unchanged.
func FuzzDecodeCompensation(f *testing.F) {
	f.Fuzz(func(t *testing.T, value []byte) {
		c, err := decode(value)
		if err != nil {
			return
		}
		if !canonicalID.MatchString(c.AttemptID) || !canonicalID.MatchString(c.OrderID) {
			t.Fatalf("%q decodes to attempt %q, order %q", value, c.AttemptID, c.OrderID)
		}
		raw, err := json.Marshal(c)
		if err != nil {
			t.Fatalf("%q decodes to %+v, which does not encode: %v", value, c, err)
		}
		again, err := decode(raw)
		if err != nil {
			t.Fatalf("%+v encodes to %s, which does not decode: %v", c, raw, err)
		}
		if !again.CreatedAt.Equal(c.CreatedAt) {
			t.Fatalf("createdAt %v came back as %v", c.CreatedAt, again.CreatedAt)
		}
		again.CreatedAt = c.CreatedAt
		if again != c {
			t.Fatalf("%+v encoded and decoded is %+v", c, again)
		}
		var generic contract.Compensation
		if err := json.Unmarshal(raw, &generic); err != nil || generic.MessageID != c.MessageID {
			t.Fatalf("%s does not decode as a plain contract.Compensation: %v", raw, err)
		}
	})
}
