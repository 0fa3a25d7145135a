// Command orderservice serves the order API: it records orders, reserves their
// stock at the product service with one call per attempt, and answers with
// the order. Configuration comes from the environment (see Config).
package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/stockfence/stockfence/orderservice/internal/backlog"
	"github.com/stockfence/stockfence/orderservice/internal/coalesce"
	"github.com/stockfence/stockfence/orderservice/internal/compensation"
	"github.com/stockfence/stockfence/orderservice/internal/httpapi"
	"github.com/stockfence/stockfence/orderservice/internal/mysql"
	"github.com/stockfence/stockfence/orderservice/internal/order"
	"github.com/stockfence/stockfence/orderservice/internal/ordering"
	"github.com/stockfence/stockfence/orderservice/internal/productclient"
	"github.com/stockfence/stockfence/orderservice/internal/reconcile"
	"github.com/stockfence/stockfence/orderservice/internal/recovery"
	"github.com/stockfence/stockfence/shared/contract"
	"github.com/stockfence/stockfence/shared/kafkaclient"
	"github.com/stockfence/stockfence/shared/metrics"
	"github.com/stockfence/stockfence/shared/mysqldb"
	"github.com/stockfence/stockfence/shared/pprofserver"
	schema "github.com/stockfence/stockfence/sql"
)

const (
	// startupTimeout bounds connecting, creating the database and migrating
	// (the migration lock alone may wait a minute for another instance).
	startupTimeout = 90 * time.Second
	// shutdownTimeout bounds draining in-flight requests.
	shutdownTimeout = 10 * time.Second
	// deliveryTimeout bounds one publish; flushTimeout the flush at exit.
	deliveryTimeout = 30 * time.Second
	flushTimeout    = 3 * time.Second
	// relayInterval is how often the outbox relay looks for messages it was
	// not woken for.
	relayInterval = 200 * time.Millisecond
	// consumerGroup reads stock-compensation-results.
	consumerGroup = "orderservice"
)

func main() {
	logger := slog.New(slog.NewJSONHandler(os.Stdout, nil))
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	err := run(ctx, logger, os.Getenv)
	stop()
	if err != nil {
		logger.Error("orderservice failed", "err", err)
		os.Exit(1)
	}
}

