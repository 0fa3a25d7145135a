package browser_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/stockfence/stockfence/e2e/stack"
	"github.com/stockfence/stockfence/shared/contract"
	"github.com/stockfence/stockfence/shared/mysqldb/mysqltest"
)

// chromiumEnv names a Chromium or Chrome binary to use instead of the one
// on the PATH.
const chromiumEnv = "CHROMIUM_PATH"

// howToInstall is the hint of a test that found no Chromium.
const howToInstall = "install Debian's Chromium with: apt-get update && apt-get install -y chromium " +
	"(or point " + chromiumEnv + " at a Chromium or Chrome binary)"

// screenshotsEnv, when set to 1, makes the tests save their screenshots to
// docs/img.
const screenshotsEnv = "SCREENSHOTS"

// waitTimeout bounds one wait for the page; settling after a product
// service restart gets settleTimeout.
const (
	waitTimeout   = 30 * time.Second
	settleTimeout = 90 * time.Second
)

// findChromium returns the browser to drive: $CHROMIUM_PATH, else chromium
// or chromium-browser on the PATH, else /usr/bin/chromium.
func findChromium() (string, error) {
	if p := os.Getenv(chromiumEnv); p != "" {
		if _, err := os.Stat(p); err != nil {
			return "", fmt.Errorf("%s=%s: %w", chromiumEnv, p, err)
		}
		return p, nil
	}
	for _, name := range []string{"chromium", "chromium-browser"} {
		if p, err := exec.LookPath(name); err == nil {
			return p, nil
		}
	}
	if _, err := os.Stat("/usr/bin/chromium"); err == nil {
		return "/usr/bin/chromium", nil
	}
	return "", errors.New("no Chromium found (looked for chromium and chromium-browser on the PATH and /usr/bin/chromium)")
}

// newBrowser starts a headless Chromium for t with a fresh profile and the
// flags this closed network needs (no QUIC, no component updates, no sync,
// no background networking: otherwise Chromium's own connections are
// refused and slow it down). It fails t, never skips, when Chromium is
// missing or does not start. The browser is closed when t ends.
func newBrowser(t *testing.T) context.Context {
	t.Helper()
	path, err := findChromium()
	if err != nil {
		t.Fatalf("%v\n%s", err, howToInstall)
	}
	profile := t.TempDir()
	logPath := filepath.Join(t.TempDir(), "chromium.log")
	logFile, err := os.Create(logPath)
	if err != nil {
		t.Fatal(err)
	}
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(path),
		chromedp.Headless,
		chromedp.NoSandbox,
		chromedp.DisableGPU,
		chromedp.NoFirstRun,
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.UserDataDir(profile),
		chromedp.WindowSize(1280, 900),
		chromedp.CombinedOutput(logFile),
	)
	allocCtx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancel := chromedp.NewContext(allocCtx)
	t.Cleanup(func() {
		cancel()
		cancelAlloc()
		logFile.Close()
	})
	if err := chromedp.Do(ctx); err != nil {
		raw, _ := os.ReadFile(logPath)
		t.Fatalf("start Chromium %s: %v\n%s\nits output:\n%s", path, err, howToInstall, tail(string(raw), 20))
	}
	return ctx
}

// tab is one browser tab and the uncaught exceptions of its pages.
type tab struct {
	ctx context.Context

	mu         sync.Mutex
	exceptions []string
}

// page drives a tab for one test (or subtest), failing that test.
type page struct {
	t *testing.T
	*tab
}

// newTab opens a tab in browser. When t ends, an uncaught exception in any
// of its pages fails t: the pages must not throw.
func newTab(t *testing.T, browser context.Context) *tab {
	t.Helper()
	ctx, cancel := chromedp.NewContext(browser)
	t.Cleanup(cancel)
	if err := chromedp.Do(ctx); err != nil {
		t.Fatalf("open a tab: %v", err)
	}
	tb := &tab{ctx: ctx}
	messages := chromedp.Console(ctx)
	go func() {
		for m, err := range messages {
			if err != nil {
				return
			}
			if m.IsException() {
				tb.mu.Lock()
				tb.exceptions = append(tb.exceptions, m.String())
				tb.mu.Unlock()
			}
		}
	}()
	t.Cleanup(func() {
		tb.mu.Lock()
		defer tb.mu.Unlock()
		for _, e := range tb.exceptions {
			t.Errorf("uncaught exception in the page: %s", e)
		}
	})
	return tb
}

// do runs steps within waitTimeout, failing the test with what the page
// shows when they do not succeed.
func (tb page) do(what string, steps ...chromedp.Action[chromedp.Void]) {
	tb.t.Helper()
	ctx, cancel := context.WithTimeout(tb.ctx, waitTimeout)
	defer cancel()
	if err := chromedp.Do(ctx, steps...); err != nil {
		tb.t.Fatalf("%s: %v\n%s", what, err, tb.body())
	}
}

