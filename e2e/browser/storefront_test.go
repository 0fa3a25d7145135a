package browser_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/stockfence/stockfence/e2e/stack"
	"github.com/stockfence/stockfence/shared/contract"
)

// demoShopper is the customer the storefront signs in as.
const demoShopper = "demo-shopper"

var shopCatalog = []contract.NewProduct{
	{SKU: "BR-SNEAKER", Name: "Aurora Runner limited sneakers", PriceCents: 8900, Stock: 5},
	{SKU: "BR-MUG", Name: "Doorbuster espresso mug", PriceCents: 990, Stock: 50},
	{SKU: "BR-BOOTS", Name: "Last-pair trail boots", PriceCents: 12900, Stock: 1},
}

// apiOrder is what the tests read of an order through the API.
type apiOrder struct {
	OrderID    string `json:"orderId"`
	Status     string `json:"status"`
	Reason     string `json:"reason"`
	TotalCents *int64 `json:"totalCents"`
	Shortages  []contract.Shortage
}

// latestOrder returns the shopper's newest order, read through the API
// with the stack's demo token: what the page shows is checked against it.
func latestOrder(t *testing.T, s *stack.Stack) apiOrder {
	t.Helper()
	var page struct {
		Orders []apiOrder `json:"orders"`
	}
	getJSON(t, s.OrderURL+"/orders?limit=1", s.DemoToken, &page)
	if len(page.Orders) != 1 {
		t.Fatalf("the shopper has no orders")
	}
	return page.Orders[0]
}

func getJSON(t *testing.T, url, token string, v any) {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), http.MethodGet, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s = %s", url, resp.Status)
	}
	if err := json.NewDecoder(resp.Body).Decode(v); err != nil {
		t.Fatalf("GET %s: decode: %v", url, err)
	}
}

// placeViaAPI places an order as the demo shopper without the page, for
// traffic the dashboard charts; it returns the answer's status.
func placeViaAPI(t *testing.T, s *stack.Stack, productID int64, qty int) int {
	t.Helper()
	body, _ := json.Marshal(map[string]any{"items": []contract.Item{{ProductID: productID, Quantity: qty}}})
	req, err := http.NewRequestWithContext(t.Context(), http.MethodPost, s.OrderURL+"/orders", bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+s.DemoToken)
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Idempotency-Key", stack.NewSecret()[:32])
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("POST /orders: %v", err)
	}
	resp.Body.Close()
	return resp.StatusCode
}

// shop is the storefront in a tab.
type shop struct {
	page
}

func (sh shop) open(url string) {
	sh.t.Helper()
	sh.do("open the storefront", chromedp.Navigate(url+"/"))
	sh.until("the demo shopper to be signed in",
		`document.getElementById('who').textContent.includes('`+demoShopper+`')`, waitTimeout)
	sh.until("the catalog", `document.querySelectorAll('#catalog article.product').length >= 1`, waitTimeout)
}

// addToCart sets the quantity on a product's card and adds it.
func (sh shop) addToCart(sku string, qty int) {
	sh.t.Helper()
	card := `#catalog article[data-sku="` + sku + `"]`
	sh.do("add "+sku+" to the cart",
		chromedp.WaitEnabled(chromedp.CSS(card+" button.add")),
		chromedp.SetValue(chromedp.CSS(card+" input.qty"), strconv.Itoa(qty)),
		chromedp.Click(chromedp.CSS(card+" button.add")),
	)
	sh.until(sku+" in the cart", fmt.Sprintf(`document.querySelector('#cart li[data-product-id="' +
		document.querySelector('%s').dataset.productId + '"]')`, card), waitTimeout)
}

// placeOrder presses Place order and returns the state the result box
// settles on (confirmed, soldout, failed, error, busy) or pending.
func (sh shop) placeOrder(until string) string {
	sh.t.Helper()
	sh.do("press Place order", chromedp.WaitEnabled(chromedp.ID("place")), chromedp.Click(chromedp.ID("place")))
	return sh.until("the order's answer",
		`(() => { const s = document.getElementById('result').dataset.state;
			return [`+until+`].includes(s) ? s : null })()`, waitTimeout)
}

