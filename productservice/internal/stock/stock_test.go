package stock_test

import (
	"reflect"
	"testing"

	"github.com/stockfence/stockfence/productservice/internal/stock"
	"github.com/stockfence/stockfence/shared/contract"
)

func request(items ...contract.Item) contract.ReserveRequest {
	return contract.ReserveRequest{AttemptID: "a", OrderID: "o", Items: items}
}

func TestReserveAllOrNothing(t *testing.T) {
	locked := stock.Locked{1: {PriceCents: 250, Stock: 3}, 2: {PriceCents: 1000, Stock: 1}}

	res := locked.Reserve(request(contract.Item{ProductID: 1, Quantity: 2}, contract.Item{ProductID: 2, Quantity: 2}))
	if res.Status != contract.StatusRejected || res.Reason != contract.ReasonInsufficientStock {
		t.Fatalf("status, reason = %s, %s; want REJECTED, insufficient_stock", res.Status, res.Reason)
	}
	if want := []contract.Shortage{{ProductID: 2, Requested: 2, Available: 1}}; !reflect.DeepEqual(res.Shortages, want) {
		t.Fatalf("shortages = %v, want %v", res.Shortages, want)
	}
	if locked[1].Stock != 3 || locked[2].Stock != 1 {
		t.Fatalf("a rejected request took stock: %d, %d", locked[1].Stock, locked[2].Stock)
	}

	res = locked.Reserve(request(contract.Item{ProductID: 2, Quantity: 1}, contract.Item{ProductID: 1, Quantity: 3}))
	if res.Status != contract.StatusApplied {
		t.Fatalf("status = %s, want APPLIED", res.Status)
	}
	want := []contract.ReservedItem{{ProductID: 2, Quantity: 1, UnitPriceCents: 1000}, {ProductID: 1, Quantity: 3, UnitPriceCents: 250}}
	if !reflect.DeepEqual(res.Items, want) {
		t.Fatalf("items = %v, want %v (request order, with prices)", res.Items, want)
	}
	if locked[1].Stock != 0 || locked[2].Stock != 0 {
		t.Fatalf("stock after = %d, %d; want 0, 0", locked[1].Stock, locked[2].Stock)
	}

	// The running stock is what the next request in a batch sees.
	res = locked.Reserve(request(contract.Item{ProductID: 1, Quantity: 1}))
	if res.Status != contract.StatusRejected || res.Shortages[0].Available != 0 {
		t.Fatalf("after sell-out: %+v", res)
	}
}

func TestReserveUnknownProductWins(t *testing.T) {
	locked := stock.Locked{1: {Stock: 0}}
	res := locked.Reserve(request(contract.Item{ProductID: 1, Quantity: 1}, contract.Item{ProductID: 9, Quantity: 1}))
	if res.Status != contract.StatusRejected || res.Reason != contract.ReasonUnknownProduct {
		t.Fatalf("status, reason = %s, %s; want REJECTED, unknown_product", res.Status, res.Reason)
	}
	if !reflect.DeepEqual(res.UnknownProducts, []int64{9}) || res.Shortages != nil {
		t.Fatalf("unknown = %v, shortages = %v", res.UnknownProducts, res.Shortages)
	}
}

func TestSortedIDs(t *testing.T) {
	got := stock.SortedIDs([]contract.Item{{ProductID: 5}, {ProductID: 2}, {ProductID: 9}, {ProductID: 2}})
	if want := []int64{2, 5, 9}; !reflect.DeepEqual(got, want) {
		t.Fatalf("SortedIDs = %v, want %v", got, want)
	}
}

func TestSameItems(t *testing.T) {
	recorded := []contract.ReservedItem{{ProductID: 1, Quantity: 2, UnitPriceCents: 5}, {ProductID: 3, Quantity: 1}}
	tests := []struct {
		name  string
		items []contract.Item
		want  bool
	}{
		{"same, other order", []contract.Item{{ProductID: 3, Quantity: 1}, {ProductID: 1, Quantity: 2}}, true},
		{"other quantity", []contract.Item{{ProductID: 1, Quantity: 1}, {ProductID: 3, Quantity: 1}}, false},
		{"missing line", []contract.Item{{ProductID: 1, Quantity: 2}}, false},
		{"other product", []contract.Item{{ProductID: 1, Quantity: 2}, {ProductID: 4, Quantity: 1}}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := stock.SameItems(recorded, tt.items); got != tt.want {
				t.Fatalf("SameItems = %v, want %v", got, tt.want)
			}
		})
	}
}

func TestValidateID(t *testing.T) {
	tests := []struct {
		id string
		ok bool
	}{
		{"0191f1d2-7c4e-7a55-9a1e-0c7e8d1e2f30", true},
		{"0191F1D2-7C4E-7A55-9A1E-0C7E8D1E2F30", false},
		{"{0191f1d2-7c4e-7a55-9a1e-0c7e8d1e2f30}", false},
		{"0191f1d27c4e7a559a1e0c7e8d1e2f30", false},
		{"", false},
		{"not-a-uuid", false},
	}
	for _, tt := range tests {
		if got := len(stock.ValidateID("attemptId", tt.id)) == 0; got != tt.ok {
			t.Errorf("ValidateID(%q) ok = %v, want %v", tt.id, got, tt.ok)
		}
	}
}
