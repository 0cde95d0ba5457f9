package main

import (
	"fmt"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/pushd/pushd/internal/pushsim"
)

// wallIn returns the DATETIME text of t's wall clock in zone.
func wallIn(t *testing.T, at time.Time, zone string) (string, *time.Location) {
	t.Helper()
	loc, err := time.LoadLocation(zone)
	if err != nil {
		t.Fatal(err)
	}
	return at.In(loc).Format(time.DateTime), loc
}

// zoneUsers inserts n users of app in zone (NULL for ""), with tokens made
// by token from prefix.
func (e *env) zoneUsers(app, zone string, n int, token func(i int) string) {
	e.t.Helper()
	for i := 0; i < n; i++ {
		var tz any
		if zone != "" {
			tz = zone
		}
		if _, err := e.db.Exec(`INSERT INTO users (app, push_token, timezone, registered_at) VALUES (?, ?, ?, NOW(3) - INTERVAL 1 DAY)`,
			app, token(i), tz); err != nil {
			e.t.Fatal(err)
		}
	}
}

// Local-time campaigns on the real clock. scheduled_at is "in 4 s" on
// Tokyo's clock: Tokyo and Seoul (UTC+9), and users with no zone or an
// unknown one (the app's default_timezone is Tokyo), get the push then,
// within a second, with apns-expiration at their own deadline. Kiritimati
// (UTC+14) and Auckland (UTC+13 in December) are hours late: skipped under
// late_policy skip, sent at once under send, due tomorrow under next_day.
// Kolkata and New York are hours ahead: their runs wait, due at their own
// 9:00-equivalent.
func TestLocalTime(t *testing.T) {
	t.Parallel()
	e := newEnv(t, "", pushsim.Options{})
	e.setKey("IOS", "default_timezone", "Asia/Tokyo")
	e.setKey("Android", "default_timezone", "Asia/Tokyo")
	zones := []string{"Asia/Tokyo", "Asia/Seoul", "", "Mars/Olympus", "Pacific/Kiritimati", "Pacific/Auckland", "Asia/Kolkata", "America/New_York"}
	for _, app := range []string{"IOS", "Android"} {
		for zi, z := range zones {
			if app == "IOS" {
				e.zoneUsers(app, z, 3, func(i int) string { return iosToken(fmt.Sprintf("%x", zi+1), i) })
			} else {
				e.zoneUsers(app, z, 3, func(i int) string { return fcmToken(fmt.Sprintf("z%d-", zi), i) })
			}
		}
	}
	tok := func(app string, zi, i int) string {
		if app == "IOS" {
			return iosToken(fmt.Sprintf("%x", zi+1), i)
		}
		return fcmToken(fmt.Sprintf("z%d-", zi), i)
	}
	due := time.Now().Add(4 * time.Second).Truncate(time.Second)
	wall, _ := wallIn(t, due, "Asia/Tokyo")
	end, _ := wallIn(t, due.Add(6*time.Hour), "Asia/Tokyo")
	skip := e.campaign("IOS", time.Now(), map[string]any{"scheduled_at": wall, "expires_at": end, "local_time": 1})
	send := e.campaign("Android", time.Now(), map[string]any{"scheduled_at": wall, "expires_at": end, "local_time": 1, "late_policy": "send"})
	endNext, _ := wallIn(t, due.Add(48*time.Hour), "Asia/Tokyo")
	next := e.campaign("Android", time.Now(), map[string]any{"scheduled_at": wall, "expires_at": endNext, "local_time": 1, "late_policy": "next_day"})
	d := e.start()
	defer d.stop(t)

	started := time.Now()
	waitFor(t, 30*time.Second, "the Tokyo-time pushes", func() bool {
		got := e.delivered(pushsim.ProviderAPNs)
		for zi := range 4 {
			for i := range 3 {
				if got[tok("IOS", zi, i)].Count == 0 {
					return false
				}
			}
		}
		return true
	})
	time.Sleep(time.Second) // anything sent too early or twice would show by now
	apns, fcm := e.delivered(pushsim.ProviderAPNs), e.delivered(pushsim.ProviderFCM)
	for zi, z := range zones {
		for i := range 3 {
			a, f := apns[tok("IOS", zi, i)], fcm[tok("Android", zi, i)]
			switch zi {
			case 0, 1, 2, 3: // Tokyo time: at due, on both apps; next_day's Tokyo users too
				for _, dl := range []pushsim.Delivery{a, f} {
					if dl.Count == 0 || dl.Received.Sub(due).Abs() > time.Second {
						t.Errorf("zone %q: received %d at %v, want at %v ±1 s", z, dl.Count, dl.Received.Format(time.StampMilli), due.Format(time.StampMilli))
					}
				}
				if want := strconv.FormatInt(due.Add(6*time.Hour).Unix(), 10); a.Expiration != want {
					t.Errorf("zone %q: apns-expiration %s, want %s (their own deadline)", z, a.Expiration, want)
				}
				if f.Count != 2 {
					t.Errorf("zone %q: %d Android pushes, want 2 (send and next_day)", z, f.Count)
				}
			case 4, 5: // hours late
				if a.Count != 0 {
					t.Errorf("zone %q: skip campaign sent %d", z, a.Count)
				}
				if f.Count != 1 || f.Received.Sub(started).Abs() > 2*time.Second {
					t.Errorf("zone %q: send campaign delivered %d at %v, want once at the start", z, f.Count, f.Received)
				}
			default: // hours ahead: waiting
				if a.Count+f.Count != 0 {
					t.Errorf("zone %q: got %d+%d pushes hours before its time", z, a.Count, f.Count)
				}
			}
		}
	}
	if n := e.count(`SELECT COUNT(*) FROM pushd_deliveries d JOIN pushd_runs r ON r.id = d.run_id
		WHERE r.campaign_id = ? AND d.outcome = 'skipped' AND d.reason = 'local time passed'`, skip); n != 6 {
		t.Errorf("%d skipped outcomes in the skip campaign, want 6 (Kiritimati, Auckland)", n)
	}
	// The waiting runs are due at each zone's own wall time.
	for _, c := range []struct {
		campaign int64
		zone     string
		wall     string
	}{{skip, "Asia/Kolkata", wall}, {skip, "America/New_York", wall}, {next, "Pacific/Kiritimati", ""}} {
		loc, _ := time.LoadLocation(c.zone)
		w, _ := time.ParseInLocation(time.DateTime, wall, loc)
		if c.wall == "" {
			w = w.AddDate(0, 0, 1)
		}
		var got time.Time
		if err := e.db.QueryRow(`SELECT scheduled_for FROM pushd_runs WHERE campaign_id = ? AND FIND_IN_SET(?, zones)`, c.campaign, c.zone).Scan(&got); err != nil {
			t.Fatalf("run of %s in campaign %d: %v", c.zone, c.campaign, err)
		}
		if !got.Equal(w) {
			t.Errorf("campaign %d: %s's run is due at %v, want %v", c.campaign, c.zone, got.UTC(), w.UTC())
		}
	}
	if r := e.row(send); r.Status != "running" || r.Sent < 18 {
		t.Errorf("send campaign row: %+v, want running with the Tokyo-time and late users sent", r)
	}
	r := e.row(skip)
	if r.Status != "running" || !strings.Contains(r.Reason, "sending at each user's local time") || !strings.Contains(r.Reason, "3 users have a timezone that is no IANA zone") {
		t.Errorf("skip campaign row: %+v", r)
	}
}

