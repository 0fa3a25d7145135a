package bench

import (
	"sync"
	"time"

	"github.com/HdrHistogram/hdrhistogram-go"
)

// Latency bounds of the histograms: 1 µs to 1 h, with three significant
// digits (a recorded value is off by at most 0.1 %).
const (
	lowestMicros  = 1
	highestMicros = int64(time.Hour / time.Microsecond)
	sigFigures    = 3
)

// Latencies records durations in microseconds in an HdrHistogram. It is safe
// for concurrent use; one Record costs a few tens of nanoseconds under a
// mutex, nothing next to the HTTP round trip it measures.
type Latencies struct {
	mu sync.Mutex
	h  *hdrhistogram.Histogram
}

// NewLatencies returns an empty recorder.
func NewLatencies() *Latencies {
	return &Latencies{h: hdrhistogram.New(lowestMicros, highestMicros, sigFigures)}
}

// Record adds one duration. Durations below 1 µs count as 1 µs and above an
// hour as an hour, so nothing is ever dropped.
func (l *Latencies) Record(d time.Duration) {
	us := min(max(d.Microseconds(), lowestMicros), highestMicros)
	l.mu.Lock()
	// Cannot fail: us is within the histogram's range.
	_ = l.h.RecordValue(us)
	l.mu.Unlock()
}

// Summary returns the count and the percentiles recorded so far.
func (l *Latencies) Summary() LatencySummary {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.h.TotalCount() == 0 {
		return LatencySummary{}
	}
	us := func(v int64) time.Duration { return time.Duration(v) * time.Microsecond }
	return LatencySummary{
		Count: l.h.TotalCount(),
		P50:   us(l.h.ValueAtQuantile(50)),
		P90:   us(l.h.ValueAtQuantile(90)),
		P99:   us(l.h.ValueAtQuantile(99)),
		Max:   us(l.h.Max()),
	}
}

// LatencySummary is what the report shows of a histogram. Values are the
// histogram's (highest equivalent values, within 0.1 %).
type LatencySummary struct {
	Count              int64
	P50, P90, P99, Max time.Duration
}
