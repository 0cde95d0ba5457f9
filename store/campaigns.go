package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/pushd/pushd"
)

const campaignColumns = `c.id, c.app, c.title, c.body, c.data, c.badge, c.sound, c.collapse_id,
	c.scheduled_at, c.expires_at, c.batch_size, c.cron, c.repeat_until, c.status, c.run_count,
	c.next_run_at, c.created_at, c.updated_at, r.id, r.status, r.scheduled_for, r.deadline`

func scanCampaign(sc interface{ Scan(...any) error }) (*pushd.Campaign, error) {
	var (
		c                              pushd.Campaign
		data, sound, collapse, cronStr sql.NullString
		badge, batch                   sql.NullInt32
		expires, until, next           sql.NullTime
		runID                          sql.NullInt64
		runStatus                      sql.NullString
		runFor, runDeadline            sql.NullTime
	)
	err := sc.Scan(&c.ID, &c.App, &c.Title, &c.Body, &data, &badge, &sound, &collapse,
		&c.ScheduledAt, &expires, &batch, &cronStr, &until, &c.Status, &c.RunCount,
		&next, &c.CreatedAt, &c.UpdatedAt, &runID, &runStatus, &runFor, &runDeadline)
	if err != nil {
		return nil, err
	}
	c.Data, c.Sound, c.CollapseID, c.Cron = data.String, sound.String, collapse.String, cronStr.String
	if badge.Valid {
		b := int(badge.Int32)
		c.Badge = &b
	}
	if batch.Valid {
		b := int(batch.Int32)
		c.BatchSize = &b
	}
	c.ExpiresAt = timePtr(expires)
	c.RepeatUntil = timePtr(until)
	c.NextRunAt = timePtr(next)
	if runID.Valid {
		c.CurrentRun = &pushd.RunState{ID: runID.Int64, Status: pushd.Status(runStatus.String), ScheduledFor: runFor.Time, Deadline: runDeadline.Time}
	}
	return &c, nil
}

func timePtr(t sql.NullTime) *time.Time {
	if !t.Valid {
		return nil
	}
	return &t.Time
}

// DueCampaigns lists the ids of scheduled campaigns whose next occurrence is
// at or before until, soonest first, with that time. The scheduler calls it
// with until a little ahead of now, to start each campaign on the dot.
func (s *Store) DueCampaigns(ctx context.Context, until time.Time, limit int) ([]pushd.Due, error) {
	rows, err := s.db.QueryContext(ctx, `
		SELECT id, COALESCE(next_run_at, scheduled_at) AS due_at FROM campaigns
		WHERE status = 'scheduled' AND COALESCE(next_run_at, scheduled_at) <= ?
		ORDER BY due_at, id LIMIT ?`, until, limit)
	if err != nil {
		return nil, fmt.Errorf("list due campaigns: %w", err)
	}
	defer rows.Close()
	var out []pushd.Due
	for rows.Next() {
		var d pushd.Due
		if err := rows.Scan(&d.CampaignID, &d.At); err != nil {
			return nil, err
		}
		out = append(out, d)
	}
	return out, rows.Err()
}

// UpcomingCampaigns returns up to limit scheduled campaigns whose next
// occurrence is after after, soonest first: the rows not due yet, which
// the scheduler checks as soon as they arrive.
func (s *Store) UpcomingCampaigns(ctx context.Context, after time.Time, limit int) ([]*pushd.Campaign, error) {
	rows, err := s.db.QueryContext(ctx, `
		SELECT `+campaignColumns+`
		FROM campaigns c LEFT JOIN pushd_runs r ON r.id = c.current_run_id
		WHERE c.status = 'scheduled' AND COALESCE(c.next_run_at, c.scheduled_at) > ?
		ORDER BY COALESCE(c.next_run_at, c.scheduled_at), c.id LIMIT ?`, after, limit)
	if err != nil {
		return nil, fmt.Errorf("list upcoming campaigns: %w", markUnavailable(err))
	}
	defer rows.Close()
	var out []*pushd.Campaign
	for rows.Next() {
		c, err := scanCampaign(rows)
		if err != nil {
			return nil, fmt.Errorf("list upcoming campaigns: %w", err)
		}
		out = append(out, c)
	}
	return out, markUnavailable(rows.Err())
}

