// Package bench is the flash-sale benchmark behind `make bench`: it runs the
// real service binaries on loopback (through e2e/stack) against fresh
// databases, drives them with a crowd of concurrent shoppers, records every
// latency in an HdrHistogram, checks the outcome against the databases (no
// oversell, exact counts, ledger = stock, confirmed orders = applied
// attempts), and measures the database's own floor with database/sql and the
// product service's SQL, so that every result can be read as a fraction of
// what the hot row allows at all.
//
// The scenarios:
//
//  1. end to end, one hot product: POST /orders, stock for half the orders,
//     PRODUCT_COALESCE off and on;
//  2. the same load against the product service alone (POST /reservations);
//  3. 5-line orders over 100 products: (a) one reserve call per line,
//     (b) one call with 5 lines, (c) end to end;
//  4. one order at a time, end to end: the latency floor;
//  5. the database floor: (a) one transaction per reservation, exactly as
//     the product service's Store.Reserve runs it, (b) the batched
//     statements of Store.ReserveBatch, 100 reservations per transaction.
//
// Shoppers are a closed loop: each sends its next request when the previous
// one has a definite answer, so a latency is the time one shopper waited
// (including polling a 202 PENDING order until it settles and retrying a 503
// after Retry-After), and throughput is what that many shoppers got.
package bench

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/go-sql-driver/mysql"

	"github.com/stockfence/stockfence/e2e/stack"
)

// Scenario numbers, as -only names them.
const (
	ScenarioHotEndToEnd = 1
	ScenarioHotProduct  = 2
	ScenarioMultiLine   = 3
	ScenarioSequential  = 4
	ScenarioDBFloor     = 5
)

// AllScenarios lists every scenario in the order they run.
var AllScenarios = []int{ScenarioHotEndToEnd, ScenarioHotProduct, ScenarioMultiLine, ScenarioSequential, ScenarioDBFloor}

// Selection is a set of scenario numbers.
type Selection []int

// ParseSelection reads a comma-separated list of scenario numbers (1 to 5),
// as -only takes it. Empty or "all" selects every scenario. The result is
// sorted and without duplicates.
func ParseSelection(s string) (Selection, error) {
	s = strings.TrimSpace(s)
	if s == "" || s == "all" {
		return slices.Clone(AllScenarios), nil
	}
	var sel Selection
	for _, part := range strings.Split(s, ",") {
		part = strings.TrimSpace(part)
		n, err := strconv.Atoi(part)
		if err != nil || !slices.Contains(AllScenarios, n) {
			return nil, fmt.Errorf("scenario %q: want a number from 1 to %d", part, len(AllScenarios))
		}
		if !slices.Contains(sel, n) {
			sel = append(sel, n)
		}
	}
	slices.Sort(sel)
	return sel, nil
}

// Has reports whether scenario n is selected.
func (s Selection) Has(n int) bool { return slices.Contains(s, n) }

// String returns the selection as ParseSelection reads it.
func (s Selection) String() string {
	parts := make([]string, len(s))
	for i, n := range s {
		parts[i] = strconv.Itoa(n)
	}
	return strings.Join(parts, ",")
}

// Config chooses what Run measures and how.
type Config struct {
	// Quick runs the smoke-test profile (2,000 hot orders, 100 shoppers,
	// 2 s database floors) instead of the full one.
	Quick bool
	// Only is the scenarios to run; nil runs all of them.
	Only Selection
	// Shoppers overrides the profile's number of concurrent shoppers in
	// scenarios 1 to 3 when positive.
	Shoppers int
	// CoalescedOnly skips the one-at-a-time runs of scenarios 1 and 2 (to
	// profile the coalesced path, say).
	CoalescedOnly bool
	// Lanes and MaxBatch are both services' *_COALESCE_LANES and
	// *_COALESCE_MAX_BATCH; zero means 4 and 200 (their defaults).
	// Lanes is also the number of connections of the batched floor (5b).
	Lanes, MaxBatch int
	// FloorDuration overrides how long each database floor runs when
	// positive.
	FloorDuration time.Duration
	// Server is a go-sql-driver DSN of the MariaDB/MySQL server without a
	// database, e.g. "root@tcp(127.0.0.1:3306)/"; empty means that one.
	// Every scenario run creates its own databases there and drops them.
	Server string
	// BinDir holds the service binaries; empty means build them into
	// <repo>/bin with stack.Build.
	BinDir string
	// Progress receives a line per second while a scenario runs (os.Stderr
	// for the command); nil discards it.
	Progress io.Writer
}

