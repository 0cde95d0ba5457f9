package main

import (
	"bytes"
	"database/sql"
	"strings"
	"testing"
	"time"

	"github.com/pushd/pushd"
	"github.com/pushd/pushd/internal/dbtest"
	"github.com/pushd/pushd/internal/pushsim"
	"github.com/pushd/pushd/report"
)

// seedCampaign is a campaign row and, when runStatus is set, its current
// run, written as the daemon writes them.
type seedCampaign struct {
	status, reason, cron                     string
	scheduledAt                              time.Time
	nextRunAt                                *time.Time
	runStatus                                string
	started, deadline                        time.Time
	finished                                 *time.Time
	targeted, sent, failed, invalid, expired int64
}

func seed(t *testing.T, db *sql.DB, c seedCampaign) int64 {
	t.Helper()
	var cron any
	if c.cron != "" {
		cron = c.cron
	}
	res, err := db.Exec(`INSERT INTO campaigns (app, title, body, scheduled_at, status, status_reason, cron, next_run_at)
		VALUES ('IOS', 'Sale', 'Everything 50% off', ?, ?, ?, ?, ?)`, c.scheduledAt, c.status, c.reason, cron, c.nextRunAt)
	if err != nil {
		t.Fatal(err)
	}
	id, _ := res.LastInsertId()
	if c.runStatus == "" {
		return id
	}
	res, err = db.Exec(`INSERT INTO pushd_runs (campaign_id, occurrence, app, status, status_reason, notification,
		scheduled_for, deadline, batch_size, max_user_id, cursor_user_id, drained, targeted, sent, failed,
		invalid_tokens, expired, started_at, finished_at)
		VALUES (?, 1, 'IOS', ?, ?, '{"title":"Sale"}', ?, ?, 1000, 100000, 0, 0, ?, ?, ?, ?, ?, ?, ?)`,
		id, c.runStatus, c.reason, c.scheduledAt, c.deadline, c.targeted, c.sent, c.failed, c.invalid, c.expired,
		c.started, c.finished)
	if err != nil {
		t.Fatal(err)
	}
	runID, _ := res.LastInsertId()
	_, err = db.Exec(`UPDATE campaigns SET current_run_id = ?, run_count = 1, targeted = ?, sent = ?, failed = ?,
		invalid_tokens = ?, expired = ?, started_at = ?, finished_at = ? WHERE id = ?`,
		runID, c.targeted, c.sent, c.failed, c.invalid, c.expired, c.started, c.finished, id)
	if err != nil {
		t.Fatal(err)
	}
	return id
}

const credentialReason = "APNs rejected the app's credentials (InvalidProviderToken): check key_id and team_id in [IOS] of config.ini; after fixing it, reload pushd and set status back to 'scheduled' to resume"

