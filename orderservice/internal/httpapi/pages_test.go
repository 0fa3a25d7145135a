package httpapi_test

import (
	"encoding/json"
	"net/http"
	"regexp"
	"strings"
	"testing"

	"github.com/stockfence/stockfence/orderservice/internal/httpapi"
)

func TestPages(t *testing.T) {
	t.Parallel()
	h := newHarness(t, modeApplied)
	tests := []struct {
		path, contentType, contains string
	}{
		{"/", "text/html; charset=utf-8", `src="/assets/storefront.js"`},
		{"/ops/", "text/html; charset=utf-8", `src="/assets/dashboard.js"`},
		{"/assets/common.js", "text/javascript; charset=utf-8", "window.sf"},
		{"/assets/storefront.js", "text/javascript; charset=utf-8", "Idempotency-Key"},
		{"/assets/dashboard.js", "text/javascript; charset=utf-8", "/ops/stats"},
		{"/assets/style.css", "text/css; charset=utf-8", ".topbar"},
	}
	for _, tt := range tests {
		// Public: no token, as a browser navigating there sends none.
		r := h.do("GET", tt.path, "", "")
		if r.status != http.StatusOK {
			t.Errorf("GET %s = %d, want 200", tt.path, r.status)
			continue
		}
		if ct := r.header.Get("Content-Type"); ct != tt.contentType {
			t.Errorf("GET %s Content-Type = %q, want %q", tt.path, ct, tt.contentType)
		}
		if !strings.Contains(string(r.body), tt.contains) {
			t.Errorf("GET %s does not hold %q", tt.path, tt.contains)
		}
		if csp := r.header.Get("Content-Security-Policy"); !strings.Contains(csp, "script-src 'self'") || !strings.Contains(csp, "frame-ancestors 'none'") {
			t.Errorf("GET %s Content-Security-Policy = %q", tt.path, csp)
		}
		if r.header.Get("X-Content-Type-Options") != "nosniff" {
			t.Errorf("GET %s lacks X-Content-Type-Options: nosniff", tt.path)
		}
	}

	// Every asset a page names is served.
	ref := regexp.MustCompile(`(?:src|href)="(/assets/[^"]+)"`)
	for _, page := range []string{"/", "/ops/"} {
		for _, m := range ref.FindAllStringSubmatch(string(h.do("GET", page, "", "").body), -1) {
			if r := h.do("GET", m[1], "", ""); r.status != http.StatusOK {
				t.Errorf("%s names %s, which answers %d", page, m[1], r.status)
			}
		}
	}

	h.do("GET", "/assets/nope.js", "", "").problem(t, http.StatusNotFound, "not_found")
	h.do("GET", "/assets/storefront.exe", "", "").problem(t, http.StatusNotFound, "not_found")
	h.do("POST", "/", "", "").problem(t, http.StatusMethodNotAllowed, "method_not_allowed")

	noRedirect := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := noRedirect.Get(h.url + "/ops")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusMovedPermanently || resp.Header.Get("Location") != "/ops/" {
		t.Errorf("GET /ops = %d to %q, want 301 to /ops/", resp.StatusCode, resp.Header.Get("Location"))
	}
}

func TestDemoToken(t *testing.T) {
	t.Parallel()
	// Without a demo token nothing is handed out.
	newHarness(t, modeApplied).do("GET", "/demo/token", "", "").problem(t, http.StatusNotFound, "not_found")

	demo := token(t, "demo-shopper")
	h := newHarnessWith(t, modeApplied, func(c *httpapi.Config) { c.DemoToken = demo })
	r := h.do("GET", "/demo/token", "", "")
	var body struct {
		Token string `json:"token"`
	}
	if err := json.Unmarshal(r.body, &body); err != nil || r.status != http.StatusOK || body.Token != demo {
		t.Fatalf("GET /demo/token = %d %s, want 200 with the demo token", r.status, r.body)
	}
	if cc := r.header.Get("Cache-Control"); cc != "no-store" {
		t.Errorf("Cache-Control = %q, want no-store", cc)
	}
	// The token it hands out is one the service accepts.
	if r := h.do("GET", "/orders", body.Token, ""); r.status != http.StatusOK {
		t.Errorf("GET /orders with the demo token = %d, want 200", r.status)
	}
}
