package bench

import (
	"context"
	"fmt"
	"math/rand/v2"
	"slices"
	"sync/atomic"

	"github.com/google/uuid"

	"github.com/stockfence/stockfence/shared/contract"
)

// Scenario descriptions, as the report shows them.
const (
	descHotEndToEnd = "hot product, end to end"
	descHotProduct  = "hot product, productservice alone"
	descLinePerCall = "5-line orders, 5 reserve calls each"
	descOneCall     = "5-line orders, 1 reserve call each"
	descMultiE2E    = "5-line orders, end to end"
	descSequential  = "one order at a time, end to end"
)

const hotPriceCents = 1999

// hotEndToEnd is scenario 1: the flash sale through the order service,
// coalescing off, then on.
func (r *runner) hotEndToEnd(ctx context.Context) []Result {
	return r.bothModes(ctx, func(mode string) Result { return r.hot(ctx, true, mode) })
}

// hotProduct is scenario 2: the same load on the product service alone.
func (r *runner) hotProduct(ctx context.Context) []Result {
	return r.bothModes(ctx, func(mode string) Result { return r.hot(ctx, false, mode) })
}

func (r *runner) bothModes(ctx context.Context, run func(mode string) Result) []Result {
	var out []Result
	if !r.cfg.CoalescedOnly {
		out = append(out, run(modeOff))
	}
	if ctx.Err() == nil {
		out = append(out, run(modeOn))
	}
	return out
}

// hot runs scenario 1 (endToEnd) or 2 on fresh databases with
// PRODUCT_COALESCE=mode: hotOrders requests for one unit of one product
// that has stock for hotStock of them, from every shopper at once.
func (r *runner) hot(ctx context.Context, endToEnd bool, mode string) Result {
	id, desc, unit, short := "2", descHotProduct, "reservations", "hot productservice"
	if endToEnd {
		id, desc, unit, short = "1", descHotEndToEnd, "orders", "hot end to end"
	}
	sys, err := r.startSystem(ctx, id+"-"+mode, mode, r.prof.shoppers)
	if err != nil {
		return failed(id, desc, mode, unit, err)
	}
	res := func() Result {
		// The warm-up orders take stock of their own, so the measured run
		// starts with hotStock.
		warmup := int64(r.prof.hotWarmup)
		seeded, err := sys.seed(ctx, []contract.NewProduct{{SKU: "bench-hot", Name: "Flash-sale item",
			PriceCents: hotPriceCents, Stock: int64(r.prof.hotStock) + warmup}})
		if err != nil {
			return failed(id, desc, mode, unit, err)
		}
		hot := seeded[0].ID
		var (
			t             tally
			late          lateOrders
			taken, turned atomic.Int64 // confirmed or applied / failed or rejected
		)
		countOrder := func(_ int64, o settledOrder) {
			countOutcome(o.Status == statusConfirmed, o.Status == statusFailed, &taken, &turned)
		}
		var fn step
		if endToEnd {
			body := orderBody([]contract.Item{{ProductID: hot, Quantity: 1}})
			fn = func(ctx context.Context, worker int, seq int64) (int64, error) {
				o, err := sys.placeOrder(ctx, sys.tokens[worker], body, &t)
				if err != nil {
					return 0, err
				}
				if o.Status == statusPending {
					late.add(o.OrderID, sys.tokens[worker], seq)
				} else {
					countOrder(seq, o)
				}
				return 1, nil
			}
		} else {
			fn = func(ctx context.Context, _ int, _ int64) (int64, error) {
				status, err := sys.reserve(ctx, contract.ReserveRequest{AttemptID: uuid.NewString(), OrderID: uuid.NewString(),
					Items: []contract.Item{{ProductID: hot, Quantity: 1}}}, &t)
				if err != nil {
					return 0, err
				}
				countOutcome(status == contract.StatusApplied, status == contract.StatusRejected, &taken, &turned)
				return 1, nil
			}
		}
		// Connections opened and pools filled before the clock starts, as
		// on a shop that was serving before its sale began.
		warm := drive{label: fmt.Sprintf("%s %s, %s, warm-up", id, short, mode), unit: unit, workers: r.prof.shoppers,
			total: warmup, progress: r.progress}
		if _, err := warm.run(ctx, fn); err != nil {
			return failed(id, desc, mode, unit, err)
		}
		d := drive{label: fmt.Sprintf("%s %s, %s", id, short, mode), unit: unit, workers: r.prof.shoppers,
			total: int64(r.prof.hotOrders), progress: r.progress}
		out, err := d.run(ctx, fn)
		if err != nil {
			return failed(id, desc, mode, unit, err)
		}
		res := measured(id, desc, mode, unit, singular(unit), out)
		res.Checks = append(res.Checks, answered(out, d.total, unit))
		res.Notes = t.notes()
		if endToEnd {
			if res.Notes, err = sys.settleLate(ctx, d.label, &late, countOrder, res.Notes); err != nil {
				return withError(res, err)
			}
		}

		pb, err := readProductBooks(ctx, r.admin, sys.products)
		if err != nil {
			return withError(res, err)
		}
		// Every count below includes the warm-up orders, all of which had
		// stock.
		stock, orders := int64(r.prof.hotStock)+warmup, int64(r.prof.hotOrders)+warmup
		applied, rejected := pb.attempts[string(contract.StatusApplied)], pb.attempts[string(contract.StatusRejected)]
		if endToEnd {
			ob, err := readOrderBooks(ctx, r.admin, sys.orders, sys.products)
			if err != nil {
				return withError(res, err)
			}
			res.Checks = append(res.Checks, ob.checks(stock, orders-stock, applied)...)
			res.Checks = append(res.Checks, ob.matches(taken.Load(), turned.Load()))
		} else {
			res.Checks = append(res.Checks,
				checkf("applied count", applied == stock && taken.Load() == stock,
					"%s APPLIED in the log, %s answered APPLIED, want %s", thousands(applied), thousands(taken.Load()), thousands(stock)),
				checkf("rejected count", rejected == orders-stock && turned.Load() == orders-stock,
					"%s REJECTED in the log, %s answered REJECTED, want %s", thousands(rejected), thousands(turned.Load()), thousands(orders-stock)))
		}
		res.Checks = append(res.Checks, pb.checks(map[int64]int64{hot: 0})...)
		per, note := pb.perTransaction()
		res.PerTransaction, res.Notes = per, append(res.Notes, note)
		return res
	}()
	return stopped(ctx, res, sys)
}

