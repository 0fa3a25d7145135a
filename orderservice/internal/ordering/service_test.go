package ordering_test

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/stockfence/stockfence/orderservice/internal/order"
	"github.com/stockfence/stockfence/orderservice/internal/ordering"
	"github.com/stockfence/stockfence/shared/contract"
)

// fakeStore keeps orders in memory and records the calls it gets.
type fakeStore struct {
	mu        sync.Mutex
	orders    map[string]order.Order
	keys      map[string]string // key -> order id
	hashes    map[string]string // key -> request hash
	unknown   map[string]string // order id -> last error
	resent    []string          // order ids whose compensation was resent
	settleErr error
	createErr error
}

func newFakeStore() *fakeStore {
	return &fakeStore{orders: map[string]order.Order{}, keys: map[string]string{}, hashes: map[string]string{}, unknown: map[string]string{}}
}

func (f *fakeStore) Create(_ context.Context, o order.Order, key, hash string) (order.Order, bool, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.createErr != nil {
		return order.Order{}, false, f.createErr
	}
	if id, ok := f.keys[key]; ok && key != "" {
		if f.hashes[key] != hash {
			return order.Order{}, false, order.ErrIdempotencyKeyReused
		}
		return f.orders[id], false, nil
	}
	f.orders[o.ID] = o
	if key != "" {
		f.keys[key], f.hashes[key] = o.ID, hash
	}
	return o, true, nil
}

func (f *fakeStore) ByKey(_ context.Context, _, key, hash string) (order.Order, bool, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	id, ok := f.keys[key]
	if !ok {
		return order.Order{}, false, nil
	}
	if f.hashes[key] != hash {
		return order.Order{}, false, order.ErrIdempotencyKeyReused
	}
	return f.orders[id], true, nil
}

func (f *fakeStore) Get(_ context.Context, customerID, orderID string) (order.Order, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	o, ok := f.orders[orderID]
	if !ok || o.CustomerID != customerID {
		return order.Order{}, order.ErrNotFound
	}
	return o, nil
}

func (f *fakeStore) List(context.Context, string, string, int) (order.Page, error) {
	return order.Page{}, nil
}

func (f *fakeStore) Settle(_ context.Context, orderID, _ string, r contract.Reservation) (order.Order, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.settleErr != nil {
		return order.Order{}, f.settleErr
	}
	n, err := f.orders[orderID].Settle(r, time.Now().UTC())
	if err != nil {
		return order.Order{}, err
	}
	f.orders[orderID] = n
	return n, nil
}

func (f *fakeStore) Load(_ context.Context, orderID string) (order.Order, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	o, ok := f.orders[orderID]
	if !ok {
		return order.Order{}, order.ErrNotFound
	}
	return o, nil
}

func (f *fakeStore) StartAttempt(_ context.Context, orderID, attemptID string, next time.Time) (order.Order, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	n, err := f.orders[orderID].StartAttempt(attemptID, time.Now().UTC(), next)
	if err != nil {
		return f.orders[orderID], err
	}
	f.orders[orderID] = n
	return n, nil
}

func (f *fakeStore) GiveUp(_ context.Context, orderID string) (order.Order, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	n, err := f.orders[orderID].GiveUp(time.Now().UTC())
	if err != nil {
		return f.orders[orderID], err
	}
	f.orders[orderID] = n
	return n, nil
}

func (f *fakeStore) Cancel(_ context.Context, customerID, orderID string) (order.Order, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	o, ok := f.orders[orderID]
	if !ok || o.CustomerID != customerID {
		return order.Order{}, order.ErrNotFound
	}
	n, _, err := o.Cancel(time.Now().UTC())
	if err != nil {
		return o, err
	}
	f.orders[orderID] = n
	return n, nil
}

func (f *fakeStore) ResendCompensation(_ context.Context, orderID string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.resent = append(f.resent, orderID)
	return nil
}

