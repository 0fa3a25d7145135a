package chaos

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"strings"
	"time"

	"github.com/stockfence/stockfence/e2e/chaos/oracle"
)

// Plan is how hard one scenario pushes.
type Plan struct {
	// Faults is how long faults are injected.
	Faults time.Duration
	// Shoppers is the size of the crowd; MinOrders how many orders must have
	// been answered before the load stops (the load runs on after the faults
	// until then).
	Shoppers, MinOrders int
	// SettleBound is how long every order may take to settle, and the outbox
	// to drain, once the faults are over.
	SettleBound time.Duration
}

// Result is what one scenario did and what the checks found.
type Result struct {
	Scenario        string
	Seed            uint64
	Orders, Cancels int64
	Faults          int
	// Settle is how long the system took to settle after the faults.
	Settle time.Duration
	// Report is the oracle's verdict; Reconcile says whether the system's own
	// GET /ops/reconcile agreed with it.
	Report    oracle.Report
	Reconcile string
	DLQ       int
	// Lag is the consumer groups' backlog when the settle check ended.
	Lag int64
	Err error
}

// Failed reports whether the scenario broke an invariant or could not run.
func (r Result) Failed() bool {
	return r.Err != nil || !r.Report.OK() || r.Reconcile != "agrees" || r.DLQ != 0
}

// Run runs scenario sc on env with the given seed: the load starts, the
// faults are injected and healed, the load stops, the system is given
// plan.SettleBound to settle, and the oracle and the system's reconciliation
// judge the result.
func Run(ctx context.Context, env *Env, sc Scenario, seed uint64, plan Plan) Result {
	res := Result{Scenario: sc.Name, Seed: seed}
	r := rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
	load := StartLoad(env, r, plan.Shoppers)
	res.Faults, res.Err = sc.Inject(ctx, env, r, plan.Faults)
	if err := env.Heal(ctx); err != nil && res.Err == nil {
		res.Err = fmt.Errorf("heal: %w", err)
	}
	for load.Orders() < int64(plan.MinOrders) && ctx.Err() == nil {
		sleep(ctx, 100*time.Millisecond)
	}
	load.Stop()
	res.Orders, res.Cancels = load.Orders(), load.Cancels()
	if res.Err != nil {
		return res
	}

	// Settled: every order, the outbox drained, and both consumer groups
	// caught up with their topics. A broker that cannot be asked yet (it
	// may just have come back) counts as not caught up.
	var (
		last    oracle.Report
		lagInfo string
		lagErr  error
	)
	res.Settle, res.Err = waitFor(ctx, plan.SettleBound, func() (bool, error) {
		var err error
		last, err = oracle.Check(ctx, env.ProductsData, env.OrdersData, oracle.Options{})
		if err != nil || last.Unsettled > 0 || last.UnsentOutbox > 0 {
			return false, err
		}
		res.Lag, lagInfo, lagErr = env.consumerLag(ctx)
		return lagErr == nil && res.Lag == 0, nil
	})
	if res.Err != nil {
		res.Report = last
		res.Err = fmt.Errorf("settle: %w (%d unsettled, %d unsent, consumer lag %d %s %v): %s",
			res.Err, last.Unsettled, last.UnsentOutbox, res.Lag, lagInfo, lagErr, env.unsettled(ctx))
		return res
	}
	if res.Report, res.Err = oracle.Check(ctx, env.ProductsData, env.OrdersData, oracle.Options{Settled: true}); res.Err != nil {
		return res
	}
	res.Reconcile = env.reconcile(ctx, res.Report)
	res.DLQ, res.Err = env.deadLetters(ctx)
	return res
}

// unsettled describes the orders that are not settled, for a failure report.
func (env *Env) unsettled(ctx context.Context) string {
	const q = `SELECT o.id, o.status, o.checks, COALESCE(o.last_error, ''), COALESCE(o.next_check_at, ''),
		COALESCE(GROUP_CONCAT(CONCAT(a.attempt_id, ':', a.status) ORDER BY a.seq), '')
		FROM orders o LEFT JOIN order_attempts a ON a.order_id = o.id
		WHERE o.status NOT IN ('CONFIRMED', 'FAILED', 'CANCELLED') GROUP BY o.id LIMIT 10`
	rows, err := env.OrdersData.QueryContext(ctx, q)
	if err != nil {
		return err.Error()
	}
	defer rows.Close()
	var b strings.Builder
	for rows.Next() {
		var id, status, lastErr, next, attempts string
		var checks int
		if err := rows.Scan(&id, &status, &checks, &lastErr, &next, &attempts); err != nil {
			return err.Error()
		}
		fmt.Fprintf(&b, "[order %s %s checks=%d next=%s attempts=%s lastError=%q] ", id, status, checks, next, attempts, lastErr)
	}
	return b.String()
}

// reconcile asks the system for its own cross-database check and compares
// its verdict with the oracle's.
func (env *Env) reconcile(ctx context.Context, want oracle.Report) string {
	var got struct {
		OK         bool `json:"ok"`
		Violations []struct {
			Kind string `json:"kind"`
		} `json:"violations"`
	}
	if err := env.adminGet(ctx, env.Orders[0].URL+"/ops/reconcile", &got); err != nil {
		return "error: " + err.Error()
	}
	if got.OK != want.OK() {
		return fmt.Sprintf("disagrees (system ok=%v with %d violations, oracle ok=%v)", got.OK, len(got.Violations), want.OK())
	}
	return "agrees"
}

func (env *Env) deadLetters(ctx context.Context) (int, error) {
	var got struct {
		Count int `json:"count"`
	}
	err := env.adminGet(ctx, env.Products[0].URL+"/admin/dlq", &got)
	return got.Count, err
}

func (env *Env) adminGet(ctx context.Context, url string, v any) error {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", "Bearer "+env.Stack.AdminToken)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		return err
	}
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("GET %s: %d %s", url, resp.StatusCode, strings.TrimSpace(string(raw)))
	}
	return json.Unmarshal(raw, v)
}

// Table formats results as the suite's summary.
func Table(results []Result) string {
	var b strings.Builder
	fmt.Fprintf(&b, "%-17s %-20s %7s %7s %6s %10s %-9s %4s %4s %s\n", "scenario", "seed", "orders", "cancels", "faults", "settle", "reconcile", "lag", "dlq", "violations")
	for _, r := range results {
		verdict := fmt.Sprint(len(r.Report.Violations))
		if r.Err != nil {
			verdict = "ERROR: " + r.Err.Error()
		}
		rec := r.Reconcile
		if rec != "agrees" && rec != "" {
			rec = "NO"
		}
		fmt.Fprintf(&b, "%-17s %-20d %7d %7d %6d %10s %-9s %4d %4d %s\n", r.Scenario, r.Seed, r.Orders, r.Cancels, r.Faults,
			r.Settle.Round(10*time.Millisecond), rec, r.Lag, r.DLQ, verdict)
	}
	return b.String()
}