// kill -9 before a local-time group's time: after the restart its users
// get the push at their time, once.
func TestLocalTimeSurvivesKillNine(t *testing.T) {
	t.Parallel()
	e := newEnv(t, "", pushsim.Options{})
	e.zoneUsers("IOS", "Asia/Tokyo", 20, func(i int) string { return iosToken("a", i) })
	e.zoneUsers("IOS", "Europe/Paris", 20, func(i int) string { return iosToken("b", i) })
	due := time.Now().Add(6 * time.Second).Truncate(time.Second)
	wall, _ := wallIn(t, due, "Asia/Tokyo")
	end, _ := wallIn(t, due.Add(time.Hour), "Asia/Tokyo")
	id := e.campaign("IOS", time.Now(), map[string]any{"scheduled_at": wall, "expires_at": end, "local_time": 1})
	d := e.start()
	waitFor(t, 10*time.Second, "the campaign to start", func() bool { return e.row(id).Status == "running" })
	d.kill9(t)
	d = e.start()
	defer d.stop(t)
	waitFor(t, 20*time.Second, "the Tokyo pushes", func() bool { return e.row(id).Sent == 20 })
	time.Sleep(time.Second)
	got := e.delivered(pushsim.ProviderAPNs)
	for i := range 20 {
		dl := got[iosToken("a", i)]
		if dl.Count != 1 || dl.Received.Sub(due).Abs() > time.Second {
			t.Errorf("Tokyo user %d: %d pushes, the last at %v; want 1 at %v ±1 s", i, dl.Count, dl.Received.Format(time.StampMilli), due.Format(time.StampMilli))
		}
		if b := got[iosToken("b", i)]; b.Count != 0 {
			t.Errorf("Paris user %d got the push hours early", i)
		}
	}
}

