package mysql_test

import (
	"context"
	"encoding/json"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/stockfence/stockfence/orderservice/internal/order"
	"github.com/stockfence/stockfence/shared/contract"
)

func TestCancelWritesTheCompensationInTheSameTransaction(t *testing.T) {
	t.Parallel()
	store, db := newStore(t)
	ctx := context.Background()
	o := newOrder(t, "alice")
	if _, _, err := store.Create(ctx, o, "", ""); err != nil {
		t.Fatal(err)
	}
	if _, err := store.Settle(ctx, o.ID, o.Attempts[0].ID, applied(o)); err != nil {
		t.Fatal(err)
	}
	if _, err := store.Cancel(ctx, "mallory", o.ID); !errors.Is(err, order.ErrNotFound) {
		t.Fatalf("cancel by another customer err = %v, want ErrNotFound", err)
	}
	c, err := store.Cancel(ctx, "alice", o.ID)
	if err != nil || c.Status != order.StatusCancelling {
		t.Fatalf("Cancel = %s, %v; want CANCELLING", c.Status, err)
	}
	if _, err := store.Cancel(ctx, "alice", o.ID); err != nil {
		t.Fatalf("second cancel: %v", err)
	}
	var n int
	if err := db.QueryRow(`SELECT COUNT(*) FROM outbox WHERE order_id = ?`, o.ID).Scan(&n); err != nil || n != 1 {
		t.Fatalf("outbox rows = %d (%v), want 1 (a repeated cancel writes nothing)", n, err)
	}
	msgs, err := store.ClaimOutbox(ctx, 10, time.Minute)
	if err != nil || len(msgs) != 1 {
		t.Fatalf("ClaimOutbox = %d, %v", len(msgs), err)
	}
	var comp contract.Compensation
	if err := json.Unmarshal(msgs[0].Payload, &comp); err != nil {
		t.Fatal(err)
	}
	if msgs[0].Topic != contract.TopicCompensations || msgs[0].Key != o.Attempts[0].ID || comp.AttemptID != o.Attempts[0].ID ||
		comp.OrderID != o.ID || comp.MessageID == "" || comp.Reason != order.CompensateCancelled {
		t.Fatalf("message = %+v %+v", msgs[0], comp)
	}
	if again, _ := store.ClaimOutbox(ctx, 10, time.Minute); len(again) != 0 {
		t.Fatal("a leased message was claimed again")
	}
	if err := store.MarkSent(ctx, msgs[0].ID); err != nil {
		t.Fatal(err)
	}
	// No result in time: the recovery worker sends it again.
	if err := store.ResendCompensation(ctx, o.ID); err != nil {
		t.Fatal(err)
	}
	if again, err := store.ClaimOutbox(ctx, 10, time.Minute); err != nil || len(again) != 1 || again[0].ID != msgs[0].ID {
		t.Fatalf("after ResendCompensation claimed %d (%v), want the same message again", len(again), err)
	}
	if ids, err := store.ClaimDue(ctx, 10, time.Minute); err != nil || len(ids) != 0 {
		t.Fatalf("a cancelling order was due before ResultWait: %v %v", ids, err)
	}
	if err := store.MarkSent(ctx, msgs[0].ID); err != nil {
		t.Fatal(err)
	}

	res := contract.CompensationResult{AttemptID: o.Attempts[0].ID, OrderID: o.ID, Status: contract.StatusCompensated}
	for range 2 { // results are delivered at least once
		got, err := store.ApplyResult(ctx, res)
		if err != nil || got.Status != order.StatusCancelled {
			t.Fatalf("ApplyResult = %s, %v; want CANCELLED", got.Status, err)
		}
	}
	final, _ := store.Load(ctx, o.ID)
	if final.Attempts[0].Status != order.AttemptCompensated || final.NextCheckAt != nil {
		t.Fatalf("attempt = %s, next check %v; want COMPENSATED and no next check", final.Attempts[0].Status, final.NextCheckAt)
	}
	if err := store.Recheck(ctx, o.ID); !errors.Is(err, order.ErrSettled) {
		t.Fatalf("recheck of a cancelled order err = %v, want ErrSettled", err)
	}
}

func TestClaimOutboxSharesRowsAndRetriesFailures(t *testing.T) {
	t.Parallel()
	store, _ := newStore(t)
	ctx := context.Background()
	for range 12 {
		o := newOrder(t, "alice")
		if _, _, err := store.Create(ctx, o, "", ""); err != nil {
			t.Fatal(err)
		}
		if _, err := store.Cancel(ctx, "alice", o.ID); err != nil { // PENDING with an open attempt
			t.Fatal(err)
		}
	}
	var (
		mu   sync.Mutex
		seen = map[int64]int{}
		wg   sync.WaitGroup
	)
	for range 3 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				msgs, err := store.ClaimOutbox(ctx, 2, time.Minute)
				if err != nil || len(msgs) == 0 {
					return
				}
				mu.Lock()
				for _, m := range msgs {
					seen[m.ID]++
				}
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	if len(seen) != 12 {
		t.Fatalf("claimed %d messages, want 12", len(seen))
	}
	for id, n := range seen {
		if n != 1 {
			t.Fatalf("message %d claimed %d times", id, n)
		}
		if err := store.MarkFailed(ctx, id, "broker down", time.Now().Add(-time.Second)); err != nil {
			t.Fatal(err)
		}
	}
	again, err := store.ClaimOutbox(ctx, 100, time.Minute)
	if err != nil || len(again) != 12 || again[0].Attempts != 1 {
		t.Fatalf("after failures: %d claimed (%v), attempts %d; want 12 due again with 1 attempt", len(again), err, again[0].Attempts)
	}
}
