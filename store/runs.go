package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"time"

	pushd "github.com/pushd/pushd"
)

const validToken = `(i.user_id IS NULL OR i.push_token <> u.push_token OR u.registered_at > i.invalid_since)`

// sameApp selects one app's users for an id range. It is written as a
// range, not "u.app = ?", on purpose: given an equality on app, MariaDB
// reads a large app's audience with "ref" access from its first index
// entry and filters the ids, so every batch re-read everything before the
// cursor (349 ms per batch at 750k of 1M users; O(N^2) per campaign). As a
// range it reads only the id window (1 ms), and it needs no index hint,
// which a users view could not take.
const sameApp = `u.app >= ? AND u.app <= ?`

// ActiveRuns lists the runs in status running.
func (s *Store) ActiveRuns(ctx context.Context) ([]pushd.Run, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT id, campaign_id, occurrence, app, status, notification,
		scheduled_for, deadline, batch_size, max_user_id FROM pushd_runs WHERE status = 'running' ORDER BY id`)
	if err != nil {
		return nil, fmt.Errorf("list running runs: %w", err)
	}
	defer rows.Close()
	var out []pushd.Run
	for rows.Next() {
		var r pushd.Run
		if err := rows.Scan(&r.ID, &r.CampaignID, &r.Occurrence, &r.App, &r.Status, &r.Notification,
			&r.ScheduledFor, &r.Deadline, &r.BatchSize, &r.MaxUserID); err != nil {
			return nil, err
		}
		out = append(out, r)
	}
	return out, rows.Err()
}

// CountAudience counts the run's audience as it stood at the start: users
// with a valid token, or whose token this run found dead since.
//
// It counts the app's users, an index-only range count, and subtracts the
// dead tokens, read from pushd_invalid_tokens' side. A LEFT JOIN from users
// made MariaDB look every user up in pushd_invalid_tokens while the first
// batches were sending.
func (s *Store) CountAudience(ctx context.Context, r pushd.Run) (int64, error) {
	var all, dead int64
	err := s.db.QueryRowContext(ctx, `SELECT COUNT(*) FROM users u WHERE `+sameApp+` AND u.id <= ?`,
		r.App, r.App, r.MaxUserID).Scan(&all)
	if err == nil {
		err = s.db.QueryRowContext(ctx, `SELECT COUNT(*) FROM pushd_invalid_tokens i JOIN users u ON u.id = i.user_id
			WHERE `+sameApp+` AND u.id <= ? AND NOT `+validToken+` AND (i.run_id IS NULL OR i.run_id <> ?)`,
			r.App, r.App, r.MaxUserID, r.ID).Scan(&dead)
	}
	if err != nil {
		return 0, fmt.Errorf("count audience of run %d: %w", r.ID, err)
	}
	return all - dead, nil
}

// SetTargeted stores the audience size on the run and, while the run is
// current, on its campaign.
func (s *Store) SetTargeted(ctx context.Context, r pushd.Run, n int64) error {
	return s.inTx(ctx, func(tx *sql.Tx) error {
		if _, err := tx.ExecContext(ctx, `UPDATE pushd_runs SET targeted = ? WHERE id = ?`, n, r.ID); err != nil {
			return err
		}
		_, err := tx.ExecContext(ctx, `UPDATE campaigns SET targeted = ? WHERE id = ? AND current_run_id = ?`, n, r.CampaignID, r.ID)
		return err
	})
}

// ClaimBatch leases the next share of the run's audience to owner: first a
// batch an earlier owner released or abandoned (lease expired), else the
// next batch_size users after the run's cursor. owner must be unique per
// process start, so that a restarted instance takes over what it abandoned.
// held lists the batches this process is still working on: they are never
// taken over, even with their lease run out, since their workers may hold
// answers they could not record yet (database away) and a second worker
// would send them again. A batch of ours that is not held, because the
// claim committed but its answer was lost, is taken over like any other.
// ClaimBatch also notices staff pausing or cancelling the campaign and
// stops the run.
func (s *Store) ClaimBatch(ctx context.Context, runID int64, owner string, held []int64, lease time.Duration, now time.Time) (*pushd.Batch, error) {
	var (
		b *pushd.Batch
		// verdict is the claim's answer when it is not a batch; the
		// transaction still commits what it wrote on the way there.
		verdict error
	)
	err := s.inTx(ctx, func(tx *sql.Tx) error {
		b, verdict = nil, nil
		var (
			r        pushd.Run
			cursor   int64
			drained  bool
			campaign sql.NullString
		)
		err := tx.QueryRowContext(ctx, `SELECT campaign_id, app, status, deadline, batch_size, max_user_id, cursor_user_id, drained
			FROM pushd_runs WHERE id = ? FOR UPDATE`, runID).
			Scan(&r.CampaignID, &r.App, &r.Status, &r.Deadline, &r.BatchSize, &r.MaxUserID, &cursor, &drained)
		if err != nil {
			return fmt.Errorf("lock run %d: %w", runID, err)
		}
		if r.Status != pushd.Running {
			verdict = &pushd.RunStopped{Status: r.Status}
			return nil
		}
		err = tx.QueryRowContext(ctx, `SELECT status FROM campaigns WHERE id = ? AND current_run_id = ?`, r.CampaignID, runID).Scan(&campaign)
		if err != nil && !errors.Is(err, sql.ErrNoRows) {
			return err
		}
		// The runner decides what a paused or cancelled campaign means for
		// the run (StopRun); the claim only reports it.
		switch st := pushd.Status(campaign.String); {
		case !campaign.Valid:
			verdict = &pushd.RunStopped{Status: pushd.Cancelled, ByStaff: true}
			return nil
		case st == pushd.Cancelled || st == pushd.Paused:
			verdict = &pushd.RunStopped{Status: st, ByStaff: true}
			return nil
		}
		if !now.Before(r.Deadline) {
			verdict = &pushd.RunStopped{Status: pushd.Expired}
			return nil
		}
		leaseMicros := lease.Microseconds()
		notHeld, args := "", []any{runID}
		if len(held) > 0 {
			notHeld = " AND id NOT IN (?" + strings.Repeat(", ?", len(held)-1) + ")"
			for _, id := range held {
				args = append(args, id)
			}
		}
		for {
			var cand pushd.Batch
			err := tx.QueryRowContext(ctx, `SELECT id, after_user_id, last_user_id, epoch FROM pushd_batches
				WHERE run_id = ? AND (status = 'pending' OR (status = 'claimed' AND lease_expires_at < NOW(3)`+notHeld+`))
				ORDER BY id LIMIT 1 FOR UPDATE SKIP LOCKED`, args...).Scan(&cand.ID, &cand.After, &cand.Last, &cand.Epoch)
			if errors.Is(err, sql.ErrNoRows) {
				break
			}
			if err != nil {
				return fmt.Errorf("find abandoned batch: %w", err)
			}
			cand.RunID, cand.Epoch, cand.TakenOver = runID, cand.Epoch+1, true
			cand.Recipients, err = readUnrecorded(ctx, tx, r.App, runID, cand.After, cand.Last)
			if err != nil {
				return err
			}
			status := "claimed"
			if len(cand.Recipients) == 0 {
				status = "done" // everything was recorded before the owner left
			}
			if _, err := tx.ExecContext(ctx, `UPDATE pushd_batches SET status = ?, owner = ?, epoch = ?,
				lease_expires_at = NOW(3) + INTERVAL ? MICROSECOND WHERE id = ?`, status, owner, cand.Epoch, leaseMicros, cand.ID); err != nil {
				return err
			}
			if status == "claimed" {
				b = &cand
				return nil
			}
		}
		for !drained {
			recips, last, err := readAudience(ctx, tx, r.App, cursor, r.MaxUserID, r.BatchSize)
			if err != nil {
				return err
			}
			if last > cursor && len(recips) == 0 {
				// Only dead tokens in this stretch: step over it.
				if _, err := tx.ExecContext(ctx, `UPDATE pushd_runs SET cursor_user_id = ? WHERE id = ?`, last, runID); err != nil {
					return err
				}
				cursor = last
				continue
			}
			if len(recips) > 0 {
				res, err := tx.ExecContext(ctx, `INSERT INTO pushd_batches (run_id, after_user_id, last_user_id, size, status, owner, epoch, lease_expires_at)
					VALUES (?, ?, ?, ?, 'claimed', ?, 1, NOW(3) + INTERVAL ? MICROSECOND)`, runID, cursor, last, len(recips), owner, leaseMicros)
				if err != nil {
					return fmt.Errorf("create batch: %w", err)
				}
				id, err := res.LastInsertId()
				if err != nil {
					return err
				}
				if _, err := tx.ExecContext(ctx, `UPDATE pushd_runs SET cursor_user_id = ? WHERE id = ?`, last, runID); err != nil {
					return err
				}
				b = &pushd.Batch{ID: id, RunID: runID, Epoch: 1, After: cursor, Last: last, Recipients: recips}
				return nil
			}
			if _, err := tx.ExecContext(ctx, `UPDATE pushd_runs SET drained = 1, cursor_user_id = max_user_id WHERE id = ?`, runID); err != nil {
				return err
			}
			drained = true
		}
		var open int
		if err := tx.QueryRowContext(ctx, `SELECT COUNT(*) FROM pushd_batches WHERE run_id = ? AND status <> 'done'`, runID).Scan(&open); err != nil {
			return err
		}
		verdict = pushd.ErrDrained
		if open > 0 {
			verdict = pushd.ErrNoWork
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return b, verdict
}

// readAudience reads up to limit users of app in (after, last], in id
// order, and leaves out those whose token was found dead. It also returns
// the last id it read, dead or not, for the cursor to move past.
//
// The dead tokens of the stretch come from one range read of
// pushd_invalid_tokens' primary key. A LEFT JOIN, as readUnrecorded has,
// made MariaDB look each user up there: a third of the audience read's
// cost with the table empty, and more as it fills up.
func readAudience(ctx context.Context, tx *sql.Tx, app string, after, last int64, limit int) ([]pushd.Recipient, int64, error) {
	rows, err := tx.QueryContext(ctx, `SELECT u.id, u.push_token, u.registered_at FROM users u
		WHERE `+sameApp+` AND u.id > ? AND u.id <= ? ORDER BY u.id LIMIT ?`, app, app, after, last, limit)
	if err != nil {
		return nil, 0, fmt.Errorf("read audience: %w", err)
	}
	defer rows.Close()
	out := make([]pushd.Recipient, 0, limit)
	for rows.Next() {
		var r pushd.Recipient
		if err := rows.Scan(&r.UserID, &r.Token, &r.RegisteredAt); err != nil {
			return nil, 0, err
		}
		out = append(out, r)
	}
	if err := rows.Err(); err != nil {
		return nil, 0, err
	}
	if len(out) == 0 {
		return nil, after, nil
	}
	lastRead := out[len(out)-1].UserID
	dead, err := deadTokens(ctx, tx, after, lastRead)
	if err != nil {
		return nil, 0, err
	}
	if len(dead) == 0 {
		return out, lastRead, nil
	}
	// validToken's test. EqualFold, because push_token is ascii_general_ci
	// in schema.sql, so SQL compares tokens without case.
	kept := out[:0]
	for _, r := range out {
		if d, ok := dead[r.UserID]; ok && strings.EqualFold(d.token, r.Token) && !r.RegisteredAt.After(d.since) {
			continue
		}
		kept = append(kept, r)
	}
	return kept, lastRead, nil
}

type deadToken struct {
	token string
	since time.Time
}

// deadTokens reads the dead tokens of the users in (after, last].
func deadTokens(ctx context.Context, tx *sql.Tx, after, last int64) (map[int64]deadToken, error) {
	rows, err := tx.QueryContext(ctx, `SELECT user_id, push_token, invalid_since FROM pushd_invalid_tokens
		WHERE user_id > ? AND user_id <= ?`, after, last)
	if err != nil {
		return nil, fmt.Errorf("read dead tokens: %w", err)
	}
	defer rows.Close()
	var dead map[int64]deadToken
	for rows.Next() {
		var id int64
		var d deadToken
		if err := rows.Scan(&id, &d.token, &d.since); err != nil {
			return nil, err
		}
		if dead == nil {
			dead = map[int64]deadToken{}
		}
		dead[id] = d
	}
	return dead, rows.Err()
}

// readUnrecorded reads the audience in (after, last] that has no outcome in
// the run yet, in id order: what a taken-over batch still has to send.
func readUnrecorded(ctx context.Context, tx *sql.Tx, app string, runID, after, last int64) ([]pushd.Recipient, error) {
	rows, err := tx.QueryContext(ctx, `SELECT u.id, u.push_token, u.registered_at FROM users u
		LEFT JOIN pushd_invalid_tokens i ON i.user_id = u.id
		LEFT JOIN pushd_deliveries d ON d.run_id = ? AND d.user_id = u.id
		WHERE `+sameApp+` AND u.id > ? AND u.id <= ? AND `+validToken+` AND d.user_id IS NULL ORDER BY u.id`,
		runID, app, app, after, last)
	if err != nil {
		return nil, fmt.Errorf("read audience: %w", err)
	}
	defer rows.Close()
	var out []pushd.Recipient
	for rows.Next() {
		var r pushd.Recipient
		if err := rows.Scan(&r.UserID, &r.Token, &r.RegisteredAt); err != nil {
			return nil, err
		}
		out = append(out, r)
	}
	return out, rows.Err()
}

// Record writes a flush if and only if the batch is still leased at f.Epoch;
// otherwise nothing is written and the error is ErrLeaseLost. A flush with no
// deliveries only renews the lease.
func (s *Store) Record(ctx context.Context, f pushd.Flush) error {
	for _, d := range f.Deliveries {
		switch d.Outcome {
		case pushd.Sent, pushd.FailedSend, pushd.InvalidToken, pushd.ExpiredSend:
		default:
			return fmt.Errorf("record run %d: unknown outcome %q", f.RunID, d.Outcome)
		}
	}
	return s.inTx(ctx, func(tx *sql.Tx) error {
		ds := f.Deliveries
		if f.Recheck && len(ds) > 0 {
			// The invalid tokens are an upsert: writing them again is harmless.
			var err error
			if ds, err = unrecorded(ctx, tx, f.RunID, ds); err != nil {
				return err
			}
		}
		var c [4]int64
		for _, d := range ds {
			switch d.Outcome {
			case pushd.Sent:
				c[0]++
			case pushd.FailedSend:
				c[1]++
			case pushd.InvalidToken:
				c[2]++
			case pushd.ExpiredSend:
				c[3]++
			}
		}
		if len(ds) > 0 {
			// The run row first: every transaction that touches a run locks
			// it before its batches, which keeps them free of deadlocks.
			if _, err := tx.ExecContext(ctx, `UPDATE pushd_runs SET sent = sent + ?, failed = failed + ?,
				invalid_tokens = invalid_tokens + ?, expired = expired + ? WHERE id = ?`, c[0], c[1], c[2], c[3], f.RunID); err != nil {
				return fmt.Errorf("count run %d: %w", f.RunID, err)
			}
		}
		status := "claimed"
		if f.Done {
			status = "done"
		}
		res, err := tx.ExecContext(ctx, `UPDATE pushd_batches SET status = ?, lease_expires_at = NOW(3) + INTERVAL ? MICROSECOND
			WHERE id = ? AND epoch = ? AND status = 'claimed'`, status, f.Lease.Microseconds(), f.BatchID, f.Epoch)
		if err != nil {
			return fmt.Errorf("renew batch %d: %w", f.BatchID, err)
		}
		if n, err := res.RowsAffected(); err != nil {
			return err
		} else if n == 0 {
			if f.Recheck && f.Done && len(ds) == 0 {
				// Perhaps the earlier attempt committed this final flush.
				var st string
				var epoch int64
				err := tx.QueryRowContext(ctx, `SELECT status, epoch FROM pushd_batches WHERE id = ?`, f.BatchID).Scan(&st, &epoch)
				if err == nil && st == "done" && epoch == f.Epoch {
					return nil
				}
			}
			return pushd.ErrLeaseLost
		}
		if len(ds) == 0 {
			return nil
		}
		if err := s.insertDeliveries(ctx, tx, f.RunID, ds); err != nil {
			return err
		}
		if err := insertInvalid(ctx, tx, f.RunID, f.Invalid); err != nil {
			return err
		}
		_, err = tx.ExecContext(ctx, `UPDATE campaigns SET sent = sent + ?, failed = failed + ?,
			invalid_tokens = invalid_tokens + ?, expired = expired + ?, updated_at = ? WHERE id = ? AND current_run_id = ?`,
			c[0], c[1], c[2], c[3], f.Now, f.CampaignID, f.RunID)
		return err
	})
}

// unrecorded returns the deliveries whose users have no outcome in the run.
func unrecorded(ctx context.Context, tx *sql.Tx, runID int64, ds []pushd.Delivery) ([]pushd.Delivery, error) {
	have := map[int64]bool{}
	for lo := 0; lo < len(ds); lo += rowsPerInsert {
		chunk := ds[lo:min(len(ds), lo+rowsPerInsert)]
		args := make([]any, 0, len(chunk)+1)
		args = append(args, runID)
		for _, d := range chunk {
			args = append(args, d.UserID)
		}
		rows, err := tx.QueryContext(ctx, `SELECT user_id FROM pushd_deliveries WHERE run_id = ? AND user_id IN (?`+
			strings.Repeat(", ?", len(chunk)-1)+`)`, args...)
		if err != nil {
			return nil, fmt.Errorf("recheck outcomes of run %d: %w", runID, err)
		}
		for rows.Next() {
			var id int64
			if err := rows.Scan(&id); err != nil {
				rows.Close()
				return nil, err
			}
			have[id] = true
		}
		if err := rows.Err(); err != nil {
			return nil, err
		}
	}
	if len(have) == 0 {
		return ds, nil
	}
	out := make([]pushd.Delivery, 0, len(ds)-len(have))
	for _, d := range ds {
		if !have[d.UserID] {
			out = append(out, d)
		}
	}
	return out, nil
}

func insertInvalid(ctx context.Context, tx *sql.Tx, runID int64, inv []pushd.Invalidation) error {
	if len(inv) == 0 {
		return nil
	}
	var q strings.Builder
	q.WriteString(`INSERT INTO pushd_invalid_tokens (user_id, app, push_token, invalid_since, reason, run_id) VALUES `)
	args := make([]any, 0, len(inv)*6)
	for i, v := range inv {
		if i > 0 {
			q.WriteByte(',')
		}
		q.WriteString("(?,?,?,?,?,?)")
		args = append(args, v.UserID, v.App, v.Token, v.Since, clipReason(v.Reason), runID)
	}
	q.WriteString(` ON DUPLICATE KEY UPDATE app = VALUES(app), push_token = VALUES(push_token),
		invalid_since = VALUES(invalid_since), reason = VALUES(reason), run_id = VALUES(run_id), recorded_at = NOW(3)`)
	if _, err := tx.ExecContext(ctx, q.String(), args...); err != nil {
		return fmt.Errorf("record invalid tokens: %w", err)
	}
	return nil
}

func clipReason(s string) string {
	if len(s) <= 64 {
		return s
	}
	// Cut on a rune boundary.
	r := []rune(s[:64])
	return string(r[:len(r)-1])
}

// ReleaseBatch gives a batch back for any instance to take over at once, as
// on shutdown or pause. Losing the lease meanwhile is not an error.
func (s *Store) ReleaseBatch(ctx context.Context, batchID, epoch int64) error {
	_, err := s.db.ExecContext(ctx, `UPDATE pushd_batches SET status = 'pending', owner = NULL, lease_expires_at = NULL
		WHERE id = ? AND epoch = ? AND status = 'claimed'`, batchID, epoch)
	if err != nil {
		return fmt.Errorf("release batch %d: %w", batchID, err)
	}
	return nil
}

// StopRun stops a running run as paused or cancelled, with reason. A
// cancelled run is finished for good; a paused one is resumed when its
// campaign is set back to scheduled. It is a no-op when the run is no
// longer running.
func (s *Store) StopRun(ctx context.Context, runID int64, status pushd.Status, reason string, now time.Time) error {
	if status != pushd.Paused && status != pushd.Cancelled {
		return fmt.Errorf("stop run %d: status %q is not paused or cancelled", runID, status)
	}
	return s.inTx(ctx, func(tx *sql.Tx) error {
		var (
			st         pushd.Status
			campaignID int64
		)
		if err := tx.QueryRowContext(ctx, `SELECT status, campaign_id FROM pushd_runs WHERE id = ? FOR UPDATE`, runID).
			Scan(&st, &campaignID); err != nil {
			return fmt.Errorf("lock run %d: %w", runID, err)
		}
		if st != pushd.Running {
			return nil
		}
		if status == pushd.Cancelled {
			if _, err := tx.ExecContext(ctx, `UPDATE pushd_runs SET status = 'cancelled', status_reason = ?, finished_at = ? WHERE id = ?`,
				clip(reason), now, runID); err != nil {
				return err
			}
			_, err := tx.ExecContext(ctx, `UPDATE campaigns SET finished_at = ?, updated_at = ? WHERE id = ? AND current_run_id = ?`,
				now, now, campaignID, runID)
			return err
		}
		if _, err := tx.ExecContext(ctx, `UPDATE pushd_runs SET status = 'paused', status_reason = ? WHERE id = ?`, clip(reason), runID); err != nil {
			return err
		}
		// Due again as soon as staff set it back to scheduled.
		_, err := tx.ExecContext(ctx, `UPDATE campaigns SET next_run_at = (SELECT scheduled_for FROM pushd_runs WHERE id = ?),
			updated_at = ? WHERE id = ?`, runID, now, campaignID)
		return err
	})
}

// FailRun stops a running run and its campaign with a reason staff can act
// on. Setting the campaign back to scheduled resumes the run.
func (s *Store) FailRun(ctx context.Context, runID int64, reason string, now time.Time) error {
	return s.inTx(ctx, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, `UPDATE pushd_runs SET status = 'failed', status_reason = ? WHERE id = ? AND status = 'running'`, clip(reason), runID)
		if err != nil {
			return err
		}
		if n, _ := res.RowsAffected(); n == 0 {
			return nil // already stopped by someone else
		}
		_, err = tx.ExecContext(ctx, `UPDATE campaigns c JOIN pushd_runs r ON r.id = c.current_run_id
			SET c.status = 'failed', c.status_reason = ?, c.next_run_at = r.scheduled_for, c.updated_at = ?
			WHERE r.id = ? AND c.status = 'running'`, clip(reason), now, runID)
		return err
	})
}

// RunSummary returns the run's counters and its most common failure reasons.
func (s *Store) RunSummary(ctx context.Context, runID int64) (pushd.RunCounts, []pushd.ReasonCount, error) {
	var c pushd.RunCounts
	err := s.db.QueryRowContext(ctx, `SELECT targeted, sent, failed, invalid_tokens, expired FROM pushd_runs WHERE id = ?`, runID).
		Scan(&c.Targeted, &c.Sent, &c.Failed, &c.Invalid, &c.Expired)
	if err != nil {
		return c, nil, fmt.Errorf("read run %d: %w", runID, err)
	}
	if c.Failed == 0 {
		return c, nil, nil
	}
	rows, err := s.db.QueryContext(ctx, `SELECT reason, COUNT(*) FROM pushd_deliveries WHERE run_id = ? AND outcome = 'failed'
		GROUP BY reason ORDER BY COUNT(*) DESC, reason LIMIT 3`, runID)
	if err != nil {
		return c, nil, err
	}
	defer rows.Close()
	var top []pushd.ReasonCount
	for rows.Next() {
		var rc pushd.ReasonCount
		if err := rows.Scan(&rc.Reason, &rc.Count); err != nil {
			return c, nil, err
		}
		top = append(top, rc)
	}
	return c, top, rows.Err()
}

// FinishRun ends a drained run as done, or as expired, and moves its
// campaign on: back to scheduled when a next occurrence is set, else to the
// run's final status. It is a no-op when the run is no longer running or
// (for done) still has open batches.
func (s *Store) FinishRun(ctx context.Context, runID int64, status pushd.Status, reason string, now time.Time) (bool, error) {
	var finished bool
	err := s.inTx(ctx, func(tx *sql.Tx) error {
		finished = false
		var (
			st         pushd.Status
			drained    bool
			campaignID int64
		)
		if err := tx.QueryRowContext(ctx, `SELECT status, drained, campaign_id FROM pushd_runs WHERE id = ? FOR UPDATE`, runID).
			Scan(&st, &drained, &campaignID); err != nil {
			return err
		}
		if st != pushd.Running || !drained {
			return nil
		}
		var open int
		if err := tx.QueryRowContext(ctx, `SELECT COUNT(*) FROM pushd_batches WHERE run_id = ? AND status <> 'done'`, runID).Scan(&open); err != nil {
			return err
		}
		if open > 0 {
			return nil
		}
		if _, err := tx.ExecContext(ctx, `UPDATE pushd_runs SET status = ?, status_reason = ?, finished_at = ? WHERE id = ?`,
			status, clip(reason), now, runID); err != nil {
			return err
		}
		_, err := tx.ExecContext(ctx, `UPDATE campaigns SET status = IF(next_run_at IS NULL, ?, 'scheduled'),
			status_reason = ?, finished_at = ?, updated_at = ? WHERE id = ? AND current_run_id = ? AND status = 'running'`,
			status, clip(reason), now, now, campaignID, runID)
		finished = err == nil
		return err
	})
	return finished, err
}

// ExpireRemaining records every audience user of a run past its deadline
// who has no outcome yet as expired. It first takes over every open batch,
// bumping its epoch so no earlier owner can still write, and fails with
// ErrBusy while another instance holds a live lease (it is stopping too).
// Afterwards the run is drained and FinishRun can end it as expired.
func (s *Store) ExpireRemaining(ctx context.Context, runID int64, owner string, lease time.Duration, now time.Time) (int64, error) {
	var (
		app        string
		campaignID int64
		batches    []pushd.Batch
	)
	err := s.inTx(ctx, func(tx *sql.Tx) error {
		batches = nil
		var (
			st      pushd.Status
			cursor  int64
			maxID   int64
			drained bool
		)
		if err := tx.QueryRowContext(ctx, `SELECT status, app, campaign_id, cursor_user_id, max_user_id, drained
			FROM pushd_runs WHERE id = ? FOR UPDATE`, runID).Scan(&st, &app, &campaignID, &cursor, &maxID, &drained); err != nil {
			return err
		}
		if st != pushd.Running {
			return &pushd.RunStopped{Status: st}
		}
		var busy int
		if err := tx.QueryRowContext(ctx, `SELECT COUNT(*) FROM pushd_batches WHERE run_id = ? AND status = 'claimed'
			AND owner <> ? AND lease_expires_at >= NOW(3)`, runID, owner).Scan(&busy); err != nil {
			return err
		}
		if busy > 0 {
			return pushd.ErrBusy
		}
		if !drained {
			if _, err := tx.ExecContext(ctx, `INSERT INTO pushd_batches (run_id, after_user_id, last_user_id, size, status, owner, epoch)
				VALUES (?, ?, ?, 0, 'pending', NULL, 1)`, runID, cursor, maxID); err != nil {
				return err
			}
			if _, err := tx.ExecContext(ctx, `UPDATE pushd_runs SET drained = 1, cursor_user_id = max_user_id WHERE id = ?`, runID); err != nil {
				return err
			}
			drained = true
		}
		if _, err := tx.ExecContext(ctx, `UPDATE pushd_batches SET status = 'claimed', owner = ?, epoch = epoch + 1,
			lease_expires_at = NOW(3) + INTERVAL ? MICROSECOND WHERE run_id = ? AND status <> 'done'`, owner, lease.Microseconds(), runID); err != nil {
			return err
		}
		rows, err := tx.QueryContext(ctx, `SELECT id, after_user_id, last_user_id, epoch FROM pushd_batches WHERE run_id = ? AND status = 'claimed'`, runID)
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			b := pushd.Batch{RunID: runID}
			if err := rows.Scan(&b.ID, &b.After, &b.Last, &b.Epoch); err != nil {
				return err
			}
			batches = append(batches, b)
		}
		return rows.Err()
	})
	if err != nil {
		return 0, err
	}
	var total int64
	for _, b := range batches {
		n, err := s.expireBatch(ctx, app, campaignID, b, lease, now)
		total += n
		if err != nil {
			return total, markUnavailable(err)
		}
	}
	return total, nil
}

// expireChunk bounds one INSERT … SELECT of the expiry sweep.
const expireChunk = 10000

func (s *Store) expireBatch(ctx context.Context, app string, campaignID int64, b pushd.Batch, lease time.Duration, now time.Time) (int64, error) {
	var total int64
	lo := b.After
	for lo < b.Last {
		hi := b.Last
		var bound sql.NullInt64
		if err := s.db.QueryRowContext(ctx, `SELECT u.id FROM users u WHERE `+sameApp+` AND u.id > ? AND u.id <= ?
			ORDER BY u.id LIMIT 1 OFFSET ?`, app, app, lo, b.Last, expireChunk-1).Scan(&bound); err != nil && !errors.Is(err, sql.ErrNoRows) {
			return total, err
		}
		if bound.Valid {
			hi = bound.Int64
		}
		done := hi == b.Last
		var n int64
		err := s.inTx(ctx, func(tx *sql.Tx) error {
			n = 0
			if _, err := tx.ExecContext(ctx, `SELECT id FROM pushd_runs WHERE id = ? FOR UPDATE`, b.RunID); err != nil {
				return err
			}
			status := "claimed"
			if done {
				status = "done"
			}
			res, err := tx.ExecContext(ctx, `UPDATE pushd_batches SET status = ?, lease_expires_at = NOW(3) + INTERVAL ? MICROSECOND
				WHERE id = ? AND epoch = ? AND status = 'claimed'`, status, lease.Microseconds(), b.ID, b.Epoch)
			if err != nil {
				return err
			}
			if n, _ := res.RowsAffected(); n == 0 {
				return pushd.ErrLeaseLost
			}
			res, err = tx.ExecContext(ctx, `INSERT INTO pushd_deliveries (run_id, user_id, outcome, reason, attempts)
				SELECT ?, u.id, 'expired', 'deadline reached', 0 FROM users u
				LEFT JOIN pushd_invalid_tokens i ON i.user_id = u.id
				LEFT JOIN pushd_deliveries d ON d.run_id = ? AND d.user_id = u.id
				WHERE `+sameApp+` AND u.id > ? AND u.id <= ? AND `+validToken+` AND d.user_id IS NULL`,
				b.RunID, b.RunID, app, app, lo, hi)
			if err != nil {
				return fmt.Errorf("record expired users of run %d: %w", b.RunID, err)
			}
			n, _ = res.RowsAffected()
			if n == 0 {
				return nil
			}
			if _, err := tx.ExecContext(ctx, `UPDATE pushd_runs SET expired = expired + ? WHERE id = ?`, n, b.RunID); err != nil {
				return err
			}
			if _, err := tx.ExecContext(ctx, `UPDATE campaigns SET expired = expired + ?, updated_at = ? WHERE id = ? AND current_run_id = ?`,
				n, now, campaignID, b.RunID); err != nil {
				return err
			}
			return nil
		})
		if err != nil {
			return total, err
		}
		total += n
		lo = hi
	}
	if b.After >= b.Last { // an empty range still has to be closed
		_, err := s.db.ExecContext(ctx, `UPDATE pushd_batches SET status = 'done' WHERE id = ? AND epoch = ?`, b.ID, b.Epoch)
		return total, err
	}
	return total, nil
}
