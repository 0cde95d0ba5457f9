package main

import (
	"encoding/json"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/pushd/pushd/internal/pushsim"
)

// runFault sends one campaign of n users of app under the given faults and
// returns its final row and how long it took from the start.
func runFault(t *testing.T, app string, n int, faults pushsim.Faults, extra map[string]any) (*env, row, time.Duration) {
	t.Helper()
	e := newEnv(t, "", pushsim.Options{Faults: faults})
	if app == "IOS" {
		e.users(app, n, func(i int) string { return iosToken("", i) }, "NOW(3) - INTERVAL 1 DAY")
	} else {
		e.users(app, n, func(i int) string { return fcmToken("ok-", i) }, "NOW(3) - INTERVAL 1 DAY")
	}
	if extra == nil {
		extra = map[string]any{}
	}
	if _, ok := extra["expires_at"]; !ok {
		extra["expires_at"] = time.Now().Add(time.Hour).UTC()
	}
	d := e.start()
	start := time.Now()
	id := e.campaign(app, start, extra)
	r := e.waitStatus(id, 3*time.Minute, "done", "failed", "expired")
	took := time.Since(start)
	d.stop(t)
	return e, r, took
}

// exactlyOnce checks that pushsim delivered to each of the n tokens once.
func (e *env) exactlyOnce(provider string, n int, token func(int) string) {
	e.t.Helper()
	got := e.delivered(provider)
	for i := 0; i < n; i++ {
		if dl := got[token(i)]; dl.Count != 1 {
			e.t.Fatalf("token %s delivered %d times, want 1", token(i), dl.Count)
		}
	}
}

// 503 to 30% of requests: everything still arrives once, after backoff.
func TestProvider503(t *testing.T) {
	t.Parallel()
	const n = 3000
	e, r, took := runFault(t, "IOS", n, pushsim.Faults{FailRate: 0.3, Seed: 1}, nil)
	if r.Status != "done" || r.Sent != n {
		t.Fatalf("row %+v, want done with %d sent", r, n)
	}
	e.exactlyOnce(pushsim.ProviderAPNs, n, func(i int) string { return iosToken("", i) })
	retried := e.count(`SELECT COUNT(*) FROM pushd_deliveries WHERE attempts > 1`)
	st := e.sim.Stats().APNs
	t.Logf("30%% 503s: %d requests for %d users, %d users needed retries, took %v", st.Requests, n, retried, took.Round(time.Millisecond))
	if retried < n/5 || st.ByStatus["503"] < n/5 {
		t.Errorf("%d users retried and %d 503s; with a 30%% failure rate expect about %d", retried, st.ByStatus["503"], n*3/10)
	}
	// The first retry waits at least 250 ms (500 ms with jitter), so a
	// third of the audience cannot finish faster than that.
	if took < 250*time.Millisecond {
		t.Errorf("run took %v: no visible backoff", took)
	}
}

// FCM 429 with Retry-After: 2 is honoured before the retry.
func TestProvider429RetryAfter(t *testing.T) {
	t.Parallel()
	const n = 1000
	e, r, took := runFault(t, "Android", n, pushsim.Faults{ThrottleRate: 0.2, RetryAfter: 2, Seed: 2}, nil)
	if r.Status != "done" || r.Sent != n {
		t.Fatalf("row %+v, want done with %d sent", r, n)
	}
	e.exactlyOnce(pushsim.ProviderFCM, n, func(i int) string { return fcmToken("ok-", i) })
	if took < 2*time.Second {
		t.Errorf("run took %v; a Retry-After of 2 s was not honoured", took)
	}
	t.Logf("20%% 429 with Retry-After 2: %d throttled answers, took %v", e.sim.Stats().FCM.ByStatus["429"], took.Round(time.Millisecond))
}

