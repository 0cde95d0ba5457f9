package store

import (
	"bytes"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"sync/atomic"

	"github.com/go-sql-driver/mysql"
	"github.com/pushd/pushd"
)

// The ledger gets one row per user and run, so its writes are most of what
// a campaign costs the database. pushd streams them with LOAD DATA LOCAL,
// which skips the SQL parser: MariaDB spends about a quarter less CPU per
// row than on a multi-row INSERT (docs/performance.md), and pushd does not
// interpolate five arguments per row. Servers that refuse it (MySQL 8 ships
// with local_infile OFF) get the multi-row INSERT instead.

// readerSeq names the readers this process registers with the driver for
// LOAD DATA LOCAL, whose registry is global.
var readerSeq atomic.Uint64

// rowsPerInsert bounds one multi-row INSERT well under max_allowed_packet.
const rowsPerInsert = 2000

// LedgerWrites says how outcomes are written: "LOAD DATA LOCAL" or "INSERT".
func (s *Store) LedgerWrites() string {
	if s.noLocalInfile.Load() {
		return "INSERT"
	}
	return "LOAD DATA LOCAL"
}

// probeLocalInfile turns LOAD DATA LOCAL off up front when the server says
// it refuses it. A server that cannot be asked is tried anyway:
// insertDeliveries falls back on the first refusal.
func (s *Store) probeLocalInfile(ctx context.Context) {
	var on sql.NullInt64
	if err := s.db.QueryRowContext(ctx, `SELECT @@GLOBAL.local_infile`).Scan(&on); err == nil && on.Valid && on.Int64 == 0 {
		s.noLocalInfile.Store(true)
	}
}

func (s *Store) insertDeliveries(ctx context.Context, tx *sql.Tx, runID int64, ds []pushd.Delivery) error {
	if !s.noLocalInfile.Load() {
		err := loadDeliveries(ctx, tx, runID, ds)
		if !localInfileRefused(err) {
			return err
		}
		// The statement failed whole; the transaction is intact.
		if s.noLocalInfile.CompareAndSwap(false, true) {
			s.log.Warn("LOAD DATA LOCAL failed; recording outcomes with INSERT from now on, which costs the database more CPU",
				"error", err)
		}
	}
	return insertDeliveryRows(ctx, tx, runID, ds)
}

// localInfileRefused reports whether err is the server, or a proxy in
// front of it, refusing the LOAD statement itself: any error the server
// sent, since with LOCAL a row's trouble is a warning, not an error. Known
// refusals are 1148 (MariaDB, MySQL 5.7: local_infile OFF), 3948 (MySQL 8),
// 4166 (MariaDB 10.5+) and 1047 (ProxySQL, which does not pass LOAD DATA
// LOCAL on). A statement error leaves the transaction usable, except for a
// deadlock, which rolls it back, and a lock wait timeout: those two are for
// inTx to retry. Errors of the connection are not the server's (not a
// *mysql.MySQLError) and are returned as they are.
func localInfileRefused(err error) bool {
	var me *mysql.MySQLError
	if !errors.As(err, &me) {
		return false
	}
	return !isRetryableTxError(err)
}

func loadDeliveries(ctx context.Context, tx *sql.Tx, runID int64, ds []pushd.Delivery) error {
	buf := make([]byte, 0, len(ds)*32)
	for _, d := range ds {
		buf = strconv.AppendInt(buf, runID, 10)
		buf = append(buf, '\t')
		buf = strconv.AppendInt(buf, d.UserID, 10)
		buf = append(buf, '\t')
		buf = append(buf, d.Outcome...)
		buf = append(buf, '\t')
		buf = appendField(buf, clip(d.Reason, reasonChars))
		buf = append(buf, '\t')
		buf = strconv.AppendInt(buf, int64(min(max(d.Attempts, 0), 255)), 10)
		buf = append(buf, '\t')
		buf = appendField(buf, d.Variant)
		buf = append(buf, '\n')
	}
	name := "pushd-ledger-" + strconv.FormatUint(readerSeq.Add(1), 10)
	mysql.RegisterReaderHandler(name, func() io.Reader { return bytes.NewReader(buf) })
	defer mysql.DeregisterReaderHandler(name)
	// Hex literals: '\t' and '\\' mean other things, or nothing, under
	// sql_mode NO_BACKSLASH_ESCAPES.
	res, err := tx.ExecContext(ctx, `LOAD DATA LOCAL INFILE 'Reader::`+name+`' INTO TABLE pushd_deliveries
		CHARACTER SET utf8mb4 FIELDS TERMINATED BY X'09' ESCAPED BY X'5C' LINES TERMINATED BY X'0A'
		(run_id, user_id, outcome, reason, attempts, variant)`)
	if err != nil {
		return fmt.Errorf("record outcomes of run %d: %w", runID, err)
	}
	// LOCAL makes the server skip duplicate keys with a warning instead of
	// failing, and skipping would leave the counts wrong: fail instead, as
	// an INSERT would.
	n, err := res.RowsAffected()
	if err != nil {
		return err
	}
	if n != int64(len(ds)) {
		return fmt.Errorf("record outcomes of run %d: the database stored %d rows for %d outcomes; is a user recorded twice?", runID, n, len(ds))
	}
	return nil
}

