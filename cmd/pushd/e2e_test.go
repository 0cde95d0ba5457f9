package main

import (
	"fmt"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/pushd/pushd/internal/pushsim"
)

// Token families; pushsim answers each prefix its own way (see pushsim).
func iosToken(prefix string, i int) string {
	return prefix + fmt.Sprintf("%0*x", 64-len(prefix), i+1)
}

func fcmToken(prefix string, i int) string { return fmt.Sprintf("%s%d:APA91bE2E", prefix, i) }

// TestEndToEnd runs the real pushd against pushsim and MariaDB: two apps,
// thousands of users with dead, bad, throttled and malformed tokens, broken
// campaign rows beside good ones, and a campaign whose deadline passed
// while pushd was down.
func TestEndToEnd(t *testing.T) {
	t.Parallel()
	e := newEnv(t, "", pushsim.Options{})
	old := "NOW(3) - INTERVAL 2 DAY"
	now := "NOW(3)"
	type family struct {
		app, prefix, registered string
		n                       int
	}
	families := []family{
		{"IOS", "", old, 2500}, {"IOS", "dead", old, 50}, {"IOS", "dead1", now, 10}, {"IOS", "0bad", old, 30},
		{"IOS", "0429", old, 20}, {"IOS", "0503", old, 20},
		{"Android", "ok-", old, 1800}, {"Android", "dead-", old, 40}, {"Android", "0bad-", old, 20},
		{"Android", "0f0e-", old, 10}, {"Android", "0429-", old, 20}, {"Android", "0503-", old, 20},
	}
	for _, f := range families {
		if f.app == "IOS" {
			e.users(f.app, f.n, func(i int) string { return iosToken(f.prefix, i) }, f.registered)
		} else {
			e.users(f.app, f.n, func(i int) string { return fcmToken(f.prefix, i) }, f.registered)
		}
	}
	e.users("IOS", 5, func(i int) string { return fmt.Sprintf("not-hex-%d", i) }, old)
	e.users("Android", 5, func(i int) string { return fmt.Sprintf("has space %d", i) }, old)

	at := time.Now().Add(3 * time.Second).Truncate(time.Second)
	expires := at.Add(10 * time.Minute)
	data := `{"screen": "sale", "n": 3}`
	ios := e.campaign("IOS", at, map[string]any{"expires_at": expires.UTC(), "data": data, "badge": 1, "sound": "default"})
	android := e.campaign("Android", at, map[string]any{"expires_at": expires.UTC(), "data": data})
	unknown := e.campaign("MyAp", at, nil)
	backwards := e.campaign("IOS", at, map[string]any{"expires_at": at.Add(-time.Hour).UTC()})
	badJSON := e.campaign("Android", at, map[string]any{"data": `{"screen": `})
	badCron := e.campaign("IOS", at, map[string]any{"cron": "every monday"})
	// Written in time, but pushd was stopped until after its deadline.
	missed := e.campaign("IOS", time.Now().Add(-2*time.Hour), map[string]any{"expires_at": time.Now().Add(-time.Hour).UTC(),
		"created_at": time.Now().Add(-3 * time.Hour).UTC(), "updated_at": time.Now().Add(-3 * time.Hour).UTC()})
	// Written with dates already gone.
	past := e.campaign("IOS", time.Now().Add(-2*time.Hour), map[string]any{"expires_at": time.Now().Add(-time.Hour).UTC()})

	d := e.start()
	ri := e.waitStatus(ios, 2*time.Minute, "done", "failed", "expired")
	ra := e.waitStatus(android, 2*time.Minute, "done", "failed", "expired")

	// Staff-facing rows.
	for _, c := range []struct {
		id     int64
		status string
		reason string
	}{
		{unknown, "failed", "unknown app 'MyAp' (config has: Android, IOS)"},
		{backwards, "failed", "is before scheduled_at"},
		{badJSON, "failed", "data is not valid JSON"},
		{badCron, "failed", `cron "every monday" is not valid`},
		{missed, "expired", "passed before pushd could start it; was pushd stopped?"},
		{past, "failed", "are in the past: set both to times to come"},
	} {
		r := e.row(c.id)
		if r.Status != c.status || !strings.Contains(r.Reason, c.reason) {
			t.Errorf("campaign %d: %s %q, want %s with %q", c.id, r.Status, r.Reason, c.status, c.reason)
		}
	}
	want := row{Status: "done", Targeted: 2635, Sent: 2540, Failed: 10, Invalid: 85}
	if ri.Status != want.Status || ri.Targeted != want.Targeted || ri.Sent != want.Sent || ri.Failed != want.Failed || ri.Invalid != want.Invalid || ri.Expired != 0 {
		t.Errorf("IOS row %+v, want %+v", ri, want)
	}
	if !strings.Contains(ri.Reason, "10 of 2635 pushes failed") {
		t.Errorf("IOS reason %q should explain the 10 failures", ri.Reason)
	}
	want = row{Status: "done", Targeted: 1915, Sent: 1840, Invalid: 75}
	if ra.Status != want.Status || ra.Targeted != want.Targeted || ra.Sent != want.Sent || ra.Failed != 0 || ra.Invalid != want.Invalid || ra.Expired != 0 {
		t.Errorf("Android row %+v, want %+v", ra, want)
	}

	// What the simulator saw, independently of pushd's word.
	apns, fcm := e.delivered(pushsim.ProviderAPNs), e.delivered(pushsim.ProviderFCM)
	if len(apns) != ri.Sent || len(fcm) != ra.Sent {
		t.Errorf("pushsim delivered to %d APNs and %d FCM tokens; rows say %d and %d", len(apns), len(fcm), ri.Sent, ra.Sent)
	}
	var first time.Time
	for _, f := range families {
		for i := 0; i < f.n; i++ {
			var dl pushsim.Delivery
			var ok bool
			if f.app == "IOS" {
				dl, ok = apns[iosToken(f.prefix, i)]
			} else {
				dl, ok = fcm[fcmToken(f.prefix, i)]
			}
			shouldGet := f.prefix == "" || f.prefix == "ok-" || strings.HasPrefix(f.prefix, "04") || strings.HasPrefix(f.prefix, "05")
			if ok != shouldGet || (ok && dl.Count != 1) {
				t.Fatalf("%s token %q (family %q): delivered %v count %d; want delivered %v exactly once", f.app, dl.Token, f.prefix, ok, dl.Count, shouldGet)
			}
			if !ok {
				continue
			}
			if dl.Expiration != strconv.FormatInt(expires.Unix(), 10) {
				t.Fatalf("%s apns-expiration %q, want %d (expires_at as an absolute epoch)", f.app, dl.Expiration, expires.Unix())
			}
			collapse := fmt.Sprintf("pushd-%d-1", map[string]int64{"IOS": ios, "Android": android}[f.app])
			if dl.CollapseID != collapse {
				t.Fatalf("%s collapse id %q, want %q", f.app, dl.CollapseID, collapse)
			}
			if f.app == "Android" {
				ttl, err := strconv.Atoi(strings.TrimSuffix(dl.AndroidTTL, "s"))
				if err != nil || ttl <= 0 || ttl > 600 || dl.AndroidTag != collapse {
					t.Fatalf("android ttl %q tag %q: want 1..600s and tag %q", dl.AndroidTTL, dl.AndroidTag, collapse)
				}
			}
			if first.IsZero() || dl.At.Before(first) {
				first = dl.At
			}
		}
	}
	if first.Before(at) {
		t.Errorf("first push at %v, before scheduled_at %v", first, at)
	}
	t.Logf("first push %v after scheduled_at", first.Sub(at))

	// Dead tokens are invalid now, except those registered again after APNs
	// last saw them.
	if n := e.count(`SELECT COUNT(*) FROM pushd_invalid_tokens WHERE app = 'IOS'`); n != 85 {
		t.Errorf("%d invalid IOS tokens recorded, want 85", n)
	}
	if n := e.count(`SELECT COUNT(*) FROM pushd_invalid_tokens i JOIN users u ON u.id = i.user_id WHERE u.push_token LIKE 'dead1%'`); n != 0 {
		t.Errorf("%d re-registered tokens were invalidated, want 0", n)
	}
	if n := e.count(`SELECT COUNT(*) FROM pushd_invalid_tokens WHERE app = 'Android'`); n != 75 {
		t.Errorf("%d invalid Android tokens recorded, want 75", n)
	}
	ledger := e.count(`SELECT COUNT(*) FROM pushd_deliveries d JOIN campaigns c ON c.current_run_id = d.run_id WHERE c.id IN (?, ?)`, ios, android)
	if ledger != 2635+1915 {
		t.Errorf("ledger has %d outcomes, want one per targeted user (%d)", ledger, 2635+1915)
	}

	// A later campaign skips the invalid tokens.
	before := e.sim.Stats().APNs
	again := e.campaign("IOS", time.Now(), nil)
	r := e.waitStatus(again, time.Minute, "done", "failed", "expired")
	after := e.sim.Stats().APNs
	if r.Status != "done" || r.Targeted != 2550 || r.Sent != 2540 {
		t.Errorf("second IOS campaign %+v, want done with 2550 targeted and 2540 sent", r)
	}
	if got := after.ByReason["Unregistered"] - before.ByReason["Unregistered"]; got != 10 {
		t.Errorf("second campaign drew %d Unregistered answers, want 10 (only the re-registered tokens)", got)
	}
	if got := after.ByReason["BadDeviceToken"] - before.ByReason["BadDeviceToken"]; got != 0 {
		t.Errorf("second campaign sent %d pushes to bad tokens, want 0", got)
	}
	d.stop(t)
}