// GOAWAY every 300 requests: pushd reconnects and nothing is lost or doubled.
func TestProviderGoAway(t *testing.T) {
	t.Parallel()
	const n = 5000
	for _, app := range []string{"IOS", "Android"} {
		t.Run(app, func(t *testing.T) {
			t.Parallel()
			e, r, _ := runFault(t, app, n, pushsim.Faults{GoAwayAfter: 300}, nil)
			if r.Status != "done" || r.Sent != n {
				t.Fatalf("row %+v, want done with %d sent", r, n)
			}
			st := e.sim.Stats()
			if st.GoAways < 5 {
				t.Fatalf("only %d GOAWAYs happened; the fault was not exercised", st.GoAways)
			}
			if app == "IOS" {
				e.exactlyOnce(pushsim.ProviderAPNs, n, func(i int) string { return iosToken("", i) })
			} else {
				e.exactlyOnce(pushsim.ProviderFCM, n, func(i int) string { return fcmToken("ok-", i) })
			}
			t.Logf("%s: %d GOAWAYs, %d connections, all %d delivered once", app, st.GoAways, st.Connections, n)
		})
	}
}

// One ExpiredProviderToken: the JWT is re-signed once and sending goes on.
func TestProviderExpiredProviderTokenOnce(t *testing.T) {
	t.Parallel()
	const n = 2000
	e, r, _ := runFault(t, "IOS", n, pushsim.Faults{ExpiredProviderTokenOnce: true}, nil)
	if r.Status != "done" || r.Sent != n {
		t.Fatalf("row %+v, want done with %d sent", r, n)
	}
	if jwts := e.sim.Stats().APNsJWT.DistinctTokens; jwts != 2 {
		t.Errorf("pushsim saw %d distinct provider tokens, want 2 (the first and one re-signed)", jwts)
	}
}

// InvalidProviderToken holds the app: the row says why and what to check
// while the campaign waits, pushd does not storm APNs with the rest of the
// audience, and a deadline inside the hold leaves users expired, never
// failed.
func TestProviderInvalidProviderToken(t *testing.T) {
	t.Parallel()
	const n = 5000
	e := newEnv(t, "", pushsim.Options{Faults: pushsim.Faults{InvalidProviderToken: true}})
	e.users("IOS", n, func(i int) string { return iosToken("", i) }, "NOW(3) - INTERVAL 1 DAY")
	d := e.start()
	start := time.Now()
	id := e.campaign("IOS", start, map[string]any{"expires_at": start.Add(6 * time.Second).UTC()})
	var r row
	waitFor(t, 30*time.Second, "the hold on the row", func() bool {
		r = e.row(id)
		return strings.Contains(r.Reason, "held since")
	})
	if r.Status != "running" || !strings.Contains(r.Reason, "InvalidProviderToken") || !strings.Contains(r.Reason, "key_id and team_id") ||
		!strings.Contains(r.Reason, "[IOS]") || !strings.Contains(r.Reason, "pushd tries again at") {
		t.Fatalf("row %+v, want running and held, naming InvalidProviderToken, key_id and team_id in [IOS]", r)
	}
	r = e.waitStatus(id, time.Minute, "done", "failed", "expired")
	d.stop(t)
	if r.Status != "expired" || r.Failed != 0 || r.Expired != n {
		t.Fatalf("row %+v, want expired with all %d users expired and none failed", r, n)
	}
	if reqs := e.sim.Stats().APNs.Requests; reqs > 3 {
		t.Errorf("%d requests with a rejected key, want a handful", reqs)
	}
	if !strings.Contains(d.log.String(), "app held") {
		t.Errorf("no warning in the log about the hold:\n%s", d.log.String())
	}
}

