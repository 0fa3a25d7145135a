package groupcommit_test

import (
	"context"
	"errors"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stockfence/stockfence/shared/groupcommit"
)

// recorder answers every request with its double, holding each batch until
// release is closed (when set), and records the batch sizes and how many
// requests went one at a time.
type recorder struct {
	mu       sync.Mutex
	batches  []int
	singles  int
	release  chan struct{}
	batchErr error
	short    bool // answer one request fewer than asked
}

func (r *recorder) batch(_ context.Context, reqs []int) ([]int, error) {
	if r.release != nil {
		<-r.release
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	r.batches = append(r.batches, len(reqs))
	if r.batchErr != nil {
		return nil, r.batchErr
	}
	out := make([]int, len(reqs))
	for i, n := range reqs {
		out[i] = 2 * n
	}
	if r.short {
		out = out[1:]
	}
	return out, nil
}

func (r *recorder) single(_ context.Context, n int) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.singles++
	return 2 * n
}

func (r *recorder) batcher(lanes, maxBatch int) *groupcommit.Batcher[int, int] {
	return groupcommit.New(groupcommit.Config[int, int]{Batch: r.batch, Single: r.single, Lanes: lanes, MaxBatch: maxBatch})
}

// doAll makes n calls at once and checks each caller got the answer to its
// own request.
func doAll(t *testing.T, b *groupcommit.Batcher[int, int], n int) {
	t.Helper()
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			got, err := b.Do(context.Background(), i)
			if err != nil {
				t.Error(err)
				return
			}
			if got != 2*i {
				t.Errorf("call %d answered %d, want %d", i, got, 2*i)
			}
		})
	}
	wg.Wait()
}

// TestCallsArrivingDuringABatchFormTheNext: while one batch is held, the
// calls that arrive queue up and go together in the next ones, no larger
// than MaxBatch; a lone call goes through on its own at once.
func TestCallsArrivingDuringABatchFormTheNext(t *testing.T) {
	t.Parallel()
	r := &recorder{release: make(chan struct{})}
	b := r.batcher(1, 50)
	defer b.Close()

	first := make(chan error)
	go func() {
		_, err := b.Do(context.Background(), -1)
		first <- err
	}()
	// The lone first call is being applied (held); 120 more arrive.
	time.Sleep(50 * time.Millisecond)
	done := make(chan struct{})
	go func() {
		doAll(t, b, 120)
		close(done)
	}()
	time.Sleep(100 * time.Millisecond)
	close(r.release)
	if err := <-first; err != nil {
		t.Fatal(err)
	}
	<-done
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.batches[0] != 1 {
		t.Fatalf("first batch = %d calls, want the lone one", r.batches[0])
	}
	total := 0
	for _, n := range r.batches[1:] {
		if n > 50 {
			t.Fatalf("batch of %d, above MaxBatch 50", n)
		}
		total += n
	}
	if total != 120 || len(r.batches) > 4 {
		t.Fatalf("batches %v: want the 120 waiting calls in at most 3 batches", r.batches)
	}
}

// TestFailedBatchFallsBackToOneAtATime: a batch that fails as a whole, or
// answers the wrong number of requests, is answered call by call, and the
// failure is reported.
func TestFailedBatchFallsBackToOneAtATime(t *testing.T) {
	t.Parallel()
	for name, r := range map[string]*recorder{
		"error":        {batchErr: errors.New("connection lost")},
		"short answer": {short: true},
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			var mu sync.Mutex
			fellBack := 0
			b := groupcommit.New(groupcommit.Config[int, int]{Batch: r.batch, Single: r.single, Lanes: 2, MaxBatch: 10,
				Fallback: func(size int, err error) {
					mu.Lock()
					defer mu.Unlock()
					if err == nil {
						t.Error("fallback reported without its error")
					}
					fellBack += size
				}})
			defer b.Close()
			doAll(t, b, 40)
			if r.singles != 40 || fellBack != 40 {
				t.Fatalf("%d calls answered one at a time, %d reported; want all 40", r.singles, fellBack)
			}
		})
	}
}

// TestGoneCallerIsLeftOut: a call whose caller gave up before its batch
// started is not applied.
func TestGoneCallerIsLeftOut(t *testing.T) {
	t.Parallel()
	r := &recorder{release: make(chan struct{})}
	b := r.batcher(1, 10)
	go b.Do(context.Background(), 0) // holds the lane
	time.Sleep(50 * time.Millisecond)
	ctx, cancel := context.WithCancel(context.Background())
	gone := make(chan error)
	go func() {
		_, err := b.Do(ctx, 1)
		gone <- err
	}()
	time.Sleep(50 * time.Millisecond)
	cancel()
	if err := <-gone; !errors.Is(err, context.Canceled) {
		t.Fatalf("err = %v, want context.Canceled", err)
	}
	close(r.release)
	b.Close()
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.batches) != 1 || r.singles != 0 {
		t.Fatalf("batches %v, singles %d: the gone call must not have been applied", r.batches, r.singles)
	}
}

