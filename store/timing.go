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
	"strings"
	"time"

	"github.com/pushd/pushd"
)

// groupedStart is what starting a grouped run did, for the campaign row.
type groupedStart struct {
	runIDs []int64
	// settled are groups recorded at the start: skipped, or expired.
	settled []settledGroup
	// invalid counts users whose timezone is no zone.
	invalid int64
	groups  []pushd.Group
	counts  map[string]int64 // users per timezone value
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
	for _, z := range invalid {
		out.invalid += counts[z]
	}
	out.groups = groups
	out.counts = counts
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
		if _, err := tx.ExecContext(ctx, `UPDATE pushd_runs SET part = ?, zone = ?, zones = ?, quiet_hours = ? WHERE id = ?`,
			i+1, g.Zone.String(), clip(strings.Join(g.Zones, ","), 60000), quiet, id); err != nil {
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
// them on the run and the campaign, and drains the run: its runner only
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
	if _, err := tx.ExecContext(ctx, `UPDATE pushd_runs SET `+col+` = `+col+` + ?, drained = 1, cursor_user_id = max_user_id WHERE id = ?`, n, sg.runID); err != nil {
		return err
	}
	_, err = tx.ExecContext(ctx, `UPDATE campaigns SET `+col+` = `+col+` + ? WHERE `+currentFor, n, campaignID, sg.runID)
	return err
}

// groupedReason says on the row how a grouped start spread the sends.
func groupedReason(local bool, groups []pushd.Group, counts map[string]int64, invalid int64, loc *time.Location, now time.Time) string {
	var (
		waiting []pushd.Group
		held    bool
		later   int64 // users whose send time is to come
	)
	for _, g := range groups {
		if g.Outcome == "" {
			waiting = append(waiting, g)
			if g.SendAt.After(now) {
				held = true
				for _, z := range g.Zones {
					later += counts[z]
				}
			}
		}
	}
	if len(waiting) == 0 || !local && !held {
		return "" // quiet hours hold nobody now
	}
	first, last := waiting[0].SendAt, waiting[len(waiting)-1].SendAt
	what := "sending at each user's local time"
	if !local {
		what = "holding users in their quiet hours"
	}
	s := fmt.Sprintf("%s: %d users wait for %d send times from %s to %s (%s)", what, later, len(waiting),
		first.In(loc).Format(time.DateTime), last.In(loc).Format(time.DateTime), loc)
	if invalid > 0 {
		s += fmt.Sprintf("; %d %s", invalid, invalidZones)
	}
	return s
}

// invalidZones ends the sentence that counts the users whose timezone is
// no zone.
const invalidZones = "users have a timezone that is no IANA zone and get the default zone's time"

// WaitingNote says on the campaign row, when one of its runs begins sending,
// how many of its users still wait for their local time or the end of
// quiet hours, and when the last send time is; with nobody left waiting it
// clears the note. It only touches a reason that is such a note.
func (s *Store) WaitingNote(ctx context.Context, r pushd.Run, now time.Time) error {
	var (
		users sql.NullInt64
		last  sql.NullTime
		local sql.NullBool
	)
	err := s.db.QueryRowContext(ctx, `SELECT COUNT(*), MAX(r.scheduled_for), MAX(c.local_time)
		FROM pushd_runs r JOIN campaigns c ON c.id = r.campaign_id JOIN pushd_run_members m ON m.run_id = r.id
		WHERE r.campaign_id = ? AND r.occurrence = ? AND r.status = 'running' AND r.scheduled_for > ?`,
		r.CampaignID, r.Occurrence, now).Scan(&users, &last, &local)
	if err != nil {
		return fmt.Errorf("count the users still waiting in campaign %d: %w", r.CampaignID, markUnavailable(err))
	}
	note := ""
	if users.Valid && users.Int64 > 0 {
		what := "sending at each user's local time"
		if !local.Bool {
			what = "holding users in their quiet hours"
		}
		note = fmt.Sprintf("%s: %d users still wait; the last send time is %s (%s)", what, users.Int64, last.Time.In(s.loc).Format(time.DateTime), s.loc)
	}
	// The start's count of users with an unusable timezone stays.
	// It is the reason's last clause.
	_, err = s.db.ExecContext(ctx, `UPDATE campaigns SET status_reason = CONCAT(?,
			IF(? <> '' AND status_reason LIKE CONCAT('%', ?), CONCAT('; ', SUBSTRING_INDEX(status_reason, '; ', -1)), ''))
		WHERE `+currentFor+` AND status = 'running'
		AND (status_reason = '' OR status_reason LIKE 'sending at each user''s local time:%' OR status_reason LIKE 'holding users in their quiet hours:%')`,
		note, note, invalidZones, r.CampaignID, r.ID)
	if err != nil {
		return fmt.Errorf("write the waiting note of campaign %d: %w", r.CampaignID, markUnavailable(err))
	}
	return nil
}