func (f *fakeStore) ApplyResult(_ context.Context, r contract.CompensationResult) (order.Order, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	n, err := f.orders[r.OrderID].ApplyResult(r.AttemptID, r.Status, time.Now().UTC())
	if err != nil {
		return f.orders[r.OrderID], nil
	}
	f.orders[r.OrderID] = n
	return n, nil
}

func (f *fakeStore) RecordUnknown(_ context.Context, orderID, errText string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.unknown[orderID] = errText
	return nil
}

// fakeProduct answers reserves with fn and resolves with resolveFn (an
// unknown outcome when nil), and counts both.
type fakeProduct struct {
	mu        sync.Mutex
	calls     int
	resolves  int
	down      bool
	fn        func(context.Context, contract.ReserveRequest) (contract.Reservation, error)
	resolveFn func(ctx context.Context, attemptID, orderID string) (contract.Reservation, error)
}

func (f *fakeProduct) Reserve(ctx context.Context, req contract.ReserveRequest) (contract.Reservation, error) {
	f.mu.Lock()
	f.calls++
	f.mu.Unlock()
	return f.fn(ctx, req)
}

func (f *fakeProduct) Resolve(ctx context.Context, attemptID, orderID string) (contract.Reservation, error) {
	f.mu.Lock()
	f.resolves++
	fn := f.resolveFn
	f.mu.Unlock()
	if fn == nil {
		return contract.Reservation{}, errors.New("resolve: still unknown")
	}
	return fn(ctx, attemptID, orderID)
}

func (f *fakeProduct) Available() (time.Duration, bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return 3 * time.Second, !f.down
}

func (f *fakeProduct) setDown(down bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.down = down
}

func (f *fakeProduct) count() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.calls
}

func apply(_ context.Context, req contract.ReserveRequest) (contract.Reservation, error) {
	items := make([]contract.ReservedItem, len(req.Items))
	for i, it := range req.Items {
		items[i] = contract.ReservedItem{ProductID: it.ProductID, Quantity: it.Quantity, UnitPriceCents: 100}
	}
	return contract.Reservation{AttemptID: req.AttemptID, OrderID: req.OrderID, Status: contract.StatusApplied, Items: items}, nil
}

var items = []contract.Item{{ProductID: 1, Quantity: 2}}

func TestPlace(t *testing.T) {
	t.Parallel()
	unavailable := errors.New("product service: 503")
	tests := []struct {
		name       string
		reserve    func(context.Context, contract.ReserveRequest) (contract.Reservation, error)
		settleErr  error
		status     order.Status
		attempt    order.AttemptStatus
		lastErrSet bool
	}{
		{"applied confirms", apply, nil, order.StatusConfirmed, order.AttemptApplied, false},
		{"rejected fails", func(_ context.Context, req contract.ReserveRequest) (contract.Reservation, error) {
			return contract.Reservation{AttemptID: req.AttemptID, OrderID: req.OrderID, Status: contract.StatusRejected, Reason: contract.ReasonInsufficientStock}, nil
		}, nil, order.StatusFailed, order.AttemptRejected, false},
		{"unknown outcome stays pending", func(context.Context, contract.ReserveRequest) (contract.Reservation, error) {
			return contract.Reservation{}, unavailable
		}, nil, order.StatusPending, order.AttemptSent, true},
		{"answer not stored stays pending", apply, errors.New("orders db down"), order.StatusPending, order.AttemptSent, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			store := newFakeStore()
			store.settleErr = tt.settleErr
			res := &fakeProduct{fn: tt.reserve}
			svc := ordering.New(store, res, ordering.Config{SyncBudget: time.Second, ProductTimeout: 100 * time.Millisecond})
			o, created, err := svc.Place(context.Background(), "alice", "k1", items)
			if err != nil {
				t.Fatalf("Place: %v", err)
			}
			if !created {
				t.Errorf("created = false, want true")
			}
			if o.Status != tt.status {
				t.Errorf("status = %s, want %s", o.Status, tt.status)
			}
			if got := o.Attempts[0].Status; got != tt.attempt {
				t.Errorf("attempt status = %s, want %s", got, tt.attempt)
			}
			if _, got := store.unknown[o.ID]; got != tt.lastErrSet {
				t.Errorf("last error recorded = %v, want %v", got, tt.lastErrSet)
			}
			if n := res.count(); n != 1 {
				t.Errorf("reserve calls = %d, want 1", n)
			}
		})
	}
}