// Quiet hours on the real clock: a window that ends at the next minute
// boundary (at least 5 s away) holds a campaign's pushes until then; a
// campaign whose deadline comes first expires its users with the reason.
func TestQuietHours(t *testing.T) {
	t.Parallel()
	e := newEnv(t, "", pushsim.Options{})
	end := time.Now().Add(5 * time.Second).Truncate(time.Minute).Add(time.Minute)
	tokyo, _ := time.LoadLocation("Asia/Tokyo")
	from := end.Add(-3 * time.Hour).In(tokyo).Format("15:04")
	to := end.In(tokyo).Format("15:04")
	e.setKey("IOS", "quiet_hours", from+"-"+to)
	e.setKey("IOS", "default_timezone", "Asia/Tokyo")
	e.zoneUsers("IOS", "Asia/Tokyo", 10, func(i int) string { return iosToken("c", i) })
	e.zoneUsers("IOS", "", 10, func(i int) string { return iosToken("d", i) })
	held := e.campaign("IOS", time.Now(), map[string]any{"expires_at": end.Add(time.Hour).UTC()})
	expiring := e.campaign("IOS", time.Now(), map[string]any{"expires_at": end.Add(-2 * time.Second).UTC()})
	urgent := e.campaign("Android", time.Now(), nil) // Android has no quiet hours
	e.users("Android", 5, func(i int) string { return fcmToken("q-", i) }, "NOW(3) - INTERVAL 1 DAY")
	d := e.start()
	defer d.stop(t)
	r := e.waitStatus(expiring, 20*time.Second, "done", "expired")
	if r.Expired != 20 || r.Sent != 0 {
		t.Errorf("campaign with its deadline inside the window: %+v, want 20 expired", r)
	}
	if n := e.count(`SELECT COUNT(*) FROM pushd_deliveries d JOIN pushd_runs r ON r.id = d.run_id WHERE r.campaign_id = ? AND d.reason = 'quiet hours until deadline'`, expiring); n != 20 {
		t.Errorf("%d outcomes say quiet hours until deadline, want 20", n)
	}
	e.waitStatus(urgent, 20*time.Second, "done")
	if r := e.row(held); r.Sent != 0 {
		t.Fatalf("sent %d inside the quiet hours", r.Sent)
	}
	r = e.waitStatus(held, 90*time.Second, "done", "failed", "expired")
	if r.Sent != 20 {
		t.Errorf("held campaign: %+v, want 20 sent", r)
	}
	got := e.delivered(pushsim.ProviderAPNs)
	for _, p := range []string{"c", "d"} {
		for i := range 10 {
			dl := got[iosToken(p, i)]
			if dl.Count != 1 || dl.Received.Before(end) || dl.Received.Sub(end) > time.Second {
				t.Errorf("user %s%d: %d pushes at %v; want 1 just after the window ends at %v", p, i, dl.Count, dl.Received.Format(time.StampMilli), end.Format(time.StampMilli))
			}
		}
	}
}

