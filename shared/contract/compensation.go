package contract

import "time"

// Topics of the contract.
const (
	// TopicCompensations carries Compensation messages from the order
	// service to the product service, keyed by attempt id.
	TopicCompensations = "stock-compensations"
	// TopicCompensationResults carries CompensationResult messages back,
	// keyed by attempt id.
	TopicCompensationResults = "stock-compensation-results"
	// TopicCompensationsDLQ holds compensations the product service could not
	// apply after its retries: the original value, with HeaderError and
	// HeaderAttempts.
	TopicCompensationsDLQ = "stock-compensations-dlq"
)

// Topics lists every topic of the contract, for creating them at start.
var Topics = []string{TopicCompensations, TopicCompensationResults, TopicCompensationsDLQ}

// Headers of a dead-lettered compensation.
const (
	// HeaderError is why the last try failed.
	HeaderError = "error"
	// HeaderAttempts is how many times it was tried, in decimal.
	HeaderAttempts = "attempts"
	// HeaderOriginalOffset is where it was on its topic:
	// "<partition>/<offset>".
	HeaderOriginalOffset = "original-offset"
)

// Compensation asks the product service to give back whatever attempt
// AttemptID of order OrderID took. MessageID is unique per message (an
// outbox row); applying the same compensation twice has no further effect.
type Compensation struct {
	MessageID string    `json:"messageId"`
	AttemptID string    `json:"attemptId"`
	OrderID   string    `json:"orderId"`
	Reason    string    `json:"reason"`
	CreatedAt time.Time `json:"createdAt"`
}

// CompensationResult reports the status of an attempt after a compensation
// was handled: COMPENSATED (given back now or before), ABORTED (it never took
// anything, and now never will), or REJECTED.
type CompensationResult struct {
	AttemptID string        `json:"attemptId"`
	OrderID   string        `json:"orderId"`
	Status    AttemptStatus `json:"status"`
}
