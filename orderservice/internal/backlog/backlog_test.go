package backlog_test

import (
	"context"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/stockfence/stockfence/orderservice/internal/backlog"
	"github.com/stockfence/stockfence/orderservice/internal/mysql"
	"github.com/stockfence/stockfence/orderservice/internal/order"
	"github.com/stockfence/stockfence/shared/contract"
	"github.com/stockfence/stockfence/shared/metrics"
	"github.com/stockfence/stockfence/shared/metrics/metricstest"
	schema "github.com/stockfence/stockfence/sql"
	"github.com/stockfence/stockfence/sql/schematest"
)

var items = []contract.Item{{ProductID: 7, Quantity: 2}}

// serve registers a collector of store, whose clock reads now, and returns
// the URL of its /metrics.
func serve(t *testing.T, store backlog.Store, now time.Time) string {
	t.Helper()
	reg := metrics.NewRegistry()
	reg.MustRegister(backlog.New(store, func() time.Time { return now }))
	srv := httptest.NewServer(metrics.Handler(reg, nil))
	t.Cleanup(srv.Close)
	return srv.URL
}

type want struct {
	pending, compensating, cancelling float64
	oldestUnsettled                   float64
	unsent, oldestUnsent              float64
}

func check(t *testing.T, url string, w want) {
	t.Helper()
	s := metricstest.Scrape(t, url)
	gauges := []struct {
		name   string
		labels map[string]string
		want   float64
	}{
		{"stockfence_orders_unsettled", map[string]string{"status": "PENDING"}, w.pending},
		{"stockfence_orders_unsettled", map[string]string{"status": "COMPENSATING"}, w.compensating},
		{"stockfence_orders_unsettled", map[string]string{"status": "CANCELLING"}, w.cancelling},
		{"stockfence_orders_oldest_unsettled_age_seconds", nil, w.oldestUnsettled},
		{"stockfence_outbox_unsent_messages", nil, w.unsent},
		{"stockfence_outbox_oldest_unsent_age_seconds", nil, w.oldestUnsent},
	}
	for _, g := range gauges {
		if got, found := s.Value(g.name, g.labels); got != g.want || !found {
			t.Errorf("%s%v = %v (found %v), want %v", g.name, g.labels, got, found, g.want)
		}
	}
}

// TestCollector follows the backlog gauges, read from a real orders
// database, as orders wait, settle and are cancelled and as the outbox
// message of the cancellation waits and is sent.
func TestCollector(t *testing.T) {
	t.Parallel()
	db := schematest.Open(t, schema.Orders, 4)
	store := mysql.New(db)
	ctx := context.Background()
	now := time.Now().UTC().Truncate(time.Second)
	url := serve(t, store, now)

	check(t, url, want{})

	create := func(age time.Duration) order.Order {
		t.Helper()
		created := now.Add(-age)
		o := order.New(uuid.Must(uuid.NewV7()).String(), uuid.Must(uuid.NewV7()).String(), "alice", items, created, created.Add(3*time.Second))
		stored, ok, err := store.Create(ctx, o, "", "")
		if err != nil || !ok {
			t.Fatalf("Create = %v, %v", ok, err)
		}
		return stored
	}
	create(2 * time.Minute)
	create(30 * time.Second)
	confirmed := create(10 * time.Minute)
	check(t, url, want{pending: 3, oldestUnsettled: 600})

	// The oldest is confirmed: the age is the next one's.
	res := contract.Reservation{AttemptID: confirmed.Attempts[0].ID, OrderID: confirmed.ID, Status: contract.StatusApplied,
		Items: []contract.ReservedItem{{ProductID: 7, Quantity: 2, UnitPriceCents: 100}}}
	if o, err := store.Settle(ctx, confirmed.ID, confirmed.Attempts[0].ID, res); err != nil || o.Status != order.StatusConfirmed {
		t.Fatalf("Settle = %s, %v; want CONFIRMED", o.Status, err)
	}
	check(t, url, want{pending: 2, oldestUnsettled: 120})

	// Cancelling it writes a compensation to the outbox; it is made 45 s old.
	if o, err := store.Cancel(ctx, "alice", confirmed.ID); err != nil || o.Status != order.StatusCancelling {
		t.Fatalf("Cancel = %s, %v; want CANCELLING", o.Status, err)
	}
	if _, err := db.ExecContext(ctx, `UPDATE outbox SET created_at = ?`, now.Add(-45*time.Second)); err != nil {
		t.Fatal(err)
	}
	check(t, url, want{pending: 2, cancelling: 1, oldestUnsettled: 600, unsent: 1, oldestUnsent: 45})

	msgs, err := store.ClaimOutbox(ctx, 10, time.Minute)
	if err != nil || len(msgs) != 1 {
		t.Fatalf("ClaimOutbox = %d messages, %v; want 1", len(msgs), err)
	}
	if err := store.MarkSent(ctx, msgs[0].ID); err != nil {
		t.Fatal(err)
	}
	check(t, url, want{pending: 2, cancelling: 1, oldestUnsettled: 600})
}

// TestCollectorDatabaseDown: a scrape while the database does not answer
// leaves the backlog out and still serves the other metrics.
func TestCollectorDatabaseDown(t *testing.T) {
	t.Parallel()
	db := schematest.Open(t, schema.Orders, 2)
	db.Close()
	s := metricstest.Scrape(t, serve(t, mysql.New(db), time.Now()))
	for _, name := range []string{"stockfence_orders_unsettled", "stockfence_outbox_unsent_messages"} {
		if _, found := s.Value(name, nil); found {
			t.Errorf("%s served while the database is down", name)
		}
	}
	if _, found := s.Value("go_goroutines", nil); !found {
		t.Error("the other metrics were not served")
	}
}
