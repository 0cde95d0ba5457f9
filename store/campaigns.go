package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/pushd/pushd"
)

// campaignColumns reads a campaign and its current occurrence. With several
// apps the occurrence has a run per app: its status is that of a run not
// finished yet, if there is one, so that a paused or failed app is resumed.
const campaignColumns = `c.id, c.app, c.segment, c.exclude_segment, c.ignore_frequency_cap,
	c.local_time, c.late_policy, c.ignore_quiet_hours, c.max_per_minute, c.title, c.body, c.data, c.badge, c.sound, c.collapse_id,
	c.subtitle, c.image_url, c.link, c.category, c.thread_id, c.channel_id, c.interruption_level, c.relevance_score,
	c.priority, c.silent, c.overrides, c.holdout_percent, c.scheduled_at, c.expires_at, c.batch_size, c.cron, c.repeat_until, c.status, c.run_count,
	c.next_run_at, c.created_at, c.updated_at, r.id,
	COALESCE((SELECT o.status FROM pushd_runs o WHERE o.campaign_id = c.id AND o.occurrence = r.occurrence
		AND o.status NOT IN ('done', 'expired', 'cancelled') ORDER BY o.id LIMIT 1), r.status),
	r.scheduled_for, (SELECT MAX(o.deadline) FROM pushd_runs o WHERE o.campaign_id = c.id AND o.occurrence = r.occurrence)`

