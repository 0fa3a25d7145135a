// Package coalesce applies the order service's three steps of every order
// with group commit (shared/groupcommit): concurrent Create calls go into the
// database as one transaction (mysql.Store.CreateBatch), concurrent reserve
// calls to the product service as one POST /reservations/batch
// (productclient.Client.ReserveBatch), and concurrent Settle calls as one
// transaction (mysql.Store.SettleBatch). Every order keeps its own rows,
// attempt and answer, and the results are those of one call per order; a
// batch that fails as a whole is answered call by call by the one-at-a-time
// path (a lost batch answer makes each of its reservations unknown, as a lost
// single answer does).
//
// Under a flash sale this turns the ~15 statements, two commits and one HTTP
// exchange of each order into a handful per batch, which is what the CPUs
// were spent on.
package coalesce

import (
	"context"
	"log/slog"
	"time"

	"github.com/stockfence/stockfence/orderservice/internal/mysql"
	"github.com/stockfence/stockfence/orderservice/internal/order"
	"github.com/stockfence/stockfence/shared/contract"
	"github.com/stockfence/stockfence/shared/groupcommit"
	"github.com/stockfence/stockfence/shared/mysqldb"
)

// batchTimeout bounds one batch's work, whatever became of the callers'
// contexts.
const batchTimeout = 10 * time.Second

// Config sizes the batchers.
type Config struct {
	// Lanes is how many batches of each kind may run at once; MaxBatch how
	// many calls one batch takes at most.
	Lanes, MaxBatch int
	// Observe, if set, is told the size of every batch applied and its kind
	// ("create", "reserve" or "settle").
	Observe func(kind string, size int)
	Logger  *slog.Logger
}

// observe returns the Observe of the batches of kind.
func (cfg Config) observe(kind string) func(int) {
	if cfg.Observe == nil {
		return nil
	}
	return func(n int) { cfg.Observe(kind, n) }
}

// Store is the orders store with Create and Settle coalesced; everything
// else is the underlying store's.
type Store struct {
	*mysql.Store
	create *groupcommit.Batcher[mysql.CreateRequest, created] // nil: not coalesced
	settle *groupcommit.Batcher[mysql.SettleRequest, mysql.SettleOutcome]
}

// created is what Create answers.
type created struct {
	order   order.Order
	created bool
	err     error
}

// New starts the batchers over store. Creates are not coalesced when the
// store enforces a quantity cap (the cap takes a per-customer lock in each
// order's own transaction). Close stops the batchers.
func New(store *mysql.Store, cfg Config) *Store {
	logger := cfg.Logger
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	fallback := func(kind string) func(int, error) {
		return func(size int, err error) {
			// A duplicate idempotency key is a replay racing its
			// original: the one-at-a-time path answers it as such.
			if !mysqldb.IsDuplicate(err) {
				logger.Warn("order batch failed; applying its calls one at a time", "kind", kind, "size", size, "err", err)
			}
		}
	}
	s := &Store{Store: store}
	if store.QuantityCap().Limit <= 0 {
		s.create = groupcommit.New(groupcommit.Config[mysql.CreateRequest, created]{
			Batch: func(ctx context.Context, reqs []mysql.CreateRequest) ([]created, error) {
				if err := store.CreateBatch(ctx, reqs); err != nil {
					return nil, err
				}
				out := make([]created, len(reqs))
				for i, r := range reqs {
					out[i] = created{order: r.Order, created: true}
				}
				return out, nil
			},
			Single: func(ctx context.Context, r mysql.CreateRequest) created {
				o, ok, err := store.Create(ctx, r.Order, r.IdemKey, r.RequestHash)
				return created{order: o, created: ok, err: err}
			},
			Lanes: cfg.Lanes, MaxBatch: cfg.MaxBatch, Timeout: batchTimeout,
			Observe: cfg.observe("create"), Fallback: fallback("create"),
		})
	}
	s.settle = groupcommit.New(groupcommit.Config[mysql.SettleRequest, mysql.SettleOutcome]{
		Batch: store.SettleBatch,
		Single: func(ctx context.Context, r mysql.SettleRequest) mysql.SettleOutcome {
			o, err := store.Settle(ctx, r.OrderID, r.AttemptID, r.Answer)
			return mysql.SettleOutcome{Order: o, Err: err}
		},
		Lanes: cfg.Lanes, MaxBatch: cfg.MaxBatch, Timeout: batchTimeout,
		Observe: cfg.observe("settle"), Fallback: fallback("settle"),
	})
	return s
}

// Create is mysql.Store.Create, coalesced with concurrent calls.
func (s *Store) Create(ctx context.Context, o order.Order, idemKey, requestHash string) (order.Order, bool, error) {
	if s.create == nil {
		return s.Store.Create(ctx, o, idemKey, requestHash)
	}
	out, err := s.create.Do(ctx, mysql.CreateRequest{Order: o, IdemKey: idemKey, RequestHash: requestHash})
	if err != nil {
		return order.Order{}, false, err
	}
	return out.order, out.created, out.err
}

// Settle is mysql.Store.Settle, coalesced with concurrent calls.
func (s *Store) Settle(ctx context.Context, orderID, attemptID string, r contract.Reservation) (order.Order, error) {
	out, err := s.settle.Do(ctx, mysql.SettleRequest{OrderID: orderID, AttemptID: attemptID, Answer: r})
	if err != nil {
		return order.Order{}, err
	}
	return out.Order, out.Err
}

// Close lets the batchers finish what is queued and stops them.
func (s *Store) Close() {
	if s.create != nil {
		s.create.Close()
	}
	s.settle.Close()
}
