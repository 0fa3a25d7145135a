package order_test

import (
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/stockfence/stockfence/orderservice/internal/order"
	"github.com/stockfence/stockfence/shared/contract"
)

// withAttempts returns the test order with its first attempt set to first
// and n-1 more ABORTED attempts.
func withAttempts(first order.AttemptStatus, n int) order.Order {
	o := newOrder()
	o.Attempts[0].Status = first
	for i := 2; i <= n; i++ {
		o.Attempts = append(o.Attempts, order.Attempt{ID: fmt.Sprintf("a%d", i), Seq: i, Status: order.AttemptAborted})
	}
	return o
}

func TestNextStep(t *testing.T) {
	tests := []struct {
		name string
		o    order.Order
		now  time.Time
		want order.Step
	}{
		{"open attempt", withAttempts(order.AttemptSent, 1), t0, order.StepResolve},
		{"aborted once", withAttempts(order.AttemptAborted, 1), t0, order.StepNewAttempt},
		{"compensated once", withAttempts(order.AttemptCompensated, 1), t0, order.StepNewAttempt},
		{"aborted max times", withAttempts(order.AttemptAborted, order.MaxAttempts), t0, order.StepGiveUp},
		{"aborted and too old", withAttempts(order.AttemptAborted, 1), t0.Add(order.MaxRetryAge), order.StepGiveUp},
		{"open even when old", withAttempts(order.AttemptSent, 1), t0.Add(time.Hour), order.StepResolve},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := tt.o.NextStep(tt.now); got != tt.want {
				t.Fatalf("NextStep = %d, want %d", got, tt.want)
			}
		})
	}
	confirmed := newOrder()
	confirmed.Status = order.StatusConfirmed
	if got := confirmed.NextStep(t0); got != order.StepNone {
		t.Fatalf("NextStep of a confirmed order = %d, want StepNone", got)
	}
}

func TestStartAttempt(t *testing.T) {
	o := withAttempts(order.AttemptAborted, 1)
	next := t0.Add(3 * time.Second)
	n, err := o.StartAttempt("a2", t0, next)
	if err != nil {
		t.Fatalf("StartAttempt: %v", err)
	}
	a, open := n.OpenAttempt()
	if !open || a.ID != "a2" || a.Seq != 2 || n.NextCheckAt == nil || !n.NextCheckAt.Equal(next) {
		t.Fatalf("after StartAttempt: open %v attempt %+v next %v", open, a, n.NextCheckAt)
	}
	if len(o.Attempts) != 1 {
		t.Fatal("StartAttempt changed its receiver")
	}
	// Never two open attempts, never after an applied one.
	for _, bad := range []order.Order{n, withAttempts(order.AttemptApplied, 1), withAttempts(order.AttemptAborted, order.MaxAttempts)} {
		if _, err := bad.StartAttempt("x", t0, next); !errors.Is(err, order.ErrAttemptNotOpen) {
			t.Errorf("StartAttempt on %v err = %v, want ErrAttemptNotOpen", bad.Attempts, err)
		}
	}
}

func TestGiveUp(t *testing.T) {
	n, err := withAttempts(order.AttemptAborted, order.MaxAttempts).GiveUp(t0)
	if err != nil || n.Status != order.StatusFailed || n.Reason != order.ReasonProductUnavailable || n.NextCheckAt != nil {
		t.Fatalf("GiveUp = %s %s %v, %v; want FAILED product_unavailable", n.Status, n.Reason, n.NextCheckAt, err)
	}
	for _, bad := range []order.Order{withAttempts(order.AttemptSent, 1), withAttempts(order.AttemptApplied, 1)} {
		if _, err := bad.GiveUp(t0); !errors.Is(err, order.ErrAttemptNotOpen) {
			t.Errorf("GiveUp with attempt %s err = %v, want ErrAttemptNotOpen", bad.Attempts[0].Status, err)
		}
	}
	res := contract.Reservation{AttemptID: attemptID, OrderID: orderID, Status: contract.StatusAborted}
	aborted, err := newOrder().Settle(res, t0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := aborted.GiveUp(t0); err != nil {
		t.Fatalf("GiveUp after ABORTED: %v", err)
	}
}

func TestRecheckDelay(t *testing.T) {
	for checks := 1; checks <= 30; checks++ {
		want := order.RecheckCap
		if checks <= 20 {
			want = min(order.RecheckBase<<(checks-1), order.RecheckCap)
		}
		for range 20 {
			got := order.RecheckDelay(checks)
			if got < want/2 || got > want {
				t.Fatalf("RecheckDelay(%d) = %v, want within [%v, %v]", checks, got, want/2, want)
			}
		}
	}
}

func TestStuck(t *testing.T) {
	o := newOrder()
	if o.Stuck(t0.Add(10*time.Second), 30*time.Second) {
		t.Error("a 10 s old order is stuck after 30 s")
	}
	if !o.Stuck(t0.Add(31*time.Second), 30*time.Second) {
		t.Error("a 31 s old order is not stuck after 30 s")
	}
	o.Status = order.StatusConfirmed
	if o.Stuck(t0.Add(time.Hour), 30*time.Second) {
		t.Error("a settled order is stuck")
	}
}
