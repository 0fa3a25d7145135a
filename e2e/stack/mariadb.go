package stack

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/user"
	"strconv"
	"strings"
	"time"

	"github.com/go-sql-driver/mysql"
)

// DefaultMariaDBAddr is where the contract's default DSNs expect the server.
const DefaultMariaDBAddr = "127.0.0.1:3306"

// mariaDBHowTo is the hint given when the server cannot be brought up here.
const mariaDBHowTo = `start it by hand with: start-stop-daemon --start --oknodo --background --exec "$(command -v mariadbd)" ` +
	`(install it with: apt-get install mariadb-server); its error log is named by log-error in /etc/mysql/my.cnf`

// EnsureMariaDB makes sure a MariaDB server answers at addr (empty means
// DefaultMariaDBAddr) as root without a password. When nothing answers and
// addr is on loopback, it starts the local mariadbd in the background with
// start-stop-daemon, as the machine's own boot does, and waits up to 60 s for
// a connection and a ping to succeed. The error says how to start the server
// by hand.
func EnsureMariaDB(ctx context.Context, addr string) error {
	if addr == "" {
		addr = DefaultMariaDBAddr
	}
	if pingMariaDB(ctx, addr) == nil {
		return nil
	}
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("mariadb address %q: %w", addr, err)
	}
	if ip := net.ParseIP(host); host != "localhost" && (ip == nil || !ip.IsLoopback()) {
		return fmt.Errorf("MariaDB does not answer at %s, which is not on this machine; start it there", addr)
	}
	if err := startMariaDB(ctx); err != nil {
		return fmt.Errorf("MariaDB does not answer at %s and starting it failed: %w; %s", addr, err, mariaDBHowTo)
	}

	ctx, cancel := context.WithTimeout(ctx, 60*time.Second)
	defer cancel()
	tick := time.NewTicker(500 * time.Millisecond)
	defer tick.Stop()
	for {
		err := pingMariaDB(ctx, addr)
		if err == nil {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("MariaDB started but does not answer at %s after 60 s (%v); %s", addr, err, mariaDBHowTo)
		case <-tick.C:
		}
	}
}

// StopMariaDB shuts the server at addr down (SQL SHUTDOWN, as root) and
// waits up to 30 s until it no longer answers: a real MariaDB restart for the
// chaos suite, which EnsureMariaDB then completes. Everything else using the
// server loses it too.
func StopMariaDB(ctx context.Context, addr string) error {
	cfg := mysql.NewConfig()
	cfg.User, cfg.Net, cfg.Addr = "root", "tcp", addr
	conn, err := mysql.NewConnector(cfg)
	if err != nil {
		return fmt.Errorf("mysql connector: %w", err)
	}
	db := sql.OpenDB(conn)
	defer db.Close()
	if _, err := db.ExecContext(ctx, "SHUTDOWN"); err != nil {
		return fmt.Errorf("shut down MariaDB at %s: %w", addr, err)
	}
	deadline := time.Now().Add(30 * time.Second)
	for pingMariaDB(ctx, addr) == nil {
		if time.Now().After(deadline) {
			return fmt.Errorf("MariaDB at %s still answers 30 s after SHUTDOWN", addr)
		}
		time.Sleep(200 * time.Millisecond)
	}
	return nil
}

// EnsureMaxConnections raises the server's max_connections to at least n
// (SET GLOBAL, until the server restarts) and reports the value in force. The
// test suites run several services and databases at once, each with its own
// pool, which MariaDB's default of 151 does not fit.
func EnsureMaxConnections(ctx context.Context, addr string, n int) (int, error) {
	if addr == "" {
		addr = DefaultMariaDBAddr
	}
	cfg := mysql.NewConfig()
	cfg.User = "root"
	cfg.Net = "tcp"
	cfg.Addr = addr
	conn, err := mysql.NewConnector(cfg)
	if err != nil {
		return 0, fmt.Errorf("mysql connector: %w", err)
	}
	db := sql.OpenDB(conn)
	defer db.Close()
	var current int
	if err := db.QueryRowContext(ctx, "SELECT @@GLOBAL.max_connections").Scan(&current); err != nil {
		return 0, fmt.Errorf("read max_connections: %w", err)
	}
	if current >= n {
		return current, nil
	}
	if _, err := db.ExecContext(ctx, "SET GLOBAL max_connections = ?", n); err != nil {
		return current, fmt.Errorf("raise max_connections to %d: %w", n, err)
	}
	return n, nil
}

