package store

// The frequency cap: a user of an app with frequency_cap = N/DURATION who
// was sent N pushes within the last DURATION is sent no other.
//
// pushd_sends holds one row per push counted towards a cap, written when
// the push's batch is claimed (a reservation) and deleted when the push
// ends other than sent. The check and the reservations of one app are
// serialised by a row lock in pushd_locks, held until the claim commits,
// so two runs of the app, on any instances, cannot both reserve a user's
// last allowed push. The claims of one run are serialised by the run row
// already; the app lock only orders claims of different runs, each a few
// milliseconds.

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/pushd/pushd"
)

// lockName takes the named row lock in pushd_locks until the transaction
// ends, creating the row the first time.
func lockName(ctx context.Context, tx *sql.Tx, name string) error {
	var got string
	err := tx.QueryRowContext(ctx, `SELECT name FROM pushd_locks WHERE name = ? FOR UPDATE`, name).Scan(&got)
	if errors.Is(err, sql.ErrNoRows) {
		if _, err := tx.ExecContext(ctx, `INSERT IGNORE INTO pushd_locks (name) VALUES (?)`, name); err != nil {
			return fmt.Errorf("create lock %s: %w", name, err)
		}
		err = tx.QueryRowContext(ctx, `SELECT name FROM pushd_locks WHERE name = ? FOR UPDATE`, name).Scan(&got)
	}
	if err != nil {
		return fmt.Errorf("lock %s: %w", name, err)
	}
	return nil
}

// applyCap takes the app's cap lock, leaves out (and returns) the
// recipients the cap forbids when the run checks it, and reserves a send
// for the others. recips are in id order within (after, last].
func applyCap(ctx context.Context, tx *sql.Tx, r pushd.Run, recips []pushd.Recipient, after, last int64) (kept []pushd.Recipient, capped []pushd.Recipient, err error) {
	if len(recips) == 0 || !r.Cap.Tracked() {
		return recips, nil, nil
	}
	if err := lockName(ctx, tx, "frequency_cap:"+r.App); err != nil {
		return nil, nil, err
	}
	kept = recips
	if r.Cap.Checked() {
		// A locking read: it sees the reservations other runs committed
		// while this transaction waited for the lock, which the snapshot of
		// its earlier reads would not.
		rows, err := tx.QueryContext(ctx, `SELECT user_id FROM pushd_sends
			WHERE user_id > ? AND user_id <= ? AND run_id <> ? AND sent_at > NOW(3) - INTERVAL ? SECOND
			GROUP BY user_id HAVING COUNT(*) >= ? LOCK IN SHARE MODE`, after, last, r.ID, int64(r.Cap.Window.Seconds()), r.Cap.Count)
		if err != nil {
			return nil, nil, fmt.Errorf("check frequency cap: %w", err)
		}
		full, err := scanIDs(rows)
		if err != nil {
			return nil, nil, fmt.Errorf("check frequency cap: %w", err)
		}
		if len(full) > 0 {
			set := make(map[int64]bool, len(full))
			for _, id := range full {
				set[id] = true
			}
			kept = make([]pushd.Recipient, 0, len(recips))
			for _, rc := range recips {
				if set[rc.UserID] {
					capped = append(capped, rc)
				} else {
					kept = append(kept, rc)
				}
			}
		}
	}
	// A taken-over batch's users keep the reservation of the first claim.
	for lo := 0; lo < len(kept); lo += rowsPerInsert {
		chunk := kept[lo:min(len(kept), lo+rowsPerInsert)]
		var q strings.Builder
		q.WriteString(`INSERT IGNORE INTO pushd_sends (user_id, run_id, sent_at) VALUES `)
		rid := strconv.FormatInt(r.ID, 10)
		for i, rc := range chunk {
			if i > 0 {
				q.WriteByte(',')
			}
			q.WriteString("(" + strconv.FormatInt(rc.UserID, 10) + "," + rid + ",NOW(3))")
		}
		if _, err := tx.ExecContext(ctx, q.String()); err != nil {
			return nil, nil, fmt.Errorf("reserve frequency cap: %w", err)
		}
	}
	return kept, capped, nil
}