// The deadline falls mid-run while retries are pending: nothing is sent
// after it, and everyone not reached is recorded expired.
func TestDeadlineMidRun(t *testing.T) {
	t.Parallel()
	e := newEnv(t, "", pushsim.Options{Faults: pushsim.Faults{Latency: 40 * time.Millisecond}})
	const n = 20000
	e.users("IOS", n, func(i int) string { return iosToken("", i) }, "NOW(3) - INTERVAL 1 DAY")
	e.users("IOS", 50, func(i int) string { return iosToken("0429", i) }, "NOW(3) - INTERVAL 1 DAY")
	at := time.Now().Add(2 * time.Second).Truncate(time.Second)
	deadline := at.Add(3 * time.Second)
	d := e.start()
	id := e.campaign("IOS", at, map[string]any{"batch_size": 100, "expires_at": deadline.UTC()})
	stall := measureStalls(deadline.Add(-time.Second), deadline.Add(time.Second))
	r := e.waitStatus(id, 2*time.Minute, "done", "failed", "expired")
	d.stop(t)
	if r.Status != "expired" || r.Expired == 0 || r.Sent == 0 {
		t.Fatalf("row %+v, want expired with some sent and some expired", r)
	}
	if !strings.Contains(r.Reason, "deadline reached") {
		t.Errorf("reason %q should say the deadline was reached", r.Reason)
	}
	if total := r.Sent + r.Failed + r.Invalid + r.Expired; total != n+50 || r.Targeted != n+50 {
		t.Errorf("outcomes %d and targeted %d, want both %d", total, r.Targeted, n+50)
	}
	if l := e.count(`SELECT COUNT(*) FROM pushd_deliveries`); l != n+50 {
		t.Errorf("ledger has %d outcomes, want %d", l, n+50)
	}
	// Received is stamped when pushsim's handler starts, before its 40 ms
	// latency; allow 100 ms for the trip and scheduling, plus however long
	// this process (pushsim's) was kept from running around the deadline:
	// a full race-enabled test run once stalled it past 100 ms. A push
	// pushd wrote after the deadline, or a retry, is later still.
	//
	// That allowance does not see pushsim's HTTP/2 server falling behind
	// with frames pushd wrote in time (CI, with every test running, once
	// had 18 of 7,500 arrive a little later). A push sent after the
	// deadline comes in its own shape: a retry after at least 250 ms of
	// backoff, or a whole batch, so none may arrive a second late, and at
	// most 1% beyond the allowance. (Checked against a deadline one second
	// earlier, 4,650 of 15,250 are late.)
	allow := 100*time.Millisecond + <-stall
	late, veryLate, all := 0, 0, e.sim.Deliveries()
	for _, dl := range all {
		if dl.Received.IsZero() {
			t.Fatal("pushsim recorded no arrival time")
		}
		if dl.Received.After(deadline.Add(allow)) {
			late++
		}
		if dl.Received.After(deadline.Add(time.Second)) {
			veryLate++
		}
	}
	if veryLate > 0 || late > len(all)/100 {
		t.Errorf("%d pushes arrived more than %v after the deadline, %d more than a second, of %d", late, allow, veryLate, len(all))
	}
	t.Logf("deadline mid-run: %d sent, %d expired; allowed %v for the trip", r.Sent, r.Expired, allow)
}

// A second SIGTERM aborts at once.
func TestSecondSignalAborts(t *testing.T) {
	t.Parallel()
	addr := freeAddr(t)
	e := newEnv(t, "listen = "+addr+"\n", pushsim.Options{Faults: pushsim.Faults{Latency: 3 * time.Second}})
	e.users("IOS", 500, func(i int) string { return iosToken("", i) }, "NOW(3) - INTERVAL 1 DAY")
	e.campaign("IOS", time.Now(), nil)
	d := e.start()
	// The first signal must find sends in flight (pushsim holds them 3 s),
	// or pushd would simply finish its shutdown.
	inflight := regexp.MustCompile(`(?m)^pushd_inflight_requests\{app="IOS",provider="APNs"\} [1-9]`)
	waitFor(t, time.Minute, "sends in flight", func() bool { _, body := get(t, "http://"+addr+"/metrics"); return inflight.MatchString(body) })
	d.cmd.Process.Signal(syscall.SIGTERM)
	// Two SIGTERMs pending at once are delivered as one: send the second
	// only once pushd has taken the first.
	waitFor(t, 10*time.Second, "the graceful shutdown to begin", func() bool {
		return strings.Contains(d.log.String(), "shutting down: finishing in-flight sends")
	})
	start := time.Now()
	d.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case err := <-d.exited:
		d.exited <- err
		if err == nil {
			t.Error("aborted pushd exited 0; an abort should exit non-zero")
		}
		if took := time.Since(start); took > 2*time.Second {
			t.Errorf("abort took %v", took)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("pushd did not abort on the second SIGTERM")
	}
}

