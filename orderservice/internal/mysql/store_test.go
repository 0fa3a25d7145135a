package mysql_test

import (
	"context"
	"database/sql"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/stockfence/stockfence/orderservice/internal/mysql"
	"github.com/stockfence/stockfence/orderservice/internal/order"
	"github.com/stockfence/stockfence/shared/contract"
	schema "github.com/stockfence/stockfence/sql"
	"github.com/stockfence/stockfence/sql/schematest"
)

func newStore(t *testing.T) (*mysql.Store, *sql.DB) {
	t.Helper()
	db := schematest.Open(t, schema.Orders, 8)
	return mysql.New(db), db
}

var items = []contract.Item{{ProductID: 7, Quantity: 2}, {ProductID: 3, Quantity: 1}}

func newOrder(t *testing.T, customer string) order.Order {
	t.Helper()
	now := time.Now().UTC().Truncate(time.Microsecond)
	return order.New(uuid.Must(uuid.NewV7()).String(), uuid.Must(uuid.NewV7()).String(), customer, items, now, now.Add(3*time.Second))
}

func applied(o order.Order) contract.Reservation {
	return contract.Reservation{AttemptID: o.Attempts[0].ID, OrderID: o.ID, Status: contract.StatusApplied, Items: []contract.ReservedItem{
		{ProductID: 3, Quantity: 1, UnitPriceCents: 40}, {ProductID: 7, Quantity: 2, UnitPriceCents: 250},
	}}
}

func TestCreateAndGet(t *testing.T) {
	t.Parallel()
	store, _ := newStore(t)
	ctx := context.Background()
	o := newOrder(t, "Zoë")
	created, ok, err := store.Create(ctx, o, "", "")
	if err != nil || !ok {
		t.Fatalf("Create = %v, %v, want created", ok, err)
	}
	got, err := store.Get(ctx, "Zoë", o.ID)
	if err != nil {
		t.Fatalf("Get: %v", err)
	}
	if got.Status != order.StatusPending || len(got.Lines) != 2 || got.Lines[0].ProductID != 7 || got.Lines[1].ProductID != 3 {
		t.Errorf("order = %+v, want PENDING with lines 7, 3 in order", got)
	}
	if len(got.Attempts) != 1 || got.Attempts[0].ID != o.Attempts[0].ID || got.Attempts[0].Status != order.AttemptSent {
		t.Errorf("attempts = %+v, want the SENT attempt %s", got.Attempts, o.Attempts[0].ID)
	}
	if !got.CreatedAt.Equal(created.CreatedAt) || got.NextCheckAt == nil || !got.NextCheckAt.Equal(*o.NextCheckAt) {
		t.Errorf("createdAt %v nextCheckAt %v, want %v and %v", got.CreatedAt, got.NextCheckAt, created.CreatedAt, *o.NextCheckAt)
	}
	// Customers differ by bytes: the tables' collation is binary.
	for _, other := range []string{"zoe", "ZOË", "Zoe"} {
		if _, err := store.Get(ctx, other, o.ID); !errors.Is(err, order.ErrNotFound) {
			t.Errorf("Get by %q err = %v, want ErrNotFound", other, err)
		}
		page, err := store.List(ctx, other, "", 10)
		if err != nil || len(page.Orders) != 0 {
			t.Errorf("List by %q = %d orders (%v), want none", other, len(page.Orders), err)
		}
	}
}

func TestIdempotencyKeyNeverCrossesCustomers(t *testing.T) {
	t.Parallel()
	store, _ := newStore(t)
	ctx := context.Background()
	hash := order.RequestHash(items)
	alices := newOrder(t, "alice")
	if _, _, err := store.Create(ctx, alices, "K", hash); err != nil {
		t.Fatal(err)
	}
	// Keys and customers compare byte for byte, so "Alice" with key "K" or
	// "alice" with key "k" is another key, never an answer with her order.
	for _, tt := range []struct{ customer, key string }{{"Alice", "K"}, {"alice", "k"}} {
		got, _, err := store.Create(ctx, newOrder(t, tt.customer), tt.key, hash)
		if err == nil && got.ID == alices.ID {
			t.Errorf("Create for %q/%q returned alice's order %s", tt.customer, tt.key, got.ID)
		}
	}
}

func TestCreateIdempotencyKey(t *testing.T) {
	t.Parallel()
	store, db := newStore(t)
	ctx := context.Background()
	hash := order.RequestHash(items)
	first := newOrder(t, "alice")
	if _, created, err := store.Create(ctx, first, "k", hash); err != nil || !created {
		t.Fatalf("Create = %v, %v, want created", created, err)
	}
	replay, created, err := store.Create(ctx, newOrder(t, "alice"), "k", hash)
	if err != nil || created || replay.ID != first.ID {
		t.Errorf("replay = %s, created %v, err %v, want %s not created", replay.ID, created, err, first.ID)
	}
	if _, _, err := store.Create(ctx, newOrder(t, "alice"), "k", order.RequestHash(items[:1])); !errors.Is(err, order.ErrIdempotencyKeyReused) {
		t.Errorf("other request err = %v, want ErrIdempotencyKeyReused", err)
	}
	var n int
	if err := db.QueryRow("SELECT COUNT(*) FROM orders").Scan(&n); err != nil || n != 1 {
		t.Errorf("orders rows = %d (%v), want 1", n, err)
	}
}

