// Package backlog exports, as Prometheus metrics read from the orders
// database at each scrape, the work that waits: unsettled orders by status
// and the age of the oldest (what the recovery worker still has to drive),
// and the outbox messages not published yet and the age of the oldest (what
// the relay still has to send).
package backlog

import (
	"context"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/stockfence/stockfence/orderservice/internal/order"
	"github.com/stockfence/stockfence/shared/metrics"
)

// Store counts the backlog (internal/mysql.Store).
type Store interface {
	Backlog(ctx context.Context) (order.Backlog, error)
}

// scrapeTimeout bounds the queries of one scrape.
const scrapeTimeout = 2 * time.Second

// Collector is a prometheus.Collector of the orders database's backlog:
//
//   - stockfence_orders_unsettled{status}: unsettled orders, per status
//     (PENDING, COMPENSATING, CANCELLING);
//   - stockfence_orders_oldest_unsettled_age_seconds: how long ago the oldest
//     unsettled order was created, 0 when there is none;
//   - stockfence_outbox_unsent_messages: outbox messages not published yet;
//   - stockfence_outbox_oldest_unsent_age_seconds: how long ago the oldest of
//     them was written, 0 when there is none.
//
// A scrape during which the database does not answer reports the error (the
// metrics handler logs it and serves the other metrics) and none of these.
type Collector struct {
	store Store
	now   func() time.Time

	unsettled, oldestUnsettled, unsent, oldestUnsent *prometheus.Desc
}

// New returns the collector of store's backlog; register it with the
// process's registry. now is the clock ages are measured with (nil: the
// system clock).
func New(store Store, now func() time.Time) *Collector {
	if now == nil {
		now = time.Now
	}
	desc := func(subsystem, name, help string, labels ...string) *prometheus.Desc {
		return prometheus.NewDesc(prometheus.BuildFQName(metrics.Namespace, subsystem, name), help, labels, nil)
	}
	return &Collector{
		store: store,
		now:   now,
		unsettled: desc("orders", "unsettled", "Orders not settled yet (PENDING, COMPENSATING, CANCELLING), by status.",
			"status"),
		oldestUnsettled: desc("orders", "oldest_unsettled_age_seconds",
			"Age of the oldest unsettled order, 0 when every order is settled."),
		unsent: desc("outbox", "unsent_messages", "Outbox messages (compensations) not published to Kafka yet."),
		oldestUnsent: desc("outbox", "oldest_unsent_age_seconds",
			"Age of the oldest outbox message not published yet, 0 when there is none."),
	}
}

// Describe implements prometheus.Collector.
func (c *Collector) Describe(ch chan<- *prometheus.Desc) {
	ch <- c.unsettled
	ch <- c.oldestUnsettled
	ch <- c.unsent
	ch <- c.oldestUnsent
}

// Collect implements prometheus.Collector: it asks the database, within
// scrapeTimeout.
func (c *Collector) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), scrapeTimeout)
	defer cancel()
	b, err := c.store.Backlog(ctx)
	if err != nil {
		ch <- prometheus.NewInvalidMetric(c.unsettled, err)
		return
	}
	now := c.now()
	for _, s := range []order.Status{order.StatusPending, order.StatusCompensating, order.StatusCancelling} {
		ch <- prometheus.MustNewConstMetric(c.unsettled, prometheus.GaugeValue, float64(b.Unsettled[s]), string(s))
	}
	ch <- prometheus.MustNewConstMetric(c.oldestUnsettled, prometheus.GaugeValue, age(now, b.OldestUnsettled))
	ch <- prometheus.MustNewConstMetric(c.unsent, prometheus.GaugeValue, float64(b.Unsent))
	ch <- prometheus.MustNewConstMetric(c.oldestUnsent, prometheus.GaugeValue, age(now, b.OldestUnsent))
}

// age is how long before now t was, 0 for the zero time (nothing waits) and
// for a t ahead of this clock.
func age(now, t time.Time) float64 {
	if t.IsZero() {
		return 0
	}
	return max(now.Sub(t).Seconds(), 0)
}
