package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"testing"
	"time"

	"github.com/confluentinc/confluent-kafka-go/v2/kafka"
	"github.com/google/uuid"
	"github.com/twmb/franz-go/pkg/kfake"

	"github.com/stockfence/stockfence/shared/contract"
	"github.com/stockfence/stockfence/shared/kafkaclient"
	"github.com/stockfence/stockfence/shared/mysqldb/mysqltest"
)

// service is run() in the test process, serving on a free loopback port.
type service struct {
	t      *testing.T
	url    string
	stop   context.CancelFunc
	exited chan struct{}
	err    error // what run returned, once exited is closed
}

func startService(t *testing.T, brokers string) *service {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	vars := map[string]string{
		"PRODUCT_HTTP_ADDR":       addr,
		"PRODUCT_MYSQL_DSN":       mysqltest.New(t, "products"),
		"PRODUCT_MYSQL_MAX_CONNS": "4",
		"KAFKA_BROKERS":           brokers,
		"SERVICE_TOKEN":           "service-token",
		"ADMIN_TOKEN":             "admin-token",
	}
	ctx, cancel := context.WithCancel(context.Background())
	s := &service{t: t, url: "http://" + addr, stop: cancel, exited: make(chan struct{})}
	go func() {
		defer close(s.exited)
		s.err = run(ctx, slog.New(slog.NewTextHandler(io.Discard, nil)), env(vars))
	}()
	t.Cleanup(func() {
		cancel()
		<-s.exited
	})
	deadline := time.Now().Add(30 * time.Second)
	for {
		resp, err := http.Get(s.url + "/readyz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return s
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("service not ready at %s: %v", s.url, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func (s *service) do(method, path, token string, body, out any) int {
	s.t.Helper()
	raw, err := json.Marshal(body)
	if err != nil {
		s.t.Fatal(err)
	}
	req, err := http.NewRequest(method, s.url+path, bytes.NewReader(raw))
	if err != nil {
		s.t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		s.t.Fatal(err)
	}
	defer resp.Body.Close()
	if out != nil {
		if err := json.NewDecoder(resp.Body).Decode(out); err != nil {
			s.t.Fatalf("%s %s: %d: %v", method, path, resp.StatusCode, err)
		}
	}
	return resp.StatusCode
}

// reserve creates a product of 10 and reserves 4 of it.
func (s *service) reserve() (contract.Product, contract.ReserveRequest) {
	s.t.Helper()
	var p contract.Product
	if status := s.do(http.MethodPost, "/products", "admin-token", contract.NewProduct{SKU: "A", Name: "a", PriceCents: 100, Stock: 10}, &p); status != http.StatusCreated {
		s.t.Fatalf("create product: %d", status)
	}
	req := contract.ReserveRequest{AttemptID: uuid.NewString(), OrderID: uuid.NewString(), Items: []contract.Item{{ProductID: p.ID, Quantity: 4}}}
	if status := s.do(http.MethodPost, "/reservations", "service-token", req, nil); status != http.StatusCreated {
		s.t.Fatalf("reserve: %d, want 201", status)
	}
	return p, req
}

// shutdown stops the service as SIGTERM would and checks that it drains in
// time and cleanly.
func (s *service) shutdown() {
	s.t.Helper()
	start := time.Now()
	s.stop()
	select {
	case <-s.exited:
		if s.err != nil {
			s.t.Fatalf("run = %v, want nil", s.err)
		}
	case <-time.After(drainTimeout):
		s.t.Fatalf("not stopped %s after the signal", drainTimeout)
	}
	s.t.Logf("stopped in %s", time.Since(start).Round(time.Millisecond))
}

func TestRunWithoutKafka(t *testing.T) {
	t.Parallel()
	s := startService(t, "127.0.0.1:1")
	s.reserve()
	s.shutdown()
}

func TestRunAppliesCompensations(t *testing.T) {
	t.Parallel()
	cluster, err := kfake.NewCluster(kfake.Ports(0), kfake.SeedTopics(3, contract.Topics...))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cluster.Close)
	brokers := cluster.ListenAddrs()[0]
	s := startService(t, brokers)
	p, req := s.reserve()

	producer, err := kafkaclient.NewProducer(brokers, "test", 10*time.Second, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	defer producer.Close(time.Second)
	value, err := json.Marshal(contract.Compensation{MessageID: uuid.NewString(), AttemptID: req.AttemptID, OrderID: req.OrderID, Reason: "cancelled"})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := producer.Publish(ctx, kafkaclient.Message{Topic: contract.TopicCompensations, Key: []byte(req.AttemptID), Value: value})[0]; err != nil {
		t.Fatal(err)
	}

	got := readResult(t, brokers)
	if want := (contract.CompensationResult{AttemptID: req.AttemptID, OrderID: req.OrderID, Status: contract.StatusCompensated}); got != want {
		t.Fatalf("result = %+v, want %+v", got, want)
	}
	var after contract.Product
	if status := s.do(http.MethodGet, fmt.Sprintf("/products/%d", p.ID), "", nil, &after); status != http.StatusOK || after.Stock != 10 {
		t.Fatalf("product: %d, stock %d, want 200 and 10", status, after.Stock)
	}
	var dlq struct{ Count int64 }
	if status := s.do(http.MethodGet, "/admin/dlq", "admin-token", nil, &dlq); status != http.StatusOK || dlq.Count != 0 {
		t.Fatalf("GET /admin/dlq: %d, count %d, want 200 and 0", status, dlq.Count)
	}
	s.shutdown()
}

// readResult waits for the first compensation result.
func readResult(t *testing.T, brokers string) contract.CompensationResult {
	t.Helper()
	c, err := kafka.NewConsumer(&kafka.ConfigMap{"bootstrap.servers": brokers, "group.id": "test-" + uuid.NewString()})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	topic := contract.TopicCompensationResults
	var parts []kafka.TopicPartition
	for p := range int32(3) {
		parts = append(parts, kafka.TopicPartition{Topic: &topic, Partition: p, Offset: kafka.OffsetBeginning})
	}
	if err := c.Assign(parts); err != nil {
		t.Fatal(err)
	}
	m, err := c.ReadMessage(20 * time.Second)
	if err != nil {
		t.Fatalf("no compensation result: %v", err)
	}
	var res contract.CompensationResult
	if err := json.Unmarshal(m.Value, &res); err != nil {
		t.Fatal(err)
	}
	return res
}