// DefaultServer is the server Config.Server defaults to.
const DefaultServer = "root@tcp(127.0.0.1:3306)/"

// profile is the size of every scenario.
type profile struct {
	shoppers int
	// Scenarios 1 and 2: orders of one unit of one product with stock for
	// hotStock of them, after hotWarmup unmeasured ones (with stock of
	// their own).
	hotOrders, hotStock, hotWarmup int
	// Scenario 3: multiOrders orders of multiLines distinct products out
	// of multiProducts, each product with multiStock units.
	multiOrders, multiProducts, multiLines int
	multiStock                             int64
	// settleAlone is how long a run waits after its load for unsettled
	// orders to settle by themselves before it asks for rechecks.
	settleAlone time.Duration
	// Scenario 4: seqWarmup unmeasured orders, then seqOrders measured.
	seqWarmup, seqOrders int
	// Scenario 5: floorConns goroutines of single reservations and
	// lanes goroutines of floorBatch reservations, each for floorDuration.
	floorDuration time.Duration
	floorConns    int
	floorBatch    int
	floorStock    int64
}

func fullProfile() profile {
	return profile{
		shoppers:  1000,
		hotOrders: 20_000, hotStock: 10_000, hotWarmup: 2_000,
		multiOrders: 10_000, multiProducts: 100, multiLines: 5, multiStock: 2_000,
		settleAlone: time.Minute,
		seqWarmup:   200, seqOrders: 2_000,
		floorDuration: 10 * time.Second, floorConns: 64, floorBatch: 100, floorStock: 1_000_000_000,
	}
}

func quickProfile() profile {
	return profile{
		shoppers:  100,
		hotOrders: 2_000, hotStock: 1_000, hotWarmup: 200,
		multiOrders: 500, multiProducts: 100, multiLines: 5, multiStock: 200,
		settleAlone: 20 * time.Second,
		seqWarmup:   20, seqOrders: 200,
		floorDuration: 2 * time.Second, floorConns: 64, floorBatch: 100, floorStock: 1_000_000_000,
	}
}

// Settings are the sizes a report was produced with.
type Settings struct {
	Quick     bool
	Selection Selection
	// Shoppers is the concurrency of scenarios 1 to 3.
	Shoppers            int
	HotOrders, HotStock int
	HotWarmup           int
	MultiOrders         int
	MultiProducts       int
	MultiLines          int
	SeqWarmup           int
	SeqOrders           int
	FloorDuration       time.Duration
	FloorConns          int
	FloorBatch          int
	// Lanes and MaxBatch are PRODUCT_COALESCE_LANES and
	// PRODUCT_COALESCE_MAX_BATCH.
	Lanes, MaxBatch int
	ServerAddr      string
}

// Report is the outcome of a run.
type Report struct {
	Machine  Machine
	Settings Settings
	// Started is when the run began, Elapsed how long it took.
	Started time.Time
	Elapsed time.Duration
	// LoadAfter is the load average when the run ended.
	LoadAfter string
	Results   []Result
	// LogDir holds the services' logs of every scenario run when some check
	// failed; empty when everything passed (the logs are removed then).
	LogDir string
}

// OK reports whether every check of every result passed.
func (r *Report) OK() bool {
	for _, res := range r.Results {
		if !res.OK() {
			return false
		}
	}
	return true
}

