// Command stack runs the whole system locally for `make run`: it makes sure
// MariaDB is up, starts an embedded Kafka broker, builds both services,
// starts them on the contract's default ports with the databases products
// and orders, seeds a flash-sale catalog and prints the URLs, tokens and curl
// commands to try it. Ctrl-C stops both services cleanly, then the broker.
// The storefront at / signs the demo shopper in by itself: the launcher
// mints that customer's token and hands it to the order service as
// STOREFRONT_DEMO_TOKEN (a local-only setting).
//
// The broker listens on 127.0.0.1:9092 and keeps its topics, messages and
// consumer offsets in <repo>/.run/kafka, so they survive a restart. With
// KAFKA_BROKERS set in the environment, no broker is started and both
// services use that Kafka instead.
//
// Tokens are kept in <repo>/.run/secrets.json so they survive a restart;
// logs go to <repo>/.run/logs/.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"
	"time"

	"github.com/go-sql-driver/mysql"

	"github.com/stockfence/stockfence/e2e/stack"
	"github.com/stockfence/stockfence/shared/contract"
)

// demoCustomer is the customer the printed token belongs to.
const demoCustomer = "demo-shopper"

// errInterrupted reports a Ctrl-C during start-up, after which there is
// nothing to explain: whatever had started is stopped again.
var errInterrupted = errors.New("interrupted")

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	err := run(ctx, os.Args[1:], os.Getenv, os.Stdout)
	switch {
	case err == nil, errors.Is(err, flag.ErrHelp):
	case errors.Is(err, errInterrupted):
		fmt.Fprintln(os.Stderr, "stack: interrupted")
		os.Exit(130)
	default:
		fmt.Fprintln(os.Stderr, "stack:", err)
		os.Exit(1)
	}
}

// config is what the flags and the environment choose.
type config struct {
	productPort, orderPort int
	mariadb                string
	productsDB, ordersDB   string
	// kafkaBrokers is an external Kafka (KAFKA_BROKERS); empty means the
	// embedded broker on kafkaPort.
	kafkaBrokers string
	kafkaPort    int
}

func run(ctx context.Context, args []string, getenv func(string) string, out io.Writer) error {
	cfg := config{kafkaBrokers: getenv("KAFKA_BROKERS")}
	fs := flag.NewFlagSet("stack", flag.ContinueOnError)
	fs.IntVar(&cfg.productPort, "product-port", 8081, "port of the product service on 127.0.0.1")
	fs.IntVar(&cfg.orderPort, "order-port", 8080, "port of the order service on 127.0.0.1")
	fs.IntVar(&cfg.kafkaPort, "kafka-port", 9092, "port of the embedded Kafka broker on 127.0.0.1 (unused when KAFKA_BROKERS is set)")
	fs.StringVar(&cfg.mariadb, "mysql", stack.DefaultMariaDBAddr, "address of the MariaDB/MySQL server (user root, no password)")
	fs.StringVar(&cfg.productsDB, "products-db", "products", "database of the product service")
	fs.StringVar(&cfg.ordersDB, "orders-db", "orders", "database of the order service")
	if err := fs.Parse(args); err != nil {
		return err
	}
	root, err := stack.RepoRoot()
	if err != nil {
		return err
	}
	secretsPath := filepath.Join(root, ".run", "secrets.json")

	l, catalog, err := up(ctx, out, root, secretsPath, cfg)
	if err != nil {
		if ctx.Err() != nil {
			return errInterrupted
		}
		return err
	}
	// The storefront signs the shopper in with the demo token; the banner
	// prints the same one for curl.
	expires := time.Now().Add(stack.DemoTokenTTL)
	printBanner(out, l, catalog, l.stack.DemoToken, expires, secretsPath)

	select {
	case <-ctx.Done():
		fmt.Fprintln(out, "\nstack: stopping the services")
		if err := l.stop(out); err != nil {
			return err
		}
		fmt.Fprintln(out, "stack: stopped")
		return nil
	case <-l.stack.Product.Done():
		return exitedEarly(out, l, l.stack.Product)
	case <-l.stack.Order.Done():
		return exitedEarly(out, l, l.stack.Order)
	}
}

