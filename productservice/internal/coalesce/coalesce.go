// Package coalesce applies concurrent reservation requests together, with
// group commit (shared/groupcommit): each lane takes every request waiting
// when it becomes free (up to a batch size) and applies them in one
// transaction, Store.ReserveBatch. Each request keeps its own attempt row and
// its own answer, and the semantics are those of one transaction per
// request; a batch that fails as a whole is answered request by request with
// Store.Reserve.
package coalesce

import (
	"context"
	"log/slog"
	"time"

	"github.com/stockfence/stockfence/productservice/internal/mysql"
	"github.com/stockfence/stockfence/shared/contract"
	"github.com/stockfence/stockfence/shared/groupcommit"
)

// Reservations applies reservations one at a time and in batches
// (internal/mysql.Store).
type Reservations interface {
	Reserve(ctx context.Context, req contract.ReserveRequest) (contract.Reservation, bool, error)
	ReserveBatch(ctx context.Context, reqs []contract.ReserveRequest) ([]mysql.Outcome, error)
}

// batchTimeout bounds one batch's work, whatever became of the requests'
// own contexts: once a request is in a transaction its outcome is decided
// with the others, and recorded for a resolve to find.
const batchTimeout = 10 * time.Second

// Coalescer queues reservation requests for its lanes.
type Coalescer struct {
	batcher *groupcommit.Batcher[contract.ReserveRequest, mysql.Outcome]
}

// Config sizes a Coalescer.
type Config struct {
	// Lanes is how many batches may run at once; MaxBatch how many requests
	// one batch takes at most.
	Lanes, MaxBatch int
	// Observe, if set, is told the size of every batch applied.
	Observe func(size int)
	Logger  *slog.Logger
}

// New starts cfg.Lanes lanes over store. Close stops them.
func New(store Reservations, cfg Config) *Coalescer {
	logger := cfg.Logger
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	return &Coalescer{batcher: groupcommit.New(groupcommit.Config[contract.ReserveRequest, mysql.Outcome]{
		Batch: store.ReserveBatch,
		Single: func(ctx context.Context, req contract.ReserveRequest) mysql.Outcome {
			res, replayed, err := store.Reserve(ctx, req)
			return mysql.Outcome{Res: res, Replayed: replayed, Err: err}
		},
		Lanes:    cfg.Lanes,
		MaxBatch: cfg.MaxBatch,
		Timeout:  batchTimeout,
		Observe:  cfg.Observe,
		Fallback: func(size int, err error) {
			if !mysql.IsBatchConflict(err) {
				logger.Warn("reservation batch failed; applying its requests one at a time", "size", size, "err", err)
			}
		},
	})}
}

// Reserve queues req and waits for its answer, which is exactly what
// Store.Reserve would have answered. If ctx ends first the error is ctx's and
// the outcome is unknown to the caller (the request may still be applied
// with its batch; the attempt log has the answer).
func (c *Coalescer) Reserve(ctx context.Context, req contract.ReserveRequest) (contract.Reservation, bool, error) {
	out, err := c.batcher.Do(ctx, req)
	if err != nil {
		return contract.Reservation{}, false, err
	}
	return out.Res, out.Replayed, out.Err
}

// Close lets the lanes finish what is queued and stops them.
func (c *Coalescer) Close() { c.batcher.Close() }

// Store is the product store with reservations going through a Coalescer;
// everything else is the store's.
type Store struct {
	*mysql.Store
	Coalescer *Coalescer
}

// Reserve is Coalescer.Reserve.
func (s Store) Reserve(ctx context.Context, req contract.ReserveRequest) (contract.Reservation, bool, error) {
	return s.Coalescer.Reserve(ctx, req)
}
