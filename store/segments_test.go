package store_test

import (
	"errors"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pushd/pushd"
	"github.com/pushd/pushd/internal/dbtest"
	"github.com/pushd/pushd/store"
)

// startWith starts a campaign's runs as Decide does for Plan's Start.
func startWith(t *testing.T, st *store.Store, id int64, now time.Time, runs ...pushd.NewRun) (pushd.Decision, []int64) {
	t.Helper()
	d, runIDs, err := st.Decide(ctx, id, now, func(c *pushd.Campaign) pushd.Decision {
		for i := range runs {
			runs[i].ScheduledFor, runs[i].Deadline, runs[i].Notification = c.ScheduledAt, now.Add(time.Hour), []byte(`{}`)
			if runs[i].BatchSize == 0 {
				runs[i].BatchSize = 10
			}
		}
		return pushd.Decision{Action: pushd.Start, Runs: runs}
	})
	if err != nil {
		t.Fatal(err)
	}
	return d, runIDs
}

// drain claims every batch of a run as owner and records each user as
// outcome; it returns the users sent to, in claim order, and the capped
// count the claims reported.
func drain(t *testing.T, st *store.Store, runID, campaignID int64, owner string, outcome pushd.Outcome) (users []int64, capped int) {
	t.Helper()
	for {
		b, err := st.ClaimBatch(ctx, runID, owner, nil, time.Minute, time.Now())
		if errors.Is(err, pushd.ErrDrained) {
			return users, capped
		}
		if err != nil {
			t.Fatalf("claim run %d: %v", runID, err)
		}
		capped += b.Capped
		if b.ID == 0 {
			continue
		}
		ds := make([]pushd.Delivery, len(b.Recipients))
		for i, r := range b.Recipients {
			users = append(users, r.UserID)
			ds[i] = pushd.Delivery{UserID: r.UserID, Outcome: outcome, Attempts: 1}
		}
		if err := st.Record(ctx, pushd.Flush{RunID: runID, CampaignID: campaignID, BatchID: b.ID, Epoch: b.Epoch,
			Deliveries: ds, Done: true, Lease: time.Minute, Now: time.Now(), Tracked: true}); err != nil {
			t.Fatal(err)
		}
	}
}

func userIDs(t *testing.T, st *store.Store, query string, args ...any) []int64 {
	t.Helper()
	rows, err := st.DB().Query(query, args...)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var out []int64
	for rows.Next() {
		var id int64
		if err := rows.Scan(&id); err != nil {
			t.Fatal(err)
		}
		out = append(out, id)
	}
	return out
}