func scanCampaign(sc interface{ Scan(...any) error }) (*pushd.Campaign, error) {
	var (
		c                              pushd.Campaign
		data, sound, collapse, cronStr sql.NullString
		segment, exclude, late         sql.NullString
		perMinute                      sql.NullInt32
		badge, batch                   sql.NullInt32
		expires, until, next           sql.NullTime
		runID                          sql.NullInt64
		runStatus                      sql.NullString
		runFor, runDeadline            sql.NullTime
		subtitle, image, link, category, thread, channel,
		level, priority, overrides sql.NullString
		relevance sql.NullFloat64
	)
	err := sc.Scan(&c.ID, &c.App, &segment, &exclude, &c.IgnoreFrequencyCap,
		&c.LocalTime, &late, &c.IgnoreQuietHours, &perMinute, &c.Title, &c.Body, &data, &badge, &sound, &collapse,
		&subtitle, &image, &link, &category, &thread, &channel, &level, &relevance, &priority, &c.Silent, &overrides, &c.HoldoutPercent,
		&c.ScheduledAt, &expires, &batch, &cronStr, &until, &c.Status, &c.RunCount,
		&next, &c.CreatedAt, &c.UpdatedAt, &runID, &runStatus, &runFor, &runDeadline)
	if err != nil {
		return nil, err
	}
	c.Data, c.Sound, c.CollapseID, c.Cron = data.String, sound.String, collapse.String, cronStr.String
	c.Segment, c.ExcludeSegment = strings.TrimSpace(segment.String), strings.TrimSpace(exclude.String)
	c.LatePolicy = late.String
	c.Subtitle, c.ImageURL, c.Link, c.Category = subtitle.String, image.String, link.String, category.String
	c.ThreadID, c.ChannelID, c.InterruptionLevel = thread.String, channel.String, level.String
	c.Priority, c.Overrides = priority.String, overrides.String
	if relevance.Valid {
		c.RelevanceScore = &relevance.Float64
	}
	if perMinute.Valid {
		n := int(perMinute.Int32)
		c.MaxPerMinute = &n
	}
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
		SELECT id, COALESCE(next_run_at, scheduled_at), local_time FROM campaigns c
		WHERE status = 'scheduled' AND `+dueAt+` <= ?
		ORDER BY `+dueAt+`, id LIMIT ?`, until, limit)
	if err != nil {
		return nil, fmt.Errorf("list due campaigns: %w", err)
	}
	defer rows.Close()
	var out []pushd.Due
	for rows.Next() {
		var (
			d     pushd.Due
			local bool
		)
		if err := rows.Scan(&d.CampaignID, &d.At, &local); err != nil {
			return nil, err
		}
		if local {
			d.At = pushd.LocalDue(d.At)
		}
		out = append(out, d)
	}
	return out, rows.Err()
}

// dueAt is a campaign's next occurrence in SQL. A local-time campaign's is a
// wall clock that falls due a minute before UTC+14 reaches it: up to 26
// hours and a minute before the same DATETIME in the server's zone,
// whatever that zone is, so the list is early and DueCampaigns works out
// the instant (pushd.LocalDue).
const dueAt = `IF(c.local_time, COALESCE(c.next_run_at, c.scheduled_at) - INTERVAL 1561 MINUTE, COALESCE(c.next_run_at, c.scheduled_at))`

// UpcomingCampaigns returns up to limit scheduled campaigns whose next
// occurrence is after after, soonest first: the rows not due yet, which
// the scheduler checks as soon as they arrive.
func (s *Store) UpcomingCampaigns(ctx context.Context, after time.Time, limit int) ([]*pushd.Campaign, error) {
	rows, err := s.db.QueryContext(ctx, `
		SELECT `+campaignColumns+`
		FROM campaigns c LEFT JOIN pushd_runs r ON r.id = c.current_run_id
		WHERE c.status = 'scheduled' AND `+dueAt+` > ?
		ORDER BY `+dueAt+`, c.id LIMIT ?`, after, limit)
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
	if err := rows.Err(); err != nil {
		return nil, markUnavailable(err)
	}
	rows.Close()
	return out, loadTranslations(ctx, s.db, out...)
}

// Decide locks one scheduled campaign (skipping it if another instance holds
// it), asks decide what to do and applies the decision in the same
// transaction. It returns the decision and, for Start and Resume, the ids
// of the runs (one per app). A Start whose segment cannot be read becomes
// a Fail with the segment's problem as the reason.
//
// The transaction is READ COMMITTED: evaluating a segment reads the
// company's tables, and at REPEATABLE READ an INSERT … SELECT would lock
// every row it read until the commit.
func (s *Store) Decide(ctx context.Context, id int64, now time.Time, decide func(*pushd.Campaign) pushd.Decision) (pushd.Decision, []int64, error) {
	var (
		d      pushd.Decision
		runIDs []int64
		segErr *pushd.SegmentError
	)
	rc := &sql.TxOptions{Isolation: sql.LevelReadCommitted}
	err := s.inTxOpts(ctx, rc, func(tx *sql.Tx) error {
		c, err := lockScheduled(ctx, tx, id)
		if err != nil {
			return err
		}
		d = decide(c)
		runIDs, err = s.apply(ctx, tx, c, d, now)
		return err
	})
	if errors.As(err, &segErr) {
		// Rolled back; fail the row on its own, as it now reads.
		err = s.inTx(ctx, func(tx *sql.Tx) error {
			c, err := lockScheduled(ctx, tx, id)
			if err != nil {
				return err
			}
			d = pushd.Decision{Action: pushd.Fail, Reason: segErr.Error()}
			runIDs, err = s.apply(ctx, tx, c, d, now)
			return err
		})
	}
	return d, runIDs, err
}

func lockScheduled(ctx context.Context, tx *sql.Tx, id int64) (*pushd.Campaign, error) {
	c, err := scanCampaign(tx.QueryRowContext(ctx, `
		SELECT `+campaignColumns+`
		FROM campaigns c LEFT JOIN pushd_runs r ON r.id = c.current_run_id
		WHERE c.id = ? AND c.status = 'scheduled'
		FOR UPDATE SKIP LOCKED`, id))
	if errors.Is(err, sql.ErrNoRows) {
		return nil, pushd.ErrNotDue
	}
	if err != nil {
		return nil, fmt.Errorf("lock campaign %d: %w", id, err)
	}
	return c, loadTranslations(ctx, tx, c)
}

func (s *Store) apply(ctx context.Context, tx *sql.Tx, c *pushd.Campaign, d pushd.Decision, now time.Time) ([]int64, error) {
	switch d.Action {
	case pushd.Skip:
		return nil, nil
	case pushd.Fail:
		_, err := tx.ExecContext(ctx, `UPDATE campaigns SET status = 'failed', status_reason = ?,
			finished_at = ?, updated_at = ? WHERE id = ?`, clip(d.Reason, statusReasonChars), now, now, c.ID)
		return nil, err
	case pushd.Expire:
		status := pushd.Expired
		if d.NextRunAt != nil {
			status = pushd.Scheduled
		}
		_, err := tx.ExecContext(ctx, `UPDATE campaigns SET status = ?, status_reason = ?, next_run_at = ?,
			finished_at = ?, updated_at = ? WHERE id = ?`, status, clip(d.Reason, statusReasonChars), d.NextRunAt, now, now, c.ID)
		return nil, err
	case pushd.Resume:
		if c.CurrentRun == nil {
			return nil, fmt.Errorf("resume campaign %d: no run to resume", c.ID)
		}
		reason := clip(d.Reason, statusReasonChars)
		rows, err := tx.QueryContext(ctx, `SELECT id FROM pushd_runs WHERE campaign_id = ? AND occurrence = ?
			AND status NOT IN ('done', 'expired', 'cancelled') ORDER BY id FOR UPDATE`, c.ID, c.RunCount)
		if err != nil {
			return nil, err
		}
		ids, err := scanIDs(rows)
		if err != nil {
			return nil, err
		}
		for _, id := range ids {
			if _, err := tx.ExecContext(ctx, `UPDATE pushd_runs SET status = 'running', status_reason = ? WHERE id = ?`, reason, id); err != nil {
				return nil, err
			}
		}
		_, err = tx.ExecContext(ctx, `UPDATE campaigns SET status = 'running', status_reason = ?, next_run_at = ?,
			updated_at = ? WHERE id = ?`, reason, d.NextRunAt, now, c.ID)
		return ids, err
	case pushd.Start:
		var (
			ids     []int64
			settled []settledGroup
			reasons []string
		)
		for _, nr := range d.Runs {
			if !nr.Timing.Grouped() {
				id, err := startRun(ctx, tx, c, nr, now)
				if err != nil {
					return nil, err
				}
				ids = append(ids, id)
				continue
			}
			maxID, err := appMaxID(ctx, tx, nr.App)
			if err != nil {
				return nil, err
			}
			g, err := startGrouped(ctx, tx, c, nr, maxID, now)
			if err != nil {
				return nil, err
			}
			ids = append(ids, g.runIDs...)
			settled = append(settled, g.settled...)
			r, err := waitingNote(ctx, tx, c.ID, c.RunCount+1, nr.App, nr.Timing.Local, false, now, s.loc)
			if err != nil {
				return nil, err
			}
			if r != "" {
				if len(d.Runs) > 1 {
					r = nr.App + ": " + r
				}
				reasons = append(reasons, r)
			}
		}
		if len(ids) == 0 {
			return nil, fmt.Errorf("start campaign %d: no app to start", c.ID)
		}
		reason := d.Reason
		if len(reasons) > 0 {
			reason = strings.Join(append(reasons, d.Reason), "; ")
			reason = strings.TrimSuffix(reason, "; ")
		}
		// targeted keeps the estimate until the runner that started the
		// run has counted the audience, in the background.
		_, err := tx.ExecContext(ctx, `UPDATE campaigns SET status = 'running', status_reason = ?, run_count = run_count + 1,
			current_run_id = ?, next_run_at = ?, sent = 0, failed = 0, invalid_tokens = 0, expired = 0,
			capped = 0, skipped = 0, opened = 0, held_out = 0, started_at = ?, finished_at = NULL, updated_at = ? WHERE id = ?`,
			clip(reason, statusReasonChars), ids[0], d.NextRunAt, now, now, c.ID)
		if err != nil {
			return nil, err
		}
		for _, sg := range settled {
			if err := settle(ctx, tx, c.ID, sg, now); err != nil {
				return nil, err
			}
		}
		return ids, nil
	}
	return nil, fmt.Errorf("unknown decision %d", d.Action)
}

// startRun creates one app's run of the campaign's next occurrence, with
// its audience frozen: users.id up to the app's highest now, and with a
// segment the members evaluated now.
func startRun(ctx context.Context, tx *sql.Tx, c *pushd.Campaign, nr pushd.NewRun, now time.Time) (int64, error) {
	maxID, err := appMaxID(ctx, tx, nr.App)
	if err != nil {
		return 0, err
	}
	runID, err := insertRun(ctx, tx, c, nr, nr.ScheduledFor, nr.Deadline, maxID, now, nr.Audience.Segmented())
	if err != nil || !nr.Audience.Segmented() {
		return runID, err
	}
	if _, err := materialise(ctx, tx, runID, nr.App, maxID, nr.Audience); err != nil {
		return 0, err
	}
	return runID, nil
}

// appMaxID is the highest users.id of an app: the audience freeze.
func appMaxID(ctx context.Context, tx *sql.Tx, app string) (int64, error) {
	var maxID sql.NullInt64
	if err := tx.QueryRowContext(ctx, `SELECT MAX(id) FROM users WHERE app = ?`, app).Scan(&maxID); err != nil {
		return 0, fmt.Errorf("freeze audience: %w", err)
	}
	return maxID.Int64, nil
}

// insertRun inserts one run of the campaign's next occurrence.
func insertRun(ctx context.Context, tx *sql.Tx, c *pushd.Campaign, nr pushd.NewRun, sendAt, deadline time.Time, maxID int64, now time.Time, members bool) (int64, error) {
	var seg, excl sql.NullString
	if nr.Audience.Segment != "" {
		seg = sql.NullString{String: nr.Audience.Segment, Valid: true}
	}
	if nr.Audience.Exclude != "" {
		excl = sql.NullString{String: nr.Audience.Exclude, Valid: true}
	}
	perMinute := sql.NullInt64{Int64: int64(nr.MaxPerMinute), Valid: nr.MaxPerMinute > 0}
	res, err := tx.ExecContext(ctx, `INSERT INTO pushd_runs (campaign_id, occurrence, app, status, notification,
		scheduled_for, deadline, batch_size, max_user_id, cursor_user_id, segment, exclude_segment, members,
		user_data, cap_count, cap_window_s, max_per_minute, started_at)
		VALUES (?, ?, ?, 'running', ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
		c.ID, c.RunCount+1, nr.App, nr.Notification, sendAt, deadline,
		nr.BatchSize, maxID, minUserID, seg, excl, members, nr.UserData,
		nr.Cap.Count, int64(nr.Cap.Window.Seconds()), perMinute, now)
	if err != nil {
		return 0, fmt.Errorf("create run: %w", err)
	}
	return res.LastInsertId()
}

func scanIDs(rows *sql.Rows) ([]int64, error) {
	defer rows.Close()
	var ids []int64
	for rows.Next() {
		var id int64
		if err := rows.Scan(&id); err != nil {
			return nil, err
		}
		ids = append(ids, id)
	}
	return ids, rows.Err()
}

// minUserID is below every users.id, so the first batch starts after it.
const minUserID = -1 << 63
