package order

import "time"

// Backlog is the work the orders database holds that is not finished: the
// orders not settled yet, and the outbox messages not published yet.
type Backlog struct {
	// Unsettled counts the unsettled orders (PENDING, COMPENSATING,
	// CANCELLING) by status; OldestUnsettled is when the oldest of them was
	// created, zero when there is none.
	Unsettled       map[Status]int64
	OldestUnsettled time.Time
	// Unsent counts the outbox messages not published yet; OldestUnsent is
	// when the oldest of them was written, zero when there is none.
	Unsent       int64
	OldestUnsent time.Time
}
