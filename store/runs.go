package store

import (
	"context"
	"database/sql"
	"fmt"
	"strings"
	"time"

	"github.com/pushd/pushd"
)

// ActiveRuns lists the runs in status running.
func (s *Store) ActiveRuns(ctx context.Context) ([]pushd.Run, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT id, campaign_id, occurrence, app, status, notification,
		scheduled_for, deadline, batch_size, max_user_id, status_reason, COALESCE(segment, ''), COALESCE(exclude_segment, ''),
		members, user_data, cap_count, cap_window_s, COALESCE(zone, ''), COALESCE(quiet_hours, ''), COALESCE(max_per_minute, 0)
		FROM pushd_runs WHERE status = 'running' ORDER BY id`)
	if err != nil {
		return nil, fmt.Errorf("list running runs: %w", err)
	}
	defer rows.Close()
	var out []pushd.Run
	for rows.Next() {
		var (
			r           pushd.Run
			window      int64
			zone, quiet string
		)
		if err := rows.Scan(&r.ID, &r.CampaignID, &r.Occurrence, &r.App, &r.Status, &r.Notification,
			&r.ScheduledFor, &r.Deadline, &r.BatchSize, &r.MaxUserID, &r.Reason, &r.Audience.Segment, &r.Audience.Exclude,
			&r.Members, &r.UserData, &r.Cap.Count, &window, &zone, &quiet, &r.MaxPerMinute); err != nil {
			return nil, err
		}
		r.Cap.Window = time.Duration(window) * time.Second
		if zone != "" {
			// Written by startGrouped from a zone it loaded; a zone database
			// that lost it since falls back to UTC rather than stop the run.
			if r.Zone, _ = loadZone(zone); r.Zone == nil {
				r.Zone = time.UTC
			}
			r.Quiet, _ = pushd.ParseQuietHours(quiet)
		}
		out = append(out, r)
	}
	return out, rows.Err()
}

// currentFor matches, with the arguments campaign id and run id, the
// campaign row while the run belongs to its current occurrence: the
// occurrence has one run per app, and the row shows their sums.
const currentFor = `id = ? AND run_count = (SELECT occurrence FROM pushd_runs WHERE id = ?)`

// SetTargeted stores the audience size on the run and, while the run is
// current, the sum over the occurrence's runs on its campaign.
func (s *Store) SetTargeted(ctx context.Context, r pushd.Run, n int64) error {
	return s.inTx(ctx, func(tx *sql.Tx) error {
		if _, err := tx.ExecContext(ctx, `UPDATE pushd_runs SET targeted = ? WHERE id = ?`, n, r.ID); err != nil {
			return err
		}
		_, err := tx.ExecContext(ctx, `UPDATE campaigns SET targeted = (SELECT SUM(targeted) FROM pushd_runs
			WHERE campaign_id = ? AND occurrence = ?) WHERE `+currentFor, r.CampaignID, r.Occurrence, r.CampaignID, r.ID)
		return err
	})
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
				clip(reason, statusReasonChars), now, runID); err != nil {
				return err
			}
			_, err := tx.ExecContext(ctx, `UPDATE campaigns SET finished_at = ?, updated_at = ? WHERE `+currentFor,
				now, now, campaignID, runID)
			return err
		}
		if _, err := tx.ExecContext(ctx, `UPDATE pushd_runs SET status = 'paused', status_reason = ? WHERE id = ?`, clip(reason, statusReasonChars), runID); err != nil {
			return err
		}
		// Due again as soon as staff set it back to scheduled.
		_, err := tx.ExecContext(ctx, `UPDATE campaigns SET next_run_at = (SELECT scheduled_for FROM pushd_runs WHERE id = ?),
			updated_at = ? WHERE id = ?`, runID, now, campaignID)
		return err
	})
}

// SetRunReason writes reason on a running run and, while it is current, on
// its campaign: what is going on, such as a hold.
func (s *Store) SetRunReason(ctx context.Context, runID int64, reason string) error {
	return s.inTx(ctx, func(tx *sql.Tx) error {
		reason = clip(reason, statusReasonChars)
		res, err := tx.ExecContext(ctx, `UPDATE pushd_runs SET status_reason = ? WHERE id = ? AND status = 'running'`, reason, runID)
		if err != nil {
			return err
		}
		if n, _ := res.RowsAffected(); n == 0 {
			return nil
		}
		// With several apps, the row says whose hold it is.
		_, err = tx.ExecContext(ctx, `UPDATE campaigns c JOIN pushd_runs r ON r.campaign_id = c.id AND r.occurrence = c.run_count
			SET c.status_reason = IF(c.app LIKE '%,%' AND ? <> '', CONCAT(r.app, ': ', ?), ?)
			WHERE r.id = ? AND c.status = 'running'`, reason, reason, reason, runID)
		return err
	})
}

// FailRun stops a running run and its campaign with a reason staff can act
// on. Setting the campaign back to scheduled resumes the run.
func (s *Store) FailRun(ctx context.Context, runID int64, reason string, now time.Time) error {
	return s.inTx(ctx, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, `UPDATE pushd_runs SET status = 'failed', status_reason = ? WHERE id = ? AND status = 'running'`, clip(reason, statusReasonChars), runID)
		if err != nil {
			return err
		}
		if n, _ := res.RowsAffected(); n == 0 {
			return nil // already stopped by someone else
		}
		_, err = tx.ExecContext(ctx, `UPDATE campaigns c JOIN pushd_runs r ON r.campaign_id = c.id AND r.occurrence = c.run_count
			SET c.status = 'failed', c.status_reason = ?, c.next_run_at = r.scheduled_for, c.updated_at = ?
			WHERE r.id = ? AND c.status = 'running'`, clip(reason, statusReasonChars), now, runID)
		return err
	})
}

// RunSummary returns the run's counters and its most common failure reasons.
func (s *Store) RunSummary(ctx context.Context, runID int64) (pushd.RunCounts, []pushd.ReasonCount, error) {
	var c pushd.RunCounts
	err := s.db.QueryRowContext(ctx, `SELECT targeted, sent, failed, invalid_tokens, expired, capped, skipped FROM pushd_runs WHERE id = ?`, runID).
		Scan(&c.Targeted, &c.Sent, &c.Failed, &c.Invalid, &c.Expired, &c.Capped, &c.Skipped)
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

// FinishRun ends a drained run as done, or as expired, and, when it was the
// last unfinished run of its occurrence, moves its campaign on: back to
// scheduled when a next occurrence is set, else to the runs' final status
// (expired if any app's run expired). With several apps the campaign's
// reason joins the runs' reasons, each after its app's name. It is a no-op
// when the run is no longer running or (for done) still has open batches.
func (s *Store) FinishRun(ctx context.Context, runID int64, status pushd.Status, reason string, now time.Time) (bool, error) {
	var finished bool
	err := s.inTx(ctx, func(tx *sql.Tx) error {
		finished = false
		var (
			st         pushd.Status
			drained    bool
			campaignID int64
			occurrence int
		)
		if err := tx.QueryRowContext(ctx, `SELECT status, drained, campaign_id, occurrence FROM pushd_runs WHERE id = ? FOR UPDATE`, runID).
			Scan(&st, &drained, &campaignID, &occurrence); err != nil {
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
			status, clip(reason, statusReasonChars), now, runID); err != nil {
			return err
		}
		finished = true
		// A locking read: the runs of the other apps (or send times) may be
		// finishing at this moment, and a plain read would see each other
		// still running, so that neither ends the campaign. Two such
		// finishes deadlock here; InnoDB rolls one back, inTx retries it,
		// and it then sees the other's run finished.
		rows, err := tx.QueryContext(ctx, `SELECT app, status, status_reason FROM pushd_runs
			WHERE campaign_id = ? AND occurrence = ? ORDER BY id FOR UPDATE`, campaignID, occurrence)
		if err != nil {
			return err
		}
		var (
			reasons []string
			runs    int
			pending bool
			final   = pushd.Done
		)
		for rows.Next() {
			var app, why string
			var rs pushd.Status
			if err := rows.Scan(&app, &rs, &why); err != nil {
				rows.Close()
				return err
			}
			switch {
			case !rs.Finished():
				pending = true
			case rs == pushd.Expired:
				final = pushd.Expired
			}
			if why != "" {
				reasons = append(reasons, app+": "+why)
			}
			runs++
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return err
		}
		if pending {
			return nil // the campaign ends with its last app
		}
		if runs > 1 {
			// Each app's (or send time's) own words; none when all went well.
			reason = joinReasons(reasons)
		} else {
			final = status
		}
		_, err = tx.ExecContext(ctx, `UPDATE campaigns SET status = IF(next_run_at IS NULL, ?, 'scheduled'),
			status_reason = ?, finished_at = ?, updated_at = ? WHERE id = ? AND run_count = ? AND status = 'running'`,
			final, clip(reason, statusReasonChars), now, now, campaignID, occurrence)
		return err
	})
	return finished, err
}

// joinReasons joins the reasons of an occurrence's runs, the same words
// once, at most five of them.
func joinReasons(reasons []string) string {
	var out []string
	seen := map[string]bool{}
	for _, r := range reasons {
		if !seen[r] {
			seen[r] = true
			out = append(out, r)
		}
	}
	if len(out) > 5 {
		out = append(out[:5], fmt.Sprintf("and %d more in pushd_runs", len(out)-5))
	}
	return strings.Join(out, "; ")
}
