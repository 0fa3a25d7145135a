package order_test

import (
	"errors"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/stockfence/stockfence/orderservice/internal/order"
	"github.com/stockfence/stockfence/shared/contract"
)

const (
	orderID   = "0190a000-0000-7000-8000-000000000001"
	attemptID = "0190a000-0000-7000-8000-0000000000a1"
)

var t0 = time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)

func newOrder() order.Order {
	items := []contract.Item{{ProductID: 1, Quantity: 2}, {ProductID: 5, Quantity: 1}}
	return order.New(orderID, attemptID, "alice", items, t0, t0.Add(3*time.Second))
}

func ptr[T any](v T) *T { return &v }

func TestSettle(t *testing.T) {
	t1 := t0.Add(time.Second)
	tests := []struct {
		name        string
		res         contract.Reservation
		status      order.Status
		attempt     order.AttemptStatus
		reason      string
		shortages   []contract.Shortage
		prices      []*int64
		total       *int64
		stillChecks bool
	}{
		{
			name: "applied with the order's lines confirms",
			res: contract.Reservation{AttemptID: attemptID, OrderID: orderID, Status: contract.StatusApplied,
				Items: []contract.ReservedItem{{ProductID: 5, Quantity: 1, UnitPriceCents: 250}, {ProductID: 1, Quantity: 2, UnitPriceCents: 100}}},
			status: order.StatusConfirmed, attempt: order.AttemptApplied,
			prices: []*int64{ptr[int64](100), ptr[int64](250)}, total: ptr[int64](450),
		},
		{
			name: "applied with another quantity compensates",
			res: contract.Reservation{AttemptID: attemptID, OrderID: orderID, Status: contract.StatusApplied,
				Items: []contract.ReservedItem{{ProductID: 1, Quantity: 3, UnitPriceCents: 100}, {ProductID: 5, Quantity: 1, UnitPriceCents: 250}}},
			status: order.StatusCompensating, attempt: order.AttemptApplied, reason: order.ReasonReservationMismatch,
			prices: []*int64{nil, nil}, stillChecks: true,
		},
		{
			name: "applied with a missing line compensates",
			res: contract.Reservation{AttemptID: attemptID, OrderID: orderID, Status: contract.StatusApplied,
				Items: []contract.ReservedItem{{ProductID: 1, Quantity: 2, UnitPriceCents: 100}}},
			status: order.StatusCompensating, attempt: order.AttemptApplied, reason: order.ReasonReservationMismatch,
			prices: []*int64{nil, nil}, stillChecks: true,
		},
		{
			name: "applied with a duplicated line compensates",
			res: contract.Reservation{AttemptID: attemptID, OrderID: orderID, Status: contract.StatusApplied,
				Items: []contract.ReservedItem{{ProductID: 1, Quantity: 2, UnitPriceCents: 100}, {ProductID: 1, Quantity: 2, UnitPriceCents: 100}}},
			status: order.StatusCompensating, attempt: order.AttemptApplied, reason: order.ReasonReservationMismatch,
			prices: []*int64{nil, nil}, stillChecks: true,
		},
		{
			name: "applied with a negative price compensates",
			res: contract.Reservation{AttemptID: attemptID, OrderID: orderID, Status: contract.StatusApplied,
				Items: []contract.ReservedItem{{ProductID: 1, Quantity: 2, UnitPriceCents: -1}, {ProductID: 5, Quantity: 1, UnitPriceCents: 250}}},
			status: order.StatusCompensating, attempt: order.AttemptApplied, reason: order.ReasonReservationMismatch,
			prices: []*int64{nil, nil}, stillChecks: true,
		},
		{
			name: "applied with a total that overflows compensates",
			res: contract.Reservation{AttemptID: attemptID, OrderID: orderID, Status: contract.StatusApplied,
				Items: []contract.ReservedItem{{ProductID: 1, Quantity: 2, UnitPriceCents: 1 << 62}, {ProductID: 5, Quantity: 1, UnitPriceCents: 250}}},
			status: order.StatusCompensating, attempt: order.AttemptApplied, reason: order.ReasonReservationMismatch,
			prices: []*int64{nil, nil}, stillChecks: true,
		},
		{
			name: "rejected for stock fails with shortages",
			res: contract.Reservation{AttemptID: attemptID, OrderID: orderID, Status: contract.StatusRejected,
				Reason: contract.ReasonInsufficientStock, Shortages: []contract.Shortage{{ProductID: 5, Requested: 1, Available: 0}}},
			status: order.StatusFailed, attempt: order.AttemptRejected, reason: contract.ReasonInsufficientStock,
			shortages: []contract.Shortage{{ProductID: 5, Requested: 1, Available: 0}},
			prices:    []*int64{nil, nil},
		},
		{
			name: "rejected for unknown products lists them as shortages",
			res: contract.Reservation{AttemptID: attemptID, OrderID: orderID, Status: contract.StatusRejected,
				Reason: contract.ReasonUnknownProduct, UnknownProducts: []int64{5}},
			status: order.StatusFailed, attempt: order.AttemptRejected, reason: contract.ReasonUnknownProduct,
			shortages: []contract.Shortage{{ProductID: 5, Requested: 1, Available: 0}},
			prices:    []*int64{nil, nil},
		},
		{
			name:   "rejected without a reason fails as rejected",
			res:    contract.Reservation{AttemptID: attemptID, OrderID: orderID, Status: contract.StatusRejected},
			status: order.StatusFailed, attempt: order.AttemptRejected, reason: order.ReasonRejected,
			prices: []*int64{nil, nil},
		},
		{
			name: "rejected with an overlong reason fails as rejected",
			res: contract.Reservation{AttemptID: attemptID, OrderID: orderID, Status: contract.StatusRejected,
				Reason: strings.Repeat("x", 33)},
			status: order.StatusFailed, attempt: order.AttemptRejected, reason: order.ReasonRejected,
			prices: []*int64{nil, nil},
		},
		{
			name:   "aborted keeps the order pending",
			res:    contract.Reservation{AttemptID: attemptID, OrderID: orderID, Status: contract.StatusAborted},
			status: order.StatusPending, attempt: order.AttemptAborted,
			prices: []*int64{nil, nil}, stillChecks: true,
		},
		{
			name:   "compensated keeps the order pending",
			res:    contract.Reservation{AttemptID: attemptID, OrderID: orderID, Status: contract.StatusCompensated},
			status: order.StatusPending, attempt: order.AttemptCompensated,
			prices: []*int64{nil, nil}, stillChecks: true,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			before := newOrder()
			got, err := before.Settle(tt.res, t1)
			if err != nil {
				t.Fatalf("Settle: %v", err)
			}
			if got.Status != tt.status {
				t.Errorf("status = %s, want %s", got.Status, tt.status)
			}
			if got.Attempts[0].Status != tt.attempt {
				t.Errorf("attempt status = %s, want %s", got.Attempts[0].Status, tt.attempt)
			}
			if got.Attempts[0].ResolvedAt == nil || !got.Attempts[0].ResolvedAt.Equal(t1) {
				t.Errorf("attempt resolvedAt = %v, want %v", got.Attempts[0].ResolvedAt, t1)
			}
			if got.Reason != tt.reason {
				t.Errorf("reason = %q, want %q", got.Reason, tt.reason)
			}
			if !reflect.DeepEqual(got.Shortages, tt.shortages) {
				t.Errorf("shortages = %+v, want %+v", got.Shortages, tt.shortages)
			}
			for i, l := range got.Lines {
				if !reflect.DeepEqual(l.UnitPriceCents, tt.prices[i]) {
					t.Errorf("line %d price = %v, want %v", i, deref(l.UnitPriceCents), deref(tt.prices[i]))
				}
			}
			if !reflect.DeepEqual(got.TotalCents, tt.total) {
				t.Errorf("total = %v, want %v", deref(got.TotalCents), deref(tt.total))
			}
			if gotChecks := got.NextCheckAt != nil; gotChecks != tt.stillChecks {
				t.Errorf("nextCheckAt set = %v, want %v", gotChecks, tt.stillChecks)
			}
			if !got.UpdatedAt.Equal(t1) {
				t.Errorf("updatedAt = %v, want %v", got.UpdatedAt, t1)
			}
			if !reflect.DeepEqual(before, newOrder()) {
				t.Errorf("Settle changed its receiver: %+v", before)
			}
		})
	}
}

