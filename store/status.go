package store

import (
	"context"
	"database/sql"
	"fmt"
	"strings"

	"github.com/pushd/pushd"
)

// RecentCampaigns returns every running campaign and the limit most recent
// others (by id), newest first. A limit of 0 or less means 20.
func (s *Store) RecentCampaigns(ctx context.Context, limit int) ([]pushd.CampaignStatus, error) {
	if limit <= 0 {
		limit = 20
	}
	// The subquery finds the id of the limit-th newest campaign; a scalar
	// subquery with LIMIT works on both MySQL 8 and MariaDB, where IN
	// (… LIMIT) does not.
	rows, err := s.db.QueryContext(ctx, `
		SELECT c.id, c.app, c.title, c.status, c.status_reason, c.targeted, c.sent, c.failed,
			c.invalid_tokens, c.expired, c.capped, c.skipped, c.held_out, c.run_count, c.cron, c.scheduled_at, c.expires_at,
			c.next_run_at, c.updated_at,
			r.id, r.occurrence, r.status, r.started_at, r.deadline, r.finished_at
		FROM campaigns c LEFT JOIN pushd_runs r ON r.id = c.current_run_id
		WHERE c.status = 'running'
			OR c.id >= COALESCE((SELECT id FROM campaigns ORDER BY id DESC LIMIT 1 OFFSET ?), 0)
		ORDER BY c.id DESC`, limit-1)
	if err != nil {
		return nil, fmt.Errorf("list recent campaigns: %w", err)
	}
	defer rows.Close()
	var out []pushd.CampaignStatus
	for rows.Next() {
		var (
			c                        pushd.CampaignStatus
			cronStr                  sql.NullString
			expires, next            sql.NullTime
			runID                    sql.NullInt64
			occurrence               sql.NullInt32
			runStatus                sql.NullString
			started, deadline, ended sql.NullTime
		)
		if err := rows.Scan(&c.ID, &c.App, &c.Title, &c.Status, &c.Reason, &c.Targeted, &c.Sent, &c.Failed,
			&c.Invalid, &c.Expired, &c.Capped, &c.Skipped, &c.HeldOut, &c.RunCount, &cronStr, &c.ScheduledAt, &expires,
			&next, &c.UpdatedAt,
			&runID, &occurrence, &runStatus, &started, &deadline, &ended); err != nil {
			return nil, fmt.Errorf("list recent campaigns: %w", err)
		}
		c.Cron = cronStr.String
		c.ExpiresAt = timePtr(expires)
		c.NextRunAt = timePtr(next)
		if runID.Valid {
			c.Run = &pushd.RunTiming{ID: runID.Int64, Occurrence: int(occurrence.Int32), Status: pushd.Status(runStatus.String),
				StartedAt: started.Time, Deadline: deadline.Time, FinishedAt: timePtr(ended)}
		}
		out = append(out, c)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list recent campaigns: %w", err)
	}
	rows.Close()
	if err := s.campaignLocales(ctx, out); err != nil {
		return nil, fmt.Errorf("list recent campaigns: %w", err)
	}
	if err := s.campaignVariants(ctx, out); err != nil {
		return nil, fmt.Errorf("list recent campaigns: %w", err)
	}
	for i := range out {
		c := &out[i]
		if c.Run == nil || (c.Status != pushd.Running && !strings.Contains(c.App, ",")) {
			continue
		}
		if err := s.occurrenceRuns(ctx, c); err != nil {
			return nil, fmt.Errorf("list recent campaigns: %w", err)
		}
	}
	return out, nil
}

// occurrenceRuns fills in the runs of a campaign's current occurrence and,
// when it names several apps, the sums per app.
func (s *Store) occurrenceRuns(ctx context.Context, c *pushd.CampaignStatus) error {
	rows, err := s.db.QueryContext(ctx, `SELECT app, id, status, targeted, sent, failed, invalid_tokens, expired, capped, skipped
		FROM pushd_runs WHERE campaign_id = ? AND occurrence = ? ORDER BY id`, c.ID, c.Run.Occurrence)
	if err != nil {
		return err
	}
	defer rows.Close()
	byApp := map[string]*pushd.AppRun{}
	var apps []*pushd.AppRun
	for rows.Next() {
		var (
			r  pushd.AppRun
			id int64
		)
		if err := rows.Scan(&r.App, &id, &r.Status, &r.Targeted, &r.Sent, &r.Failed, &r.Invalid, &r.Expired, &r.Capped, &r.Skipped); err != nil {
			return err
		}
		c.Runs = append(c.Runs, id)
		a := byApp[r.App]
		if a == nil {
			a = &pushd.AppRun{App: r.App, Status: r.Status}
			byApp[r.App] = a
			apps = append(apps, a)
		}
		a.RunIDs = append(a.RunIDs, id)
		if !r.Status.Finished() {
			a.Status = r.Status // an app is running while any of its runs is
		}
		a.Targeted += r.Targeted
		a.Sent += r.Sent
		a.Failed += r.Failed
		a.Invalid += r.Invalid
		a.Expired += r.Expired
		a.Capped += r.Capped
		a.Skipped += r.Skipped
	}
	if err := rows.Err(); err != nil {
		return err
	}
	if len(apps) > 1 {
		for _, a := range apps {
			c.Apps = append(c.Apps, *a)
		}
	}
	return nil
}
