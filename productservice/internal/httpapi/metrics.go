package httpapi

import (
	"errors"
	"strings"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/stockfence/stockfence/productservice/internal/stock"
	"github.com/stockfence/stockfence/shared/contract"
	"github.com/stockfence/stockfence/shared/metrics"
)

// Outcomes of POST /reservations and POST /reservations/{id}/resolve as
// counted in stockfence_reservations_total and stockfence_resolves_total,
// besides the lowercase attempt statuses (applied, rejected, aborted,
// compensated). Each request of a POST /reservations/batch is counted as
// POST /reservations counts it; a batch refused as a whole is one invalid.
const (
	// outcomeReplayed is a reservation recorded before, answered again
	// from the log (APPLIED or REJECTED).
	outcomeReplayed = "replayed"
	// outcomeFenced is a resolve that found the attempt never seen and
	// recorded it ABORTED.
	outcomeFenced   = "fenced"
	outcomeMismatch = "mismatch" // 422 attempt_mismatch
	outcomeInvalid  = "invalid"  // a body or id refused before the store
	outcomeError    = "error"    // a 5xx
)

// apiMetrics counts what the reservation endpoints answered.
type apiMetrics struct {
	reservations *prometheus.CounterVec
	resolves     *prometheus.CounterVec
}

func newAPIMetrics(reg prometheus.Registerer) *apiMetrics {
	m := &apiMetrics{
		reservations: metrics.Register(reg, prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: metrics.Namespace,
			Name:      "reservations_total",
			Help: "Reservation requests answered, by outcome (applied, rejected, replayed, aborted: fenced before it arrived, " +
				"compensated, mismatch, invalid, error) and, for a new rejection, its reason. Each request of a batch counts as one; " +
				"a batch refused as a whole counts as one invalid.",
		}, []string{"outcome", "reason"})),
		resolves: metrics.Register(reg, prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: metrics.Namespace,
			Name:      "resolves_total",
			Help: "Resolve requests answered, by outcome: the attempt's status (applied, rejected, aborted, compensated), " +
				"fenced (never seen, recorded ABORTED now), mismatch, invalid, error.",
		}, []string{"outcome"})),
	}
	// Every series exists from the start, so rates need no first event.
	for _, o := range []string{statusOutcome(contract.StatusApplied), outcomeReplayed, statusOutcome(contract.StatusAborted),
		statusOutcome(contract.StatusCompensated), outcomeMismatch, outcomeInvalid, outcomeError} {
		m.reservations.WithLabelValues(o, "")
	}
	for _, reason := range []string{contract.ReasonInsufficientStock, contract.ReasonUnknownProduct} {
		m.reservations.WithLabelValues(statusOutcome(contract.StatusRejected), reason)
	}
	for _, o := range []string{statusOutcome(contract.StatusApplied), statusOutcome(contract.StatusRejected),
		statusOutcome(contract.StatusAborted), statusOutcome(contract.StatusCompensated), outcomeFenced,
		outcomeMismatch, outcomeInvalid, outcomeError} {
		m.resolves.WithLabelValues(o)
	}
	return m
}

// reserved counts the answer to a reservation the store recorded or found.
// An ABORTED or COMPENSATED attempt is always one recorded before (fenced or
// given back); replayed is any other attempt answered from the log.
func (m *apiMetrics) reserved(res contract.Reservation, replayed bool) {
	switch {
	case res.Status == contract.StatusAborted, res.Status == contract.StatusCompensated:
		m.reservations.WithLabelValues(statusOutcome(res.Status), "").Inc()
	case replayed:
		m.reservations.WithLabelValues(outcomeReplayed, "").Inc()
	default:
		m.reservations.WithLabelValues(statusOutcome(res.Status), res.Reason).Inc()
	}
}

// resolved counts the answer to a resolve.
func (m *apiMetrics) resolved(res contract.Reservation, fenced bool) {
	if fenced {
		m.resolves.WithLabelValues(outcomeFenced).Inc()
		return
	}
	m.resolves.WithLabelValues(statusOutcome(res.Status)).Inc()
}

func statusOutcome(s contract.AttemptStatus) string { return strings.ToLower(string(s)) }

// failureOutcome is the outcome of a request the store failed with err.
func failureOutcome(err error) string {
	if errors.Is(err, stock.ErrAttemptMismatch) {
		return outcomeMismatch
	}
	return outcomeError
}
