package compensation

import (
	"context"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/stockfence/stockfence/shared/contract"
	"github.com/stockfence/stockfence/shared/metrics"
)

// handlerMetrics counts what Handle did with each compensation.
type handlerMetrics struct {
	handled      *prometheus.CounterVec
	deadLettered prometheus.Counter
}

// newHandlerMetrics makes the handler's counters and registers them with reg
// (if not nil).
func newHandlerMetrics(reg prometheus.Registerer) *handlerMetrics {
	m := &handlerMetrics{
		handled: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: metrics.Namespace,
			Name:      "compensations_total",
			Help: "Compensations handled, by the attempt's status afterwards: compensated (stock given back now or before), " +
				"aborted (fenced now or before), rejected (nothing to give back). A redelivered message counts again.",
		}, []string{"result"}),
		deadLettered: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: metrics.Namespace,
			Name:      "compensations_dead_lettered_total",
			Help:      "Compensations that kept failing and were published to the dead-letter topic.",
		}),
	}
	for _, s := range []contract.AttemptStatus{contract.StatusCompensated, contract.StatusAborted, contract.StatusRejected} {
		m.handled.WithLabelValues(strings.ToLower(string(s)))
	}
	if reg != nil {
		m.handled = metrics.Register(reg, m.handled)
		m.deadLettered = metrics.Register(reg, m.deadLettered)
	}
	return m
}

// Dead-letter gauge: Pending opens a Kafka client and asks the broker, so a
// scrape asks at most every pendingEvery and waits at most pendingTimeout.
const (
	pendingEvery   = 30 * time.Second
	pendingTimeout = 2 * time.Second
)

// pendingCollector exports Replayer.Pending as
// stockfence_compensations_dlq_pending_messages. A count that could not be
// had leaves the gauge out of the scrape rather than show a stale number.
type pendingCollector struct {
	r    *Replayer
	desc *prometheus.Desc

	mu      sync.Mutex
	asked   time.Time
	pending float64
	known   bool
}

func newPendingCollector(r *Replayer) *pendingCollector {
	return &pendingCollector{r: r, desc: prometheus.NewDesc(
		prometheus.BuildFQName(metrics.Namespace, "compensations", "dlq_pending_messages"),
		"Dead-lettered compensations not replayed yet, counted at most every 30 s.", nil, nil)}
}

func (c *pendingCollector) Describe(ch chan<- *prometheus.Desc) { ch <- c.desc }

func (c *pendingCollector) Collect(ch chan<- prometheus.Metric) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if now := time.Now(); now.Sub(c.asked) >= pendingEvery {
		c.asked = now
		ctx, cancel := context.WithTimeout(context.Background(), pendingTimeout)
		n, err := c.r.Pending(ctx)
		cancel()
		c.pending, c.known = float64(n), err == nil
	}
	if c.known {
		ch <- prometheus.MustNewConstMetric(c.desc, prometheus.GaugeValue, c.pending)
	}
}
