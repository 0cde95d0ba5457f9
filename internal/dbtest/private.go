package dbtest

import (
	"database/sql"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/pushd/pushd/store"
)

// Private is a MariaDB server of one test's own, on its own port and data
// directory, that the test may stop and start to inject database outages
// without touching the shared server.
type Private struct {
	t     testing.TB
	dir   string
	port  int
	extra []string
	cmd   *exec.Cmd
	done  chan struct{}
}

// StartPrivate initialises and starts a private server. The test is
// skipped when mariadbd is not installed (scripts/mariadb.sh installs it).
// serverArgs are added to mariadbd's command line, as --local-infile=0.
func StartPrivate(t testing.TB, serverArgs ...string) *Private {
	t.Helper()
	for _, bin := range []string{"mariadbd", "mariadb-install-db"} {
		if _, err := exec.LookPath(bin); err != nil {
			if _, err := os.Stat("/usr/sbin/" + bin); err != nil {
				t.Skipf("%s not installed: run scripts/mariadb.sh", bin)
			}
		}
	}
	dir := t.TempDir()
	install := exec.Command("mariadb-install-db", "--no-defaults", "--datadir="+filepath.Join(dir, "data"),
		"--user="+currentUser(), "--auth-root-authentication-method=normal", "--skip-test-db")
	if out, err := install.CombinedOutput(); err != nil {
		t.Fatalf("mariadb-install-db: %v\n%s", err, out)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &Private{t: t, dir: dir, port: ln.Addr().(*net.TCPAddr).Port, extra: serverArgs}
	ln.Close()
	p.Start()
	t.Cleanup(p.Stop)
	db, err := sql.Open("mysql", p.dsn(""))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if _, err := db.Exec("CREATE DATABASE test CHARACTER SET utf8mb4"); err != nil {
		t.Fatal(err)
	}
	return p
}

func currentUser() string {
	if u := os.Getenv("USER"); u != "" {
		return u
	}
	return "root"
}

func (p *Private) dsn(db string) string {
	return fmt.Sprintf("root@tcp(127.0.0.1:%d)/%s", p.port, db)
}

// Options reaches database "test" on the private server.
func (p *Private) Options() store.Options {
	return store.Options{Host: "127.0.0.1", Port: p.port, User: "root", Database: "test", Location: time.UTC, MaxOpenConns: 16}
}

// Start starts the server and waits until it answers.
func (p *Private) Start() {
	p.t.Helper()
	p.cmd = exec.Command("mariadbd", "--no-defaults", "--datadir="+filepath.Join(p.dir, "data"),
		"--port="+strconv.Itoa(p.port), "--bind-address=127.0.0.1", "--socket="+filepath.Join(p.dir, "sock"),
		"--user="+currentUser(), "--skip-log-error", "--innodb-buffer-pool-size=64M")
	p.cmd.Args = append(p.cmd.Args, p.extra...)
	p.cmd.Stdout, p.cmd.Stderr = nil, nil
	if err := p.cmd.Start(); err != nil {
		p.t.Fatal(err)
	}
	p.done = make(chan struct{})
	go func(c *exec.Cmd, done chan struct{}) { c.Wait(); close(done) }(p.cmd, p.done)
	db, err := sql.Open("mysql", p.dsn(""))
	if err != nil {
		p.t.Fatal(err)
	}
	defer db.Close()
	deadline := time.Now().Add(60 * time.Second)
	for db.Ping() != nil {
		if time.Now().After(deadline) {
			p.t.Fatal("private mariadbd did not answer within 60 s")
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// Stop shuts the server down cleanly and waits for it to exit. It may be
// called when the server is already stopped.
func (p *Private) Stop() {
	if p.cmd == nil || p.cmd.Process == nil {
		return
	}
	select {
	case <-p.done:
		return
	default:
	}
	p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(60 * time.Second):
		p.cmd.Process.Kill()
		<-p.done
	}
}
