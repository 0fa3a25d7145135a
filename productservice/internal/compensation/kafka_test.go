package compensation_test

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/confluentinc/confluent-kafka-go/v2/kafka"
	"github.com/google/uuid"
	"github.com/twmb/franz-go/pkg/kfake"

	"github.com/stockfence/stockfence/productservice/internal/compensation"
	"github.com/stockfence/stockfence/productservice/internal/httpapi"
	"github.com/stockfence/stockfence/productservice/internal/mysql"
	"github.com/stockfence/stockfence/shared/contract"
	"github.com/stockfence/stockfence/shared/kafkaclient"
	"github.com/stockfence/stockfence/shared/metrics"
	schema "github.com/stockfence/stockfence/sql"
	"github.com/stockfence/stockfence/sql/schematest"
)

const (
	serviceToken = "service-token"
	adminToken   = "admin-token"
)

// env is one product service (store, compensation handler, HTTP API with
// the DLQ endpoints) over a fresh database and its own embedded broker.
type env struct {
	t        *testing.T
	ctx      context.Context
	brokers  string
	db       *sql.DB
	store    *mysql.Store
	producer *kafkaclient.Producer
	handler  *compensation.Handler
	url      string
}

func newEnv(t *testing.T) *env {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	t.Cleanup(cancel)
	cluster, err := kfake.NewCluster(kfake.Ports(0), kfake.SeedTopics(3, contract.Topics...))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cluster.Close)
	brokers := cluster.ListenAddrs()[0]

	db := schematest.Open(t, schema.Products, 8)
	producer, err := kafkaclient.NewProducer(brokers, "productservice-test", 10*time.Second, discard)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { producer.Close(time.Second) })
	store := mysql.New(db)
	reg := metrics.NewRegistry()
	replayer := compensation.NewReplayer(compensation.ReplayConfig{Brokers: brokers, Publisher: producer, Logger: discard, Metrics: reg})
	t.Cleanup(replayer.Close)
	srv := httptest.NewServer(httpapi.New(httpapi.Config{
		Store:        store,
		Logger:       discard,
		ServiceToken: serviceToken,
		AdminToken:   adminToken,
		DeadLetters:  replayer,
		Ready:        func(context.Context) error { return nil },
		Metrics:      reg,
	}))
	t.Cleanup(srv.Close)
	return &env{
		t: t, ctx: ctx, brokers: brokers, db: db, store: store, producer: producer, url: srv.URL,
		handler: compensation.NewHandler(compensation.Config{Store: store, Publisher: producer, Logger: discard, Retry: fastRetry, Metrics: reg}),
	}
}