// TestCreateAfterAnUnknownCommit: a batch that wrote an order reported its
// commit as unknown, but the commit went through; creating the same order
// again on the one-at-a-time path answers it as stored, not an error, and
// writes nothing twice.
func TestCreateAfterAnUnknownCommit(t *testing.T) {
	t.Parallel()
	store, db := newStore(t)
	ctx := context.Background()
	hash := order.RequestHash(items)
	o := newOrder(t, "alice")
	if err := store.CreateBatch(ctx, []mysql.CreateRequest{{Order: o, IdemKey: "k", RequestHash: hash}}); err != nil {
		t.Fatal(err)
	}
	again, created, err := store.Create(ctx, o, "k", hash)
	if err != nil || !created || again.ID != o.ID || again.Status != order.StatusPending || len(again.Attempts) != 1 {
		t.Fatalf("Create of a stored order = %+v, created %v, err %v; want it as stored, created", again, created, err)
	}
	var n int
	if err := db.QueryRow("SELECT (SELECT COUNT(*) FROM orders) + (SELECT COUNT(*) FROM order_attempts) + (SELECT COUNT(*) FROM idempotency_keys)").Scan(&n); err != nil || n != 3 {
		t.Fatalf("rows = %d (%v), want one order, one attempt, one key", n, err)
	}
	other := o
	other.CustomerID = "mallory"
	if _, _, err := store.Create(ctx, other, "", ""); err == nil {
		t.Fatal("an order id stored for alice was answered to mallory")
	}
}

// TestCreateConcurrentKey races many creates with one key past the
// look-up, so the unique key has to decide.
func TestCreateConcurrentKey(t *testing.T) {
	t.Parallel()
	store, db := newStore(t)
	hash := order.RequestHash(items)
	const n = 20
	var (
		wg      sync.WaitGroup
		mu      sync.Mutex
		ids     = map[string]bool{}
		created int
	)
	start := make(chan struct{})
	for range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			o, c, err := store.Create(context.Background(), newOrder(t, "alice"), "flash", hash)
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				t.Errorf("Create: %v", err)
				return
			}
			ids[o.ID] = true
			if c {
				created++
			}
		}()
	}
	close(start)
	wg.Wait()
	if created != 1 || len(ids) != 1 {
		t.Errorf("created %d orders with ids %v, want 1 and one id", created, ids)
	}
	var rows int
	if err := db.QueryRow("SELECT COUNT(*) FROM orders").Scan(&rows); err != nil || rows != 1 {
		t.Errorf("orders rows = %d (%v), want 1", rows, err)
	}
}

func TestSettle(t *testing.T) {
	t.Parallel()
	store, db := newStore(t)
	ctx := context.Background()
	tests := []struct {
		name      string
		answer    func(order.Order) contract.Reservation
		status    order.Status
		attempt   order.AttemptStatus
		total     int64 // -1: null
		nextCheck bool
	}{
		{"applied", applied, order.StatusConfirmed, order.AttemptApplied, 540, false},
		{"mismatch", func(o order.Order) contract.Reservation {
			r := applied(o)
			r.Items = r.Items[:1]
			return r
		}, order.StatusCompensating, order.AttemptApplied, -1, true},
		{"rejected", func(o order.Order) contract.Reservation {
			return contract.Reservation{AttemptID: o.Attempts[0].ID, OrderID: o.ID, Status: contract.StatusRejected,
				Reason: contract.ReasonInsufficientStock, Shortages: []contract.Shortage{{ProductID: 7, Requested: 2, Available: 1}}}
		}, order.StatusFailed, order.AttemptRejected, -1, false},
		{"aborted", func(o order.Order) contract.Reservation {
			return contract.Reservation{AttemptID: o.Attempts[0].ID, OrderID: o.ID, Status: contract.StatusAborted}
		}, order.StatusPending, order.AttemptAborted, -1, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			o := newOrder(t, "alice")
			if _, _, err := store.Create(ctx, o, "", ""); err != nil {
				t.Fatal(err)
			}
			res := tt.answer(o)
			got, err := store.Settle(ctx, o.ID, o.Attempts[0].ID, res)
			if err != nil {
				t.Fatalf("Settle: %v", err)
			}
			read, err := store.Get(ctx, "alice", o.ID)
			if err != nil {
				t.Fatal(err)
			}
			for _, x := range []order.Order{got, read} {
				if x.Status != tt.status || x.Attempts[0].Status != tt.attempt || x.Attempts[0].ResolvedAt == nil {
					t.Errorf("order %s attempt %+v, want %s and a resolved %s", x.Status, x.Attempts[0], tt.status, tt.attempt)
				}
				if total := x.TotalCents; (tt.total < 0) != (total == nil) || (total != nil && *total != tt.total) {
					t.Errorf("total = %v, want %d", total, tt.total)
				}
				if (x.NextCheckAt != nil) != tt.nextCheck {
					t.Errorf("nextCheckAt = %v, want set %v", x.NextCheckAt, tt.nextCheck)
				}
			}
			if tt.status == order.StatusConfirmed && (*read.Lines[0].UnitPriceCents != 250 || *read.Lines[1].UnitPriceCents != 40) {
				t.Errorf("stored prices = %d, %d, want 250, 40", *read.Lines[0].UnitPriceCents, *read.Lines[1].UnitPriceCents)
			}
			if tt.status == order.StatusFailed && (read.Reason != contract.ReasonInsufficientStock || len(read.Shortages) != 1) {
				t.Errorf("stored reason %q shortages %+v, want insufficient_stock and one shortage", read.Reason, read.Shortages)
			}

			// A second answer (a replay, or a late duplicate) changes nothing.
			again, err := store.Settle(ctx, o.ID, o.Attempts[0].ID, applied(o))
			if err != nil {
				t.Fatalf("second Settle: %v", err)
			}
			if again.Status != read.Status || !again.UpdatedAt.Equal(read.UpdatedAt) {
				t.Errorf("second Settle = %s at %v, want unchanged %s at %v", again.Status, again.UpdatedAt, read.Status, read.UpdatedAt)
			}
		})
	}

	if _, err := store.Settle(ctx, uuid.NewString(), "a", contract.Reservation{AttemptID: "a", Status: contract.StatusApplied}); !errors.Is(err, order.ErrNotFound) {
		t.Errorf("Settle of a missing order err = %v, want ErrNotFound", err)
	}
	o := newOrder(t, "alice")
	if _, _, err := store.Create(ctx, o, "", ""); err != nil {
		t.Fatal(err)
	}
	if _, err := store.Settle(ctx, o.ID, o.Attempts[0].ID, contract.Reservation{AttemptID: "other", OrderID: o.ID, Status: contract.StatusApplied}); !errors.Is(err, order.ErrInvalidReservation) {
		t.Errorf("Settle with another attempt's answer err = %v, want ErrInvalidReservation", err)
	}
	var status string
	if err := db.QueryRow("SELECT status FROM order_attempts WHERE attempt_id = ?", o.Attempts[0].ID).Scan(&status); err != nil || status != "SENT" {
		t.Errorf("attempt status = %s (%v), want SENT", status, err)
	}
}