func TestPlaceReplay(t *testing.T) {
	t.Parallel()
	store := newFakeStore()
	res := &fakeProduct{fn: apply}
	svc := ordering.New(store, res, ordering.Config{SyncBudget: time.Second, ProductTimeout: 100 * time.Millisecond})
	first, _, err := svc.Place(context.Background(), "alice", "k1", items)
	if err != nil {
		t.Fatal(err)
	}
	again, created, err := svc.Place(context.Background(), "alice", "k1", items)
	if err != nil {
		t.Fatalf("replay: %v", err)
	}
	if created || again.ID != first.ID || again.Status != order.StatusConfirmed {
		t.Errorf("replay = %s %s created %v, want %s CONFIRMED created false", again.ID, again.Status, created, first.ID)
	}
	if n := res.count(); n != 1 {
		t.Errorf("reserve calls = %d, want 1", n)
	}
	_, _, err = svc.Place(context.Background(), "alice", "k1", []contract.Item{{ProductID: 1, Quantity: 3}})
	if !errors.Is(err, order.ErrIdempotencyKeyReused) {
		t.Errorf("other body err = %v, want ErrIdempotencyKeyReused", err)
	}
}

func TestPlaceRejectsInvalidInput(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name     string
		customer string
		key      string
		items    []contract.Item
	}{
		{"no items", "alice", "", nil},
		{"zero quantity", "alice", "", []contract.Item{{ProductID: 1, Quantity: 0}}},
		{"duplicate product", "alice", "", []contract.Item{{ProductID: 1, Quantity: 1}, {ProductID: 1, Quantity: 1}}},
		{"bad key", "alice", "bad\nkey", items},
		{"no customer", "", "", items},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			store := newFakeStore()
			res := &fakeProduct{fn: apply}
			svc := ordering.New(store, res, ordering.Config{SyncBudget: time.Second, ProductTimeout: 100 * time.Millisecond})
			_, _, err := svc.Place(context.Background(), tt.customer, tt.key, tt.items)
			var verr *order.ValidationError
			if !errors.As(err, &verr) {
				t.Fatalf("err = %v, want *order.ValidationError", err)
			}
			if len(store.orders) != 0 || res.count() != 0 {
				t.Errorf("orders = %d, reserve calls = %d, want 0 and 0", len(store.orders), res.count())
			}
		})
	}
}

func TestPlaceBudget(t *testing.T) {
	t.Parallel()
	var deadline time.Time
	res := &fakeProduct{fn: func(ctx context.Context, req contract.ReserveRequest) (contract.Reservation, error) {
		deadline, _ = ctx.Deadline()
		<-ctx.Done()
		return contract.Reservation{}, ctx.Err()
	}}
	store := newFakeStore()
	svc := ordering.New(store, res, ordering.Config{SyncBudget: 100 * time.Millisecond, ProductTimeout: 50 * time.Millisecond})
	start := time.Now()
	o, _, err := svc.Place(context.Background(), "alice", "", items)
	if err != nil {
		t.Fatalf("Place: %v", err)
	}
	if o.Status != order.StatusPending {
		t.Errorf("status = %s, want PENDING", o.Status)
	}
	if got, limit := time.Since(start), time.Second; got > limit {
		t.Errorf("Place took %s, want under %s", got, limit)
	}
	if deadline.IsZero() || deadline.After(start.Add(200*time.Millisecond)) {
		t.Errorf("reserve deadline = %v, want within the budget after %v", deadline, start)
	}
	if o.NextCheckAt == nil || o.NextCheckAt.Sub(o.CreatedAt) != 100*time.Millisecond {
		t.Errorf("nextCheckAt = %v, want createdAt + budget (%v)", o.NextCheckAt, o.CreatedAt)
	}
}

