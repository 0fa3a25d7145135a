package faults

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"slices"
	"sync"
	"time"

	toxiproxy "github.com/Shopify/toxiproxy/v2"
	"github.com/Shopify/toxiproxy/v2/stream"
	"github.com/rs/zerolog"
)

// Direction says which way of a proxied connection a toxic acts on.
type Direction int

const (
	// Upstream is the client-to-server way: the bytes of a request.
	Upstream Direction = iota + 1
	// Downstream is the server-to-client way: the bytes of a response.
	Downstream
)

// String returns "upstream" or "downstream", the stream names toxiproxy uses,
// or "Direction(n)" for anything else.
func (d Direction) String() string {
	switch d {
	case Upstream:
		return "upstream"
	case Downstream:
		return "downstream"
	}
	return fmt.Sprintf("Direction(%d)", int(d))
}

// Kind is the toxiproxy type of a toxic that Proxy sets. Together with a
// Direction it names the toxic: at most one toxic of each kind per direction.
type Kind string

// The toxic kinds Proxy sets; the values are toxiproxy's type names.
const (
	// KindLatency is the toxic Latency sets.
	KindLatency Kind = "latency"
	// KindTimeout is the toxic Timeout sets.
	KindTimeout Kind = "timeout"
	// KindResetPeer is the toxic ResetPeer sets.
	KindResetPeer Kind = "reset_peer"
)

// ErrClosed is returned by the Proxy methods that change it after Close.
var ErrClosed = errors.New("proxy closed")

const (
	// cutGrace bounds how long a change waits for clients to close the
	// connections it is cutting. A Go http.Transport closes an idle
	// connection as soon as it reads the FIN, well within it; a client that
	// only notices on its next use (a database/sql pool) costs the whole wait.
	cutGrace = 100 * time.Millisecond
	// dialTimeout bounds the dial to the upstream for each connection.
	dialTimeout = 5 * time.Second
)

// Proxy is a TCP proxy on 127.0.0.1 that forwards every connection to one
// upstream address and injects faults ("toxics") into it. The toxics are
// toxiproxy's, run in-process; it knows nothing of the protocol, so it serves
// HTTP and MySQL alike. It is safe for concurrent use.
//
// A connection gets the toxics that are set when it is accepted, for its whole
// life. Every method that changes the toxics or the state (Latency, Timeout,
// ResetPeer, Remove, Clear, Down) therefore also cuts every connection open
// through the proxy before it returns, so that the change has a clear
// boundary even for keep-alive clients: the next request dials anew and meets
// exactly the new toxics from its first byte. The cut is what a server does to
// an idle keep-alive connection: it sends FIN to the client, waits (at most
// 100ms) until the client has closed its end, which a Go http.Transport does
// at once, taking the connection out of its pool, and then closes what is
// left. A request in flight at that moment fails, as it would if the server
// went away. The listener stays open during a change, so no dial is refused.
type Proxy struct {
	name     string
	upstream string
	addr     string
	server   *toxiproxy.ApiServer
	dialer   net.Dialer

	mu     sync.Mutex // serializes the exported methods that change state
	specs  []toxicSpec
	closed bool

	connMu sync.Mutex             // guards the fields below, shared with the accept loop
	ln     *net.TCPListener       // nil while down
	chain  *toxiproxy.Proxy       // holds the toxics new connections get
	conns  map[*connPair]struct{} // connections since the last cut
	seq    uint64                 // makes link names unique
}

// connPair is one proxied connection: the client's side and the upstream's.
type connPair struct {
	client, upstream *net.TCPConn
}