// TestStorefront places an order that is confirmed, one for more than is in
// stock, and cancels the first, all through the page as a shopper would.
func TestStorefront(t *testing.T) {
	browser := newBrowser(t)
	s, products := startStack(t, stackConfig{}, shopCatalog)
	browserTab := newTab(t, browser)
	shop{page{t, browserTab}}.open(s.OrderURL)

	t.Run("confirmed", func(t *testing.T) {
		sh := shop{page{t, browserTab}}
		sh.addToCart("BR-SNEAKER", 2)
		sh.addToCart("BR-MUG", 1)
		if got := sh.text("#cart-total"); got != "$187.90" {
			t.Errorf("cart total = %q, want $187.90", got)
		}
		if state := sh.placeOrder(`'confirmed','soldout','failed','error','busy'`); state != "confirmed" {
			t.Fatalf("result = %s, want confirmed:\n%s", state, sh.text("#result"))
		}
		result := sh.text("#result")
		for _, want := range []string{"Order confirmed", "Total $187.90", "2 × Aurora Runner limited sneakers", "1 × Doorbuster espresso mug"} {
			if !strings.Contains(result, want) {
				t.Errorf("result %q lacks %q", result, want)
			}
		}
		o := latestOrder(t, s)
		if o.Status != "CONFIRMED" || o.TotalCents == nil || *o.TotalCents != 18790 {
			t.Fatalf("the order through the API = %+v, want CONFIRMED with total 18790", o)
		}
		if !strings.Contains(result, "#"+o.OrderID[:8]) {
			t.Errorf("result %q does not name order %s", result, o.OrderID[:8])
		}
		sh.until("the order in the history", `document.querySelector('#orders li.order[data-order-id="`+o.OrderID+`"][data-status="CONFIRMED"]')`, waitTimeout)
		sh.until("the cart to be emptied", `document.querySelector('#cart li') === null`, waitTimeout)
		sh.until("the live stock to drop to 3", `document.querySelector('#catalog article[data-sku="BR-SNEAKER"] .stock').textContent === 'Only 3 left'`, waitTimeout)
		sh.screenshot("storefront.png")
	})

	t.Run("sold out", func(t *testing.T) {
		sh := shop{page{t, browserTab}}
		sh.addToCart("BR-BOOTS", 2)
		if state := sh.placeOrder(`'confirmed','soldout','failed','error','busy'`); state != "soldout" {
			t.Fatalf("result = %s, want soldout:\n%s", state, sh.text("#result"))
		}
		result := sh.text("#result")
		for _, want := range []string{"Sorry, sold out", "Only 1 Last-pair trail boots left — you asked for 2.", "Nothing was charged"} {
			if !strings.Contains(result, want) {
				t.Errorf("result %q lacks %q", result, want)
			}
		}
		o := latestOrder(t, s)
		boots := products["BR-BOOTS"].ID
		if o.Status != "FAILED" || o.Reason != contract.ReasonInsufficientStock || len(o.Shortages) != 1 ||
			o.Shortages[0] != (contract.Shortage{ProductID: boots, Requested: 2, Available: 1}) {
			t.Fatalf("the order through the API = %+v, want FAILED insufficient_stock, boots 2 asked 1 left", o)
		}
		// The cart is kept, and one click makes it what is left.
		sh.do("take what is left", chromedp.Click(chromedp.Search(`//button[text()="Change my cart to what is left"]`)))
		sh.until("the cart to hold 1 pair", `document.querySelector('#cart li[data-product-id="`+strconv.FormatInt(boots, 10)+`"] .q').textContent === '1'`, waitTimeout)
	})

	t.Run("cancel", func(t *testing.T) {
		sh := shop{page{t, browserTab}}
		var page struct {
			Orders []apiOrder `json:"orders"`
		}
		getJSON(t, s.OrderURL+"/orders?limit=2", s.DemoToken, &page)
		if len(page.Orders) != 2 || page.Orders[1].Status != "CONFIRMED" {
			t.Fatalf("orders = %+v, want the sold-out one and the confirmed one", page.Orders)
		}
		id := page.Orders[1].OrderID
		row := `#orders li.order[data-order-id="` + id + `"]`
		sh.do("cancel the confirmed order", chromedp.Click(chromedp.CSS(row+" button.cancel")))
		// CANCELLING until the product service has given the stock back
		// over Kafka, then CANCELLED; the page follows by itself.
		sh.until("the order to be cancelled", `document.querySelector('`+row+`[data-status="CANCELLED"]')`, settleTimeout)
		if note := sh.text(row + " .note"); !strings.Contains(note, "nothing is charged") {
			t.Errorf("cancelled order's note = %q", note)
		}
		sh.until("the sneakers back in stock", `document.querySelector('#catalog article[data-sku="BR-SNEAKER"] .stock').textContent === 'Only 5 left'`, waitTimeout)
	})
}

