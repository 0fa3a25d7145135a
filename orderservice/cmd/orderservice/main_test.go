package main

import (
	"context"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/stockfence/stockfence/shared/mysqldb/mysqltest"
)

// TestRun starts the service the way main does, on a fresh database, checks
// that it serves and is ready, and that it stops cleanly when asked.
func TestRun(t *testing.T) {
	t.Parallel()
	dsn := mysqltest.New(t, "orders")
	addr := freeAddr(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	vars := withSecrets(map[string]string{
		"ORDER_HTTP_ADDR": addr,
		"ORDER_MYSQL_DSN": dsn,
		"PRODUCT_URL":     "http://127.0.0.1:1",
	})
	done := make(chan error, 1)
	go func() { done <- run(ctx, slog.New(slog.DiscardHandler), env(vars)) }()

	base := "http://" + addr
	waitFor(t, base+"/healthz", done)
	for _, tt := range []struct {
		path   string
		status int
		body   string
	}{
		{"/readyz", http.StatusOK, `"ready"`},
		{"/orders", http.StatusUnauthorized, `"unauthorized"`},
		{"/catalog", http.StatusServiceUnavailable, `"product_unavailable"`},
	} {
		resp, err := http.Get(base + tt.path)
		if err != nil {
			t.Fatalf("GET %s: %v", tt.path, err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != tt.status || !strings.Contains(string(body), tt.body) {
			t.Errorf("GET %s = %d %s, want %d with %s", tt.path, resp.StatusCode, body, tt.status, tt.body)
		}
	}

	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("run: %v", err)
		}
	case <-time.After(15 * time.Second):
		t.Fatal("run did not return after its context was cancelled")
	}
}

func TestRunRejectsBadConfig(t *testing.T) {
	t.Parallel()
	err := run(context.Background(), slog.New(slog.DiscardHandler), env(map[string]string{"ADMIN_TOKEN": "a", "CUSTOMER_JWT_SECRET": "b"}))
	if err == nil || !strings.Contains(err.Error(), "SERVICE_TOKEN") {
		t.Fatalf("run = %v, want an error naming SERVICE_TOKEN", err)
	}
}

func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return addr
}

// waitFor polls url until it answers 200, failing if run returns first.
func waitFor(t *testing.T, url string, done <-chan error) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		select {
		case err := <-done:
			t.Fatalf("run returned early: %v", err)
		default:
		}
		resp, err := http.Get(url)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("%s did not answer 200 within 30s", url)
}
