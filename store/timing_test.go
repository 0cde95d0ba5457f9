package store_test

import (
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/pushd/pushd"
	"github.com/pushd/pushd/internal/dbtest"
)

// A local-time start makes a run per send time, puts every user in the run
// of their zone (NULL and unknown zones in the default's), and records the
// users whose local time passed more than an hour ago as skipped at once.
func TestLocalTimeStartGroupsUsers(t *testing.T) {
	t.Parallel()
	st := dbtest.Open(t)
	execAll(t, st.DB(),
		`INSERT INTO users (id, app, push_token, timezone) VALUES
			(1, 'A', 't1', 'Asia/Tokyo'), (2, 'A', 't2', 'Europe/Paris'), (3, 'A', 't3', NULL),
			(4, 'A', 't4', 'Mars/Olympus'), (5, 'A', 't5', 'America/New_York'), (6, 'A', 't6', 'Pacific/Kiritimati'),
			(7, 'B', 't7', 'Asia/Tokyo')`)
	paris, _ := time.LoadLocation("Europe/Paris")
	// 9:00 local on 2026-06-01, started at 01:00 UTC: Kiritimati (UTC+14)
	// is 6 h late, Tokyo 1 h... no: Tokyo's 9:00 is 00:00 UTC, 1 h ago.
	now := time.Date(2026, 6, 1, 1, 0, 0, 0, time.UTC)
	wall := time.Date(2026, 6, 1, 9, 0, 0, 0, time.UTC)
	id := insertCampaign(t, st, "A", wall)
	_, runIDs := startWith(t, st, id, now, pushd.NewRun{App: "A", Timing: pushd.Timing{Local: true, Start: wall,
		End: wall.Add(4 * time.Hour), Late: pushd.LateSkip, Default: paris}})
	type run struct {
		id           int64
		sendAt, dead time.Time
		users        []int64
		skipped      int
	}
	var runs []run
	for _, rid := range runIDs {
		r := run{id: rid}
		if err := st.DB().QueryRow(`SELECT scheduled_for, deadline, skipped FROM pushd_runs WHERE id = ?`, rid).Scan(&r.sendAt, &r.dead, &r.skipped); err != nil {
			t.Fatal(err)
		}
		r.users = userIDs(t, st, `SELECT user_id FROM pushd_run_members WHERE run_id = ? ORDER BY user_id`, rid)
		runs = append(runs, r)
	}
	want := []struct {
		send    string
		users   []int64
		skipped int
	}{
		{"2026-05-31T19:00:00Z", []int64{6}, 1}, // Kiritimati: 6 h late, skipped
		{"2026-06-01T01:00:00Z", []int64{1}, 0}, // Tokyo: 1 h late, sent now
		{"2026-06-01T07:00:00Z", []int64{2, 3, 4}, 0},
		{"2026-06-01T13:00:00Z", []int64{5}, 0},
	}
	if len(runs) != len(want) {
		t.Fatalf("%d runs, want %d: %+v", len(runs), len(want), runs)
	}
	for i, w := range want {
		r := runs[i]
		if r.sendAt.UTC().Format(time.RFC3339) != w.send || !slices.Equal(r.users, w.users) || r.skipped != w.skipped {
			t.Errorf("run %d: at %s users %v skipped %d; want %s %v %d", i, r.sendAt.UTC().Format(time.RFC3339), r.users, r.skipped, w.send, w.users, w.skipped)
		}
	}
	var outcome, reason, status string
	var skipped int
	if err := st.DB().QueryRow(`SELECT d.outcome, d.reason, c.skipped, c.status_reason FROM pushd_deliveries d, campaigns c WHERE d.user_id = 6 AND c.id = ?`, id).
		Scan(&outcome, &reason, &skipped, &status); err != nil {
		t.Fatal(err)
	}
	if outcome != "skipped" || reason != "local time passed" || skipped != 1 {
		t.Errorf("Kiritimati's user: %s %q, campaign skipped %d", outcome, reason, skipped)
	}
	if want := "sending at each user's local time: 4 users wait for 3 send times from 2026-06-01 01:00:00 to 2026-06-01 13:00:00 (UTC); 1 users have a timezone that is no IANA zone"; len(status) < len(want) || status[:len(want)] != want {
		t.Errorf("status_reason %q\nwant prefix %q", status, want)
	}
	// When Paris's run begins, New York's user still waits.
	execAll(t, st.DB(), fmt.Sprintf(`UPDATE campaigns SET local_time = 1 WHERE id = %d`, id))
	if err := st.WaitingNote(ctx, pushd.Run{ID: runs[2].id, CampaignID: id, Occurrence: 1}, runs[2].sendAt); err != nil {
		t.Fatal(err)
	}
	if err := st.DB().QueryRow(`SELECT status_reason FROM campaigns WHERE id = ?`, id).Scan(&status); err != nil {
		t.Fatal(err)
	}
	if want := "sending at each user's local time: 1 users still wait; the last send time is 2026-06-01 13:00:00 (UTC); 1 users have a timezone that is no IANA zone and get the default zone's time"; status != want {
		t.Errorf("status_reason %q\nwant %q", status, want)
	}
	// Claims see each run's members only.
	b, err := st.ClaimBatch(ctx, runs[2].id, "x", nil, time.Minute, now)
	if err != nil {
		t.Fatal(err)
	}
	if got := ids(b); !slices.Equal(got, []int64{2, 3, 4}) {
		t.Errorf("Paris run's batch %v, want 2, 3, 4", got)
	}
}
