package store

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/go-sql-driver/mysql"

	"github.com/pushd/pushd"
)

// ErrSchemaMissing means pushd's tables are not there: run `pushd migrate`.
var ErrSchemaMissing = errors.New("pushd tables are missing: run `pushd migrate`")

// ErrUnknownDatabase means the database named in config.ini does not exist
// on the server: create it, then run `pushd migrate`.
var ErrUnknownDatabase = errors.New("the database does not exist")

// ErrSchemaOutdated means the tables are older (or newer) than this binary.
var ErrSchemaOutdated = errors.New("database schema version does not match this pushd")

// Migrate creates or upgrades pushd's tables, and returns the schema
// version the database had before: 0 when pushd's tables were not there.
// It is idempotent and safe to run while another pushd is running.
func (s *Store) Migrate(ctx context.Context) (from int, err error) {
	from, err = s.schemaVersion(ctx)
	if errors.Is(err, ErrSchemaMissing) {
		from, err = 0, nil
	}
	if err != nil {
		return 0, err
	}
	// The version is recorded last, once the tables are upgraded, so that
	// a migrate that fails half-way is run again rather than trusted.
	var versions []string
	for _, stmt := range statements(pushd.SchemaSQL) {
		if strings.HasPrefix(stmt, "INSERT IGNORE INTO pushd_schema") {
			versions = append(versions, stmt)
			continue
		}
		if _, err := s.db.ExecContext(ctx, stmt); err != nil {
			return from, fmt.Errorf("migrate: %w\nstatement: %s", err, firstLine(stmt))
		}
	}
	if err := s.upgrade(ctx); err != nil {
		return from, err
	}
	for _, stmt := range versions {
		if _, err := s.db.ExecContext(ctx, stmt); err != nil {
			return from, fmt.Errorf("migrate: %w\nstatement: %s", err, firstLine(stmt))
		}
	}
	return from, s.CheckSchema(ctx)
}

// schemaVersion reads the version pushd_schema records.
func (s *Store) schemaVersion(ctx context.Context) (int, error) {
	var v int
	err := s.db.QueryRowContext(ctx, `SELECT COALESCE(MAX(version), 0) FROM pushd_schema`).Scan(&v)
	var me *mysql.MySQLError
	if errors.As(err, &me) && me.Number == 1146 { // ER_NO_SUCH_TABLE
		return 0, ErrSchemaMissing
	}
	if err != nil {
		return 0, fmt.Errorf("read schema version: %w", err)
	}
	return v, nil
}

// CheckSchema verifies that the schema is the one this binary was built for
// and that the users table (or view) has the columns pushd reads.
func (s *Store) CheckSchema(ctx context.Context) error {
	v, err := s.schemaVersion(ctx)
	if err != nil {
		return err
	}
	if v != pushd.SchemaVersion {
		return fmt.Errorf("%w: database has version %d, this pushd needs %d: run `pushd migrate`", ErrSchemaOutdated, v, pushd.SchemaVersion)
	}
	rows, err := s.db.QueryContext(ctx, `SELECT id, app, push_token, timezone, registered_at FROM users LIMIT 0`)
	if err != nil {
		return fmt.Errorf("users table must have columns id, app, push_token, timezone, registered_at: %w", err)
	}
	rows.Close()
	return nil
}

// statements splits a schema file into statements, dropping comments.
func statements(schema string) []string {
	var out []string
	for _, part := range strings.Split(schema, ";\n") {
		var lines []string
		for _, l := range strings.Split(part, "\n") {
			if t := strings.TrimSpace(l); t == "" || strings.HasPrefix(t, "--") {
				continue
			}
			lines = append(lines, l)
		}
		if stmt := strings.TrimSpace(strings.Join(lines, "\n")); stmt != "" {
			out = append(out, stmt)
		}
	}
	return out
}

func firstLine(s string) string {
	line, _, _ := strings.Cut(s, "\n")
	return line
}
