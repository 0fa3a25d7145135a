package order_test

import (
	"testing"
	"time"

	"github.com/stockfence/stockfence/orderservice/internal/order"
)

func TestNewWindow(t *testing.T) {
	t.Parallel()
	now := time.Date(2025, 3, 1, 12, 0, 7, 500, time.UTC)
	w := order.NewWindow(now, 5*time.Minute, 60)
	if w.Bucket != 5*time.Second || w.Buckets != 60 {
		t.Fatalf("window = %+v, want 60 buckets of 5s", w)
	}
	if want := time.Date(2025, 3, 1, 12, 0, 10, 0, time.UTC); !w.End().Equal(want) {
		t.Errorf("end = %v, want %v (the end of the bucket holding now)", w.End(), want)
	}
	if got := w.End().Sub(w.Start); got != 5*time.Minute {
		t.Errorf("span = %v, want 5m", got)
	}
	tests := []struct {
		at   time.Time
		want int
		ok   bool
	}{
		{w.Start, 0, true},
		{w.Start.Add(-time.Nanosecond), 0, false},
		{now, 59, true},
		{w.End(), 0, false},
		{w.Start.Add(12 * time.Second), 2, true},
	}
	for _, tt := range tests {
		got, ok := w.Index(tt.at)
		if got != tt.want || ok != tt.ok {
			t.Errorf("Index(%v) = %d, %v; want %d, %v", tt.at, got, ok, tt.want, tt.ok)
		}
	}
	if one := order.NewWindow(now, time.Nanosecond, 0); one.Buckets != 1 || one.Bucket != time.Millisecond {
		t.Errorf("degenerate window = %+v, want one bucket of 1ms", one)
	}
}

func TestSummarise(t *testing.T) {
	t.Parallel()
	if got := order.Summarise(nil); got != (order.Percentiles{}) {
		t.Errorf("Summarise(nil) = %+v, want zero", got)
	}
	var ds []time.Duration
	for i := 100; i >= 1; i-- {
		ds = append(ds, time.Duration(i)*time.Millisecond)
	}
	got := order.Summarise(ds)
	want := order.Percentiles{N: 100, P50: 50 * time.Millisecond, P90: 90 * time.Millisecond,
		P95: 95 * time.Millisecond, P99: 99 * time.Millisecond, Max: 100 * time.Millisecond}
	if got != want {
		t.Errorf("Summarise(1..100 ms) = %+v, want %+v", got, want)
	}
	if ds[0] != 100*time.Millisecond {
		t.Error("Summarise sorted its argument")
	}
	if one := order.Summarise([]time.Duration{time.Second}); one.P50 != time.Second || one.P99 != time.Second || one.N != 1 {
		t.Errorf("Summarise(1s) = %+v", one)
	}
}