func deref(p *int64) any {
	if p == nil {
		return nil
	}
	return *p
}

func TestSettleRefusesWhatIsNotOpen(t *testing.T) {
	t.Parallel()
	applied := contract.Reservation{AttemptID: attemptID, OrderID: orderID, Status: contract.StatusApplied,
		Items: []contract.ReservedItem{{ProductID: 1, Quantity: 2, UnitPriceCents: 1}, {ProductID: 5, Quantity: 1, UnitPriceCents: 1}}}
	confirmed, err := newOrder().Settle(applied, t0)
	if err != nil {
		t.Fatalf("Settle: %v", err)
	}
	tests := []struct {
		name  string
		order order.Order
		res   contract.Reservation
		want  error
	}{
		{"settled attempt", confirmed, applied, order.ErrAttemptNotOpen},
		{"another attempt", newOrder(), contract.Reservation{AttemptID: "other", OrderID: orderID, Status: contract.StatusApplied}, order.ErrInvalidReservation},
		{"another order", newOrder(), contract.Reservation{AttemptID: attemptID, OrderID: "other", Status: contract.StatusApplied}, order.ErrInvalidReservation},
		{"unknown status", newOrder(), contract.Reservation{AttemptID: attemptID, OrderID: orderID, Status: "SENT"}, order.ErrInvalidReservation},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := tt.order.Settle(tt.res, t0)
			if !errors.Is(err, tt.want) {
				t.Fatalf("err = %v, want %v", err, tt.want)
			}
		})
	}
}

