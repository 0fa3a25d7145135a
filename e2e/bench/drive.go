package bench

import (
	"context"
	"fmt"
	"io"
	"sync"
	"sync/atomic"
	"time"
)

// maxErrors is how many failed steps a drive tolerates before it stops: a
// service that died would otherwise make every shopper wait out its retries.
const maxErrors = 100

// drive is a closed-loop load: workers goroutines call step one after
// another until total units are done or, with total 0, until duration has
// passed. Every step's duration goes into the latency histogram.
type drive struct {
	// label names the drive in the progress lines, e.g. "1 hot e2e, off".
	label string
	// unit is what a step's units are, for the progress lines.
	unit     string
	workers  int
	total    int64
	duration time.Duration
	progress io.Writer
}

// step does the work numbered seq (0, 1, 2, ... across all workers) as
// worker (0 to workers-1) and returns how many units it did. An error
// counts against maxErrors; the step's duration is recorded either way.
type step func(ctx context.Context, worker int, seq int64) (units int64, err error)

// driven is what a drive measured.
type driven struct {
	// units were done in elapsed, from the release of the workers to the
	// end of the last step.
	units   int64
	elapsed time.Duration
	latency *Latencies
	// errors is how many steps failed; firstErr is the first of them.
	errors   int64
	firstErr error
	// aborted is set when the drive stopped at maxErrors.
	aborted bool
}

// run drives the load. It returns ctx's error if ctx ended; otherwise the
// errors of the steps are in the result.
func (d drive) run(ctx context.Context, fn step) (driven, error) {
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	var (
		next, done, errs atomic.Int64
		errOnce          sync.Once
		firstErr         error
		wg               sync.WaitGroup
		deadline         time.Time
		lat              = NewLatencies()
		start            = make(chan struct{})
	)
	for w := range d.workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			for ctx.Err() == nil {
				seq := next.Add(1) - 1
				if d.total > 0 && seq >= d.total {
					return
				}
				if d.total == 0 && time.Now().After(deadline) {
					return
				}
				began := time.Now()
				units, err := fn(ctx, w, seq)
				lat.Record(time.Since(began))
				done.Add(units)
				if err != nil && ctx.Err() == nil {
					errOnce.Do(func() { firstErr = err })
					if errs.Add(1) >= maxErrors {
						cancel(errAborted)
					}
				}
			}
		}()
	}

	began := time.Now()
	deadline = began.Add(d.duration)
	close(start)
	stopProgress := d.report(began, &done)
	wg.Wait()
	elapsed := time.Since(began)
	stopProgress()

	res := driven{units: done.Load(), elapsed: elapsed, latency: lat, errors: errs.Load(), firstErr: firstErr}
	if cause := context.Cause(ctx); cause == errAborted {
		res.aborted = true
		return res, nil
	}
	if err := ctx.Err(); err != nil {
		return res, err
	}
	return res, nil
}

// report prints a progress line every second until the returned function
// is called, which prints the last one.
func (d drive) report(began time.Time, done *atomic.Int64) (stop func()) {
	quit := make(chan struct{})
	finished := make(chan struct{})
	go func() {
		defer close(finished)
		tick := time.NewTicker(time.Second)
		defer tick.Stop()
		last, lastAt := int64(0), began
		for {
			select {
			case <-quit:
				fmt.Fprintln(d.progress, d.line(done.Load(), time.Since(began), -1))
				return
			case now := <-tick.C:
				n := done.Load()
				rate := float64(n-last) / now.Sub(lastAt).Seconds()
				fmt.Fprintln(d.progress, d.line(n, now.Sub(began), rate))
				last, lastAt = n, now
			}
		}
	}()
	return func() {
		close(quit)
		<-finished
	}
}

// line formats one progress line; a negative rate marks the final line.
func (d drive) line(done int64, elapsed time.Duration, rate float64) string {
	avg := 0.0
	if elapsed > 0 {
		avg = float64(done) / elapsed.Seconds()
	}
	of := fmt.Sprintf("%d/%d %s", done, d.total, d.unit)
	if d.total == 0 {
		of = fmt.Sprintf("%d %s, %.0f/%.0fs", done, d.unit, elapsed.Seconds(), d.duration.Seconds())
	}
	if rate < 0 {
		return fmt.Sprintf("bench: %-34s %s in %.1fs, %.0f/s: done", d.label, of, elapsed.Seconds(), avg)
	}
	return fmt.Sprintf("bench: %-34s %s, %.0f/s now, %.0f/s on average", d.label, of, rate, avg)
}