// consume runs a member of the service's consumer group with handle until
// the returned stop is called (or the test ends).
func (e *env) consume(handle kafkaclient.Handler) (stop func()) {
	e.t.Helper()
	c, err := kafkaclient.NewConsumer(e.brokers, compensation.Group, []string{contract.TopicCompensations}, discard)
	if err != nil {
		e.t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(e.ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		c.Run(ctx, handle)
	}()
	var once sync.Once
	stop = func() {
		once.Do(func() {
			cancel()
			<-done
		})
	}
	e.t.Cleanup(stop)
	return stop
}

func (e *env) publish(key, value string) {
	e.t.Helper()
	msg := kafkaclient.Message{Topic: contract.TopicCompensations, Key: []byte(key), Value: []byte(value)}
	if err := e.producer.Publish(e.ctx, msg)[0]; err != nil {
		e.t.Fatal(err)
	}
}

func (e *env) product(sku string, stock int64) contract.Product {
	e.t.Helper()
	p, err := e.store.CreateProduct(e.ctx, contract.NewProduct{SKU: sku, Name: sku, PriceCents: 100, Stock: stock})
	if err != nil {
		e.t.Fatal(err)
	}
	return p
}

func (e *env) reserve(items ...contract.Item) contract.ReserveRequest {
	e.t.Helper()
	req := contract.ReserveRequest{AttemptID: uuid.NewString(), OrderID: uuid.NewString(), Items: items}
	res, _, err := e.store.Reserve(e.ctx, req)
	if err != nil {
		e.t.Fatal(err)
	}
	if res.Status != contract.StatusApplied {
		e.t.Fatalf("reserve = %s, want APPLIED", res.Status)
	}
	return req
}

func (e *env) stock(id int64) int64 {
	e.t.Helper()
	return e.count(`SELECT stock FROM products WHERE id = ?`, id)
}

func (e *env) count(q string, args ...any) int64 {
	e.t.Helper()
	var n int64
	if err := e.db.QueryRowContext(e.ctx, q, args...).Scan(&n); err != nil {
		e.t.Fatal(err)
	}
	return n
}

// checkRestoredOnce asserts that attempt was given back exactly once and
// that every product's stock equals the sum of its ledger.
func (e *env) checkRestoredOnce(attemptID string, lines int64) {
	e.t.Helper()
	if n := e.count(`SELECT COUNT(*) FROM stock_movements WHERE attempt_id = ? AND kind = 'compensate'`, attemptID); n != lines {
		e.t.Fatalf("compensate movements of %s = %d, want %d", attemptID, n, lines)
	}
	if n := e.count(`SELECT COUNT(*) FROM products p
		WHERE p.stock <> (SELECT COALESCE(SUM(delta), 0) FROM stock_movements m WHERE m.product_id = p.id)`); n != 0 {
		e.t.Fatalf("%d products whose stock differs from their ledger", n)
	}
}

// do sends an HTTP request with a bearer token and an optional JSON body and
// decodes a JSON answer into out.
func (e *env) do(method, path, token string, body, out any) int {
	e.t.Helper()
	var rd io.Reader
	if body != nil {
		raw, err := json.Marshal(body)
		if err != nil {
			e.t.Fatal(err)
		}
		rd = bytes.NewReader(raw)
	}
	req, err := http.NewRequestWithContext(e.ctx, method, e.url+path, rd)
	if err != nil {
		e.t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		e.t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		e.t.Fatal(err)
	}
	if out != nil {
		if err := json.Unmarshal(raw, out); err != nil {
			e.t.Fatalf("%s %s: %d %s: %v", method, path, resp.StatusCode, raw, err)
		}
	}
	return resp.StatusCode
}

func (e *env) dlqCount() int64 {
	e.t.Helper()
	var out struct {
		Count *int64 `json:"count"`
	}
	if status := e.do(http.MethodGet, "/admin/dlq", adminToken, nil, &out); status != http.StatusOK || out.Count == nil {
		e.t.Fatalf("GET /admin/dlq: %d, count %v", status, out.Count)
	}
	return *out.Count
}

func (e *env) replay() int {
	e.t.Helper()
	var out struct {
		Replayed *int `json:"replayed"`
	}
	if status := e.do(http.MethodPost, "/admin/dlq/replay", adminToken, nil, &out); status != http.StatusOK || out.Replayed == nil {
		e.t.Fatalf("POST /admin/dlq/replay: %d, replayed %v", status, out.Replayed)
	}
	return *out.Replayed
}

// reader reads a whole topic from its beginning, outside any group.
type reader struct {
	e    *env
	c    *kafka.Consumer
	msgs []*kafka.Message
}

func (e *env) reader(topic string) *reader {
	e.t.Helper()
	c, err := kafka.NewConsumer(&kafka.ConfigMap{
		"bootstrap.servers":  e.brokers,
		"group.id":           "test-reader-" + uuid.NewString(),
		"enable.auto.commit": false,
		"log_level":          3,
	})
	if err != nil {
		e.t.Fatal(err)
	}
	e.t.Cleanup(func() { c.Close() })
	var parts []kafka.TopicPartition
	for p := range int32(3) {
		parts = append(parts, kafka.TopicPartition{Topic: &topic, Partition: p, Offset: kafka.OffsetBeginning})
	}
	if err := c.Assign(parts); err != nil {
		e.t.Fatal(err)
	}
	return &reader{e: e, c: c}
}

// waitFor polls until at least n messages were read and returns them all.
func (r *reader) waitFor(n int) []*kafka.Message {
	r.e.t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for len(r.msgs) < n {
		if time.Now().After(deadline) {
			r.e.t.Fatalf("read %d messages, want %d", len(r.msgs), n)
		}
		if m, err := r.c.ReadMessage(100 * time.Millisecond); err == nil {
			r.msgs = append(r.msgs, m)
		}
	}
	return r.msgs
}

// quiet checks that no further message arrives for a while.
func (r *reader) quiet(d time.Duration) {
	r.e.t.Helper()
	deadline := time.Now().Add(d)
	for time.Now().Before(deadline) {
		if m, err := r.c.ReadMessage(100 * time.Millisecond); err == nil {
			r.e.t.Fatalf("unexpected message %s: %s", m.Key, m.Value)
		}
	}
}

func result(t *testing.T, m *kafka.Message) contract.CompensationResult {
	t.Helper()
	var res contract.CompensationResult
	if err := json.Unmarshal(m.Value, &res); err != nil {
		t.Fatalf("result %s: %v", m.Value, err)
	}
	if string(m.Key) != res.AttemptID {
		t.Fatalf("result key = %q, want its attempt id %q", m.Key, res.AttemptID)
	}
	return res
}

func offsetOf(m *kafka.Message) string {
	return fmt.Sprintf("%d/%d", m.TopicPartition.Partition, int64(m.TopicPartition.Offset))
}

// TestDeliveredTwice: the same compensation delivered twice gives the stock
// back once and reports COMPENSATED twice.
func TestDeliveredTwice(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	a, b := e.product("A", 10), e.product("B", 10)
	req := e.reserve(contract.Item{ProductID: a.ID, Quantity: 3}, contract.Item{ProductID: b.ID, Quantity: 1})
	value := compensationJSON(t, req.AttemptID, req.OrderID)
	e.publish(req.AttemptID, value)
	e.publish(req.AttemptID, value)

	results := e.reader(contract.TopicCompensationResults)
	e.consume(e.handler.Handle)
	for _, m := range results.waitFor(2) {
		want := contract.CompensationResult{AttemptID: req.AttemptID, OrderID: req.OrderID, Status: contract.StatusCompensated}
		if got := result(t, m); got != want {
			t.Fatalf("result = %+v, want %+v", got, want)
		}
	}
	if got := e.stock(a.ID); got != 10 {
		t.Fatalf("stock of A = %d, want 10", got)
	}
	if got := e.stock(b.ID); got != 10 {
		t.Fatalf("stock of B = %d, want 10", got)
	}
	e.checkRestoredOnce(req.AttemptID, 2)
}

// TestRedeliveredAfterACrash: the service applies a compensation and dies
// before its offset is committed (here: Kafka stops taking the result and
// the member is stopped). The next member gets the message again, applies
// nothing more and publishes the result.
func TestRedeliveredAfterACrash(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	a := e.product("A", 10)
	req := e.reserve(contract.Item{ProductID: a.ID, Quantity: 4})
	e.publish(req.AttemptID, compensationJSON(t, req.AttemptID, req.OrderID))

	applied := make(chan struct{})
	var once sync.Once
	stuck := compensation.NewHandler(compensation.Config{
		Store: e.store, Logger: discard, Retry: fastRetry,
		Publisher: &fakePublisher{fail: func(ctx context.Context, _ int) error {
			once.Do(func() { close(applied) })
			<-ctx.Done()
			return ctx.Err()
		}},
	})
	stop := e.consume(stuck.Handle)
	select {
	case <-applied:
	case <-time.After(20 * time.Second):
		t.Fatal("the first member never applied the compensation")
	}
	stop()
	if got := e.stock(a.ID); got != 10 {
		t.Fatalf("stock after the first member = %d, want 10", got)
	}

	results := e.reader(contract.TopicCompensationResults)
	e.consume(e.handler.Handle)
	got := result(t, results.waitFor(1)[0])
	if want := (contract.CompensationResult{AttemptID: req.AttemptID, OrderID: req.OrderID, Status: contract.StatusCompensated}); got != want {
		t.Fatalf("result = %+v, want %+v", got, want)
	}
	if got := e.stock(a.ID); got != 10 {
		t.Fatalf("stock = %d, want 10", got)
	}
	e.checkRestoredOnce(req.AttemptID, 1)
}

// TestCompensationBeforeReservation: a compensation for an attempt that has
// not arrived fences it; the reservation arriving afterwards is refused.
func TestCompensationBeforeReservation(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	a := e.product("A", 10)
	req := contract.ReserveRequest{AttemptID: uuid.NewString(), OrderID: uuid.NewString(), Items: []contract.Item{{ProductID: a.ID, Quantity: 2}}}
	e.publish(req.AttemptID, compensationJSON(t, req.AttemptID, req.OrderID))

	results := e.reader(contract.TopicCompensationResults)
	e.consume(e.handler.Handle)
	got := result(t, results.waitFor(1)[0])
	if want := (contract.CompensationResult{AttemptID: req.AttemptID, OrderID: req.OrderID, Status: contract.StatusAborted}); got != want {
		t.Fatalf("result = %+v, want %+v", got, want)
	}

	var res contract.Reservation
	if status := e.do(http.MethodPost, "/reservations", serviceToken, req, &res); status != http.StatusConflict || res.Status != contract.StatusAborted {
		t.Fatalf("late reservation: %d %s, want 409 ABORTED", status, res.Status)
	}
	if got := e.stock(a.ID); got != 10 {
		t.Fatalf("stock = %d, want 10", got)
	}
}

// TestPoisonMessage: a message that cannot be decoded goes to the DLQ after
// its tries, with its key, value and the three headers, and the valid
// message behind it on the same partition is applied.
func TestPoisonMessage(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	a := e.product("A", 10)
	req := e.reserve(contract.Item{ProductID: a.ID, Quantity: 5})
	e.publish(req.AttemptID, "not json")
	e.publish(req.AttemptID, compensationJSON(t, req.AttemptID, req.OrderID))
	sent := e.reader(contract.TopicCompensations).waitFor(2)
	if sent[0].TopicPartition.Partition != sent[1].TopicPartition.Partition {
		t.Fatalf("messages on partitions %d and %d, want one", sent[0].TopicPartition.Partition, sent[1].TopicPartition.Partition)
	}

	results := e.reader(contract.TopicCompensationResults)
	dlq := e.reader(contract.TopicCompensationsDLQ)
	e.consume(e.handler.Handle)
	got := result(t, results.waitFor(1)[0])
	if want := (contract.CompensationResult{AttemptID: req.AttemptID, OrderID: req.OrderID, Status: contract.StatusCompensated}); got != want {
		t.Fatalf("result = %+v, want %+v", got, want)
	}
	e.checkRestoredOnce(req.AttemptID, 1)

	dead := dlq.waitFor(1)[0]
	if string(dead.Value) != "not json" || string(dead.Key) != req.AttemptID {
		t.Fatalf("dead letter %q = %q, want the original key and value", dead.Key, dead.Value)
	}
	headers := map[string]string{
		contract.HeaderError:          kafkaclient.Header(dead, contract.HeaderError),
		contract.HeaderAttempts:       kafkaclient.Header(dead, contract.HeaderAttempts),
		contract.HeaderOriginalOffset: kafkaclient.Header(dead, contract.HeaderOriginalOffset),
	}
	if !strings.Contains(headers[contract.HeaderError], "decode compensation") ||
		headers[contract.HeaderAttempts] != "3" || headers[contract.HeaderOriginalOffset] != offsetOf(sent[0]) {
		t.Fatalf("dead letter headers = %v, want a decode error, attempts 3, original-offset %s", headers, offsetOf(sent[0]))
	}
	if n := e.dlqCount(); n != 1 {
		t.Fatalf("GET /admin/dlq count = %d, want 1", n)
	}
}

// TestReplayAfterTheFix: a compensation whose apply fails (its ledger table
// is gone) is dead-lettered without touching stock; once the table is back,
// POST /admin/dlq/replay republishes it, it is applied once, and the DLQ
// count drops to 0.
func TestReplayAfterTheFix(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	a := e.product("A", 10)
	req := e.reserve(contract.Item{ProductID: a.ID, Quantity: 6})
	if n := e.dlqCount(); n != 0 {
		t.Fatalf("GET /admin/dlq count = %d, want 0", n)
	}
	if _, err := e.db.ExecContext(e.ctx, `RENAME TABLE stock_movements TO stock_movements_x`); err != nil {
		t.Fatal(err)
	}
	e.publish(req.AttemptID, compensationJSON(t, req.AttemptID, req.OrderID))
	dlq := e.reader(contract.TopicCompensationsDLQ)
	results := e.reader(contract.TopicCompensationResults)
	e.consume(e.handler.Handle)

	dead := dlq.waitFor(1)[0]
	if errText := kafkaclient.Header(dead, contract.HeaderError); !strings.Contains(errText, "stock_movements") ||
		kafkaclient.Header(dead, contract.HeaderAttempts) != "3" || kafkaclient.Header(dead, contract.HeaderOriginalOffset) == "" {
		t.Fatalf("dead letter headers = %v, want the missing table, attempts 3 and the original offset", dead.Headers)
	}
	if got := e.stock(a.ID); got != 4 {
		t.Fatalf("stock while the table is missing = %d, want 4", got)
	}
	if n := e.dlqCount(); n != 1 {
		t.Fatalf("GET /admin/dlq count = %d, want 1", n)
	}

	if _, err := e.db.ExecContext(e.ctx, `RENAME TABLE stock_movements_x TO stock_movements`); err != nil {
		t.Fatal(err)
	}
	if n := e.replay(); n != 1 {
		t.Fatalf("replayed = %d, want 1", n)
	}
	got := result(t, results.waitFor(1)[0])
	if want := (contract.CompensationResult{AttemptID: req.AttemptID, OrderID: req.OrderID, Status: contract.StatusCompensated}); got != want {
		t.Fatalf("result = %+v, want %+v", got, want)
	}
	if got := e.stock(a.ID); got != 10 {
		t.Fatalf("stock = %d, want 10", got)
	}
	e.checkRestoredOnce(req.AttemptID, 1)
	if n := e.dlqCount(); n != 0 {
		t.Fatalf("GET /admin/dlq count after the replay = %d, want 0", n)
	}
	if n := e.replay(); n != 0 {
		t.Fatalf("second replay = %d, want 0", n)
	}

	sent := e.reader(contract.TopicCompensations).waitFor(2)
	replayed := sent[0]
	if kafkaclient.Header(replayed, compensation.HeaderReplayedFrom) == "" {
		replayed = sent[1]
	}
	if from := kafkaclient.Header(replayed, compensation.HeaderReplayedFrom); from != kafkaclient.Header(dead, contract.HeaderOriginalOffset) ||
		string(replayed.Key) != req.AttemptID || !bytes.Equal(replayed.Value, dead.Value) {
		t.Fatalf("replayed %q = %q from %q, want the dead letter's key, value and original offset %q",
			replayed.Key, replayed.Value, from, kafkaclient.Header(dead, contract.HeaderOriginalOffset))
	}
	results.quiet(300 * time.Millisecond)
}
