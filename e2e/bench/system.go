package bench

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"net/http"
	"path/filepath"
	"strconv"
	"time"

	"github.com/stockfence/stockfence/e2e/stack"
	"github.com/stockfence/stockfence/shared/contract"
)

// Coalescing modes: both services' PRODUCT_COALESCE and ORDER_COALESCE.
const (
	modeOff = "off"
	modeOn  = "on"
)

// tokenTTL is how long the shoppers' tokens are valid: longer than any run.
const tokenTTL = 6 * time.Hour

// system is both services, restarted for one scenario run on a fresh pair
// of databases.
type system struct {
	*stack.Stack
	r        *runner
	products string // database names
	orders   string
	client   *http.Client
	tokens   []string // one customer per shopper
}

// freshDB creates an empty database named prefix_<random> and returns its
// name. The name is new, so nothing of an earlier run can be in it.
func (r *runner) freshDB(ctx context.Context, prefix string) (string, error) {
	b := make([]byte, 6)
	_, _ = rand.Read(b) // never fails: crypto/rand crashes the program instead
	name := prefix + "_" + hex.EncodeToString(b)
	// The name is ours (letters, digits, underscores), so quoting is safe.
	if _, err := r.admin.ExecContext(ctx, "CREATE DATABASE `"+name+"` CHARACTER SET utf8mb4 COLLATE utf8mb4_bin"); err != nil {
		return "", fmt.Errorf("create database %s: %w", name, err)
	}
	return name, nil
}

// dropDB drops a database made by freshDB, even when ctx has ended.
func (r *runner) dropDB(ctx context.Context, name string) error {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Minute)
	defer cancel()
	if _, err := r.admin.ExecContext(ctx, "DROP DATABASE IF EXISTS `"+name+"`"); err != nil {
		return fmt.Errorf("drop database %s: %w", name, err)
	}
	return nil
}

// startSystem creates two fresh databases and starts both services on them
// with PRODUCT_COALESCE=mode and ORDER_COALESCE=mode, logging to <workDir>/<dir>. Shoppers get
// customer tokens of their own.
func (r *runner) startSystem(ctx context.Context, dir, mode string, shoppers int) (*system, error) {
	products, err := r.freshDB(ctx, "bench_products")
	if err != nil {
		return nil, err
	}
	orders, err := r.freshDB(ctx, "bench_orders")
	if err != nil {
		return nil, errors.Join(err, r.dropDB(ctx, products))
	}
	s, err := stack.Start(ctx, stack.Options{
		BinDir:      r.binDir,
		ProductsDSN: r.dsn(products),
		OrdersDSN:   r.dsn(orders),
		LogDir:      filepath.Join(r.workDir, dir),
		ProductEnv: map[string]string{
			"PRODUCT_COALESCE":           mode,
			"PRODUCT_COALESCE_LANES":     strconv.Itoa(r.lanes),
			"PRODUCT_COALESCE_MAX_BATCH": strconv.Itoa(r.maxBatch),
		},
		OrderEnv: map[string]string{
			"ORDER_COALESCE":           mode,
			"ORDER_COALESCE_LANES":     strconv.Itoa(r.lanes),
			"ORDER_COALESCE_MAX_BATCH": strconv.Itoa(r.maxBatch),
		},
	})
	if err != nil {
		return nil, errors.Join(err, r.dropDB(ctx, products), r.dropDB(ctx, orders))
	}
	sys := &system{Stack: s, r: r, products: products, orders: orders, client: newClient(shoppers)}
	sys.tokens = make([]string, shoppers)
	for i := range sys.tokens {
		sys.tokens[i] = s.CustomerToken(fmt.Sprintf("bench-shopper-%04d", i), tokenTTL)
	}
	return sys, nil
}

// close stops both services and drops both databases, reporting every
// problem.
func (s *system) close(ctx context.Context) error {
	s.client.CloseIdleConnections()
	return errors.Join(s.Stop(), s.r.dropDB(ctx, s.products), s.r.dropDB(ctx, s.orders))
}

// seed creates the products through the product service's API.
func (s *system) seed(ctx context.Context, products []contract.NewProduct) ([]contract.Product, error) {
	return stack.Seed(ctx, s.ProductURL, s.AdminToken, products)
}

// newClient returns a client whose transport keeps a connection per
// shopper, so no request waits for a connection or pays for a new one once
// the crowd has connected.
func newClient(shoppers int) *http.Client {
	return &http.Client{
		Timeout: time.Minute,
		Transport: &http.Transport{
			DialContext:         (&net.Dialer{Timeout: 5 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
			MaxIdleConns:        2*shoppers + 16,
			MaxIdleConnsPerHost: shoppers + 16,
			IdleConnTimeout:     2 * time.Minute,
			DisableCompression:  true,
		},
	}
}
