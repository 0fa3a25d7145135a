package browser_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/cdproto/fetch"
	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/chromedp"
)

// orderInterceptor pauses the tab's POST /orders requests, so that a test
// can lose an answer or fake one: the network faults a shopper meets.
type orderInterceptor struct {
	t      *testing.T
	ctx    context.Context
	paused chan *fetch.EventRequestPaused
}

// interceptOrders starts pausing the requests to /orders of tb (the order
// list, which has a query, is left alone) until t ends.
func interceptOrders(t *testing.T, tb *tab) *orderInterceptor {
	t.Helper()
	ctx, cancel := context.WithCancel(tb.ctx)
	ic := &orderInterceptor{t: t, ctx: ctx, paused: make(chan *fetch.EventRequestPaused, 8)}
	events := chromedp.Events(ctx, fetch.RequestPaused)
	go func() {
		for ev, err := range events {
			if err != nil {
				return
			}
			ic.paused <- &ev
		}
	}()
	_, err := chromedp.Call(ctx, fetch.Enable, fetch.EnableParams{
		Patterns: []*fetch.RequestPattern{{URLPattern: "*/orders", RequestStage: fetch.RequestStageRequest}},
	})
	if err != nil {
		cancel()
		t.Fatalf("intercept /orders: %v", err)
	}
	t.Cleanup(func() {
		_, _ = chromedp.Call(tb.ctx, fetch.Disable, cdp.Empty{})
		cancel()
	})
	return ic
}

// next returns the next paused request.
func (ic *orderInterceptor) next(what string) *fetch.EventRequestPaused {
	ic.t.Helper()
	select {
	case ev := <-ic.paused:
		return ev
	case <-time.After(waitTimeout):
		ic.t.Fatalf("no request paused for %s within %s", what, waitTimeout)
		return nil
	}
}

// idempotencyKey returns the Idempotency-Key a paused POST carries.
func (ic *orderInterceptor) idempotencyKey(ev *fetch.EventRequestPaused) string {
	ic.t.Helper()
	if ev.Request.Method != "POST" {
		ic.t.Fatalf("paused %s %s, want a POST", ev.Request.Method, ev.Request.URL)
	}
	for name, v := range ev.Request.Headers {
		if strings.EqualFold(name, "Idempotency-Key") {
			return fmt.Sprint(v)
		}
	}
	ic.t.Fatalf("POST %s has no Idempotency-Key", ev.Request.URL)
	return ""
}

// loseAnswer lets the request reach the order service and then drops the
// answer, as a connection reset would: the order exists, the page does not
// know.
func (ic *orderInterceptor) loseAnswer(ev *fetch.EventRequestPaused) {
	ic.t.Helper()
	yes := true
	fetchCall(ic, fetch.ContinueRequest, fetch.ContinueRequestParams{RequestID: ev.RequestID, InterceptResponse: &yes})
	resp := ic.next("the answer to lose")
	if resp.ResponseStatusCode == 0 {
		ic.t.Fatalf("paused %s again at the request stage, want its answer", resp.Request.URL)
	}
	fetchCall(ic, fetch.FailRequest, fetch.FailRequestParams{RequestID: resp.RequestID, ErrorReason: network.ErrorReasonConnectionReset})
}

// answerBusy answers for the order service, without reaching it, what it
// answers while the product service's breaker is open.
func (ic *orderInterceptor) answerBusy(ev *fetch.EventRequestPaused, retryAfter int) {
	ic.t.Helper()
	fetchCall(ic, fetch.FulfillRequest, fetch.FulfillRequestParams{
		RequestID:    ev.RequestID,
		ResponseCode: 503,
		ResponseHeaders: []*fetch.HeaderEntry{
			{Name: "Content-Type", Value: "application/problem+json"},
			{Name: "Retry-After", Value: fmt.Sprint(retryAfter)},
		},
		Body: []byte(`{"type":"about:blank","title":"Service Unavailable","status":503,"code":"product_unavailable",` +
			`"detail":"the product service is unavailable; nothing was reserved"}`),
	})
}

// pass lets the request through untouched.
func (ic *orderInterceptor) pass(ev *fetch.EventRequestPaused) {
	ic.t.Helper()
	fetchCall(ic, fetch.ContinueRequest, fetch.ContinueRequestParams{RequestID: ev.RequestID})
}

// fetchCall sends one Fetch command for the interceptor's tab.
func fetchCall[P any](ic *orderInterceptor, cmd cdp.Command[P, cdp.Empty], params P) {
	ic.t.Helper()
	if _, err := chromedp.Call(ic.ctx, cmd, params); err != nil {
		ic.t.Fatalf("%s: %v", cmd.Method, err)
	}
}