// TestStorefrontRetry loses the answer to an order, then gets a busy shop,
// then an answer: each retry sends the same Idempotency-Key, so exactly one
// order is made and the page shows it confirmed.
func TestStorefrontRetry(t *testing.T) {
	browser := newBrowser(t)
	s, _ := startStack(t, stackConfig{}, shopCatalog)
	browserTab := newTab(t, browser)
	sh := shop{page{t, browserTab}}
	sh.open(s.OrderURL)
	ic := interceptOrders(t, browserTab)

	sh.addToCart("BR-MUG", 2)
	sh.do("press Place order", chromedp.Click(chromedp.ID("place")))
	first := ic.next("the order")
	key := ic.idempotencyKey(first)
	ic.loseAnswer(first)
	if state := sh.until("the lost answer", `(() => { const s = document.getElementById('result').dataset.state;
		return s !== 'working' ? s : null })()`, waitTimeout); state != "error" {
		t.Fatalf("after a lost answer the result = %s, want error:\n%s", state, sh.text("#result"))
	}
	if result := sh.text("#result"); !strings.Contains(result, "We could not reach the shop") || !strings.Contains(result, "never be charged twice") {
		t.Errorf("lost-answer result = %q", result)
	}
	made := latestOrder(t, s) // the order exists, although the page was not told

	sh.do("try again", chromedp.Click(chromedp.CSS("#result button")))
	second := ic.next("the first retry")
	if got := ic.idempotencyKey(second); got != key {
		t.Fatalf("the retry sent Idempotency-Key %q, want the first one, %q", got, key)
	}
	ic.answerBusy(second, 2)
	sh.until("the busy shop", `document.getElementById('result').dataset.state === 'busy'`, waitTimeout)
	if result := sh.text("#result"); !strings.Contains(result, "The shop is busy") || !strings.Contains(result, "Try again in") {
		t.Errorf("busy result = %q", result)
	}
	if sh.eval(`document.querySelector('#result button').disabled`) != "true" {
		t.Error("Try again is enabled before Retry-After has passed")
	}
	sh.do("try again after Retry-After",
		chromedp.WaitEnabled(chromedp.CSS("#result button")),
		chromedp.Click(chromedp.CSS("#result button")))
	third := ic.next("the second retry")
	if got := ic.idempotencyKey(third); got != key {
		t.Fatalf("the second retry sent Idempotency-Key %q, want %q", got, key)
	}
	ic.pass(third)
	if state := sh.until("the answer", `(() => { const s = document.getElementById('result').dataset.state;
		return ['confirmed','soldout','failed','error','busy'].includes(s) ? s : null })()`, waitTimeout); state != "confirmed" {
		t.Fatalf("result = %s, want confirmed:\n%s", state, sh.text("#result"))
	}
	if result := sh.text("#result"); !strings.Contains(result, "#"+made.OrderID[:8]) || !strings.Contains(result, "Total $19.80") {
		t.Errorf("confirmed result = %q, want order %s with Total $19.80", result, made.OrderID[:8])
	}
	var page struct {
		Orders []apiOrder `json:"orders"`
	}
	getJSON(t, s.OrderURL+"/orders?limit=10", s.DemoToken, &page)
	if len(page.Orders) != 1 || page.Orders[0].OrderID != made.OrderID || page.Orders[0].Status != "CONFIRMED" {
		t.Fatalf("orders = %+v, want the one CONFIRMED order %s", page.Orders, made.OrderID)
	}

	// A new cart submission is a new order with a new key.
	sh.addToCart("BR-MUG", 1)
	sh.do("press Place order", chromedp.Click(chromedp.ID("place")))
	fourth := ic.next("a new order")
	if got := ic.idempotencyKey(fourth); got == key || got == "" {
		t.Fatalf("a new submission sent Idempotency-Key %q, want a fresh one", got)
	}
	ic.pass(fourth)
	sh.until("the new order", `document.getElementById('result').dataset.state === 'confirmed' &&
		document.getElementById('result').textContent.includes('Total $9.90')`, waitTimeout)
}

