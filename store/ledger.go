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
	pushd "github.com/pushd/pushd"
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
		buf = appendField(buf, clipReason(d.Reason))
		buf = append(buf, '\t')
		buf = strconv.AppendInt(buf, int64(min(max(d.Attempts, 0), 255)), 10)
		buf = append(buf, '\n')
	}
	name := "pushd-ledger-" + strconv.FormatUint(readerSeq.Add(1), 10)
	mysql.RegisterReaderHandler(name, func() io.Reader { return bytes.NewReader(buf) })
	defer mysql.DeregisterReaderHandler(name)
	// Hex literals: '\t' and '\\' mean other things, or nothing, under
	// sql_mode NO_BACKSLASH_ESCAPES.
	res, err := tx.ExecContext(ctx, `LOAD DATA LOCAL INFILE 'Reader::`+name+`' INTO TABLE pushd_deliveries
		CHARACTER SET utf8mb4 FIELDS TERMINATED BY X'09' ESCAPED BY X'5C' LINES TERMINATED BY X'0A'
		(run_id, user_id, outcome, reason, attempts)`)
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
		q.WriteString(`INSERT INTO pushd_deliveries (run_id, user_id, outcome, reason, attempts) VALUES `)
		args := make([]any, 0, n*5)
		for i, d := range ds[:n] {
			if i > 0 {
				q.WriteByte(',')
			}
			q.WriteString("(?,?,?,?,?)")
			args = append(args, runID, d.UserID, string(d.Outcome), clipReason(d.Reason), min(max(d.Attempts, 0), 255))
		}
		if _, err := tx.ExecContext(ctx, q.String(), args...); err != nil {
			return fmt.Errorf("record outcomes of run %d: %w", runID, err)
		}
		ds = ds[n:]
	}
	return nil
}
