package kafkaclient

import (
	"errors"
	"strings"
	"testing"
	"time"
)

// TestWatchdog follows the stall policy through sequences of looks at a
// group's backlog, one every 5 s, with StallAfter 20 s.
func TestWatchdog(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	lag := func(partition int32, committed, end int64) partitionLag {
		return partitionLag{Topic: "t", Partition: partition, Committed: committed, End: end, Lag: end - max(committed, 0)}
	}
	type look struct {
		backlog []partitionLag
		err     error
	}
	down := look{err: errors.New("timed out")}
	repeat := func(l look, n int) []look {
		out := make([]look, n)
		for i := range out {
			out[i] = l
		}
		return out
	}
	tests := []struct {
		name  string
		looks []look
		want  string // substring of the reason at the last look; "" = not stalled at any look
	}{
		{"nothing waits", repeat(look{backlog: []partitionLag{lag(0, 10, 10), lag(1, -1, 0)}}, 10), ""},
		{"waiting but moving", []look{
			{backlog: []partitionLag{lag(0, 1, 9)}}, {backlog: []partitionLag{lag(0, 2, 9)}}, {backlog: []partitionLag{lag(0, 3, 9)}},
			{backlog: []partitionLag{lag(0, 4, 9)}}, {backlog: []partitionLag{lag(0, 5, 9)}}, {backlog: []partitionLag{lag(0, 6, 9)}},
		}, ""},
		{"stuck partition", repeat(look{backlog: []partitionLag{lag(0, 10, 10), lag(1, 4, 7)}}, 5), "t/1: 3 messages wait and the committed offset 4 has not moved for 20s"},
		{"stuck without any commit", repeat(look{backlog: []partitionLag{lag(2, -1, 2)}}, 5), "t/2: 2 messages wait"},
		{"stuck only 15 s", repeat(look{backlog: []partitionLag{lag(0, 4, 7)}}, 4), ""},
		{"caught up in between", []look{
			{backlog: []partitionLag{lag(0, 4, 7)}}, {backlog: []partitionLag{lag(0, 4, 7)}}, {backlog: []partitionLag{lag(0, 4, 7)}},
			{backlog: []partitionLag{lag(0, 7, 7)}}, // caught up: the clock restarts
			{backlog: []partitionLag{lag(0, 7, 9)}}, {backlog: []partitionLag{lag(0, 7, 9)}}, {backlog: []partitionLag{lag(0, 7, 9)}},
		}, ""},
		{"broker silent 15 s", repeat(down, 3), ""},
		{"broker silent 20 s", repeat(down, 4), "no answer from the broker for 20s"},
		{"broker back in time", append(append(repeat(down, 3), look{backlog: []partitionLag{lag(0, 1, 1)}}), repeat(down, 3)...), ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w := newWatchdog(20*time.Second, t0)
			var reason string
			for i, l := range tt.looks {
				reason = w.observe(t0.Add(time.Duration(i+1)*5*time.Second), l.backlog, l.err)
				if reason != "" && i < len(tt.looks)-1 {
					t.Fatalf("stalled at look %d of %d: %s", i+1, len(tt.looks), reason)
				}
			}
			if tt.want == "" && reason != "" || tt.want != "" && !strings.Contains(reason, tt.want) {
				t.Fatalf("reason = %q, want %q", reason, tt.want)
			}
		})
	}
}
