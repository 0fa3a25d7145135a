// Package chaos runs the whole system - two instances of each service, the
// embedded broker, MariaDB - with fault proxies in front of every link, drives
// it with a crowd of shoppers while scenarios inject faults, and then checks,
// with an oracle that reads both databases directly, that nothing was lost or
// applied twice.
package chaos

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"net"
	"path/filepath"
	"slices"
	"strconv"
	"time"

	"github.com/go-sql-driver/mysql"

	"github.com/stockfence/stockfence/e2e/faults"
	"github.com/stockfence/stockfence/e2e/stack"
	"github.com/stockfence/stockfence/shared/contract"
)

// Timings of the services under chaos: short, so faults turn into unknown
// outcomes quickly and the recovery worker looks often.
var serviceEnv = map[string]string{
	"PRODUCT_TIMEOUT":         "300ms",
	"ORDER_SYNC_BUDGET":       "2s",
	"RECOVERY_INTERVAL":       "200ms",
	"STUCK_AFTER":             "10s",
	"PRODUCT_MYSQL_MAX_CONNS": "8",
	"ORDER_MYSQL_MAX_CONNS":   "8",
}

// Config says where the environment runs.
type Config struct {
	// BinDir holds the built services; LogDir receives their logs.
	BinDir, LogDir string
	// ProductsDSN and OrdersDSN are the two databases (fresh ones).
	ProductsDSN, OrdersDSN string
	// Catalog is seeded at start.
	Catalog []contract.NewProduct
}

// Env is the running system and its fault points:
//
//	order[i] -> Gateways[i] (502 after forwarding) -> Links[i] (TCP) -> product[i]
//	order[*] -> OrdersDB (TCP) -> MariaDB;  product[*] -> ProductsDB (TCP) -> MariaDB
//	everyone -> Kafka (TCP) -> Broker (also stopped and started)
//
// The broker advertises the Kafka proxy's address, so every client
// connection goes through it; kfake advertises one address, so the link is
// one proxy shared by all four service instances.
type Env struct {
	Stack      *stack.Stack
	Broker     *stack.Broker
	Kafka      *faults.Proxy
	Orders     []*stack.Process
	Products   []*stack.Process
	Gateways   []*faults.BadGateway
	Links      []*faults.Proxy
	OrdersDB   *faults.Proxy
	ProductsDB *faults.Proxy
	Catalog    []contract.Product
	// ProductsData and OrdersData reach the databases directly, for the
	// oracle.
	ProductsData, OrdersData *sql.DB

	mariaDB string // the MariaDB server's address
	closers []func() error
}

// Start builds and starts the environment. Close stops it.
func Start(ctx context.Context, cfg Config) (env *Env, err error) {
	env = &Env{}
	defer func() {
		if err != nil {
			env.Close()
		}
	}()
	dsn, err := mysql.ParseDSN(cfg.ProductsDSN)
	if err != nil {
		return env, err
	}
	env.mariaDB = dsn.Addr
	if env.ProductsDB, err = dbProxy(env, "products-db", cfg.ProductsDSN); err != nil {
		return env, err
	}
	if env.OrdersDB, err = dbProxy(env, "orders-db", cfg.OrdersDSN); err != nil {
		return env, err
	}
	if err := env.kafka(cfg.LogDir); err != nil {
		return env, err
	}
	productPort, err := freePort()
	if err != nil {
		return env, err
	}
	gw, err := env.link(0, "127.0.0.1:"+strconv.Itoa(productPort))
	if err != nil {
		return env, err
	}
	productEnv := map[string]string{"PRODUCT_MYSQL_DSN": viaProxy(cfg.ProductsDSN, env.ProductsDB)}
	orderEnv := map[string]string{"PRODUCT_URL": gw.URL(), "ORDER_MYSQL_DSN": viaProxy(cfg.OrdersDSN, env.OrdersDB)}
	env.Stack, err = stack.Start(ctx, stack.Options{
		BinDir:       cfg.BinDir,
		LogDir:       cfg.LogDir,
		ProductsDSN:  cfg.ProductsDSN,
		OrdersDSN:    cfg.OrdersDSN,
		ProductPort:  productPort,
		KafkaBrokers: env.Kafka.Addr(),
		Env:          serviceEnv,
		ProductEnv:   productEnv,
		OrderEnv:     orderEnv,
	})
	if err != nil {
		return env, err
	}
	env.closers = append(env.closers, env.Stack.Stop)
	env.Products = append(env.Products, env.Stack.Product)
	env.Orders = append(env.Orders, env.Stack.Order)

	product2, err := env.Stack.StartProductInstance(ctx, "productservice-2", productEnv)
	if err != nil {
		return env, err
	}
	env.closers = append(env.closers, product2.Stop)
	env.Products = append(env.Products, product2)
	gw2, err := env.link(1, product2.URL[len("http://"):])
	if err != nil {
		return env, err
	}
	order2, err := env.Stack.StartOrderInstance(ctx, "orderservice-2", map[string]string{"PRODUCT_URL": gw2.URL()})
	if err != nil {
		return env, err
	}
	env.closers = append(env.closers, order2.Stop)
	env.Orders = append(env.Orders, order2)

	if env.ProductsData, err = sql.Open("mysql", cfg.ProductsDSN); err != nil {
		return env, err
	}
	if env.OrdersData, err = sql.Open("mysql", cfg.OrdersDSN); err != nil {
		return env, err
	}
	env.closers = append(env.closers, env.ProductsData.Close, env.OrdersData.Close)
	if env.Catalog, err = stack.Seed(ctx, env.Stack.ProductURL, env.Stack.AdminToken, cfg.Catalog); err != nil {
		return env, err
	}
	return env, nil
}

