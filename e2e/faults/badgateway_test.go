package faults_test

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stockfence/stockfence/e2e/faults"
)

// productUpstream imitates the product service: POST /reservations records
// the body and answers 201, GET echoes path and query.
type productUpstream struct {
	srv *httptest.Server

	mu       sync.Mutex
	bodies   []string
	host     string
	received http.Header
}

func newProductUpstream(t *testing.T) *productUpstream {
	t.Helper()
	u := &productUpstream{}
	u.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, err := io.ReadAll(r.Body)
		if err != nil {
			t.Errorf("upstream: read body: %v", err)
		}
		u.mu.Lock()
		u.host = r.Host
		u.received = r.Header.Clone()
		if r.Method == http.MethodPost {
			u.bodies = append(u.bodies, string(body))
		}
		u.mu.Unlock()
		w.Header().Set("X-Upstream", "product")
		switch {
		case r.Method == http.MethodPost && r.URL.Path == "/reservations":
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusCreated)
			_, _ = io.WriteString(w, `{"status":"reserved"}`)
		case r.Method == http.MethodGet:
			w.WriteHeader(http.StatusTeapot)
			_, _ = io.WriteString(w, r.URL.Path+"?"+r.URL.RawQuery)
		default:
			w.WriteHeader(http.StatusNoContent)
		}
	}))
	t.Cleanup(u.srv.Close)
	return u
}

func (u *productUpstream) posts() []string {
	u.mu.Lock()
	defer u.mu.Unlock()
	return append([]string(nil), u.bodies...)
}