// A segment run sends to the app's users in the segment and not in the
// excluded one, once each, as the segments stood at the start: rows added
// to or removed from the segments afterwards, and a takeover, change
// nothing. Ids that are no user of the app are not targeted.
func TestSegmentRunIsFrozenAtStart(t *testing.T) {
	t.Parallel()
	st := dbtest.Open(t)
	seedUsers(t, st, "A", 100) // ids 1..100
	seedUsers(t, st, "B", 20)  // ids 101..120
	execAll(t, st.DB(),
		`CREATE TABLE segment_buyers (user_id BIGINT, note VARCHAR(20))`,
		// 1..60 of A, twice for some, 105 of B, and an id that is nobody.
		`INSERT INTO segment_buyers (user_id) SELECT id FROM users WHERE id <= 60 OR id = 105`,
		`INSERT INTO segment_buyers (user_id) VALUES (3), (4), (99999), (NULL)`,
		`CREATE TABLE complained (id BIGINT)`,
		`INSERT INTO complained VALUES (10), (11), (12), (70)`,
		`CREATE VIEW segment_complained AS SELECT id AS user_id FROM complained UNION ALL SELECT NULL`,
	)
	now := time.Now().UTC().Truncate(time.Second)
	id := insertCampaign(t, st, "A", now)
	_, runIDs := startWith(t, st, id, now, pushd.NewRun{App: "A", Audience: pushd.Audience{Segment: "buyers", Exclude: "complained"}})
	runID := runIDs[0]
	var want []int64
	for u := int64(1); u <= 60; u++ {
		if u < 10 || u > 12 {
			want = append(want, u)
		}
	}
	members := pushd.Run{ID: runID, App: "A", Members: true}
	if n, err := st.CountAudience(ctx, members); err != nil || n != int64(len(want)) {
		t.Errorf("CountAudience at the start = %d, %v; want %d", n, err, len(want))
	}

	// The first batch is claimed and abandoned (its owner died).
	first, err := st.ClaimBatch(ctx, runID, "dead", nil, time.Millisecond, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	if got := ids(first); !slices.Equal(got, want[:10]) {
		t.Errorf("first batch = %v, want %v", got, want[:10])
	}
	// Marketing change the segments mid-run.
	execAll(t, st.DB(),
		`INSERT INTO segment_buyers (user_id) VALUES (61), (62), (90)`,
		`DELETE FROM segment_buyers WHERE user_id IN (30, 31)`,
		`DELETE FROM complained`,
	)
	time.Sleep(5 * time.Millisecond) // the dead owner's lease runs out
	got, _ := drain(t, st, runID, id, "live", pushd.Sent)
	slices.Sort(got)
	if !slices.Equal(got, want) {
		t.Errorf("sent to %v\nwant %v", got, want)
	}
	if n, err := st.CountAudience(ctx, members); err != nil || n != int64(len(want)) {
		t.Errorf("CountAudience at the end = %d, %v; want %d", n, err, len(want))
	}
}

// A segment that is missing, has no user_id column or cannot be read is a
// SegmentError when the row is estimated and when the run would start; the
// start then fails the row with the reason and leaves no run behind.
func TestSegmentErrors(t *testing.T) {
	t.Parallel()
	st := dbtest.Open(t)
	seedUsers(t, st, "A", 5)
	execAll(t, st.DB(),
		`CREATE TABLE segment_no_id (id BIGINT)`,
		`CREATE TABLE orders (user_id BIGINT)`,
		`CREATE VIEW segment_broken AS SELECT user_id FROM orders`,
		`DROP TABLE orders`,
	)
	cases := []struct {
		segment, exclude string
		want             string
	}{
		{"recent_buyers", "", "segment 'recent_buyers' does not exist: create a table or view named segment_recent_buyers with a user_id column"},
		{"no_id", "", "segment 'no_id' has no user_id column"},
		{"broken", "", "segment 'broken' cannot be read"},
		{"", "nobody", "segment 'nobody' does not exist"},
	}
	now := time.Now().UTC().Truncate(time.Second)
	for _, tc := range cases {
		id := insertCampaign(t, st, "A", now.Add(time.Hour))
		if _, err := st.DB().Exec(`UPDATE campaigns SET segment = NULLIF(?, ''), exclude_segment = NULLIF(?, '') WHERE id = ?`, tc.segment, tc.exclude, id); err != nil {
			t.Fatal(err)
		}
		c := &pushd.Campaign{ID: id, App: "A", Segment: tc.segment, ExcludeSegment: tc.exclude}
		_, err := st.EstimateAudience(ctx, c)
		var se *pushd.SegmentError
		if !errors.As(err, &se) || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("EstimateAudience(%q, %q) = %v, want a SegmentError with %q", tc.segment, tc.exclude, err, tc.want)
		}
		d, runIDs := startWith(t, st, id, now, pushd.NewRun{App: "A", Audience: pushd.Audience{Segment: tc.segment, Exclude: tc.exclude}})
		var status, reason string
		var runs int
		if err := st.DB().QueryRow(`SELECT status, status_reason, (SELECT COUNT(*) FROM pushd_runs WHERE campaign_id = ?) FROM campaigns WHERE id = ?`,
			id, id).Scan(&status, &reason, &runs); err != nil {
			t.Fatal(err)
		}
		if d.Action != pushd.Fail || len(runIDs) != 0 || status != "failed" || !strings.Contains(reason, tc.want) || runs != 0 {
			t.Errorf("start with segment %q/%q: decision %v, runs %v, row %s %q, %d runs in the table", tc.segment, tc.exclude, d.Action, runIDs, status, reason, runs)
		}
	}
}