// local is what `make run` runs: the services and, unless KAFKA_BROKERS
// named another Kafka, the embedded broker.
type local struct {
	stack  *stack.Stack
	broker *stack.Broker // nil with an external Kafka
	// kafkaData is the broker's data directory.
	kafkaData string
}

// stop stops the services first, so that they can flush to Kafka while
// draining, then the broker.
func (l *local) stop(out io.Writer) error {
	err := l.stack.Stop()
	if l.broker != nil {
		fmt.Fprintln(out, "stack: stopping the Kafka broker")
		err = errors.Join(err, l.broker.Close())
	}
	return err
}

// up brings MariaDB, Kafka, the binaries and both services up and seeds the
// demo catalog. On error, nothing it started is left running (MariaDB
// excepted).
func up(ctx context.Context, out io.Writer, root, secretsPath string, cfg config) (_ *local, _ []contract.Product, err error) {
	fmt.Fprintf(out, "stack: checking MariaDB at %s (starting it if needed)\n", cfg.mariadb)
	if err := stack.EnsureMariaDB(ctx, cfg.mariadb); err != nil {
		return nil, nil, err
	}
	l := &local{kafkaData: filepath.Join(root, ".run", "kafka")}
	kafkaBrokers := cfg.kafkaBrokers
	if kafkaBrokers == "" {
		fmt.Fprintf(out, "stack: starting the Kafka broker on 127.0.0.1:%d (data in %s)\n", cfg.kafkaPort, l.kafkaData)
		if l.broker, err = stack.StartBroker(l.kafkaData, cfg.kafkaPort); err != nil {
			return nil, nil, err
		}
		kafkaBrokers = l.broker.Addr()
		defer func() {
			if err != nil {
				err = errors.Join(err, l.broker.Close())
			}
		}()
	} else {
		fmt.Fprintf(out, "stack: using the Kafka at %s (KAFKA_BROKERS)\n", kafkaBrokers)
	}
	fmt.Fprintln(out, "stack: building bin/productservice and bin/orderservice")
	binDir, err := stack.Build(ctx, root)
	if err != nil {
		return nil, nil, err
	}
	secrets, err := loadSecrets(secretsPath)
	if err != nil {
		return nil, nil, err
	}
	logDir := filepath.Join(root, ".run", "logs")
	fmt.Fprintf(out, "stack: starting the services (logs in %s)\n", logDir)
	s, err := stack.Start(ctx, stack.Options{
		BinDir:       binDir,
		ProductsDSN:  dsn(cfg.mariadb, cfg.productsDB),
		OrdersDSN:    dsn(cfg.mariadb, cfg.ordersDB),
		ProductPort:  cfg.productPort,
		OrderPort:    cfg.orderPort,
		LogDir:       logDir,
		AdminToken:   secrets.AdminToken,
		ServiceToken: secrets.ServiceToken,
		JWTSecret:    secrets.CustomerJWTSecret,
		KafkaBrokers: kafkaBrokers,
		DemoCustomer: demoCustomer,
		RateLimited:  true,
	})
	if err != nil {
		return nil, nil, err
	}
	l.stack = s
	catalog, err := stack.Seed(ctx, s.ProductURL, s.AdminToken, demoCatalog())
	if err != nil {
		return nil, nil, errors.Join(err, s.Stop())
	}
	return l, catalog, nil
}

// exitedEarly reports a service that died while the stack was up, stopping
// the other one and the broker.
func exitedEarly(out io.Writer, l *local, p *stack.Process) error {
	err := fmt.Errorf("%s exited unexpectedly; log %s ends with:\n%s", p.Name, p.LogPath, p.Tail(30))
	return errors.Join(err, l.stop(out))
}

