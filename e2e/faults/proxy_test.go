package faults_test

import (
	"bufio"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/http/httptrace"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/stockfence/stockfence/e2e/faults"
)

// upstream is an HTTP server that counts the requests it sees and remembers
// when it saw the last one.
type upstream struct {
	srv *httptest.Server

	mu    sync.Mutex
	count int
	last  time.Time
}

func newUpstream(t *testing.T) *upstream {
	t.Helper()
	u := &upstream{}
	u.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		u.mu.Lock()
		u.count++
		u.last = time.Now()
		u.mu.Unlock()
		_, _ = io.WriteString(w, "ok")
	}))
	t.Cleanup(u.srv.Close)
	return u
}

func (u *upstream) seen() (int, time.Time) {
	u.mu.Lock()
	defer u.mu.Unlock()
	return u.count, u.last
}

func newProxy(t *testing.T, upstreamAddr string) *faults.Proxy {
	t.Helper()
	p, err := faults.NewProxy(t.Name(), upstreamAddr)
	if err != nil {
		t.Fatalf("NewProxy: %v", err)
	}
	t.Cleanup(func() {
		if err := p.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return p
}

// newClient returns a keep-alive client of its own, so tests do not share
// pooled connections.
func newClient(t *testing.T, timeout time.Duration) *http.Client {
	t.Helper()
	tr := &http.Transport{MaxIdleConnsPerHost: 4}
	t.Cleanup(tr.CloseIdleConnections)
	return &http.Client{Transport: tr, Timeout: timeout}
}

// get sends a GET and reports the status, the body, and whether the
// connection was a reused keep-alive one.
func get(c *http.Client, url string) (status int, body string, reused bool, err error) {
	return do(c, http.MethodGet, url, "")
}

func do(c *http.Client, method, url, reqBody string) (status int, body string, reused bool, err error) {
	var rd io.Reader
	if reqBody != "" {
		rd = strings.NewReader(reqBody)
	}
	req, err := http.NewRequest(method, url, rd)
	if err != nil {
		return 0, "", false, err
	}
	trace := &httptrace.ClientTrace{GotConn: func(info httptrace.GotConnInfo) { reused = info.Reused }}
	req = req.WithContext(httptrace.WithClientTrace(req.Context(), trace))
	resp, err := c.Do(req)
	if err != nil {
		return 0, "", reused, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b), reused, err
}

func mustGet(t *testing.T, c *http.Client, url string) (reused bool) {
	t.Helper()
	status, body, reused, err := get(c, url)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	if status != http.StatusOK || body != "ok" {
		t.Fatalf("GET %s = %d %q, want 200 \"ok\"", url, status, body)
	}
	return reused
}

func TestProxyPassesThrough(t *testing.T) {
	u := newUpstream(t)
	p := newProxy(t, u.srv.Listener.Addr().String())
	if got, want := p.URL(), "http://"+p.Addr(); got != want {
		t.Fatalf("URL = %s, want %s", got, want)
	}
	if host, _, _ := net.SplitHostPort(p.Addr()); host != "127.0.0.1" {
		t.Fatalf("Addr host = %s, want 127.0.0.1", host)
	}
	c := newClient(t, 2*time.Second)
	mustGet(t, c, p.URL())
	if reused := mustGet(t, c, p.URL()); !reused {
		t.Fatalf("second GET reused = false, want true (keep-alive through the proxy)")
	}
	if n, _ := u.seen(); n != 2 {
		t.Fatalf("upstream saw %d requests, want 2", n)
	}
}

func TestProxyLatencyDownstream(t *testing.T) {
	u := newUpstream(t)
	p := newProxy(t, u.srv.Listener.Addr().String())
	c := newClient(t, 2*time.Second)
	mustGet(t, c, p.URL()) // a warm keep-alive connection that must not dodge the toxic

	const latency = 300 * time.Millisecond
	if err := p.Latency(faults.Downstream, latency, 0); err != nil {
		t.Fatalf("Latency: %v", err)
	}
	start := time.Now()
	reused := mustGet(t, c, p.URL())
	took := time.Since(start)
	_, seenAt := u.seen()
	if reused {
		t.Errorf("GET after Latency reused a connection, want a new one")
	}
	if took < latency {
		t.Errorf("GET took %s, want >= %s", took, latency)
	}
	if arrived := seenAt.Sub(start); arrived > latency/2 {
		t.Errorf("upstream saw the request after %s, want at once (< %s)", arrived, latency/2)
	}
}

func TestProxyTimeoutUpstream(t *testing.T) {
	tests := []struct {
		name    string
		timeout time.Duration // of the toxic
		wantNet bool          // client sees its own timeout rather than a closed connection
	}{
		{name: "never closes", timeout: 0, wantNet: true},
		{name: "closes after 50ms", timeout: 50 * time.Millisecond, wantNet: false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			u := newUpstream(t)
			p := newProxy(t, u.srv.Listener.Addr().String())
			c := newClient(t, 200*time.Millisecond)
			mustGet(t, c, p.URL())

			if err := p.Timeout(faults.Upstream, tt.timeout); err != nil {
				t.Fatalf("Timeout: %v", err)
			}
			_, _, _, err := get(c, p.URL())
			if err == nil {
				t.Fatalf("GET through a timeout toxic succeeded, want an error")
			}
			var ne net.Error
			isTimeout := errors.As(err, &ne) && ne.Timeout()
			if isTimeout != tt.wantNet {
				t.Errorf("GET error %q: timeout = %t, want %t", err, isTimeout, tt.wantNet)
			}
			if n, _ := u.seen(); n != 1 {
				t.Errorf("upstream saw %d requests, want 1 (only the one before the toxic)", n)
			}

			if err := p.Clear(); err != nil {
				t.Fatalf("Clear: %v", err)
			}
			mustGet(t, c, p.URL())
		})
	}
}

func TestProxyResetPeer(t *testing.T) {
	tests := []struct {
		dir      faults.Direction
		wantSeen int // requests the upstream handled, including the warm-up
	}{
		{dir: faults.Upstream, wantSeen: 1},   // the request is dropped and reset
		{dir: faults.Downstream, wantSeen: 2}, // handled, then the answer is reset
	}
	for _, tt := range tests {
		t.Run(tt.dir.String(), func(t *testing.T) {
			u := newUpstream(t)
			p := newProxy(t, u.srv.Listener.Addr().String())
			c := newClient(t, 2*time.Second)
			mustGet(t, c, p.URL())

			if err := p.ResetPeer(tt.dir, 0); err != nil {
				t.Fatalf("ResetPeer: %v", err)
			}
			_, _, _, err := do(c, http.MethodPost, p.URL()+"/reservations", `{"x":1}`)
			if !errors.Is(err, syscall.ECONNRESET) {
				t.Fatalf("POST error = %v, want connection reset", err)
			}
			if n, _ := u.seen(); n != tt.wantSeen {
				t.Errorf("upstream saw %d requests, want %d", n, tt.wantSeen)
			}

			if err := p.Remove(faults.KindResetPeer, tt.dir); err != nil {
				t.Fatalf("Remove: %v", err)
			}
			mustGet(t, c, p.URL())
		})
	}
}

func TestProxyDownUp(t *testing.T) {
	u := newUpstream(t)
	p := newProxy(t, u.srv.Listener.Addr().String())
	c := newClient(t, 2*time.Second)
	mustGet(t, c, p.URL())

	if err := p.Down(); err != nil {
		t.Fatalf("Down: %v", err)
	}
	if conn, err := net.DialTimeout("tcp", p.Addr(), time.Second); err == nil {
		conn.Close()
		t.Fatalf("dial a downed proxy succeeded, want refused")
	} else if !errors.Is(err, syscall.ECONNREFUSED) {
		t.Fatalf("dial error = %v, want connection refused", err)
	}
	if _, _, _, err := get(c, p.URL()); !errors.Is(err, syscall.ECONNREFUSED) {
		t.Fatalf("GET error = %v, want connection refused", err)
	}

	if err := p.Up(); err != nil {
		t.Fatalf("Up: %v", err)
	}
	mustGet(t, c, p.URL())
	if n, _ := u.seen(); n != 2 {
		t.Fatalf("upstream saw %d requests, want 2", n)
	}
}

// TestProxyCutsKeepAlive checks the promise that lets tests use ordinary
// keep-alive clients: after any change the next request, even a POST the
// transport would not retry, runs on a new connection that sees the change.
func TestProxyCutsKeepAlive(t *testing.T) {
	u := newUpstream(t)
	p := newProxy(t, u.srv.Listener.Addr().String())
	c := newClient(t, 2*time.Second)

	post := func(step string) {
		t.Helper()
		status, _, reused, err := do(c, http.MethodPost, p.URL()+"/reservations", `{"x":1}`)
		if err != nil {
			t.Fatalf("%s: POST: %v", step, err)
		}
		if status != http.StatusOK {
			t.Fatalf("%s: POST status = %d, want 200", step, status)
		}
		if reused {
			t.Fatalf("%s: POST reused a connection from before the change", step)
		}
	}
	mustGet(t, c, p.URL())
	if err := p.Latency(faults.Upstream, time.Millisecond, 0); err != nil {
		t.Fatalf("Latency: %v", err)
	}
	post("after Latency")
	if err := p.Timeout(faults.Downstream, 0); err != nil {
		t.Fatalf("Timeout: %v", err)
	}
	if err := p.Down(); err != nil {
		t.Fatalf("Down: %v", err)
	}
	if err := p.Up(); err != nil {
		t.Fatalf("Up: %v", err)
	}
	if err := p.Clear(); err != nil {
		t.Fatalf("Clear: %v", err)
	}
	start := time.Now()
	post("after Down, Up, Clear")
	if took := time.Since(start); took > 200*time.Millisecond {
		t.Errorf("POST after Clear took %s, want a clean link", took)
	}
	// Keep-alive works again on the clean link.
	if reused := mustGet(t, c, p.URL()); !reused {
		t.Errorf("GET after the POST reused = false, want true")
	}
}

// TestProxyRawTCP runs a MySQL-like exchange, where the server speaks first,
// through the proxy: it is a TCP proxy, not an HTTP one.
func TestProxyRawTCP(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("listen: %v", err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			conn, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer conn.Close()
				_, _ = io.WriteString(conn, "greeting v8.4\n")
				_, _ = io.Copy(conn, conn)
			}()
		}
	}()

	p := newProxy(t, ln.Addr().String())
	if err := p.Latency(faults.Upstream, 20*time.Millisecond, 0); err != nil {
		t.Fatalf("Latency: %v", err)
	}
	conn, err := net.DialTimeout("tcp", p.Addr(), time.Second)
	if err != nil {
		t.Fatalf("dial proxy: %v", err)
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(2 * time.Second))
	r := bufio.NewReader(conn)
	if got, err := r.ReadString('\n'); err != nil || got != "greeting v8.4\n" {
		t.Fatalf("greeting = %q, %v; want %q", got, err, "greeting v8.4\n")
	}
	start := time.Now()
	if _, err := io.WriteString(conn, "SELECT 1\n"); err != nil {
		t.Fatalf("write: %v", err)
	}
	if got, err := r.ReadString('\n'); err != nil || got != "SELECT 1\n" {
		t.Fatalf("echo = %q, %v; want %q", got, err, "SELECT 1\n")
	}
	if took := time.Since(start); took < 20*time.Millisecond {
		t.Errorf("round trip took %s, want >= 20ms of upstream latency", took)
	}
}

func TestProxyRejectsBadInput(t *testing.T) {
	if _, err := faults.NewProxy("bad", "http://127.0.0.1:1"); err == nil {
		t.Errorf("NewProxy with a URL upstream succeeded, want an error")
	}
	u := newUpstream(t)
	p := newProxy(t, u.srv.Listener.Addr().String())
	if err := p.Latency(faults.Direction(0), time.Second, 0); err == nil {
		t.Errorf("Latency with direction 0 succeeded, want an error")
	}
	if err := p.Timeout(faults.Upstream, -time.Second); err == nil {
		t.Errorf("Timeout with a negative duration succeeded, want an error")
	}
	if err := p.Remove(faults.Kind("bandwidth"), faults.Upstream); err == nil {
		t.Errorf("Remove of an unknown kind succeeded, want an error")
	}
	if err := p.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if err := p.Clear(); !errors.Is(err, faults.ErrClosed) {
		t.Errorf("Clear after Close = %v, want ErrClosed", err)
	}
}