// Decide locks one scheduled campaign (skipping it if another instance holds
// it), asks decide what to do and applies the decision in the same
// transaction. It returns the decision and, for Start and Resume, the run id.
func (s *Store) Decide(ctx context.Context, id int64, now time.Time, decide func(*pushd.Campaign) pushd.Decision) (pushd.Decision, int64, error) {
	var (
		d     pushd.Decision
		runID int64
	)
	err := s.inTx(ctx, func(tx *sql.Tx) error {
		c, err := scanCampaign(tx.QueryRowContext(ctx, `
			SELECT `+campaignColumns+`
			FROM campaigns c LEFT JOIN pushd_runs r ON r.id = c.current_run_id
			WHERE c.id = ? AND c.status = 'scheduled'
			FOR UPDATE SKIP LOCKED`, id))
		if errors.Is(err, sql.ErrNoRows) {
			return pushd.ErrNotDue
		}
		if err != nil {
			return fmt.Errorf("lock campaign %d: %w", id, err)
		}
		d = decide(c)
		runID, err = s.apply(ctx, tx, c, d, now)
		return err
	})
	return d, runID, err
}

func (s *Store) apply(ctx context.Context, tx *sql.Tx, c *pushd.Campaign, d pushd.Decision, now time.Time) (int64, error) {
	switch d.Action {
	case pushd.Skip:
		return 0, nil
	case pushd.Fail:
		_, err := tx.ExecContext(ctx, `UPDATE campaigns SET status = 'failed', status_reason = ?,
			finished_at = ?, updated_at = ? WHERE id = ?`, clip(d.Reason, statusReasonChars), now, now, c.ID)
		return 0, err
	case pushd.Expire:
		status := pushd.Expired
		if d.NextRunAt != nil {
			status = pushd.Scheduled
		}
		_, err := tx.ExecContext(ctx, `UPDATE campaigns SET status = ?, status_reason = ?, next_run_at = ?,
			finished_at = ?, updated_at = ? WHERE id = ?`, status, clip(d.Reason, statusReasonChars), d.NextRunAt, now, now, c.ID)
		return 0, err
	case pushd.Resume:
		if c.CurrentRun == nil {
			return 0, fmt.Errorf("resume campaign %d: no run to resume", c.ID)
		}
		reason := clip(d.Reason, statusReasonChars)
		if _, err := tx.ExecContext(ctx, `UPDATE pushd_runs SET status = 'running', status_reason = ? WHERE id = ?`, reason, c.CurrentRun.ID); err != nil {
			return 0, err
		}
		_, err := tx.ExecContext(ctx, `UPDATE campaigns SET status = 'running', status_reason = ?, next_run_at = ?,
			updated_at = ? WHERE id = ?`, reason, d.NextRunAt, now, c.ID)
		return c.CurrentRun.ID, err
	case pushd.Start:
		var maxID sql.NullInt64
		if err := tx.QueryRowContext(ctx, `SELECT MAX(id) FROM users WHERE app = ?`, c.App).Scan(&maxID); err != nil {
			return 0, fmt.Errorf("freeze audience: %w", err)
		}
		res, err := tx.ExecContext(ctx, `INSERT INTO pushd_runs (campaign_id, occurrence, app, status, notification,
			scheduled_for, deadline, batch_size, max_user_id, cursor_user_id, started_at)
			VALUES (?, ?, ?, 'running', ?, ?, ?, ?, ?, ?, ?)`,
			c.ID, c.RunCount+1, c.App, d.Run.Notification, d.Run.ScheduledFor, d.Run.Deadline,
			d.Run.BatchSize, maxID.Int64, minUserID, now)
		if err != nil {
			return 0, fmt.Errorf("create run: %w", err)
		}
		runID, err := res.LastInsertId()
		if err != nil {
			return 0, err
		}
		_, err = tx.ExecContext(ctx, `UPDATE campaigns SET status = 'running', status_reason = ?, run_count = run_count + 1,
			current_run_id = ?, next_run_at = ?, targeted = 0, sent = 0, failed = 0, invalid_tokens = 0, expired = 0,
			started_at = ?, finished_at = NULL, updated_at = ? WHERE id = ?`,
			clip(d.Reason, statusReasonChars), runID, d.NextRunAt, now, now, c.ID)
		return runID, err
	}
	return 0, fmt.Errorf("unknown decision %d", d.Action)
}

// minUserID is below every users.id, so the first batch starts after it.
const minUserID = -1 << 63
