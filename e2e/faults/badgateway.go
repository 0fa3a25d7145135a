package faults

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"slices"
	"strings"
	"sync"
	"time"
)

// maxBody bounds the request body BadGateway buffers; the services' bodies
// are a few kilobytes.
const maxBody = 32 << 20

// errAnswerDiscarded tells the error handler that a 502 was injected, not
// caused by the upstream.
var errAnswerDiscarded = errors.New("upstream answer discarded")

// failKey marks, in a request's context, a request whose answer is to be
// discarded.
type failKey struct{}

// BadGateway is an HTTP reverse proxy on 127.0.0.1 in front of one upstream
// that can lose answers after the upstream has acted on them: a request it
// is told to fail is forwarded, the upstream's whole response is read and
// discarded, and the client gets 502 Bad Gateway instead. That is a commit
// whose answer never came back, which a TCP fault cannot place as precisely.
//
// Every other request passes through unchanged: method, path, query, body,
// headers (including Host and any X-Forwarded-* the client sent; only
// hop-by-hop headers are dropped, as by any proxy) and the upstream's status,
// headers and body. If the upstream cannot be reached the client gets a 502
// whose body says so. It is safe for concurrent use.
type BadGateway struct {
	url   string
	srv   *http.Server
	tr    *http.Transport
	proxy *httputil.ReverseProxy
	done  chan struct{}

	mu        sync.Mutex
	match     func(*http.Request) bool
	remaining int // matching requests still to fail; < 0: all
	forwarded int
	failed    int
}

// NewBadGateway starts a BadGateway on 127.0.0.1 with a free port in front
// of upstream, a base URL such as http://127.0.0.1:8081 (no query). It
// starts healed: everything passes through.
func NewBadGateway(upstream string) (*BadGateway, error) {
	target, err := url.Parse(upstream)
	if err != nil {
		return nil, fmt.Errorf("new bad gateway: upstream: %w", err)
	}
	if (target.Scheme != "http" && target.Scheme != "https") || target.Host == "" || target.RawQuery != "" {
		return nil, fmt.Errorf("new bad gateway: upstream %q is not a base URL like http://host:port", upstream)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("new bad gateway: listen: %w", err)
	}
	b := &BadGateway{
		url:  "http://" + ln.Addr().String(),
		tr:   http.DefaultTransport.(*http.Transport).Clone(),
		done: make(chan struct{}),
	}
	b.proxy = &httputil.ReverseProxy{
		Rewrite: func(pr *httputil.ProxyRequest) {
			pr.SetURL(target)
			// Undo what Rewrite and SetURL change, so the upstream sees the
			// request as the client sent it.
			pr.Out.Host = pr.In.Host
			pr.Out.URL.RawQuery = pr.In.URL.RawQuery
			for _, h := range []string{"X-Forwarded-For", "X-Forwarded-Host", "X-Forwarded-Proto"} {
				if v, ok := pr.In.Header[h]; ok {
					pr.Out.Header[h] = v
				}
			}
		},
		Transport:      b.tr,
		ModifyResponse: b.modifyResponse,
		ErrorHandler:   b.errorHandler,
	}
	b.srv = &http.Server{
		Handler:           b,
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       time.Minute,
		WriteTimeout:      2 * time.Minute,
		IdleTimeout:       2 * time.Minute,
	}
	go func() {
		defer close(b.done)
		_ = b.srv.Serve(ln) // returns ErrServerClosed after Close
	}()
	return b, nil
}

// URL returns the base URL to point a client at, http://127.0.0.1:port.
func (b *BadGateway) URL() string { return b.url }

// Fail makes the next n requests for which match returns true lose their
// answers: each is forwarded, the upstream's response is read in full and
// discarded, and the client gets 502 with a short text body. n < 0 fails
// every matching request until Heal; n == 0 fails none. A nil match matches
// every request. Fail replaces the previous rule. Requests are counted as they
// arrive, so among concurrent ones the first n to arrive fail; one that was
// counted but whose upstream could not be reached gets the plain 502 and still
// uses up its turn. match is called without locks held and must not read the
// request body.
func (b *BadGateway) Fail(match func(*http.Request) bool, n int) {
	if match == nil {
		match = func(*http.Request) bool { return true }
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	b.match = match
	b.remaining = n
}

// Heal cancels Fail: from now on every request passes through. Requests
// already marked to fail still fail.
func (b *BadGateway) Heal() {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.match = nil
	b.remaining = 0
}

// Stats returns how many requests the upstream has answered since the start
// (forwarded), and how many of those answers were discarded and replaced by
// an injected 502 (failed); forwarded - failed answers reached their clients.
// Requests the upstream never answered count in neither.
func (b *BadGateway) Stats() (forwarded, failed int) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.forwarded, b.failed
}