// seedStatusCampaigns writes one campaign of every kind the table shows
// differently, relative to now.
func seedStatusCampaigns(t *testing.T, db *sql.DB, now time.Time) {
	t.Helper()
	at := func(h, m int) time.Time { return time.Date(now.Year(), now.Month(), now.Day(), h, m, 0, 0, time.UTC) }
	ptr := func(t time.Time) *time.Time { return &t }
	// 1: done in 5 minutes, a few failures.
	seed(t, db, seedCampaign{status: "done", runStatus: "done", scheduledAt: at(9, 0), started: at(9, 0), deadline: at(10, 0),
		finished: ptr(at(9, 5)), targeted: 1000, sent: 990, failed: 4, invalid: 6,
		reason: "4 of 1000 pushes failed; reasons: InternalServerError after 5 tries (4); details in pushd_deliveries"})
	// 2: running for 10 minutes, 42% done.
	seed(t, db, seedCampaign{status: "running", runStatus: "running", scheduledAt: at(11, 50), started: at(11, 50),
		deadline: at(13, 0), targeted: 100000, sent: 41200, failed: 300, invalid: 500})
	// 3: recurring, started a minute ago, audience still being counted.
	seed(t, db, seedCampaign{status: "running", runStatus: "running", cron: "0 9 * * *", scheduledAt: at(11, 59),
		started: at(11, 59), deadline: at(12, 30), nextRunAt: ptr(at(9, 0).AddDate(0, 0, 1)), sent: 50})
	// 4: running too slowly to make its deadline.
	seed(t, db, seedCampaign{status: "running", runStatus: "running", scheduledAt: at(11, 0), started: at(11, 0),
		deadline: at(12, 10), targeted: 10000, sent: 1000})
	// 5: failed on credentials, with a reason too long for the table.
	seed(t, db, seedCampaign{status: "failed", runStatus: "failed", scheduledAt: at(10, 0), started: at(10, 0),
		deadline: at(11, 0), targeted: 500, sent: 1, reason: credentialReason})
	// 6: scheduled for later today.
	seed(t, db, seedCampaign{status: "scheduled", scheduledAt: at(15, 30)})
	// 7: scheduled an hour ago and not started: is pushd running?
	seed(t, db, seedCampaign{status: "scheduled", scheduledAt: at(11, 0)})
	// 8: paused by staff half way.
	seed(t, db, seedCampaign{status: "paused", runStatus: "paused", scheduledAt: at(8, 0), started: at(8, 0),
		deadline: at(20, 0), targeted: 200, sent: 100, reason: ""})
}

