package store_test

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/pushd/pushd"
	"github.com/pushd/pushd/internal/dbtest"
	"github.com/pushd/pushd/store"
)

type ledgerRow struct {
	outcome, reason string
	attempts        int
}

func readLedger(t *testing.T, st *store.Store, run int64) map[int64]ledgerRow {
	t.Helper()
	rows, err := st.DB().Query(`SELECT user_id, outcome, reason, attempts FROM pushd_deliveries WHERE run_id = ?`, run)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	out := map[int64]ledgerRow{}
	for rows.Next() {
		var id int64
		var r ledgerRow
		if err := rows.Scan(&id, &r.outcome, &r.reason, &r.attempts); err != nil {
			t.Fatal(err)
		}
		out[id] = r
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

// firstBatch seeds 10 users and claims them as the first batch of a new run.
func firstBatch(t *testing.T, st *store.Store) (cid, run int64, b *pushd.Batch, now time.Time) {
	t.Helper()
	seedUsers(t, st, "A", 10)
	now = time.Now().UTC().Truncate(time.Second)
	cid = insertCampaign(t, st, "A", now)
	run = startRun(t, st, cid, now, 10)
	b, err := st.ClaimBatch(ctx, run, "one", nil, time.Minute, now)
	if err != nil {
		t.Fatal(err)
	}
	return cid, run, b, now
}

// recordOdd records the first six users of a fresh batch with reasons that
// need escaping in LOAD DATA's format, and checks they read back verbatim.
func recordOdd(t *testing.T, st *store.Store) {
	t.Helper()
	cid, run, b, now := firstBatch(t, st)
	long := strings.Repeat("é", 70) // clipped to 63 characters and "…"
	ds := []pushd.Delivery{
		{UserID: b.Recipients[0].UserID, Outcome: pushd.Sent, Attempts: 1},
		{UserID: b.Recipients[1].UserID, Outcome: pushd.FailedSend, Reason: "tab\there, newline\nthere, cr\rand \\N", Attempts: 3},
		{UserID: b.Recipients[2].UserID, Outcome: pushd.FailedSend, Reason: `back\slash 'quote' "double" \t`, Attempts: 300},
		{UserID: b.Recipients[3].UserID, Outcome: pushd.InvalidToken, Reason: "nul\x00byte", Attempts: -1},
		{UserID: b.Recipients[4].UserID, Outcome: pushd.FailedSend, Reason: long, Attempts: 2},
		{UserID: b.Recipients[5].UserID, Outcome: pushd.ExpiredSend, Reason: "\\", Attempts: 0},
	}
	if err := st.Record(ctx, pushd.Flush{RunID: run, CampaignID: cid, BatchID: b.ID, Epoch: b.Epoch,
		Deliveries: ds, Lease: time.Minute, Now: now}); err != nil {
		t.Fatal(err)
	}
	want := map[int64]ledgerRow{
		ds[0].UserID: {"sent", "", 1},
		ds[1].UserID: {"failed", ds[1].Reason, 3},
		ds[2].UserID: {"failed", ds[2].Reason, 255},
		ds[3].UserID: {"invalid", ds[3].Reason, 0},
		ds[4].UserID: {"failed", strings.Repeat("é", 63) + "…", 2}, // 64 characters, as VARCHAR(64) counts them
		ds[5].UserID: {"expired", "\\", 0},
	}
	got := readLedger(t, st, run)
	if len(got) != len(want) {
		t.Fatalf("ledger has %d rows, want %d: %v", len(got), len(want), got)
	}
	for id, w := range want {
		if got[id] != w {
			t.Errorf("user %d: ledger row %+v, want %+v", id, got[id], w)
		}
	}
}

func TestLedgerKeepsReasonsVerbatim(t *testing.T) {
	t.Parallel()
	st := dbtest.Open(t)
	if got := st.LedgerWrites(); got != "LOAD DATA LOCAL" {
		t.Fatalf("LedgerWrites = %q on a server with local_infile ON", got)
	}
	recordOdd(t, st)
}

// LOAD DATA LOCAL skips duplicate keys instead of failing. A flush that
// repeats a recorded user must still fail whole, as an INSERT does, or the
// counts would include the skipped rows.
func TestRecordRefusesAUserRecordedTwice(t *testing.T) {
	t.Parallel()
	st := dbtest.Open(t)
	cid, run, b, now := firstBatch(t, st)
	first := []pushd.Delivery{{UserID: b.Recipients[0].UserID, Outcome: pushd.Sent, Attempts: 1}}
	if err := st.Record(ctx, pushd.Flush{RunID: run, CampaignID: cid, BatchID: b.ID, Epoch: b.Epoch,
		Deliveries: first, Lease: time.Minute, Now: now}); err != nil {
		t.Fatal(err)
	}
	again := []pushd.Delivery{
		{UserID: b.Recipients[1].UserID, Outcome: pushd.Sent, Attempts: 1},
		{UserID: b.Recipients[0].UserID, Outcome: pushd.Sent, Attempts: 1},
	}
	if err := st.Record(ctx, pushd.Flush{RunID: run, CampaignID: cid, BatchID: b.ID, Epoch: b.Epoch,
		Deliveries: again, Lease: time.Minute, Now: now}); err == nil {
		t.Fatal("recording a user twice succeeded")
	}
	var sent, rows int
	st.DB().QueryRow(`SELECT sent FROM campaigns WHERE id = ?`, cid).Scan(&sent)
	st.DB().QueryRow(`SELECT COUNT(*) FROM pushd_deliveries WHERE run_id = ?`, run).Scan(&rows)
	if sent != 1 || rows != 1 {
		t.Fatalf("after the refused flush: campaign sent = %d, ledger rows = %d; want 1 and 1", sent, rows)
	}
}

// A server with local_infile OFF gets INSERTs: found out at Open, or on the
// first refusal when it was turned off later. The server runs with sql_mode
// NO_BACKSLASH_ESCAPES, under which '\t' in the LOAD statement would be
// refused, so the LOAD is checked there first.
func TestLedgerFallsBackToInsert(t *testing.T) {
	t.Parallel()
	if testing.Short() {
		t.Skip("starts a private mariadbd")
	}
	p := dbtest.StartPrivate(t, "--sql-mode=NO_BACKSLASH_ESCAPES,STRICT_TRANS_TABLES")
	o := p.Options()
	st, err := store.Open(ctx, o)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	if _, err := st.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	recordOdd(t, st)
	if got := st.LedgerWrites(); got != "LOAD DATA LOCAL" {
		t.Fatalf("LedgerWrites = %q before local_infile is turned off", got)
	}
	if _, err := st.DB().Exec(`SET GLOBAL local_infile = 0`); err != nil {
		t.Fatal(err)
	}
	recordOdd(t, st)
	if got := st.LedgerWrites(); got != "INSERT" {
		t.Fatalf("LedgerWrites = %q after a refusal", got)
	}

	st2, err := store.Open(ctx, o)
	if err != nil {
		t.Fatal(err)
	}
	defer st2.Close()
	if got := st2.LedgerWrites(); got != "INSERT" {
		t.Fatalf("LedgerWrites = %q when opened on a server with local_infile OFF", got)
	}
}

// A flush whose COMMIT went out as the database went away may have
// committed. Tried again with Recheck, it records only the users still
// without an outcome and counts nothing twice; a final flush found already
// done at our epoch is a success, not a lost lease.
func TestRecordRecheckAfterAnUnknownCommit(t *testing.T) {
	t.Parallel()
	st := dbtest.Open(t)
	cid, run, b, now := firstBatch(t, st)
	d := func(lo, hi int) []pushd.Delivery {
		var out []pushd.Delivery
		for _, rc := range b.Recipients[lo:hi] {
			out = append(out, pushd.Delivery{UserID: rc.UserID, Outcome: pushd.Sent, Attempts: 1})
		}
		return out
	}
	flush := func(ds []pushd.Delivery, done, recheck bool) error {
		return st.Record(ctx, pushd.Flush{RunID: run, CampaignID: cid, BatchID: b.ID, Epoch: b.Epoch,
			Deliveries: ds, Done: done, Lease: time.Minute, Now: now, Recheck: recheck})
	}
	sent := func() (campaign, runRow, ledger int) {
		st.DB().QueryRow(`SELECT sent FROM campaigns WHERE id = ?`, cid).Scan(&campaign)
		st.DB().QueryRow(`SELECT sent FROM pushd_runs WHERE id = ?`, run).Scan(&runRow)
		st.DB().QueryRow(`SELECT COUNT(*) FROM pushd_deliveries WHERE run_id = ?`, run).Scan(&ledger)
		return
	}
	if err := flush(d(0, 2), false, false); err != nil { // committed, "unknown" to the caller
		t.Fatal(err)
	}
	if err := flush(d(0, 3), false, true); err != nil {
		t.Fatalf("recheck of a committed flush plus one more user: %v", err)
	}
	if c, r, l := sent(); c != 3 || r != 3 || l != 3 {
		t.Fatalf("after the recheck: campaign sent %d, run sent %d, ledger %d; want 3, 3, 3", c, r, l)
	}
	if err := flush(d(3, 10), true, false); err != nil { // the final flush commits, "unknown" again
		t.Fatal(err)
	}
	if err := flush(d(3, 10), true, false); !errors.Is(err, pushd.ErrLeaseLost) {
		t.Fatalf("a done batch flushed again without recheck = %v, want ErrLeaseLost", err)
	}
	if err := flush(d(3, 10), true, true); err != nil {
		t.Fatalf("recheck of a committed final flush = %v, want success", err)
	}
	if c, r, l := sent(); c != 10 || r != 10 || l != 10 {
		t.Fatalf("at the end: campaign sent %d, run sent %d, ledger %d; want 10, 10, 10", c, r, l)
	}
}

// A flush to a campaign that staff paused is written, and says so with a
// *pushd.RunStopped, so that the runner stops sending at once.
func TestRecordReportsAStaffStop(t *testing.T) {
	t.Parallel()
	st := dbtest.Open(t)
	cid, run, b, now := firstBatch(t, st)
	flush := func(i int) error {
		return st.Record(ctx, pushd.Flush{RunID: run, CampaignID: cid, BatchID: b.ID, Epoch: b.Epoch,
			Deliveries: []pushd.Delivery{{UserID: b.Recipients[i].UserID, Outcome: pushd.Sent, Attempts: 1}}, Lease: time.Minute, Now: now})
	}
	if err := flush(0); err != nil {
		t.Fatal(err)
	}
	if _, err := st.DB().Exec(`UPDATE campaigns SET status = 'paused' WHERE id = ?`, cid); err != nil {
		t.Fatal(err)
	}
	var stopped *pushd.RunStopped
	if err := flush(1); !errors.As(err, &stopped) || stopped.Status != pushd.Paused || !stopped.ByStaff {
		t.Fatalf("flush after the pause: %v, want a RunStopped by staff, paused", err)
	}
	var sent, rows int
	st.DB().QueryRow(`SELECT sent FROM campaigns WHERE id = ?`, cid).Scan(&sent)
	st.DB().QueryRow(`SELECT COUNT(*) FROM pushd_deliveries WHERE run_id = ?`, run).Scan(&rows)
	if sent != 2 || rows != 2 {
		t.Fatalf("after the flush that saw the pause: campaign sent = %d, ledger rows = %d; want 2 and 2", sent, rows)
	}
}
