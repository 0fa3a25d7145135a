package compensation_test

import (
	"testing"

	"github.com/google/uuid"

	"github.com/stockfence/stockfence/shared/contract"
	"github.com/stockfence/stockfence/shared/metrics/metricstest"
)

// TestMetrics: the product service's /metrics counts compensations by the
// attempt's status afterwards and dead letters, and shows what the
// dead-letter topic holds.
func TestMetrics(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	a := e.product("A", 10)
	req := e.reserve(contract.Item{ProductID: a.ID, Quantity: 5})
	neverSeen := contract.ReserveRequest{AttemptID: uuid.NewString(), OrderID: uuid.NewString()}
	e.publish(req.AttemptID, "not json")
	e.publish(req.AttemptID, compensationJSON(t, req.AttemptID, req.OrderID))
	e.publish(neverSeen.AttemptID, compensationJSON(t, neverSeen.AttemptID, neverSeen.OrderID))

	results := e.reader(contract.TopicCompensationResults)
	dlq := e.reader(contract.TopicCompensationsDLQ)
	e.consume(e.handler.Handle)
	results.waitFor(2)
	dlq.waitFor(1)

	s := metricstest.Scrape(t, e.url+"/metrics")
	for result, want := range map[string]float64{"compensated": 1, "aborted": 1, "rejected": 0} {
		labels := map[string]string{"result": result}
		if got, found := s.Value("stockfence_compensations_total", labels); got != want || !found {
			t.Errorf("compensations_total%v = %v (found %v), want %v", labels, got, found, want)
		}
	}
	if got, _ := s.Value("stockfence_compensations_dead_lettered_total", nil); got != 1 {
		t.Errorf("compensations_dead_lettered_total = %v, want 1", got)
	}
	if got, found := s.Value("stockfence_compensations_dlq_pending_messages", nil); got != 1 || !found {
		t.Errorf("compensations_dlq_pending_messages = %v (found %v), want 1", got, found)
	}
}
