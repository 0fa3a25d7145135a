package bench

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/google/uuid"

	"github.com/stockfence/stockfence/shared/contract"
)

// Order statuses the harness tells apart.
const (
	statusConfirmed = "CONFIRMED"
	statusFailed    = "FAILED"
	statusPending   = "PENDING"
	statusCancelled = "CANCELLED"
)

const (
	// settleTimeout bounds how long one shopper works on one order or
	// reservation: retries, Retry-After waits and polling included.
	settleTimeout = 2 * time.Minute
	// retryPause is the pause before resending after a transport error or
	// a 5xx without Retry-After.
	retryPause = 50 * time.Millisecond
	// Polling a PENDING order starts at pollFirst and grows by half up to
	// pollMax.
	pollFirst = 50 * time.Millisecond
	pollMax   = time.Second
	// maxBody bounds what is read of an answer.
	maxBody = 1 << 20
)

// tally counts what the shoppers of one scenario run saw besides their
// definite answers.
type tally struct {
	// pending counts 202 PENDING answers (each order polled until settled),
	// unavailable 503 answers (retried after Retry-After), retries resends
	// after a transport error or another 5xx, abandoned orders still
	// unsettled when their shopper stopped polling at settleTimeout.
	pending, unavailable, retries, abandoned atomic.Int64
}

// notes returns the tally as report notes, leaving out zeros.
func (t *tally) notes() []string {
	var out []string
	if n := t.pending.Load(); n > 0 {
		out = append(out, fmt.Sprintf("202 PENDING answers: %s (each order polled until it settled)", thousands(n)))
	}
	if n := t.unavailable.Load(); n > 0 {
		out = append(out, fmt.Sprintf("503 answers: %s (resent with the same Idempotency-Key after Retry-After)", thousands(n)))
	}
	if n := t.abandoned.Load(); n > 0 {
		out = append(out, fmt.Sprintf("orders still PENDING when their shopper stopped polling after %s: %s "+
			"(their latency counts as %s, a lower bound)", settleTimeout, thousands(n), settleTimeout))
	}
	if n := t.retries.Load(); n > 0 {
		out = append(out, fmt.Sprintf("resent after a transport error or another 5xx: %s", thousands(n)))
	}
	return out
}

// orderAnswer is what the harness reads of an order representation or a
// problem.
type orderAnswer struct {
	OrderID string `json:"orderId"`
	Status  string `json:"status"`
	Reason  string `json:"reason"`
	Code    string `json:"code"` // problem+json
}

// settledOrder is the definite outcome of one order, or PENDING for an
// order its shopper abandoned.
type settledOrder struct {
	OrderID, Status, Reason string
}

// lateOrders collects the orders that shoppers abandoned while PENDING, so
// that their outcome can be looked up once the run has settled.
type lateOrders struct {
	mu     sync.Mutex
	orders []lateOrder
}

type lateOrder struct {
	id, token string
	seq       int64
}

func (l *lateOrders) add(id, token string, seq int64) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.orders = append(l.orders, lateOrder{id, token, seq})
}

// outcomes reads every abandoned order with GET /orders/{id}, as its
// shopper would on coming back, and calls fn with what became of it.
func (l *lateOrders) outcomes(ctx context.Context, s *system, fn func(seq int64, o settledOrder)) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, o := range l.orders {
		code, _, ans, err := s.send(ctx, http.MethodGet, s.OrderURL+"/orders/"+o.id, o.token, nil, "")
		if err != nil {
			return fmt.Errorf("look up abandoned order %s: %w", o.id, err)
		}
		if code != http.StatusOK {
			return fmt.Errorf("look up abandoned order %s: GET answered %d", o.id, code)
		}
		fn(o.seq, settledOrder{o.id, ans.Status, ans.Reason})
	}
	return nil
}

// placeOrder places an order as a storefront does: with a fresh
// Idempotency-Key, resent with the same key after a 503 (once Retry-After
// has passed), a 5xx or a transport error, and polled after a 202 until it
// settles. It returns the settled status, or PENDING for an order still
// unsettled after settleTimeout, which the shopper abandons (counted in t):
// the run's settle phase and its checks find out what became of it.
func (s *system) placeOrder(ctx context.Context, token string, body []byte, t *tally) (settledOrder, error) {
	key := uuid.NewString()
	deadline := time.Now().Add(settleTimeout)
	for {
		code, header, ans, err := s.send(ctx, http.MethodPost, s.OrderURL+"/orders", token, body, key)
		wait := retryPause
		switch {
		case err != nil:
			if ctx.Err() != nil {
				return settledOrder{}, ctx.Err()
			}
			t.retries.Add(1)
		case (code == http.StatusCreated || code == http.StatusOK) && ans.Status == statusConfirmed,
			code == http.StatusConflict && ans.Status == statusFailed:
			return settledOrder{ans.OrderID, ans.Status, ans.Reason}, nil
		case (code == http.StatusAccepted || code == http.StatusOK) && ans.OrderID != "":
			t.pending.Add(1)
			o, err := s.awaitOrder(ctx, token, ans.OrderID, deadline)
			if err == nil && o.Status == statusPending {
				t.abandoned.Add(1)
			}
			return o, err
		case code == http.StatusServiceUnavailable:
			t.unavailable.Add(1)
			wait = retryAfter(header)
		case code >= 500:
			t.retries.Add(1)
		default:
			return settledOrder{}, fmt.Errorf("POST /orders answered %d: status %q code %q", code, ans.Status, ans.Code)
		}
		if time.Now().Add(wait).After(deadline) {
			return settledOrder{}, fmt.Errorf("order with key %s: no definite answer within %s", key, settleTimeout)
		}
		if err := sleep(ctx, wait); err != nil {
			return settledOrder{}, err
		}
	}
}