// The estimate is written into targeted without changing updated_at.
func TestEstimateAudience(t *testing.T) {
	t.Parallel()
	st := dbtest.Open(t)
	seedUsers(t, st, "A", 30)
	seedUsers(t, st, "B", 12)
	execAll(t, st.DB(), `CREATE TABLE segment_few (user_id BIGINT PRIMARY KEY)`,
		`INSERT INTO segment_few VALUES (1), (2), (3), (31), (32), (500)`)
	now := time.Now().UTC().Truncate(time.Second)
	for _, tc := range []struct {
		app, segment string
		want         int64
	}{{"A", "", 30}, {"A,B", "", 42}, {"A, B", "few", 6}, {"B", "few", 6}} { // a segment counts its size
		id := insertCampaign(t, st, tc.app, now.Add(time.Hour))
		var before time.Time
		execAll(t, st.DB(), `UPDATE campaigns SET updated_at = '2026-01-01 00:00:00', segment = NULLIF('`+tc.segment+`', '')`)
		c := &pushd.Campaign{ID: id, App: tc.app, Segment: tc.segment, UpdatedAt: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)}
		n, err := st.EstimateAudience(ctx, c)
		var targeted int64
		if err := st.DB().QueryRow(`SELECT targeted, updated_at FROM campaigns WHERE id = ?`, id).Scan(&targeted, &before); err != nil {
			t.Fatal(err)
		}
		if err != nil || n != tc.want || targeted != tc.want || !before.Equal(c.UpdatedAt) {
			t.Errorf("%s/%s: estimate %d, %v; targeted %d, updated_at %v; want %d", tc.app, tc.segment, n, err, targeted, before, tc.want)
		}
	}
}

// One occurrence of a two-app campaign has a run per app; the row shows
// the sums, stays running until both runs end, and then joins their
// summaries.
func TestTwoAppsOneOccurrence(t *testing.T) {
	t.Parallel()
	st := dbtest.Open(t)
	seedUsers(t, st, "iOS", 25)
	seedUsers(t, st, "Android", 15)
	now := time.Now().UTC().Truncate(time.Second)
	id := insertCampaign(t, st, "iOS,Android", now)
	_, runIDs := startWith(t, st, id, now, pushd.NewRun{App: "iOS"}, pushd.NewRun{App: "Android"})
	if len(runIDs) != 2 {
		t.Fatalf("runs %v, want 2", runIDs)
	}
	for i, runID := range runIDs {
		app := []string{"iOS", "Android"}[i]
		n, err := st.CountAudience(ctx, pushd.Run{ID: runID, App: app, MaxUserID: 1 << 40})
		if err != nil {
			t.Fatal(err)
		}
		if err := st.SetTargeted(ctx, pushd.Run{ID: runID, CampaignID: id, Occurrence: 1}, n); err != nil {
			t.Fatal(err)
		}
	}
	iosUsers, _ := drain(t, st, runIDs[0], id, "x", pushd.Sent)
	androidUsers, _ := drain(t, st, runIDs[1], id, "x", pushd.FailedSend)
	if len(iosUsers) != 25 || len(androidUsers) != 15 {
		t.Fatalf("sent %d and %d, want 25 and 15", len(iosUsers), len(androidUsers))
	}
	row := func() (status string, targeted, sent, failed int, reason string) {
		t.Helper()
		if err := st.DB().QueryRow(`SELECT status, targeted, sent, failed, status_reason FROM campaigns WHERE id = ?`, id).
			Scan(&status, &targeted, &sent, &failed, &reason); err != nil {
			t.Fatal(err)
		}
		return
	}
	if status, targeted, sent, failed, _ := row(); status != "running" || targeted != 40 || sent != 25 || failed != 15 {
		t.Errorf("row while running: %s targeted %d sent %d failed %d", status, targeted, sent, failed)
	}
	if ok, err := st.FinishRun(ctx, runIDs[0], pushd.Done, "sent 25 of 25", time.Now()); err != nil || !ok {
		t.Fatal(ok, err)
	}
	if status, _, _, _, _ := row(); status != "running" {
		t.Errorf("row after the first app finished: %s, want running", status)
	}
	if ok, err := st.FinishRun(ctx, runIDs[1], pushd.Done, "15 of 15 pushes failed", time.Now()); err != nil || !ok {
		t.Fatal(ok, err)
	}
	status, _, _, _, reason := row()
	if status != "done" || reason != "iOS: sent 25 of 25; Android: 15 of 15 pushes failed" {
		t.Errorf("row at the end: %s %q", status, reason)
	}
}