func TestOpenAttempt(t *testing.T) {
	t.Parallel()
	o := newOrder()
	a, ok := o.OpenAttempt()
	if !ok || a.ID != attemptID {
		t.Fatalf("OpenAttempt = %+v, %v, want %s, true", a, ok, attemptID)
	}
	aborted, err := o.Settle(contract.Reservation{AttemptID: attemptID, OrderID: orderID, Status: contract.StatusAborted}, t0)
	if err != nil {
		t.Fatal(err)
	}
	if a, ok := aborted.OpenAttempt(); ok {
		t.Fatalf("OpenAttempt after abort = %+v, want none", a)
	}
}

func TestStatusSettled(t *testing.T) {
	t.Parallel()
	tests := []struct {
		status order.Status
		want   bool
	}{
		{order.StatusPending, false},
		{order.StatusConfirmed, true},
		{order.StatusFailed, true},
		{order.StatusCompensating, false},
		{order.StatusCancelling, false},
		{order.StatusCancelled, true},
	}
	for _, tt := range tests {
		if got := tt.status.Settled(); got != tt.want {
			t.Errorf("%s.Settled() = %v, want %v", tt.status, got, tt.want)
		}
	}
}

func TestRequestHash(t *testing.T) {
	t.Parallel()
	base := order.RequestHash([]contract.Item{{ProductID: 1, Quantity: 2}, {ProductID: 3, Quantity: 4}})
	if len(base) != 64 {
		t.Fatalf("len(hash) = %d, want 64", len(base))
	}
	tests := []struct {
		name  string
		items []contract.Item
		same  bool
	}{
		{"same lines", []contract.Item{{ProductID: 1, Quantity: 2}, {ProductID: 3, Quantity: 4}}, true},
		{"lines reordered", []contract.Item{{ProductID: 3, Quantity: 4}, {ProductID: 1, Quantity: 2}}, true},
		{"other quantity", []contract.Item{{ProductID: 1, Quantity: 2}, {ProductID: 3, Quantity: 5}}, false},
		{"other product", []contract.Item{{ProductID: 1, Quantity: 2}, {ProductID: 4, Quantity: 4}}, false},
		{"fewer lines", []contract.Item{{ProductID: 1, Quantity: 2}}, false},
		{"digits shifted", []contract.Item{{ProductID: 12, Quantity: 2}, {ProductID: 3, Quantity: 4}}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := order.RequestHash(tt.items) == base; got != tt.same {
				t.Fatalf("same hash = %v, want %v", got, tt.same)
			}
		})
	}
}

func TestValidateIdempotencyKey(t *testing.T) {
	t.Parallel()
	tests := []struct {
		key string
		ok  bool
	}{
		{"a", true},
		{strings.Repeat("k", 64), true},
		{"order 1 ~!@#$%^&*()", true},
		{"", false},
		{strings.Repeat("k", 65), false},
		{"tab\there", false},
		{"naïve", false},
		{"del\x7f", false},
	}
	for _, tt := range tests {
		err := order.ValidateIdempotencyKey(tt.key)
		var verr *order.ValidationError
		if got := err == nil; got != tt.ok {
			t.Errorf("ValidateIdempotencyKey(%q) = %v, want ok %v", tt.key, err, tt.ok)
		} else if err != nil && !errors.As(err, &verr) {
			t.Errorf("ValidateIdempotencyKey(%q) = %T, want *order.ValidationError", tt.key, err)
		}
	}
}
