package chaos

import (
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/google/uuid"
)

// Load is a crowd of shoppers placing random multi-item orders on the hot
// products, and now and then cancelling one of theirs, through both order
// instances. Like a storefront, each shopper retries an order with its
// Idempotency-Key until it gets an answer that is not a server error.
type Load struct {
	env     *Env
	client  *http.Client
	stop    chan struct{}
	stopped sync.Once
	wg      sync.WaitGroup

	orders, cancels atomic.Int64
}

// StartLoad starts shoppers, each with its own random source drawn from rng.
func StartLoad(env *Env, rng *rand.Rand, shoppers int) *Load {
	l := &Load{
		env:    env,
		client: &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: 64}},
		stop:   make(chan struct{}),
	}
	for i := range shoppers {
		r := rand.New(rand.NewPCG(rng.Uint64(), rng.Uint64()))
		l.wg.Add(1)
		go func() {
			defer l.wg.Done()
			l.shop(fmt.Sprintf("shopper-%d", i), r)
		}()
	}
	return l
}

// Stop stops the shoppers and waits for them; it may be called again.
func (l *Load) Stop() {
	l.stopped.Do(func() { close(l.stop) })
	l.wg.Wait()
}

// Orders and Cancels count the requests that got an answer.
func (l *Load) Orders() int64  { return l.orders.Load() }
func (l *Load) Cancels() int64 { return l.cancels.Load() }

func (l *Load) stopping() bool {
	select {
	case <-l.stop:
		return true
	default:
		return false
	}
}

func (l *Load) shop(customer string, r *rand.Rand) {
	token := l.env.Stack.CustomerToken(customer, 24*time.Hour)
	var mine []string
	for !l.stopping() {
		if len(mine) > 0 && r.IntN(100) < 15 {
			id := mine[r.IntN(len(mine))]
			if l.send(r, http.MethodPost, "/orders/"+id+"/cancel", token, "", "") != "" {
				l.cancels.Add(1)
			}
			continue
		}
		if id := l.send(r, http.MethodPost, "/orders", token, uuid.NewString(), l.randomOrder(r)); id != "" {
			l.orders.Add(1)
			mine = append(mine, id)
		}
	}
}

// randomOrder is 1 to 3 distinct catalog products, 1 or 2 units each.
func (l *Load) randomOrder(r *rand.Rand) string {
	perm := r.Perm(len(l.env.Catalog))
	lines := make([]string, 1+r.IntN(min(3, len(perm))))
	for i := range lines {
		lines[i] = fmt.Sprintf(`{"productId":%d,"quantity":%d}`, l.env.Catalog[perm[i]].ID, 1+r.IntN(2))
	}
	return `{"items":[` + strings.Join(lines, ",") + `]}`
}

// send retries one request on a random order instance until it gets an
// answer below 500 (a 202 counts: the order exists and will settle), and
// returns the order id of the answer ("" when stopped first or when the
// answer holds no order).
func (l *Load) send(r *rand.Rand, method, path, token, key, body string) string {
	for !l.stopping() {
		base := l.env.Orders[r.IntN(len(l.env.Orders))].URL
		req, err := http.NewRequest(method, base+path, strings.NewReader(body))
		if err != nil {
			return ""
		}
		req.Header.Set("Authorization", "Bearer "+token)
		if key != "" {
			req.Header.Set("Idempotency-Key", key)
		}
		resp, err := l.client.Do(req)
		if err == nil {
			raw, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode < 500 {
				var o struct {
					OrderID string `json:"orderId"`
				}
				_ = json.Unmarshal(raw, &o)
				return o.OrderID
			}
		}
		select {
		case <-l.stop:
		case <-time.After(time.Duration(50+r.IntN(200)) * time.Millisecond):
		}
	}
	return ""
}