// until polls the JavaScript expression until it is truthy and returns its
// value as a string; after timeout the test fails with what the page shows.
func (tb page) until(what, expr string, timeout time.Duration) string {
	tb.t.Helper()
	ctx, cancel := context.WithTimeout(tb.ctx, timeout+5*time.Second)
	defer cancel()
	v, err := chromedp.Run(ctx, chromedp.Poll[any](expr,
		chromedp.WithPollingTimeout(timeout), chromedp.WithPollingInterval(100*time.Millisecond)))
	if err != nil {
		tb.t.Fatalf("waiting for %s: %v\n%s", what, err, tb.body())
	}
	return fmt.Sprint(v)
}

// eval evaluates expr and returns its value as a string.
func (tb page) eval(expr string) string {
	tb.t.Helper()
	v, err := chromedp.Run(tb.ctx, chromedp.Evaluate[any](expr))
	if err != nil {
		tb.t.Fatalf("evaluate %s: %v", expr, err)
	}
	return fmt.Sprint(v)
}

// text returns the visible text of the element sel.
func (tb page) text(sel string) string {
	tb.t.Helper()
	ctx, cancel := context.WithTimeout(tb.ctx, waitTimeout)
	defer cancel()
	s, err := chromedp.Run(ctx, chromedp.Text(chromedp.CSS(sel)))
	if err != nil {
		tb.t.Fatalf("read %s: %v\n%s", sel, err, tb.body())
	}
	return s
}

// body is the page's visible text, for failure messages.
func (tb page) body() string {
	ctx, cancel := context.WithTimeout(tb.ctx, 5*time.Second)
	defer cancel()
	s, err := chromedp.Run(ctx, chromedp.Evaluate[string](`document.body ? document.body.innerText : ''`))
	if err != nil {
		return fmt.Sprintf("(page text unavailable: %v)", err)
	}
	return "the page shows:\n" + tail(s, 60)
}

// screenshot saves the whole page to docs/img/name when SCREENSHOTS=1.
func (tb page) screenshot(name string) {
	tb.t.Helper()
	if os.Getenv(screenshotsEnv) != "1" {
		return
	}
	root, err := stack.RepoRoot()
	if err != nil {
		tb.t.Fatal(err)
	}
	// Let the last refresh paint.
	time.Sleep(300 * time.Millisecond)
	png, err := chromedp.Run(tb.ctx, chromedp.FullScreenshot(100))
	if err != nil {
		tb.t.Fatalf("screenshot %s: %v", name, err)
	}
	dir := filepath.Join(root, "docs", "img")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		tb.t.Fatal(err)
	}
	path := filepath.Join(dir, name)
	if err := os.WriteFile(path, png, 0o644); err != nil {
		tb.t.Fatal(err)
	}
	tb.t.Logf("saved %s", path)
}

// stackConfig is how a test wants the system started.
type stackConfig struct {
	// orderEnv is laid over the order service's environment.
	orderEnv map[string]string
	// signedOut starts the storefront without a demo token, as in
	// production: the shopper pastes one.
	signedOut bool
}

// startStack starts both services on fresh databases as cfg says (with a
// demo shopper token for the storefront unless cfg.signedOut) and seeds
// products. Logs' tails are printed when t fails.
func startStack(t *testing.T, cfg stackConfig, products []contract.NewProduct) (*stack.Stack, map[string]contract.Product) {
	t.Helper()
	demo := demoShopper
	if cfg.signedOut {
		demo = ""
	}
	s, err := stack.Start(t.Context(), stack.Options{
		ProductsDSN:  mysqltest.New(t, "browser"),
		OrdersDSN:    mysqltest.New(t, "browser"),
		LogDir:       t.TempDir(),
		DemoCustomer: demo,
		Env:          map[string]string{"PRODUCT_MYSQL_MAX_CONNS": "4", "ORDER_MYSQL_MAX_CONNS": "4"},
		OrderEnv:     cfg.orderEnv,
	})
	if err != nil {
		t.Fatalf("start the stack: %v", err)
	}
	t.Cleanup(func() {
		if err := s.Stop(); err != nil {
			t.Errorf("stop the stack: %v", err)
		}
		if t.Failed() {
			for _, p := range []*stack.Process{s.Product, s.Order} {
				t.Logf("%s log (%s) ends with:\n%s", p.Name, p.LogPath, p.Tail(40))
			}
		}
	})
	seeded, err := stack.Seed(t.Context(), s.ProductURL, s.AdminToken, products)
	if err != nil {
		t.Fatalf("seed: %v", err)
	}
	bySKU := make(map[string]contract.Product, len(seeded))
	for _, p := range seeded {
		bySKU[p.SKU] = p
	}
	return s, bySKU
}

func tail(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