func TestPlaceOutlivesTheClient(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithCancel(context.Background())
	res := &fakeProduct{fn: func(rctx context.Context, req contract.ReserveRequest) (contract.Reservation, error) {
		cancel() // the client hangs up while the call is in flight
		if err := rctx.Err(); err != nil {
			return contract.Reservation{}, err
		}
		return apply(rctx, req)
	}}
	svc := ordering.New(newFakeStore(), res, ordering.Config{SyncBudget: time.Second, ProductTimeout: 100 * time.Millisecond})
	o, _, err := svc.Place(ctx, "alice", "", items)
	if err != nil {
		t.Fatalf("Place: %v", err)
	}
	if o.Status != order.StatusConfirmed {
		t.Errorf("status = %s, want CONFIRMED", o.Status)
	}
}

func TestPlaceCreateError(t *testing.T) {
	t.Parallel()
	store := newFakeStore()
	store.createErr = errors.New("db down")
	res := &fakeProduct{fn: apply}
	svc := ordering.New(store, res, ordering.Config{SyncBudget: time.Second, ProductTimeout: 100 * time.Millisecond})
	if _, _, err := svc.Place(context.Background(), "alice", "", items); !errors.Is(err, store.createErr) {
		t.Fatalf("err = %v, want %v", err, store.createErr)
	}
	if n := res.count(); n != 0 {
		t.Errorf("reserve calls = %d, want 0", n)
	}
}

func TestList(t *testing.T) {
	t.Parallel()
	svc := ordering.New(newFakeStore(), &fakeProduct{fn: apply}, ordering.Config{SyncBudget: time.Second, ProductTimeout: 100 * time.Millisecond})
	tests := []struct {
		limit int
		ok    bool
	}{{1, true}, {order.MaxPageSize, true}, {0, false}, {order.MaxPageSize + 1, false}}
	for _, tt := range tests {
		_, err := svc.List(context.Background(), "alice", "", tt.limit)
		if got := err == nil; got != tt.ok {
			t.Errorf("List(limit %d) err = %v, want ok %v", tt.limit, err, tt.ok)
		}
	}
}

// applied answers a resolve with an APPLIED reservation of req's lines.
func resolveApplied(items []contract.Item) func(context.Context, string, string) (contract.Reservation, error) {
	return func(ctx context.Context, attemptID, orderID string) (contract.Reservation, error) {
		return apply(ctx, contract.ReserveRequest{AttemptID: attemptID, OrderID: orderID, Items: items})
	}
}

func aborted(_ context.Context, attemptID, orderID string) (contract.Reservation, error) {
	return contract.Reservation{AttemptID: attemptID, OrderID: orderID, Status: contract.StatusAborted}, nil
}

func lost(context.Context, contract.ReserveRequest) (contract.Reservation, error) {
	return contract.Reservation{}, errors.New("reserve: timeout")
}

func TestPlaceResolvesALostAnswer(t *testing.T) {
	t.Parallel()
	store := newFakeStore()
	p := &fakeProduct{fn: lost, resolveFn: resolveApplied(items)}
	svc := ordering.New(store, p, ordering.Config{SyncBudget: time.Second, ProductTimeout: 100 * time.Millisecond})
	o, _, err := svc.Place(context.Background(), "alice", "", items)
	if err != nil {
		t.Fatal(err)
	}
	if o.Status != order.StatusConfirmed || len(o.Attempts) != 1 || o.Attempts[0].Status != order.AttemptApplied {
		t.Fatalf("order = %s with attempts %+v, want CONFIRMED by its one APPLIED attempt", o.Status, o.Attempts)
	}
	if p.count() != 1 {
		t.Fatalf("reserve calls = %d, want 1 (a lost answer is resolved, never resent)", p.count())
	}
}

