// Package store is pushd's only door to MySQL/MariaDB: all SQL lives here.
//
// Time conventions: campaign and run times are DATETIME wall clock in the
// configured zone (Options.Location), converted by the driver. Leases use
// the database's own clock (NOW(3), session time zone UTC) so that instances
// with skewed clocks still agree on who owns a batch.
package store

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"database/sql"
	"database/sql/driver"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net"
	"os"
	"strconv"
	"sync/atomic"
	"time"
	"unicode/utf8"

	"github.com/go-sql-driver/mysql"
	"github.com/pushd/pushd"
)

// Options says how to reach the database.
type Options struct {
	Host     string
	Port     int
	Socket   string // unix socket; when set, Host and Port are ignored
	User     string
	Password string
	Database string
	// TLS is "false", "true", "skip-verify" or "preferred" (go-sql-driver).
	TLS       string
	TLSCAFile string
	// MaxOpenConns bounds the connection pool (default 16).
	MaxOpenConns int
	// Location is the zone DATETIME columns are written in (default UTC).
	Location *time.Location
	// Logger gets what the store notices on its own (default: discarded).
	Logger *slog.Logger
}

// Store is a handle on pushd's tables. It is safe for concurrent use.
type Store struct {
	db  *sql.DB
	loc *time.Location
	log *slog.Logger
	// noLocalInfile is set once the server refuses LOAD DATA LOCAL.
	noLocalInfile atomic.Bool
	// userCols caches which optional columns users has (userData).
	userCols atomic.Pointer[UserColumns]
}

// tlsConfigSeq names the TLS configs this process registers with the driver,
// whose registry is global.
var tlsConfigSeq atomic.Uint64

// DSN renders opts as a go-sql-driver data source name.
func (opts Options) DSN() (string, error) {
	c := mysql.NewConfig()
	c.User = opts.User
	c.Passwd = opts.Password
	c.DBName = opts.Database
	if opts.Socket != "" {
		c.Net, c.Addr = "unix", opts.Socket
	} else {
		host, port := opts.Host, opts.Port
		if host == "" {
			host = "127.0.0.1"
		}
		if port == 0 {
			port = 3306
		}
		c.Net, c.Addr = "tcp", net.JoinHostPort(host, strconv.Itoa(port))
	}
	c.Loc = opts.Location
	if c.Loc == nil {
		c.Loc = time.UTC
	}
	c.ParseTime = true
	// Reported affected rows must count matched rows: a fenced UPDATE that
	// matches but changes nothing still proves the lease is ours.
	c.ClientFoundRows = true
	// One round trip per statement instead of prepare/execute/close.
	c.InterpolateParams = true
	c.Timeout = 5 * time.Second
	c.ReadTimeout = 60 * time.Second
	c.WriteTimeout = 60 * time.Second
	c.Params = map[string]string{"time_zone": "'+00:00'"}
	switch opts.TLS {
	case "", "false":
	case "true", "skip-verify", "preferred":
		if opts.TLSCAFile != "" {
			pem, err := os.ReadFile(opts.TLSCAFile)
			if err != nil {
				return "", fmt.Errorf("database tls_ca_file: %w", err)
			}
			pool := x509.NewCertPool()
			if !pool.AppendCertsFromPEM(pem) {
				return "", fmt.Errorf("database tls_ca_file %s: no PEM certificate found", opts.TLSCAFile)
			}
			name := fmt.Sprintf("pushd-%d", tlsConfigSeq.Add(1))
			if err := mysql.RegisterTLSConfig(name, &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}); err != nil {
				return "", err
			}
			c.TLSConfig = name
		} else {
			c.TLSConfig = opts.TLS
		}
	default:
		return "", fmt.Errorf("database tls %q: must be false, true, skip-verify or preferred", opts.TLS)
	}
	return c.FormatDSN(), nil
}

// Open connects and pings the database.
func Open(ctx context.Context, opts Options) (*Store, error) {
	dsn, err := opts.DSN()
	if err != nil {
		return nil, err
	}
	db, err := sql.Open("mysql", dsn)
	if err != nil {
		return nil, err
	}
	n := opts.MaxOpenConns
	if n <= 0 {
		n = 16
	}
	db.SetMaxOpenConns(n)
	db.SetMaxIdleConns(n)
	db.SetConnMaxLifetime(30 * time.Minute)
	s := &Store{db: db, loc: opts.Location, log: opts.Logger}
	if s.loc == nil {
		s.loc = time.UTC
	}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	if err := db.PingContext(ctx); err != nil {
		db.Close()
		var me *mysql.MySQLError
		if errors.As(err, &me) && me.Number == 1049 { // ER_BAD_DB_ERROR
			return nil, fmt.Errorf("connect to database %s: %w", opts.Database, ErrUnknownDatabase)
		}
		return nil, fmt.Errorf("connect to database %s: %w", opts.Database, err)
	}
	s.probeLocalInfile(ctx)
	return s, nil
}

