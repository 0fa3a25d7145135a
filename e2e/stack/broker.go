package stack

import (
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"

	"github.com/stockfence/stockfence/shared/contract"
)

const (
	// brokerPartitions is how many partitions each contract topic gets: more
	// than one, so that a consumer group can spread over instances.
	brokerPartitions = 3
	// brokerRebindWait bounds how long Start waits for the broker's port to be
	// free again (a client or the last run may still hold it for a moment).
	brokerRebindWait = 5 * time.Second
	// brokerLogName is the file in the data directory that collects kfake's
	// warnings and errors and the launcher's notes on starts and stops.
	brokerLogName = "broker.log"
)

// Broker is an embedded Kafka-protocol broker (kfake) on loopback that
// persists to a data directory, so it survives being stopped and started
// (and a restart of the launcher). Its methods are safe for concurrent use,
// also while clients are connected.
type Broker struct {
	dataDir string
	port    int
	addr    string
	log     *brokerLog

	// advertised, when set, is the address the broker tells clients to
	// connect to instead of its own (a fault proxy in front of it).
	advertised atomic.Pointer[net.TCPAddr]

	// mu serialises Start, Stop and Close; cluster is also read without it,
	// by Running.
	mu      sync.Mutex
	cluster atomic.Pointer[kfake.Cluster] // nil while stopped
	closed  bool
}

// StartBroker starts a single-node broker on 127.0.0.1:port that keeps its
// state in dataDir (created if missing). Port 0 picks a free port, which then
// stays the Broker's port for its whole life; a fixed port that is taken is an
// error. A data directory from an earlier Broker is reloaded: topics,
// messages and committed group offsets. Every topic of contract.Topics that
// does not exist yet is created with 3 partitions.
func StartBroker(dataDir string, port int) (*Broker, error) {
	if err := os.MkdirAll(dataDir, 0o755); err != nil {
		return nil, fmt.Errorf("start kafka broker: data dir: %w", err)
	}
	log, err := openBrokerLog(filepath.Join(dataDir, brokerLogName))
	if err != nil {
		return nil, fmt.Errorf("start kafka broker: %w", err)
	}
	b := &Broker{dataDir: dataDir, port: port, log: log}
	c, err := b.newCluster()
	if err != nil {
		log.close()
		if errors.Is(err, syscall.EADDRINUSE) {
			return nil, fmt.Errorf("start kafka broker: 127.0.0.1:%d is not free (is another stack running?): %w", port, err)
		}
		return nil, fmt.Errorf("start kafka broker: %w", err)
	}
	if b.port == 0 {
		_, p, err := net.SplitHostPort(c.ListenAddrs()[0])
		if err == nil {
			b.port, err = strconv.Atoi(p)
		}
		if err != nil {
			c.Close()
			log.close()
			return nil, fmt.Errorf("start kafka broker: listen address: %w", err)
		}
	}
	b.addr = net.JoinHostPort("127.0.0.1", strconv.Itoa(b.port))
	b.cluster.Store(c)
	return b, nil
}

// Addr returns "127.0.0.1:<port>", the bootstrap address clients use
// (KAFKA_BROKERS). It is the same before and after any Stop and Start.
func (b *Broker) Addr() string { return b.addr }

// Advertise makes the broker tell clients, in its metadata and coordinator
// answers, to connect to addr (a host:port) instead of to itself: put a
// proxy at addr that forwards to Addr() and every client connection, after
// the bootstrap one, goes through it. It takes effect at once, also while
// running, and lasts across Stop and Start.
func (b *Broker) Advertise(addr string) error {
	a, err := net.ResolveTCPAddr("tcp", addr)
	if err != nil {
		return fmt.Errorf("advertise %q: %w", addr, err)
	}
	b.advertised.Store(a)
	return nil
}

// advertisingListener is the broker's listener, reporting the advertised
// address (if any) as its own: kfake advertises its listener's address.
type advertisingListener struct {
	net.Listener
	b *Broker
}

func (l advertisingListener) Addr() net.Addr {
	if a := l.b.advertised.Load(); a != nil {
		return a
	}
	return l.Listener.Addr()
}

// Stop takes the broker away as a Kafka outage would: the listener and every
// client connection are closed, so new connections are refused. The state is
// written to the data directory and stays there for Start. Stopping a stopped
// broker does nothing. The error reports state that could not be saved.
func (b *Broker) Stop() error {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.stopLocked()
}

