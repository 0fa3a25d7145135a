package order

import (
	"slices"
	"time"
)

// Activity is recent traffic as the orders database records it, for the
// operators' dashboard: how many orders were created in a window and when,
// what waits now, and how long recent orders took to settle.
type Activity struct {
	// Window is the span the counts and the settle times cover.
	Window Window
	// Created counts the orders created in the window by their current
	// status; PerBucket counts them by the bucket they were created in
	// (len(PerBucket) == Window.Buckets).
	Created   map[Status]int
	PerBucket []int
	// Unsettled counts every unsettled order by status, whatever its age;
	// Stuck is how many of them are older than the stuck threshold.
	Unsettled map[Status]int
	Stuck     int
	// Settles are the newest orders of the window that settled by
	// themselves (CONFIRMED or FAILED), newest first, up to the limit the
	// reader was given: a bounded sample, not every order.
	Settles []Settle
}

// Settle is how long one order took from its creation to CONFIRMED or
// FAILED.
type Settle struct {
	CreatedAt time.Time
	Took      time.Duration
}

// Window is a span of time cut into Buckets buckets of Bucket each, from
// Start.
type Window struct {
	Start   time.Time
	Bucket  time.Duration
	Buckets int
}

// NewWindow returns the window of about span that ends with the bucket
// holding now: span is cut into buckets buckets (at least one, of at least a
// millisecond), aligned on multiples of the bucket width, so that windows
// taken a moment apart share their buckets.
func NewWindow(now time.Time, span time.Duration, buckets int) Window {
	buckets = max(buckets, 1)
	bucket := max(span/time.Duration(buckets), time.Millisecond)
	end := now.Truncate(bucket).Add(bucket)
	return Window{Start: end.Add(-time.Duration(buckets) * bucket), Bucket: bucket, Buckets: buckets}
}

// End is the end of the window's last bucket, exclusive.
func (w Window) End() time.Time {
	return w.Start.Add(time.Duration(w.Buckets) * w.Bucket)
}

// Index returns the bucket that holds t; ok is false outside the window.
func (w Window) Index(t time.Time) (int, bool) {
	if t.Before(w.Start) || !t.Before(w.End()) {
		return 0, false
	}
	return int(t.Sub(w.Start) / w.Bucket), true
}

// Percentiles summarises durations by nearest rank. Every field is zero
// when N is 0.
type Percentiles struct {
	N                       int
	P50, P90, P95, P99, Max time.Duration
}

// Summarise returns the percentiles of ds; ds is not changed.
func Summarise(ds []time.Duration) Percentiles {
	if len(ds) == 0 {
		return Percentiles{}
	}
	sorted := slices.Clone(ds)
	slices.Sort(sorted)
	rank := func(p int) time.Duration {
		// Nearest rank: the smallest value with at least p% of the values
		// at or below it.
		i := (p*len(sorted)+99)/100 - 1
		return sorted[min(max(i, 0), len(sorted)-1)]
	}
	return Percentiles{N: len(sorted), P50: rank(50), P90: rank(90), P95: rank(95), P99: rank(99), Max: sorted[len(sorted)-1]}
}
