package bench

import (
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"
)

// ChartFile is where WriteDocs puts the chart, relative to the directory of
// the markdown file.
const ChartFile = "img/bench.png"

// tableHeader is the summary table's header. "orders" are reservations in
// scenarios 2 and 5.
var tableHeader = []string{"scenario", "mode", "orders", "orders/s", "p50", "p90", "p99", "max", "vs DB floor", "correctness"}

// rows returns the summary table's rows.
func (r *Report) rows() [][]string {
	floor, haveFloor := r.Floor()
	out := make([][]string, 0, len(r.Results))
	for _, res := range r.Results {
		ratio := "–"
		if haveFloor && floor.Rate() > 0 && res.Count > 0 {
			ratio = formatRatio(res.Rate() / floor.Rate())
		}
		l := res.Latency
		out = append(out, []string{
			res.ID + " " + res.Scenario, res.Mode, thousands(res.Count), thousands(int64(math.Round(res.Rate()))),
			formatLatency(l.P50, l.Count), formatLatency(l.P90, l.Count), formatLatency(l.P99, l.Count), formatLatency(l.Max, l.Count),
			ratio, res.Verdict(),
		})
	}
	return out
}

// Table returns the summary as a plain-text table for a terminal.
func (r *Report) Table() string {
	rows := append([][]string{tableHeader}, r.rows()...)
	widths := make([]int, len(tableHeader))
	for _, row := range rows {
		for i, cell := range row {
			widths[i] = max(widths[i], utf8.RuneCountInString(cell))
		}
	}
	line := func(cells []string, align func(int) bool) string {
		padded := make([]string, len(cells))
		for i, cell := range cells {
			pad := strings.Repeat(" ", widths[i]-utf8.RuneCountInString(cell))
			if align(i) {
				padded[i] = pad + cell
			} else {
				padded[i] = cell + pad
			}
		}
		return strings.TrimRight(strings.Join(padded, "  "), " ") + "\n"
	}
	rule := make([]string, len(widths))
	for i, w := range widths {
		rule[i] = strings.Repeat("-", w)
	}
	var b strings.Builder
	b.WriteString(line(tableHeader, rightAligned))
	b.WriteString(line(rule, rightAligned))
	for _, row := range rows[1:] {
		b.WriteString(line(row, rightAligned))
	}
	return b.String()
}

// MarkdownTable returns the summary as a markdown table.
func (r *Report) MarkdownTable() string {
	var b strings.Builder
	b.WriteString("| " + strings.Join(tableHeader, " | ") + " |\n|")
	for i := range tableHeader {
		if rightAligned(i) {
			b.WriteString("---:|")
		} else {
			b.WriteString(":---|")
		}
	}
	b.WriteString("\n")
	for _, row := range r.rows() {
		b.WriteString("| " + strings.Join(row, " | ") + " |\n")
	}
	return b.String()
}

// rightAligned reports whether column i holds numbers.
func rightAligned(i int) bool { return i >= 2 && i <= 8 }

