package bench_test

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/stockfence/stockfence/e2e/bench"
	"github.com/stockfence/stockfence/shared/mysqldb/mysqltest"
)

// TestQuickRun runs the harness as `bench -quick -only=2,5` does, against
// the real product service and MariaDB, and checks that every correctness
// check holds and every number is there. It asserts behaviour, not speed.
func TestQuickRun(t *testing.T) {
	sel, err := bench.ParseSelection("2,5")
	if err != nil {
		t.Fatal(err)
	}
	rep, err := bench.Run(t.Context(), bench.Config{
		Quick:    true,
		Only:     sel,
		Server:   mysqltest.Server(),
		Progress: &logWriter{t: t},
	})
	if err != nil {
		t.Fatalf("Run: %v (%s)", err, mysqltest.HowToStart)
	}
	t.Logf("summary:\n%s", rep.Table())

	var got []string
	for _, res := range rep.Results {
		got = append(got, res.ID+" "+res.Mode)
	}
	if want := []string{"2 off", "2 on", "5a 64 conns", "5b 4 conns"}; strings.Join(got, ", ") != strings.Join(want, ", ") {
		t.Fatalf("results %q, want %q", got, want)
	}
	for _, res := range rep.Results {
		name := res.ID + " " + res.Mode
		for _, c := range res.Checks {
			if !c.OK {
				t.Errorf("%s: check %s failed: %s", name, c.Name, c.Detail)
			}
		}
		if len(res.Checks) < 4 {
			t.Errorf("%s: %d checks, want the answer, count and stock checks", name, len(res.Checks))
		}
		l := res.Latency
		if res.Count <= 0 || res.Rate() <= 0 || l.Count <= 0 || l.P50 <= 0 {
			t.Errorf("%s: count %d, rate %.1f/s, %d latencies with p50 %v: want all positive", name, res.Count, res.Rate(), l.Count, l.P50)
		}
		if l.P50 > l.P90 || l.P90 > l.P99 || l.P99 > l.Max {
			t.Errorf("%s: percentiles out of order: %+v", name, l)
		}
	}
	// Scenario 2 has exactly the quick profile's 2,000 reservations.
	for _, res := range rep.Results[:2] {
		if res.Count != 2000 {
			t.Errorf("2 %s measured %d reservations, want 2000", res.Mode, res.Count)
		}
	}
	// The batched floor applies 100 reservations per transaction, which the
	// attempt log shows.
	if per := rep.Results[3].PerTransaction; per < 50 {
		t.Errorf("5b: %.1f reservations per transaction, want about 100", per)
	}
	if !rep.OK() || rep.LogDir != "" {
		t.Errorf("OK() = %v with logs kept in %q, want a clean run", rep.OK(), rep.LogDir)
	}

	out := filepath.Join(t.TempDir(), "benchmarks.md")
	if err := bench.WriteDocs(out, rep, "make bench BENCH_FLAGS=\"-quick -only=2,5\""); err != nil {
		t.Fatalf("WriteDocs: %v", err)
	}
	md, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Contains(md, []byte("| 5a DB floor, 1 reservation per transaction | 64 conns |")) {
		t.Errorf("%s lacks the floor's row:\n%s", out, md)
	}
	if _, err := os.Stat(filepath.Join(filepath.Dir(out), "img", "bench.png")); err != nil {
		t.Errorf("chart: %v", err)
	}
}

// logWriter sends the harness's progress lines to the test log.
type logWriter struct {
	t  *testing.T
	mu sync.Mutex
}

func (w *logWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}
