package store_test

import (
	"context"
	"strconv"
	"testing"
	"time"

	"github.com/pushd/pushd"
	"github.com/pushd/pushd/internal/dbtest"
	"github.com/pushd/pushd/store"
)

// recordAll sends a whole run to its ledger, batch by batch.
func recordAll(t *testing.T, st *store.Store, cid, run int64, now time.Time) {
	t.Helper()
	for {
		b, err := st.ClaimBatch(ctx, run, "me", nil, time.Minute, now)
		if err == pushd.ErrDrained {
			return
		}
		if err != nil {
			t.Fatal(err)
		}
		ds := make([]pushd.Delivery, len(b.Recipients))
		for i, r := range b.Recipients {
			ds[i] = pushd.Delivery{UserID: r.UserID, Outcome: pushd.Sent, Attempts: 1}
		}
		if err := st.Record(ctx, pushd.Flush{RunID: run, CampaignID: cid, BatchID: b.ID, Epoch: b.Epoch,
			Deliveries: ds, Done: true, Lease: time.Minute, Now: now}); err != nil {
			t.Fatal(err)
		}
	}
}

// Only the runs finished before the cut lose their ledger and batch rows,
// a chunk at a time; counts, running runs and recent runs are untouched.
func TestPurgeLedger(t *testing.T) {
	t.Parallel()
	st := dbtest.Open(t)
	seedUsers(t, st, "A", 50)
	now := time.Now().UTC().Truncate(time.Second)
	runs := map[string]int64{}
	for _, name := range []string{"old", "recent", "running"} {
		cid := insertCampaign(t, st, "A", now)
		run := startRun(t, st, cid, now, 20)
		recordAll(t, st, cid, run, now)
		runs[name] = run
	}
	execAll(t, st.DB(),
		`UPDATE pushd_runs SET status = 'done', finished_at = NOW() - INTERVAL 100 DAY WHERE id = `+itoa(runs["old"]),
		`UPDATE pushd_runs SET status = 'done', finished_at = NOW() - INTERVAL 1 DAY WHERE id = `+itoa(runs["recent"]),
	)
	pauses := 0
	got, err := st.PurgeLedger(ctx, now.Add(-90*24*time.Hour), 7, func(time.Duration) bool { pauses++; return true })
	if err != nil {
		t.Fatal(err)
	}
	// 50 deliveries in chunks of 7 is 8 statements; 3 batches one more.
	if got != (pushd.Purged{Runs: 1, Deliveries: 50, Batches: 3}) || pauses != 9 {
		t.Fatalf("purged %+v with %d pauses, want the old run's 50 deliveries and 3 batches in 9 statements", got, pauses)
	}
	for name, run := range runs {
		var deliveries, batches, sent int
		st.DB().QueryRow(`SELECT COUNT(*) FROM pushd_deliveries WHERE run_id = ?`, run).Scan(&deliveries)
		st.DB().QueryRow(`SELECT COUNT(*) FROM pushd_batches WHERE run_id = ?`, run).Scan(&batches)
		st.DB().QueryRow(`SELECT sent FROM pushd_runs WHERE id = ?`, run).Scan(&sent)
		wantRows := 50
		if name == "old" {
			wantRows = 0
		}
		if deliveries != wantRows || (batches == 0) != (wantRows == 0) || sent != 50 {
			t.Errorf("%s run: %d deliveries, %d batches, sent %d; want %d deliveries and the count of 50 kept", name, deliveries, batches, sent, wantRows)
		}
	}
	// A second pass finds nothing; a pause that says stop ends a pass.
	if got, err := st.PurgeLedger(ctx, now.Add(-90*24*time.Hour), 7, func(time.Duration) bool { return true }); err != nil || got.Runs != 0 {
		t.Fatalf("second pass = %+v, %v; want nothing to do", got, err)
	}
	if got, _ := st.PurgeLedger(ctx, now, 7, func(time.Duration) bool { return false }); got.Deliveries != 7 {
		t.Fatalf("a pass told to stop deleted %d rows, want one chunk of 7", got.Deliveries)
	}
}

// One instance at a time: a second connection (as another process would
// have) does not get the lock while the first holds it, and gets it once it
// is released; another database's pushd has a lock of its own.
func TestTryLock(t *testing.T) {
	t.Parallel()
	a := dbtest.Open(t)
	b := dbtest.Open(t) // another database: its lock is another lock
	var inner bool
	ran, err := a.TryLock(ctx, "job", func(ctx context.Context) error {
		ok, err := a.TryLock(ctx, "job", func(context.Context) error { return nil })
		if err != nil || ok {
			t.Errorf("second holder in the same database: ran %v, %v; want refused", ok, err)
		}
		inner, err = b.TryLock(ctx, "job", func(context.Context) error { return nil })
		return err
	})
	if err != nil || !ran || !inner {
		t.Fatalf("ran %v inner %v err %v: want both databases' locks taken", ran, inner, err)
	}
	if ran, err := a.TryLock(ctx, "job", func(context.Context) error { return nil }); !ran || err != nil {
		t.Fatalf("after release: ran %v, %v", ran, err)
	}
}

func itoa(n int64) string { return strconv.FormatInt(n, 10) }
