package stack_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stockfence/stockfence/e2e/stack"
)

// fakeEnv switches the test binary into a stand-in for a service binary, so
// the launcher's process handling is tested without the real services.
const fakeEnv = "STACK_TEST_FAKE"

func TestMain(m *testing.M) {
	if mode := os.Getenv(fakeEnv); mode != "" {
		os.Exit(fakeService(mode))
	}
	os.Exit(m.Run())
}

// fakeService plays the binary it was started as (through a symlink named
// productservice or orderservice). "serve" listens on the contract's address
// variable, answers /readyz and, on /env?name=X, the value of X; it exits 0 on
// SIGTERM, and 4 on GET /crash. "crash" writes a line to stderr and exits 3.
func fakeService(mode string) int {
	if mode == "crash" {
		fmt.Fprintln(os.Stderr, "fake service: cannot open database")
		return 3
	}
	addrVar := "PRODUCT_HTTP_ADDR"
	if filepath.Base(os.Args[0]) == stack.OrderBinary {
		addrVar = "ORDER_HTTP_ADDR"
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, r *http.Request) {})
	mux.HandleFunc("GET /crash", func(w http.ResponseWriter, r *http.Request) { os.Exit(4) })
	mux.HandleFunc("GET /env", func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprint(w, os.Getenv(r.URL.Query().Get("name")))
	})
	srv := &http.Server{Addr: os.Getenv(addrVar), Handler: mux, ReadHeaderTimeout: time.Second}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM)
	defer stop()
	go func() {
		<-ctx.Done()
		_ = srv.Shutdown(context.Background())
	}()
	if err := srv.ListenAndServe(); !errors.Is(err, http.ErrServerClosed) {
		fmt.Fprintln(os.Stderr, "fake service:", err)
		return 1
	}
	return 0
}

