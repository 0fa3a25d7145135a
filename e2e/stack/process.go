package stack

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

const (
	// readyTimeout bounds how long a start waits for GET /readyz to answer 200.
	readyTimeout = 30 * time.Second
	// stopTimeout is the drain time the contract gives a service after SIGTERM.
	stopTimeout = 10 * time.Second
	// tailLines is how much of a log an error carries.
	tailLines = 40
)

// Process is one service binary run as a child process in its own process
// group. It can be stopped, killed and started again in place, with the same
// address, environment and log file every time, which is what fault-injection
// tests need. Its methods are safe for concurrent use.
type Process struct {
	// Name is the binary's name: ProductBinary or OrderBinary.
	Name string
	// URL is the base URL the process serves on, e.g. http://127.0.0.1:8081.
	URL string
	// LogPath is the file that collects the process's stdout and stderr. It is
	// appended to, so it holds every run of the process.
	LogPath string

	path   string
	env    []string
	client *http.Client

	mu  sync.Mutex
	cur *run
}

// run is one life of a process, from start to exit.
type run struct {
	cmd  *exec.Cmd
	done chan struct{}
	err  error // how the process exited; written before done is closed
	// signalled is set once Stop or Kill signals the process, so that an exit
	// that nobody asked for can be told apart.
	signalled atomic.Bool
	// logOffset is where this run's part of the log begins.
	logOffset int64
}

func (r *run) exited() bool {
	select {
	case <-r.done:
		return true
	default:
		return false
	}
}

func newProcess(name, path, url, logPath string, env []string) *Process {
	return &Process{
		Name:    name,
		URL:     url,
		LogPath: logPath,
		path:    path,
		env:     env,
		client:  &http.Client{Timeout: time.Second},
	}
}

// Start runs the binary and waits until GET /readyz answers 200, for at most
// 30 s or until ctx ends. If the process exits first, or never gets ready, it
// is stopped and the error carries the tail of its log. The process outlives
// ctx: only Stop and Kill end it. Starting a running process is an error.
func (p *Process) Start(ctx context.Context) error {
	r, err := p.spawn()
	if err != nil {
		return err
	}
	if err := p.waitReady(ctx, r); err != nil {
		// How it ended is already in err; the kill only makes sure it has.
		_ = p.terminate(r, syscall.SIGKILL)
		return err
	}
	return nil
}

func (p *Process) spawn() (*run, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.cur != nil && !p.cur.exited() {
		return nil, fmt.Errorf("start %s: already running as pid %d", p.Name, p.cur.cmd.Process.Pid)
	}
	logFile, err := os.OpenFile(p.LogPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, fmt.Errorf("open log of %s: %w", p.Name, err)
	}
	// The child gets its own copy of the descriptor; ours is not needed after
	// the start.
	defer logFile.Close()
	info, err := logFile.Stat()
	if err != nil {
		return nil, fmt.Errorf("stat log of %s: %w", p.Name, err)
	}
	writeNote(logFile, p.Name, "starting "+p.path)

	cmd := exec.Command(p.path)
	cmd.Env = p.env
	cmd.Stdout = logFile
	cmd.Stderr = logFile
	cmd.SysProcAttr = sysProcAttr()
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s: %w", p.Name, err)
	}
	r := &run{cmd: cmd, done: make(chan struct{}), logOffset: info.Size()}
	go func() {
		r.err = cmd.Wait()
		close(r.done)
	}()
	p.cur = r
	return r, nil
}

func (p *Process) waitReady(ctx context.Context, r *run) error {
	ctx, cancel := context.WithTimeout(ctx, readyTimeout)
	defer cancel()
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	probeErr := errors.New("not probed yet")
	for {
		select {
		case <-r.done:
			return fmt.Errorf("%s exited before it was ready (%v); log %s ends with:\n%s",
				p.Name, r.err, p.LogPath, p.Tail(tailLines))
		case <-ctx.Done():
			return fmt.Errorf("%s not ready at %s/readyz (%v, last probe: %v); log %s ends with:\n%s",
				p.Name, p.URL, ctx.Err(), probeErr, p.LogPath, p.Tail(tailLines))
		case <-tick.C:
			if probeErr = p.probe(ctx); probeErr == nil {
				return nil
			}
		}
	}
}

func (p *Process) probe(ctx context.Context) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, p.URL+"/readyz", nil)
	if err != nil {
		return err
	}
	resp, err := p.client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("readyz answered %s", resp.Status)
	}
	return nil
}

// Stop sends SIGTERM and waits up to 10 s for the process to drain and exit;
// after that it is killed. It returns nil when the process exited with status
// 0 in time, or was not running. It reports a process that had to be killed,
// exited non-zero on SIGTERM, or had exited on its own (crashed) since its
// start.
func (p *Process) Stop() error {
	r := p.current()
	if r == nil {
		return nil
	}
	return p.terminate(r, syscall.SIGTERM)
}

