package chaos_test

import (
	"fmt"
	"os"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stockfence/stockfence/e2e/chaos"
	"github.com/stockfence/stockfence/e2e/stack"
	"github.com/stockfence/stockfence/shared/contract"
	"github.com/stockfence/stockfence/shared/mysqldb/mysqltest"
)

// Profiles: "short" runs in `make test`; "full" is `make chaos`.
var profiles = map[string]struct {
	faults, kafkaDown, soak time.Duration
	shoppers, soakOrders    int
}{
	"short": {faults: 3 * time.Second, kafkaDown: 5 * time.Second, soak: 10 * time.Second, shoppers: 8, soakOrders: 300},
	"full":  {faults: 10 * time.Second, kafkaDown: 30 * time.Second, soak: 3 * time.Minute, shoppers: 24, soakOrders: 5000},
}

// TestChaos runs every scenario in turn on one system (two instances of each
// service behind fault proxies, the embedded broker, MariaDB) under load, and
// after each checks with the oracle that no stock was lost or sold twice,
// that every order settled, and that the system's own reconciliation agrees.
// CHAOS_PROFILE picks short (default) or full; CHAOS_SEED replays a run;
// CHAOS_ONLY runs the scenarios it names (comma-separated).
func TestChaos(t *testing.T) {
	name := os.Getenv("CHAOS_PROFILE")
	if name == "" {
		name = "short"
	}
	profile, ok := profiles[name]
	if !ok {
		t.Fatalf("CHAOS_PROFILE=%q: want short or full", name)
	}
	seed := uint64(time.Now().UnixNano())
	if s := os.Getenv("CHAOS_SEED"); s != "" {
		var err error
		if seed, err = strconv.ParseUint(s, 10, 64); err != nil {
			t.Fatalf("CHAOS_SEED=%q: %v", s, err)
		}
	}
	fmt.Printf("chaos: profile %s, seed %d (replay with CHAOS_SEED=%d)\n", name, seed, seed)

	ctx := t.Context()
	root, err := stack.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	bin, err := stack.Build(ctx, root)
	if err != nil {
		t.Fatal(err)
	}
	// The services' logs are kept when the suite fails.
	logDir, err := os.MkdirTemp("", fmt.Sprintf("chaos-%d-", seed))
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		if t.Failed() {
			fmt.Printf("chaos: service logs kept in %s\n", logDir)
			return
		}
		os.RemoveAll(logDir)
	}()
	env, err := chaos.Start(ctx, chaos.Config{
		BinDir:      bin,
		LogDir:      logDir,
		ProductsDSN: mysqltest.New(t, "chaos_products"),
		OrdersDSN:   mysqltest.New(t, "chaos_orders"),
		Catalog: []contract.NewProduct{
			{SKU: "HOT-1", Name: "Console", PriceCents: 49900, Stock: 400},
			{SKU: "HOT-2", Name: "Controller", PriceCents: 5900, Stock: 600},
			{SKU: "HOT-3", Name: "Headset", PriceCents: 8900, Stock: 300},
			{SKU: "WARM-4", Name: "Cable", PriceCents: 900, Stock: 5000},
		},
	})
	if err != nil {
		t.Fatalf("start: %v", err)
	}
	defer func() {
		if err := env.Close(); err != nil {
			t.Logf("close: %v", err)
		}
	}()

	only := os.Getenv("CHAOS_ONLY") // scenario names, comma-separated: run just those
	var results []chaos.Result
	for i, sc := range chaos.Scenarios() {
		if only != "" && !slices.Contains(strings.Split(only, ","), sc.Name) || sc.Exclusive && name != "full" {
			continue
		}
		plan := chaos.Plan{Faults: profile.faults, Shoppers: profile.shoppers, MinOrders: 20, SettleBound: 2 * time.Minute}
		switch sc.Name {
		case "kafka-down":
			plan.Faults = profile.kafkaDown
		case "kill-product", "kill-order":
			// A consumer killed mid-rebalance can leave kfake's group
			// coordinator stuck: the watchdog rejoins after its stall
			// time (45 s), and kfake has been seen to take another 70 s
			// to let the new member in, so compensations of orders
			// cancelled around a kill wait that long.
			plan.SettleBound = 4 * time.Minute
		case "soak":
			// After minutes of faults some orders have been checked many
			// times: their next check can be up to the worker's backoff cap
			// (order.RecheckCap, 5 min) away.
			plan.Faults, plan.MinOrders, plan.SettleBound = profile.soak, profile.soakOrders, 6*time.Minute
		}
		start := time.Now()
		res := chaos.Run(ctx, env, sc, seed+uint64(i), plan)
		results = append(results, res)
		fmt.Printf("chaos: %-17s %d orders, %d faults, settled in %v, %d violations (%v)\n",
			sc.Name, res.Orders, res.Faults, res.Settle.Round(10*time.Millisecond), len(res.Report.Violations), time.Since(start).Round(time.Second))
		if res.Failed() {
			for _, v := range res.Report.Violations {
				t.Errorf("%s (seed %d): %s order %s attempt %s product %d: %s", sc.Name, res.Seed, v.Kind, v.OrderID, v.AttemptID, v.ProductID, v.Detail)
			}
			if res.Err != nil {
				t.Errorf("%s (seed %d): %v", sc.Name, res.Seed, res.Err)
			}
			if res.Reconcile != "agrees" {
				t.Errorf("%s (seed %d): reconciliation %s", sc.Name, res.Seed, res.Reconcile)
			}
			if res.DLQ != 0 {
				t.Errorf("%s (seed %d): %d dead-lettered compensations", sc.Name, res.Seed, res.DLQ)
			}
			break
		}
	}
	fmt.Print("\n" + chaos.Table(results))
}
