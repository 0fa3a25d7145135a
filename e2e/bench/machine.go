package bench

import (
	"bufio"
	"context"
	"database/sql"
	"fmt"
	"io"
	"os"
	"runtime"
	"strconv"
	"strings"
)

// Machine describes where a report was produced.
type Machine struct {
	// CPUs is the number of logical CPUs (nproc), CPUModel their model.
	CPUs     int
	CPUModel string
	// MemoryBytes is the total memory (MemTotal of /proc/meminfo).
	MemoryBytes int64
	// MariaDB is SELECT VERSION(); Durability the settings that decide what
	// a commit costs.
	MariaDB    string
	Durability string
	// Go is the toolchain that built the harness, e.g. go1.26.8
	// linux/amd64.
	Go string
	// LoadBefore is the load average when the run began.
	LoadBefore string
}

func readMachine(ctx context.Context, db *sql.DB) (Machine, error) {
	m := Machine{
		CPUs:       runtime.NumCPU(),
		Go:         runtime.Version() + " " + runtime.GOOS + "/" + runtime.GOARCH,
		LoadBefore: loadAverage(),
	}
	if f, err := os.Open("/proc/meminfo"); err == nil {
		m.MemoryBytes = memTotal(f)
		f.Close()
	}
	if f, err := os.Open("/proc/cpuinfo"); err == nil {
		m.CPUModel = cpuModel(f)
		f.Close()
	}
	if err := db.QueryRowContext(ctx, "SELECT VERSION()").Scan(&m.MariaDB); err != nil {
		return m, fmt.Errorf("read server version: %w", err)
	}
	var flush, binlog string
	if err := db.QueryRowContext(ctx, "SELECT @@innodb_flush_log_at_trx_commit, @@log_bin").Scan(&flush, &binlog); err != nil {
		return m, fmt.Errorf("read durability settings: %w", err)
	}
	m.Durability = fmt.Sprintf("innodb_flush_log_at_trx_commit=%s, log_bin=%s", flush, binlog)
	return m, nil
}

// memTotal reads MemTotal (in kB) from /proc/meminfo and returns bytes; 0
// if it is not there.
func memTotal(r io.Reader) int64 {
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) >= 2 && fields[0] == "MemTotal:" {
			kb, err := strconv.ParseInt(fields[1], 10, 64)
			if err != nil {
				return 0
			}
			return kb * 1024
		}
	}
	return 0
}

// cpuModel reads the first "model name" of /proc/cpuinfo; empty if there is
// none.
func cpuModel(r io.Reader) string {
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		name, value, ok := strings.Cut(sc.Text(), ":")
		if ok && strings.TrimSpace(name) == "model name" {
			return strings.TrimSpace(value)
		}
	}
	return ""
}

// loadAverage returns the 1, 5 and 15 minute load averages, e.g.
// "2.33 2.63 1.96", or "unknown".
func loadAverage() string {
	raw, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "unknown"
	}
	fields := strings.Fields(string(raw))
	if len(fields) < 3 {
		return "unknown"
	}
	return strings.Join(fields[:3], " ")
}
