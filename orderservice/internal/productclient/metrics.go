package productclient

import (
	"errors"
	"net/http"
	"strings"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/sony/gobreaker/v2"

	"github.com/stockfence/stockfence/shared/contract"
	"github.com/stockfence/stockfence/shared/metrics"
)

// Outcomes of a reserve or resolve call that got no definite answer, as
// counted in stockfence_productclient_{reserve,resolve}_calls_total (a
// definite answer counts as the attempt's status in lowercase).
const (
	outcomeUnknown         = "unknown"          // ErrUnknownOutcome: timeout, transport error, 5xx
	outcomeBreakerOpen     = "breaker_open"     // ErrBreakerOpen: nothing sent
	outcomeRejectedRequest = "rejected_request" // ErrRejectedRequest: a 4xx to a resolve
	outcomeError           = "error"            // the request could not even be built
)

// clientMetrics counts the calls that go through the breaker.
type clientMetrics struct {
	reserves    *prometheus.CounterVec
	resolves    *prometheus.CounterVec
	transitions *prometheus.CounterVec
}

// newClientMetrics makes the client's metrics and, when reg is not nil,
// registers them with reg, with a gauge that reads the breaker's state at
// each scrape (gobreaker moves from open to half-open only when asked).
func newClientMetrics(reg prometheus.Registerer, breaker *gobreaker.CircuitBreaker[*http.Response]) *clientMetrics {
	calls := func(name, what string) *prometheus.CounterVec {
		return prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: metrics.Namespace,
			Subsystem: "productclient",
			Name:      name,
			Help: what + " calls to the product service, by outcome: the attempt's status (applied, rejected, aborted, " +
				"compensated) or unknown, breaker_open, rejected_request, error.",
		}, []string{"outcome"})
	}
	m := &clientMetrics{
		reserves: calls("reserve_calls_total", "Reserve"),
		resolves: calls("resolve_calls_total", "Resolve"),
		transitions: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: metrics.Namespace,
			Subsystem: "productclient",
			Name:      "breaker_transitions_total",
			Help:      "Changes of state of the circuit breaker in front of the product service, by the state entered.",
		}, []string{"to"}),
	}
	outcomes := []string{outcomeUnknown, outcomeBreakerOpen, outcomeRejectedRequest, outcomeError}
	for _, s := range []contract.AttemptStatus{contract.StatusApplied, contract.StatusRejected, contract.StatusAborted, contract.StatusCompensated} {
		outcomes = append(outcomes, strings.ToLower(string(s)))
	}
	for _, o := range outcomes {
		m.reserves.WithLabelValues(o)
		m.resolves.WithLabelValues(o)
	}
	for _, s := range []gobreaker.State{gobreaker.StateClosed, gobreaker.StateHalfOpen, gobreaker.StateOpen} {
		m.transitions.WithLabelValues(s.String())
	}
	if reg == nil {
		return m
	}
	m.reserves = metrics.Register(reg, m.reserves)
	m.resolves = metrics.Register(reg, m.resolves)
	m.transitions = metrics.Register(reg, m.transitions)
	metrics.Register(reg, prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Namespace: metrics.Namespace,
		Subsystem: "productclient",
		Name:      "breaker_state",
		Help:      "State of the circuit breaker in front of the product service: 0 closed, 1 half-open, 2 open.",
	}, func() float64 { return breakerStateValue(breaker.State()) }))
	return m
}

// breakerStateValue is the gauge's value of s.
func breakerStateValue(s gobreaker.State) float64 {
	switch s {
	case gobreaker.StateHalfOpen:
		return 1
	case gobreaker.StateOpen:
		return 2
	}
	return 0
}

// outcome is the label of a reserve or resolve call that ended with res and
// err.
func outcome(res contract.Reservation, err error) string {
	switch {
	case err == nil:
		return strings.ToLower(string(res.Status))
	case errors.Is(err, ErrBreakerOpen):
		return outcomeBreakerOpen
	case errors.Is(err, ErrRejectedRequest):
		return outcomeRejectedRequest
	case errors.Is(err, ErrUnknownOutcome):
		return outcomeUnknown
	}
	return outcomeError
}
