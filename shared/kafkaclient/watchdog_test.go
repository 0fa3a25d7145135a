package kafkaclient

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/confluentinc/confluent-kafka-go/v2/kafka"
)

// TestWatchdog follows the stall policy through sequences of looks at a
// group, one every 5 s, with StallAfter 20 s.
func TestWatchdog(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	lag := func(partition int32, committed, end int64) PartitionLag {
		return PartitionLag{Topic: "t", Partition: partition, Committed: committed, End: end, Lag: end - max(committed, 0)}
	}
	stable := func(backlog ...PartitionLag) look {
		return look{state: kafka.ConsumerGroupStateStable, backlog: backlog}
	}
	rebalancing := func(backlog ...PartitionLag) look {
		return look{state: kafka.ConsumerGroupStatePreparingRebalance, backlog: backlog}
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
		{"nothing waits", repeat(stable(lag(0, 10, 10), lag(1, -1, 0)), 10), ""},
		{"waiting but moving", []look{
			stable(lag(0, 1, 9)), stable(lag(0, 2, 9)), stable(lag(0, 3, 9)), stable(lag(0, 4, 9)), stable(lag(0, 5, 9)), stable(lag(0, 6, 9)),
		}, ""},
		{"stuck partition", repeat(stable(lag(0, 10, 10), lag(1, 4, 7)), 5), "t/1: 3 messages wait and the committed offset 4 has not moved for 20s"},
		{"stuck without any commit", repeat(stable(lag(2, -1, 2)), 5), "t/2: 2 messages wait"},
		{"stuck only 15 s", repeat(stable(lag(0, 4, 7)), 4), ""},
		{"caught up in between", []look{
			stable(lag(0, 4, 7)), stable(lag(0, 4, 7)), stable(lag(0, 4, 7)),
			stable(lag(0, 7, 7)), // caught up: the clock restarts
			stable(lag(0, 7, 9)), stable(lag(0, 7, 9)), stable(lag(0, 7, 9)),
		}, ""},
		{"rebalancing for long", repeat(rebalancing(lag(0, 4, 7)), 12), ""},
		{"stable again after a rebalance", append(append(repeat(stable(lag(0, 4, 7)), 3), rebalancing(lag(0, 4, 7))), repeat(stable(lag(0, 4, 7)), 4)...), ""},
		{"stuck once stable long enough", append(repeat(rebalancing(lag(0, 4, 7)), 6), repeat(stable(lag(0, 4, 7)), 5)...), "has not moved for 20s"},
		{"broker silent", repeat(down, 12), ""},
		{"silence does not reset the clock", append(append(repeat(stable(lag(0, 4, 7)), 2), down, down), stable(lag(0, 4, 7))), "has not moved for 20s"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w := newWatchdog(20 * time.Second)
			var reason string
			for i, l := range tt.looks {
				reason = w.observe(t0.Add(time.Duration(i+1)*5*time.Second), l)
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