// multiLine is scenario 3: orders of 5 distinct products out of 100, with
// stock to spare, coalescing on: (a) a reserve call per line, (b) one call
// with the 5 lines, (c) end to end. The three runs place the same orders.
func (r *runner) multiLine(ctx context.Context) []Result {
	orders := randomOrders(r.prof.multiOrders, r.prof.multiProducts, r.prof.multiLines)
	var out []Result
	for _, variant := range []string{"3a", "3b", "3c"} {
		if ctx.Err() != nil {
			break
		}
		out = append(out, r.multiRun(ctx, variant, orders))
	}
	return out
}

// randomOrders returns n orders of lines distinct product indexes out of
// products, from a fixed seed so that every run places the same orders.
func randomOrders(n, products, lines int) [][]int {
	rng := rand.New(rand.NewPCG(3, 5))
	orders := make([][]int, n)
	for i := range orders {
		picked := make([]int, 0, lines)
		for len(picked) < lines {
			p := rng.IntN(products)
			if !slices.Contains(picked, p) {
				picked = append(picked, p)
			}
		}
		orders[i] = picked
	}
	return orders
}

func (r *runner) multiRun(ctx context.Context, variant string, orders [][]int) Result {
	desc := map[string]string{"3a": descLinePerCall, "3b": descOneCall, "3c": descMultiE2E}[variant]
	const unit = "orders"
	sys, err := r.startSystem(ctx, variant, modeOn, r.prof.shoppers)
	if err != nil {
		return failed(variant, desc, modeOn, unit, err)
	}
	res := func() Result {
		catalog := make([]contract.NewProduct, r.prof.multiProducts)
		for i := range catalog {
			catalog[i] = contract.NewProduct{SKU: fmt.Sprintf("bench-%03d", i), Name: fmt.Sprintf("Item %d", i),
				PriceCents: int64(100 + i), Stock: r.prof.multiStock}
		}
		seeded, err := sys.seed(ctx, catalog)
		if err != nil {
			return failed(variant, desc, modeOn, unit, err)
		}
		lines := func(seq int64) []contract.Item {
			items := make([]contract.Item, len(orders[seq]))
			for i, p := range orders[seq] {
				items[i] = contract.Item{ProductID: seeded[p].ID, Quantity: 1}
			}
			return items
		}
		// taken[i] counts the units of product i the shoppers saw taken;
		// confirmed and other count the orders of 3c by outcome.
		taken := make([]atomic.Int64, len(seeded))
		var (
			t                tally
			late             lateOrders
			confirmed, other atomic.Int64
		)
		countOrder := func(seq int64, o settledOrder) {
			if o.Status != statusConfirmed {
				other.Add(1)
				return
			}
			confirmed.Add(1)
			for _, p := range orders[seq] {
				taken[p].Add(1)
			}
		}
		var fn step
		switch variant {
		case "3a":
			fn = func(ctx context.Context, _ int, seq int64) (int64, error) {
				orderID := uuid.NewString()
				for i, item := range lines(seq) {
					status, err := sys.reserve(ctx, contract.ReserveRequest{AttemptID: uuid.NewString(), OrderID: orderID,
						Items: []contract.Item{item}}, &t)
					if err != nil {
						return 0, err
					}
					if status != contract.StatusApplied {
						return 0, fmt.Errorf("line %d of order %d: %s", i, seq, status)
					}
					taken[orders[seq][i]].Add(1)
				}
				return 1, nil
			}
		case "3b":
			fn = func(ctx context.Context, _ int, seq int64) (int64, error) {
				status, err := sys.reserve(ctx, contract.ReserveRequest{AttemptID: uuid.NewString(), OrderID: uuid.NewString(),
					Items: lines(seq)}, &t)
				if err != nil {
					return 0, err
				}
				if status != contract.StatusApplied {
					return 0, fmt.Errorf("order %d: %s", seq, status)
				}
				for _, p := range orders[seq] {
					taken[p].Add(1)
				}
				return 1, nil
			}
		default:
			fn = func(ctx context.Context, worker int, seq int64) (int64, error) {
				o, err := sys.placeOrder(ctx, sys.tokens[worker], orderBody(lines(seq)), &t)
				if err != nil {
					return 0, err
				}
				if o.Status == statusPending {
					late.add(o.OrderID, sys.tokens[worker], seq)
				} else {
					countOrder(seq, o)
				}
				return 1, nil
			}
		}
		d := drive{label: fmt.Sprintf("%s %s", variant, desc), unit: unit, workers: r.prof.shoppers,
			total: int64(len(orders)), progress: r.progress}
		out, err := d.run(ctx, fn)
		if err != nil {
			return failed(variant, desc, modeOn, unit, err)
		}
		res := measured(variant, desc, modeOn, unit, "order", out)
		res.Checks = append(res.Checks, answered(out, d.total, unit))
		res.Notes = t.notes()
		if variant == "3c" {
			if res.Notes, err = sys.settleLate(ctx, d.label, &late, countOrder, res.Notes); err != nil {
				return withError(res, err)
			}
		}

		pb, err := readProductBooks(ctx, r.admin, sys.products)
		if err != nil {
			return withError(res, err)
		}
		want := make(map[int64]int64, len(seeded))
		var units int64
		for i, p := range seeded {
			want[p.ID] = r.prof.multiStock - taken[i].Load()
			units += taken[i].Load()
		}
		applied := pb.attempts[string(contract.StatusApplied)]
		wantApplied := out.units
		if variant == "3a" {
			wantApplied = units
		}
		res.Checks = append(res.Checks, checkf("applied count", applied == wantApplied && pb.attempts[string(contract.StatusRejected)] == 0,
			"%s APPLIED attempts, want %s; %s REJECTED", thousands(applied), thousands(wantApplied),
			thousands(pb.attempts[string(contract.StatusRejected)])))
		if variant == "3c" {
			ob, err := readOrderBooks(ctx, r.admin, sys.orders, sys.products)
			if err != nil {
				return withError(res, err)
			}
			res.Checks = append(res.Checks, ob.checks(out.units, 0, applied)...)
			res.Checks = append(res.Checks, ob.matches(confirmed.Load(), other.Load()))
		}
		res.Checks = append(res.Checks, pb.checks(want)...)
		per, note := pb.perTransaction()
		res.PerTransaction, res.Notes = per, append(res.Notes, note)
		return res
	}()
	return stopped(ctx, res, sys)
}