// link builds order instance i's way to a product service at addr: a TCP
// fault proxy, and in front of it a 502-after-forwarding proxy.
func (env *Env) link(i int, addr string) (*faults.BadGateway, error) {
	p, err := faults.NewProxy(fmt.Sprintf("product-link-%d", i), addr)
	if err != nil {
		return nil, err
	}
	env.closers = append(env.closers, p.Close)
	gw, err := faults.NewBadGateway(p.URL())
	if err != nil {
		return nil, err
	}
	env.closers = append(env.closers, gw.Close)
	env.Links = append(env.Links, p)
	env.Gateways = append(env.Gateways, gw)
	return gw, nil
}

// kafka starts the broker, with its data in dir/kafka, behind the Kafka
// link proxy.
func (env *Env) kafka(dir string) error {
	b, err := stack.StartBroker(filepath.Join(dir, "kafka"), 0)
	if err != nil {
		return err
	}
	env.Broker = b
	env.closers = append(env.closers, b.Close)
	if env.Kafka, err = faults.NewProxy("kafka-link", b.Addr()); err != nil {
		return err
	}
	env.closers = append(env.closers, env.Kafka.Close)
	return b.Advertise(env.Kafka.Addr())
}

func dbProxy(env *Env, name, dsn string) (*faults.Proxy, error) {
	cfg, err := mysql.ParseDSN(dsn)
	if err != nil {
		return nil, err
	}
	p, err := faults.NewProxy(name, cfg.Addr)
	if err != nil {
		return nil, err
	}
	env.closers = append(env.closers, p.Close)
	return p, nil
}

// viaProxy returns dsn with its server address replaced by the proxy's.
func viaProxy(dsn string, p *faults.Proxy) string {
	cfg, _ := mysql.ParseDSN(dsn) // parsed once already by dbProxy
	cfg.Addr = p.Addr()
	return cfg.FormatDSN()
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// Heal removes every fault: links and databases clean and up, no 502s, the
// broker running, every service process running again.
func (env *Env) Heal(ctx context.Context) error {
	var errs []error
	for _, p := range slices.Concat(env.Links, []*faults.Proxy{env.OrdersDB, env.ProductsDB, env.Kafka}) {
		errs = append(errs, p.Up(), p.Clear())
	}
	for _, gw := range env.Gateways {
		gw.Heal()
	}
	errs = append(errs, env.Broker.Start())
	for _, p := range slices.Concat(env.Products, env.Orders) {
		if !p.Running() {
			errs = append(errs, p.Restart(ctx))
		}
	}
	return errors.Join(errs...)
}

// Close stops everything, last started first.
func (env *Env) Close() error {
	var errs []error
	for i := len(env.closers) - 1; i >= 0; i-- {
		errs = append(errs, env.closers[i]())
	}
	return errors.Join(errs...)
}

// waitFor polls cond every 50 ms until it holds or d passes.
func waitFor(ctx context.Context, d time.Duration, cond func() (bool, error)) (time.Duration, error) {
	start := time.Now()
	for {
		ok, err := cond()
		if err != nil {
			return time.Since(start), err
		}
		if ok {
			return time.Since(start), nil
		}
		if time.Since(start) > d {
			return time.Since(start), fmt.Errorf("not within %v", d)
		}
		select {
		case <-ctx.Done():
			return time.Since(start), ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
	}
}
