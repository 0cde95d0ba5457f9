package store

import (
	"context"
	"crypto/sha256"
	"database/sql"
	"fmt"
	"time"

	"github.com/pushd/pushd"
)

// PurgeLedger deletes the per-user ledger rows (pushd_deliveries) and the
// batch rows of the runs that finished before before. campaigns and
// pushd_runs keep their counts; pushd_invalid_tokens is untouched.
//
// Rows go by primary key in statements of at most chunk rows, each its own
// transaction, so that no lock is held for long and a replica applies each
// in a moment. After each statement pause is called with how long it took,
// so the caller can leave the database time for the campaigns that run;
// it stops the pass when it returns false.
func (s *Store) PurgeLedger(ctx context.Context, before time.Time, chunk int, pause func(took time.Duration) bool) (pushd.Purged, error) {
	var p pushd.Purged
	// Finished runs that still have rows of either kind; each EXISTS is a
	// primary-key probe.
	rows, err := s.db.QueryContext(ctx, `SELECT r.id FROM pushd_runs r
		WHERE r.finished_at IS NOT NULL AND r.finished_at < ?
			AND (EXISTS (SELECT 1 FROM pushd_deliveries d WHERE d.run_id = r.id)
				OR EXISTS (SELECT 1 FROM pushd_batches b WHERE b.run_id = r.id))
		ORDER BY r.id`, before)
	if err != nil {
		return p, fmt.Errorf("list runs to purge: %w", markUnavailable(err))
	}
	var runs []int64
	for rows.Next() {
		var id int64
		if err := rows.Scan(&id); err != nil {
			rows.Close()
			return p, err
		}
		runs = append(runs, id)
	}
	if err := rows.Err(); err != nil {
		return p, markUnavailable(err)
	}
	for _, run := range runs {
		for _, t := range []struct {
			table string
			n     *int64
		}{{"pushd_deliveries", &p.Deliveries}, {"pushd_batches", &p.Batches}} {
			for {
				start := time.Now()
				// Single-table DELETE … ORDER BY … LIMIT walks the
				// primary key from the run's first row.
				order := "user_id"
				if t.table == "pushd_batches" {
					order = "id"
				}
				res, err := s.db.ExecContext(ctx, `DELETE FROM `+t.table+` WHERE run_id = ? ORDER BY `+order+` LIMIT ?`, run, chunk)
				if err != nil {
					return p, fmt.Errorf("purge %s of run %d: %w", t.table, run, markUnavailable(err))
				}
				n, err := res.RowsAffected()
				if err != nil {
					return p, err
				}
				*t.n += n
				if !pause(time.Since(start)) {
					return p, ctx.Err()
				}
				if n < int64(chunk) {
					break
				}
			}
		}
		p.Runs++
	}
	return p, nil
}

// TryLock takes the named lock of this database for as long as fn runs,
// on a connection of its own, and reports false without calling fn when
// another process holds it. MySQL's GET_LOCK is per server, so the name is
// qualified with the database.
func (s *Store) TryLock(ctx context.Context, name string, fn func(context.Context) error) (bool, error) {
	conn, err := s.db.Conn(ctx)
	if err != nil {
		return false, markUnavailable(err)
	}
	defer conn.Close()
	var db sql.NullString
	if err := conn.QueryRowContext(ctx, `SELECT DATABASE()`).Scan(&db); err != nil {
		return false, markUnavailable(err)
	}
	full := db.String + "." + name
	if len(full) > 64 { // GET_LOCK's limit
		full = fmt.Sprintf("pushd.%x", sha256.Sum256([]byte(full)))[:64]
	}
	var got sql.NullInt64
	if err := conn.QueryRowContext(ctx, `SELECT GET_LOCK(?, 0)`, full).Scan(&got); err != nil {
		return false, markUnavailable(err)
	}
	if got.Int64 != 1 {
		return false, nil
	}
	defer conn.ExecContext(context.WithoutCancel(ctx), `SELECT RELEASE_LOCK(?)`, full)
	return true, fn(ctx)
}