// appendField appends s escaped for LOAD DATA's default ESCAPED BY '\\'.
func appendField(buf []byte, s string) []byte {
	if !strings.ContainsAny(s, "\\\t\n\r\x00") {
		return append(buf, s...)
	}
	for i := 0; i < len(s); i++ {
		switch c := s[i]; c {
		case '\\':
			buf = append(buf, '\\', '\\')
		case '\t':
			buf = append(buf, '\\', 't')
		case '\n':
			buf = append(buf, '\\', 'n')
		case '\r':
			buf = append(buf, '\\', 'r')
		case 0:
			buf = append(buf, '\\', '0')
		default:
			buf = append(buf, c)
		}
	}
	return buf
}

func insertDeliveryRows(ctx context.Context, tx *sql.Tx, runID int64, ds []pushd.Delivery) error {
	for len(ds) > 0 {
		n := min(len(ds), rowsPerInsert)
		var q strings.Builder
		q.Grow(80 + n*18)
		q.WriteString(`INSERT INTO pushd_deliveries (run_id, user_id, outcome, reason, attempts, variant) VALUES `)
		args := make([]any, 0, n*6)
		for i, d := range ds[:n] {
			if i > 0 {
				q.WriteByte(',')
			}
			q.WriteString("(?,?,?,?,?,?)")
			args = append(args, runID, d.UserID, string(d.Outcome), clip(d.Reason, reasonChars), min(max(d.Attempts, 0), 255), d.Variant)
		}
		if _, err := tx.ExecContext(ctx, q.String(), args...); err != nil {
			return fmt.Errorf("record outcomes of run %d: %w", runID, err)
		}
		ds = ds[n:]
	}
	return nil
}

// Record writes a flush if and only if the batch is still leased at f.Epoch;
// otherwise nothing is written and the error is ErrLeaseLost. A flush with no
// deliveries only renews the lease. When the campaign has been paused or
// cancelled, the flush is written all the same and the error is a
// *pushd.RunStopped, so that the runner stops sending at once.
func (s *Store) Record(ctx context.Context, f pushd.Flush) error {
	var stopped error
	for _, d := range f.Deliveries {
		switch d.Outcome {
		case pushd.Sent, pushd.FailedSend, pushd.InvalidToken, pushd.ExpiredSend, pushd.Skipped, pushd.HeldOut:
		default:
			return fmt.Errorf("record run %d: unknown outcome %q", f.RunID, d.Outcome)
		}
	}
	err := s.inTx(ctx, func(tx *sql.Tx) error {
		stopped = nil
		ds := f.Deliveries
		if f.Recheck && len(ds) > 0 {
			// The invalid tokens are an upsert: writing them again is harmless.
			var err error
			if ds, err = unrecorded(ctx, tx, f.RunID, ds); err != nil {
				return err
			}
		}
		var c [6]int64
		for _, d := range ds {
			switch d.Outcome {
			case pushd.Sent:
				c[0]++
			case pushd.FailedSend:
				c[1]++
			case pushd.InvalidToken:
				c[2]++
			case pushd.ExpiredSend:
				c[3]++
			case pushd.Skipped: // a template's {% skip %}
				c[4]++
			case pushd.HeldOut:
				c[5]++
			}
		}
		if len(ds) > 0 {
			// The run row first: every transaction that touches a run locks
			// it before its batches, which keeps them free of deadlocks.
			if _, err := tx.ExecContext(ctx, `UPDATE pushd_runs SET sent = sent + ?, failed = failed + ?,
				invalid_tokens = invalid_tokens + ?, expired = expired + ?, skipped = skipped + ?, held_out = held_out + ? WHERE id = ?`,
				c[0], c[1], c[2], c[3], c[4], c[5], f.RunID); err != nil {
				return fmt.Errorf("count run %d: %w", f.RunID, err)
			}
		}
		status := "claimed"
		if f.Done {
			status = "done"
		}
		res, err := tx.ExecContext(ctx, `UPDATE pushd_batches SET status = ?, lease_expires_at = NOW(3) + INTERVAL ? MICROSECOND
			WHERE id = ? AND epoch = ? AND status = 'claimed'`, status, f.Lease.Microseconds(), f.BatchID, f.Epoch)
		if err != nil {
			return fmt.Errorf("renew batch %d: %w", f.BatchID, err)
		}
		if n, err := res.RowsAffected(); err != nil {
			return err
		} else if n == 0 {
			if f.Recheck && f.Done && len(ds) == 0 {
				// Perhaps the earlier attempt committed this final flush.
				var st string
				var epoch int64
				err := tx.QueryRowContext(ctx, `SELECT status, epoch FROM pushd_batches WHERE id = ?`, f.BatchID).Scan(&st, &epoch)
				if err == nil && st == "done" && epoch == f.Epoch {
					return nil
				}
			}
			return pushd.ErrLeaseLost
		}
		if len(ds) == 0 {
			return nil
		}
		if err := s.insertDeliveries(ctx, tx, f.RunID, ds); err != nil {
			return err
		}
		if err := insertInvalid(ctx, tx, f.RunID, f.Invalid); err != nil {
			return err
		}
		if f.Tracked && c[0] < int64(len(ds)) {
			if err := forgetSends(ctx, tx, f.RunID, ds); err != nil {
				return err
			}
		}
		if f.Locales {
			if err := recordLocales(ctx, tx, f.RunID, ds); err != nil {
				return err
			}
		}
		if _, err = tx.ExecContext(ctx, `UPDATE campaigns SET sent = sent + ?, failed = failed + ?,
			invalid_tokens = invalid_tokens + ?, expired = expired + ?, skipped = skipped + ?, held_out = held_out + ?, updated_at = ? WHERE `+currentFor,
			c[0], c[1], c[2], c[3], c[4], c[5], f.Now, f.CampaignID, f.RunID); err != nil {
			return err
		}
		// Staff pausing or cancelling the campaign stop the run's sending
		// within a flush, not only at its next claim.
		var st string
		err = tx.QueryRowContext(ctx, `SELECT status FROM campaigns WHERE `+currentFor, f.CampaignID, f.RunID).Scan(&st)
		switch {
		case errors.Is(err, sql.ErrNoRows):
			return nil // the claim says what that means
		case err != nil:
			return err
		case st == string(pushd.Paused) || st == string(pushd.Cancelled):
			stopped = &pushd.RunStopped{Status: pushd.Status(st), ByStaff: true}
		}
		return nil
	})
	if err != nil {
		return err
	}
	return stopped
}