// NewProxy starts a proxy named name (for error messages) that listens on
// 127.0.0.1 with a free port and forwards each accepted connection to
// upstream, a host:port. It starts up and without toxics. The upstream is
// dialed once per accepted connection; if it cannot be reached the client's
// connection is closed.
func NewProxy(name, upstream string) (*Proxy, error) {
	if _, _, err := net.SplitHostPort(upstream); err != nil {
		return nil, fmt.Errorf("new proxy %s: upstream %q: %w", name, upstream, err)
	}
	ln, err := net.ListenTCP("tcp", &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		return nil, fmt.Errorf("new proxy %s: listen: %w", name, err)
	}
	p := &Proxy{
		name:     name,
		upstream: upstream,
		addr:     ln.Addr().String(),
		// A server of our own, with a private metrics registry and a silent
		// logger: nothing is shared between proxies or with other packages.
		server: toxiproxy.NewServer(toxiproxy.NewMetricsContainer(nil), zerolog.Nop()),
		dialer: net.Dialer{Timeout: dialTimeout},
		ln:     ln,
		conns:  make(map[*connPair]struct{}),
	}
	p.chain, err = p.newChain(nil)
	if err != nil {
		_ = ln.Close()
		return nil, err
	}
	go p.serve(ln)
	return p, nil
}

// Addr returns the host:port to point a client at. It does not change for the
// proxy's life, across Down and Up.
func (p *Proxy) Addr() string { return p.addr }

// URL returns "http://" + Addr(), the base URL for an HTTP client.
func (p *Proxy) URL() string { return "http://" + p.addr }

// Latency delays every chunk of data in dir by latency, plus or minus a
// uniformly random jitter (jitter 0: exactly latency). It replaces an earlier
// latency in the same direction. Durations are rounded up to milliseconds.
func (p *Proxy) Latency(dir Direction, latency, jitter time.Duration) error {
	lat, err := millis(latency)
	if err != nil {
		return fmt.Errorf("latency %s: %w", dir, err)
	}
	jit, err := millis(jitter)
	if err != nil {
		return fmt.Errorf("latency %s: jitter: %w", dir, err)
	}
	return p.set(KindLatency, dir, map[string]int64{"latency": lat, "jitter": jit})
}

// Timeout stops all data in dir: bytes are read and dropped, nothing reaches
// the other side, and once d has passed without data arriving in dir (counted
// from the connection's start or from its last dropped bytes) both sides of
// the connection are closed (d 0: never; the peer hangs until its own
// timeout). With dir Upstream the upstream never sees a byte of the request,
// though it does see the TCP connection, which the proxy dials on accept;
// with dir Downstream the upstream handles the request and the answer is
// lost. It replaces an earlier timeout in the same direction. d is rounded up
// to milliseconds.
func (p *Proxy) Timeout(dir Direction, d time.Duration) error {
	ms, err := millis(d)
	if err != nil {
		return fmt.Errorf("timeout %s: %w", dir, err)
	}
	return p.set(KindTimeout, dir, map[string]int64{"timeout": ms})
}

// ResetPeer resets each connection (TCP RST to both the client and the
// upstream, unsent data discarded) once the first bytes flow in dir, after
// waiting after. Those bytes are dropped: with dir Upstream the request never
// reaches the upstream; with dir Downstream the upstream handles the request
// and the client gets a reset instead of the answer. It replaces an earlier
// reset_peer in the same direction. after is rounded up to milliseconds.
func (p *Proxy) ResetPeer(dir Direction, after time.Duration) error {
	ms, err := millis(after)
	if err != nil {
		return fmt.Errorf("reset peer %s: %w", dir, err)
	}
	return p.set(KindResetPeer, dir, map[string]int64{"timeout": ms})
}

// Remove removes the toxic of kind in dir, if there is one, and cuts every
// open connection.
func (p *Proxy) Remove(kind Kind, dir Direction) error {
	name, err := toxicName(kind, dir)
	if err != nil {
		return fmt.Errorf("remove toxic: %w", err)
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return ErrClosed
	}
	specs := slices.DeleteFunc(slices.Clone(p.specs), func(s toxicSpec) bool { return s.Name == name })
	return p.apply(specs)
}

// Clear removes every toxic and cuts every open connection, so the next
// connection sees the clean link. It does not undo Down; call Up for that.
func (p *Proxy) Clear() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return ErrClosed
	}
	return p.apply(nil)
}

// Down makes the upstream look dead: the proxy stops listening, so dials are
// refused, and every open connection is cut. Toxics are kept. Down on a proxy
// that is down does nothing.
func (p *Proxy) Down() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return ErrClosed
	}
	p.stop(cutGrace)
	return nil
}