// Floor returns the result of scenario 5a, the one-transaction-per-
// reservation floor every other result is compared with.
func (r *Report) Floor() (Result, bool) {
	for _, res := range r.Results {
		if res.ID == idFloorSingle && res.Count > 0 {
			return res, true
		}
	}
	return Result{}, false
}

// Result is one measured scenario run.
type Result struct {
	// ID is the scenario's number and letter (1, 3a, 5b); Scenario says what
	// it is; Mode is the PRODUCT_COALESCE setting or, for the database
	// floor, its connections.
	ID, Scenario, Mode string
	// Unit is what Count counts (orders, reservations); Count is how many
	// were measured, over Elapsed.
	Unit    string
	Count   int64
	Elapsed time.Duration
	// Latency is per Unit, except in 5b, where it is per transaction;
	// LatencyOf says which.
	Latency   LatencySummary
	LatencyOf string
	// PerTransaction is how many reservations one product-side
	// transaction applied on average, read from the attempt log (0 when
	// unknown): about 1 without coalescing.
	PerTransaction float64
	// Checks are the correctness checks, Notes what else is worth knowing
	// (202 answers, retries, reservations per transaction).
	Checks []Check
	Notes  []string
}

// Rate returns Count per second of Elapsed.
func (r Result) Rate() float64 {
	if r.Elapsed <= 0 {
		return 0
	}
	return float64(r.Count) / r.Elapsed.Seconds()
}

// OK reports whether the result has checks and all of them passed.
func (r Result) OK() bool {
	if len(r.Checks) == 0 {
		return false
	}
	for _, c := range r.Checks {
		if !c.OK {
			return false
		}
	}
	return true
}

// Verdict is "ok" or "FAIL: " and the name of the first failing check.
func (r Result) Verdict() string {
	if len(r.Checks) == 0 {
		return "FAIL: nothing checked"
	}
	for _, c := range r.Checks {
		if !c.OK {
			return "FAIL: " + c.Name
		}
	}
	return "ok"
}

// Check is one correctness check of a result.
type Check struct {
	Name   string
	OK     bool
	Detail string
}

// checkf returns a check whose detail is formatted.
func checkf(name string, ok bool, format string, args ...any) Check {
	return Check{Name: name, OK: ok, Detail: fmt.Sprintf(format, args...)}
}

// runner is one Run's shared state.
type runner struct {
	cfg      Config
	prof     profile
	lanes    int
	maxBatch int
	server   *mysql.Config
	admin    *sql.DB // root on the server, no default database
	binDir   string
	workDir  string
	progress io.Writer
}

