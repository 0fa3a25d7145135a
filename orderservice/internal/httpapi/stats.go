package httpapi

import (
	"context"
	"fmt"
	"math"
	"net/http"
	"time"

	"github.com/stockfence/stockfence/orderservice/internal/order"
	"github.com/stockfence/stockfence/shared/httpio"
)

// ActivityReader reads the dashboard's figures from the orders database
// (internal/mysql.Store).
type ActivityReader interface {
	// Activity returns, for window w, the orders created in it by status
	// and by bucket, every unsettled order by status with how many were
	// created before stuckBefore, and the newest maxSettles orders of the
	// window that settled by themselves with their settle times.
	Activity(ctx context.Context, w order.Window, stuckBefore time.Time, maxSettles int) (order.Activity, error)
}

// Shape of GET /ops/stats: the window is cut into statsBuckets buckets;
// settle times come from at most statsSettles orders per settled status.
const (
	defaultStatsWindow = 5 * time.Minute
	minStatsWindow     = time.Minute
	maxStatsWindow     = time.Hour
	statsBuckets       = 60
	statsSettles       = 2000
)

// statsJSON is the body of GET /ops/stats.
type statsJSON struct {
	GeneratedAt       time.Time      `json:"generatedAt"`
	WindowStart       time.Time      `json:"windowStart"`
	WindowSeconds     float64        `json:"windowSeconds"`
	BucketSeconds     float64        `json:"bucketSeconds"`
	StuckAfterSeconds float64        `json:"stuckAfterSeconds"`
	Unsettled         unsettledJSON  `json:"unsettled"`
	Window            windowJSON     `json:"window"`
	Settle            percentileJSON `json:"settle"`
	Buckets           []bucketJSON   `json:"buckets"`
}

// unsettledJSON counts what waits now, whatever its age.
type unsettledJSON struct {
	Total    int                  `json:"total"`
	Stuck    int                  `json:"stuck"`
	ByStatus map[order.Status]int `json:"byStatus"`
}

// windowJSON counts the orders created in the window by current status.
type windowJSON struct {
	Total    int                  `json:"total"`
	ByStatus map[order.Status]int `json:"byStatus"`
}

// percentileJSON summarises settle times in milliseconds; each figure is
// null when samples is 0.
type percentileJSON struct {
	Samples int      `json:"samples"`
	P50Ms   *float64 `json:"p50Ms"`
	P90Ms   *float64 `json:"p90Ms"`
	P99Ms   *float64 `json:"p99Ms"`
	MaxMs   *float64 `json:"maxMs"`
}

// bucketJSON is one bucket of the window: orders created in it, their rate
// (over the part of the bucket that has passed, for the last one) and the
// settle times of the sampled orders created in it (null when none).
type bucketJSON struct {
	Start           time.Time `json:"start"`
	Orders          int       `json:"orders"`
	OrdersPerSecond float64   `json:"ordersPerSecond"`
	Settled         int       `json:"settled"`
	SettleP50Ms     *float64  `json:"settleP50Ms"`
	SettleP95Ms     *float64  `json:"settleP95Ms"`
}

// stats serves GET /ops/stats?window=<duration>: counts per status, orders
// per second over the window (1m to 1h, default 5m) in 60 buckets, and
// time-to-settle percentiles of the newest orders that settled in it.
func (h *handler) stats(w http.ResponseWriter, r *http.Request) {
	span := defaultStatsWindow
	if s := r.URL.Query().Get("window"); s != "" {
		d, err := time.ParseDuration(s)
		if err != nil || d < minStatsWindow || d > maxStatsWindow {
			h.fail(w, r, order.Invalid("window", fmt.Sprintf("must be a duration between %s and %s, e.g. 5m", minStatsWindow, maxStatsWindow)))
			return
		}
		span = d
	}
	now := time.Now().UTC()
	win := order.NewWindow(now, span, statsBuckets)
	a, err := h.activity.Activity(r.Context(), win, now.Add(-h.stuckAfter), statsSettles)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	httpio.JSON(w, http.StatusOK, toStatsJSON(a, now, h.stuckAfter))
}

func toStatsJSON(a order.Activity, now time.Time, stuckAfter time.Duration) statsJSON {
	win := a.Window
	out := statsJSON{
		GeneratedAt:       now,
		WindowStart:       win.Start,
		WindowSeconds:     win.End().Sub(win.Start).Seconds(),
		BucketSeconds:     win.Bucket.Seconds(),
		StuckAfterSeconds: stuckAfter.Seconds(),
		Unsettled:         unsettledJSON{Stuck: a.Stuck, ByStatus: a.Unsettled},
		Window:            windowJSON{ByStatus: a.Created},
		Buckets:           make([]bucketJSON, win.Buckets),
	}
	for _, n := range a.Unsettled {
		out.Unsettled.Total += n
	}
	for _, n := range a.Created {
		out.Window.Total += n
	}
	all := make([]time.Duration, 0, len(a.Settles))
	perBucket := make([][]time.Duration, win.Buckets)
	for _, s := range a.Settles {
		all = append(all, s.Took)
		if i, ok := win.Index(s.CreatedAt); ok {
			perBucket[i] = append(perBucket[i], s.Took)
		}
	}
	p := order.Summarise(all)
	out.Settle = percentileJSON{Samples: p.N}
	if p.N > 0 {
		out.Settle.P50Ms, out.Settle.P90Ms, out.Settle.P99Ms, out.Settle.MaxMs = ms(p.P50), ms(p.P90), ms(p.P99), ms(p.Max)
	}
	for i := range out.Buckets {
		start := win.Start.Add(time.Duration(i) * win.Bucket)
		b := bucketJSON{Start: start, Settled: len(perBucket[i])}
		if i < len(a.PerBucket) {
			b.Orders = a.PerBucket[i]
		}
		// The last bucket is still filling: its rate is over the time passed.
		if elapsed := min(now.Sub(start), win.Bucket); elapsed > 0 {
			b.OrdersPerSecond = math.Round(float64(b.Orders)/elapsed.Seconds()*100) / 100
		}
		if bp := order.Summarise(perBucket[i]); bp.N > 0 {
			b.SettleP50Ms, b.SettleP95Ms = ms(bp.P50), ms(bp.P95)
		}
		out.Buckets[i] = b
	}
	return out
}

// ms is d in milliseconds, to a tenth.
func ms(d time.Duration) *float64 {
	v := math.Round(float64(d)/float64(time.Millisecond)*10) / 10
	return &v
}
