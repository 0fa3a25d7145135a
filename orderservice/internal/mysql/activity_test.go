package mysql_test

import (
	"slices"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/stockfence/stockfence/orderservice/internal/order"
)

func TestActivity(t *testing.T) {
	t.Parallel()
	store, db := newStore(t)
	// Buckets are aligned to 10 s; now is put 5 s into one, so that what
	// the test places a second or two around now stays in the last bucket.
	now := time.Now().UTC().Truncate(10 * time.Second).Add(5 * time.Second)
	w := order.NewWindow(now, time.Minute, 6) // buckets of 10 s
	insert := func(status order.Status, created time.Time, took time.Duration) {
		t.Helper()
		const q = `INSERT INTO orders (id, customer_id, status, created_at, updated_at) VALUES (?, 'c', ?, ?, ?)`
		if _, err := db.Exec(q, uuid.NewString(), string(status), created, created.Add(took)); err != nil {
			t.Fatal(err)
		}
	}
	last := w.Start.Add(5 * w.Bucket) // the bucket holding now
	insert(order.StatusConfirmed, last.Add(time.Second), 40*time.Millisecond)
	insert(order.StatusConfirmed, last.Add(2*time.Second), 20*time.Millisecond)
	insert(order.StatusFailed, w.Start.Add(time.Second), 10*time.Millisecond)
	insert(order.StatusCancelled, w.Start.Add(15*time.Second), time.Second)
	insert(order.StatusPending, w.Start.Add(16*time.Second), 0)
	insert(order.StatusPending, now.Add(-2*time.Hour), 0)               // stuck, before the window
	insert(order.StatusConfirmed, w.Start.Add(-time.Second), time.Hour) // before the window
	insert(order.StatusCancelling, now.Add(-time.Second), 0)

	a, err := store.Activity(t.Context(), w, now.Add(-90*time.Second), 2)
	if err != nil {
		t.Fatalf("Activity: %v", err)
	}
	wantCreated := map[order.Status]int{order.StatusPending: 1, order.StatusConfirmed: 2, order.StatusFailed: 1,
		order.StatusCompensating: 0, order.StatusCancelling: 1, order.StatusCancelled: 1}
	for st, want := range wantCreated {
		if got := a.Created[st]; got != want {
			t.Errorf("created %s = %d, want %d", st, got, want)
		}
	}
	// The CANCELLING order was created a second ago: in the last bucket.
	if want := []int{1, 2, 0, 0, 0, 3}; !slices.Equal(a.PerBucket, want) {
		t.Errorf("per bucket = %v, want %v", a.PerBucket, want)
	}
	if a.Unsettled[order.StatusPending] != 2 || a.Unsettled[order.StatusCancelling] != 1 || a.Unsettled[order.StatusCompensating] != 0 {
		t.Errorf("unsettled = %v, want PENDING 2, CANCELLING 1, COMPENSATING 0", a.Unsettled)
	}
	if a.Stuck != 1 {
		t.Errorf("stuck = %d, want 1", a.Stuck)
	}
	// The two newest settled by themselves, newest first; CANCELLED is not one.
	if len(a.Settles) != 2 || a.Settles[0].Took != 20*time.Millisecond || a.Settles[1].Took != 40*time.Millisecond ||
		!a.Settles[0].CreatedAt.Equal(last.Add(2*time.Second)) {
		t.Errorf("settles = %+v, want the two newest CONFIRMED (20ms, then 40ms)", a.Settles)
	}
}