func capRun(app string, count int) pushd.NewRun {
	return pushd.NewRun{App: app, Cap: pushd.FrequencyCap{Count: count, Window: 24 * time.Hour}}
}

// With a cap of 1 per 24 h, a second campaign to the same users is fully
// capped and counts it; one that ignores the cap reaches everyone; a push
// that failed does not count towards the cap.
func TestFrequencyCap(t *testing.T) {
	t.Parallel()
	st := dbtest.Open(t)
	seedUsers(t, st, "A", 35)
	now := time.Now().UTC().Truncate(time.Second)

	first := insertCampaign(t, st, "A", now)
	_, r1 := startWith(t, st, first, now, capRun("A", 1))
	// Users 1..5 fail, the rest are sent.
	var sent []int64
	for {
		b, err := st.ClaimBatch(ctx, r1[0], "x", nil, time.Minute, time.Now())
		if errors.Is(err, pushd.ErrDrained) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		ds := make([]pushd.Delivery, len(b.Recipients))
		for i, r := range b.Recipients {
			ds[i] = pushd.Delivery{UserID: r.UserID, Outcome: pushd.Sent, Attempts: 1}
			if r.UserID <= 5 {
				ds[i].Outcome = pushd.FailedSend
			} else {
				sent = append(sent, r.UserID)
			}
		}
		if err := st.Record(ctx, pushd.Flush{RunID: r1[0], CampaignID: first, BatchID: b.ID, Epoch: b.Epoch,
			Deliveries: ds, Done: true, Lease: time.Minute, Now: time.Now(), Tracked: true}); err != nil {
			t.Fatal(err)
		}
	}

	second := insertCampaign(t, st, "A", now)
	_, r2 := startWith(t, st, second, now, capRun("A", 1))
	got, capped := drain(t, st, r2[0], second, "x", pushd.Sent)
	if !slices.Equal(got, []int64{1, 2, 3, 4, 5}) || capped != 30 {
		t.Errorf("second campaign sent to %v and capped %d; want only the 5 who failed, 30 capped", got, capped)
	}
	var rowCapped, ledgerCapped int
	if err := st.DB().QueryRow(`SELECT capped, (SELECT COUNT(*) FROM pushd_deliveries WHERE run_id = ? AND outcome = 'capped') FROM campaigns WHERE id = ?`,
		r2[0], second).Scan(&rowCapped, &ledgerCapped); err != nil || rowCapped != 30 || ledgerCapped != 30 {
		t.Errorf("capped on the row %d, in the ledger %d (%v); want 30", rowCapped, ledgerCapped, err)
	}

	urgent := insertCampaign(t, st, "A", now)
	_, r3 := startWith(t, st, urgent, now, capRun("A", 0)) // ignore_frequency_cap
	if got, capped := drain(t, st, r3[0], urgent, "x", pushd.Sent); len(got) != 35 || capped != 0 {
		t.Errorf("a campaign that ignores the cap sent %d, capped %d; want 35, 0", len(got), capped)
	}
	// Its sends count: with 2 per day, everyone has had 2 now.
	fourth := insertCampaign(t, st, "A", now)
	_, r4 := startWith(t, st, fourth, now, capRun("A", 2))
	if got, capped := drain(t, st, r4[0], fourth, "x", pushd.Sent); len(got) != 0 || capped != 35 {
		t.Errorf("a 2/24h campaign after two sends sent %d, capped %d; want 0, 35", len(got), capped)
	}
}