// Close closes the connection pool.
func (s *Store) Close() error { return s.db.Close() }

// Ping checks that the database answers.
func (s *Store) Ping(ctx context.Context) error { return s.db.PingContext(ctx) }

// DB exposes the pool for tests and tools that seed data.
func (s *Store) DB() *sql.DB { return s.db }

// inTx runs fn in a transaction, retrying it when InnoDB chose it as a
// deadlock victim or a lock wait timed out; both leave nothing behind. An
// error that means the database is away matches pushd.ErrUnavailable.
func (s *Store) inTx(ctx context.Context, fn func(tx *sql.Tx) error) error {
	return s.inTxOpts(ctx, nil, fn)
}

// inTxOpts is inTx with transaction options, such as an isolation level.
func (s *Store) inTxOpts(ctx context.Context, opts *sql.TxOptions, fn func(tx *sql.Tx) error) error {
	var err error
	for attempt := 0; attempt < 10; attempt++ {
		err = s.tryTx(ctx, opts, fn)
		if !isRetryableTxError(err) {
			return markUnavailable(err)
		}
		// Jittered: two claims that deadlocked each other, retried in
		// step, met again five times in a row on a busy machine (CI).
		step := time.Duration(attempt+1) * 10 * time.Millisecond
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(step + rand.N(2*step)):
		}
	}
	return err
}

func (s *Store) tryTx(ctx context.Context, opts *sql.TxOptions, fn func(tx *sql.Tx) error) error {
	tx, err := s.db.BeginTx(ctx, opts)
	if err != nil {
		return err
	}
	if err := fn(tx); err != nil {
		tx.Rollback()
		return err
	}
	return tx.Commit()
}

func isRetryableTxError(err error) bool {
	var me *mysql.MySQLError
	if errors.As(err, &me) {
		return me.Number == 1213 || me.Number == 1205 // ER_LOCK_DEADLOCK, ER_LOCK_WAIT_TIMEOUT
	}
	return false
}

// unavailable reports whether err means the database could not be reached
// or dropped the connection, as opposed to rejecting a statement or a
// logic error such as sql.ErrNoRows, which retrying would not cure.
func unavailable(err error) bool {
	if err == nil || errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return false
	}
	var me *mysql.MySQLError
	if errors.As(err, &me) {
		// Too many connections, server shutdown in progress, connection
		// killed, server gone away, connection lost during a query.
		switch me.Number {
		case 1040, 1053, 1927, 2006, 2013:
			return true
		}
		return false
	}
	var ne net.Error // dial refused or timed out, reset, broken pipe
	return errors.As(err, &ne) || errors.Is(err, driver.ErrBadConn) || errors.Is(err, mysql.ErrInvalidConn) ||
		errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF)
}

// markUnavailable makes an error that means the database is away match
// pushd.ErrUnavailable, so callers can wait for it without knowing MySQL.
func markUnavailable(err error) error {
	if unavailable(err) && !errors.Is(err, pushd.ErrUnavailable) {
		return fmt.Errorf("%w: %w", pushd.ErrUnavailable, err)
	}
	return err
}

// Text column sizes, in characters as VARCHAR counts them.
const (
	// statusReasonChars leaves status_reason (VARCHAR(1024)) room to spare.
	statusReasonChars = 1000
	// reasonChars is the ledger's and pushd_invalid_tokens' reason.
	reasonChars = 64
)

// clip keeps s within n characters, cutting on a rune boundary and ending
// a cut text with "…", so that a long reason is neither refused by the
// column nor stored with a broken character.
func clip(s string, n int) string {
	if len(s) <= n { // the common case: no more bytes than characters allowed
		return s
	}
	if utf8.RuneCountInString(s) <= n {
		return s
	}
	kept := 0
	for i := range s {
		if kept == n-1 {
			return s[:i] + "…"
		}
		kept++
	}
	return s
}
