// Command productservice serves the catalog and the stock: reservations that
// take every item of an order in one transaction, logged per attempt so that
// an unknown outcome can always be resolved, and the compensations that give
// stock back, consumed from Kafka.
package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/stockfence/stockfence/productservice/internal/coalesce"
	"github.com/stockfence/stockfence/productservice/internal/compensation"
	"github.com/stockfence/stockfence/productservice/internal/httpapi"
	"github.com/stockfence/stockfence/productservice/internal/mysql"
	"github.com/stockfence/stockfence/shared/contract"
	"github.com/stockfence/stockfence/shared/kafkaclient"
	"github.com/stockfence/stockfence/shared/metrics"
	"github.com/stockfence/stockfence/shared/mysqldb"
	"github.com/stockfence/stockfence/shared/pprofserver"
	schema "github.com/stockfence/stockfence/sql"
)

const (
	// drainTimeout bounds the graceful shutdown.
	drainTimeout = 10 * time.Second
	// deliveryTimeout bounds the delivery of one published message (a
	// compensation result, a dead letter); the handler retries after it.
	deliveryTimeout = 30 * time.Second
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	logger := slog.New(slog.NewJSONHandler(os.Stderr, nil)).With("service", "productservice")
	if err := run(ctx, logger, os.Getenv); err != nil {
		logger.Error("exit", "err", err)
		os.Exit(1)
	}
}

// run builds the service from the environment and serves until ctx is done.
func run(ctx context.Context, logger *slog.Logger, getenv func(string) string) error {
	cfg, err := parseConfig(getenv)
	if err != nil {
		return fmt.Errorf("configuration: %w", err)
	}
	logger.Info("configuration", "config", cfg)
	pprofserver.Start(ctx, cfg.PprofAddr, logger)

	startCtx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	db, err := mysqldb.Open(startCtx, cfg.MySQLDSN, cfg.MySQLMaxConns)
	if err != nil {
		return err
	}
	defer db.Close()
	if err := schema.Apply(startCtx, db, schema.Products); err != nil {
		return err
	}

	store := mysql.New(db)

	// librdkafka connects in the background and reconnects by itself, so
	// neither client fails here when Kafka is down: reservations are served
	// meanwhile and compensations wait in their topic.
	producer, err := kafkaclient.NewProducer(cfg.KafkaBrokers, "productservice", deliveryTimeout, logger)
	if err != nil {
		return err
	}
	consumer, err := kafkaclient.NewConsumer(cfg.KafkaBrokers, compensation.Group, []string{contract.TopicCompensations}, logger)
	if err != nil {
		producer.Close(0)
		return err
	}
	reg := metrics.NewRegistry()
	metrics.ConsumerLag(reg, compensation.Group, consumer)
	compensations := compensation.NewHandler(compensation.Config{Store: store, Publisher: producer, Logger: logger, Metrics: reg})
	replayer := compensation.NewReplayer(compensation.ReplayConfig{Brokers: cfg.KafkaBrokers, Publisher: producer, Logger: logger, Metrics: reg})
	consumeCtx, stopConsuming := context.WithCancel(context.WithoutCancel(ctx))
	defer stopConsuming()
	consumed := make(chan struct{})
	go func() {
		defer close(consumed)
		consumer.Run(consumeCtx, compensations.Handle)
	}()
	probed := make(chan struct{})
	go func() {
		defer close(probed)
		probeKafka(consumeCtx, logger, replayer, cfg.KafkaBrokers)
	}()

	var reservations httpapi.Store = store
	if cfg.Coalesce {
		batches := metrics.Register(reg, prometheus.NewHistogram(prometheus.HistogramOpts{
			Namespace: metrics.Namespace,
			Name:      "reservation_batch_size",
			Help:      "Reservations applied per coalesced transaction.",
			Buckets:   metrics.BatchSizeBuckets,
		}))
		c := coalesce.New(store, coalesce.Config{Lanes: cfg.CoalesceLanes, MaxBatch: cfg.CoalesceMaxBatch, Logger: logger,
			Observe: func(n int) { batches.Observe(float64(n)) }})
		defer c.Close()
		reservations = coalesce.Store{Store: store, Coalescer: c}
	}
	handler := httpapi.New(httpapi.Config{
		Store:        reservations,
		Logger:       logger,
		ServiceToken: cfg.ServiceToken,
		AdminToken:   cfg.AdminToken,
		DeadLetters:  replayer,
		Metrics:      reg,
		Ready: func(ctx context.Context) error {
			ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
			defer cancel()
			current, err := schema.Current(ctx, db, schema.Products)
			if err != nil {
				return fmt.Errorf("database: %w", err)
			}
			if !current {
				return errors.New("migrations pending")
			}
			return nil
		},
	})
	srv := &http.Server{
		Addr:              cfg.HTTPAddr,
		Handler:           handler,
		ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout:       10 * time.Second,
		WriteTimeout:      30 * time.Second,
		IdleTimeout:       2 * time.Minute,
	}
	errc := make(chan error, 1)
	go func() {
		logger.Info("listening", "addr", cfg.HTTPAddr)
		errc <- srv.ListenAndServe()
	}()
	var serveErr error
	select {
	case err := <-errc:
		serveErr = fmt.Errorf("serve: %w", err)
	case <-ctx.Done():
	}
	logger.Info("shutting down")
	drainCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), drainTimeout)
	defer cancel()
	return errors.Join(serveErr, drain(drainCtx, logger, srv, replayer, stopConsuming, consumed, probed, producer))
}

// drain stops taking work and finishes what is in flight within ctx: the
// HTTP server (a DLQ replay is cut short), then the consumer, which leaves
// the message it is on uncommitted if it cannot finish it (it is delivered
// again and applying it again changes nothing), then the producer, flushed.
func drain(ctx context.Context, logger *slog.Logger, srv *http.Server, replayer *compensation.Replayer,
	stopConsuming context.CancelFunc, consumed, probed <-chan struct{}, producer *kafkaclient.Producer) error {
	replayer.Close()
	var errs []error
	if err := srv.Shutdown(ctx); err != nil {
		errs = append(errs, fmt.Errorf("http shutdown: %w", err))
	}
	stopConsuming()
	for what, done := range map[string]<-chan struct{}{"kafka consumer": consumed, "kafka probe": probed} {
		select {
		case <-done:
		case <-ctx.Done():
			errs = append(errs, fmt.Errorf("%s did not stop in time", what))
		}
	}
	flush := time.Second
	if dl, ok := ctx.Deadline(); ok {
		flush = max(time.Until(dl), 100*time.Millisecond)
	}
	producer.Close(flush)
	if len(errs) == 0 {
		logger.Info("stopped")
	}
	return errors.Join(errs...)
}

// probeKafka logs whether Kafka answers within 3 s of the start. The service
// runs either way; this only makes an outage visible at once. It asks in
// short tries because a Kafka request cannot be cancelled, and shutdown
// waits for the probe.
func probeKafka(ctx context.Context, logger *slog.Logger, dlq *compensation.Replayer, brokers string) {
	const try = 500 * time.Millisecond
	giveUp := time.Now().Add(3 * time.Second)
	for {
		next := time.Now().Add(try)
		tryCtx, cancel := context.WithDeadline(ctx, next)
		n, err := dlq.Pending(tryCtx)
		cancel()
		if err == nil {
			logger.Info("kafka reachable", "brokers", brokers, "deadLetters", n)
			return
		}
		if time.Now().After(giveUp) {
			logger.Warn("kafka unreachable at start; reservations are served, compensations are applied once it answers",
				"brokers", brokers, "err", err)
			return
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(time.Until(next)):
		}
	}
}