// run starts the service with the configuration read through getenv and
// serves until ctx is done, then drains within shutdownTimeout.
func run(ctx context.Context, logger *slog.Logger, getenv func(string) string) error {
	cfg, err := parseConfig(getenv)
	if err != nil {
		return fmt.Errorf("configuration: %w", err)
	}
	logger.Info("orderservice starting", "config", cfg)
	pprofserver.Start(ctx, cfg.PprofAddr, logger)

	startCtx, cancel := context.WithTimeout(ctx, startupTimeout)
	defer cancel()
	db, err := mysqldb.Open(startCtx, cfg.MySQLDSN, cfg.MySQLMaxConns)
	if err != nil {
		return fmt.Errorf("open orders database: %w", err)
	}
	defer db.Close()
	if err := schema.Apply(startCtx, db, schema.Orders); err != nil {
		return err
	}

	store := mysql.New(db)
	store.LimitQuantity(order.QuantityCap{Limit: cfg.MaxQuantity, Window: cfg.MaxQuantityWindow})
	reg := metrics.NewRegistry()
	reg.MustRegister(backlog.New(store, nil))
	products, err := productclient.New(productclient.Config{
		BaseURL:      cfg.ProductURL,
		ServiceToken: cfg.ServiceToken,
		Timeout:      cfg.ProductTimeout,
		Logger:       logger,
		Metrics:      reg,

		// The contract gives both services one ADMIN_TOKEN: the dashboard's
		// dead-letter calls are forwarded with it.
		AdminToken: cfg.AdminToken,
	})
	if err != nil {
		return err
	}
	// Kafka: if the broker is unreachable the service still starts; the
	// outbox holds compensations until it is back.
	brokers := strings.Join(cfg.KafkaBrokers, ",")
	producer, err := kafkaclient.NewProducer(brokers, "orderservice", deliveryTimeout, logger)
	if err != nil {
		return err
	}
	defer producer.Close(flushTimeout)
	results, err := kafkaclient.NewConsumer(brokers, consumerGroup, []string{contract.TopicCompensationResults}, logger)
	if err != nil {
		return err
	}
	metrics.ConsumerLag(reg, consumerGroup, results)
	relay := compensation.NewRelay(store, producer, relayInterval, logger)
	var (
		orders  ordering.Store   = store
		product ordering.Product = products
	)
	if cfg.Coalesce {
		batches := metrics.Register(reg, prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Namespace: metrics.Namespace,
			Name:      "order_batch_size",
			Help:      "Orders created or answers stored per coalesced transaction, or reservations per batch call (kind create, settle, reserve).",
			Buckets:   metrics.BatchSizeBuckets,
		}, []string{"kind"}))
		coalesced := coalesce.Config{Lanes: cfg.CoalesceLanes, MaxBatch: cfg.CoalesceMaxBatch, Logger: logger,
			Observe: func(kind string, n int) { batches.WithLabelValues(kind).Observe(float64(n)) }}
		c, p := coalesce.New(store, coalesced), coalesce.NewProduct(products, coalesced)
		// Closed after the server and the background loops have stopped
		// (deferred calls run last in, first out).
		defer c.Close()
		defer p.Close()
		orders, product = c, p
	}
	svc := ordering.New(orders, product, ordering.Config{
		SyncBudget:     cfg.SyncBudget,
		ProductTimeout: cfg.ProductTimeout,
		Logger:         logger,
		OutboxWritten:  relay.Wake,
	})
	worker := recovery.New(store, svc, recovery.Config{
		Interval:    cfg.RecoveryInterval,
		OrderBudget: cfg.SyncBudget,
		Logger:      logger,
	})
	srv := &http.Server{
		Handler: httpapi.New(httpapi.Config{
			Service:    svc,
			Catalog:    products,
			Readiness:  store,
			JWTSecret:  []byte(cfg.CustomerJWTSecret),
			Ops:        store,
			AdminToken: cfg.AdminToken,
			StuckAfter: cfg.StuckAfter,
			Wake:       func() { worker.Wake(); relay.Wake() },
			Reconciler: reconcile.New(products, store, reconcile.Config{}),
			Logger:     logger,
			Metrics:    reg,

			// The dashboard's figures and dead letters, and the storefront's
			// demo sign-in (local runs only).
			Activity:    store,
			DeadLetters: products,
			DemoToken:   cfg.StorefrontDemoToken,

			RateLimit:   cfg.RateLimit,
			RateWindow:  cfg.RateWindow,
			CORSOrigins: cfg.CORSOrigins,
		}),
		ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout:       15 * time.Second,
		// POST /orders may work for the whole sync budget and then store
		// the answer before it writes.
		WriteTimeout: cfg.SyncBudget + 15*time.Second,
		IdleTimeout:  2 * time.Minute,
		ErrorLog:     slog.NewLogLogger(logger.Handler(), slog.LevelWarn),
	}

	ln, err := (&net.ListenConfig{}).Listen(ctx, "tcp", cfg.HTTPAddr)
	if err != nil {
		return fmt.Errorf("listen on %s: %w", cfg.HTTPAddr, err)
	}
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()
	logger.Info("orderservice listening", "addr", ln.Addr().String())
	// The background loops stop after the server has drained (in-flight
	// work ends with its own deadlines); whatever they leave is claimed or
	// delivered again.
	bgCtx, stopBackground := context.WithCancel(context.WithoutCancel(ctx))
	var background sync.WaitGroup
	for _, run := range []func(context.Context){
		worker.Run,
		relay.Run,
		func(ctx context.Context) { results.Run(ctx, compensation.ResultHandler(store, logger)) },
	} {
		background.Add(1)
		go func() {
			defer background.Done()
			run(bgCtx)
		}()
	}
	defer func() {
		stopBackground()
		background.Wait()
	}()

	select {
	case err := <-served:
		return fmt.Errorf("serve: %w", err)
	case <-ctx.Done():
	}
	logger.Info("orderservice shutting down")
	shutdownCtx, cancelShutdown := context.WithTimeout(context.WithoutCancel(ctx), shutdownTimeout)
	defer cancelShutdown()
	if err := srv.Shutdown(shutdownCtx); err != nil {
		return fmt.Errorf("shutdown: %w", err)
	}
	if err := <-served; err != nil && !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("serve: %w", err)
	}
	logger.Info("orderservice stopped")
	return nil
}
