// Package coalesce applies concurrent reservation requests together: each
// lane takes every request waiting when it becomes free (up to a batch
// size) and applies them in one transaction. Nothing waits on a timer: a lone
// request goes straight through, and under load the requests that arrive
// while a transaction runs make up the next batch (group commit). Each
// request keeps its own attempt row and its own answer, and the semantics are
// those of one transaction per request (see mysql.Store.ReserveBatch).
package coalesce

import (
	"context"
	"errors"
	"log/slog"
	"sync"
	"time"

	"github.com/stockfence/stockfence/productservice/internal/mysql"
	"github.com/stockfence/stockfence/shared/contract"
)

// Store applies reservations one at a time and in batches
// (internal/mysql.Store).
type Store interface {
	Reserve(ctx context.Context, req contract.ReserveRequest) (contract.Reservation, bool, error)
	ReserveBatch(ctx context.Context, reqs []contract.ReserveRequest) ([]mysql.Outcome, error)
}

// batchTimeout bounds one batch's work, whatever became of the requests'
// own contexts: once a request is in a transaction its outcome is decided
// with the others, and recorded for a resolve to find.
const batchTimeout = 10 * time.Second

// ErrClosed is returned for requests made after Close.
var ErrClosed = errors.New("coalescer closed")

// Coalescer queues reservation requests for its lanes.
type Coalescer struct {
	store    Store
	maxBatch int
	observe  func(size int)
	logger   *slog.Logger

	queue  chan *call
	mu     sync.RWMutex // guards closed against sends on a closed queue
	closed bool
	lanes  sync.WaitGroup
}

type call struct {
	ctx  context.Context
	req  contract.ReserveRequest
	done chan struct{}
	out  mysql.Outcome
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
func New(store Store, cfg Config) *Coalescer {
	c := &Coalescer{
		store:    store,
		maxBatch: max(cfg.MaxBatch, 1),
		observe:  cfg.Observe,
		logger:   cfg.Logger,
		queue:    make(chan *call, 4*max(cfg.MaxBatch, 1)),
	}
	if c.logger == nil {
		c.logger = slog.New(slog.DiscardHandler)
	}
	if c.observe == nil {
		c.observe = func(int) {}
	}
	for range max(cfg.Lanes, 1) {
		c.lanes.Add(1)
		go c.lane()
	}
	return c
}

// Reserve queues req and waits for its answer, which is exactly what
// Store.Reserve would have answered. If ctx ends first the error is ctx's and
// the outcome is unknown to the caller (the request may still be applied
// with its batch; the attempt log has the answer).
func (c *Coalescer) Reserve(ctx context.Context, req contract.ReserveRequest) (contract.Reservation, bool, error) {
	cl := &call{ctx: ctx, req: req, done: make(chan struct{})}
	c.mu.RLock()
	if c.closed {
		c.mu.RUnlock()
		return contract.Reservation{}, false, ErrClosed
	}
	select {
	case c.queue <- cl:
		c.mu.RUnlock()
	case <-ctx.Done():
		c.mu.RUnlock()
		return contract.Reservation{}, false, ctx.Err()
	}
	select {
	case <-cl.done:
		return cl.out.Res, cl.out.Replayed, cl.out.Err
	case <-ctx.Done():
		return contract.Reservation{}, false, ctx.Err()
	}
}

// Close lets the lanes finish what is queued and stops them.
func (c *Coalescer) Close() {
	c.mu.Lock()
	if !c.closed {
		c.closed = true
		close(c.queue)
	}
	c.mu.Unlock()
	c.lanes.Wait()
}

// lane applies batches until the queue is closed and drained.
func (c *Coalescer) lane() {
	defer c.lanes.Done()
	batch := make([]*call, 0, c.maxBatch)
	for first := range c.queue {
		batch = append(batch[:0], first)
	fill:
		for len(batch) < c.maxBatch {
			select {
			case cl, ok := <-c.queue:
				if !ok {
					break fill
				}
				batch = append(batch, cl)
			default:
				break fill
			}
		}
		c.apply(batch)
	}
}

// apply runs one batch. A request whose caller has gone before it started is
// left out (it was never applied, so its outcome is simply unknown to the
// caller, as for a request lost on the way). If the batch fails as a whole,
// each request is answered on its own path.
func (c *Coalescer) apply(batch []*call) {
	live := batch[:0]
	for _, cl := range batch {
		if err := cl.ctx.Err(); err != nil {
			cl.out.Err = err
			close(cl.done)
			continue
		}
		live = append(live, cl)
	}
	if len(live) == 0 {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), batchTimeout)
	defer cancel()
	reqs := make([]contract.ReserveRequest, len(live))
	for i, cl := range live {
		reqs[i] = cl.req
	}
	outs, err := c.store.ReserveBatch(ctx, reqs)
	if err == nil {
		c.observe(len(live))
		for i, cl := range live {
			cl.out = outs[i]
			close(cl.done)
		}
		return
	}
	if !mysql.IsBatchConflict(err) {
		c.logger.Warn("reservation batch failed; applying its requests one at a time", "size", len(live), "err", err)
	}
	for _, cl := range live {
		res, replayed, err := c.store.Reserve(ctx, cl.req)
		cl.out = mysql.Outcome{Res: res, Replayed: replayed, Err: err}
		close(cl.done)
	}
}