func TestRecordUnknown(t *testing.T) {
	t.Parallel()
	store, _ := newStore(t)
	ctx := context.Background()
	o := newOrder(t, "alice")
	if _, _, err := store.Create(ctx, o, "", ""); err != nil {
		t.Fatal(err)
	}
	if err := store.RecordUnknown(ctx, o.ID, strings.Repeat("é", 600)); err != nil {
		t.Fatalf("RecordUnknown: %v", err)
	}
	got, err := store.Get(ctx, "alice", o.ID)
	if err != nil {
		t.Fatal(err)
	}
	if n := len([]rune(got.LastError)); n != 500 {
		t.Errorf("last error has %d characters, want 500", n)
	}
	if got.Status != order.StatusPending || !got.UpdatedAt.Equal(o.UpdatedAt) {
		t.Errorf("order %s updated %v, want PENDING and updatedAt unchanged (%v)", got.Status, got.UpdatedAt, o.UpdatedAt)
	}
}

func TestListCursor(t *testing.T) {
	t.Parallel()
	store, _ := newStore(t)
	ctx := context.Background()
	// Orders created in the same microsecond are ordered by id.
	now := time.Now().UTC().Truncate(time.Microsecond)
	var ids []string
	for range 5 {
		o := order.New(uuid.Must(uuid.NewV7()).String(), uuid.Must(uuid.NewV7()).String(), "alice", items, now, now)
		if _, _, err := store.Create(ctx, o, "", ""); err != nil {
			t.Fatal(err)
		}
		ids = append(ids, o.ID)
	}
	var got []string
	cursor := ""
	for {
		page, err := store.List(ctx, "alice", cursor, 2)
		if err != nil {
			t.Fatalf("List: %v", err)
		}
		for _, o := range page.Orders {
			got = append(got, o.ID)
		}
		if page.Next == "" {
			break
		}
		cursor = page.Next
	}
	if len(got) != 5 {
		t.Fatalf("listed %v, want 5 orders", got)
	}
	for i := range got {
		if want := ids[len(ids)-1-i]; got[i] != want {
			t.Errorf("order %d = %s, want %s", i, got[i], want)
		}
	}
	var verr *order.ValidationError
	if _, err := store.List(ctx, "alice", "!!", 2); !errors.As(err, &verr) {
		t.Errorf("List with a bad cursor err = %v, want *order.ValidationError", err)
	}
}

func TestReady(t *testing.T) {
	t.Parallel()
	store, db := newStore(t)
	if err := store.Ready(context.Background()); err != nil {
		t.Fatalf("Ready: %v", err)
	}
	if _, err := db.Exec("DROP TABLE goose_db_version"); err != nil {
		t.Fatal(err)
	}
	if err := store.Ready(context.Background()); err == nil {
		t.Fatal("Ready without migrations = nil, want an error")
	}
}
