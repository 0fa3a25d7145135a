package mysql_test

import (
	"context"
	"errors"
	"slices"
	"strings"
	"testing"

	"github.com/stockfence/stockfence/orderservice/internal/order"
)

// TestOrdersAfterPagesEveryOrder pages through every customer's orders by
// id: each once, in id order, with its attempts.
func TestOrdersAfterPagesEveryOrder(t *testing.T) {
	t.Parallel()
	store, _ := newStore(t)
	ctx := context.Background()
	var want []string
	for i := range 7 {
		o := newOrder(t, []string{"alice", "bob"}[i%2])
		if _, _, err := store.Create(ctx, o, "", ""); err != nil {
			t.Fatal(err)
		}
		want = append(want, o.ID)
	}
	slices.Sort(want)

	var got []string
	after := ""
	for pages := 0; ; pages++ {
		if pages > 4 {
			t.Fatal("paging does not end")
		}
		page, err := store.OrdersAfter(ctx, after, 3)
		if err != nil {
			t.Fatal(err)
		}
		for _, o := range page {
			if len(o.Attempts) != 1 || o.Attempts[0].Status != order.AttemptSent || len(o.Lines) != 2 {
				t.Fatalf("order %s = %+v, want its lines and its SENT attempt", o.ID, o)
			}
			got = append(got, o.ID)
		}
		if len(page) < 3 {
			break
		}
		after = page[len(page)-1].ID
	}
	if !slices.Equal(got, want) {
		t.Fatalf("orders = %s, want %s", strings.Join(got, " "), strings.Join(want, " "))
	}
	var invalid *order.ValidationError
	if _, err := store.OrdersAfter(ctx, "", 0); !errors.As(err, &invalid) {
		t.Fatalf("limit 0 = %v, want a validation error", err)
	}
}
