package store

// Runs split by zone: a local-time campaign, or one of an app with quiet
// hours, gets a run per group of users that share send time and deadline
// (pushd.Timing.Groups). Each run has its own scheduled_for, deadline and
// members, so everything a run does (waiting, expiring, resuming after a
// crash) keeps each user's time with no state per waiting user.

import (
	"context"
	"database/sql"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/pushd/pushd"
)

// groupedStart is what starting a grouped run did, for the campaign row.
type groupedStart struct {
	runIDs []int64
	// settled are groups recorded at the start: skipped, or expired.
	settled []settledGroup
}

type settledGroup struct {
	runID int64
	group pushd.Group
}

// startGrouped creates the runs of one app's grouped occurrence and
// assigns every audience user to one, in one pass over users.
func startGrouped(ctx context.Context, tx *sql.Tx, c *pushd.Campaign, nr pushd.NewRun, maxID int64, now time.Time) (groupedStart, error) {
	var out groupedStart
	filter := ""
	if nr.Audience.Segmented() {
		var err error
		if filter, err = audienceFilter(ctx, tx, nr.Audience); err != nil {
			return out, err
		}
	}
	rows, err := tx.QueryContext(ctx, `SELECT COALESCE(u.timezone, ''), COUNT(*) FROM users u
		WHERE `+sameApp+` AND u.id <= ?`+filter+` GROUP BY 1`, nr.App, nr.App, maxID)
	if err != nil {
		return out, segmentQueryError(nr.Audience, fmt.Errorf("read the audience's time zones: %w", err))
	}
	counts := map[string]int64{}
	var zones []string
	for rows.Next() {
		var z string
		var n int64
		if err := rows.Scan(&z, &n); err != nil {
			rows.Close()
			return out, err
		}
		zones = append(zones, z)
		counts[z] = n
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return out, err
	}
	groups, invalid := nr.Timing.Groups(zones, now, loadZone)
	if len(groups) == 0 {
		// Nobody yet: one run with the default zone, so the occurrence has
		// a run that ends at once.
		groups, _ = nr.Timing.Groups([]string{""}, now, loadZone)
	}
	quiet := sql.NullString{}
	if !nr.Timing.Quiet.IsZero() {
		quiet = sql.NullString{String: nr.Timing.Quiet.String(), Valid: true}
	}
	var (
		caseSQL strings.Builder
		args    []any
	)
	caseSQL.WriteString("CASE COALESCE(u.timezone, '')")
	for i, g := range groups {
		id, err := insertRun(ctx, tx, c, nr, g.SendAt, g.Deadline, maxID, now, true)
		if err != nil {
			return out, err
		}
		var unknown int64
		for _, z := range g.Zones {
			if slices.Contains(invalid, z) {
				unknown += counts[z]
			}
		}
		// A settled group's run is drained from the start: it sends nothing.
		if _, err := tx.ExecContext(ctx, `UPDATE pushd_runs SET part = ?, zone = ?, zones = ?, quiet_hours = ?, unknown_zones = ?, drained = ?
			WHERE id = ?`, i+1, g.Zone.String(), clip(strings.Join(g.Zones, ","), 60000), quiet, unknown, g.Outcome != "", id); err != nil {
			return out, err
		}
		out.runIDs = append(out.runIDs, id)
		if g.Outcome != "" {
			out.settled = append(out.settled, settledGroup{runID: id, group: g})
		}
		for _, z := range g.Zones {
			caseSQL.WriteString(" WHEN ? THEN ?")
			args = append(args, z, id)
		}
	}
	caseSQL.WriteString(" END")
	args = append(args, nr.App, nr.App, maxID)
	res, err := tx.ExecContext(ctx, `INSERT INTO pushd_run_members (run_id, user_id, push_token, registered_at)
		SELECT `+caseSQL.String()+`, u.id, u.push_token, u.registered_at FROM users u WHERE `+sameApp+` AND u.id <= ?`+filter, args...)
	if err != nil {
		return out, segmentQueryError(nr.Audience, err)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return out, nil
	}
	// Each run's cursor stops at its last member.
	_, err = tx.ExecContext(ctx, `UPDATE pushd_runs r SET max_user_id = COALESCE((SELECT MAX(m.user_id) FROM pushd_run_members m WHERE m.run_id = r.id), 0)
		WHERE r.campaign_id = ? AND r.occurrence = ? AND r.app = ?`, c.ID, c.RunCount+1, nr.App)
	return out, err
}

// loadZone reads an IANA zone name; "local" is refused, as config does.
func loadZone(name string) (*time.Location, error) {
	if strings.EqualFold(name, "local") {
		return nil, fmt.Errorf("local is not a zone")
	}
	return time.LoadLocation(name)
}