// Two capped campaigns of one app claiming at once, as on two instances,
// never both send to a user.
func TestFrequencyCapHoldsForConcurrentRuns(t *testing.T) {
	t.Parallel()
	st := dbtest.Open(t)
	seedUsers(t, st, "A", 2000)
	now := time.Now().UTC().Truncate(time.Second)
	a, b := insertCampaign(t, st, "A", now), insertCampaign(t, st, "A", now)
	_, ra := startWith(t, st, a, now, pushd.NewRun{App: "A", BatchSize: 50, Cap: pushd.FrequencyCap{Count: 1, Window: time.Hour}})
	_, rb := startWith(t, st, b, now, pushd.NewRun{App: "A", BatchSize: 70, Cap: pushd.FrequencyCap{Count: 1, Window: time.Hour}})
	var wg sync.WaitGroup
	got := make([][]int64, 2)
	capped := make([]int, 2)
	for i, run := range [][2]int64{{ra[0], a}, {rb[0], b}} {
		wg.Go(func() { got[i], capped[i] = drain(t, st, run[0], run[1], "instance", pushd.Sent) })
	}
	wg.Wait()
	seen := map[int64]int{}
	for _, us := range got {
		for _, u := range us {
			seen[u]++
		}
	}
	for u, n := range seen {
		if n > 1 {
			t.Errorf("user %d was sent both campaigns", u)
		}
	}
	if len(seen) != 2000 || capped[0]+capped[1] != 2000 {
		t.Errorf("%d users sent, %d+%d capped; want 2000 each", len(seen), capped[0], capped[1])
	}
}

// The members of finished segment runs and sends older than the longest
// cap window are purged; a running run's members and recent sends stay.
func TestPurgeAudiences(t *testing.T) {
	t.Parallel()
	st := dbtest.Open(t)
	seedUsers(t, st, "A", 50)
	execAll(t, st.DB(), `CREATE TABLE segment_all (user_id BIGINT)`, `INSERT INTO segment_all SELECT id FROM users`)
	now := time.Now().UTC().Truncate(time.Second)
	done, running := insertCampaign(t, st, "A", now), insertCampaign(t, st, "A", now)
	_, r1 := startWith(t, st, done, now, pushd.NewRun{App: "A", Audience: pushd.Audience{Segment: "all"}})
	_, r2 := startWith(t, st, running, now, pushd.NewRun{App: "A", Audience: pushd.Audience{Segment: "all"}})
	drain(t, st, r1[0], done, "x", pushd.Sent)
	if ok, err := st.FinishRun(ctx, r1[0], pushd.Done, "", time.Now()); err != nil || !ok {
		t.Fatal(ok, err)
	}
	execAll(t, st.DB(), `INSERT INTO pushd_sends (user_id, run_id, sent_at) VALUES (1, 1, NOW(3) - INTERVAL 91 DAY), (2, 1, NOW(3) - INTERVAL 89 DAY)`)
	n, err := st.PurgeAudiences(ctx, 7, func(time.Duration) bool { return true })
	if err != nil || n != 51 {
		t.Errorf("purged %d rows, %v; want 50 members and 1 send", n, err)
	}
	var left1, left2, sends int
	if err := st.DB().QueryRow(`SELECT (SELECT COUNT(*) FROM pushd_run_members WHERE run_id = ?), (SELECT COUNT(*) FROM pushd_run_members WHERE run_id = ?),
		(SELECT COUNT(*) FROM pushd_sends)`, r1[0], r2[0]).Scan(&left1, &left2, &sends); err != nil {
		t.Fatal(err)
	}
	if left1 != 0 || left2 != 50 || sends != 1 {
		t.Errorf("left: %d members of the finished run, %d of the running one, %d sends; want 0, 50, 1", left1, left2, sends)
	}
}

