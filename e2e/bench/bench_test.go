package bench_test

import (
	"bytes"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stockfence/stockfence/e2e/bench"
)

func TestParseSelection(t *testing.T) {
	tests := []struct {
		in      string
		want    bench.Selection
		wantErr bool
	}{
		{in: "", want: bench.Selection{1, 2, 3, 4, 5}},
		{in: "all", want: bench.Selection{1, 2, 3, 4, 5}},
		{in: "5,2,2", want: bench.Selection{2, 5}},
		{in: " 1 , 3", want: bench.Selection{1, 3}},
		{in: "6", wantErr: true},
		{in: "0", wantErr: true},
		{in: "3a", wantErr: true},
		{in: "1,,2", wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, err := bench.ParseSelection(tt.in)
			if tt.wantErr {
				if err == nil {
					t.Fatalf("ParseSelection(%q) = %v, want an error", tt.in, got)
				}
				return
			}
			if err != nil {
				t.Fatalf("ParseSelection(%q): %v", tt.in, err)
			}
			if !slices.Equal(got, tt.want) {
				t.Fatalf("ParseSelection(%q) = %v, want %v", tt.in, got, tt.want)
			}
		})
	}
}

func TestLatenciesSummary(t *testing.T) {
	l := bench.NewLatencies()
	if got := l.Summary(); got != (bench.LatencySummary{}) {
		t.Fatalf("empty summary = %+v, want zero", got)
	}
	for i := 1; i <= 1000; i++ {
		l.Record(time.Duration(i) * time.Millisecond)
	}
	got := l.Summary()
	if got.Count != 1000 {
		t.Fatalf("count = %d, want 1000", got.Count)
	}
	// Three significant digits: every value is within 0.1 % (plus one
	// bucket) of the exact percentile.
	for _, c := range []struct {
		name      string
		got, want time.Duration
	}{
		{"p50", got.P50, 500 * time.Millisecond},
		{"p90", got.P90, 900 * time.Millisecond},
		{"p99", got.P99, 990 * time.Millisecond},
		{"max", got.Max, 1000 * time.Millisecond},
	} {
		if diff := c.got - c.want; diff < -c.want/500 || diff > c.want/500 {
			t.Errorf("%s = %v, want %v within 0.2 %%", c.name, c.got, c.want)
		}
	}
}

func TestLatenciesClampAndConcurrency(t *testing.T) {
	l := bench.NewLatencies()
	var wg sync.WaitGroup
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range 1000 {
				l.Record(0) // below 1 µs: counted as 1 µs
			}
		}()
	}
	wg.Wait()
	l.Record(2 * time.Hour) // above the range: counted as 1 h
	got := l.Summary()
	if got.Count != 8001 {
		t.Fatalf("count = %d, want 8001", got.Count)
	}
	if got.P50 != time.Microsecond {
		t.Errorf("p50 = %v, want 1µs", got.P50)
	}
	if got.Max < 59*time.Minute || got.Max > 61*time.Minute {
		t.Errorf("max = %v, want about 1h", got.Max)
	}
}

func ok(name string) bench.Check { return bench.Check{Name: name, OK: true, Detail: "fine"} }

// sample is a report with a floor, an on/off pair and a failed result.
func sample() *bench.Report {
	lat := func(p50 time.Duration) bench.LatencySummary {
		return bench.LatencySummary{Count: 10, P50: p50, P90: 2 * p50, P99: 3 * p50, Max: 4 * p50}
	}
	return &bench.Report{
		Machine:   bench.Machine{CPUs: 2, CPUModel: "Test CPU", MemoryBytes: 8 << 30, MariaDB: "10.11.0-MariaDB", Durability: "innodb_flush_log_at_trx_commit=1", Go: "go1.26 linux/amd64", LoadBefore: "0.10 0.20 0.30"},
		Settings:  bench.Settings{Shoppers: 1000, HotOrders: 20000, HotStock: 10000, FloorBatch: 100, Lanes: 4, MaxBatch: 200},
		Started:   time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC),
		Elapsed:   5 * time.Minute,
		LoadAfter: "1.00 1.00 1.00",
		Results: []bench.Result{
			{ID: "1", Scenario: "hot product, end to end", Mode: "off", Unit: "orders", Count: 20000, Elapsed: 20 * time.Second,
				Latency: lat(1234 * time.Millisecond), PerTransaction: 1, Checks: []bench.Check{ok("all answered")}},
			{ID: "1", Scenario: "hot product, end to end", Mode: "on", Unit: "orders", Count: 20000, Elapsed: 10 * time.Second,
				Latency: lat(4560 * time.Microsecond), PerTransaction: 12.5, Checks: []bench.Check{ok("all answered")}},
			{ID: "2", Scenario: "hot product, productservice alone", Mode: "off", Unit: "reservations", Count: 100, Elapsed: time.Second,
				Checks: []bench.Check{ok("all answered"), {Name: "confirmed count", Detail: "9,999 CONFIRMED, want 10,000"}}},
			{ID: "5a", Scenario: "DB floor, 1 reservation per transaction", Mode: "64 conns", Unit: "reservations", Count: 40000,
				Elapsed: 10 * time.Second, Latency: lat(20 * time.Millisecond), PerTransaction: 1, Checks: []bench.Check{ok("applied count")}},
		},
	}
}