// receivedIn counts the tokens of provider whose push pushsim received in
// [from, to).
func (e *env) receivedIn(provider string, from, to time.Time) int {
	n := 0
	for _, d := range e.delivered(provider) {
		if !d.Received.Before(from) && d.Received.Before(to) {
			n++
		}
	}
	return n
}

// Limits hold across instances: with two instances, the app's rate_limit
// (40/s) and a campaign's max_per_minute (1,200) are what both send
// together, measured at pushsim over a minute within 10%; after one
// instance is killed the other takes the whole rate within three missed
// heartbeats.
func TestPacingAcrossInstances(t *testing.T) {
	if testing.Short() {
		t.Skip("two minutes of pacing")
	}
	t.Parallel()
	e := newEnv(t, "", pushsim.Options{})
	e.setKey("IOS", "rate_limit", "40")
	e.users("IOS", 6000, func(i int) string { return iosToken("", i) }, "NOW(3) - INTERVAL 1 DAY")
	e.users("Android", 3000, func(i int) string { return fcmToken("p-", i) }, "NOW(3) - INTERVAL 1 DAY")
	a, b := e.start(), e.start()
	defer a.stop(t)
	t0 := time.Now()
	e.campaign("IOS", t0, map[string]any{"batch_size": 50, "expires_at": t0.Add(time.Hour).UTC()})
	e.campaign("Android", t0, map[string]any{"batch_size": 50, "max_per_minute": 1200, "expires_at": t0.Add(time.Hour).UTC()})

	// The first heartbeats tell each instance it has a partner.
	from := t0.Add(10 * time.Second)
	time.Sleep(time.Until(from.Add(time.Minute)))
	ios := e.receivedIn(pushsim.ProviderAPNs, from, from.Add(time.Minute))
	android := e.receivedIn(pushsim.ProviderFCM, from, from.Add(time.Minute))
	t.Logf("two instances, one minute: %d APNs (rate_limit 40/s: 2,400), %d FCM (max_per_minute 1,200)", ios, android)
	if ios < 2160 || ios > 2640 {
		t.Errorf("rate_limit 40/s on two instances: %d in a minute, want 2,400 ±10%%", ios)
	}
	if android < 1080 || android > 1320 {
		t.Errorf("max_per_minute 1,200 on two instances: %d in a minute, want 1,200 ±10%%", android)
	}

	b.kill9(t)
	from = time.Now().Add(20 * time.Second) // 15 s until it counts as gone, and a heartbeat
	time.Sleep(time.Until(from.Add(30 * time.Second)))
	ios = e.receivedIn(pushsim.ProviderAPNs, from, from.Add(30*time.Second))
	android = e.receivedIn(pushsim.ProviderFCM, from, from.Add(30*time.Second))
	t.Logf("one instance left, 30 s: %d APNs (1,200 expected), %d FCM (600 expected)", ios, android)
	if ios < 1080 || ios > 1320 {
		t.Errorf("rate_limit 40/s after a kill: %d in 30 s, want 1,200 ±10%%", ios)
	}
	if android < 540 || android > 660 {
		t.Errorf("max_per_minute 1,200 after a kill: %d in 30 s, want 600 ±10%%", android)
	}
}
