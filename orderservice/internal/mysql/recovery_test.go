package mysql_test

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/stockfence/stockfence/orderservice/internal/mysql"
	"github.com/stockfence/stockfence/orderservice/internal/order"
	"github.com/stockfence/stockfence/shared/contract"
)

// dueOrder creates a PENDING order whose next check is already due.
func dueOrder(t *testing.T, store *mysql.Store) order.Order {
	t.Helper()
	o := newOrder(t, "alice")
	past := o.CreatedAt.Add(-time.Second)
	o.NextCheckAt = &past
	if _, _, err := store.Create(context.Background(), o, "", ""); err != nil {
		t.Fatal(err)
	}
	return o
}

// TestClaimDueSkipsLockedAndLeases: two workers claiming at once never get
// the same order, and a claimed order is not due again until its lease ends.
func TestClaimDueSkipsLockedAndLeases(t *testing.T) {
	t.Parallel()
	store, _ := newStore(t)
	ctx := context.Background()
	want := map[string]bool{}
	for range 20 {
		want[dueOrder(t, store).ID] = true
	}
	notDue := newOrder(t, "alice")
	if _, _, err := store.Create(ctx, notDue, "", ""); err != nil {
		t.Fatal(err)
	}

	var (
		mu  sync.Mutex
		got = map[string]int{}
		wg  sync.WaitGroup
	)
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				ids, err := store.ClaimDue(ctx, 3, time.Minute)
				if err != nil {
					t.Error(err)
					return
				}
				if len(ids) == 0 {
					return
				}
				mu.Lock()
				for _, id := range ids {
					got[id]++
				}
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	if len(got) != len(want) {
		t.Fatalf("claimed %d distinct orders, want %d", len(got), len(want))
	}
	for id, n := range got {
		if n != 1 || !want[id] {
			t.Fatalf("order %s claimed %d times (due: %v)", id, n, want[id])
		}
	}
	if ids, err := store.ClaimDue(ctx, 100, time.Minute); err != nil || len(ids) != 0 {
		t.Fatalf("claim during the lease = %v, %v; want nothing", ids, err)
	}
}

// TestStuckOrderIsStillClaimed: an order flagged stuck (unsettled for
// hours, checked many times) is claimed like any other due order: the
// worker never gives up on it.
func TestStuckOrderIsStillClaimed(t *testing.T) {
	t.Parallel()
	store, _ := newStore(t)
	ctx := context.Background()
	o := newOrder(t, "alice")
	o.CreatedAt = o.CreatedAt.Add(-3 * time.Hour)
	o.UpdatedAt = o.CreatedAt
	past := time.Now().UTC().Add(-time.Second)
	o.NextCheckAt = &past
	if _, _, err := store.Create(ctx, o, "", ""); err != nil {
		t.Fatal(err)
	}
	for range 40 {
		if err := store.RecordCheck(ctx, o.ID, "product service unavailable", past); err != nil {
			t.Fatal(err)
		}
	}
	stored, err := store.Load(ctx, o.ID)
	if err != nil {
		t.Fatal(err)
	}
	if !stored.Stuck(time.Now().UTC(), 30*time.Second) || stored.Checks != 40 {
		t.Fatalf("order stuck %v after %d checks, want stuck after 40", stored.Stuck(time.Now().UTC(), 30*time.Second), stored.Checks)
	}
	ids, err := store.ClaimDue(ctx, 10, time.Minute)
	if err != nil || len(ids) != 1 || ids[0] != o.ID {
		t.Fatalf("claimed %v, %v; want the stuck order", ids, err)
	}
}