// Slow answers are bounded by request_timeout: slow tokens fail after their
// tries, the rest of the audience is not held up.
func TestProviderSlowAnswers(t *testing.T) {
	t.Parallel()
	// pushsim runs inside this -race test binary beside other end-to-end
	// tests, so a healthy answer can take a while: keep the timeout well
	// clear of that and the slow answers well clear of the timeout.
	e := newEnv(t, "", pushsim.Options{SlowDelay: 10 * time.Second})
	e.setKey("IOS", "request_timeout", "2s")
	e.setKey("IOS", "max_attempts", "2")
	e.setKey("IOS", "concurrency", "100")
	const n, slow = 2000, 20
	e.users("IOS", n, func(i int) string { return iosToken("", i) }, "NOW(3) - INTERVAL 1 DAY")
	e.users("IOS", slow, func(i int) string { return iosToken("0510", i) }, "NOW(3) - INTERVAL 1 DAY")
	d := e.start()
	start := time.Now()
	id := e.campaign("IOS", start, nil)
	r := e.waitStatus(id, time.Minute, "done", "failed", "expired")
	took := time.Since(start)
	d.stop(t)
	if r.Status != "done" || r.Sent != n || r.Failed != slow {
		t.Fatalf("row %+v, want done with %d sent and %d failed", r, n, slow)
	}
	reason := ""
	e.db.QueryRow(`SELECT reason FROM pushd_deliveries WHERE outcome = 'failed' LIMIT 1`).Scan(&reason)
	if reason != "Timeout after 2 tries" {
		t.Errorf("slow push failed with %q, want a timeout", reason)
	}
	// Without the timeout, two tries would take at least 2 × 10 s.
	if took > 18*time.Second {
		t.Errorf("run took %v; slow answers were not cut off", took)
	}
	t.Logf("slow answers: run took %v with %d pushes timing out", took.Round(time.Millisecond), slow)
}

// Hostile campaign rows: each gets a clear outcome, none crashes pushd or
// holds up the others.
func TestHostileRows(t *testing.T) {
	t.Parallel()
	e := newEnv(t, "", pushsim.Options{})
	e.users("IOS", 10, func(i int) string { return iosToken("", i) }, "NOW(3) - INTERVAL 1 DAY")
	e.users("Android", 10, func(i int) string { return fcmToken("ok-", i) }, "NOW(3) - INTERVAL 1 DAY")
	now := time.Now()
	huge := e.campaign("IOS", now, map[string]any{"body": strings.Repeat("Ä", 3000)})
	multibyte := e.campaign("IOS", now, map[string]any{"title": "Soldes 🎉 日本語 \x00 nul", "body": "It's 50% off; DROP TABLE users; --"})
	sqlish := e.campaign("Android", now, map[string]any{"title": "'); DELETE FROM campaigns; --", "data": `{"q": "' OR 1=1 --", "n": 3, "ok": true, "nested": {"a": [1]}}`})
	reserved := e.campaign("Android", now, map[string]any{"data": `{"google.sent_time": "1"}`})
	nulls := e.campaign("IOS", now, map[string]any{"data": `null`})
	d := e.start()
	for _, c := range []struct {
		id     int64
		status string
		reason string
	}{
		{huge, "failed", "4096"},
		{multibyte, "done", ""},
		{sqlish, "done", ""},
		{reserved, "failed", "google"},
		{nulls, "failed", "not null"},
	} {
		r := e.waitStatus(c.id, time.Minute, "done", "failed", "expired")
		if r.Status != c.status || !strings.Contains(r.Reason, c.reason) {
			t.Errorf("campaign %d: %s %q, want %s with %q", c.id, r.Status, r.Reason, c.status, c.reason)
		}
	}
	if n := e.count(`SELECT COUNT(*) FROM campaigns`); n != 5 {
		t.Fatalf("%d campaigns left; SQL in a campaign reached the database", n)
	}
	fcm := e.delivered(pushsim.ProviderFCM)
	var payload map[string]any
	json.Unmarshal(fcm[fcmToken("ok-", 0)].Payload, &payload)
	data, _ := payload["data"].(map[string]any)
	if data["q"] != "' OR 1=1 --" || data["n"] != "3" || data["ok"] != "true" || data["nested"] != `{"a":[1]}` {
		t.Errorf("FCM data was not converted to strings faithfully: %v", data)
	}
	apns := e.delivered(pushsim.ProviderAPNs)
	if !strings.Contains(string(apns[iosToken("", 0)].Payload), "🎉") {
		t.Errorf("APNs payload lost the emoji: %s", apns[iosToken("", 0)].Payload)
	}
	d.stop(t)
}