// unrecorded returns the deliveries whose users have no outcome in the run.
func unrecorded(ctx context.Context, tx *sql.Tx, runID int64, ds []pushd.Delivery) ([]pushd.Delivery, error) {
	have := map[int64]bool{}
	for lo := 0; lo < len(ds); lo += rowsPerInsert {
		chunk := ds[lo:min(len(ds), lo+rowsPerInsert)]
		args := make([]any, 0, len(chunk)+1)
		args = append(args, runID)
		for _, d := range chunk {
			args = append(args, d.UserID)
		}
		rows, err := tx.QueryContext(ctx, `SELECT user_id FROM pushd_deliveries WHERE run_id = ? AND user_id IN (?`+
			strings.Repeat(", ?", len(chunk)-1)+`)`, args...)
		if err != nil {
			return nil, fmt.Errorf("recheck outcomes of run %d: %w", runID, err)
		}
		for rows.Next() {
			var id int64
			if err := rows.Scan(&id); err != nil {
				rows.Close()
				return nil, err
			}
			have[id] = true
		}
		if err := rows.Err(); err != nil {
			return nil, err
		}
	}
	if len(have) == 0 {
		return ds, nil
	}
	out := make([]pushd.Delivery, 0, len(ds)-len(have))
	for _, d := range ds {
		if !have[d.UserID] {
			out = append(out, d)
		}
	}
	return out, nil
}

func insertInvalid(ctx context.Context, tx *sql.Tx, runID int64, inv []pushd.Invalidation) error {
	if len(inv) == 0 {
		return nil
	}
	var q strings.Builder
	q.WriteString(`INSERT INTO pushd_invalid_tokens (user_id, app, push_token, invalid_since, reason, run_id) VALUES `)
	args := make([]any, 0, len(inv)*6)
	for i, v := range inv {
		if i > 0 {
			q.WriteByte(',')
		}
		q.WriteString("(?,?,?,?,?,?)")
		args = append(args, v.UserID, v.App, v.Token, v.Since, clip(v.Reason, reasonChars), runID)
	}
	q.WriteString(` ON DUPLICATE KEY UPDATE app = VALUES(app), push_token = VALUES(push_token),
		invalid_since = VALUES(invalid_since), reason = VALUES(reason), run_id = VALUES(run_id), recorded_at = NOW(3)`)
	if _, err := tx.ExecContext(ctx, q.String(), args...); err != nil {
		return fmt.Errorf("record invalid tokens: %w", err)
	}
	return nil
}
