package store

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
)

// Secret returns the shared secret of this name from pushd_settings,
// making it (32 random bytes) if no instance has yet: the first insert
// wins and every instance reads the same.
func (s *Store) Secret(ctx context.Context, name string) ([]byte, error) {
	var b [32]byte
	if _, err := rand.Read(b[:]); err != nil {
		return nil, err
	}
	if _, err := s.db.ExecContext(ctx, `INSERT IGNORE INTO pushd_settings (name, value) VALUES (?, ?)`, name, hex.EncodeToString(b[:])); err != nil {
		return nil, fmt.Errorf("keep the %s: %w", name, markUnavailable(err))
	}
	var v string
	if err := s.db.QueryRowContext(ctx, `SELECT value FROM pushd_settings WHERE name = ?`, name).Scan(&v); err != nil {
		return nil, fmt.Errorf("read the %s: %w", name, markUnavailable(err))
	}
	return hex.DecodeString(v)
}