// settle records every member of a settled group with its outcome, counts
// them on the run and the campaign. The run was created drained: its runner only
// finishes it.
func settle(ctx context.Context, tx *sql.Tx, campaignID int64, sg settledGroup, now time.Time) error {
	res, err := tx.ExecContext(ctx, `INSERT INTO pushd_deliveries (run_id, user_id, outcome, reason, attempts)
		SELECT run_id, user_id, ?, ?, 0 FROM pushd_run_members WHERE run_id = ?`, sg.group.Outcome, sg.group.Reason, sg.runID)
	if err != nil {
		return fmt.Errorf("record the users of run %d: %w", sg.runID, err)
	}
	n, _ := res.RowsAffected()
	col := "skipped"
	if sg.group.Outcome == pushd.ExpiredSend {
		col = "expired"
	}
	if _, err := tx.ExecContext(ctx, `UPDATE pushd_runs SET `+col+` = `+col+` + ?, cursor_user_id = max_user_id WHERE id = ?`, n, sg.runID); err != nil {
		return err
	}
	_, err = tx.ExecContext(ctx, `UPDATE campaigns SET `+col+` = `+col+` + ? WHERE `+currentFor, n, campaignID, sg.runID)
	return err
}

// waitingNote says how a campaign's occurrence (one app's runs, or all
// with app "") spreads its sends: at the start, how many users wait for
// how many send times; later (running), how many still wait and when the
// last send time is; and how many users have a timezone that is no zone.
// It is "" when nobody waits and, for quiet hours alone, nothing is held.
// It reads the runs: drained ones were settled at the start and send
// nothing.
func waitingNote(ctx context.Context, q querier, campaignID int64, occurrence int, app string, local, running bool, now time.Time, loc *time.Location) (string, error) {
	var (
		times       int
		first, last sql.NullTime
		waiting     int64
		unknown     sql.NullInt64
		lastWaiting sql.NullTime
		appFilter   = ""
		args        = []any{campaignID, occurrence}
	)
	if app != "" {
		appFilter = " AND r.app = ?"
		args = append(args, app)
	}
	err := q.QueryRowContext(ctx, `SELECT COUNT(DISTINCT IF(r.drained, NULL, r.scheduled_for)),
			MIN(IF(r.drained, NULL, r.scheduled_for)), MAX(IF(r.drained, NULL, r.scheduled_for)), SUM(r.unknown_zones)
		FROM pushd_runs r WHERE r.campaign_id = ? AND r.occurrence = ?`+appFilter, args...).Scan(&times, &first, &last, &unknown)
	if err == nil {
		err = q.QueryRowContext(ctx, `SELECT COUNT(*), MAX(r.scheduled_for) FROM pushd_runs r JOIN pushd_run_members m ON m.run_id = r.id
			WHERE r.campaign_id = ? AND r.occurrence = ?`+appFilter+` AND r.status = 'running' AND NOT r.drained AND r.scheduled_for > ?`,
			append(args, now)...).Scan(&waiting, &lastWaiting)
	}
	if err != nil {
		return "", fmt.Errorf("count the users waiting in campaign %d: %w", campaignID, err)
	}
	what := "sending at each user's local time"
	if !local {
		what = "holding users in their quiet hours"
	}
	var note string
	switch {
	case running && waiting == 0, !running && times == 0, !running && !local && waiting == 0:
		return "", nil
	case running:
		note = fmt.Sprintf("%s: %d users still wait; the last send time is %s (%s)", what, waiting, lastWaiting.Time.In(loc).Format(time.DateTime), loc)
	default:
		note = fmt.Sprintf("%s: %d users wait for %d send times from %s to %s (%s)", what, waiting, times,
			first.Time.In(loc).Format(time.DateTime), last.Time.In(loc).Format(time.DateTime), loc)
	}
	if unknown.Int64 > 0 {
		note += fmt.Sprintf("; %d users have a timezone that is no IANA zone and get the default zone's time", unknown.Int64)
	}
	return note, nil
}

// WaitingNote says on the campaign row, when one of its runs begins sending,
// how many of its users still wait for their local time or the end of
// quiet hours, and when the last send time is; with nobody left waiting it
// clears the note. It only replaces a reason that is such a note: a hold,
// say, stays.
func (s *Store) WaitingNote(ctx context.Context, r pushd.Run, now time.Time) error {
	var local bool
	if err := s.db.QueryRowContext(ctx, `SELECT local_time FROM campaigns WHERE id = ?`, r.CampaignID).Scan(&local); err != nil {
		return fmt.Errorf("read campaign %d: %w", r.CampaignID, markUnavailable(err))
	}
	note, err := waitingNote(ctx, s.db, r.CampaignID, r.Occurrence, "", local, true, now, s.loc)
	if err != nil {
		return markUnavailable(err)
	}
	_, err = s.db.ExecContext(ctx, `UPDATE campaigns SET status_reason = ? WHERE `+currentFor+` AND status = 'running'
		AND (status_reason = '' OR status_reason LIKE 'sending at each user''s local time:%' OR status_reason LIKE 'holding users in their quiet hours:%')`,
		note, r.CampaignID, r.ID)
	if err != nil {
		return fmt.Errorf("write the waiting note of campaign %d: %w", r.CampaignID, markUnavailable(err))
	}
	return nil
}
