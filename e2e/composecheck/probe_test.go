package composecheck_test

import (
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"
)

// TestHealthcheckProbe builds compose/healthcheck, the probe the service
// images run as their health check, and runs it against a server: exit 0 on
// 2xx only, promptly, and 2 on bad usage.
func TestHealthcheckProbe(t *testing.T) {
	root := repoRoot(t)
	bin := filepath.Join(t.TempDir(), "healthcheck")
	build := exec.Command("go", "build", "-o", bin, ".")
	build.Dir = filepath.Join(root, "compose", "healthcheck")
	// As the Dockerfiles build it: on its own, outside the workspace (with
	// cgo left as it is, to share the build cache; the probe is pure Go).
	build.Env = append(os.Environ(), "GOWORK=off", "GOFLAGS=-buildvcs=false")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build compose/healthcheck: %v\n%s", err, out)
	}

	mux := http.NewServeMux()
	mux.HandleFunc("/readyz", func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(http.StatusOK) })
	mux.HandleFunc("/unready", func(w http.ResponseWriter, _ *http.Request) {
		http.Error(w, "migrations pending", http.StatusServiceUnavailable)
	})
	mux.HandleFunc("/moved", func(w http.ResponseWriter, r *http.Request) { http.Redirect(w, r, "/readyz", http.StatusFound) })
	mux.HandleFunc("/slow", func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-r.Context().Done():
		case <-time.After(5 * time.Second):
		}
	})
	srv := httptest.NewServer(mux)
	defer srv.Close()

	closed, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closedURL := "http://" + closed.Addr().String() + "/readyz"
	closed.Close()

	for _, tc := range []struct {
		name string
		args []string
		want int
	}{
		{"ready", []string{srv.URL + "/readyz"}, 0},
		{"unready", []string{srv.URL + "/unready"}, 1},
		{"redirect not followed", []string{srv.URL + "/moved"}, 1},
		{"not listening", []string{closedURL}, 1},
		{"too slow", []string{"-timeout", "300ms", srv.URL + "/slow"}, 1},
		{"no URL", nil, 2},
		{"two URLs", []string{srv.URL + "/readyz", srv.URL + "/readyz"}, 2},
	} {
		t.Run(tc.name, func(t *testing.T) {
			start := time.Now()
			out, err := exec.Command(bin, tc.args...).CombinedOutput()
			code := 0
			var exit *exec.ExitError
			if errors.As(err, &exit) {
				code = exit.ExitCode()
			} else if err != nil {
				t.Fatal(err)
			}
			if code != tc.want {
				t.Errorf("healthcheck %q exits %d, want %d\n%s", tc.args, code, tc.want, out)
			}
			if d := time.Since(start); d > 3*time.Second {
				t.Errorf("healthcheck %q took %s", tc.args, d)
			}
		})
	}
}