// pingMariaDB connects to addr as root and pings. A server that answers with
// an error of its own (access denied, say) is up: the services will report
// what is wrong with their DSN.
func pingMariaDB(ctx context.Context, addr string) error {
	cfg := mysql.NewConfig()
	cfg.User = "root"
	cfg.Net = "tcp"
	cfg.Addr = addr
	cfg.Timeout = 2 * time.Second
	conn, err := mysql.NewConnector(cfg)
	if err != nil {
		return fmt.Errorf("mysql connector: %w", err)
	}
	db := sql.OpenDB(conn)
	defer db.Close()
	ctx, cancel := context.WithTimeout(ctx, 3*time.Second)
	defer cancel()
	err = db.PingContext(ctx)
	var serverErr *mysql.MySQLError
	if err == nil || errors.As(err, &serverErr) {
		return nil
	}
	return fmt.Errorf("ping %s: %w", addr, err)
}

// startMariaDB runs `start-stop-daemon --start --oknodo --background --exec
// mariadbd` and returns once the daemon is launched (not yet answering).
func startMariaDB(ctx context.Context) error {
	daemon, err := findExecutable("mariadbd", "/usr/sbin/mariadbd")
	if err != nil {
		return err
	}
	ssd, err := findExecutable("start-stop-daemon", "/usr/sbin/start-stop-daemon", "/sbin/start-stop-daemon")
	if err != nil {
		return err
	}
	if err := ensureSocketDir(); err != nil {
		return err
	}
	// Output goes to a file, not a pipe: were the daemon to inherit a pipe,
	// reading it would wait for the server to exit.
	out, err := os.CreateTemp("", "start-mariadb-*.log")
	if err != nil {
		return fmt.Errorf("create output file: %w", err)
	}
	defer os.Remove(out.Name())
	defer out.Close()
	cmd := exec.CommandContext(ctx, ssd, "--start", "--oknodo", "--background", "--exec", daemon)
	cmd.Stdout = out
	cmd.Stderr = out
	if err := cmd.Run(); err != nil {
		msg, _ := os.ReadFile(out.Name())
		return fmt.Errorf("%s: %w: %s", strings.Join(cmd.Args, " "), err, strings.TrimSpace(string(msg)))
	}
	return nil
}

func findExecutable(name string, fallbacks ...string) (string, error) {
	if path, err := exec.LookPath(name); err == nil {
		return path, nil
	}
	for _, path := range fallbacks {
		if info, err := os.Stat(path); err == nil && !info.IsDir() && info.Mode()&0o111 != 0 {
			return path, nil
		}
	}
	return "", fmt.Errorf("%s not found on PATH or in %s", name, strings.Join(fallbacks, ", "))
}

// ensureSocketDir creates /run/mysqld, owned by the mysql user, when it is
// missing (a fresh /run after a reboot): Debian's config puts the pid file and
// socket there, and only its init script would create it.
func ensureSocketDir() error {
	const dir = "/run/mysqld"
	if _, err := os.Stat(dir); err == nil || os.Geteuid() != 0 {
		return nil
	}
	u, err := user.Lookup("mysql")
	if err != nil {
		return nil // no mysql user: not Debian's layout, nothing to prepare
	}
	uid, errUID := strconv.Atoi(u.Uid)
	gid, errGID := strconv.Atoi(u.Gid)
	if errUID != nil || errGID != nil {
		return nil
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("create %s: %w", dir, err)
	}
	if err := os.Chown(dir, uid, gid); err != nil {
		return fmt.Errorf("chown %s: %w", dir, err)
	}
	return nil
}
