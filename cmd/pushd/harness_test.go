package main

import (
	"bytes"
	"context"
	"database/sql"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/pushd/pushd/internal/dbtest"
	"github.com/pushd/pushd/internal/pushsim"
	"github.com/pushd/pushd/store"
)

// bin is the real pushd binary, built the first time an end-to-end test
// asks for it: `go test -run TestUnit` builds nothing.
var bin struct {
	once sync.Once
	dir  string // removed by TestMain
	path string
	err  error
}

// pushdBinary returns the path of the pushd binary, building it on first
// use. It is built with -race when this test binary is, so that
// `go test -race` runs the daemon under the race detector too.
func pushdBinary(t testing.TB) string {
	t.Helper()
	bin.once.Do(func() {
		bin.dir, bin.err = os.MkdirTemp("", "pushd-e2e-bin")
		if bin.err != nil {
			return
		}
		bin.path = filepath.Join(bin.dir, "pushd")
		args := []string{"build", "-o", bin.path}
		if raceEnabled {
			args = append(args, "-race")
		}
		out, err := exec.Command("go", append(args, ".")...).CombinedOutput()
		if err != nil {
			bin.err = fmt.Errorf("%w\n%s", err, out)
		}
	})
	if bin.err != nil {
		t.Fatalf("build pushd: %v", bin.err)
	}
	return bin.path
}

func TestMain(m *testing.M) {
	code := m.Run()
	if bin.dir != "" {
		os.RemoveAll(bin.dir)
	}
	os.Exit(code)
}

// env is one end-to-end environment: a fresh database, a simulator and a
// config.ini with an APNs app "IOS" and an FCM app "Android".
type env struct {
	t      *testing.T
	db     *sql.DB
	sim    *pushsim.Server
	config string
	dir    string
}

const bundleID = "com.example.e2e"

func newEnv(t *testing.T, extraServer string, simOpts pushsim.Options) *env {
	t.Helper()
	return newEnvOn(t, dbtest.Options(t), extraServer, simOpts)
}