func dsn(addr, db string) string {
	cfg := mysql.NewConfig()
	cfg.User = "root"
	cfg.Net = "tcp"
	cfg.Addr = addr
	cfg.DBName = db
	cfg.ParseTime = true
	return cfg.FormatDSN()
}

// demoCatalog is a flash sale: one item scarce enough that a handful of orders
// sells it out, the rest with room to play.
func demoCatalog() []contract.NewProduct {
	return []contract.NewProduct{
		{SKU: "FLASH-SNEAKER-LTD", Name: "Aurora Runner limited sneakers (5 pairs only)", PriceCents: 8900, Stock: 5},
		{SKU: "FLASH-HEADPHONES", Name: "Nimbus noise-cancelling headphones", PriceCents: 12900, Stock: 40},
		{SKU: "FLASH-SMARTWATCH", Name: "Pulse smartwatch, midnight edition", PriceCents: 15900, Stock: 25},
		{SKU: "FLASH-CONSOLE", Name: "Pocket retro handheld console", PriceCents: 6900, Stock: 60},
		{SKU: "FLASH-BACKPACK", Name: "Transit commuter backpack", PriceCents: 4900, Stock: 120},
		{SKU: "FLASH-MUG", Name: "Doorbuster espresso mug", PriceCents: 990, Stock: 500},
	}
}

func printBanner(out io.Writer, l *local, catalog []contract.Product, customerToken string, expires time.Time, secretsPath string) {
	s := l.stack
	scarce := catalog[0] // the flash-sale item: a few orders sell it out
	kafka := s.KafkaBrokers + " (external, from KAFKA_BROKERS)"
	if l.broker != nil {
		kafka = fmt.Sprintf("%s (embedded; data in %s, kept across restarts)", l.broker.Addr(), l.kafkaData)
	}
	fmt.Fprintf(out, `
stockfence is running. Ctrl-C stops it.

  storefront       %[1]s/  (signed in as %[7]q)
  ops dashboard    %[1]s/ops/  (sign in with the admin token)

  order service    %[1]s
  product service  %[2]s
  kafka            %[9]s
  logs             %[3]s
  tokens           %[4]s (kept across restarts)

  admin token      %[5]s
  customer token   %[6]s
                   (customer %[7]q, valid until %[8]s)

catalog:
`, s.OrderURL, s.ProductURL, s.LogDir, secretsPath, s.AdminToken, customerToken, demoCustomer, expires.Format(time.RFC3339), kafka)
	for _, p := range catalog {
		fmt.Fprintf(out, "  id %-3d %-18s %-48s %7.2f  stock %d\n", p.ID, p.SKU, p.Name, float64(p.PriceCents)/100, p.Stock)
	}
	fmt.Fprintf(out, `
try it (paste into a shell):

  export ORDER_URL=%[1]s PRODUCT_URL=%[5]s
  export ADMIN_TOKEN=%[2]s
  export CUSTOMER_TOKEN=%[3]s

  # list the catalog
  curl -s "$ORDER_URL/catalog"

  # place an order; the same Idempotency-Key again returns the same order
  curl -s -X POST "$ORDER_URL/orders" \
    -H "Authorization: Bearer $CUSTOMER_TOKEN" \
    -H "Idempotency-Key: demo-order-1" \
    -H "Content-Type: application/json" \
    -d '{"items":[{"productId":%[4]d,"quantity":1}]}'

  # get the order: ORDER_ID is the orderId of the answer above
  curl -s "$ORDER_URL/orders/ORDER_ID" -H "Authorization: Bearer $CUSTOMER_TOKEN"

  # your orders, newest first
  curl -s "$ORDER_URL/orders" -H "Authorization: Bearer $CUSTOMER_TOKEN"

  # sold out? restock the flash-sale item (admin)
  curl -s -X POST "$PRODUCT_URL/products/%[4]d/restock" \
    -H "Authorization: Bearer $ADMIN_TOKEN" \
    -H "Content-Type: application/json" \
    -d '{"quantity":5}'

`, s.OrderURL, s.AdminToken, customerToken, scarce.ID, s.ProductURL)
}