// Up undoes Down: the proxy listens again on the same address, with the
// toxics it had. Up on a proxy that is up does nothing. It fails if the port
// was taken by someone else meanwhile.
func (p *Proxy) Up() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return ErrClosed
	}
	p.connMu.Lock()
	up := p.ln != nil
	p.connMu.Unlock()
	if up {
		return nil
	}
	addr, err := net.ResolveTCPAddr("tcp", p.addr)
	if err != nil {
		return fmt.Errorf("up proxy %s: %w", p.name, err)
	}
	ln, err := net.ListenTCP("tcp", addr)
	if err != nil {
		return fmt.Errorf("up proxy %s: listen: %w", p.name, err)
	}
	p.connMu.Lock()
	p.ln = ln
	p.connMu.Unlock()
	go p.serve(ln)
	return nil
}

// Close stops the proxy for good and closes every open connection at once.
// Later calls to Close do nothing; the methods that change the proxy return
// ErrClosed.
func (p *Proxy) Close() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return nil
	}
	p.closed = true
	p.stop(0)
	return nil
}

// set installs the toxic of kind in dir with attrs, in place of one of the
// same kind and direction.
func (p *Proxy) set(kind Kind, dir Direction, attrs map[string]int64) error {
	name, err := toxicName(kind, dir)
	if err != nil {
		return fmt.Errorf("set toxic: %w", err)
	}
	spec := toxicSpec{Name: name, Type: string(kind), Stream: dir.String(), Toxicity: 1, Attributes: attrs}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return ErrClosed
	}
	specs := slices.Clone(p.specs)
	if i := slices.IndexFunc(specs, func(s toxicSpec) bool { return s.Name == name }); i >= 0 {
		specs[i] = spec
	} else {
		specs = append(specs, spec)
	}
	return p.apply(specs)
}

// apply makes specs the toxics of every connection accepted from now on and
// cuts the ones open before. p.mu is held.
//
// The toxics go into a fresh toxiproxy chain rather than being edited into the
// current one: toxiproxy would also splice an edit into every live link, and
// splicing into a link whose sockets are being closed can block it for good.
// Old links keep their old chain until the cut ends them.
func (p *Proxy) apply(specs []toxicSpec) error {
	chain, err := p.newChain(specs)
	if err != nil {
		return err
	}
	p.specs = specs
	p.connMu.Lock()
	p.chain = chain
	old := p.takeConns()
	p.connMu.Unlock()
	cut(old, cutGrace)
	return nil
}

// stop closes the listener, if open, and cuts every connection, waiting at
// most grace for clients to close theirs. p.mu is held.
func (p *Proxy) stop(grace time.Duration) {
	p.connMu.Lock()
	ln := p.ln
	p.ln = nil
	old := p.takeConns()
	p.connMu.Unlock()
	if ln != nil {
		_ = ln.Close()
	}
	cut(old, grace)
}

// newChain returns a toxiproxy proxy, never started, whose toxic collection
// holds specs in order; its links carry the proxied connections.
func (p *Proxy) newChain(specs []toxicSpec) (*toxiproxy.Proxy, error) {
	chain := toxiproxy.NewProxy(p.server, p.name, p.addr, p.upstream)
	for _, s := range specs {
		body, err := json.Marshal(s)
		if err != nil {
			return nil, fmt.Errorf("encode toxic %s: %w", s.Name, err)
		}
		if _, err := chain.Toxics.AddToxicJson(bytes.NewReader(body)); err != nil {
			return nil, fmt.Errorf("add toxic %s: %w", s.Name, err)
		}
	}
	return chain, nil
}

// serve accepts connections on ln until it is closed.
func (p *Proxy) serve(ln *net.TCPListener) {
	for {
		client, err := ln.AcceptTCP()
		if errors.Is(err, net.ErrClosed) {
			return
		}
		if err != nil {
			// Out of file descriptors and the like: back off, keep serving.
			time.Sleep(5 * time.Millisecond)
			continue
		}
		go p.link(ln, client)
	}
}

