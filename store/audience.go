package store

// The audience read: who a run sends to, batch by batch, and how many.

import (
	"context"
	"database/sql"
	"fmt"
	"strings"
	"time"

	"github.com/pushd/pushd"
)

const validToken = `(i.user_id IS NULL OR i.push_token <> u.push_token OR u.registered_at > i.invalid_since)`

// sameApp selects one app's users for an id range. It is written as a
// range, not "u.app = ?", on purpose: given an equality on app, MariaDB
// reads a large app's audience with "ref" access from its first index
// entry and filters the ids, so every batch re-read everything before the
// cursor (349 ms per batch at 750k of 1M users; O(N^2) per campaign). As a
// range it reads only the id window (1 ms), and it needs no index hint,
// which a users view could not take.
//
// An empty push_token is an installation unregistered through the device
// API (or a token that moved to another installation): nobody to send to.
// users_audience holds push_token, so the test stays index-only.
const sameApp = `u.app >= ? AND u.app <= ? AND u.push_token <> ''`

// source is where a run's audience comes from: the app's users, or the
// members evaluated when a segment run started.
type source struct {
	runID   int64
	app     string
	members bool
	// userData is the SELECT list of the users' locale and attributes
	// (Store.userData), empty when the run does not read them.
	userData string
}

func runSource(r pushd.Run) source { return source{runID: r.ID, app: r.App, members: r.Members} }

// withUserData makes src read the users' locale and attributes.
func (s *Store) withUserData(ctx context.Context, src source) (source, error) {
	x := "u"
	if src.members {
		x = "x"
	}
	var err error
	src.userData, err = s.userData(ctx, x)
	return src, err
}

// columns is the SELECT list of a recipient; scan reads it into r.
func (src source) columns(id string) string {
	return id + `, u.push_token, u.registered_at` + src.userData
}

func (src source) scan(rows *sql.Rows, r *pushd.Recipient) error {
	if src.userData == "" {
		return rows.Scan(&r.UserID, &r.Token, &r.RegisteredAt)
	}
	var locale sql.NullString
	if err := rows.Scan(&r.UserID, &r.Token, &r.RegisteredAt, &locale, &r.Attributes); err != nil {
		return err
	}
	r.Locale = locale.String
	return nil
}

// from is the FROM and WHERE of the audience u in (lo, hi], the column
// holding the user's id, and the arguments. Members carry the token and
// registration time they had at the start, so a member run reads only
// pushd_run_members, in key order.
func (src source) from(lo, hi int64) (string, string, []any) {
	if src.members {
		// The member's token is the one it had at the start; the join
		// leaves out an installation unregistered since (device API).
		return ` FROM pushd_run_members u JOIN users x ON x.id = u.user_id AND x.push_token <> ''
			WHERE u.run_id = ? AND u.user_id > ? AND u.user_id <= ?`, `u.user_id`, []any{src.runID, lo, hi}
	}
	return ` FROM users u WHERE ` + sameApp + ` AND u.id > ? AND u.id <= ?`, `u.id`, []any{src.app, src.app, lo, hi}
}

// CountAudience counts the run's audience as it stood at the start: users
// with a valid token, or whose token this run found dead since.
//
// It counts the app's users (or the run's members), an index-only range
// count, and subtracts the dead tokens, read from pushd_invalid_tokens'
// side. A LEFT JOIN from users made MariaDB look every user up in
// pushd_invalid_tokens while the first batches were sending.
func (s *Store) CountAudience(ctx context.Context, r pushd.Run) (int64, error) {
	var all, dead int64
	var err error
	if r.Members {
		err = s.db.QueryRowContext(ctx, `SELECT COUNT(*) FROM pushd_run_members u JOIN users x ON x.id = u.user_id AND x.push_token <> ''
			WHERE u.run_id = ?`, r.ID).Scan(&all)
		if err == nil {
			err = s.db.QueryRowContext(ctx, `SELECT COUNT(*) FROM pushd_invalid_tokens i JOIN pushd_run_members u ON u.run_id = ? AND u.user_id = i.user_id
				WHERE NOT `+validToken+` AND (i.run_id IS NULL OR i.run_id <> ?)`, r.ID, r.ID).Scan(&dead)
		}
	} else {
		err = s.db.QueryRowContext(ctx, `SELECT COUNT(*) FROM users u WHERE `+sameApp+` AND u.id <= ?`,
			r.App, r.App, r.MaxUserID).Scan(&all)
		if err == nil {
			err = s.db.QueryRowContext(ctx, `SELECT COUNT(*) FROM pushd_invalid_tokens i JOIN users u ON u.id = i.user_id
				WHERE `+sameApp+` AND u.id <= ? AND NOT `+validToken+` AND (i.run_id IS NULL OR i.run_id <> ?)`,
				r.App, r.App, r.MaxUserID, r.ID).Scan(&dead)
		}
	}
	if err != nil {
		return 0, fmt.Errorf("count audience of run %d: %w", r.ID, err)
	}
	return all - dead, nil
}

// readAudience reads up to limit users of app in (after, last], in id
// order, and leaves out those whose token was found dead. It also returns
// the last id it read, dead or not, for the cursor to move past.
//
// The dead tokens of the stretch come from one range read of
// pushd_invalid_tokens' primary key. A LEFT JOIN, as readUnrecorded has,
// made MariaDB look each user up there: a third of the audience read's
// cost with the table empty, and more as it fills up.
func readAudience(ctx context.Context, tx *sql.Tx, src source, after, last int64, limit int) ([]pushd.Recipient, int64, error) {
	from, id, args := src.from(after, last)
	rows, err := tx.QueryContext(ctx, `SELECT `+src.columns(id)+from+` ORDER BY `+id+` LIMIT ?`, append(args, limit)...)
	if err != nil {
		return nil, 0, fmt.Errorf("read audience: %w", err)
	}
	defer rows.Close()
	out := make([]pushd.Recipient, 0, limit)
	for rows.Next() {
		var r pushd.Recipient
		if err := src.scan(rows, &r); err != nil {
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
func readUnrecorded(ctx context.Context, tx *sql.Tx, src source, after, last int64) ([]pushd.Recipient, error) {
	from, id, args := src.from(after, last)
	from, where, _ := strings.Cut(from, "WHERE")
	rows, err := tx.QueryContext(ctx, `SELECT `+src.columns(id)+from+`
		LEFT JOIN pushd_invalid_tokens i ON i.user_id = `+id+`
		LEFT JOIN pushd_deliveries d ON d.run_id = ? AND d.user_id = `+id+`
		WHERE `+where+` AND `+validToken+` AND d.user_id IS NULL ORDER BY `+id,
		append([]any{src.runID}, args...)...)
	if err != nil {
		return nil, fmt.Errorf("read audience: %w", err)
	}
	defer rows.Close()
	var out []pushd.Recipient
	for rows.Next() {
		var r pushd.Recipient
		if err := src.scan(rows, &r); err != nil {
			return nil, err
		}
		out = append(out, r)
	}
	return out, rows.Err()
}