// fakeBinDir returns a directory whose productservice and orderservice are
// the test binary itself.
func fakeBinDir(t *testing.T) string {
	t.Helper()
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	for _, name := range []string{stack.ProductBinary, stack.OrderBinary} {
		if err := os.Symlink(self, filepath.Join(dir, name)); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

func startFake(t *testing.T, opts stack.Options) *stack.Stack {
	t.Helper()
	opts.BinDir = fakeBinDir(t)
	opts.ProductsDSN = "fake-products"
	opts.OrdersDSN = "fake-orders"
	opts.LogDir = t.TempDir()
	s, err := stack.Start(t.Context(), opts)
	if err != nil {
		t.Fatalf("start: %v", err)
	}
	t.Cleanup(func() {
		if err := s.Stop(); err != nil {
			t.Errorf("stop: %v", err)
		}
	})
	return s
}

func TestProcessLifecycle(t *testing.T) {
	t.Parallel()
	s := startFake(t, stack.Options{Env: map[string]string{fakeEnv: "serve"}})
	p := s.Product

	if !p.Running() {
		t.Fatal("product not running after Start")
	}
	if err := p.Start(t.Context()); err == nil {
		t.Error("Start of a running process succeeded, want an error")
	}
	if err := p.Kill(); err != nil {
		t.Fatalf("kill: %v", err)
	}
	if p.Running() {
		t.Error("product running after Kill")
	}
	select {
	case <-p.Done():
	default:
		t.Error("Done not closed after Kill")
	}
	if err := p.Stop(); err != nil {
		t.Errorf("Stop after Kill = %v, want nil", err)
	}
	if err := p.Restart(t.Context()); err != nil {
		t.Fatalf("restart: %v", err)
	}
	if got := getStatus(t, p.URL+"/readyz"); got != http.StatusOK {
		t.Errorf("readyz after restart = %d, want 200", got)
	}
	if err := p.Restart(t.Context()); err != nil {
		t.Fatalf("restart of a running process: %v", err)
	}
	if err := s.Stop(); err != nil {
		t.Fatalf("stop: %v", err)
	}
	if s.Product.Running() || s.Order.Running() {
		t.Error("a process is running after Stop")
	}

	// A process that dies on its own is reported by the next Stop, once.
	if err := p.Start(t.Context()); err != nil {
		t.Fatalf("start again: %v", err)
	}
	_, _ = http.Get(p.URL + "/crash")
	<-p.Done()
	if err := p.Stop(); err == nil || !strings.Contains(err.Error(), "exited on its own") {
		t.Errorf("Stop after a crash = %v, want an error saying it exited on its own", err)
	}
	if err := p.Stop(); err != nil {
		t.Errorf("second Stop after a crash = %v, want nil", err)
	}
	if p.Running() {
		t.Error("a process is running after Stop")
	}
	log, err := os.ReadFile(p.LogPath)
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.Count(string(log), "e2e stack: starting"); got != 4 {
		t.Errorf("log records %d starts, want 4 (the log is appended across restarts):\n%s", got, log)
	}
}

func TestEnvironment(t *testing.T) {
	// Not parallel: it sets a variable of the launcher's own environment.
	t.Setenv("PRODUCT_TIMEOUT", "99s") // must not leak into the children
	t.Setenv("KAFKA_BROKERS", "stray.example:9092")
	t.Setenv("STACK_TEST_INHERITED", "yes")
	s := startFake(t, stack.Options{
		Env:        map[string]string{fakeEnv: "serve", "STUCK_AFTER": "7s"},
		OrderEnv:   map[string]string{"STUCK_AFTER": "9s"},
		AdminToken: "admin-secret",
	})
	tests := []struct {
		url, name, want string
	}{
		{s.Order.URL, "PRODUCT_TIMEOUT", ""},
		{s.Order.URL, "STACK_TEST_INHERITED", "yes"},
		{s.Order.URL, "STUCK_AFTER", "9s"},
		{s.Product.URL, "STUCK_AFTER", "7s"},
		{s.Order.URL, "PRODUCT_URL", s.ProductURL},
		{s.Order.URL, "CUSTOMER_JWT_SECRET", s.JWTSecret},
		{s.Product.URL, "ADMIN_TOKEN", "admin-secret"},
		{s.Order.URL, "ADMIN_TOKEN", "admin-secret"},
		{s.Product.URL, "SERVICE_TOKEN", s.ServiceToken},
		{s.Order.URL, "SERVICE_TOKEN", s.ServiceToken},
		{s.Product.URL, "PRODUCT_MYSQL_DSN", "fake-products"},
		{s.Order.URL, "ORDER_MYSQL_DSN", "fake-orders"},
		{s.Order.URL, "ORDER_HTTP_ADDR", strings.TrimPrefix(s.OrderURL, "http://")},
		{s.Product.URL, "KAFKA_BROKERS", s.Broker.Addr()},
		{s.Order.URL, "KAFKA_BROKERS", s.Broker.Addr()},
	}
	for _, tt := range tests {
		if got := getBody(t, tt.url+"/env?name="+tt.name); got != tt.want {
			t.Errorf("%s at %s = %q, want %q", tt.name, tt.url, got, tt.want)
		}
	}
	if len(s.ServiceToken) != 64 || len(s.JWTSecret) != 64 || s.ServiceToken == s.JWTSecret {
		t.Errorf("generated secrets %q and %q, want two different 64-digit hex strings", s.ServiceToken, s.JWTSecret)
	}
}

// TestEmbeddedBroker: without Options.KafkaBrokers, Start runs a broker with
// its data under LogDir, and Stop closes it after the services.
func TestEmbeddedBroker(t *testing.T) {
	t.Parallel()
	s := startFake(t, stack.Options{Env: map[string]string{fakeEnv: "serve"}})
	if s.Broker == nil || !s.Broker.Running() {
		t.Fatalf("Broker = %v, want a running embedded broker", s.Broker)
	}
	if s.KafkaBrokers != s.Broker.Addr() {
		t.Errorf("KafkaBrokers = %q, want the broker's address %q", s.KafkaBrokers, s.Broker.Addr())
	}
	if _, err := os.Stat(filepath.Join(s.LogDir, "kafka", "meta.json")); err != nil {
		t.Errorf("no broker state in <LogDir>/kafka: %v", err)
	}
	if err := s.Stop(); err != nil {
		t.Fatalf("stop: %v", err)
	}
	if s.Broker.Running() {
		t.Error("broker running after Stop")
	}
}

// TestExternalKafka: with Options.KafkaBrokers, both services are pointed at
// it and no broker is started.
func TestExternalKafka(t *testing.T) {
	t.Parallel()
	const external = "kafka-1.example:9092,kafka-2.example:9092"
	s := startFake(t, stack.Options{KafkaBrokers: external, Env: map[string]string{fakeEnv: "serve"}})
	if s.Broker != nil {
		t.Errorf("Broker = %v, want nil with an external Kafka", s.Broker)
	}
	if s.KafkaBrokers != external {
		t.Errorf("KafkaBrokers = %q, want %q", s.KafkaBrokers, external)
	}
	for _, url := range []string{s.ProductURL, s.OrderURL} {
		if got := getBody(t, url+"/env?name=KAFKA_BROKERS"); got != external {
			t.Errorf("KAFKA_BROKERS at %s = %q, want %q", url, got, external)
		}
	}
	if _, err := os.Stat(filepath.Join(s.LogDir, "kafka")); err == nil {
		t.Error("<LogDir>/kafka exists, want no embedded broker")
	}
}

func TestStartReportsEarlyExit(t *testing.T) {
	t.Parallel()
	logDir := t.TempDir()
	_, err := stack.Start(t.Context(), stack.Options{
		BinDir:      fakeBinDir(t),
		ProductsDSN: "fake",
		OrdersDSN:   "fake",
		LogDir:      logDir,
		Env:         map[string]string{fakeEnv: "crash"},
	})
	if err == nil {
		t.Fatal("Start succeeded with a crashing product service")
	}
	for _, want := range []string{"productservice exited before it was ready", "exit status 3", "cannot open database"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error lacks %q:\n%v", want, err)
		}
	}
	if _, err := os.Stat(filepath.Join(logDir, "orderservice.log")); err == nil {
		t.Error("order service was started although the product service failed")
	}
}

func TestStartRefusesTakenPort(t *testing.T) {
	t.Parallel()
	s := startFake(t, stack.Options{Env: map[string]string{fakeEnv: "serve"}})
	taken := s.Product.URL[strings.LastIndex(s.Product.URL, ":")+1:]
	var port int
	if _, err := fmt.Sscan(taken, &port); err != nil {
		t.Fatal(err)
	}
	_, err := stack.Start(t.Context(), stack.Options{
		BinDir: fakeBinDir(t), ProductsDSN: "fake", OrdersDSN: "fake", LogDir: t.TempDir(),
		ProductPort: port, Env: map[string]string{fakeEnv: "serve"},
	})
	if err == nil || !strings.Contains(err.Error(), "not free") {
		t.Fatalf("Start on a taken port: err = %v, want one saying the port is not free", err)
	}
}

func getStatus(t *testing.T, url string) int {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	resp.Body.Close()
	return resp.StatusCode
}

func getBody(t *testing.T, url string) string {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	return string(b)
}