// Evaluating a slow segment view at the start takes no locks on the tables
// it reads: the company's application can update them meanwhile. (At
// REPEATABLE READ, INSERT … SELECT locks every row it read until the
// commit; checked to fail with Decide's transaction at the default level.)
func TestSegmentStartLocksNothing(t *testing.T) {
	t.Parallel()
	st := dbtest.Open(t)
	seedUsers(t, st, "A", 200)
	execAll(t, st.DB(),
		`CREATE TABLE orders (user_id BIGINT PRIMARY KEY, note VARCHAR(10))`,
		`INSERT INTO orders (user_id) SELECT id FROM users`,
		// About 2 s to evaluate: 10 ms a row.
		`CREATE VIEW segment_slow AS SELECT user_id FROM orders WHERE SLEEP(0.01) = 0`)
	now := time.Now().UTC().Truncate(time.Second)
	id := insertCampaign(t, st, "A", now)
	started := make(chan struct{})
	done := make(chan []int64)
	go func() {
		close(started)
		_, runIDs := startWith(t, st, id, now, pushd.NewRun{App: "A", Audience: pushd.Audience{Segment: "slow"}})
		done <- runIDs
	}()
	<-started
	time.Sleep(500 * time.Millisecond) // well into the view's evaluation
	conn, err := st.DB().Conn(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	execConn := func(q string) error { _, err := conn.ExecContext(ctx, q); return err }
	if err := execConn(`SET SESSION innodb_lock_wait_timeout = 1`); err != nil {
		t.Fatal(err)
	}
	began := time.Now()
	if err := execConn(`UPDATE orders SET note = 'paid' WHERE user_id IN (1, 2, 3)`); err != nil {
		t.Errorf("updating rows the segment view had read: %v", err)
	}
	// A lock would hold it for the second and a half left of the start,
	// past innodb_lock_wait_timeout; a busy machine may slow it, not that.
	if took := time.Since(began); took > time.Second {
		t.Errorf("the update waited %v for the start's locks", took)
	}
	runIDs := <-done
	if len(runIDs) != 1 {
		t.Fatalf("runs %v", runIDs)
	}
	if n, err := st.CountAudience(ctx, pushd.Run{ID: runIDs[0], App: "A", Members: true}); err != nil || n != 200 {
		t.Errorf("audience %d, %v; want the 200 users of the segment", n, err)
	}
}

// The two apps' runs finishing at the same moment end the campaign: the
// last finish to commit must see the other run finished. Here one run's
// finish is held uncommitted while the other's runs; a plain read of the
// sibling runs saw it still running (and neither ended the campaign).
func TestTwoAppsFinishTogether(t *testing.T) {
	t.Parallel()
	st := dbtest.Open(t)
	seedUsers(t, st, "iOS", 3)
	seedUsers(t, st, "Android", 2)
	now := time.Now().UTC().Truncate(time.Second)
	id := insertCampaign(t, st, "iOS,Android", now)
	_, runIDs := startWith(t, st, id, now, pushd.NewRun{App: "iOS"}, pushd.NewRun{App: "Android"})
	drain(t, st, runIDs[0], id, "x", pushd.Sent)
	drain(t, st, runIDs[1], id, "x", pushd.Sent)

	// The Android run's finish, caught between its update and its commit.
	other, err := st.DB().BeginTx(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer other.Rollback()
	if _, err := other.Exec(`UPDATE pushd_runs SET status = 'done', finished_at = NOW() WHERE id = ?`, runIDs[1]); err != nil {
		t.Fatal(err)
	}
	finished := make(chan error, 1)
	go func() {
		_, err := st.FinishRun(ctx, runIDs[0], pushd.Done, "", time.Now())
		finished <- err
	}()
	// Either the iOS finish waits for the Android run's lock (as it must:
	// one of its statements stays in progress), or it returns at once.
	deadline := time.Now().Add(10 * time.Second)
	for waiting := 0; waiting == 0; {
		select {
		case err := <-finished:
			t.Fatalf("the iOS run's finish did not wait for the Android run's (err %v)", err)
		default:
		}
		if err := st.DB().QueryRow(`SELECT COUNT(*) FROM information_schema.PROCESSLIST WHERE DB = DATABASE() AND COMMAND = 'Query' AND ID <> CONNECTION_ID()`).Scan(&waiting); err != nil {
			t.Fatal(err)
		}
		if time.Now().After(deadline) {
			t.Fatal("no statement of the finish is in progress")
		}
	}
	if err := other.Commit(); err != nil {
		t.Fatal(err)
	}
	if err := <-finished; err != nil {
		t.Fatal(err)
	}
	var status string
	if err := st.DB().QueryRow(`SELECT status FROM campaigns WHERE id = ?`, id).Scan(&status); err != nil || status != "done" {
		t.Errorf("campaign %s (%v), want done", status, err)
	}
}