// TestCloseFinishesQueuedCalls: Close waits for what is queued, and a call
// after Close is refused.
func TestCloseFinishesQueuedCalls(t *testing.T) {
	t.Parallel()
	r := &recorder{release: make(chan struct{})}
	b := r.batcher(1, 5)
	results := make(chan error, 20)
	for i := range 20 {
		go func() {
			_, err := b.Do(context.Background(), i)
			results <- err
		}()
	}
	time.Sleep(50 * time.Millisecond)
	closed := make(chan struct{})
	go func() {
		b.Close()
		close(closed)
	}()
	select {
	case <-closed:
		t.Fatal("Close returned while calls were queued")
	case <-time.After(50 * time.Millisecond):
	}
	close(r.release)
	<-closed
	for range 20 {
		if err := <-results; err != nil {
			t.Fatalf("queued call: %v", err)
		}
	}
	if _, err := b.Do(context.Background(), 1); !errors.Is(err, groupcommit.ErrClosed) {
		t.Fatalf("call after Close: err = %v, want ErrClosed", err)
	}
}

// TestFailedBatchWithoutSingleFailsItsCalls: without a one-at-a-time path,
// every call of a failed batch gets the batch's error and nothing is
// applied again.
func TestFailedBatchWithoutSingleFailsItsCalls(t *testing.T) {
	t.Parallel()
	lost := errors.New("answer lost")
	r := &recorder{batchErr: lost}
	b := groupcommit.New(groupcommit.Config[int, int]{Batch: r.batch, Lanes: 2, MaxBatch: 10})
	defer b.Close()
	var wg sync.WaitGroup
	for i := range 30 {
		wg.Go(func() {
			if _, err := b.Do(context.Background(), i); !errors.Is(err, lost) {
				t.Errorf("call %d: err = %v, want the batch's error", i, err)
			}
		})
	}
	wg.Wait()
	if r.singles != 0 {
		t.Fatalf("%d calls applied one at a time, want none", r.singles)
	}
}

// TestLoneCallRunsOnItsCaller: a call that finds a lane free is applied on
// its caller's goroutine (no switch between goroutines): the batch function's
// stack is the caller's.
func TestLoneCallRunsOnItsCaller(t *testing.T) {
	t.Parallel()
	var stack string
	b := groupcommit.New(groupcommit.Config[int, int]{
		Batch: func(_ context.Context, reqs []int) ([]int, error) {
			buf := make([]byte, 64<<10)
			stack = string(buf[:runtime.Stack(buf, false)])
			return make([]int, len(reqs)), nil
		},
		Lanes: 1, MaxBatch: 10,
	})
	defer b.Close()
	if _, err := b.Do(context.Background(), 1); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(stack, "TestLoneCallRunsOnItsCaller") {
		t.Fatalf("the batch ran on another goroutine:\n%s", stack)
	}
}

// TestPanickingBatchAnswersItsCallsAndFreesTheLane: a batch that panics on
// a caller's goroutine answers its calls with an error, the panic reaches
// that caller, and the calls after it are still applied.
func TestPanickingBatchAnswersItsCallsAndFreesTheLane(t *testing.T) {
	t.Parallel()
	release := make(chan struct{})
	b := groupcommit.New(groupcommit.Config[int, int]{
		Batch: func(_ context.Context, reqs []int) ([]int, error) {
			if reqs[0] == -1 {
				<-release
				panic("boom")
			}
			out := make([]int, len(reqs))
			for i, n := range reqs {
				out[i] = 2 * n
			}
			return out, nil
		},
		Lanes: 1, MaxBatch: 10,
	})
	panicked := make(chan any)
	go func() {
		defer func() { panicked <- recover() }()
		b.Do(context.Background(), -1)
	}()
	time.Sleep(50 * time.Millisecond) // -1 holds the only lane
	after := make(chan error)
	go func() {
		got, err := b.Do(context.Background(), 21)
		if err == nil && got != 42 {
			err = errors.New("wrong answer")
		}
		after <- err
	}()
	time.Sleep(50 * time.Millisecond)
	close(release)
	if p := <-panicked; p != "boom" {
		t.Fatalf("recovered %v, want the batch's panic", p)
	}
	if err := <-after; err != nil {
		t.Fatalf("call queued behind the panic: %v", err)
	}
	b.Close()
}