func TestPlaceStartsANewAttemptAfterAbort(t *testing.T) {
	t.Parallel()
	store := newFakeStore()
	var first string
	p := &fakeProduct{
		fn: func(ctx context.Context, req contract.ReserveRequest) (contract.Reservation, error) {
			if first == "" {
				first = req.AttemptID
				return lost(ctx, req)
			}
			return apply(ctx, req)
		},
		resolveFn: aborted,
	}
	svc := ordering.New(store, p, ordering.Config{SyncBudget: time.Second, ProductTimeout: 100 * time.Millisecond})
	o, _, err := svc.Place(context.Background(), "alice", "", items)
	if err != nil {
		t.Fatal(err)
	}
	if o.Status != order.StatusConfirmed || len(o.Attempts) != 2 {
		t.Fatalf("order = %s with %d attempts, want CONFIRMED with 2", o.Status, len(o.Attempts))
	}
	if o.Attempts[0].ID != first || o.Attempts[0].Status != order.AttemptAborted || o.Attempts[1].Status != order.AttemptApplied {
		t.Fatalf("attempts = %+v, want the first ABORTED and the second APPLIED", o.Attempts)
	}
}

func TestPlaceWhenTheBreakerIsOpen(t *testing.T) {
	t.Parallel()
	store := newFakeStore()
	p := &fakeProduct{fn: apply, down: true}
	svc := ordering.New(store, p, ordering.Config{SyncBudget: time.Second, ProductTimeout: 100 * time.Millisecond})
	_, _, err := svc.Place(context.Background(), "alice", "k", items)
	var unavailable *ordering.UnavailableError
	if !errors.As(err, &unavailable) || unavailable.RetryAfter <= 0 {
		t.Fatalf("err = %v, want *UnavailableError with a RetryAfter", err)
	}
	if len(store.orders) != 0 || p.count() != 0 {
		t.Fatalf("orders = %d, reserve calls = %d; want nothing recorded or sent", len(store.orders), p.count())
	}

	// A replay of an order placed before the breaker opened still answers
	// with that order.
	p.setDown(false)
	first, _, err := svc.Place(context.Background(), "alice", "k2", items)
	if err != nil {
		t.Fatal(err)
	}
	p.setDown(true)
	again, created, err := svc.Place(context.Background(), "alice", "k2", items)
	if err != nil || created || again.ID != first.ID || again.Status != order.StatusConfirmed {
		t.Fatalf("replay while down = %s %s created %v, err %v; want %s CONFIRMED", again.ID, again.Status, created, err, first.ID)
	}
	if _, _, err := svc.Place(context.Background(), "alice", "k2", []contract.Item{{ProductID: 1, Quantity: 3}}); !errors.Is(err, order.ErrIdempotencyKeyReused) {
		t.Fatalf("other body while down: err = %v, want ErrIdempotencyKeyReused", err)
	}
}

func TestAdvance(t *testing.T) {
	t.Parallel()
	newPending := func(store *fakeStore, attempts ...order.AttemptStatus) order.Order {
		now := time.Now().UTC()
		o := order.New("o-"+time.Now().Format("150405.000000000"), "a1", "alice", items, now, now)
		o.Attempts[0].Status = attempts[0]
		for i, st := range attempts[1:] {
			o.Attempts = append(o.Attempts, order.Attempt{ID: "a" + string(rune('2'+i)), Seq: i + 2, Status: st})
		}
		store.orders[o.ID] = o
		return o
	}
	tests := []struct {
		name     string
		attempts []order.AttemptStatus
		product  *fakeProduct
		status   order.Status
		wantErr  bool
		reserves int
	}{
		{"open attempt applied", []order.AttemptStatus{order.AttemptSent}, &fakeProduct{fn: apply, resolveFn: resolveApplied(items)}, order.StatusConfirmed, false, 0},
		{"open attempt still unknown", []order.AttemptStatus{order.AttemptSent}, &fakeProduct{fn: apply}, order.StatusPending, true, 0},
		{"aborted gets a new attempt", []order.AttemptStatus{order.AttemptAborted}, &fakeProduct{fn: apply}, order.StatusConfirmed, false, 1},
		{"aborted while the breaker is open waits", []order.AttemptStatus{order.AttemptAborted}, &fakeProduct{fn: apply, down: true}, order.StatusPending, true, 0},
		{"out of attempts fails", []order.AttemptStatus{order.AttemptAborted, order.AttemptAborted, order.AttemptAborted, order.AttemptAborted, order.AttemptAborted},
			&fakeProduct{fn: apply}, order.StatusFailed, false, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			store := newFakeStore()
			o := newPending(store, tt.attempts...)
			svc := ordering.New(store, tt.product, ordering.Config{SyncBudget: time.Second, ProductTimeout: 50 * time.Millisecond})
			ctx, cancel := context.WithTimeout(context.Background(), time.Second)
			defer cancel()
			got, err := svc.Advance(ctx, o.ID)
			if (err != nil) != tt.wantErr {
				t.Fatalf("err = %v, want error %v", err, tt.wantErr)
			}
			if got.Status != tt.status {
				t.Fatalf("status = %s, want %s", got.Status, tt.status)
			}
			if tt.status == order.StatusFailed && got.Reason != order.ReasonProductUnavailable {
				t.Fatalf("reason = %s, want product_unavailable", got.Reason)
			}
			if n := tt.product.count(); n != tt.reserves {
				t.Fatalf("reserve calls = %d, want %d", n, tt.reserves)
			}
		})
	}
}

