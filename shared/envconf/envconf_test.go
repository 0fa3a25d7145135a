package envconf_test

import (
	"strings"
	"testing"
	"time"

	"github.com/stockfence/stockfence/shared/envconf"
)

func TestReader(t *testing.T) {
	env := map[string]string{"D": "250ms", "BAD_D": "soon", "NEG_D": "-1s", "N": "7", "BAD_N": "70", "S": "  x  ", "ON": "on", "BAD_ON": "yes"}
	r := envconf.New(func(k string) string { return env[k] })

	if got := r.String("S", "def"); got != "x" {
		t.Errorf("String = %q, want x", got)
	}
	if got := r.String("UNSET", "def"); got != "def" {
		t.Errorf("String default = %q, want def", got)
	}
	if got := r.Duration("D", "1s"); got != 250*time.Millisecond {
		t.Errorf("Duration = %v, want 250ms", got)
	}
	if got := r.Int("N", 1, 1, 10); got != 7 {
		t.Errorf("Int = %d, want 7", got)
	}
	if !r.Switch("ON", "off") || r.Switch("UNSET", "off") {
		t.Error("Switch: want on for ON and the default off when unset")
	}
	if r.Err() != nil {
		t.Fatalf("Err = %v, want nil", r.Err())
	}
	r.Duration("BAD_D", "1s")
	r.Duration("NEG_D", "1s")
	r.Int("BAD_N", 1, 1, 10)
	r.Required("TOKEN")
	r.Switch("BAD_ON", "on")
	err := r.Err()
	for _, name := range []string{"BAD_D", "NEG_D", "BAD_N", "TOKEN is required", "BAD_ON"} {
		if err == nil || !strings.Contains(err.Error(), name) {
			t.Errorf("Err = %v, want it to name %s", err, name)
		}
	}
}
