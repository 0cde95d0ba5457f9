package main

import (
	"encoding/json"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/pushd/pushd/internal/pushsim"
)

// freeAddr returns a loopback address nobody listens on.
func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

func get(t *testing.T, url string) (int, string) {
	t.Helper()
	res, err := http.Get(url)
	if err != nil {
		return 0, err.Error()
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	return res.StatusCode, string(b)
}

// TestNotifySequence checks what systemd hears, on a NOTIFY_SOCKET the test
// reads: READY, WATCHDOG, STATUS, RELOADING then READY on SIGHUP, and
// STOPPING on SIGTERM.
func TestNotifySequence(t *testing.T) {
	t.Parallel()
	e := newEnv(t, "", pushsim.Options{})
	sock := filepath.Join(t.TempDir(), "notify.sock")
	conn, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: sock, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	msgs := make(chan string, 100)
	go func() {
		buf := make([]byte, 4096)
		for {
			n, _, err := conn.ReadFromUnix(buf)
			if err != nil {
				close(msgs)
				return
			}
			msgs <- string(buf[:n])
		}
	}()
	expect := func(what string, match func(string) bool) {
		t.Helper()
		timeout := time.After(20 * time.Second)
		for {
			select {
			case m, ok := <-msgs:
				if !ok {
					t.Fatalf("notify socket closed while waiting for %s", what)
				}
				if match(m) {
					return
				}
			case <-timeout:
				t.Fatalf("no %s notification within 20 s", what)
			}
		}
	}
	is := func(s string) func(string) bool { return func(m string) bool { return m == s } }
	d := e.startWith([]string{"NOTIFY_SOCKET=" + sock, "WATCHDOG_USEC=2000000"})
	expect("READY=1", is("READY=1"))
	expect("WATCHDOG=1", is("WATCHDOG=1"))
	expect("STATUS", func(m string) bool {
		return regexp.MustCompile(`^STATUS=\d+ campaigns running, [\d,]+/[\d,]+ sent$`).MatchString(m)
	})
	d.cmd.Process.Signal(syscall.SIGHUP)
	expect("RELOADING=1", func(m string) bool { return strings.HasPrefix(m, "RELOADING=1\nMONOTONIC_USEC=") })
	expect("READY=1 after reload", is("READY=1"))
	d.cmd.Process.Signal(syscall.SIGTERM)
	expect("STOPPING=1", is("STOPPING=1"))
	d.wait(t)
}

// TestReload: a new app becomes usable, an invalid config is rejected whole
// (and shown in /readyz) while the old one keeps working, and removing an
// app stops its running campaign with a reason.
func TestReload(t *testing.T) {
	t.Parallel()
	addr := freeAddr(t)
	e := newEnv(t, "listen = "+addr+"\n", pushsim.Options{Faults: pushsim.Faults{Latency: 50 * time.Millisecond}})
	e.users("IOS2", 100, func(i int) string { return iosToken("", i) }, "NOW(3) - INTERVAL 1 DAY")
	e.users("IOS", 100, func(i int) string { return iosToken("", i+1000) }, "NOW(3) - INTERVAL 1 DAY")
	e.users("Android", 20000, func(i int) string { return fcmToken("ok-", i) }, "NOW(3) - INTERVAL 1 DAY")
	orig, err := os.ReadFile(e.config)
	if err != nil {
		t.Fatal(err)
	}
	d := e.start()
	hup := func(cfg string) {
		t.Helper()
		if err := os.WriteFile(e.config, []byte(cfg), 0o600); err != nil {
			t.Fatal(err)
		}
		d.cmd.Process.Signal(syscall.SIGHUP)
	}
	waitFor(t, 20*time.Second, "pushd to listen", func() bool { code, _ := get(t, "http://"+addr+"/readyz"); return code == 200 })

	// 1. A new app section, a copy of [IOS].
	iosSection := regexp.MustCompile(`(?s)\[IOS\]\n.*?\n\n`).FindString(string(orig))
	withIOS2 := string(orig) + "\n" + strings.Replace(iosSection, "[IOS]", "[IOS2]", 1)
	hup(withIOS2)
	waitFor(t, 20*time.Second, "the reload", func() bool { return strings.Contains(d.log.String(), "config reloaded") })
	id := e.campaign("IOS2", time.Now(), nil)
	if r := e.waitStatus(id, time.Minute, "done", "failed", "expired"); r.Status != "done" || r.Sent != 100 {
		t.Fatalf("campaign of the new app: %+v", r)
	}

	// 2. An invalid config is rejected whole; the old one stays in force.
	hup(strings.Replace(withIOS2, "[IOS2]\n", "[IOS2]\nbatch_size = 0\n", 1))
	waitFor(t, 20*time.Second, "the rejection", func() bool { return strings.Contains(d.log.String(), "reload rejected") })
	code, body := get(t, "http://"+addr+"/readyz")
	var ready struct {
		Ready  bool   `json:"ready"`
		Config string `json:"config"`
	}
	json.Unmarshal([]byte(body), &ready)
	if code != http.StatusServiceUnavailable || ready.Ready || !strings.Contains(ready.Config, "batch_size") {
		t.Errorf("/readyz after a rejected reload: %d %s", code, body)
	}
	id = e.campaign("IOS2", time.Now(), nil)
	if r := e.waitStatus(id, time.Minute, "done", "failed", "expired"); r.Status != "done" {
		t.Fatalf("IOS2 must still work on the previous config: %+v", r)
	}

	// 3. Removing an app stops its running campaign with a reason.
	big := e.campaign("Android", time.Now(), map[string]any{"batch_size": 100})
	waitFor(t, time.Minute, "the Android campaign to send", func() bool { return e.row(big).Sent > 0 })
	without := regexp.MustCompile(`(?s)\[Android\]\n.*?(\n\n|$)`).ReplaceAllString(withIOS2, "")
	hup(without)
	r := e.waitStatus(big, time.Minute, "failed", "done")
	if r.Status != "failed" || !strings.Contains(r.Reason, "removed from config.ini") || r.Sent >= 20000 {
		t.Fatalf("campaign of a removed app: %+v", r)
	}
	code, body = get(t, "http://"+addr+"/readyz")
	if code != 200 {
		t.Errorf("/readyz after a good reload: %d %s", code, body)
	}
	d.stop(t)
}

// TestMetrics checks /metrics and /healthz after a campaign.
func TestMetrics(t *testing.T) {
	t.Parallel()
	addr := freeAddr(t)
	e := newEnv(t, "listen = "+addr+"\n", pushsim.Options{})
	e.users("IOS", 300, func(i int) string { return iosToken("", i) }, "NOW(3) - INTERVAL 1 DAY")
	e.users("IOS", 7, func(i int) string { return iosToken("0bad", i) }, "NOW(3) - INTERVAL 1 DAY")
	d := e.start()
	id := e.campaign("IOS", time.Now(), nil)
	e.waitStatus(id, time.Minute, "done", "failed", "expired")
	if code, body := get(t, "http://"+addr+"/healthz"); code != 200 || body != "ok\n" {
		t.Errorf("/healthz: %d %q", code, body)
	}
	want := []string{
		`pushd_sends_total{app="IOS",outcome="sent",provider="APNs",reason=""} 300`,
		`pushd_sends_total{app="IOS",outcome="invalid",provider="APNs",reason="BadDeviceToken"} 7`,
		`pushd_provider_latency_seconds_count{app="IOS",provider="APNs"} 307`,
		`pushd_scheduler_lag_seconds_count{app="IOS"} 1`,
		`pushd_auth_token_refreshes_total{app="IOS",provider="APNs"} 1`,
		`pushd_inflight_requests{app="IOS",provider="APNs"} 0`,
		`pushd_campaigns{status="done"} 1`,
		`pushd_ledger_write_seconds_count{app="IOS"}`,
	}
	// The campaigns gauge is refreshed every 5 s, so poll until everything
	// is there; on timeout, say which lines are missing.
	var missing []string
	deadline := time.Now().Add(15 * time.Second)
	for {
		_, body := get(t, "http://"+addr+"/metrics")
		missing = missing[:0]
		for _, w := range want {
			if !strings.Contains(body, w) {
				missing = append(missing, w)
			}
		}
		if len(missing) == 0 || time.Now().After(deadline) {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	d.stop(t)
	if len(missing) > 0 {
		t.Fatalf("/metrics lacks:\n%s", strings.Join(missing, "\n"))
	}
}

// TestReloadChangedAppMidRun changes a running app's settings: its run goes
// on with the new client, nobody is lost or sent twice.
func TestReloadChangedAppMidRun(t *testing.T) {
	t.Parallel()
	e := newEnv(t, "", pushsim.Options{Faults: pushsim.Faults{Latency: 40 * time.Millisecond}})
	const n = 15000
	e.users("IOS", n, func(i int) string { return iosToken("", i) }, "NOW(3) - INTERVAL 1 DAY")
	d := e.start()
	id := e.campaign("IOS", time.Now(), map[string]any{"batch_size": 100})
	waitFor(t, time.Minute, "the run to be under way", func() bool { return e.row(id).Sent > n/5 })
	e.setKey("IOS", "connections", "1")
	d.cmd.Process.Signal(syscall.SIGHUP)
	r := e.waitStatus(id, 2*time.Minute, "done", "failed", "expired")
	d.stop(t)
	if !strings.Contains(d.log.String(), `changed=1`) {
		t.Errorf("the reload did not replace the changed app's client")
	}
	if r.Status != "done" || r.Sent != n {
		t.Fatalf("row %+v, want done with %d sent", r, n)
	}
	if dups := e.duplicates(n); dups != 0 {
		t.Fatalf("%d duplicates across a reload, want 0", dups)
	}
}
