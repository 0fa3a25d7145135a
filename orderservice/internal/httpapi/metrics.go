package httpapi

import (
	"net/http"
	"strconv"

	chimw "github.com/go-chi/chi/v5/middleware"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/stockfence/stockfence/orderservice/internal/order"
	"github.com/stockfence/stockfence/shared/metrics"
)

// noOrder is the status label of a POST /orders answered with a problem
// (invalid, key reused, breaker open, internal error) instead of an order.
const noOrder = "NONE"

// apiMetrics counts what the order API answered beyond the HTTP metrics.
type apiMetrics struct {
	placed *prometheus.CounterVec
}

func newAPIMetrics(reg prometheus.Registerer) *apiMetrics {
	return &apiMetrics{
		placed: metrics.Register(reg, prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: metrics.Namespace,
			Name:      "orders_placed_total",
			Help: "POST /orders answers, by the order's status in the answer (NONE for a problem answer) and HTTP status code: " +
				"201 CONFIRMED, 409 FAILED, 202 PENDING, 503 NONE (breaker open), and 200/202/409 for replays of a key.",
		}, []string{"status", "code"})),
	}
}

// placeAnswer counts one POST /orders answer once it is written.
type placeAnswer struct {
	w      chimw.WrapResponseWriter
	status order.Status
}

// trackPlace wraps w so that the answer's status code can be counted by
// done; the handler records the order's status with answered.
func trackPlace(w http.ResponseWriter, r *http.Request) *placeAnswer {
	return &placeAnswer{w: chimw.NewWrapResponseWriter(w, r.ProtoMajor), status: noOrder}
}

func (a *placeAnswer) answered(s order.Status) { a.status = s }

func (m *apiMetrics) placeDone(a *placeAnswer) {
	code := a.w.Status()
	if code == 0 {
		code = http.StatusOK
	}
	m.placed.WithLabelValues(string(a.status), strconv.Itoa(code)).Inc()
}
