package recovery_test

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/stockfence/stockfence/orderservice/internal/order"
	"github.com/stockfence/stockfence/orderservice/internal/recovery"
)

// fakes is a store with a fixed set of due orders and a driver that settles
// the orders in settle and fails the rest.
type fakes struct {
	mu      sync.Mutex
	due     []string
	settle  map[string]bool
	checks  map[string]time.Time
	drives  map[string]int
	claimed int
}

func (f *fakes) ClaimDue(_ context.Context, limit int, _ time.Duration) ([]string, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	n := min(limit, len(f.due))
	ids := f.due[:n]
	f.due = f.due[n:]
	f.claimed += n
	return ids, nil
}

func (f *fakes) RecordCheck(_ context.Context, orderID, _ string, next time.Time) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.checks[orderID] = next
	return nil
}

func (f *fakes) Advance(_ context.Context, orderID string) (order.Order, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.drives[orderID]++
	if f.settle[orderID] {
		return order.Order{ID: orderID, Status: order.StatusConfirmed}, nil
	}
	return order.Order{ID: orderID, Status: order.StatusPending, Checks: 2}, errors.New("resolve: timeout")
}

func TestPassDrivesEveryClaimedOrderOnce(t *testing.T) {
	f := &fakes{
		due:    []string{"a", "b", "c", "d", "e"},
		settle: map[string]bool{"a": true, "c": true, "e": true},
		checks: map[string]time.Time{},
		drives: map[string]int{},
	}
	w := recovery.New(f, f, recovery.Config{Interval: time.Hour, OrderBudget: time.Second, Batch: 10, Concurrency: 3})
	start := time.Now()
	if n := w.Pass(context.Background()); n != 5 {
		t.Fatalf("Pass claimed %d, want 5", n)
	}
	for _, id := range []string{"a", "b", "c", "d", "e"} {
		if f.drives[id] != 1 {
			t.Errorf("order %s driven %d times, want 1", id, f.drives[id])
		}
	}
	if len(f.checks) != 2 {
		t.Fatalf("checks recorded for %v, want b and d", f.checks)
	}
	for _, id := range []string{"b", "d"} {
		// Third check (Checks was 2): base 1 s doubled twice, with jitter.
		wait := f.checks[id].Sub(start)
		if wait < 2*time.Second || wait > 4*time.Second+time.Second {
			t.Errorf("order %s next check in %v, want 2 s to 4 s", id, wait)
		}
	}
}

func TestRunDrainsABacklogAndWakes(t *testing.T) {
	f := &fakes{settle: map[string]bool{}, checks: map[string]time.Time{}, drives: map[string]int{}}
	for i := range 25 {
		id := string(rune('A' + i))
		f.due = append(f.due, id)
		f.settle[id] = true
	}
	w := recovery.New(f, f, recovery.Config{Interval: time.Hour, OrderBudget: time.Second, Batch: 4, Concurrency: 2})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { w.Run(ctx); close(done) }()
	waitFor(t, func() bool { return f.count() == 25 })

	// A recheck adds an order; Wake makes the worker take it long before
	// its one-hour interval.
	f.mu.Lock()
	f.due = append(f.due, "late")
	f.settle["late"] = true
	f.mu.Unlock()
	w.Wake()
	waitFor(t, func() bool { return f.count() == 26 })
	cancel()
	<-done
}

func (f *fakes) count() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.claimed
}

func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not met within 5 s")
		}
		time.Sleep(5 * time.Millisecond)
	}
}