func (b *Broker) stopLocked() error {
	c := b.cluster.Swap(nil)
	if c == nil {
		return nil
	}
	// kfake reports a failed save only through its logger.
	b.log.takeErrors()
	c.Close()
	b.log.notef("stopped")
	if errs := b.log.takeErrors(); len(errs) > 0 {
		return fmt.Errorf("stop kafka broker: save state to %s: %s", b.dataDir, strings.Join(errs, "; "))
	}
	return nil
}

// Start brings a stopped broker back on the same port with the same data:
// topics, messages and committed group offsets. If the port is still taken
// it retries for up to 5 s. Starting a running broker does nothing; starting
// a closed one is an error.
func (b *Broker) Start() error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed {
		return errors.New("start kafka broker: closed")
	}
	if b.cluster.Load() != nil {
		return nil
	}
	deadline := time.Now().Add(brokerRebindWait)
	for {
		c, err := b.newCluster()
		if err == nil {
			b.cluster.Store(c)
			return nil
		}
		if !errors.Is(err, syscall.EADDRINUSE) || time.Now().After(deadline) {
			return fmt.Errorf("start kafka broker on %s: %w", b.addr, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// Running reports whether the broker is started (and not stopped or closed).
func (b *Broker) Running() bool { return b.cluster.Load() != nil }

// Close stops the broker for good, as Stop does, leaving its data on disk;
// a later StartBroker on the same directory reloads it. Closing twice does
// nothing.
func (b *Broker) Close() error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed {
		return nil
	}
	b.closed = true
	err := b.stopLocked()
	return errors.Join(err, b.log.close())
}

// newCluster starts kfake on b.port and creates whichever contract topic is
// missing. kfake ignores SeedTopics when it reloads a data directory, so a
// directory saved without a topic would otherwise stay without it.
func (b *Broker) newCluster() (*kfake.Cluster, error) {
	_, statErr := os.Stat(filepath.Join(b.dataDir, "meta.json"))
	reload := statErr == nil
	c, err := kfake.NewCluster(
		kfake.Ports(b.port),
		kfake.ListenFn(func(network, address string) (net.Listener, error) {
			ln, err := net.Listen(network, address)
			if err != nil {
				return nil, err
			}
			return advertisingListener{Listener: ln, b: b}, nil
		}),
		kfake.DataDir(b.dataDir),
		kfake.SeedTopics(brokerPartitions, contract.Topics...),
		kfake.WithLogger(b.log),
	)
	if err != nil {
		return nil, err
	}
	var created []string
	for _, topic := range contract.Topics {
		if c.TopicInfo(topic) != nil {
			continue
		}
		if err := c.CreateTopic(topic, brokerPartitions, nil); err != nil {
			c.Close()
			return nil, fmt.Errorf("create topic %s: %w", topic, err)
		}
		created = append(created, topic)
	}
	what := "new data directory"
	if reload {
		what = "reloaded data directory"
	}
	if len(created) > 0 {
		what += ", created missing topics " + strings.Join(created, ", ")
	}
	b.log.notef("started (%s)", what)
	return c, nil
}

// brokerLog is kfake's logger: warnings and errors, appended to a file. It
// also remembers the errors, because kfake has no other way to report that
// saving its state failed.
type brokerLog struct {
	mu   sync.Mutex
	f    *os.File
	errs []string
}

func openBrokerLog(path string) (*brokerLog, error) {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, fmt.Errorf("open broker log: %w", err)
	}
	return &brokerLog{f: f}, nil
}

// Logf implements kfake.Logger.
func (l *brokerLog) Logf(level kfake.LogLevel, format string, args ...any) {
	if level > kfake.LogLevelWarn || level == kfake.LogLevelNone {
		return
	}
	msg := fmt.Sprintf(format, args...)
	l.mu.Lock()
	defer l.mu.Unlock()
	if level == kfake.LogLevelError {
		l.errs = append(l.errs, msg)
	}
	l.writeLocked(level.String(), msg)
}

// notef records what the launcher did, among kfake's own lines.
func (l *brokerLog) notef(format string, args ...any) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.writeLocked("INF", fmt.Sprintf(format, args...))
}

func (l *brokerLog) writeLocked(level, msg string) {
	if l.f == nil {
		return
	}
	// The log is a courtesy: failing to write it must not fail the broker.
	_, _ = fmt.Fprintf(l.f, "%s [%s] %s\n", time.Now().UTC().Format(time.RFC3339Nano), level, msg)
}

// takeErrors returns the errors logged since the last call and forgets them.
func (l *brokerLog) takeErrors() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	errs := l.errs
	l.errs = nil
	return errs
}

func (l *brokerLog) close() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.f == nil {
		return nil
	}
	err := l.f.Close()
	l.f = nil
	if err != nil {
		return fmt.Errorf("close broker log: %w", err)
	}
	return nil
}