// sequential is scenario 4: one shopper, one order at a time, end to end,
// coalescing on; seqWarmup orders first that are not measured.
func (r *runner) sequential(ctx context.Context) []Result {
	const id, unit = "4", "orders"
	sys, err := r.startSystem(ctx, id, modeOn, 1)
	if err != nil {
		return []Result{failed(id, descSequential, modeOn, unit, err)}
	}
	res := func() Result {
		total := int64(r.prof.seqWarmup + r.prof.seqOrders)
		seeded, err := sys.seed(ctx, []contract.NewProduct{{SKU: "bench-one", Name: "Quiet item", PriceCents: hotPriceCents, Stock: total}})
		if err != nil {
			return failed(id, descSequential, modeOn, unit, err)
		}
		body := orderBody([]contract.Item{{ProductID: seeded[0].ID, Quantity: 1}})
		var (
			t                tally
			late             lateOrders
			confirmed, other atomic.Int64
		)
		countOrder := func(_ int64, o settledOrder) {
			countOutcome(o.Status == statusConfirmed, o.Status != statusConfirmed, &confirmed, &other)
		}
		fn := func(ctx context.Context, _ int, seq int64) (int64, error) {
			o, err := sys.placeOrder(ctx, sys.tokens[0], body, &t)
			if err != nil {
				return 0, err
			}
			if o.Status == statusPending {
				late.add(o.OrderID, sys.tokens[0], seq)
			} else {
				countOrder(seq, o)
			}
			return 1, nil
		}
		warm := drive{label: "4 warm-up", unit: unit, workers: 1, total: int64(r.prof.seqWarmup), progress: r.progress}
		if _, err := warm.run(ctx, fn); err != nil {
			return failed(id, descSequential, modeOn, unit, err)
		}
		d := drive{label: "4 " + descSequential, unit: unit, workers: 1, total: int64(r.prof.seqOrders), progress: r.progress}
		out, err := d.run(ctx, fn)
		if err != nil {
			return failed(id, descSequential, modeOn, unit, err)
		}
		res := measured(id, descSequential, modeOn, unit, "order", out)
		res.Checks = append(res.Checks, answered(out, d.total, unit))
		res.Notes = t.notes()
		if res.Notes, err = sys.settleLate(ctx, d.label, &late, countOrder, res.Notes); err != nil {
			return withError(res, err)
		}
		pb, err := readProductBooks(ctx, r.admin, sys.products)
		if err != nil {
			return withError(res, err)
		}
		ob, err := readOrderBooks(ctx, r.admin, sys.orders, sys.products)
		if err != nil {
			return withError(res, err)
		}
		res.Checks = append(res.Checks, ob.checks(total, 0, pb.attempts[string(contract.StatusApplied)])...)
		res.Checks = append(res.Checks, ob.matches(confirmed.Load(), other.Load()))
		res.Checks = append(res.Checks, pb.checks(map[int64]int64{seeded[0].ID: 0})...)
		res.Notes = append(res.Notes, fmt.Sprintf("after %d unmeasured warm-up orders", r.prof.seqWarmup))
		return res
	}()
	return []Result{stopped(ctx, res, sys)}
}

