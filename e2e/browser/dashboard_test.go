package browser_test

import (
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

// stuckAfter is the order service's STUCK_AFTER in the dashboard test, short
// so that an order waiting on a stopped product service is flagged soon.
const stuckAfter = 3 * time.Second

// TestDashboardStuckOrder stops the product service, places an order that
// stays PENDING, watches the dashboard flag it stuck, restarts the product
// service and sees the order settle on both pages.
func TestDashboardStuckOrder(t *testing.T) {
	browser := newBrowser(t)
	s, products := startStack(t, stackConfig{orderEnv: map[string]string{
		"STUCK_AFTER":       stuckAfter.String(),
		"ORDER_SYNC_BUDGET": "1s",
		"PRODUCT_TIMEOUT":   "300ms",
		"RECOVERY_INTERVAL": "500ms",
	}}, shopCatalog)

	// Some traffic for the charts: confirmed orders and a sold-out one.
	mug := products["BR-MUG"].ID
	for i := range 12 {
		if got := placeViaAPI(t, s, mug, 1+i%3); got != http.StatusCreated {
			t.Fatalf("order %d = %d, want 201", i, got)
		}
	}
	if got := placeViaAPI(t, s, products["BR-BOOTS"].ID, 3); got != http.StatusConflict {
		t.Fatalf("sold-out order = %d, want 409", got)
	}

	dash := page{t, newTab(t, browser)}
	dash.do("open the dashboard", chromedp.Navigate(s.OrderURL+"/ops/"))
	// Signed out, the page asks for the admin token; a wrong one is refused.
	dash.do("sign in with a wrong token",
		chromedp.WaitVisible(chromedp.ID("admin-token")),
		chromedp.SendKeys(chromedp.ID("admin-token"), "not-the-admin-token"),
		chromedp.Click(chromedp.CSS(`#signin-form button[type="submit"]`)),
	)
	dash.until("the refusal", `document.getElementById('signin-error').textContent.includes('refused')`, waitTimeout)
	dash.eval(`document.getElementById('admin-token').value = ''`)
	dash.do("sign in",
		chromedp.SendKeys(chromedp.ID("admin-token"), s.AdminToken),
		chromedp.Click(chromedp.CSS(`#signin-form button[type="submit"]`)),
		chromedp.WaitVisible(chromedp.ID("board")),
	)
	dash.until("the counts", `document.getElementById('count-unsettled').textContent === '0'`, waitTimeout)
	dash.until("orders in the window", `document.querySelector('#window-counts [data-status="CONFIRMED"]') &&
		document.querySelector('#window-counts [data-status="CONFIRMED"]').textContent === 'CONFIRMED 12'`, waitTimeout)
	dash.until("the orders-per-second bars", `document.querySelectorAll('#chart-rate rect.bar').length > 0`, waitTimeout)
	dash.until("the time-to-settle line", `document.querySelectorAll('#chart-settle circle.p50').length > 0`, waitTimeout)
	dash.until("the dead-letter count", `document.getElementById('dlq-count').textContent === '0'`, waitTimeout)

	shop := shop{page{t, newTab(t, browser)}}
	shop.open(s.OrderURL)

	if err := s.Product.Stop(); err != nil {
		t.Fatalf("stop the product service: %v", err)
	}
	shop.addToCart("BR-SNEAKER", 1)
	if state := shop.placeOrder(`'pending','confirmed','soldout','failed','error','busy'`); state != "pending" {
		t.Fatalf("with the product service down the result = %s, want pending:\n%s", state, shop.text("#result"))
	}
	if result := shop.text("#result"); !strings.Contains(result, "We are confirming your order") {
		t.Errorf("pending result = %q", result)
	}
	o := latestOrder(t, s)
	if o.Status != "PENDING" {
		t.Fatalf("the order through the API = %+v, want PENDING", o)
	}

	row := `#unsettled tr[data-order-id="` + o.OrderID + `"]`
	dash.until("the order flagged stuck", `document.querySelector('`+row+`.stuck[data-stuck="true"]')`, waitTimeout)
	text := dash.text(row)
	for _, want := range []string{"PENDING", "STUCK", demoShopper, "#1 SENT"} {
		if !strings.Contains(text, want) {
			t.Errorf("stuck row %q lacks %q", text, want)
		}
	}
	if lastErr := dash.text(row + " td.err"); lastErr == "—" || lastErr == "" {
		t.Errorf("stuck row shows no last error")
	}
	dash.until("the stuck count", `Number(document.getElementById('count-stuck').textContent) >= 1 &&
		document.getElementById('card-stuck').classList.contains('alert')`, waitTimeout)
	dash.screenshot("dashboard.png")

	if err := s.Product.Start(t.Context()); err != nil {
		t.Fatalf("restart the product service: %v", err)
	}
	// The recovery worker backs off while the product service is down; the
	// operator asks for a recheck until the order settles.
	deadline := time.Now().Add(settleTimeout)
	for {
		gone := dash.eval(`document.querySelector('` + row + `') === null`)
		if gone == "true" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the order is still unsettled %s after the restart:\n%s", settleTimeout, dash.body())
		}
		dash.eval(`(() => { const b = document.querySelector('` + row + ` button.recheck'); if (b && !b.disabled) b.click(); return true })()`)
		time.Sleep(2 * time.Second)
	}
	if state := shop.until("the order to settle on the storefront",
		`(() => { const s = document.getElementById('result').dataset.state; return s !== 'pending' ? s : null })()`, settleTimeout); state != "confirmed" {
		t.Fatalf("after the restart the result = %s, want confirmed:\n%s", state, shop.text("#result"))
	}
	if result := shop.text("#result"); !strings.Contains(result, "Total $89.00") {
		t.Errorf("confirmed result = %q, want Total $89.00", result)
	}
	if o := latestOrder(t, s); o.Status != "CONFIRMED" {
		t.Errorf("the order through the API = %+v, want CONFIRMED", o)
	}
	dash.until("nothing unsettled", `document.getElementById('count-unsettled').textContent === '0' &&
		document.getElementById('unsettled-empty').hidden === false`, waitTimeout)

	// Reconciliation on demand: stock is conserved across both databases.
	dash.do("run the reconciliation", chromedp.Click(chromedp.ID("reconcile")))
	if ok := dash.until("the reconciliation", `document.querySelector('#reconcile-result [data-ok]') &&
		document.querySelector('#reconcile-result [data-ok]').dataset.ok`, waitTimeout); ok != "true" {
		t.Errorf("reconciliation = %s:\n%s", ok, dash.text("#reconcile-result"))
	}
	if got := dash.text("#count-unsettled"); got != strconv.Itoa(0) {
		t.Errorf("unsettled count = %s, want 0", got)
	}
}