// Run runs the selected scenarios one after another and returns their
// results. A scenario that cannot run (a service that does not start, say)
// is reported as a failed result and the run goes on; only ctx ending, a
// server that cannot be reached, or a build that fails end it early, with
// whatever was measured until then in the report.
func Run(ctx context.Context, cfg Config) (*Report, error) {
	sel := cfg.Only
	if sel == nil {
		sel = slices.Clone(AllScenarios)
	}
	r := &runner{cfg: cfg, lanes: orDefault(cfg.Lanes, 4), maxBatch: orDefault(cfg.MaxBatch, 200), progress: cfg.Progress}
	if r.progress == nil {
		r.progress = io.Discard
	}
	r.prof = fullProfile()
	if cfg.Quick {
		r.prof = quickProfile()
	}
	if cfg.Shoppers > 0 {
		r.prof.shoppers = cfg.Shoppers
	}
	if cfg.FloorDuration > 0 {
		r.prof.floorDuration = cfg.FloorDuration
	}
	server := cfg.Server
	if server == "" {
		server = DefaultServer
	}
	var err error
	if r.server, err = mysql.ParseDSN(server); err != nil {
		return nil, fmt.Errorf("server dsn: %w", err)
	}
	r.server.ParseTime = true
	r.server.Loc = time.UTC
	r.server.InterpolateParams = true

	rep := &Report{Started: time.Now().UTC(), Settings: r.settings(sel)}
	if err := stack.EnsureMariaDB(ctx, r.server.Addr); err != nil {
		return nil, err
	}
	// Two services with pools of 32, the harness's own connections and the
	// 64 of the floor, beside whatever else shares the server.
	if _, err := stack.EnsureMaxConnections(ctx, r.server.Addr, 500); err != nil {
		return nil, err
	}
	if r.admin, err = r.openDB(""); err != nil {
		return nil, err
	}
	defer r.admin.Close()
	if rep.Machine, err = readMachine(ctx, r.admin); err != nil {
		return nil, err
	}
	if r.workDir, err = os.MkdirTemp("", "stockfence-bench-"); err != nil {
		return nil, fmt.Errorf("work dir: %w", err)
	}

	needServices := slices.ContainsFunc(sel, func(n int) bool { return n != ScenarioDBFloor })
	if needServices {
		r.binDir = cfg.BinDir
		if r.binDir == "" {
			fmt.Fprintln(r.progress, "bench: building the services")
			root, err := stack.RepoRoot()
			if err != nil {
				return nil, err
			}
			if r.binDir, err = stack.Build(ctx, root); err != nil {
				return nil, err
			}
		}
	}

	scenarios := map[int]func(context.Context) []Result{
		ScenarioHotEndToEnd: r.hotEndToEnd,
		ScenarioHotProduct:  r.hotProduct,
		ScenarioMultiLine:   r.multiLine,
		ScenarioSequential:  r.sequential,
		ScenarioDBFloor:     r.dbFloor,
	}
	for _, n := range sel {
		rep.Results = append(rep.Results, scenarios[n](ctx)...)
		if ctx.Err() != nil {
			break
		}
	}
	rep.Elapsed = time.Since(rep.Started)
	rep.LoadAfter = loadAverage()
	if rep.OK() && ctx.Err() == nil {
		if err := os.RemoveAll(r.workDir); err != nil {
			return rep, fmt.Errorf("remove work dir: %w", err)
		}
	} else {
		rep.LogDir = r.workDir
	}
	if ctx.Err() != nil {
		return rep, ctx.Err()
	}
	return rep, nil
}

func (r *runner) settings(sel Selection) Settings {
	return Settings{
		Quick:         r.cfg.Quick,
		Selection:     sel,
		Shoppers:      r.prof.shoppers,
		HotOrders:     r.prof.hotOrders,
		HotStock:      r.prof.hotStock,
		MultiOrders:   r.prof.multiOrders,
		MultiProducts: r.prof.multiProducts,
		MultiLines:    r.prof.multiLines,
		SeqWarmup:     r.prof.seqWarmup,
		HotWarmup:     r.prof.hotWarmup,
		SeqOrders:     r.prof.seqOrders,
		FloorDuration: r.prof.floorDuration,
		FloorConns:    r.prof.floorConns,
		FloorBatch:    r.prof.floorBatch,
		Lanes:         r.lanes,
		MaxBatch:      r.maxBatch,
		ServerAddr:    r.server.Addr,
	}
}

// openDB opens a pool on the server, on database name (empty: none).
func (r *runner) openDB(name string) (*sql.DB, error) {
	cfg := r.server.Clone()
	cfg.DBName = name
	conn, err := mysql.NewConnector(cfg)
	if err != nil {
		return nil, fmt.Errorf("mysql connector: %w", err)
	}
	return sql.OpenDB(conn), nil
}

// dsn returns the DSN of database name on the server.
func (r *runner) dsn(name string) string {
	cfg := r.server.Clone()
	cfg.DBName = name
	return cfg.FormatDSN()
}

// failed is the result of a scenario run that could not be measured.
func failed(id, scenario, mode, unit string, err error) Result {
	return Result{ID: id, Scenario: scenario, Mode: mode, Unit: unit,
		Checks: []Check{{Name: "ran", Detail: err.Error()}}}
}

// errAborted ends a drive whose requests keep failing.
var errAborted = errors.New("aborted")

func orDefault(v, def int) int {
	if v > 0 {
		return v
	}
	return def
}
