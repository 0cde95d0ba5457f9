package store

// The device API's writes: installations registered and unregistered by
// the apps.

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/pushd/pushd"
)

// ErrNotTable is returned by Register and Unregister when users is a view
// over the company's own table, which pushd must not write.
var ErrNotTable = errors.New("users is a view, not pushd's table: the device API cannot register installations in it")

// UsersIsTable reports whether users is pushd's own table (not a view), as
// the device API needs.
func (s *Store) UsersIsTable(ctx context.Context) (bool, error) {
	return s.baseTable(ctx, "users")
}

// Register upserts one installation: its users row is created, or its
// token, ids, zone, locale, attributes and registered_at are replaced (so a
// token a provider had declared dead is used again). Another installation
// of the app that held the token loses it. It returns the row's id and
// whether it was created. It is durable when it returns.
func (s *Store) Register(ctx context.Context, in pushd.Installation) (id int64, created bool, err error) {
	err = s.inTx(ctx, func(tx *sql.Tx) error {
		// The token moved: a device reinstalled the app, or restored a
		// backup. The old installation keeps its row, without the token.
		if _, err := tx.ExecContext(ctx, `UPDATE users SET push_token = '' WHERE app = ? AND push_token = ?
			AND (installation_id IS NULL OR installation_id <> ?)`, in.App, in.Token, in.InstallationID); err != nil {
			return err
		}
		res, err := tx.ExecContext(ctx, `INSERT INTO users (app, installation_id, push_token, external_id, timezone, locale, attributes, registered_at)
			VALUES (?, ?, ?, ?, ?, ?, ?, ?)
			ON DUPLICATE KEY UPDATE id = LAST_INSERT_ID(id), push_token = VALUES(push_token), external_id = VALUES(external_id),
				timezone = VALUES(timezone), locale = VALUES(locale), attributes = VALUES(attributes), registered_at = VALUES(registered_at)`,
			in.App, in.InstallationID, in.Token, nullString(in.ExternalID), nullString(in.Timezone), nullString(in.Locale),
			nullBytes(in.Attributes), in.At)
		if err != nil {
			return err
		}
		if id, err = res.LastInsertId(); err != nil {
			return err
		}
		n, err := res.RowsAffected()
		created = n == 1 // 2 for an update
		return err
	})
	if err != nil {
		return 0, false, fmt.Errorf("register installation: %w", markUnavailable(err))
	}
	return id, created, nil
}

// Unregister takes an installation's token away, so it gets no more
// pushes; its row stays for the ledger and the opens. It returns the row's
// id, and false when the app has no such installation.
func (s *Store) Unregister(ctx context.Context, app, installationID string, at time.Time) (int64, bool, error) {
	var id int64
	err := s.inTx(ctx, func(tx *sql.Tx) error {
		err := tx.QueryRowContext(ctx, `SELECT id FROM users WHERE app = ? AND installation_id = ? FOR UPDATE`, app, installationID).Scan(&id)
		if err != nil {
			return err
		}
		_, err = tx.ExecContext(ctx, `UPDATE users SET push_token = '', registered_at = ? WHERE id = ?`, at, id)
		return err
	})
	if errors.Is(err, sql.ErrNoRows) {
		return 0, false, nil
	}
	if err != nil {
		return 0, false, fmt.Errorf("unregister installation: %w", markUnavailable(err))
	}
	return id, true, nil
}

func nullString(s string) sql.NullString { return sql.NullString{String: s, Valid: s != ""} }

func nullBytes(b []byte) any {
	if len(b) == 0 {
		return nil
	}
	return b
}

// ErrNoPush is returned by RecordOpen for an open of a push pushd did not
// send to that installation.
var ErrNoPush = errors.New("no push of this id was sent to this installation")

// RecordOpen records that the installation opened the push of run to
// user, once: it reports whether this open counted (false for a repeat).
// The run's and, for the current occurrence, the campaign's opened go up
// in the same transaction.
func (s *Store) RecordOpen(ctx context.Context, app, installationID string, runID, userID int64, at time.Time) (bool, error) {
	var counted bool
	err := s.inTx(ctx, func(tx *sql.Tx) error {
		counted = false
		var (
			owner, campaignID int64
			occurrence        int
			runApp, outcome   string
		)
		err := tx.QueryRowContext(ctx, `SELECT id FROM users WHERE app = ? AND installation_id = ?`, app, installationID).Scan(&owner)
		if err == nil && owner == userID {
			err = tx.QueryRowContext(ctx, `SELECT r.campaign_id, r.occurrence, r.app, d.outcome FROM pushd_runs r
				JOIN pushd_deliveries d ON d.run_id = r.id AND d.user_id = ? WHERE r.id = ?`, userID, runID).
				Scan(&campaignID, &occurrence, &runApp, &outcome)
		}
		switch {
		case errors.Is(err, sql.ErrNoRows) || err == nil && (owner != userID || runApp != app || outcome != string(pushd.Sent)):
			return ErrNoPush
		case err != nil:
			return err
		}
		res, err := tx.ExecContext(ctx, `INSERT IGNORE INTO pushd_opens (run_id, user_id, opened_at) VALUES (?, ?, ?)`, runID, userID, at)
		if err != nil {
			return err
		}
		if n, err := res.RowsAffected(); err != nil || n == 0 {
			return err
		}
		counted = true
		if _, err := tx.ExecContext(ctx, `UPDATE pushd_runs SET opened = opened + 1 WHERE id = ?`, runID); err != nil {
			return err
		}
		_, err = tx.ExecContext(ctx, `UPDATE campaigns SET opened = opened + 1, updated_at = updated_at WHERE id = ? AND run_count = ?`, campaignID, occurrence)
		return err
	})
	if err != nil && !errors.Is(err, ErrNoPush) {
		return false, fmt.Errorf("record open: %w", markUnavailable(err))
	}
	return counted, err
}