// awaitOrder polls GET /orders/{id} until the order is settled or, past
// deadline, returns it as PENDING.
func (s *system) awaitOrder(ctx context.Context, token, id string, deadline time.Time) (settledOrder, error) {
	wait := pollFirst
	for {
		if err := sleep(ctx, wait); err != nil {
			return settledOrder{}, err
		}
		code, _, ans, err := s.send(ctx, http.MethodGet, s.OrderURL+"/orders/"+id, token, nil, "")
		switch {
		case err != nil && ctx.Err() != nil:
			return settledOrder{}, ctx.Err()
		case err == nil && code == http.StatusOK:
			switch ans.Status {
			case statusConfirmed, statusFailed, statusCancelled:
				return settledOrder{id, ans.Status, ans.Reason}, nil
			}
		case err == nil && code < 500:
			return settledOrder{}, fmt.Errorf("GET /orders/%s answered %d: code %q", id, code, ans.Code)
		}
		if time.Now().After(deadline) {
			return settledOrder{OrderID: id, Status: statusPending}, nil
		}
		wait = min(wait*3/2, pollMax)
	}
}

// reserve sends a reservation to the product service with the service
// token. A transport error or a 5xx is an unknown outcome: the same request
// (same attemptId) is sent again, which the product service answers from
// its log if the first one was recorded. It returns the attempt's status.
func (s *system) reserve(ctx context.Context, req contract.ReserveRequest, t *tally) (contract.AttemptStatus, error) {
	body, err := json.Marshal(req)
	if err != nil {
		return "", fmt.Errorf("encode reservation: %w", err)
	}
	deadline := time.Now().Add(settleTimeout)
	for {
		code, _, ans, err := s.send(ctx, http.MethodPost, s.ProductURL+"/reservations", s.ServiceToken, body, "")
		switch {
		case err != nil:
			if ctx.Err() != nil {
				return "", ctx.Err()
			}
			t.retries.Add(1)
		case code == http.StatusCreated || code == http.StatusOK || (code == http.StatusConflict && ans.Code == ""):
			status := contract.AttemptStatus(ans.Status)
			if !status.Valid() {
				return "", fmt.Errorf("POST /reservations answered %d with status %q", code, ans.Status)
			}
			return status, nil
		case code >= 500:
			t.retries.Add(1)
		default:
			return "", fmt.Errorf("POST /reservations answered %d: code %q", code, ans.Code)
		}
		if time.Now().After(deadline) {
			return "", fmt.Errorf("attempt %s: no definite answer within %s", req.AttemptID, settleTimeout)
		}
		if err := sleep(ctx, retryPause); err != nil {
			return "", err
		}
	}
}

// send makes one request and decodes what the harness needs of the
// answer. A body that is not JSON leaves ans empty.
func (s *system) send(ctx context.Context, method, url, token string, body []byte, idemKey string) (int, http.Header, orderAnswer, error) {
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, url, rd)
	if err != nil {
		return 0, nil, orderAnswer{}, err
	}
	req.Header.Set("Authorization", "Bearer "+token)
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if idemKey != "" {
		req.Header.Set("Idempotency-Key", idemKey)
	}
	resp, err := s.client.Do(req)
	if err != nil {
		return 0, nil, orderAnswer{}, err
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(resp.Body, maxBody))
	if err != nil {
		return 0, nil, orderAnswer{}, fmt.Errorf("read answer of %s %s: %w", method, url, err)
	}
	var ans orderAnswer
	_ = json.Unmarshal(raw, &ans) // an answer that is not JSON is judged by its status code
	return resp.StatusCode, resp.Header, ans, nil
}

// retryAfter reads a Retry-After in seconds, bounded to 1-5 s (a
// storefront would not make a shopper wait longer between tries).
func retryAfter(h http.Header) time.Duration {
	secs, err := strconv.Atoi(h.Get("Retry-After"))
	if err != nil || secs < 1 {
		return time.Second
	}
	return time.Duration(min(secs, 5)) * time.Second
}

// sleep waits for d or until ctx ends.
func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

// orderBody encodes an order of the given lines.
func orderBody(items []contract.Item) []byte {
	body, err := json.Marshal(struct {
		Items []contract.Item `json:"items"`
	}{items})
	if err != nil {
		// Encoding a struct of ints cannot fail.
		panic(errors.Join(errors.New("encode order"), err))
	}
	return body
}