// link dials the upstream for client, accepted on ln, and joins the two
// through the current toxic chain, one toxiproxy link per direction.
func (p *Proxy) link(ln *net.TCPListener, client *net.TCPConn) {
	conn, err := p.dialer.Dial("tcp", p.upstream)
	if err != nil {
		_ = client.Close()
		return
	}
	upstream := conn.(*net.TCPConn) // reset_peer needs the TCP type to set SO_LINGER
	p.connMu.Lock()
	defer p.connMu.Unlock()
	if p.ln != ln {
		// Down or Close happened while dialing: this connection is from before.
		_ = client.Close()
		_ = upstream.Close()
		return
	}
	p.pruneConns()
	p.conns[&connPair{client: client, upstream: upstream}] = struct{}{}
	p.seq++
	name := fmt.Sprintf("%s#%d", client.RemoteAddr(), p.seq)
	p.chain.Toxics.StartLink(p.server, name+"upstream", client, upstream, stream.Upstream)
	p.chain.Toxics.StartLink(p.server, name+"downstream", upstream, client, stream.Downstream)
}

// takeConns empties the set of open connections and returns it. p.connMu is
// held.
func (p *Proxy) takeConns() []*connPair {
	old := make([]*connPair, 0, len(p.conns))
	for c := range p.conns {
		old = append(old, c)
	}
	clear(p.conns)
	return old
}

// pruneConns forgets connections that have ended, so the set does not grow
// with every connection between two cuts. p.connMu is held.
func (p *Proxy) pruneConns() {
	for c := range p.conns {
		if isClosed(c.client) && isClosed(c.upstream) {
			delete(p.conns, c)
		}
	}
}

// cut ends the connections in pairs. It sends FIN to each client, then waits
// until grace has passed or every client has closed its side: toxiproxy closes
// both sockets of a connection once the client's side ends, so a closed
// client socket means the client has seen the FIN (a Go http.Transport has
// dropped the connection from its pool by then). Whatever is left is closed.
func cut(pairs []*connPair, grace time.Duration) {
	for _, c := range pairs {
		_ = c.client.CloseWrite()
	}
	pending := slices.Clone(pairs)
	deadline := time.Now().Add(grace)
	for {
		pending = slices.DeleteFunc(pending, func(c *connPair) bool { return isClosed(c.client) })
		if len(pending) == 0 || !time.Now().Before(deadline) {
			break
		}
		time.Sleep(time.Millisecond)
	}
	for _, c := range pairs {
		_ = c.client.Close()
		_ = c.upstream.Close()
	}
}

// isClosed reports whether c has been closed on this side.
func isClosed(c *net.TCPConn) bool {
	raw, err := c.SyscallConn()
	if err != nil {
		return true
	}
	return raw.Control(func(uintptr) {}) != nil
}

// toxicSpec is the JSON toxiproxy's AddToxicJson reads, the same body its
// HTTP API takes.
type toxicSpec struct {
	Name       string           `json:"name"`
	Type       string           `json:"type"`
	Stream     string           `json:"stream"`
	Toxicity   float32          `json:"toxicity"`
	Attributes map[string]int64 `json:"attributes"`
}

// toxicName is "<kind>_<direction>", toxiproxy's own default name, so that a
// direction holds at most one toxic of each kind.
func toxicName(kind Kind, dir Direction) (string, error) {
	switch kind {
	case KindLatency, KindTimeout, KindResetPeer:
	default:
		return "", fmt.Errorf("unknown toxic kind %q", string(kind))
	}
	if dir != Upstream && dir != Downstream {
		return "", fmt.Errorf("invalid direction %s", dir)
	}
	return string(kind) + "_" + dir.String(), nil
}

// millis converts d to whole milliseconds, rounding up, because toxiproxy
// counts in milliseconds and a timeout of 0 means "never", which a
// sub-millisecond duration must not turn into.
func millis(d time.Duration) (int64, error) {
	if d < 0 {
		return 0, fmt.Errorf("negative duration %s", d)
	}
	return int64((d + time.Millisecond - 1) / time.Millisecond), nil
}