// recordCapped writes the capped outcomes of a claim, and their counts.
func (s *Store) recordCapped(ctx context.Context, tx *sql.Tx, r pushd.Run, capped []pushd.Recipient, now time.Time) error {
	if len(capped) == 0 {
		return nil
	}
	reason := "frequency cap " + strconv.Itoa(r.Cap.Count) + "/" + formatWindow(r.Cap.Window)
	ds := make([]pushd.Delivery, len(capped))
	for i, rc := range capped {
		ds[i] = pushd.Delivery{UserID: rc.UserID, Outcome: pushd.Capped, Reason: reason}
	}
	if err := s.insertDeliveries(ctx, tx, r.ID, ds); err != nil {
		return err
	}
	n := len(capped)
	if _, err := tx.ExecContext(ctx, `UPDATE pushd_runs SET capped = capped + ? WHERE id = ?`, n, r.ID); err != nil {
		return err
	}
	_, err := tx.ExecContext(ctx, `UPDATE campaigns SET capped = capped + ?, updated_at = ? WHERE `+currentFor,
		n, now, r.CampaignID, r.ID)
	return err
}

// forgetSends drops the reservations of the users in ds not sent.
func forgetSends(ctx context.Context, tx *sql.Tx, runID int64, ds []pushd.Delivery) error {
	var ids []string
	for _, d := range ds {
		if d.Outcome != pushd.Sent {
			ids = append(ids, strconv.FormatInt(d.UserID, 10))
		}
	}
	for lo := 0; lo < len(ids); lo += rowsPerInsert {
		chunk := ids[lo:min(len(ids), lo+rowsPerInsert)]
		if _, err := tx.ExecContext(ctx, `DELETE FROM pushd_sends WHERE run_id = ? AND user_id IN (`+strings.Join(chunk, ",")+`)`, runID); err != nil {
			return fmt.Errorf("release frequency cap: %w", err)
		}
	}
	return nil
}

// maxCapWindow is the longest frequency_cap window config allows.
const maxCapWindow = 90 * 24 * time.Hour

// PurgeAudiences deletes the segment members of finished runs, which only
// running runs read, and the frequency-cap sends older than the longest
// window, chunk rows a statement, calling pause after each.
func (s *Store) PurgeAudiences(ctx context.Context, chunk int, pause func(took time.Duration) bool) (int64, error) {
	runs, err := s.db.QueryContext(ctx, `SELECT r.id FROM pushd_runs r WHERE r.members = 1 AND r.finished_at IS NOT NULL
		AND EXISTS (SELECT 1 FROM pushd_run_members m WHERE m.run_id = r.id) ORDER BY r.id`)
	if err != nil {
		return 0, fmt.Errorf("list finished segment runs: %w", markUnavailable(err))
	}
	ids, err := scanIDs(runs)
	if err != nil {
		return 0, markUnavailable(err)
	}
	var total int64
	del := func(what, q string, args ...any) error {
		for {
			start := time.Now()
			res, err := s.db.ExecContext(ctx, q, append(args, chunk)...)
			if err != nil {
				return fmt.Errorf("purge %s: %w", what, markUnavailable(err))
			}
			n, _ := res.RowsAffected()
			total += n
			if !pause(time.Since(start)) {
				return ctx.Err()
			}
			if n < int64(chunk) {
				return nil
			}
		}
	}
	for _, id := range ids {
		if err := del("segment members", `DELETE FROM pushd_run_members WHERE run_id = ? ORDER BY user_id LIMIT ?`, id); err != nil {
			return total, err
		}
	}
	err = del("frequency-cap sends", `DELETE FROM pushd_sends WHERE sent_at < NOW(3) - INTERVAL ? SECOND LIMIT ?`, int64(maxCapWindow.Seconds()))
	return total, err
}

// formatWindow writes a cap window as config.ini does: 24h, 7d, 90m.
func formatWindow(d time.Duration) string {
	switch {
	case d%(24*time.Hour) == 0 && d > 24*time.Hour:
		return strconv.FormatInt(int64(d/(24*time.Hour)), 10) + "d"
	case d%time.Hour == 0:
		return strconv.FormatInt(int64(d/time.Hour), 10) + "h"
	case d%time.Minute == 0:
		return strconv.FormatInt(int64(d/time.Minute), 10) + "m"
	}
	return d.String()
}