func TestStartAttemptAndGiveUp(t *testing.T) {
	t.Parallel()
	store, _ := newStore(t)
	ctx := context.Background()
	o := dueOrder(t, store)
	aborted := contract.Reservation{AttemptID: o.Attempts[0].ID, OrderID: o.ID, Status: contract.StatusAborted}
	if _, err := store.Settle(ctx, o.ID, o.Attempts[0].ID, aborted); err != nil {
		t.Fatal(err)
	}

	// Many racers, one new attempt.
	var (
		wg      sync.WaitGroup
		mu      sync.Mutex
		started int
	)
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, err := store.StartAttempt(ctx, o.ID, uuid.NewString(), time.Now().Add(time.Second))
			mu.Lock()
			defer mu.Unlock()
			switch {
			case err == nil:
				started++
			case !errors.Is(err, order.ErrAttemptNotOpen):
				t.Errorf("StartAttempt: %v", err)
			}
		}()
	}
	wg.Wait()
	if started != 1 {
		t.Fatalf("%d attempts started, want 1", started)
	}
	cur, err := store.Load(ctx, o.ID)
	if err != nil {
		t.Fatal(err)
	}
	if len(cur.Attempts) != 2 || cur.Attempts[1].Status != order.AttemptSent || cur.Attempts[1].Seq != 2 {
		t.Fatalf("attempts = %+v, want a second SENT attempt", cur.Attempts)
	}
	if _, err := store.GiveUp(ctx, o.ID); !errors.Is(err, order.ErrAttemptNotOpen) {
		t.Fatalf("GiveUp with an open attempt err = %v, want ErrAttemptNotOpen", err)
	}
	second := contract.Reservation{AttemptID: cur.Attempts[1].ID, OrderID: o.ID, Status: contract.StatusAborted}
	if _, err := store.Settle(ctx, o.ID, second.AttemptID, second); err != nil {
		t.Fatal(err)
	}
	failed, err := store.GiveUp(ctx, o.ID)
	if err != nil || failed.Status != order.StatusFailed || failed.Reason != order.ReasonProductUnavailable {
		t.Fatalf("GiveUp = %s %s, %v; want FAILED product_unavailable", failed.Status, failed.Reason, err)
	}
	stored, err := store.Load(ctx, o.ID)
	if err != nil || stored.Status != order.StatusFailed || stored.NextCheckAt != nil {
		t.Fatalf("stored = %s next %v, %v; want FAILED with no next check", stored.Status, stored.NextCheckAt, err)
	}
}

func TestRecordCheckRecheckAndOrders(t *testing.T) {
	t.Parallel()
	store, _ := newStore(t)
	ctx := context.Background()
	o := dueOrder(t, store)
	later := time.Now().UTC().Add(time.Hour)
	if err := store.RecordCheck(ctx, o.ID, "resolve: timeout", later); err != nil {
		t.Fatal(err)
	}
	unsettled, err := store.Orders(ctx, []order.Status{order.StatusPending}, 10)
	if err != nil || len(unsettled) != 1 {
		t.Fatalf("Orders = %d, %v; want 1", len(unsettled), err)
	}
	got := unsettled[0]
	if got.Checks != 1 || got.LastError != "resolve: timeout" || got.NextCheckAt == nil || got.NextCheckAt.Sub(later).Abs() > time.Millisecond || len(got.Attempts) != 1 {
		t.Fatalf("after RecordCheck: checks %d, lastError %q, next %v, attempts %d", got.Checks, got.LastError, got.NextCheckAt, len(got.Attempts))
	}
	if ids, _ := store.ClaimDue(ctx, 10, time.Minute); len(ids) != 0 {
		t.Fatalf("claimed %v before its next check", ids)
	}
	if err := store.Recheck(ctx, o.ID); err != nil {
		t.Fatal(err)
	}
	if ids, _ := store.ClaimDue(ctx, 10, time.Minute); len(ids) != 1 || ids[0] != o.ID {
		t.Fatalf("after Recheck claimed %v, want [%s]", ids, o.ID)
	}

	if _, err := store.Settle(ctx, o.ID, o.Attempts[0].ID, applied(o)); err != nil {
		t.Fatal(err)
	}
	if err := store.Recheck(ctx, o.ID); !errors.Is(err, order.ErrSettled) {
		t.Fatalf("Recheck of a confirmed order err = %v, want ErrSettled", err)
	}
	if err := store.Recheck(ctx, uuid.NewString()); !errors.Is(err, order.ErrNotFound) {
		t.Fatalf("Recheck of an unknown order err = %v, want ErrNotFound", err)
	}
	if err := store.RecordCheck(ctx, o.ID, "late", later); err != nil {
		t.Fatal(err)
	}
	if cur, _ := store.Load(ctx, o.ID); cur.Status != order.StatusConfirmed || cur.LastError == "late" {
		t.Fatalf("RecordCheck changed a settled order: %s %q", cur.Status, cur.LastError)
	}
	if pending, _ := store.Orders(ctx, []order.Status{order.StatusPending}, 10); len(pending) != 0 {
		t.Fatalf("%d pending orders after confirmation, want 0", len(pending))
	}
}
