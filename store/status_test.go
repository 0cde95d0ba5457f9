package store_test

import (
	"testing"
	"time"

	"github.com/pushd/pushd"
	"github.com/pushd/pushd/internal/dbtest"
)

// TestRecentCampaigns checks which rows `pushd status` lists: every running
// campaign however old, plus the newest ones up to the limit, with the
// current run's timing joined in.
func TestRecentCampaigns(t *testing.T) {
	t.Parallel()
	st := dbtest.Open(t)
	db := st.DB()
	at := time.Date(2026, 3, 1, 9, 0, 0, 0, time.UTC)
	insert := func(status string) int64 {
		t.Helper()
		res, err := db.Exec(`INSERT INTO campaigns (app, title, body, scheduled_at, status) VALUES ('IOS', 'Sale', 'b', ?, ?)`, at, status)
		if err != nil {
			t.Fatal(err)
		}
		id, _ := res.LastInsertId()
		return id
	}
	oldRunning := insert("running")
	res, err := db.Exec(`INSERT INTO pushd_runs (campaign_id, occurrence, app, status, notification, scheduled_for,
		deadline, batch_size, max_user_id, cursor_user_id, started_at, targeted, sent)
		VALUES (?, 1, 'IOS', 'running', '{}', ?, ?, 1000, 10, 0, ?, 10, 4)`,
		oldRunning, at, at.Add(time.Hour), at.Add(1500*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	runID, _ := res.LastInsertId()
	if _, err := db.Exec(`UPDATE campaigns SET current_run_id = ?, run_count = 1, targeted = 10, sent = 4,
		cron = '@daily', next_run_at = ? WHERE id = ?`, runID, at.Add(24*time.Hour), oldRunning); err != nil {
		t.Fatal(err)
	}
	oldDone := insert("done")
	var newest []int64
	for range 5 {
		newest = append(newest, insert("scheduled"))
	}

	got, err := st.RecentCampaigns(t.Context(), 3)
	if err != nil {
		t.Fatal(err)
	}
	var ids []int64
	for _, c := range got {
		ids = append(ids, c.ID)
	}
	want := []int64{newest[4], newest[3], newest[2], oldRunning}
	if len(ids) != len(want) {
		t.Fatalf("RecentCampaigns(3) ids = %v, want %v (old done campaign %d must be left out)", ids, want, oldDone)
	}
	for i := range want {
		if ids[i] != want[i] {
			t.Fatalf("RecentCampaigns(3) ids = %v, want %v", ids, want)
		}
	}
	run := got[3]
	if run.Run == nil || run.Run.ID != runID || run.Run.Status != pushd.Running ||
		!run.Run.StartedAt.Equal(at.Add(1500*time.Millisecond)) || !run.Run.Deadline.Equal(at.Add(time.Hour)) ||
		run.Run.FinishedAt != nil {
		t.Errorf("running campaign's run = %+v, want run %d started %v", run.Run, runID, at.Add(1500*time.Millisecond))
	}
	if run.Sent != 4 || run.Targeted != 10 || run.Cron != "@daily" || run.NextRunAt == nil ||
		!run.NextRunAt.Equal(at.Add(24*time.Hour)) || run.Status != pushd.Running || run.RunCount != 1 {
		t.Errorf("running campaign = %+v", run)
	}
	if got[0].Run != nil || got[0].NextRunAt != nil || got[0].Status != pushd.Scheduled {
		t.Errorf("scheduled campaign = %+v, want no run", got[0])
	}

	all, err := st.RecentCampaigns(t.Context(), 0)
	if err != nil {
		t.Fatal(err)
	}
	if len(all) != 7 {
		t.Errorf("RecentCampaigns(0) returned %d rows, want all 7", len(all))
	}
}

// A heartbeat marks its instance live by the database's clock; a stopping
// instance's row goes at once, a silent one's counts as gone.
func TestHeartbeats(t *testing.T) {
	t.Parallel()
	st := dbtest.Open(t)
	start := time.Now().UTC().Truncate(time.Millisecond)
	a := pushd.Instance{Owner: "a#1", InstanceID: "a", Host: "h1", PID: 1, Version: "v1", StartedAt: start,
		Runs: []pushd.RunProgress{{RunID: 7, Sent: 100, Outcomes: 101.5}}}
	b := pushd.Instance{Owner: "b#2", InstanceID: "b", Host: "h2", PID: 2, Version: "v1", StartedAt: start}
	for _, in := range []pushd.Instance{a, b, a} {
		if err := st.Heartbeat(ctx, in); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := st.DB().Exec(`UPDATE pushd_instances SET seen_at = NOW(3) - INTERVAL 1 MINUTE WHERE owner = 'b#2'`); err != nil {
		t.Fatal(err)
	}
	got, err := st.Instances(ctx, 15*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 || got[0].Owner != "a#1" || !got[0].Live || got[1].Live || len(got[0].Runs) != 1 ||
		got[0].Runs[0] != a.Runs[0] || !got[0].StartedAt.Equal(start) || got[1].Runs == nil {
		t.Fatalf("instances %+v: want a live with its run, b gone", got)
	}
	if err := st.Forget(ctx, "a#1"); err != nil {
		t.Fatal(err)
	}
	if got, _ := st.Instances(ctx, 15*time.Second); len(got) != 1 || got[0].Owner != "b#2" {
		t.Fatalf("after Forget: %+v", got)
	}
}
