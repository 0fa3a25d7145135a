package contract_test

import (
	"encoding/json"
	"math"
	"strings"
	"testing"

	"github.com/stockfence/stockfence/shared/contract"
)

func TestValidateItems(t *testing.T) {
	lines := func(n int) []contract.Item {
		items := make([]contract.Item, n)
		for i := range items {
			items[i] = contract.Item{ProductID: int64(i + 1), Quantity: 1}
		}
		return items
	}
	tests := []struct {
		name  string
		items []contract.Item
		ok    bool
	}{
		{"one line", lines(1), true},
		{"max lines", lines(contract.MaxLines), true},
		{"no lines", nil, false},
		{"too many lines", lines(contract.MaxLines + 1), false},
		{"zero quantity", []contract.Item{{ProductID: 1, Quantity: 0}}, false},
		{"negative quantity", []contract.Item{{ProductID: 1, Quantity: -3}}, false},
		{"max quantity", []contract.Item{{ProductID: 1, Quantity: contract.MaxQuantity}}, true},
		{"quantity above max", []contract.Item{{ProductID: 1, Quantity: contract.MaxQuantity + 1}}, false},
		{"zero product id", []contract.Item{{ProductID: 0, Quantity: 1}}, false},
		{"duplicate product", []contract.Item{{ProductID: 7, Quantity: 1}, {ProductID: 7, Quantity: 2}}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			errs := contract.ValidateItems(tt.items)
			if got := len(errs) == 0; got != tt.ok {
				t.Fatalf("valid = %v, want %v (errors %v)", got, tt.ok, errs)
			}
		})
	}
}

// TestBatchOfLargestRequestsFits: a batch of MaxBatchReservations requests,
// each as large as the limits allow, fits MaxBatchBodyBytes, so a client
// need only count requests.
func TestBatchOfLargestRequestsFits(t *testing.T) {
	items := make([]contract.Item, contract.MaxLines)
	for i := range items {
		items[i] = contract.Item{ProductID: math.MaxInt64 - int64(i), Quantity: contract.MaxQuantity}
	}
	id := strings.Repeat("f", 36) // a UUID's length
	reqs := make([]contract.ReserveRequest, contract.MaxBatchReservations)
	for i := range reqs {
		reqs[i] = contract.ReserveRequest{AttemptID: id, OrderID: id, Items: items}
	}
	body, err := json.MarshalIndent(contract.ReserveBatchRequest{Reservations: reqs}, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	if len(body) > contract.MaxBatchBodyBytes {
		t.Fatalf("largest batch is %d bytes, over MaxBatchBodyBytes %d", len(body), contract.MaxBatchBodyBytes)
	}
}
