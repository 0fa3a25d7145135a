package productclient_test

import (
	"errors"
	"net/http"
	"testing"
	"time"

	"github.com/stockfence/stockfence/orderservice/internal/productclient"
)

const adminToken = "admin-secret"

func adminClient(t *testing.T, url, admin string) *productclient.Client {
	t.Helper()
	c, err := productclient.New(productclient.Config{BaseURL: url, ServiceToken: token, AdminToken: admin, Timeout: time.Second})
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	return c
}

func TestDeadLetters(t *testing.T) {
	t.Parallel()
	var got []string
	srv, calls := server(t, func(w http.ResponseWriter, r *http.Request) {
		got = append(got, r.Method+" "+r.URL.Path+" "+r.Header.Get("Authorization"))
		switch r.URL.Path {
		case "/admin/dlq":
			answer(http.StatusOK, map[string]int{"count": 3})(w, r)
		case "/admin/dlq/replay":
			answer(http.StatusOK, map[string]int{"replayed": 2})(w, r)
		}
	})
	c := adminClient(t, srv.URL, adminToken)
	n, err := c.DeadLetterCount(t.Context())
	if err != nil || n != 3 {
		t.Fatalf("DeadLetterCount = %d, %v; want 3", n, err)
	}
	replayed, err := c.ReplayDeadLetters(t.Context())
	if err != nil || replayed != 2 {
		t.Fatalf("ReplayDeadLetters = %d, %v; want 2", replayed, err)
	}
	want := []string{"GET /admin/dlq Bearer " + adminToken, "POST /admin/dlq/replay Bearer " + adminToken}
	if calls.Load() != 2 || len(got) != 2 || got[0] != want[0] || got[1] != want[1] {
		t.Fatalf("requests = %q, want %q", got, want)
	}
}

func TestDeadLettersFailures(t *testing.T) {
	t.Parallel()
	kafkaDown := func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/problem+json")
		w.WriteHeader(http.StatusServiceUnavailable)
		_, _ = w.Write([]byte(`{"status":503,"code":"kafka_unavailable","title":"Service Unavailable"}`))
	}
	tests := []struct {
		name    string
		handler http.HandlerFunc
		admin   string
		want    error
		calls   int32
	}{
		{"kafka down", kafkaDown, adminToken, productclient.ErrKafkaUnavailable, 1},
		{"server error", answer(http.StatusInternalServerError, map[string]string{"code": "internal"}), adminToken, productclient.ErrUnavailable, 1},
		{"token refused", answer(http.StatusUnauthorized, map[string]string{"code": "unauthorized"}), adminToken, productclient.ErrRejectedRequest, 1},
		{"no count", answer(http.StatusOK, map[string]string{}), adminToken, productclient.ErrUnavailable, 1},
		{"no admin token", answer(http.StatusOK, map[string]int{"count": 1}), "", productclient.ErrRejectedRequest, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			srv, calls := server(t, tt.handler)
			c := adminClient(t, srv.URL, tt.admin)
			if _, err := c.DeadLetterCount(t.Context()); !errors.Is(err, tt.want) {
				t.Errorf("DeadLetterCount error = %v, want %v", err, tt.want)
			}
			if got := calls.Load(); got != tt.calls {
				t.Errorf("requests = %d, want %d (never retried)", got, tt.calls)
			}
		})
	}

	unreachable := adminClient(t, "http://127.0.0.1:1", adminToken)
	if _, err := unreachable.ReplayDeadLetters(t.Context()); !errors.Is(err, productclient.ErrUnavailable) {
		t.Errorf("ReplayDeadLetters of an unreachable service: %v, want ErrUnavailable", err)
	}
}
