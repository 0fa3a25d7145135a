package order_test

import (
	"errors"
	"testing"

	"github.com/stockfence/stockfence/orderservice/internal/order"
	"github.com/stockfence/stockfence/shared/contract"
)

func TestCancel(t *testing.T) {
	confirmed := withAttempts(order.AttemptApplied, 1)
	confirmed.Status = order.StatusConfirmed
	failed := withAttempts(order.AttemptRejected, 1)
	failed.Status = order.StatusFailed
	compensating := withAttempts(order.AttemptApplied, 1)
	compensating.Status = order.StatusCompensating
	cancelling := withAttempts(order.AttemptApplied, 1)
	cancelling.Status, cancelling.NextCheckAt = order.StatusCancelling, nil
	tests := []struct {
		name       string
		o          order.Order
		status     order.Status
		compensate string
		err        error
	}{
		{"confirmed gives its applied attempt back", confirmed, order.StatusCancelling, attemptID, nil},
		{"pending with an open attempt compensates it", withAttempts(order.AttemptSent, 1), order.StatusCancelling, attemptID, nil},
		{"pending holding nothing is cancelled at once", withAttempts(order.AttemptAborted, 2), order.StatusCancelled, "", nil},
		{"cancelling again changes nothing", cancelling, order.StatusCancelling, "", nil},
		{"failed cannot be cancelled", failed, order.StatusFailed, "", order.ErrNotCancellable},
		{"compensating cannot be cancelled", compensating, order.StatusCompensating, "", order.ErrNotCancellable},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			n, compensate, err := tt.o.Cancel(t0)
			if !errors.Is(err, tt.err) {
				t.Fatalf("err = %v, want %v", err, tt.err)
			}
			if n.Status != tt.status || compensate != tt.compensate {
				t.Fatalf("Cancel = %s, compensate %q; want %s, %q", n.Status, compensate, tt.status, tt.compensate)
			}
			// A cancelling order waits ResultWait for its result, then
			// the recovery worker sends its compensation again.
			if n.Status == order.StatusCancelling && tt.compensate != "" && (n.NextCheckAt == nil || !n.NextCheckAt.Equal(t0.Add(order.ResultWait))) {
				t.Fatalf("next check = %v, want %v", n.NextCheckAt, t0.Add(order.ResultWait))
			}
		})
	}
}

func TestApplyResult(t *testing.T) {
	cancelling, _, err := func() (order.Order, string, error) {
		o := withAttempts(order.AttemptApplied, 1)
		o.Status = order.StatusConfirmed
		return o.Cancel(t0)
	}()
	if err != nil {
		t.Fatal(err)
	}
	done, err := cancelling.ApplyResult(attemptID, contract.StatusCompensated, t0)
	if err != nil || done.Status != order.StatusCancelled || done.Attempts[0].Status != order.AttemptCompensated {
		t.Fatalf("ApplyResult = %s attempt %s, %v; want CANCELLED with the attempt COMPENSATED", done.Status, done.Attempts[0].Status, err)
	}
	if _, err := done.ApplyResult(attemptID, contract.StatusCompensated, t0); !errors.Is(err, order.ErrAttemptNotOpen) {
		t.Fatalf("second result err = %v, want ErrAttemptNotOpen (idempotent)", err)
	}
	if _, err := cancelling.ApplyResult("other", contract.StatusCompensated, t0); !errors.Is(err, order.ErrAttemptNotOpen) {
		t.Fatalf("result for another attempt err = %v, want ErrAttemptNotOpen", err)
	}
	if _, err := cancelling.ApplyResult(attemptID, contract.StatusApplied, t0); !errors.Is(err, order.ErrInvalidReservation) {
		t.Fatalf("APPLIED result err = %v, want ErrInvalidReservation", err)
	}

	// A pending order cancelled before its attempt was known: fenced.
	pending, _, _ := withAttempts(order.AttemptSent, 1).Cancel(t0)
	fenced, err := pending.ApplyResult(attemptID, contract.StatusAborted, t0)
	if err != nil || fenced.Status != order.StatusCancelled || fenced.Attempts[0].Status != order.AttemptAborted || fenced.Attempts[0].ResolvedAt == nil {
		t.Fatalf("fenced = %s attempt %+v, %v; want CANCELLED with the attempt ABORTED and resolved", fenced.Status, fenced.Attempts[0], err)
	}

	compensating := withAttempts(order.AttemptApplied, 1)
	compensating.Status = order.StatusCompensating
	failed, err := compensating.ApplyResult(attemptID, contract.StatusCompensated, t0)
	if err != nil || failed.Status != order.StatusFailed {
		t.Fatalf("compensating + result = %s, %v; want FAILED", failed.Status, err)
	}
}

func TestNextCheckDelay(t *testing.T) {
	if d := order.NextCheckDelay(order.StatusPending, 1); d > order.RecheckBase {
		t.Errorf("pending, first check: %v, want at most %v", d, order.RecheckBase)
	}
	for _, st := range []order.Status{order.StatusCancelling, order.StatusCompensating} {
		if d := order.NextCheckDelay(st, 1); d < order.ResultWait {
			t.Errorf("%s, first check: %v, want at least %v (results need time to come back)", st, d, order.ResultWait)
		}
	}
	cancelling := withAttempts(order.AttemptApplied, 1)
	cancelling.Status = order.StatusCancelling
	if step := cancelling.NextStep(t0); step != order.StepResendCompensation {
		t.Errorf("NextStep of a cancelling order = %d, want StepResendCompensation", step)
	}
}
