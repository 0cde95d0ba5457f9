package store_test

import (
	"database/sql"
	"fmt"
	"os"
	"strings"
	"testing"

	"github.com/pushd/pushd"
	"github.com/pushd/pushd/internal/dbtest"
	"github.com/pushd/pushd/store"
)

// A database made by the version 2 schema, with a campaign and its run in
// it, migrates to the current schema: the same columns, types and indexes
// as a fresh one, and the rows kept.
func TestUpgradeFromVersion2(t *testing.T) {
	t.Parallel()
	fresh := dbtest.Open(t)

	old, err := store.Open(ctx, dbtest.Options(t))
	if err != nil {
		t.Fatal(err)
	}
	defer old.Close()
	v2, err := os.ReadFile("testdata/schema_v2.sql")
	if err != nil {
		t.Fatal(err)
	}
	for _, stmt := range strings.Split(string(v2), ";\n") {
		if strings.TrimSpace(stripSQLComments(stmt)) == "" {
			continue
		}
		if _, err := old.DB().Exec(stmt); err != nil {
			t.Fatalf("%v\n%s", err, stmt)
		}
	}
	execAll(t, old.DB(),
		`INSERT INTO campaigns (id, app, body, scheduled_at, status, sent) VALUES (5, 'A', 'hi', '2026-01-01', 'done', 7)`,
		`INSERT INTO pushd_runs (campaign_id, occurrence, app, status, notification, scheduled_for, deadline, batch_size,
			max_user_id, cursor_user_id, started_at) VALUES (5, 1, 'A', 'done', '{}', '2026-01-01', '2026-01-02', 10, 0, 0, '2026-01-01')`)
	if from, err := old.Migrate(ctx); err != nil || from != 2 {
		t.Fatalf("migrate from version 2 = %d, %v", from, err)
	}
	if from, err := old.Migrate(ctx); err != nil || from != pushd.SchemaVersion {
		t.Fatalf("second migrate = %d, %v", from, err)
	}
	if got, want := describe(t, old.DB()), describe(t, fresh.DB()); got != want {
		t.Errorf("upgraded schema differs from a fresh one:\nupgraded:\n%s\nfresh:\n%s", got, want)
	}
	var sent, capped int
	if err := old.DB().QueryRow(`SELECT sent, capped FROM campaigns WHERE id = 5`).Scan(&sent, &capped); err != nil || sent != 7 || capped != 0 {
		t.Errorf("campaign 5 after the upgrade: sent %d capped %d, %v", sent, capped, err)
	}
	// Two apps in one occurrence: the old unique key would refuse this.
	execAll(t, old.DB(), `INSERT INTO pushd_runs (campaign_id, occurrence, app, status, notification, scheduled_for, deadline, batch_size,
		max_user_id, cursor_user_id, started_at) VALUES (5, 1, 'B', 'done', '{}', '2026-01-01', '2026-01-02', 10, 0, 0, '2026-01-01')`)
}

func stripSQLComments(s string) string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if !strings.HasPrefix(strings.TrimSpace(l), "--") {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}

// describe lists pushd's tables' columns (name, type, nullability,
// default) and indexes, sorted, ignoring column order.
func describe(t *testing.T, db *sql.DB) string {
	t.Helper()
	var b strings.Builder
	rows, err := db.Query(`SELECT TABLE_NAME, COLUMN_NAME, COLUMN_TYPE, IS_NULLABLE, COALESCE(COLUMN_DEFAULT, 'NULL')
		FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME <> 'users' ORDER BY TABLE_NAME, COLUMN_NAME`)
	if err != nil {
		t.Fatal(err)
	}
	for rows.Next() {
		var a, c, d, e, f string
		if err := rows.Scan(&a, &c, &d, &e, &f); err != nil {
			t.Fatal(err)
		}
		fmt.Fprintln(&b, a, c, d, e, f)
	}
	rows.Close()
	rows, err = db.Query(`SELECT TABLE_NAME, INDEX_NAME, NON_UNIQUE, GROUP_CONCAT(COLUMN_NAME ORDER BY SEQ_IN_INDEX)
		FROM information_schema.STATISTICS WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME <> 'users'
		GROUP BY TABLE_NAME, INDEX_NAME, NON_UNIQUE ORDER BY TABLE_NAME, INDEX_NAME`)
	if err != nil {
		t.Fatal(err)
	}
	for rows.Next() {
		var a, c, d, e string
		if err := rows.Scan(&a, &c, &d, &e); err != nil {
			t.Fatal(err)
		}
		fmt.Fprintln(&b, a, c, d, e)
	}
	rows.Close()
	return b.String()
}
