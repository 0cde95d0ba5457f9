package store

import (
	"context"
	"fmt"
	"regexp"
	"strings"

	"github.com/pushd/pushd"
)

// Upgrading a database made by an older pushd. schema.sql's CREATE TABLE
// statements are the one description of the tables; upgrade adds what an
// older database lacks by comparing them with information_schema, since
// MySQL 8 has no ADD COLUMN IF NOT EXISTS. users is left alone: it may be
// the company's own view.

var (
	createTable = regexp.MustCompile(`(?s)CREATE TABLE IF NOT EXISTS (\w+) \((.*?)\n\) ENGINE`)
	columnLine  = regexp.MustCompile(`^\s+(\w+)\s+\S`)
	keyLine     = regexp.MustCompile(`^\s+(UNIQUE KEY|KEY) (\w+) (\(.*\))`)
)

// obsoleteIndexes are indexes of older schemas that the current one
// replaced: dropped once their replacement exists.
var obsoleteIndexes = map[string][]string{
	// v3: a campaign's occurrence has a run per app; v4: per app and send time.
	"pushd_runs": {"pushd_runs_occurrence", "pushd_runs_occurrence_app"},
}

// widened are columns whose type a newer schema widened.
var widened = []struct{ table, column string }{
	{"campaigns", "app"},           // v3: several apps separated by commas
	{"pushd_runs", "notification"}, // v5: translations in the snapshot
}

type tableDef struct {
	name    string
	columns []string // column definitions as schema.sql writes them
	keys    []string // "UNIQUE KEY name (cols)" and "KEY name (cols)"
}

// schemaTables parses the CREATE TABLE statements of schema.sql.
func schemaTables() []tableDef {
	var out []tableDef
	for _, m := range createTable.FindAllStringSubmatch(stripComments(pushd.SchemaSQL), -1) {
		t := tableDef{name: m[1]}
		// An item starts two spaces in; deeper lines continue it.
		var items []string
		for _, line := range strings.Split(m[2], "\n") {
			if strings.TrimSpace(line) == "" {
				continue
			}
			if strings.HasPrefix(line, "  ") && !strings.HasPrefix(line, "   ") || len(items) == 0 {
				items = append(items, strings.TrimSpace(line))
			} else {
				items[len(items)-1] += " " + strings.TrimSpace(line)
			}
		}
		for _, item := range items {
			item = strings.TrimSuffix(item, ",")
			switch {
			case keyLine.MatchString("  " + item):
				t.keys = append(t.keys, item)
			case strings.HasPrefix(item, "PRIMARY KEY"), strings.HasPrefix(item, "CONSTRAINT"):
			case columnLine.MatchString("  " + item):
				t.columns = append(t.columns, item)
			}
		}
		out = append(out, t)
	}
	return out
}

// stripComments drops whole-line SQL comments, which may hold parentheses.
func stripComments(s string) string {
	var b strings.Builder
	for _, l := range strings.Split(s, "\n") {
		if !strings.HasPrefix(strings.TrimSpace(l), "--") {
			b.WriteString(l)
			b.WriteByte('\n')
		}
	}
	return b.String()
}

// upgrade adds the columns and indexes of schema.sql that the database's
// pushd tables lack, widens widened columns and drops obsolete indexes.
func (s *Store) upgrade(ctx context.Context) error {
	for _, t := range schemaTables() {
		if t.name == "users" {
			// The company's own view is left alone; pushd's table gets the
			// optional columns of newer versions (locale, attributes).
			if base, err := s.baseTable(ctx, "users"); err != nil || !base {
				if err != nil {
					return err
				}
				continue
			}
		}
		have, err := s.columns(ctx, t.name)
		if err != nil {
			return err
		}
		prev := ""
		for _, def := range t.columns {
			name := columnLine.FindStringSubmatch("  " + def)[1]
			if !have[name] {
				stmt := "ALTER TABLE " + t.name + " ADD COLUMN " + def
				if prev != "" {
					stmt += " AFTER " + prev
				}
				if _, err := s.db.ExecContext(ctx, stmt); err != nil {
					return fmt.Errorf("migrate: add %s.%s: %w", t.name, name, err)
				}
			}
			prev = name
		}
		idx, err := s.indexes(ctx, t.name)
		if err != nil {
			return err
		}
		for _, k := range t.keys {
			m := keyLine.FindStringSubmatch("  " + k)
			if idx[m[2]] {
				continue
			}
			if _, err := s.db.ExecContext(ctx, "ALTER TABLE "+t.name+" ADD "+k); err != nil {
				return fmt.Errorf("migrate: add index %s.%s: %w", t.name, m[2], err)
			}
		}
		for _, old := range obsoleteIndexes[t.name] {
			if idx[old] {
				if _, err := s.db.ExecContext(ctx, "ALTER TABLE "+t.name+" DROP INDEX "+old); err != nil {
					return fmt.Errorf("migrate: drop index %s.%s: %w", t.name, old, err)
				}
			}
		}
		for _, w := range widened {
			if w.table != t.name {
				continue
			}
			for _, def := range t.columns {
				if columnLine.FindStringSubmatch("  " + def)[1] == w.column {
					if _, err := s.db.ExecContext(ctx, "ALTER TABLE "+t.name+" MODIFY COLUMN "+def); err != nil {
						return fmt.Errorf("migrate: widen %s.%s: %w", t.name, w.column, err)
					}
				}
			}
		}
	}
	return nil
}

// baseTable reports whether table is a table, not a view.
func (s *Store) baseTable(ctx context.Context, table string) (bool, error) {
	var n int
	err := s.db.QueryRowContext(ctx, `SELECT COUNT(*) FROM information_schema.TABLES
		WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = ? AND TABLE_TYPE = 'BASE TABLE'`, table).Scan(&n)
	if err != nil {
		return false, fmt.Errorf("migrate: is %s a table: %w", table, err)
	}
	return n > 0, nil
}

func (s *Store) columns(ctx context.Context, table string) (map[string]bool, error) {
	return s.names(ctx, `SELECT COLUMN_NAME FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = ?`, table)
}

func (s *Store) indexes(ctx context.Context, table string) (map[string]bool, error) {
	return s.names(ctx, `SELECT DISTINCT INDEX_NAME FROM information_schema.STATISTICS WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = ?`, table)
}

func (s *Store) names(ctx context.Context, query, table string) (map[string]bool, error) {
	rows, err := s.db.QueryContext(ctx, query, table)
	if err != nil {
		return nil, fmt.Errorf("migrate: read %s: %w", table, err)
	}
	defer rows.Close()
	out := map[string]bool{}
	for rows.Next() {
		var n string
		if err := rows.Scan(&n); err != nil {
			return nil, err
		}
		out[n] = true
	}
	return out, rows.Err()
}
