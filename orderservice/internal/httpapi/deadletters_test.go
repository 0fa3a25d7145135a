package httpapi_test

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/stockfence/stockfence/orderservice/internal/httpapi"
)

// fakeDeadLetters stands in for the product service's dead-letter topic.
type fakeDeadLetters struct {
	count    int64
	replayed int
	err      error
	replays  atomic.Int32
}

func (f *fakeDeadLetters) DeadLetterCount(context.Context) (int64, error) {
	return f.count, f.err
}

func (f *fakeDeadLetters) ReplayDeadLetters(context.Context) (int, error) {
	f.replays.Add(1)
	return f.replayed, f.err
}

func TestDeadLetterProxy(t *testing.T) {
	t.Parallel()
	dlq := &fakeDeadLetters{count: 3, replayed: 2}
	h := newHarnessWith(t, modeApplied, func(c *httpapi.Config) { c.DeadLetters = dlq })

	for _, tok := range []string{"", token(t, "alice")} {
		h.do("GET", "/ops/dlq", tok, "").problem(t, http.StatusUnauthorized, "unauthorized")
		h.do("POST", "/ops/dlq/replay", tok, "").problem(t, http.StatusUnauthorized, "unauthorized")
	}
	if dlq.replays.Load() != 0 {
		t.Fatal("a replay ran without the admin token")
	}
	if r := h.do("GET", "/ops/dlq", adminToken, ""); r.status != http.StatusOK || string(r.body) != "{\"count\":3}\n" {
		t.Errorf("GET /ops/dlq = %d %s, want 200 {\"count\":3}", r.status, r.body)
	}
	if r := h.do("POST", "/ops/dlq/replay", adminToken, ""); r.status != http.StatusOK || string(r.body) != "{\"replayed\":2}\n" {
		t.Errorf("POST /ops/dlq/replay = %d %s, want 200 {\"replayed\":2}", r.status, r.body)
	}
	h.do("GET", "/ops/dlq/replay", adminToken, "").problem(t, http.StatusMethodNotAllowed, "method_not_allowed")

	dlq.err = errors.New("dial tcp 10.1.2.3:8081: connection refused")
	for _, call := range [][2]string{{"GET", "/ops/dlq"}, {"POST", "/ops/dlq/replay"}} {
		r := h.do(call[0], call[1], adminToken, "")
		r.problem(t, http.StatusServiceUnavailable, "product_unavailable")
		if r.header.Get("Retry-After") == "" {
			t.Errorf("%s %s: 503 without Retry-After", call[0], call[1])
		}
		if strings.Contains(string(r.body), "10.1.2.3") {
			t.Errorf("%s %s reveals the cause: %s", call[0], call[1], r.body)
		}
	}

	// Without the product side's dead letters the paths do not exist.
	newHarness(t, modeApplied).do("GET", "/ops/dlq", adminToken, "").problem(t, http.StatusNotFound, "not_found")
}
