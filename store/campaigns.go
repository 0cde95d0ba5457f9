package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"
)

// Status is a campaign's or a run's status, as stored in the status columns.
type Status string

// Campaign and run statuses. Staff write Scheduled, Paused and Cancelled;
// pushd writes the rest.
const (
	Scheduled Status = "scheduled"
	Running   Status = "running"
	Paused    Status = "paused"
	Cancelled Status = "cancelled"
	Done      Status = "done"
	Failed    Status = "failed"
	Expired   Status = "expired"
)

// Finished reports whether a run in this status will never send again.
func (s Status) Finished() bool { return s == Done || s == Expired || s == Cancelled }

// Campaign is a row of the campaigns table as staff wrote it.
type Campaign struct {
	ID          int64
	App         string
	Title       string
	Body        string
	Data        string // raw JSON text; empty when NULL
	Badge       *int
	Sound       string
	CollapseID  string
	ScheduledAt time.Time
	ExpiresAt   *time.Time
	BatchSize   *int
	Cron        string
	RepeatUntil *time.Time
	Status      Status
	RunCount    int
	NextRunAt   *time.Time
	// CurrentRun is the latest run, nil before the first.
	CurrentRun *RunState
}

// RunState is the part of a run the scheduler decides on.
type RunState struct {
	ID           int64
	Status       Status
	ScheduledFor time.Time
	Deadline     time.Time
}

// Action is what the scheduler decided to do with a due campaign.
type Action int

// The scheduler's decisions.
const (
	// Skip leaves the row alone.
	Skip Action = iota
	// Fail marks the campaign failed with Reason (a data error).
	Fail
	// Expire marks an occurrence that never started expired: its deadline
	// passed first. With NextRunAt the campaign stays scheduled. (A started
	// run that outlives its deadline is resumed and expires in the runner,
	// which records its remaining users.)
	Expire
	// Start begins a new run described by Run.
	Start
	// Resume continues the campaign's current, unfinished run.
	Resume
)

// Decision is the scheduler's verdict on one due campaign.
type Decision struct {
	Action Action
	Reason string
	// NextRunAt is the occurrence after this one for recurring campaigns;
	// nil means none (the campaign ends with this run).
	NextRunAt *time.Time
	Run       NewRun
}

// NewRun describes a run to create.
type NewRun struct {
	ScheduledFor time.Time
	Deadline     time.Time
	BatchSize    int
	Notification []byte // JSON snapshot, decoded by the campaign package
}

// ErrNotDue is returned by Decide when another instance took the campaign or
// staff changed it since it was listed.
var ErrNotDue = errors.New("campaign is no longer due")

const campaignColumns = `c.id, c.app, c.title, c.body, c.data, c.badge, c.sound, c.collapse_id,
	c.scheduled_at, c.expires_at, c.batch_size, c.cron, c.repeat_until, c.status, c.run_count,
	c.next_run_at, r.id, r.status, r.scheduled_for, r.deadline`

func scanCampaign(sc interface{ Scan(...any) error }) (*Campaign, error) {
	var (
		c                              Campaign
		data, sound, collapse, cronStr sql.NullString
		badge, batch                   sql.NullInt32
		expires, until, next           sql.NullTime
		runID                          sql.NullInt64
		runStatus                      sql.NullString
		runFor, runDeadline            sql.NullTime
	)
	err := sc.Scan(&c.ID, &c.App, &c.Title, &c.Body, &data, &badge, &sound, &collapse,
		&c.ScheduledAt, &expires, &batch, &cronStr, &until, &c.Status, &c.RunCount,
		&next, &runID, &runStatus, &runFor, &runDeadline)
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
		c.CurrentRun = &RunState{ID: runID.Int64, Status: Status(runStatus.String), ScheduledFor: runFor.Time, Deadline: runDeadline.Time}
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
func (s *Store) DueCampaigns(ctx context.Context, until time.Time, limit int) ([]Due, error) {
	rows, err := s.db.QueryContext(ctx, `
		SELECT id, COALESCE(next_run_at, scheduled_at) AS due_at FROM campaigns
		WHERE status = 'scheduled' AND COALESCE(next_run_at, scheduled_at) <= ?
		ORDER BY due_at, id LIMIT ?`, until, limit)
	if err != nil {
		return nil, fmt.Errorf("list due campaigns: %w", err)
	}
	defer rows.Close()
	var out []Due
	for rows.Next() {
		var d Due
		if err := rows.Scan(&d.CampaignID, &d.At); err != nil {
			return nil, err
		}
		out = append(out, d)
	}
	return out, rows.Err()
}

// Due is a campaign due at a time.
type Due struct {
	CampaignID int64
	At         time.Time
}

// Decide locks one scheduled campaign (skipping it if another instance holds
// it), asks decide what to do and applies the decision in the same
// transaction. It returns the decision and, for Start and Resume, the run id.
func (s *Store) Decide(ctx context.Context, id int64, now time.Time, decide func(*Campaign) Decision) (Decision, int64, error) {
	var (
		d     Decision
		runID int64
	)
	err := s.inTx(ctx, func(tx *sql.Tx) error {
		c, err := scanCampaign(tx.QueryRowContext(ctx, `
			SELECT `+campaignColumns+`
			FROM campaigns c LEFT JOIN pushd_runs r ON r.id = c.current_run_id
			WHERE c.id = ? AND c.status = 'scheduled'
			FOR UPDATE SKIP LOCKED`, id))
		if errors.Is(err, sql.ErrNoRows) {
			return ErrNotDue
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

func (s *Store) apply(ctx context.Context, tx *sql.Tx, c *Campaign, d Decision, now time.Time) (int64, error) {
	switch d.Action {
	case Skip:
		return 0, nil
	case Fail:
		_, err := tx.ExecContext(ctx, `UPDATE campaigns SET status = 'failed', status_reason = ?,
			finished_at = ?, updated_at = ? WHERE id = ?`, clip(d.Reason), now, now, c.ID)
		return 0, err
	case Expire:
		status := Expired
		if d.NextRunAt != nil {
			status = Scheduled
		}
		_, err := tx.ExecContext(ctx, `UPDATE campaigns SET status = ?, status_reason = ?, next_run_at = ?,
			finished_at = ?, updated_at = ? WHERE id = ?`, status, clip(d.Reason), d.NextRunAt, now, now, c.ID)
		return 0, err
	case Resume:
		if c.CurrentRun == nil {
			return 0, fmt.Errorf("resume campaign %d: no run to resume", c.ID)
		}
		if _, err := tx.ExecContext(ctx, `UPDATE pushd_runs SET status = 'running', status_reason = '' WHERE id = ?`, c.CurrentRun.ID); err != nil {
			return 0, err
		}
		_, err := tx.ExecContext(ctx, `UPDATE campaigns SET status = 'running', status_reason = '', next_run_at = ?,
			updated_at = ? WHERE id = ?`, d.NextRunAt, now, c.ID)
		return c.CurrentRun.ID, err
	case Start:
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
			clip(d.Reason), runID, d.NextRunAt, now, now, c.ID)
		return runID, err
	}
	return 0, fmt.Errorf("unknown decision %d", d.Action)
}

// minUserID is below every users.id, so the first batch starts after it.
const minUserID = -1 << 63

// clip keeps a reason within status_reason's 1024 characters.
func clip(s string) string {
	r := []rune(s)
	if len(r) <= 1000 {
		return s
	}
	return string(r[:1000]) + "…"
}
