package store

// Batches and their leases: claiming a share of a run, releasing it, and
// taking every open batch over to expire what the deadline left.

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/pushd/pushd"
)

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
			r        = pushd.Run{ID: runID}
			cursor   int64
			drained  bool
			campaign sql.NullString
			window   int64
		)
		err := tx.QueryRowContext(ctx, `SELECT campaign_id, occurrence, app, status, deadline, batch_size, max_user_id, cursor_user_id, drained,
			members, user_data, cap_count, cap_window_s FROM pushd_runs WHERE id = ? FOR UPDATE`, runID).
			Scan(&r.CampaignID, &r.Occurrence, &r.App, &r.Status, &r.Deadline, &r.BatchSize, &r.MaxUserID, &cursor, &drained,
				&r.Members, &r.UserData, &r.Cap.Count, &window)
		if err != nil {
			return fmt.Errorf("lock run %d: %w", runID, err)
		}
		r.Cap.Window = time.Duration(window) * time.Second
		src := runSource(r)
		if r.UserData {
			if src, err = s.withUserData(ctx, src); err != nil {
				return err
			}
		}
		if r.Status != pushd.Running {
			verdict = &pushd.RunStopped{Status: r.Status}
			return nil
		}
		err = tx.QueryRowContext(ctx, `SELECT status FROM campaigns WHERE id = ? AND run_count = ?`, r.CampaignID, r.Occurrence).Scan(&campaign)
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
			cand.Recipients, err = readUnrecorded(ctx, tx, src, cand.After, cand.Last)
			if err != nil {
				return err
			}
			var capped []pushd.Recipient
			if cand.Recipients, capped, err = applyCap(ctx, tx, r, cand.Recipients, cand.After, cand.Last); err != nil {
				return err
			}
			if err := s.recordCapped(ctx, tx, r, capped, now); err != nil {
				return err
			}
			cand.Capped = len(capped)
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
			if cand.Capped > 0 {
				// Only capped users were left, recorded above.
				b = &pushd.Batch{RunID: runID, Capped: cand.Capped}
				return nil
			}
		}
		for !drained {
			recips, last, err := readAudience(ctx, tx, src, cursor, r.MaxUserID, r.BatchSize)
			if err != nil {
				return err
			}
			recips, capped, err := applyCap(ctx, tx, r, recips, cursor, last)
			if err != nil {
				return err
			}
			if len(capped) > 0 {
				if err := s.recordCapped(ctx, tx, r, capped, now); err != nil {
					return err
				}
			}
			if last > cursor && len(recips) == 0 {
				// Only dead tokens or capped users in this stretch: step over
				// it. The capped are recorded already.
				if _, err := tx.ExecContext(ctx, `UPDATE pushd_runs SET cursor_user_id = ? WHERE id = ?`, last, runID); err != nil {
					return err
				}
				cursor = last
				if len(capped) > 0 {
					// Hand the claim back, so that the runner counts them
					// and the stepping stays within one batch's work.
					b = &pushd.Batch{RunID: runID, After: last, Last: last, Capped: len(capped)}
					return nil
				}
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
				b = &pushd.Batch{ID: id, RunID: runID, Epoch: 1, After: cursor, Last: last, Recipients: recips, Capped: len(capped)}
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

// ExpireRemaining records every audience user of a run past its deadline
// who has no outcome yet as expired. It first takes over every open batch,
// bumping its epoch so no earlier owner can still write, and fails with
// ErrBusy while another instance holds a live lease (it is stopping too).
// Afterwards the run is drained and FinishRun can end it as expired.
func (s *Store) ExpireRemaining(ctx context.Context, runID int64, owner string, lease time.Duration, now time.Time) (int64, error) {
	var (
		src        = source{runID: runID}
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
		if err := tx.QueryRowContext(ctx, `SELECT status, app, members, campaign_id, cursor_user_id, max_user_id, drained
			FROM pushd_runs WHERE id = ? FOR UPDATE`, runID).Scan(&st, &src.app, &src.members, &campaignID, &cursor, &maxID, &drained); err != nil {
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
		n, err := s.expireBatch(ctx, src, campaignID, b, lease, now)
		total += n
		if err != nil {
			return total, markUnavailable(err)
		}
	}
	return total, nil
}

// expireChunk bounds one INSERT … SELECT of the expiry sweep.
const expireChunk = 10000

func (s *Store) expireBatch(ctx context.Context, src source, campaignID int64, b pushd.Batch, lease time.Duration, now time.Time) (int64, error) {
	var total int64
	lo := b.After
	for lo < b.Last {
		hi := b.Last
		var bound sql.NullInt64
		from, id, args := src.from(lo, b.Last)
		if err := s.db.QueryRowContext(ctx, `SELECT `+id+from+` ORDER BY `+id+` LIMIT 1 OFFSET ?`,
			append(args, expireChunk-1)...).Scan(&bound); err != nil && !errors.Is(err, sql.ErrNoRows) {
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
			from, id, args := src.from(lo, hi)
			from, where, _ := strings.Cut(from, "WHERE")
			res, err = tx.ExecContext(ctx, `INSERT INTO pushd_deliveries (run_id, user_id, outcome, reason, attempts)
				SELECT ?, `+id+`, 'expired', 'deadline reached', 0`+from+`
				LEFT JOIN pushd_invalid_tokens i ON i.user_id = `+id+`
				LEFT JOIN pushd_deliveries d ON d.run_id = ? AND d.user_id = `+id+`
				WHERE `+where+` AND `+validToken+` AND d.user_id IS NULL`,
				append([]any{b.RunID, b.RunID}, args...)...)
			if err != nil {
				return fmt.Errorf("record expired users of run %d: %w", b.RunID, err)
			}
			n, _ = res.RowsAffected()
			if n == 0 {
				return nil
			}
			// Their frequency-cap reservations, if any: they were not sent.
			if _, err := tx.ExecContext(ctx, `DELETE s FROM pushd_sends s JOIN pushd_deliveries d ON d.run_id = s.run_id AND d.user_id = s.user_id
				WHERE s.user_id > ? AND s.user_id <= ? AND s.run_id = ? AND d.outcome = 'expired'`, lo, hi, b.RunID); err != nil {
				return err
			}
			if _, err := tx.ExecContext(ctx, `UPDATE pushd_runs SET expired = expired + ? WHERE id = ?`, n, b.RunID); err != nil {
				return err
			}
			if _, err := tx.ExecContext(ctx, `UPDATE campaigns SET expired = expired + ?, updated_at = ? WHERE `+currentFor,
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