// measureStalls reports the longest this process went without running a
// goroutine that asked to wake every 5 ms, between from and to.
func measureStalls(from, to time.Time) <-chan time.Duration {
	out := make(chan time.Duration, 1)
	go func() {
		// These sleeps are the measurement, not a wait for an event.
		time.Sleep(time.Until(from))
		var worst time.Duration
		for time.Now().Before(to) {
			start := time.Now()
			time.Sleep(5 * time.Millisecond)
			worst = max(worst, time.Since(start)-5*time.Millisecond)
		}
		out <- worst
	}()
	return out
}

// The provider goes away for four seconds mid-campaign and comes back on
// the same address: nobody fails, everyone is delivered, and only the
// pushes in flight when it went can arrive twice.
func TestProviderOutage(t *testing.T) {
	t.Parallel()
	const n = 20000
	e := newEnv(t, "", pushsim.Options{Faults: pushsim.Faults{Latency: 10 * time.Millisecond}})
	// Three tries span about a second of backoff: far less than the
	// outage, so only pushes that never left not counting as tries saves
	// the users.
	e.setKey("IOS", "max_attempts", "3")
	e.users("IOS", n, func(i int) string { return iosToken("", i) }, "NOW(3) - INTERVAL 1 DAY")
	d := e.start()
	start := time.Now()
	id := e.campaign("IOS", time.Now(), map[string]any{"expires_at": time.Now().Add(time.Hour).UTC()})
	waitFor(t, time.Minute, "the campaign under way", func() bool { return e.row(id).Sent >= 3000 })

	first := e.sim
	addr := strings.TrimPrefix(first.URL(), "https://")
	first.Close()
	time.Sleep(4 * time.Second) // the outage itself
	back, err := pushsim.Start(pushsim.Options{Dir: filepath.Join(e.dir, "sim"), Addr: addr, BundleIDs: []string{bundleID},
		Faults: pushsim.Faults{Latency: 10 * time.Millisecond}})
	if err != nil {
		t.Fatalf("pushsim back on %s: %v", addr, err)
	}
	t.Cleanup(func() { back.Close() })

	r := e.waitStatus(id, 2*time.Minute, "done", "failed", "expired")
	d.stop(t)
	if r.Status != "done" || r.Sent != n || r.Failed != 0 {
		t.Fatalf("row %+v, want done with all %d sent and none failed", r, n)
	}
	got := map[string]int{}
	for _, s := range []*pushsim.Server{first, back} {
		for _, dl := range s.Deliveries() {
			got[dl.Token] += dl.Count
		}
	}
	twice := 0
	for i := range n {
		switch c := got[iosToken("", i)]; {
		case c == 0:
			var outcome, reason string
			var attempts int
			e.db.QueryRow(`SELECT outcome, reason, attempts FROM pushd_deliveries d JOIN users u ON u.id = d.user_id WHERE u.push_token = ?`, iosToken("", i)).Scan(&outcome, &reason, &attempts)
			t.Fatalf("user %d never delivered; ledger says %s %q after %d tries (first saw %d, back %d)", i, outcome, reason, attempts,
				first.Stats().APNs.Delivered, back.Stats().APNs.Delivered)
		case c > 1:
			twice++
		}
	}
	// At most what was in flight when the connection dropped (the app's
	// concurrency) may have been delivered but not answered.
	if twice > 1000 {
		t.Errorf("%d users delivered twice, more than the 1,000 in flight", twice)
	}
	t.Logf("4 s outage: %d users of %d delivered twice (answers lost with the connection)", twice, n)
	// At log_level info the log says what happened, each kind of event
	// at most once in 10 s.
	log := d.log.String()
	for _, want := range []string{"lost a connection to the provider", "cannot connect to the provider", "connected to the provider"} {
		if !strings.Contains(log, want) {
			t.Errorf("the log lacks %q", want)
		}
	}
	if n := strings.Count(log, "cannot connect to the provider"); n > 2*int(time.Since(start)/(10*time.Second))+2 {
		t.Errorf("%d log lines about failed dials: not rate-limited", n)
	}
}