// Close stops listening, closes every connection, client and upstream side,
// and waits for the server to stop. Requests in flight are cut off.
func (b *BadGateway) Close() error {
	err := b.srv.Close()
	b.tr.CloseIdleConnections()
	<-b.done
	if err != nil {
		return fmt.Errorf("close bad gateway: %w", err)
	}
	return nil
}

// ServeHTTP proxies r to the upstream, failing it if the current rule says
// so. The body is buffered first so that it reaches the upstream whole and
// the transport can resend it on a fresh connection if a pooled one turns out
// to be dead before anything was written.
func (b *BadGateway) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	r, err := bufferBody(w, r)
	if err != nil {
		var tooLarge *http.MaxBytesError
		if errors.As(err, &tooLarge) {
			http.Error(w, "faults: request body too large", http.StatusRequestEntityTooLarge)
			return
		}
		http.Error(w, "faults: read request body: "+err.Error(), http.StatusBadRequest)
		return
	}
	if b.shouldFail(r) {
		r = r.WithContext(context.WithValue(r.Context(), failKey{}, true))
	}
	b.proxy.ServeHTTP(w, r)
}

// shouldFail reports whether r is to be failed, using up one turn if so.
func (b *BadGateway) shouldFail(r *http.Request) bool {
	b.mu.Lock()
	match, remaining := b.match, b.remaining
	b.mu.Unlock()
	if match == nil || remaining == 0 || !match(r) {
		return false
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	// The rule may have changed while match ran; judge by the current one.
	switch {
	case b.remaining < 0:
		return true
	case b.remaining > 0:
		b.remaining--
		return true
	}
	return false
}

// modifyResponse counts the upstream's answer and, for a request marked to
// fail, drains and drops it and hands over to errorHandler.
func (b *BadGateway) modifyResponse(resp *http.Response) error {
	fail, _ := resp.Request.Context().Value(failKey{}).(bool)
	if !fail {
		b.mu.Lock()
		b.forwarded++
		b.mu.Unlock()
		return nil
	}
	// Read it all, so the upstream finishes its side exactly as it would
	// for a client that got the answer.
	_, _ = io.Copy(io.Discard, resp.Body)
	_ = resp.Body.Close()
	b.mu.Lock()
	b.forwarded++
	b.failed++
	b.mu.Unlock()
	return errAnswerDiscarded
}

// errorHandler answers 502, saying whether it was injected or real.
func (b *BadGateway) errorHandler(w http.ResponseWriter, _ *http.Request, err error) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.WriteHeader(http.StatusBadGateway)
	if errors.Is(err, errAnswerDiscarded) {
		_, _ = io.WriteString(w, "bad gateway (injected: upstream answer discarded)\n")
		return
	}
	_, _ = io.WriteString(w, "bad gateway: "+err.Error()+"\n")
}

// bufferBody returns r with its body read into memory and replayable through
// GetBody, with an exact Content-Length.
func bufferBody(w http.ResponseWriter, r *http.Request) (*http.Request, error) {
	if r.Body == nil || r.Body == http.NoBody {
		return r, nil
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxBody))
	_ = r.Body.Close()
	if err != nil {
		return nil, fmt.Errorf("read request body: %w", err)
	}
	out := r.Clone(r.Context())
	out.TransferEncoding = nil
	out.ContentLength = int64(len(body))
	if len(body) == 0 {
		out.Body, out.GetBody = http.NoBody, nil
		return out, nil
	}
	out.Body = io.NopCloser(bytes.NewReader(body))
	out.GetBody = func() (io.ReadCloser, error) {
		return io.NopCloser(bytes.NewReader(body)), nil
	}
	return out, nil
}

// PostTo returns a matcher for Fail that matches POST requests whose path
// starts with pathPrefix. Note that PostTo("/reservations") also matches
// POST /reservations/{id}/resolve; use PostPath to fail only the reservation
// itself.
func PostTo(pathPrefix string) func(*http.Request) bool {
	return func(r *http.Request) bool {
		return r.Method == http.MethodPost && strings.HasPrefix(r.URL.Path, pathPrefix)
	}
}

// PostPath returns a matcher for Fail that matches POST requests whose path
// is exactly one of paths, e.g. PostPath("/reservations",
// "/reservations/batch") for a reserve call sent alone or in a batch.
func PostPath(paths ...string) func(*http.Request) bool {
	return func(r *http.Request) bool {
		return r.Method == http.MethodPost && slices.Contains(paths, r.URL.Path)
	}
}