func newBadGateway(t *testing.T, upstream string) *faults.BadGateway {
	t.Helper()
	b, err := faults.NewBadGateway(upstream)
	if err != nil {
		t.Fatalf("NewBadGateway: %v", err)
	}
	t.Cleanup(func() {
		if err := b.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return b
}

type response struct {
	status int
	body   string
	header http.Header
}

func send(t *testing.T, c *http.Client, method, url string, body io.Reader) response {
	t.Helper()
	req, err := http.NewRequest(method, url, body)
	if err != nil {
		t.Fatalf("new request: %v", err)
	}
	req.Header.Set("Authorization", "Bearer service-token")
	resp, err := c.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("%s %s: read body: %v", method, url, err)
	}
	return response{status: resp.StatusCode, body: string(b), header: resp.Header}
}

func TestBadGatewayLosesAnswerAfterForwarding(t *testing.T) {
	u := newProductUpstream(t)
	b := newBadGateway(t, u.srv.URL)
	c := newClient(t, 2*time.Second)

	const n = 2
	b.Fail(faults.PostPath("/reservations"), n)
	var want []string
	for i := range n {
		body := `{"attempt_id":"a` + string(rune('0'+i)) + `","items":[{"product_id":1,"qty":2}]}`
		want = append(want, body)
		got := send(t, c, http.MethodPost, b.URL()+"/reservations", strings.NewReader(body))
		if got.status != http.StatusBadGateway {
			t.Fatalf("POST %d: status = %d, want %d", i, got.status, http.StatusBadGateway)
		}
		if got.header.Get("X-Upstream") != "" || strings.Contains(got.body, "reserved") {
			t.Fatalf("POST %d: the upstream's answer leaked: %v %q", i, got.header, got.body)
		}
		if posts := u.posts(); len(posts) != i+1 || posts[i] != body {
			t.Fatalf("POST %d: upstream saw %q, want %q last", i, posts, body)
		}
	}

	// A GET in between is not matched and passes unchanged.
	got := send(t, c, http.MethodGet, b.URL()+"/products/7?fields=stock&x=%zz", nil)
	if got.status != http.StatusTeapot || got.body != "/products/7?fields=stock&x=%zz" || got.header.Get("X-Upstream") != "product" {
		t.Fatalf("GET = %d %q %v, want 418 with path and raw query echoed", got.status, got.body, got.header)
	}

	// The turns are used up: the next POST gets the upstream's answer.
	got = send(t, c, http.MethodPost, b.URL()+"/reservations", strings.NewReader(`{"attempt_id":"a9"}`))
	if got.status != http.StatusCreated || got.body != `{"status":"reserved"}` ||
		got.header.Get("Content-Type") != "application/json" || got.header.Get("X-Upstream") != "product" {
		t.Fatalf("POST after the failures = %d %q %v, want the upstream's 201", got.status, got.body, got.header)
	}
	if posts := u.posts(); len(posts) != n+1 || posts[0] != want[0] || posts[1] != want[1] {
		t.Fatalf("upstream saw %q, want %q then one more", posts, want)
	}
	if fwd, failed := b.Stats(); fwd != n+2 || failed != n {
		t.Fatalf("Stats = %d, %d; want %d, %d", fwd, failed, n+2, n)
	}
}

func TestBadGatewayPassesRequestUnchanged(t *testing.T) {
	u := newProductUpstream(t)
	b := newBadGateway(t, u.srv.URL)
	c := newClient(t, 2*time.Second)
	b.Fail(faults.PostTo("/reservations"), -1)

	// A body of unknown length goes out chunked from the client; it must
	// still reach the upstream whole.
	pr, pw := io.Pipe()
	go func() {
		_, _ = io.WriteString(pw, `{"attempt_id":`)
		_, _ = io.WriteString(pw, `"b1"}`)
		_ = pw.Close()
	}()
	req, err := http.NewRequest(http.MethodPut, b.URL()+"/products/3", pr)
	if err != nil {
		t.Fatalf("new request: %v", err)
	}
	req.Header.Set("X-Request-Id", "r-1")
	req.Header.Set("X-Forwarded-For", "10.0.0.1")
	resp, err := c.Do(req)
	if err != nil {
		t.Fatalf("PUT: %v", err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusNoContent {
		t.Fatalf("PUT status = %d, want %d", resp.StatusCode, http.StatusNoContent)
	}
	u.mu.Lock()
	host, hdr := u.host, u.received
	u.mu.Unlock()
	if posts := u.posts(); len(posts) != 0 {
		t.Fatalf("upstream recorded POSTs %q, want none", posts)
	}
	if hdr.Get("X-Request-Id") != "r-1" || hdr.Get("X-Forwarded-For") != "10.0.0.1" {
		t.Errorf("upstream headers = %v, want the client's X-Request-Id and X-Forwarded-For", hdr)
	}
	if want := strings.TrimPrefix(b.URL(), "http://"); host != want {
		t.Errorf("upstream Host = %s, want the client's %s", host, want)
	}
}

func TestBadGatewayFailsUntilHeal(t *testing.T) {
	u := newProductUpstream(t)
	b := newBadGateway(t, u.srv.URL)
	c := newClient(t, 2*time.Second)

	b.Fail(faults.PostTo("/reservations"), -1)
	for i, path := range []string{"/reservations", "/reservations/a1/resolve", "/reservations"} {
		got := send(t, c, http.MethodPost, b.URL()+path, strings.NewReader(`{}`))
		if got.status != http.StatusBadGateway {
			t.Fatalf("POST %s (%d): status = %d, want 502", path, i, got.status)
		}
	}
	b.Heal()
	if got := send(t, c, http.MethodPost, b.URL()+"/reservations", strings.NewReader(`{}`)); got.status != http.StatusCreated {
		t.Fatalf("POST after Heal: status = %d, want 201", got.status)
	}
	if got := len(u.posts()); got != 4 {
		t.Fatalf("upstream saw %d POSTs, want 4", got)
	}
	if fwd, failed := b.Stats(); fwd != 4 || failed != 3 {
		t.Fatalf("Stats = %d, %d; want 4, 3", fwd, failed)
	}
}

func TestBadGatewayUpstreamDown(t *testing.T) {
	u := newProductUpstream(t)
	b := newBadGateway(t, u.srv.URL)
	c := newClient(t, 2*time.Second)
	u.srv.Close()

	got := send(t, c, http.MethodGet, b.URL()+"/products/1", nil)
	if got.status != http.StatusBadGateway || strings.Contains(got.body, "injected") {
		t.Fatalf("GET with the upstream down = %d %q, want a plain 502", got.status, got.body)
	}
	if fwd, failed := b.Stats(); fwd != 0 || failed != 0 {
		t.Fatalf("Stats = %d, %d; want 0, 0", fwd, failed)
	}
}

func TestMatchers(t *testing.T) {
	tests := []struct {
		method, path     string
		postTo, postPath bool
	}{
		{http.MethodPost, "/reservations", true, true},
		{http.MethodPost, "/reservations/a1/resolve", true, false},
		{http.MethodGet, "/reservations", false, false},
		{http.MethodPost, "/orders", false, false},
	}
	postTo, postPath := faults.PostTo("/reservations"), faults.PostPath("/reservations")
	for _, tt := range tests {
		t.Run(tt.method+" "+tt.path, func(t *testing.T) {
			r := httptest.NewRequest(tt.method, tt.path, nil)
			if got := postTo(r); got != tt.postTo {
				t.Errorf("PostTo = %t, want %t", got, tt.postTo)
			}
			if got := postPath(r); got != tt.postPath {
				t.Errorf("PostPath = %t, want %t", got, tt.postPath)
			}
		})
	}
}

func TestNewBadGatewayRejectsBadUpstream(t *testing.T) {
	for _, upstream := range []string{"127.0.0.1:8081", "ftp://127.0.0.1", "http://", "http://h:1/?q=1"} {
		if b, err := faults.NewBadGateway(upstream); err == nil {
			b.Close()
			t.Errorf("NewBadGateway(%q) succeeded, want an error", upstream)
		}
	}
}