// Markdown returns docs/benchmarks.md: how it was produced and where, the
// table, the chart, a reading of the numbers and every check. command is
// the command line that produced it, e.g. "make bench".
func (r *Report) Markdown(command string) string {
	var b strings.Builder
	p := func(format string, args ...any) { fmt.Fprintf(&b, format, args...) }
	m := r.Machine
	p("# Benchmarks\n\n")
	p("Produced by `%s` on %s in %s. The harness (`e2e/cmd/bench`, package `e2e/bench`) wrote this file and "+
		"`%s`; the same command regenerates both. It starts the real service binaries on loopback with `e2e/stack`, "+
		"a fresh pair of databases and freshly started services for every run, and checks every run against the databases.\n\n",
		command, r.Started.Format("2006-01-02 15:04 MST"), r.Elapsed.Round(time.Second), ChartFile)
	if r.Settings.Quick {
		p("**This is a -quick smoke run: small counts, not comparable with a full run.**\n\n")
	}

	p("## Machine\n\n| | |\n|:---|:---|\n")
	cpu := strconv.Itoa(m.CPUs)
	if m.CPUModel != "" {
		cpu = fmt.Sprintf("%d × %s", m.CPUs, m.CPUModel)
	}
	p("| CPUs (nproc) | %s |\n", cpu)
	p("| Memory | %.1f GiB |\n", float64(m.MemoryBytes)/(1<<30))
	p("| MariaDB | %s (%s) |\n", m.MariaDB, m.Durability)
	p("| Go | %s |\n", m.Go)
	p("| Load average (1/5/15 min) | %s before, %s after |\n\n", m.LoadBefore, r.LoadAfter)
	p("The services, MariaDB, the embedded Kafka broker and the harness's own shoppers all ran on these %d CPUs, "+
		"beside whatever else the machine was doing (see the load average): read differences below about 20 %% as noise.\n\n", m.CPUs)

	p("## Results\n\n")
	p("%s\n", r.MarkdownTable())
	p("\"orders\" are reservations in scenarios 2 and 5. Latencies are per order (per reservation in 2 and 5a, per " +
		"transaction in 5b), from the request leaving the shopper to a definite answer. \"vs DB floor\" is orders/s divided " +
		"by the reservations/s of 5a, one transaction per reservation on one hot row with no services at all.\n\n")
	p("![orders per second by scenario and mode](%s)\n\n", ChartFile)

	p("## Reading the numbers\n\n")
	for _, para := range r.reading() {
		p("%s\n\n", para)
	}

	p("## Checks\n\n")
	for _, res := range r.Results {
		p("**%s %s, %s**: %s\n\n", res.ID, res.Scenario, res.Mode, res.Verdict())
		for _, c := range res.Checks {
			mark := "ok"
			if !c.OK {
				mark = "FAIL"
			}
			p("- %s %s: %s\n", mark, c.Name, c.Detail)
		}
		for _, n := range res.Notes {
			p("- note: %s\n", n)
		}
		p("\n")
	}

	s := r.Settings
	p("## Setup\n\n")
	p("- Scenarios 1 and 2: %s requests for one unit of one product with stock %s, from %s concurrent shoppers "+
		"(each with its own customer token in 1, the service token in 2), with coalescing off and on (`PRODUCT_COALESCE` and `ORDER_COALESCE` both `off`, then both `on`; scenario 2 uses only the product service). "+
		"Before the clock starts, the same shoppers place %s unmeasured warm-up orders for the same product, which was given %s units more for them, "+
		"so that connections and pools are open as on a shop that was serving before its sale began; the measured run starts with stock %s, "+
		"and the checks count the warm-up orders too.\n",
		thousands(int64(s.HotOrders)), thousands(int64(s.HotStock)), thousands(int64(s.Shoppers)),
		thousands(int64(s.HotWarmup)), thousands(int64(s.HotWarmup)), thousands(int64(s.HotStock)))
	p("- Scenario 3: %s orders of %d distinct products out of %d (the same random orders in every variant), stock "+
		"to spare, %s shoppers, coalescing on: (a) one reserve call per line, each its own attempt, one after "+
		"another; (b) one call with all lines; (c) end to end through `POST /orders`.\n",
		thousands(int64(s.MultiOrders)), s.MultiLines, s.MultiProducts, thousands(int64(s.Shoppers)))
	p("- Scenario 4: one shopper, %s orders one after another after %d unmeasured warm-up orders, coalescing on.\n",
		thousands(int64(s.SeqOrders)), s.SeqWarmup)
	p("- Scenario 5: the product service's reservation SQL run with `database/sql` and no services, on one hot row, "+
		"for %s each: (a) `Store.Reserve`'s transaction (insert attempt, `SELECT ... FOR UPDATE`, update stock, insert "+
		"ledger row, update attempt, commit; READ COMMITTED) from %d connections; (b) `Store.ReserveBatch`'s statements "+
		"for %d reservations per transaction from %d connections.\n",
		s.FloorDuration, s.FloorConns, s.FloorBatch, s.Lanes)
	p("- `PRODUCT_COALESCE_LANES` and `ORDER_COALESCE_LANES` %d, `PRODUCT_COALESCE_MAX_BATCH` and `ORDER_COALESCE_MAX_BATCH` %d; every other setting at the services' defaults. "+
		"MariaDB at %s.\n", s.Lanes, s.MaxBatch, s.ServerAddr)
	p("- Shoppers are a closed loop: each sends its next request when the previous one has a definite answer. A 202 " +
		"PENDING order is polled until it settles and a 503 is resent with the same `Idempotency-Key` after " +
		"`Retry-After`, both inside the measured latency. Latencies go into an HdrHistogram in microseconds " +
		"(1 µs to 1 h, 3 significant digits). One HTTP client per run keeps a connection per shopper.\n")
	p("- \"≈ reservations per product-side transaction\" is the attempt log's rows divided by its distinct " +
		"`created_at` values: a multi-row insert stamps its rows with one statement time.\n")
	return b.String()
}

