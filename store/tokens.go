package store

import (
	"context"
	"database/sql"
	"fmt"
	"os"
	"time"
)

// ShareToken returns the stored provider token of (teamID, keyID) if keep
// accepts it, else stores and returns the one mint makes. The row lock
// makes every other process asking meanwhile wait and then keep the new
// token, so that however many renew at once, one token is signed.
// It satisfies apns.TokenShare.
func (s *Store) ShareToken(ctx context.Context, teamID, keyID string, keep func(jwt string, issuedAt time.Time) bool,
	mint func() (jwt string, issuedAt time.Time, err error)) (string, time.Time, error) {
	var (
		jwt      string
		issuedAt time.Time
	)
	// The row exists before the transaction locks it, by a statement of
	// its own: a locking read of a missing row takes a gap lock, and an
	// INSERT IGNORE of an existing one a shared lock, both of which
	// deadlock against a second process doing the same.
	if _, err := s.db.ExecContext(ctx, `INSERT IGNORE INTO pushd_provider_tokens (team_id, key_id) VALUES (?, ?)`,
		teamID, keyID); err != nil {
		return "", time.Time{}, fmt.Errorf("share the provider token of key %s: %w", keyID, markUnavailable(err))
	}
	err := s.inTx(ctx, func(tx *sql.Tx) error {
		if err := tx.QueryRowContext(ctx, `SELECT jwt, issued_at FROM pushd_provider_tokens
			WHERE team_id = ? AND key_id = ? FOR UPDATE`, teamID, keyID).Scan(&jwt, &issuedAt); err != nil {
			return err
		}
		if jwt != "" && keep(jwt, issuedAt) {
			return nil
		}
		var err error
		if jwt, issuedAt, err = mint(); err != nil {
			return err
		}
		_, err = tx.ExecContext(ctx, `UPDATE pushd_provider_tokens SET jwt = ?, issued_at = ?, issued_by = ?
			WHERE team_id = ? AND key_id = ?`, jwt, issuedAt, issuer, teamID, keyID)
		return err
	})
	if err != nil {
		return "", time.Time{}, fmt.Errorf("share the provider token of key %s: %w", keyID, err)
	}
	return jwt, issuedAt, nil
}

// issuer names this process in pushd_provider_tokens.issued_by.
var issuer = func() string {
	host, _ := os.Hostname()
	return fmt.Sprintf("%s pid %d", host, os.Getpid())
}()
