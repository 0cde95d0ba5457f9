package store_test

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pushd/pushd"
	"github.com/pushd/pushd/internal/dbtest"
	"github.com/pushd/pushd/scheduler"
	"github.com/pushd/pushd/store"
)

var ctx = context.Background()

func seedUsers(t *testing.T, st *store.Store, app string, n int) {
	t.Helper()
	for lo := 0; lo < n; lo += 1000 {
		var q strings.Builder
		q.WriteString("INSERT INTO users (app, push_token, registered_at) VALUES ")
		for i := lo; i < min(n, lo+1000); i++ {
			if i > lo {
				q.WriteByte(',')
			}
			fmt.Fprintf(&q, "('%s', '%064x', '2026-01-01')", app, i)
		}
		if _, err := st.DB().Exec(q.String()); err != nil {
			t.Fatal(err)
		}
	}
}

// execAll runs each statement, failing the test on the first error.
func execAll(t *testing.T, db *sql.DB, stmts ...string) {
	t.Helper()
	for _, q := range stmts {
		if _, err := db.Exec(q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
}

func insertCampaign(t *testing.T, st *store.Store, app string, at time.Time) int64 {
	t.Helper()
	res, err := st.DB().Exec(`INSERT INTO campaigns (app, title, body, scheduled_at) VALUES (?, 't', 'b', ?)`, app, at)
	if err != nil {
		t.Fatal(err)
	}
	id, _ := res.LastInsertId()
	return id
}

func startRun(t *testing.T, st *store.Store, id int64, now time.Time, batch int) int64 {
	t.Helper()
	_, runIDs, err := st.Decide(ctx, id, now, func(c *pushd.Campaign) pushd.Decision {
		return pushd.Decision{Action: pushd.Start, Runs: []pushd.NewRun{{App: c.App, ScheduledFor: c.ScheduledAt,
			Deadline: now.Add(time.Hour), BatchSize: batch, Notification: []byte(`{}`)}}}
	})
	if err != nil {
		t.Fatal(err)
	}
	return runIDs[0]
}

func TestMigrateIsIdempotentAndChecked(t *testing.T) {
	t.Parallel()
	o := dbtest.Options(t)
	st, err := store.Open(ctx, o)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	if err := st.CheckSchema(ctx); !errors.Is(err, store.ErrSchemaMissing) {
		t.Fatalf("CheckSchema on an empty database = %v, want ErrSchemaMissing", err)
	}
	for i, want := range []int{0, pushd.SchemaVersion} {
		if from, err := st.Migrate(ctx); err != nil || from != want {
			t.Fatalf("migrate #%d = %d, %v; want from version %d", i+1, from, err, want)
		}
	}
	if _, err := st.DB().Exec(`DELETE FROM pushd_schema WHERE version > 1`); err != nil {
		t.Fatal(err)
	}
	if err := st.CheckSchema(ctx); !errors.Is(err, store.ErrSchemaOutdated) {
		t.Fatalf("CheckSchema on a version 1 database = %v, want ErrSchemaOutdated", err)
	}
	if from, err := st.Migrate(ctx); err != nil || from != 1 {
		t.Fatalf("migrate of a version 1 database = %d, %v; want from 1", from, err)
	}
}

// A database that does not exist is named as such, so check and migrate
// can say how to create it.
func TestOpenUnknownDatabase(t *testing.T) {
	t.Parallel()
	o := dbtest.Options(t)
	o.Database = "pushd_no_such_database"
	if _, err := store.Open(ctx, o); !errors.Is(err, store.ErrUnknownDatabase) {
		t.Fatalf("Open of a missing database = %v, want ErrUnknownDatabase", err)
	}
}

// A company's own users table, renamed columns and all, works through a view.
func TestUsersView(t *testing.T) {
	t.Parallel()
	st := dbtest.Open(t)
	db := st.DB()
	execAll(t, db,
		`DROP TABLE users`,
		`CREATE TABLE accounts (account_id BIGINT PRIMARY KEY, product VARCHAR(64), apns_token VARCHAR(200), tz VARCHAR(64), token_updated DATETIME(3))`,
		`INSERT INTO accounts VALUES (7, 'A', 'aa', NULL, '2026-01-01'), (9, 'A', 'bb', 'Europe/Paris', '2026-01-01'), (8, 'B', 'cc', NULL, '2026-01-01')`,
		`CREATE VIEW users AS SELECT account_id AS id, product AS app, apns_token AS push_token, tz AS timezone, token_updated AS registered_at FROM accounts`,
	)
	if err := st.CheckSchema(ctx); err != nil {
		t.Fatal(err)
	}
	now := time.Now().UTC().Truncate(time.Second)
	run := startRun(t, st, insertCampaign(t, st, "A", now), now, 10)
	b, err := st.ClaimBatch(ctx, run, "me", nil, time.Minute, now)
	if err != nil {
		t.Fatal(err)
	}
	if got := ids(b); fmt.Sprint(got) != "[7 9]" {
		t.Fatalf("audience = %v, want [7 9]", got)
	}
}

func ids(b *pushd.Batch) []int64 {
	var out []int64
	for _, r := range b.Recipients {
		out = append(out, r.UserID)
	}
	return out
}

func TestClaimRecordFenceAndTakeover(t *testing.T) {
	t.Parallel()
	st := dbtest.Open(t)
	seedUsers(t, st, "A", 2500)
	seedUsers(t, st, "B", 10)
	now := time.Now().UTC().Truncate(time.Second)
	cid := insertCampaign(t, st, "A", now)
	run := startRun(t, st, cid, now, 1000)

	b1, err := st.ClaimBatch(ctx, run, "one", nil, time.Minute, now)
	if err != nil {
		t.Fatal(err)
	}
	if len(b1.Recipients) != 1000 || b1.Epoch != 1 {
		t.Fatalf("first batch: %d recipients epoch %d", len(b1.Recipients), b1.Epoch)
	}
	half := make([]pushd.Delivery, 500)
	for i := range half {
		half[i] = pushd.Delivery{UserID: b1.Recipients[i].UserID, Outcome: pushd.Sent, Attempts: 1}
	}
	if err := st.Record(ctx, pushd.Flush{RunID: run, CampaignID: cid, BatchID: b1.ID, Epoch: b1.Epoch + 1,
		Deliveries: half, Lease: time.Minute, Now: now}); !errors.Is(err, pushd.ErrLeaseLost) {
		t.Fatalf("record with a wrong epoch = %v, want ErrLeaseLost", err)
	}
	if err := st.Record(ctx, pushd.Flush{RunID: run, CampaignID: cid, BatchID: b1.ID, Epoch: b1.Epoch,
		Deliveries: half, Lease: time.Minute, Now: now}); err != nil {
		t.Fatal(err)
	}
	// "one" gives the batch back (as on shutdown); "two" gets only the
	// 500 users without an outcome, and "one" can no longer write.
	if err := st.ReleaseBatch(ctx, b1.ID, b1.Epoch); err != nil {
		t.Fatal(err)
	}
	b2, err := st.ClaimBatch(ctx, run, "two", nil, time.Minute, now)
	if err != nil {
		t.Fatal(err)
	}
	if b2.ID != b1.ID || !b2.TakenOver || b2.Epoch != 2 || len(b2.Recipients) != 500 || b2.Recipients[0].UserID != b1.Recipients[500].UserID {
		t.Fatalf("takeover: id %d (want %d) takenOver %v epoch %d recipients %d", b2.ID, b1.ID, b2.TakenOver, b2.Epoch, len(b2.Recipients))
	}
	late := []pushd.Delivery{{UserID: b1.Recipients[700].UserID, Outcome: pushd.Sent}}
	if err := st.Record(ctx, pushd.Flush{RunID: run, CampaignID: cid, BatchID: b1.ID, Epoch: b1.Epoch,
		Deliveries: late, Lease: time.Minute, Now: now}); !errors.Is(err, pushd.ErrLeaseLost) {
		t.Fatalf("stale owner's record = %v, want ErrLeaseLost", err)
	}
	var sent int
	st.DB().QueryRow(`SELECT sent FROM campaigns WHERE id = ?`, cid).Scan(&sent)
	if sent != 500 {
		t.Fatalf("campaign sent = %d, want 500 (a fenced write must leave no trace)", sent)
	}

	// A batch this process still holds is never taken over, even with the
	// lease run out: its worker may hold answers it could not record. One
	// it does not hold (the claim committed but its answer was lost) is.
	own, err := st.ClaimBatch(ctx, run, "solo", nil, time.Millisecond, now)
	if err != nil {
		t.Fatal(err)
	}
	time.Sleep(20 * time.Millisecond)
	again, err := st.ClaimBatch(ctx, run, "solo", []int64{own.ID}, time.Minute, now)
	if err != nil {
		t.Fatal(err)
	}
	if again.ID == own.ID {
		t.Fatal("an instance took over a batch it still holds")
	}
	st.ReleaseBatch(ctx, again.ID, again.Epoch)
	st.ReleaseBatch(ctx, own.ID, own.Epoch)
	orphan, err := st.ClaimBatch(ctx, run, "solo", nil, time.Millisecond, now)
	if err != nil {
		t.Fatal(err)
	}
	time.Sleep(20 * time.Millisecond)
	found := false
	for i := 0; i < 3 && !found; i++ {
		b, err := st.ClaimBatch(ctx, run, "solo", nil, time.Minute, now)
		if err != nil {
			t.Fatal(err)
		}
		found = b.ID == orphan.ID
		st.ReleaseBatch(ctx, b.ID, b.Epoch)
	}
	if !found {
		t.Fatal("an instance never took back its own batch that it no longer holds")
	}

	// A lease that runs out is taken over by another instance.
	b3, err := st.ClaimBatch(ctx, run, "one", nil, 50*time.Millisecond, now)
	if err != nil {
		t.Fatal(err)
	}
	if len(b3.Recipients) != 1000 {
		t.Fatalf("batch with no outcomes yet has %d recipients, want 1000", len(b3.Recipients))
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		b4, err := st.ClaimBatch(ctx, run, "two", nil, time.Minute, now)
		if err != nil {
			t.Fatal(err)
		}
		if b4.ID == b3.ID {
			if b4.Epoch != b3.Epoch+1 {
				t.Fatalf("expired-lease takeover epoch %d, want %d", b4.Epoch, b3.Epoch+1)
			}
			break
		}
		// A fresh batch was claimed first (the lease had not run out yet);
		// give it back so the loop converges on b3.
		st.ReleaseBatch(ctx, b4.ID, b4.Epoch)
		if time.Now().After(deadline) {
			t.Fatal("expired lease was never taken over")
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// Concurrent claimers, each on its own connection, never share a user.
func TestConcurrentClaimsPartitionTheAudience(t *testing.T) {
	t.Parallel()
	st := dbtest.Open(t)
	const users = 5000
	seedUsers(t, st, "A", users)
	now := time.Now().UTC().Truncate(time.Second)
	cid := insertCampaign(t, st, "A", now)
	run := startRun(t, st, cid, now, 100)

	var mu sync.Mutex
	seen := map[int64]string{}
	var wg sync.WaitGroup
	errs := make(chan error, 4)
	for w := 0; w < 4; w++ {
		owner := fmt.Sprintf("w%d", w)
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				b, err := st.ClaimBatch(ctx, run, owner, nil, time.Minute, now)
				if errors.Is(err, pushd.ErrNoWork) || errors.Is(err, pushd.ErrDrained) {
					return
				}
				if err != nil {
					errs <- err
					return
				}
				ds := make([]pushd.Delivery, len(b.Recipients))
				mu.Lock()
				for i, r := range b.Recipients {
					if prev, dup := seen[r.UserID]; dup {
						errs <- fmt.Errorf("user %d claimed by %s and %s", r.UserID, prev, owner)
					}
					seen[r.UserID] = owner
					ds[i] = pushd.Delivery{UserID: r.UserID, Outcome: pushd.Sent, Attempts: 1}
				}
				mu.Unlock()
				if err := st.Record(ctx, pushd.Flush{RunID: run, CampaignID: cid, BatchID: b.ID, Epoch: b.Epoch,
					Deliveries: ds, Done: true, Lease: time.Minute, Now: now}); err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if len(seen) != users {
		t.Fatalf("claimed %d distinct users, want %d", len(seen), users)
	}
	owners := map[string]bool{}
	for _, o := range seen {
		owners[o] = true
	}
	if len(owners) < 2 {
		t.Errorf("one claimer took everything (%v); claims did not interleave", owners)
	}
	if _, err := st.ClaimBatch(ctx, run, "w0", nil, time.Minute, now); !errors.Is(err, pushd.ErrDrained) {
		t.Fatalf("claim after the end = %v, want ErrDrained", err)
	}
	if ok, err := st.FinishRun(ctx, run, pushd.Done, "", now); err != nil || !ok {
		t.Fatalf("FinishRun = %v, %v", ok, err)
	}
	var status string
	var sent int
	st.DB().QueryRow(`SELECT status, sent FROM campaigns WHERE id = ?`, cid).Scan(&status, &sent)
	if status != "done" || sent != users {
		t.Fatalf("campaign %s with sent %d, want done with %d", status, sent, users)
	}
}

// Invalid tokens are skipped until the token changes or is registered again.
func TestInvalidTokensAreSkippedUntilReRegistered(t *testing.T) {
	t.Parallel()
	st := dbtest.Open(t)
	seedUsers(t, st, "A", 4)
	db := st.DB()
	// User 1: dead since after its registration -> skipped. User 2: same,
	// but registered again later -> used. User 3: dead, but the user has a
	// new token now -> used.
	execAll(t, db,
		`INSERT INTO pushd_invalid_tokens (user_id, app, push_token, invalid_since, reason) SELECT id, app, push_token, '2026-02-01', 'Unregistered' FROM users WHERE id IN (1, 2, 3)`,
		`UPDATE users SET registered_at = '2026-03-01' WHERE id = 2`,
		`UPDATE users SET push_token = 'ffff', registered_at = '2026-01-01' WHERE id = 3`,
	)
	now := time.Now().UTC().Truncate(time.Second)
	run := startRun(t, st, insertCampaign(t, st, "A", now), now, 10)
	b, err := st.ClaimBatch(ctx, run, "me", nil, time.Minute, now)
	if err != nil {
		t.Fatal(err)
	}
	if got := fmt.Sprint(ids(b)); got != "[2 3 4]" {
		t.Fatalf("audience = %s, want [2 3 4]", got)
	}
}

// A stretch of dead tokens longer than a batch is stepped over, not taken
// for the end of the audience; a dead token matches whatever its case, as
// SQL's ascii_general_ci compares them. A taken-over batch skips the same
// users.
func TestDeadStretchDoesNotEndTheAudience(t *testing.T) {
	t.Parallel()
	st := dbtest.Open(t)
	seedUsers(t, st, "A", 30)
	db := st.DB()
	execAll(t, db,
		`INSERT INTO pushd_invalid_tokens (user_id, app, push_token, invalid_since, reason) SELECT id, app, push_token, '2026-02-01', 'Unregistered' FROM users WHERE id <= 25`,
		`INSERT INTO pushd_invalid_tokens (user_id, app, push_token, invalid_since, reason) SELECT id, app, UPPER(CONCAT(push_token, 'ab')), '2026-02-01', 'Unregistered' FROM users WHERE id = 27`,
		`UPDATE users SET push_token = CONCAT(push_token, 'AB'), registered_at = '2026-01-01' WHERE id = 27`, // keep registered_at before invalid_since
	)
	now := time.Now().UTC().Truncate(time.Second)
	run := startRun(t, st, insertCampaign(t, st, "A", now), now, 10)
	b, err := st.ClaimBatch(ctx, run, "me", nil, time.Minute, now)
	if err != nil {
		t.Fatal(err)
	}
	if got := fmt.Sprint(ids(b)); got != "[26 28 29 30]" || b.After != 20 || b.Last != 30 {
		t.Fatalf("batch (%d, %d] = %s, want (20, 30] = [26 28 29 30]", b.After, b.Last, got)
	}
	if _, err := st.ClaimBatch(ctx, run, "me", []int64{b.ID}, time.Minute, now); !errors.Is(err, pushd.ErrNoWork) {
		t.Fatalf("second claim = %v, want ErrNoWork", err)
	}
	if err := st.ReleaseBatch(ctx, b.ID, b.Epoch); err != nil {
		t.Fatal(err)
	}
	b2, err := st.ClaimBatch(ctx, run, "other", nil, time.Minute, now)
	if err != nil {
		t.Fatal(err)
	}
	if got := fmt.Sprint(ids(b2)); got != "[26 28 29 30]" || !b2.TakenOver {
		t.Fatalf("taken over: %s (takenOver %v), want [26 28 29 30]", got, b2.TakenOver)
	}
}

func TestExpireRemainingRecordsEveryUnreachedUser(t *testing.T) {
	t.Parallel()
	st := dbtest.Open(t)
	seedUsers(t, st, "A", 25000)
	now := time.Now().UTC().Truncate(time.Second)
	cid := insertCampaign(t, st, "A", now)
	run := startRun(t, st, cid, now, 1000)
	b, err := st.ClaimBatch(ctx, run, "me", nil, time.Minute, now)
	if err != nil {
		t.Fatal(err)
	}
	ds := []pushd.Delivery{{UserID: b.Recipients[0].UserID, Outcome: pushd.Sent, Attempts: 1}}
	if err := st.Record(ctx, pushd.Flush{RunID: run, CampaignID: cid, BatchID: b.ID, Epoch: b.Epoch, Deliveries: ds, Lease: time.Minute, Now: now}); err != nil {
		t.Fatal(err)
	}
	// Another instance with a live lease blocks the sweep.
	other, err := st.ClaimBatch(ctx, run, "other", nil, time.Minute, now)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := st.ExpireRemaining(ctx, run, "me", time.Minute, now); !errors.Is(err, pushd.ErrBusy) {
		t.Fatalf("sweep with another live lease = %v, want ErrBusy", err)
	}
	st.ReleaseBatch(ctx, other.ID, other.Epoch)
	n, err := st.ExpireRemaining(ctx, run, "me", time.Minute, now)
	if err != nil {
		t.Fatal(err)
	}
	if n != 24999 {
		t.Fatalf("expired %d users, want 24999", n)
	}
	if ok, err := st.FinishRun(ctx, run, pushd.Expired, "deadline", now); err != nil || !ok {
		t.Fatalf("FinishRun = %v, %v", ok, err)
	}
	var status string
	var sent, expired, ledger int
	st.DB().QueryRow(`SELECT status, sent, expired FROM campaigns WHERE id = ?`, cid).Scan(&status, &sent, &expired)
	st.DB().QueryRow(`SELECT COUNT(*) FROM pushd_deliveries WHERE run_id = ?`, run).Scan(&ledger)
	if status != "expired" || sent != 1 || expired != 24999 || ledger != 25000 {
		t.Fatalf("campaign %s sent %d expired %d ledger %d; want expired/1/24999/25000", status, sent, expired, ledger)
	}
	// The stale owner of the first batch cannot write after the sweep.
	late := []pushd.Delivery{{UserID: b.Recipients[1].UserID, Outcome: pushd.Sent}}
	if err := st.Record(ctx, pushd.Flush{RunID: run, CampaignID: cid, BatchID: b.ID, Epoch: b.Epoch, Deliveries: late, Lease: time.Minute, Now: now}); !errors.Is(err, pushd.ErrLeaseLost) {
		t.Fatalf("record after sweep = %v, want ErrLeaseLost", err)
	}
}

// A claim reports a paused or cancelled campaign and writes nothing; StopRun
// then stops the run with the caller's reason, once.
func TestPauseAndCancelAreNoticedAtClaim(t *testing.T) {
	t.Parallel()
	st := dbtest.Open(t)
	seedUsers(t, st, "A", 30)
	now := time.Now().UTC().Truncate(time.Second)
	for _, status := range []pushd.Status{pushd.Paused, pushd.Cancelled} {
		cid := insertCampaign(t, st, "A", now)
		run := startRun(t, st, cid, now, 10)
		if _, err := st.DB().Exec(`UPDATE campaigns SET status = ? WHERE id = ?`, status, cid); err != nil {
			t.Fatal(err)
		}
		_, err := st.ClaimBatch(ctx, run, "me", nil, time.Minute, now)
		var stopped *pushd.RunStopped
		if !errors.As(err, &stopped) || stopped.Status != status || !stopped.ByStaff {
			t.Fatalf("claim on a %s campaign = %v", status, err)
		}
		var got, reason string
		st.DB().QueryRow(`SELECT status, status_reason FROM pushd_runs WHERE id = ?`, run).Scan(&got, &reason)
		if got != string(pushd.Running) {
			t.Fatalf("run status after the claim %s, want running (the claim decides nothing)", got)
		}
		for range 2 {
			if err := st.StopRun(ctx, run, status, "stopped for the test", now); err != nil {
				t.Fatal(err)
			}
		}
		st.DB().QueryRow(`SELECT status, status_reason FROM pushd_runs WHERE id = ?`, run).Scan(&got, &reason)
		if got != string(status) || reason != "stopped for the test" {
			t.Fatalf("run after StopRun: %s %q, want %s with the given reason", got, reason, status)
		}
		var next sql.NullTime
		st.DB().QueryRow(`SELECT next_run_at FROM campaigns WHERE id = ?`, cid).Scan(&next)
		if next.Valid != (status == pushd.Paused) {
			t.Fatalf("%s: campaign next_run_at valid = %v", status, next.Valid)
		}
	}
}

// The audience count leaves out dead tokens, except those this run found
// dead, and users who arrived after the start.
func TestCountAudience(t *testing.T) {
	t.Parallel()
	st := dbtest.Open(t)
	seedUsers(t, st, "A", 10)
	seedUsers(t, st, "B", 3)
	now := time.Now().UTC().Truncate(time.Second)
	runID := startRun(t, st, insertCampaign(t, st, "A", now), now, 5)
	seedUsers(t, st, "A", 2) // after the start: not in the audience
	db := st.DB()
	execAll(t, db,
		// 1: dead. 2: dead, registered again since. 3: found dead by this
		// run. 4: found dead by another run. 11: another app's.
		`INSERT INTO pushd_invalid_tokens (user_id, app, push_token, invalid_since, reason, run_id) SELECT id, app, push_token, '2026-02-01', 'Unregistered',
			CASE id WHEN 3 THEN `+fmt.Sprint(runID)+` WHEN 4 THEN `+fmt.Sprint(runID+1000)+` END FROM users WHERE id IN (1, 2, 3, 4, 11)`,
		`UPDATE users SET registered_at = '2026-03-01' WHERE id = 2`,
	)
	runs, err := st.ActiveRuns(ctx)
	if err != nil || len(runs) != 1 {
		t.Fatalf("active runs %v, %v", runs, err)
	}
	n, err := st.CountAudience(ctx, runs[0])
	if err != nil {
		t.Fatal(err)
	}
	if n != 8 {
		t.Fatalf("CountAudience = %d, want 8 (10 users, less 1 and 4)", n)
	}
}

// The store is what the scheduler and its runners declare they need. The
// check lives here so that neither of them imports store.
var _ scheduler.Store = (*store.Store)(nil)