func TestResultVerdict(t *testing.T) {
	rep := sample()
	tests := []struct {
		res  bench.Result
		want string
	}{
		{rep.Results[0], "ok"},
		{rep.Results[2], "FAIL: confirmed count"},
		{bench.Result{}, "FAIL: nothing checked"},
	}
	for _, tt := range tests {
		if got := tt.res.Verdict(); got != tt.want {
			t.Errorf("Verdict() of %s %s = %q, want %q", tt.res.ID, tt.res.Mode, got, tt.want)
		}
	}
	if rep.OK() {
		t.Errorf("OK() = true for a report with a failed check")
	}
	if got := rep.Results[0].Rate(); got != 1000 {
		t.Errorf("Rate() = %v, want 1000", got)
	}
}

func TestTable(t *testing.T) {
	table := sample().Table()
	lines := strings.Split(strings.TrimSuffix(table, "\n"), "\n")
	if len(lines) != 6 {
		t.Fatalf("table has %d lines, want header, rule and 4 rows:\n%s", len(lines), table)
	}
	for _, want := range []string{"scenario", "orders/s", "p99", "vs DB floor", "correctness"} {
		if !strings.Contains(lines[0], want) {
			t.Errorf("header %q lacks %q", lines[0], want)
		}
	}
	rows := []struct {
		line int
		want []string
	}{
		// 1,000/s against the floor's 4,000/s; latencies with three digits.
		{2, []string{"1 hot product, end to end", "off", "20,000", "1,000", "1.23s", "2.47s", "3.70s", "4.94s", "0.25×", "ok"}},
		{3, []string{"on", "2,000", "4.56ms", "9.12ms", "13.7ms", "18.2ms", "0.50×"}},
		// No latencies recorded: dashes.
		{4, []string{"100", "–", "FAIL: confirmed count"}},
		{5, []string{"5a DB floor", "40,000", "4,000", "20.0ms", "1.00×"}},
	}
	for _, r := range rows {
		for _, want := range r.want {
			if !strings.Contains(lines[r.line], want) {
				t.Errorf("line %d %q lacks %q", r.line, lines[r.line], want)
			}
		}
	}
	for i, line := range lines {
		if strings.HasSuffix(line, " ") {
			t.Errorf("line %d ends with a space: %q", i, line)
		}
	}
}

func TestTableWithoutFloor(t *testing.T) {
	rep := sample()
	rep.Results = rep.Results[:2]
	if _, ok := rep.Floor(); ok {
		t.Fatal("Floor() found a floor in a report without 5a")
	}
	if table := rep.Table(); strings.Contains(table, "×") {
		t.Errorf("a table without a floor shows ratios:\n%s", table)
	}
}

func TestMarkdown(t *testing.T) {
	md := sample().Markdown("make bench")
	for _, want := range []string{
		"Produced by `make bench` on 2026-01-02 03:04 UTC",
		"| CPUs (nproc) | 2 × Test CPU |",
		"| Memory | 8.0 GiB |",
		"10.11.0-MariaDB",
		"go1.26 linux/amd64",
		"0.10 0.20 0.30 before, 1.00 1.00 1.00 after",
		"| scenario | mode | orders | orders/s |",
		"|:---|:---|---:|---:|",
		"![orders per second by scenario and mode](img/bench.png)",
		// on/off 2.00× with 12.5 reservations per transaction.
		"on/off 2.00×",
		"taken once per batch",
		"- FAIL confirmed count: 9,999 CONFIRMED, want 10,000",
		"**Some checks failed**",
	} {
		if !strings.Contains(md, want) {
			t.Errorf("markdown lacks %q", want)
		}
	}
}

func TestReadingSpotsABinaryThatDoesNotCoalesce(t *testing.T) {
	rep := sample()
	rep.Results[1].PerTransaction = 1.0
	rep.Results[1].Elapsed = 20 * time.Second
	if md := rep.Markdown("make bench"); !strings.Contains(md, "did not coalesce") {
		t.Errorf("reading does not say that on wrote one reservation per transaction:\n%s", md)
	}
}

func TestWriteDocs(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "benchmarks.md")
	if err := bench.WriteDocs(path, sample(), "make bench"); err != nil {
		t.Fatalf("WriteDocs: %v", err)
	}
	md, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Contains(md, []byte("# Benchmarks")) {
		t.Errorf("%s does not start a benchmarks page", path)
	}
	png, err := os.ReadFile(filepath.Join(dir, "img", "bench.png"))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.HasPrefix(png, []byte("\x89PNG\r\n\x1a\n")) {
		t.Errorf("img/bench.png is not a PNG")
	}
}
