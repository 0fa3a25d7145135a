// Command bench is `make bench`: it runs the flash-sale benchmark of package
// e2e/bench (real services on loopback, fresh databases per run, a database
// floor measured alongside), prints progress each second to stderr and a
// summary table to stdout, and writes docs/benchmarks.md with its chart
// docs/img/bench.png.
//
//	bench [-quick] [-only=1,2,5] [-out=docs/benchmarks.md]
//
// -quick runs small counts as a smoke test and writes no docs unless -out
// is given. The exit status is 1 when a correctness check failed, after the
// table and the docs are written.
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
	"strings"
	"syscall"
	"time"

	"github.com/stockfence/stockfence/e2e/bench"
	"github.com/stockfence/stockfence/e2e/stack"
)

// defaultOut is where a full run writes its report, relative to the
// repository root.
const defaultOut = "docs/benchmarks.md"

// errChecksFailed reports a run whose correctness checks did not all hold.
var errChecksFailed = errors.New("some correctness checks failed")

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	err := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	switch {
	case err == nil, errors.Is(err, flag.ErrHelp):
	default:
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("bench", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var (
		cfg  bench.Config
		only string
		out  string
	)
	fs.BoolVar(&cfg.Quick, "quick", false, "small counts for a smoke test; writes no docs unless -out is given")
	fs.StringVar(&only, "only", "all", "comma-separated scenarios to run, from 1 to 5")
	fs.StringVar(&out, "out", "", "path of the markdown report, its chart going to img/bench.png beside it (default "+defaultOut+", none with -quick)")
	fs.BoolVar(&cfg.CoalescedOnly, "coalesced-only", false, "skip the one-at-a-time runs of scenarios 1 and 2")
	fs.IntVar(&cfg.Shoppers, "shoppers", 0, "concurrent shoppers in scenarios 1 to 3 (default 1000, 100 with -quick)")
	fs.IntVar(&cfg.Lanes, "lanes", 2, "PRODUCT_COALESCE_LANES and ORDER_COALESCE_LANES, and the connections of the batched database floor")
	fs.IntVar(&cfg.MaxBatch, "max-batch", 200, "PRODUCT_COALESCE_MAX_BATCH and ORDER_COALESCE_MAX_BATCH")
	fs.DurationVar(&cfg.FloorDuration, "floor-duration", 0, "how long each database floor runs (default 10s, 2s with -quick)")
	fs.StringVar(&cfg.Server, "mysql", bench.DefaultServer, "DSN of the MariaDB/MySQL server, without a database")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	sel, err := bench.ParseSelection(only)
	if err != nil {
		return fmt.Errorf("-only: %w", err)
	}
	cfg.Only = sel
	cfg.Progress = stderr
	if out == "" && !cfg.Quick {
		root, err := stack.RepoRoot()
		if err != nil {
			return err
		}
		out = filepath.Join(root, defaultOut)
	}

	rep, err := bench.Run(ctx, cfg)
	if rep == nil {
		return err
	}
	fmt.Fprintf(stdout, "\n%s\n", rep.Table())
	if rep.LogDir != "" {
		fmt.Fprintf(stdout, "services' logs kept in %s\n", rep.LogDir)
	}
	if err != nil {
		// Interrupted: a partial run is not worth a report.
		return err
	}
	if out != "" {
		if err := bench.WriteDocs(out, rep, command(args)); err != nil {
			return err
		}
		fmt.Fprintf(stdout, "wrote %s and %s (%s)\n", out, filepath.Join(filepath.Dir(out), bench.ChartFile),
			rep.Elapsed.Round(time.Second))
	}
	if !rep.OK() {
		return errChecksFailed
	}
	return nil
}

// command is how the report says it was produced: `make bench`, with the
// flags given if any.
func command(args []string) string {
	if len(args) == 0 {
		return "make bench"
	}
	return fmt.Sprintf("make bench BENCH_FLAGS=%q", strings.Join(args, " "))
}
