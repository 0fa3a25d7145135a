// Command dbup makes sure the local MariaDB answers, starting it if it does
// not, for `make db` and `make test`, and makes room for the connections of
// the tests that run in parallel. It exits non-zero, saying how to start
// the server by hand, when it cannot.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/stockfence/stockfence/e2e/stack"
)

func main() {
	addr := flag.String("addr", stack.DefaultMariaDBAddr, "address of the MariaDB server (user root, no password)")
	conns := flag.Int("min-connections", 500, "raise max_connections to at least this (the tests run many pools at once)")
	flag.Parse()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := stack.EnsureMariaDB(ctx, *addr); err != nil {
		fmt.Fprintln(os.Stderr, "dbup:", err)
		os.Exit(1)
	}
	n, err := stack.EnsureMaxConnections(ctx, *addr, *conns)
	if err != nil {
		fmt.Fprintln(os.Stderr, "dbup:", err)
		os.Exit(1)
	}
	fmt.Printf("dbup: MariaDB answers at %s (max_connections %d)\n", *addr, n)
}
