package store

// Segments: tables or views named segment_<name> with a user_id column,
// which narrow a campaign's audience. A run's members are evaluated once,
// when it starts, into pushd_run_members.

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"

	"github.com/go-sql-driver/mysql"

	"github.com/pushd/pushd"
)

// querier is what segment checks need of a *sql.DB or *sql.Tx.
type querier interface {
	QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error)
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
	ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error)
}

// segmentTable quotes a segment's table name. Plan lets only letters,
// digits and _ through; the check here keeps the store safe on its own.
func segmentTable(name string) (string, error) {
	if name == "" || len(name) > 56 || strings.ContainsFunc(name, func(r rune) bool {
		return !(r == '_' || r >= '0' && r <= '9' || r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z')
	}) {
		return "", &pushd.SegmentError{Segment: name, Problem: "is not a segment name: use letters, digits and _ only"}
	}
	return "`segment_" + name + "`", nil
}

// checkSegment reports a segment that does not exist or has no user_id
// column as a *pushd.SegmentError.
func checkSegment(ctx context.Context, q querier, name string) error {
	if _, err := segmentTable(name); err != nil {
		return err
	}
	table := "segment_" + name
	var tables int
	err := q.QueryRowContext(ctx, `SELECT COUNT(*) FROM information_schema.TABLES WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = ?`,
		table).Scan(&tables)
	if err != nil {
		return fmt.Errorf("look up segment %s: %w", name, err)
	}
	if tables == 0 {
		return &pushd.SegmentError{Segment: name, Problem: fmt.Sprintf(
			"does not exist: create a table or view named %s with a user_id column (the users.id of each member)", table)}
	}
	quoted, _ := segmentTable(name)
	rows, err := q.QueryContext(ctx, `SELECT user_id FROM `+quoted+` LIMIT 0`)
	var me *mysql.MySQLError
	if errors.As(err, &me) && me.Number == 1054 { // ER_BAD_FIELD_ERROR
		return &pushd.SegmentError{Segment: name, Problem: fmt.Sprintf(
			"has no user_id column: give the table or view %s a user_id column holding users.id", table)}
	}
	if err != nil {
		return segmentQueryError(pushd.Audience{Segment: name}, err)
	}
	return rows.Close()
}

// segmentQueryError turns the server refusing a segment's query (a view
// over a dropped table or column, say) into a *pushd.SegmentError; other
// errors, such as a lost connection, are returned as they are.
func segmentQueryError(a pushd.Audience, err error) error {
	var me *mysql.MySQLError
	if err == nil || !errors.As(err, &me) || isRetryableTxError(err) {
		return err
	}
	name := a.Segment
	if name == "" || strings.Contains(me.Message, "segment_"+a.Exclude) && a.Exclude != "" {
		name = a.Exclude
	}
	return &pushd.SegmentError{Segment: name, Problem: fmt.Sprintf(
		"cannot be read: the database says %q; fix the table or view segment_%s so that SELECT user_id FROM segment_%s works", me.Message, name, name)}
}

// audienceFilter is the SQL that narrows users u to a's members, and
// checks that its segments exist.
func audienceFilter(ctx context.Context, q querier, a pushd.Audience) (string, error) {
	var sb strings.Builder
	if a.Segment != "" {
		if err := checkSegment(ctx, q, a.Segment); err != nil {
			return "", err
		}
		t, _ := segmentTable(a.Segment)
		sb.WriteString(` AND u.id IN (SELECT s.user_id FROM ` + t + ` s)`)
	}
	excl, err := excludeFilter(ctx, q, a, "u.id")
	return sb.String() + excl, err
}

// excludeFilter is the SQL that leaves out the ids in col that are in a's
// excluded segment, and checks that it exists.
func excludeFilter(ctx context.Context, q querier, a pushd.Audience, col string) (string, error) {
	if a.Exclude == "" {
		return "", nil
	}
	if err := checkSegment(ctx, q, a.Exclude); err != nil {
		return "", err
	}
	t, _ := segmentTable(a.Exclude)
	// NOT EXISTS, not NOT IN: one NULL user_id in the segment would make
	// NOT IN match nobody.
	return ` AND NOT EXISTS (SELECT 1 FROM ` + t + ` x WHERE x.user_id = ` + col + `)`, nil
}

// EstimateAudience counts who the campaign would reach if it started now,
// over all its apps, and writes it into targeted while the row is still
// scheduled, unchanged and before its first run, so staff see the reach before anything is sent.
// A segment that cannot be read is a *pushd.SegmentError. It leaves
// updated_at alone: the row's version is staff's.
func (s *Store) EstimateAudience(ctx context.Context, c *pushd.Campaign) (int64, error) {
	total, err := s.estimate(ctx, c)
	if err != nil {
		return 0, markUnavailable(err)
	}
	// Not on a recurring campaign between runs: its counts are the last
	// run's until the next starts.
	_, err = s.db.ExecContext(ctx, `UPDATE campaigns SET targeted = ?, updated_at = updated_at
		WHERE id = ? AND status = 'scheduled' AND updated_at = ? AND run_count = 0`, total, c.ID, c.UpdatedAt)
	if err != nil {
		return 0, fmt.Errorf("write the audience estimate of campaign %d: %w", c.ID, markUnavailable(err))
	}
	return total, nil
}

// estimate counts the campaign's reach now, checking its segments. With a
// segment it is the segment's size, not its users of these apps: looking
// every member up in users costs seconds per million where users does not
// fit the buffer pool, and the row is only being checked. A user id is of
// one app, so a segment shared by the apps counts once.
func (s *Store) estimate(ctx context.Context, c *pushd.Campaign) (int64, error) {
	a := pushd.Audience{Segment: c.Segment, Exclude: c.ExcludeSegment}
	if a.Segment != "" {
		if err := checkSegment(ctx, s.db, a.Segment); err != nil {
			return 0, err
		}
		excl, err := excludeFilter(ctx, s.db, a, "u.user_id")
		if err != nil {
			return 0, err
		}
		t, _ := segmentTable(a.Segment)
		var n int64
		err = s.db.QueryRowContext(ctx, `SELECT COUNT(DISTINCT u.user_id) FROM `+t+` u WHERE u.user_id IS NOT NULL`+excl).Scan(&n)
		return n, segmentQueryError(a, err)
	}
	excl, err := excludeFilter(ctx, s.db, a, "u.id")
	if err != nil {
		return 0, err
	}
	var total int64
	for _, app := range c.Apps() {
		var n, dead int64
		err := s.db.QueryRowContext(ctx, `SELECT COUNT(*) FROM users u WHERE `+sameApp+excl, app, app).Scan(&n)
		if err == nil {
			err = s.db.QueryRowContext(ctx, `SELECT COUNT(*) FROM pushd_invalid_tokens i JOIN users u ON u.id = i.user_id
				WHERE `+sameApp+` AND NOT `+validToken+excl, app, app).Scan(&dead)
		}
		if err != nil {
			return 0, segmentQueryError(a, err)
		}
		total += n - dead
	}
	return total, nil
}

// NoteCampaign writes status_reason on a scheduled row before its first
// run (a pace that cannot meet the deadline, or nothing), leaving
// updated_at alone so that the row's version stays staff's.
func (s *Store) NoteCampaign(ctx context.Context, c *pushd.Campaign, reason string) error {
	_, err := s.db.ExecContext(ctx, `UPDATE campaigns SET status_reason = ?, updated_at = updated_at
		WHERE id = ? AND status = 'scheduled' AND updated_at = ? AND run_count = 0`, clip(reason, statusReasonChars), c.ID, c.UpdatedAt)
	if err != nil {
		return fmt.Errorf("write the note of campaign %d: %w", c.ID, markUnavailable(err))
	}
	return nil
}

// materialise evaluates a run's audience once, into pushd_run_members: the
// app's users up to maxID that are in the segment (all of them with only an
// exclusion) and not in the excluded one, each with the token and
// registration time they have now. The batches then read the member list
// alone, in key order: looking each member up in users as its batch was
// read cost MariaDB twice a plain campaign's CPU per push, and the exact
// count of the audience as much again. It runs in the transaction that
// creates the run, which is READ COMMITTED so that reading the segment's
// tables takes no locks on them. It returns the number of members.
func materialise(ctx context.Context, tx *sql.Tx, runID int64, app string, maxID int64, a pushd.Audience) (int64, error) {
	excl, err := excludeFilter(ctx, tx, a, "u.id")
	if err != nil {
		return 0, err
	}
	var q string
	args := []any{runID}
	if a.Segment != "" {
		if err := checkSegment(ctx, tx, a.Segment); err != nil {
			return 0, err
		}
		t, _ := segmentTable(a.Segment)
		// The segment's distinct ids drive the join: one primary-key lookup
		// per member, not a scan of the app's users.
		q = `INSERT INTO pushd_run_members (run_id, user_id, push_token, registered_at)
			SELECT STRAIGHT_JOIN ?, u.id, u.push_token, u.registered_at
			FROM (SELECT DISTINCT s.user_id FROM ` + t + ` s WHERE s.user_id IS NOT NULL AND s.user_id <= ?) s
			JOIN users u ON u.id = s.user_id WHERE ` + sameApp + excl
		args = append(args, maxID, app, app)
	} else {
		q = `INSERT INTO pushd_run_members (run_id, user_id, push_token, registered_at)
			SELECT ?, u.id, u.push_token, u.registered_at FROM users u WHERE ` + sameApp + ` AND u.id <= ?` + excl
		args = append(args, app, app, maxID)
	}
	res, err := tx.ExecContext(ctx, q, args...)
	if err != nil {
		return 0, segmentQueryError(a, err)
	}
	n, _ := res.RowsAffected()
	return n, nil
}