// reading returns a few paragraphs that put the numbers side by side.
func (r *Report) reading() []string {
	find := func(id, mode string) (Result, bool) {
		for _, res := range r.Results {
			if res.ID == id && (mode == "" || res.Mode == mode) && res.Count > 0 {
				return res, true
			}
		}
		return Result{}, false
	}
	rate := func(res Result) string { return thousands(int64(math.Round(res.Rate()))) + "/s" }
	perSecond := func(res Result) string { return thousands(int64(math.Round(res.Rate()))) }
	floor, haveFloor := r.Floor()
	ofFloor := func(res Result) string {
		if !haveFloor || floor.Rate() == 0 {
			return ""
		}
		return fmt.Sprintf(", %s of the DB floor", formatRatio(res.Rate()/floor.Rate()))
	}
	var out []string

	if batch, ok := find(idFloorBatch, ""); ok && haveFloor {
		out = append(out, fmt.Sprintf("**The database floor.** With no services, MariaDB applies %s reservations/s on one hot "+
			"row with one transaction per reservation (5a, %s) and %s/s with %d per transaction (5b, %s): %s. The row lock "+
			"is held for a whole transaction, so one transaction per reservation caps a flash sale at 1 / (lock hold time) "+
			"whatever the services do; the design's figures for this kind of machine are about 2,800/s and 50,000/s.",
			perSecond(floor), floor.Mode, perSecond(batch), r.Settings.FloorBatch, batch.Mode, formatRatio(batch.Rate()/floor.Rate())))
	}

	compare := func(id, what string) {
		off, okOff := find(id, modeOff)
		on, okOn := find(id, modeOn)
		if !okOff || !okOn || off.Rate() == 0 {
			return
		}
		k := on.Rate() / off.Rate()
		s := fmt.Sprintf("**%s.** Coalescing on: %s%s, p99 %s; off: %s%s, p99 %s (on/off %s). ",
			what, rate(on), ofFloor(on), formatLatency(on.Latency.P99, 1), rate(off), ofFloor(off),
			formatLatency(off.Latency.P99, 1), formatRatio(k))
		switch {
		case on.PerTransaction > 0 && on.PerTransaction < 1.2:
			s += fmt.Sprintf("With coalescing on the product service still wrote ≈ %.1f reservations per "+
				"transaction, so the binary measured did not coalesce (the setting had no effect): on and off ran the same "+
				"code path, and their difference is noise.", on.PerTransaction)
		case math.Abs(k-1) < 0.15:
			s += fmt.Sprintf("On batched ≈ %.1f reservations per transaction (off ≈ %.1f), yet the two are within 15 %% "+
				"of each other: here the hot row is not what limits throughput; the CPUs the services, the shoppers and "+
				"MariaDB share are.", on.PerTransaction, off.PerTransaction)
		case k > 1:
			s += fmt.Sprintf("On batched ≈ %.1f reservations per transaction (off ≈ %.1f), so the hot row's lock is "+
				"taken once per batch instead of once per reservation.", on.PerTransaction, off.PerTransaction)
		default:
			s += fmt.Sprintf("On is slower although it batched ≈ %.1f reservations per transaction: the queueing in "+
				"front of the lanes costs more here than the lock it saves.", on.PerTransaction)
		}
		out = append(out, s)
	}
	compare("1", "One hot product, end to end")
	compare("2", "One hot product, product service alone")
	if e2e, ok := find("1", modeOn); ok {
		if alone, ok := find("2", modeOn); ok && alone.Rate() > 0 {
			out = append(out, fmt.Sprintf("With coalescing on, the order service in front of the product service "+
				"(its own two writes per order, batched, the JWT check and a second HTTP hop) leaves %.0f %% of the product "+
				"service's throughput (%s against %s).", 100*e2e.Rate()/alone.Rate(), rate(e2e), rate(alone)))
		}
	}

	if a, ok := find("3a", ""); ok {
		if b, ok := find("3b", ""); ok && a.Rate() > 0 {
			s := fmt.Sprintf("**Five lines per order.** One reserve call with all five lines gives %s (p50 %s) "+
				"against %s (p50 %s) for five calls of one line each, %s: every call of the naive conversion pays a "+
				"round trip, a transaction and an attempt row of its own, and an order is only as fast as its slowest call.",
				rate(b), formatLatency(b.Latency.P50, 1), rate(a), formatLatency(a.Latency.P50, 1), formatRatio(b.Rate()/a.Rate()))
			if c, ok := find("3c", ""); ok {
				s += fmt.Sprintf(" End to end with the one call (3c): %s, p99 %s.", rate(c), formatLatency(c.Latency.P99, 1))
			}
			out = append(out, s)
		}
	}

	if seq, ok := find("4", ""); ok {
		s := fmt.Sprintf("**Latency floor.** One order at a time, with no other shopper, takes p50 %s, p99 %s end to end.",
			formatLatency(seq.Latency.P50, 1), formatLatency(seq.Latency.P99, 1))
		if crowd, ok := find("1", modeOn); ok && seq.Latency.P50 > 0 {
			s += fmt.Sprintf(" In the flash sale (%s shoppers at once, 1 on) the p50 is %s, %.0f× that: the rest is "+
				"waiting in queues, not work.", thousands(int64(r.Settings.Shoppers)), formatLatency(crowd.Latency.P50, 1),
				float64(crowd.Latency.P50)/float64(seq.Latency.P50))
		}
		out = append(out, s)
	}

	out = append(out, fmt.Sprintf("**Noise.** The load average was %s before the run and %s after it, on %d CPUs. "+
		"Everything in this run competed for those CPUs, and other jobs on the machine did too: treat differences "+
		"below about 20 %% as noise and rerun before concluding from them.", r.Machine.LoadBefore, r.LoadAfter, r.Machine.CPUs))
	if !r.OK() {
		out = append(out, "**Some checks failed** (see below): the numbers of a failed run measure something other than "+
			"what the scenario intends.")
	}
	return out
}