// newEnvOn is newEnv on a given database.
func newEnvOn(t *testing.T, o store.Options, extraServer string, simOpts pushsim.Options) *env {
	t.Helper()
	dir := t.TempDir()
	simOpts.Dir = filepath.Join(dir, "sim")
	simOpts.BundleIDs = []string{bundleID}
	sim, err := pushsim.Start(simOpts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sim.Close() })
	f := sim.Files()
	listen := "listen = off\n"
	if strings.Contains(extraServer, "listen") {
		listen = ""
	}
	cfg := fmt.Sprintf(`[Server]
%spoll_interval = 200ms
lease_duration = 5s
shutdown_timeout = 10s
log_format = text
%s
[SSL]
ca_file = %s

[Database]
host = %s
port = %d
user = %s
password = %s
database = %s

[IOS]
push_type = APNs
environment = development
endpoint = %s
bundle_id = %s
auth_key_path = %s
key_id = %s
team_id = %s
max_attempts = 10

[Android]
push_type = FCM
endpoint = %s
service_account_file = %s
max_attempts = 10
`, listen, extraServer, f.CAFile, o.Host, o.Port, o.User, o.Password, o.Database,
		sim.URL(), bundleID, f.AuthKeyFile, f.KeyID, f.TeamID, sim.URL(), f.ServiceAccountFile)
	path := filepath.Join(dir, "config.ini")
	if err := os.WriteFile(path, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	st, err := store.Open(context.Background(), o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	e := &env{t: t, db: st.DB(), sim: sim, config: path, dir: dir}
	// Migrate in-process: tests that never start the binary (send, status)
	// then need no build. TestCommands runs the binary's migrate.
	var out bytes.Buffer
	if err := run(t.Context(), []string{"migrate", "-config", path}, &out, &out); err != nil {
		t.Fatalf("pushd migrate: %v\n%s", err, out.String())
	}
	return e
}

// pushd runs a pushd command to completion.
func (e *env) pushd(cmd string, args ...string) (string, error) {
	c := exec.Command(pushdBinary(e.t), append([]string{cmd, "-config", e.config}, args...)...)
	out, err := c.CombinedOutput()
	return string(out), err
}

// proc is a running `pushd run`.
type proc struct {
	cmd    *exec.Cmd
	log    *syncBuffer
	exited chan error
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func (e *env) start() *proc { return e.startWith(nil) }

// startWith starts `pushd run` with extra environment variables.
func (e *env) startWith(environ []string) *proc {
	e.t.Helper()
	d := &proc{cmd: exec.Command(pushdBinary(e.t), "run", "-config", e.config), log: &syncBuffer{}, exited: make(chan error, 1)}
	d.cmd.Stderr = d.log
	d.cmd.Env = append(os.Environ(), environ...)
	if err := d.cmd.Start(); err != nil {
		e.t.Fatal(err)
	}
	go func() { d.exited <- d.cmd.Wait() }()
	e.t.Cleanup(func() {
		if e.t.Failed() {
			// A still-running pushd dumps its goroutines on SIGQUIT: the
			// first thing to read when a campaign hangs.
			d.cmd.Process.Signal(syscall.SIGQUIT)
			select {
			case err := <-d.exited:
				d.exited <- err
			case <-time.After(5 * time.Second):
			}
		}
		d.cmd.Process.Kill()
		<-d.exited
		if e.t.Failed() {
			e.t.Logf("pushd log:\n%s", d.log.String())
		}
	})
	return d
}

// stop sends SIGTERM and waits for a clean exit.
func (d *proc) stop(t *testing.T) {
	t.Helper()
	d.cmd.Process.Signal(syscall.SIGTERM)
	d.wait(t)
}

// wait waits for a clean exit after a signal already sent.
func (d *proc) wait(t *testing.T) {
	t.Helper()
	select {
	case err := <-d.exited:
		d.exited <- err
		if err != nil {
			t.Fatalf("pushd exited with %v after SIGTERM\n%s", err, d.log.String())
		}
	case <-time.After(30 * time.Second):
		t.Fatalf("pushd did not exit within 30 s of SIGTERM\n%s", d.log.String())
	}
}

// users seeds n users of app with tokens made by token(i), registered at
// registered (SQL expression).
func (e *env) users(app string, n int, token func(i int) string, registered string) {
	e.t.Helper()
	for lo := 0; lo < n; lo += 1000 {
		var q strings.Builder
		args := []any{}
		q.WriteString("INSERT INTO users (app, push_token, registered_at) VALUES ")
		for i := lo; i < min(n, lo+1000); i++ {
			if i > lo {
				q.WriteByte(',')
			}
			q.WriteString("(?, ?, " + registered + ")")
			args = append(args, app, token(i))
		}
		if _, err := e.db.Exec(q.String(), args...); err != nil {
			e.t.Fatal(err)
		}
	}
}

// campaign inserts a campaign row; cols and vals are extra columns.
func (e *env) campaign(app string, at time.Time, extra map[string]any) int64 {
	e.t.Helper()
	cols := []string{"app", "title", "body", "scheduled_at"}
	args := []any{app, "Sale", "Everything 50% off 🎉", at.UTC()}
	for k, v := range extra {
		if i := slices.Index(cols, k); i >= 0 {
			args[i] = v
			continue
		}
		cols = append(cols, k)
		args = append(args, v)
	}
	q := "INSERT INTO campaigns (" + strings.Join(cols, ", ") + ") VALUES (?" + strings.Repeat(", ?", len(cols)-1) + ")"
	res, err := e.db.Exec(q, args...)
	if err != nil {
		e.t.Fatal(err)
	}
	id, _ := res.LastInsertId()
	return id
}

type row struct {
	Status, Reason                           string
	Targeted, Sent, Failed, Invalid, Expired int
}

func (e *env) row(id int64) row {
	e.t.Helper()
	var r row
	err := e.db.QueryRow(`SELECT status, status_reason, targeted, sent, failed, invalid_tokens, expired FROM campaigns WHERE id = ?`, id).
		Scan(&r.Status, &r.Reason, &r.Targeted, &r.Sent, &r.Failed, &r.Invalid, &r.Expired)
	if err != nil {
		e.t.Fatal(err)
	}
	return r
}

// waitStatus waits until the campaign reaches one of the statuses.
func (e *env) waitStatus(id int64, timeout time.Duration, statuses ...string) row {
	e.t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		r := e.row(id)
		for _, s := range statuses {
			if r.Status == s {
				return r
			}
		}
		if time.Now().After(deadline) {
			e.t.Fatalf("campaign %d still %s after %v (want %v): %+v", id, r.Status, timeout, statuses, r)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// waitFor polls cond until it holds.
func waitFor(t *testing.T, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", timeout, what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// delivered maps token to times pushsim delivered it, for one provider.
func (e *env) delivered(provider string) map[string]pushsim.Delivery {
	out := map[string]pushsim.Delivery{}
	for _, d := range e.sim.Deliveries() {
		if d.Provider == provider {
			out[d.Token] = d
		}
	}
	return out
}

func (e *env) count(q string, args ...any) int {
	e.t.Helper()
	var n int
	if err := e.db.QueryRow(q, args...).Scan(&n); err != nil {
		e.t.Fatal(err)
	}
	return n
}

// setKey adds key = value to a section of the env's config.ini.
func (e *env) setKey(section, key, value string) {
	e.t.Helper()
	b, err := os.ReadFile(e.config)
	if err != nil {
		e.t.Fatal(err)
	}
	head := "[" + section + "]\n"
	start := bytes.Index(b, []byte(head))
	if start < 0 {
		e.t.Fatalf("config has no section %s", head)
	}
	end := len(b)
	if i := bytes.Index(b[start+len(head):], []byte("\n[")); i >= 0 {
		end = start + len(head) + i
	}
	block := regexp.MustCompile(`(?m)^`+key+` = .*\n`).ReplaceAll(b[start+len(head):end], nil)
	b = slices.Concat(b[:start], []byte(head+key+" = "+value+"\n"), block, b[end:])
	if err := os.WriteFile(e.config, b, 0o600); err != nil {
		e.t.Fatal(err)
	}
}
