// Package groupcommit runs concurrent calls of one operation together: a
// free lane takes every call waiting (up to a batch size) and applies them
// with one call of a batch function, typically one database transaction.
// Nothing waits on a timer: a call that finds a lane free is applied at once,
// on its caller's goroutine, and under load the calls that arrive while a
// batch runs make up the next one (group commit). Every call keeps its own
// answer; a batch that fails as a whole is answered call by call on the
// one-at-a-time path.
package groupcommit

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"
)

// ErrClosed is returned for calls made after Close.
var ErrClosed = errors.New("group commit closed")

// Config configures a Batcher of requests Req answered with Res.
type Config[Req, Res any] struct {
	// Batch applies reqs together and answers each, in order; an error
	// means none of them was applied.
	Batch func(ctx context.Context, reqs []Req) ([]Res, error)
	// Single applies one request on its own: the way on for each request
	// of a batch that failed. If nil, a failed batch's error is the error of
	// each of its calls.
	Single func(ctx context.Context, req Req) Res
	// Lanes is how many batches may run at once; MaxBatch how many requests
	// one batch takes at most.
	Lanes, MaxBatch int
	// Timeout bounds one batch, and then each request of its fallback,
	// whatever became of the callers' contexts: once a request is being
	// applied it is applied (or not) with the others.
	Timeout time.Duration
	// Observe, if set, is told the size of every batch applied.
	Observe func(size int)
	// Fallback, if set, is told when a batch of size requests failed with
	// err and is being answered one request at a time.
	Fallback func(size int, err error)
}

// Batcher queues calls for its lanes. It is safe for concurrent use.
//
// A lane is not a goroutine of its own: the call that finds a lane free runs
// batches on its caller's goroutine until its own call is answered, then
// hands the lane to a new goroutine if calls are still waiting. A lone call
// therefore costs no switch between goroutines, and the waiting calls are
// never stranded: a lane is only freed when nothing waits.
type Batcher[Req, Res any] struct {
	cfg Config[Req, Res]

	mu      sync.Mutex
	waiting []*call[Req, Res] // in arrival order
	free    int               // lanes not running batches
	closed  bool
	busy    sync.WaitGroup // one per lane running batches
}

type call[Req, Res any] struct {
	ctx  context.Context
	req  Req
	done chan struct{}
	res  *Res  // nil: left out (its caller gone), or err
	err  error // the failed batch's, when there is no Single
}

// New returns a batcher with cfg.Lanes lanes (at least one). Close stops it.
func New[Req, Res any](cfg Config[Req, Res]) *Batcher[Req, Res] {
	cfg.Lanes = max(cfg.Lanes, 1)
	cfg.MaxBatch = max(cfg.MaxBatch, 1)
	if cfg.Timeout <= 0 {
		cfg.Timeout = 10 * time.Second
	}
	if cfg.Observe == nil {
		cfg.Observe = func(int) {}
	}
	if cfg.Fallback == nil {
		cfg.Fallback = func(int, error) {}
	}
	return &Batcher[Req, Res]{cfg: cfg, free: cfg.Lanes}
}

// Do queues req and waits for its answer (or, without Single, the error of
// its failed batch). If ctx ends first the error is ctx's, and whether req
// was applied is unknown to the caller: a request whose batch had not started
// when ctx ended is left out of it, one whose batch had started is applied
// with it.
func (b *Batcher[Req, Res]) Do(ctx context.Context, req Req) (Res, error) {
	var zero Res
	c := &call[Req, Res]{ctx: ctx, req: req, done: make(chan struct{})}
	b.mu.Lock()
	if b.closed {
		b.mu.Unlock()
		return zero, ErrClosed
	}
	b.waiting = append(b.waiting, c)
	lead := b.free > 0
	if lead {
		b.free--
		b.busy.Add(1)
	}
	b.mu.Unlock()
	if lead {
		b.run(c)
	}
	select {
	case <-c.done:
		switch {
		case c.err != nil:
			return zero, c.err
		case c.res == nil:
			return zero, c.ctx.Err()
		}
		return *c.res, nil
	case <-ctx.Done():
		return zero, ctx.Err()
	}
}

// Close lets the lanes finish what is queued and stops taking calls.
func (b *Batcher[Req, Res]) Close() {
	b.mu.Lock()
	b.closed = true
	b.mu.Unlock()
	b.busy.Wait()
}

// run holds a lane: it applies batches of the waiting calls, oldest first,
// until own is answered (own nil: until none waits). Then it frees the lane
// if none waits, or hands it to a new goroutine.
func (b *Batcher[Req, Res]) run(own *call[Req, Res]) {
	for {
		b.mu.Lock()
		if len(b.waiting) == 0 {
			b.free++
			b.mu.Unlock()
			b.busy.Done()
			return
		}
		if own != nil && answered(own) {
			b.mu.Unlock()
			go b.run(nil)
			return
		}
		n := min(len(b.waiting), b.cfg.MaxBatch)
		batch := make([]*call[Req, Res], n)
		copy(batch, b.waiting)
		clear(b.waiting[:n]) // no references kept to answered calls
		b.waiting = b.waiting[n:]
		if len(b.waiting) == 0 {
			b.waiting = b.waiting[:0:0] // let the drained array go
		}
		b.mu.Unlock()
		b.applyHeld(batch)
	}
}

// applyHeld applies batch while holding a lane. If the batch panics (on a
// caller's goroutine, which may recover), its unanswered calls get an error
// and the lane goes on in a new goroutine before the panic goes up.
func (b *Batcher[Req, Res]) applyHeld(batch []*call[Req, Res]) {
	defer func() {
		if p := recover(); p != nil {
			err := fmt.Errorf("group commit: batch panicked: %v", p)
			for _, c := range batch {
				if !answered(c) {
					c.err = err
					close(c.done)
				}
			}
			go b.run(nil)
			panic(p)
		}
	}()
	b.apply(batch)
}

func answered[Req, Res any](c *call[Req, Res]) bool {
	select {
	case <-c.done:
		return true
	default:
		return false
	}
}

// apply runs one batch. A call whose caller has gone before it started is
// left out (never applied: its outcome is unknown to the caller, as for a
// request lost on the way).
func (b *Batcher[Req, Res]) apply(batch []*call[Req, Res]) {
	live := batch[:0]
	for _, c := range batch {
		if c.ctx.Err() != nil {
			close(c.done)
			continue
		}
		live = append(live, c)
	}
	if len(live) == 0 {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), b.cfg.Timeout)
	defer cancel()
	reqs := make([]Req, len(live))
	for i, c := range live {
		reqs[i] = c.req
	}
	results, err := b.cfg.Batch(ctx, reqs)
	if err == nil && len(results) != len(live) {
		err = errors.New("batch answered a different number of requests")
	}
	if err == nil {
		b.cfg.Observe(len(live))
		for i, c := range live {
			c.res = &results[i]
			close(c.done)
		}
		return
	}
	b.cfg.Fallback(len(live), err)
	for _, c := range live {
		if b.cfg.Single == nil {
			c.err = err
		} else {
			c.res = b.single(c.req)
		}
		close(c.done)
	}
}

func (b *Batcher[Req, Res]) single(req Req) *Res {
	ctx, cancel := context.WithTimeout(context.Background(), b.cfg.Timeout)
	defer cancel()
	res := b.cfg.Single(ctx, req)
	return &res
}