// WriteDocs writes the report's markdown to path and its chart to
// ChartFile beside it, creating the directories.
func WriteDocs(path string, r *Report, command string) error {
	chart := filepath.Join(filepath.Dir(path), filepath.FromSlash(ChartFile))
	if err := os.MkdirAll(filepath.Dir(chart), 0o755); err != nil {
		return fmt.Errorf("create chart directory: %w", err)
	}
	if err := WriteChart(chart, r); err != nil {
		return err
	}
	if err := os.WriteFile(path, []byte(r.Markdown(command)), 0o644); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	return nil
}

// thousands formats n with comma separators: 20000 -> "20,000".
func thousands(n int64) string {
	s := strconv.FormatInt(n, 10)
	neg := strings.HasPrefix(s, "-")
	s = strings.TrimPrefix(s, "-")
	var b strings.Builder
	for i, c := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(c)
	}
	if neg {
		return "-" + b.String()
	}
	return b.String()
}

// formatLatency formats a percentile with three significant digits, the
// histogram's precision; with no samples it is a dash.
func formatLatency(d time.Duration, samples int64) string {
	ms := float64(d) / float64(time.Millisecond)
	switch {
	case samples == 0:
		return "–"
	case ms < 9.995:
		return fmt.Sprintf("%.2fms", ms)
	case ms < 99.95:
		return fmt.Sprintf("%.1fms", ms)
	case ms < 999.5:
		return fmt.Sprintf("%.0fms", ms)
	case ms < 9995:
		return fmt.Sprintf("%.2fs", ms/1000)
	default:
		return fmt.Sprintf("%.1fs", ms/1000)
	}
}

// formatRatio formats a ratio as "0.42×", with more digits when it is
// small.
func formatRatio(x float64) string {
	if x < 0.1 {
		return fmt.Sprintf("%.3f×", x)
	}
	return fmt.Sprintf("%.2f×", x)
}
