package bench

import (
	"strings"
	"testing"
)

func TestMemTotal(t *testing.T) {
	in := "MemFree:         123 kB\nMemTotal:       24576 kB\n"
	if got, want := memTotal(strings.NewReader(in)), int64(24576*1024); got != want {
		t.Errorf("memTotal = %d, want %d", got, want)
	}
	if got := memTotal(strings.NewReader("nothing here\n")); got != 0 {
		t.Errorf("memTotal without MemTotal = %d, want 0", got)
	}
}

func TestCPUModel(t *testing.T) {
	in := "processor\t: 0\nvendor_id\t: AuthenticAMD\nmodel name\t: AMD EPYC 7B13\nmodel name\t: other\n"
	if got, want := cpuModel(strings.NewReader(in)), "AMD EPYC 7B13"; got != want {
		t.Errorf("cpuModel = %q, want %q", got, want)
	}
}

func TestThousands(t *testing.T) {
	for in, want := range map[int64]string{0: "0", 999: "999", 1000: "1,000", 20000: "20,000", 1234567: "1,234,567", -45000: "-45,000"} {
		if got := thousands(in); got != want {
			t.Errorf("thousands(%d) = %q, want %q", in, got, want)
		}
	}
}