// TestRestartResumes stops pushd with SIGTERM in the middle of a run and
// starts it again: the run completes and nobody receives it twice.
func TestRestartResumes(t *testing.T) {
	t.Parallel()
	e := newEnv(t, "", pushsim.Options{Faults: pushsim.Faults{Latency: 30 * time.Millisecond}})
	const users = 30000
	e.users("IOS", users, func(i int) string { return iosToken("", i) }, "NOW(3) - INTERVAL 1 DAY")
	id := e.campaign("IOS", time.Now(), map[string]any{"batch_size": 200, "expires_at": time.Now().Add(time.Hour).UTC()})

	d := e.start()
	waitFor(t, time.Minute, "a third of the run", func() bool { return e.row(id).Sent >= users/3 })
	d.stop(t)
	mid := e.row(id)
	if mid.Status != "running" || mid.Sent >= users {
		t.Fatalf("after SIGTERM the row is %+v; want it running and unfinished", mid)
	}
	if n := e.count(`SELECT COUNT(*) FROM pushd_batches WHERE status = 'claimed'`); n != 0 {
		t.Errorf("%d batches still claimed after a clean shutdown; they must be released", n)
	}
	t.Logf("stopped at %d of %d sent", mid.Sent, users)

	d = e.start()
	r := e.waitStatus(id, 2*time.Minute, "done", "failed", "expired")
	d.stop(t)
	if r.Status != "done" || r.Sent != users {
		t.Fatalf("after restart: %+v, want done with %d sent", r, users)
	}
	got := e.delivered(pushsim.ProviderAPNs)
	if len(got) != users {
		t.Fatalf("pushsim delivered to %d tokens, want %d", len(got), users)
	}
	for tok, dl := range got {
		if dl.Count != 1 {
			t.Fatalf("token %s received the campaign %d times", tok, dl.Count)
		}
	}
}