// settleLate waits for the run's orders to settle (system.settle), then
// looks up the orders shoppers abandoned and counts them with count, and
// returns notes with what that took.
func (s *system) settleLate(ctx context.Context, label string, late *lateOrders, count func(int64, settledOrder), notes []string) ([]string, error) {
	st, err := s.settle(ctx, label)
	if err != nil {
		return notes, err
	}
	if n := st.note(); n != "" {
		notes = append(notes, n)
	}
	return notes, late.outcomes(ctx, s, count)
}

// countOutcome adds one to yes or no as the outcome was.
func countOutcome(isYes, isNo bool, yes, no *atomic.Int64) {
	switch {
	case isYes:
		yes.Add(1)
	case isNo:
		no.Add(1)
	}
}

// measured is a result with a drive's numbers and no checks yet.
func measured(id, desc, mode, unit, latencyOf string, out driven) Result {
	return Result{ID: id, Scenario: desc, Mode: mode, Unit: unit, Count: out.units, Elapsed: out.elapsed,
		Latency: out.latency.Summary(), LatencyOf: latencyOf}
}

// answered checks that every request of a drive got a definite answer.
func answered(out driven, total int64, unit string) Check {
	if out.errors == 0 && out.units == total {
		return checkf("all answered", true, "%s of %s %s got a definite answer", thousands(out.units), thousands(total), unit)
	}
	detail := fmt.Sprintf("%s of %s %s answered, %d failed", thousands(out.units), thousands(total), unit, out.errors)
	if out.aborted {
		detail += fmt.Sprintf(" (stopped after %d failures)", maxErrors)
	}
	if out.firstErr != nil {
		detail += "; first: " + out.firstErr.Error()
	}
	return Check{Name: "all answered", Detail: detail}
}

// withError adds a failed check for an error that stopped the checks.
func withError(res Result, err error) Result {
	res.Checks = append(res.Checks, Check{Name: "read the databases", Detail: err.Error()})
	return res
}

// stopped stops the system of a run and adds whether that went cleanly.
func stopped(ctx context.Context, res Result, sys *system) Result {
	if err := sys.close(ctx); err != nil {
		res.Checks = append(res.Checks, Check{Name: "clean stop", Detail: err.Error()})
	}
	return res
}

// singular turns a plural unit into the latency's unit: orders -> order.
func singular(unit string) string {
	if n := len(unit); n > 1 && unit[n-1] == 's' {
		return unit[:n-1]
	}
	return unit
}