// TestStorefrontSignIn runs the storefront as production would, with no
// demo token: the shopper pastes a token, which the tab keeps in
// sessionStorage across reloads.
func TestStorefrontSignIn(t *testing.T) {
	browser := newBrowser(t)
	s, _ := startStack(t, stackConfig{signedOut: true}, shopCatalog)
	sh := shop{page{t, newTab(t, browser)}}
	sh.do("open the storefront", chromedp.Navigate(s.OrderURL+"/"), chromedp.WaitVisible(chromedp.ID("token-input")))
	if who := sh.text("#who"); who != "Not signed in" {
		t.Errorf("who = %q, want Not signed in", who)
	}
	// The catalog is public; ordering needs a token.
	sh.until("the catalog", `document.querySelectorAll('#catalog article.product').length === 3`, waitTimeout)
	if sh.eval(`document.getElementById('place').disabled`) != "true" {
		t.Error("Place order is enabled before signing in")
	}

	forged := stack.SignCustomerToken(stack.NewSecret(), "mallory", time.Hour)
	sh.do("paste a token the shop did not sign",
		chromedp.SendKeys(chromedp.ID("token-input"), forged),
		chromedp.Click(chromedp.CSS(`#signin-form button[type="submit"]`)))
	sh.until("the refusal", `document.getElementById('signin-error').textContent.includes('refused')`, waitTimeout)

	sh.eval(`document.getElementById('token-input').value = ''`)
	sh.do("paste the shopper's token",
		chromedp.SendKeys(chromedp.ID("token-input"), s.CustomerToken("alice", time.Hour)),
		chromedp.Click(chromedp.CSS(`#signin-form button[type="submit"]`)))
	sh.until("alice signed in", `document.getElementById('who').textContent.startsWith('Signed in as alice')`, waitTimeout)
	if sh.eval(`document.getElementById('signin').hidden`) != "true" {
		t.Error("the sign-in form is still shown")
	}

	sh.do("reload", chromedp.Reload())
	sh.until("alice still signed in", `document.getElementById('who').textContent.startsWith('Signed in as alice')`, waitTimeout)
	sh.addToCart("BR-MUG", 1)
	if state := sh.placeOrder(`'confirmed','soldout','failed','error','busy'`); state != "confirmed" {
		t.Fatalf("result = %s, want confirmed:\n%s", state, sh.text("#result"))
	}

	sh.do("sign out", chromedp.Click(chromedp.ID("signout")), chromedp.WaitVisible(chromedp.ID("token-input")))
	if got := sh.eval(`sessionStorage.getItem('stockfence.customerToken') === null`); got != "true" {
		t.Error("the token is still in sessionStorage after signing out")
	}
}