// Kill sends SIGKILL, as a crash would, and waits until the process is gone.
// Killing a process that is not running does nothing.
func (p *Process) Kill() error {
	r := p.current()
	if r == nil {
		return nil
	}
	return p.terminate(r, syscall.SIGKILL)
}

// Restart stops the process as Stop does, if it is running, and starts it
// again as Start does. If stopping reports an error the process is not started.
func (p *Process) Restart(ctx context.Context) error {
	if err := p.Stop(); err != nil {
		return fmt.Errorf("restart: %w", err)
	}
	return p.Start(ctx)
}

// Running reports whether the process has been started and has not exited.
func (p *Process) Running() bool {
	r := p.current()
	return r != nil && !r.exited()
}

// Done returns a channel that is closed when the current run of the process
// exits (already closed when it is not running). A later Start makes a new
// channel.
func (p *Process) Done() <-chan struct{} {
	if r := p.current(); r != nil {
		return r.done
	}
	closed := make(chan struct{})
	close(closed)
	return closed
}

func (p *Process) current() *run {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.cur
}

// terminate signals r's process group with sig and waits for it to exit,
// escalating to SIGKILL after stopTimeout. An exit caused by SIGKILL is
// expected; so is status 0 after SIGTERM.
func (p *Process) terminate(r *run, sig syscall.Signal) error {
	if r.exited() {
		if r.signalled.Swap(true) || r.err == nil {
			return nil
		}
		return fmt.Errorf("%s had exited on its own: %w", p.Name, r.err)
	}
	r.signalled.Store(true)
	pid := r.cmd.Process.Pid
	p.note(fmt.Sprintf("sending %s to pid %d", signalName(sig), pid))
	// The child leads its own process group; signalling the group also reaches
	// anything it spawned.
	if err := syscall.Kill(-pid, sig); err != nil && !errors.Is(err, syscall.ESRCH) {
		return fmt.Errorf("signal %s (pid %d): %w", p.Name, pid, err)
	}
	if sig == syscall.SIGKILL {
		<-r.done
		return nil
	}
	timer := time.NewTimer(stopTimeout)
	defer timer.Stop()
	select {
	case <-r.done:
		if r.err != nil {
			return fmt.Errorf("%s exited uncleanly on %s: %w", p.Name, signalName(sig), r.err)
		}
		return nil
	case <-timer.C:
		_ = syscall.Kill(-pid, syscall.SIGKILL)
		<-r.done
		return fmt.Errorf("%s did not exit within %s of %s, killed it", p.Name, stopTimeout, signalName(sig))
	}
}

func signalName(sig syscall.Signal) string {
	switch sig {
	case syscall.SIGTERM:
		return "SIGTERM"
	case syscall.SIGKILL:
		return "SIGKILL"
	}
	return sig.String()
}

// note appends a line in the services' JSON log format to the log, so that a
// reader can see where the launcher started or signalled the process.
func (p *Process) note(msg string) {
	f, err := os.OpenFile(p.LogPath, os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		return // the note is a courtesy; the log may be gone with its test
	}
	defer f.Close()
	writeNote(f, p.Name, msg)
}

func writeNote(w io.Writer, process, msg string) {
	line, _ := json.Marshal(struct {
		Time    time.Time `json:"time"`
		Level   string    `json:"level"`
		Msg     string    `json:"msg"`
		Process string    `json:"process"`
	}{time.Now().UTC(), "INFO", "e2e stack: " + msg, process})
	_, _ = w.Write(append(line, '\n'))
}

// Tail returns at most the last n lines that the current run of the process
// (or the last one, once it has exited) wrote to its log, for error messages.
// A log that cannot be read yields a note saying why.
func (p *Process) Tail(n int) string {
	const window = 64 << 10 // enough for any reasonable n
	var from int64
	if r := p.current(); r != nil {
		from = r.logOffset
	}
	f, err := os.Open(p.LogPath)
	if err != nil {
		return fmt.Sprintf("(no log: %v)", err)
	}
	defer f.Close()
	info, err := f.Stat()
	if err != nil {
		return fmt.Sprintf("(log unreadable: %v)", err)
	}
	offset := max(info.Size()-window, from, 0)
	buf := make([]byte, max(info.Size()-offset, 0))
	if _, err := f.ReadAt(buf, offset); err != nil && !errors.Is(err, io.EOF) {
		return fmt.Sprintf("(log unreadable: %v)", err)
	}
	lines := strings.Split(string(bytes.TrimRight(buf, "\n")), "\n")
	if offset > from && len(lines) > 1 {
		lines = lines[1:] // the first line was cut by the window
	}
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