// TestStatusTable renders a seeded database with a fixed clock and pins
// every line.
func TestStatusTable(t *testing.T) {
	t.Parallel()
	st := dbtest.Open(t)
	now := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	seedStatusCampaigns(t, st.DB(), now)

	v := report.StatusView{Database: "pushd", Loc: time.UTC, Now: now}
	var err error
	if v.Campaigns, err = st.RecentCampaigns(t.Context(), 20); err != nil {
		t.Fatal(err)
	}
	tot, err := st.CampaignTotals(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	v.Counts = tot.ByStatus
	// What the heartbeats say: one live instance works on runs 2 and 4,
	// none on run 3 (stalled); another is gone.
	v.Instances = []pushd.Instance{
		{Owner: "push-1#a", InstanceID: "push-1", Host: "app1", PID: 4242, Version: "v1.5.0 go1.26.8", Live: true,
			StartedAt: now.Add(-3 * time.Hour), SeenAt: now.Add(-2 * time.Second),
			Runs: []pushd.RunProgress{{RunID: 2, Sent: 70, Outcomes: 71.5}, {RunID: 4, Sent: 0.3, Outcomes: 0.3}}},
		{Owner: "push-2#b", InstanceID: "push-2", Host: "app2", PID: 77, Version: "v1.4.0 go1.26.8",
			StartedAt: now.Add(-30 * time.Hour), SeenAt: now.Add(-2 * time.Hour)},
	}
	var b bytes.Buffer
	report.Status(&b, v)
	want := `pushd campaigns in database pushd at 2026-03-01 12:00:00 UTC: 3 running, 2 scheduled, 1 paused, 1 failed, 1 done
sending: 42,250/110,000 sent in 3 running campaigns, 70/s

ID  APP  STATUS     PROGRESS                      SENT/TARGETED  FAILED  INVALID  EXPIRED     RATE     ETA  NEXT RUN                       REASON
 8  IOS  paused     [##########..........]  50%         100/200       0        0        0        -       -  -
 7  IOS  scheduled  -                                         -       -        -        -        -       -  2026-03-01 11:00 (1h00m late)
 6  IOS  scheduled  -                                         -       -        -        -        -       -  2026-03-01 15:30 (in 3h30m)
 5  IOS  failed     [....................]   0%           1/500       0        0        0        -       -  -                              APNs rejected the app's credentials (InvalidProviderToken)…
 4  IOS  running    [##..................]  10%    1,000/10,000       0        0        0    0.3/s  8h20m*  -
 3  IOS  running    counting the audience                  50/?       0        0        0  stalled       -  2026-03-02 09:00 (in 21h00m)
 2  IOS  running    [########............]  42%  41,200/100,000     300      500        0     70/s     13m  -
 1  IOS  done       [####################] 100%       990/1,000       4        6        0    3.3/s       -  -                              4 of 1000 pushes failed; reasons: InternalServerError after…

* at this rate the run ends after its deadline; users not reached by then count as expired

stalled: campaign 3 is running, but no live pushd works on it; start pushd and it goes on where it stopped

Reasons in full:
  5: ` + credentialReason + `
  1: 4 of 1000 pushes failed; reasons: InternalServerError after 5 tries (4); details in pushd_deliveries

pushd instances: 1 live
  push-1 (host app1, pid 4242, v1.5.0 go1.26.8): up 3h00m, working on runs 2, 4
  push-2 (host app2, pid 77, v1.4.0 go1.26.8): gone, last seen 2h00m ago
`
	if got := b.String(); got != want {
		t.Errorf("status table:\n%s\nwant:\n%s", got, want)
		gl, wl := strings.Split(got, "\n"), strings.Split(want, "\n")
		for i := range min(len(gl), len(wl)) {
			if gl[i] != wl[i] {
				t.Errorf("first difference, line %d:\n got %q\nwant %q", i+1, gl[i], wl[i])
				break
			}
		}
	}
}

// TestStatusCommand runs `pushd status` on a seeded database through the
// command's entry point, with the real clock.
func TestStatusCommand(t *testing.T) {
	t.Parallel()
	e := newEnv(t, "", pushsim.Options{})
	seedStatusCampaigns(t, e.db, time.Now().UTC())
	var out, errOut bytes.Buffer
	if err := run(t.Context(), []string{"status", "-config", e.config, "-n", "3"}, &out, &errOut); err != nil {
		t.Fatalf("pushd status: %v\n%s", err, errOut.String())
	}
	lines := strings.Split(out.String(), "\n")
	if !strings.Contains(lines[0], "3 running, 2 scheduled, 1 paused, 1 failed, 1 done") {
		t.Errorf("summary line = %q", lines[0])
	}
	// -n 3 shows the three newest campaigns and every running one.
	var ids []string
	for _, l := range lines[3:] {
		if f := strings.Fields(l); len(f) > 2 && f[1] == "IOS" {
			ids = append(ids, f[0])
		}
	}
	if got := strings.Join(ids, " "); got != "8 7 6 4 3 2" {
		t.Errorf("campaigns shown = %s, want 8 7 6 4 3 2\n%s", got, out.String())
	}
	if strings.Contains(out.String(), "\x1b[") {
		t.Error("ANSI escapes written to a non-terminal")
	}
	// No pushd runs: the running campaigns are stalled, not sending.
	if !strings.Contains(out.String(), "stalled: campaigns 4, 3, 2 are running, but no live pushd works on it") ||
		!strings.Contains(out.String(), "pushd instances: none has run in the last day") {
		t.Errorf("status without a running pushd:\n%s", out.String())
	}

	// A running pushd beats at once: it is listed, live.
	d := e.start()
	waitFor(t, 30*time.Second, "the heartbeat", func() bool {
		return e.count(`SELECT COUNT(*) FROM pushd_instances`) == 1
	})
	out.Reset()
	if err := run(t.Context(), []string{"status", "-config", e.config}, &out, &errOut); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out.String(), "pushd instances: 1 live") {
		t.Errorf("status with a running pushd:\n%s", out.String())
	}
	d.stop(t)
	if n := e.count(`SELECT COUNT(*) FROM pushd_instances`); n != 0 {
		t.Errorf("%d heartbeat rows after a clean stop, want 0", n)
	}

	out.Reset()
	err := run(t.Context(), []string{"status", "-config", e.config, "-n", "0"}, &out, &errOut)
	if err == nil || !strings.Contains(errOut.String(), "-n 0: must be 1 or more") {
		t.Errorf("pushd status -n 0 = %v, stderr %q; want a usage error", err, errOut.String())
	}
}