// TestAdvanceOverdueCompensation: a CANCELLING or COMPENSATING order whose
// compensation result did not come is settled from the product side's
// attempt log when the attempt holds nothing any more, and has its
// compensation sent again when it still does or the log cannot be asked.
func TestAdvanceOverdueCompensation(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		status  order.Status // CANCELLING or COMPENSATING
		attempt order.AttemptStatus
		logged  contract.AttemptStatus // what resolving answers; "": no answer
		want    order.Status
		resent  bool
	}{
		{"cancelled order compensated", order.StatusCancelling, order.AttemptApplied, contract.StatusCompensated, order.StatusCancelled, false},
		{"cancelled pending order fenced", order.StatusCancelling, order.AttemptSent, contract.StatusAborted, order.StatusCancelled, false},
		{"cancelled pending order rejected", order.StatusCancelling, order.AttemptSent, contract.StatusRejected, order.StatusCancelled, false},
		{"mismatch compensated", order.StatusCompensating, order.AttemptApplied, contract.StatusCompensated, order.StatusFailed, false},
		{"still applied", order.StatusCancelling, order.AttemptApplied, contract.StatusApplied, order.StatusCancelling, true},
		{"log unreachable", order.StatusCancelling, order.AttemptApplied, "", order.StatusCancelling, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			store := newFakeStore()
			now := time.Now().UTC()
			o := order.New("o1", "a1", "alice", items, now, now)
			o.Status, o.Attempts[0].Status = tt.status, tt.attempt
			store.orders[o.ID] = o
			p := &fakeProduct{fn: apply}
			if tt.logged != "" {
				p.resolveFn = func(_ context.Context, attemptID, orderID string) (contract.Reservation, error) {
					return contract.Reservation{AttemptID: attemptID, OrderID: orderID, Status: tt.logged}, nil
				}
			}
			svc := ordering.New(store, p, ordering.Config{SyncBudget: time.Second, ProductTimeout: 50 * time.Millisecond})
			got, err := svc.Advance(context.Background(), o.ID)
			if got.Status != tt.want {
				t.Fatalf("status = %s (err %v), want %s", got.Status, err, tt.want)
			}
			if (err != nil) != tt.resent || (len(store.resent) == 1) != tt.resent {
				t.Fatalf("err = %v, resent = %v; want resent %v", err, store.resent, tt.resent)
			}
			if !tt.resent && got.Attempts[0].Status != order.AttemptStatus(tt.logged) {
				t.Fatalf("attempt = %s, want %s as logged", got.Attempts[0].Status, tt.logged)
			}
			if p.count() != 0 {
				t.Fatalf("reserve calls = %d, want none", p.count())
			}
		})
	}
}
