package main

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"os"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/go-sql-driver/mysql"
	"github.com/pushd/pushd"
	"github.com/pushd/pushd/store"
)

// The apps of the benchmark's config.ini.
const (
	appIOS     = "IOS"
	appAndroid = "Android"
)

// server is the MariaDB server the benchmark runs on. Its pool has no
// default database, so every connection with a database selected belongs
// to pushd, and table names are always qualified.
type server struct {
	cfg *mysql.Config // as given by -dsn, DBName cleared
	db  *sql.DB
}

// openServer connects with the session settings pushd uses (UTC, client-side
// interpolation), so that the probe's statements cost what pushd's do.
func openServer(ctx context.Context, dsn string) (*server, error) {
	cfg, err := mysql.ParseDSN(dsn)
	if err != nil {
		return nil, fmt.Errorf("-dsn %q: %w", dsn, err)
	}
	cfg.DBName = ""
	cfg.Loc = time.UTC
	cfg.ParseTime = true
	cfg.InterpolateParams = true
	cfg.ClientFoundRows = true
	cfg.Timeout = 5 * time.Second
	if cfg.Params == nil {
		cfg.Params = map[string]string{}
	}
	cfg.Params["time_zone"] = "'+00:00'"
	db, err := sql.Open("mysql", cfg.FormatDSN())
	if err != nil {
		return nil, err
	}
	db.SetMaxOpenConns(4)
	db.SetMaxIdleConns(4)
	if err := db.PingContext(ctx); err != nil {
		db.Close()
		return nil, fmt.Errorf("MariaDB at %s: %w (is it running? scripts/mariadb.sh starts one)", cfg.Addr, err)
	}
	var one int
	if err := db.QueryRowContext(ctx, "SELECT seq FROM information_schema.ENGINES e, (SELECT 1 AS seq) s WHERE e.ENGINE = 'SEQUENCE' AND e.SUPPORT IN ('YES', 'DEFAULT')").Scan(&one); err != nil {
		db.Close()
		return nil, fmt.Errorf("MariaDB at %s has no Sequence engine (MySQL is not supported for seeding): %w", cfg.Addr, err)
	}
	return &server{cfg: cfg, db: db}, nil
}

func (s *server) close() { s.db.Close() }

// resizeBufferPool sets innodb_buffer_pool_size (dynamic in MariaDB 10.2+
// and MySQL 5.7+) and returns what puts the old size back.
func (s *server) resizeBufferPool(ctx context.Context, size int64) (func(), error) {
	var old int64
	if err := s.db.QueryRowContext(ctx, `SELECT @@GLOBAL.innodb_buffer_pool_size`).Scan(&old); err != nil {
		return nil, err
	}
	if _, err := s.db.ExecContext(ctx, `SET GLOBAL innodb_buffer_pool_size = ?`, size); err != nil {
		return nil, fmt.Errorf("resize the buffer pool: %w", err)
	}
	return func() { s.db.ExecContext(context.Background(), `SET GLOBAL innodb_buffer_pool_size = ?`, old) }, nil
}

// serverInfo is the database server's settings that move the figures.
type serverInfo struct {
	Version          string `json:"version"`
	BufferPoolMiB    int64  `json:"innodb_buffer_pool_mib"`
	FlushLogAtCommit int    `json:"innodb_flush_log_at_trx_commit"`
	MaxAllowedPacket int64  `json:"max_allowed_packet"`
	// Local says the server runs on this machine (its pid file is
	// readable), so its CPU time is measured.
	Local   bool `json:"local"`
	datadir string
	pid     int
}

func (s *server) info(ctx context.Context) (serverInfo, error) {
	var i serverInfo
	var pool int64
	var pidFile string
	err := s.db.QueryRowContext(ctx, `SELECT VERSION(), @@innodb_buffer_pool_size, @@innodb_flush_log_at_trx_commit,
		@@max_allowed_packet, @@datadir, @@pid_file`).Scan(&i.Version, &pool, &i.FlushLogAtCommit, &i.MaxAllowedPacket, &i.datadir, &pidFile)
	if err != nil {
		return i, err
	}
	i.BufferPoolMiB = pool >> 20
	// The server's CPU time is only visible if it runs here.
	if data, err := os.ReadFile(pidFile); err == nil {
		i.pid, _ = strconv.Atoi(strings.TrimSpace(string(data)))
		i.Local = i.pid > 0
	}
	return i, nil
}

// bytesPerUser is a generous estimate of the disk one user costs in a run:
// the users row and its covering index, the ledger row, and InnoDB's slack.
const bytesPerUser = 600

// checkDisk refuses a run that would leave the database's disk nearly full.
func checkDisk(datadir string, n int) error {
	var fs syscall.Statfs_t
	if err := syscall.Statfs(datadir, &fs); err != nil {
		return nil // the server is not local; nothing to check
	}
	free := fs.Bavail * uint64(fs.Bsize)
	need := uint64(n) * bytesPerUser
	if free < need+need/2+2<<30 {
		return fmt.Errorf("the database disk (%s) has %.1f GB free; %d users need about %.1f GB plus headroom: free some space or lower -n",
			datadir, float64(free)/1e9, n, float64(need)/1e9)
	}
	return nil
}

// benchDB is one run's database.
type benchDB struct {
	s    *server
	name string
}

func (s *server) createDB(ctx context.Context, run int) (*benchDB, error) {
	var b [4]byte
	rand.Read(b[:])
	name := fmt.Sprintf("pushbench_%d_%s", run, hex.EncodeToString(b[:]))
	if _, err := s.db.ExecContext(ctx, "CREATE DATABASE "+name+" CHARACTER SET utf8mb4"); err != nil {
		return nil, fmt.Errorf("create database: %w", err)
	}
	return &benchDB{s: s, name: name}, nil
}

func (d *benchDB) drop(ctx context.Context) error {
	_, err := d.s.db.ExecContext(ctx, "DROP DATABASE IF EXISTS "+d.name)
	return err
}

// t qualifies a table name with the run's database.
func (d *benchDB) t(table string) string { return "`" + d.name + "`." + table }

// seedChunk is the most users one INSERT … SELECT writes, so that a 10M
// seed is ten statements of bounded undo log rather than one.
const seedChunk = 1_000_000

// seed inserts n users of app, registered a day ago, straight from the
// Sequence engine. APNs tokens are 64 hex digits (LPAD(HEX(seq), 64, '0'));
// FCM tokens look like registration tokens.
func (d *benchDB) seed(ctx context.Context, app string, n int, attributes bool) error {
	tok := "LPAD(HEX(seq + ?), 64, '0')"
	if app == appAndroid {
		tok = "CONCAT('bench-', seq + ?, ':APA91b')"
	}
	// Half the users read French, a third are gold members.
	cols, vals := "", ""
	if attributes {
		cols = ", locale, attributes"
		vals = `, IF(seq % 2 = 0, 'fr-FR', 'en-US'), CONCAT('{"first_name": "User', seq, '", "plan": "', IF(seq % 3 = 0, 'gold', 'basic'), '"}')`
	}
	for off := 0; off < n; off += seedChunk {
		k := min(seedChunk, n-off)
		q := fmt.Sprintf("INSERT INTO %s (app, push_token, registered_at%s) SELECT ?, %s, NOW() - INTERVAL 1 DAY%s FROM %s",
			d.t("users"), cols, tok, vals, d.t(fmt.Sprintf("seq_1_to_%d", k)))
		if _, err := d.s.db.ExecContext(ctx, q, app, off); err != nil {
			return fmt.Errorf("seed %d %s users: %w", k, app, err)
		}
	}
	return nil
}

// analyze refreshes the index statistics after the bulk load, as any
// production table has them.
func (d *benchDB) analyze(ctx context.Context) error {
	_, err := d.s.db.ExecContext(ctx, "ANALYZE TABLE "+d.t("users"))
	return err
}

// pushdConnected reports whether pushd holds a connection to the database.
func (d *benchDB) pushdConnected(ctx context.Context) (bool, error) {
	var n int
	err := d.s.db.QueryRowContext(ctx, "SELECT COUNT(*) FROM information_schema.PROCESSLIST WHERE DB = ?", d.name).Scan(&n)
	return n > 0, err
}

// count runs a query that returns one number.
func (d *benchDB) count(ctx context.Context, query string, args ...any) (int, error) {
	var n int
	err := d.s.db.QueryRowContext(ctx, query, args...).Scan(&n)
	return n, err
}

// Campaign text, as in the end-to-end tests.
const (
	campaignTitle = "Sale"
	campaignBody  = "Everything 50% off 🎉"
)

// segment creates segment_<name> as a table of n of the first `of` user
// ids, evenly spread.
func (d *benchDB) segment(ctx context.Context, name string, n, of int) error {
	step := of / n
	q := fmt.Sprintf("CREATE TABLE %s (user_id BIGINT NOT NULL PRIMARY KEY) SELECT id AS user_id FROM %s WHERE id %% %d = 0 ORDER BY id LIMIT %d",
		d.t("segment_"+name), d.t("users"), step, n)
	if _, err := d.s.db.ExecContext(ctx, q); err != nil {
		return fmt.Errorf("create segment: %w", err)
	}
	return nil
}

// insertCampaign inserts a campaign of app due at at, to segment unless
// it is empty, at local time when local (the bench's users have no zone,
// and the zone of config.ini is UTC: the same instant).
func (d *benchDB) insertCampaign(ctx context.Context, app string, at time.Time, segment string, local, template bool) (int64, error) {
	title, body := campaignTitle, campaignBody
	if template {
		title, body = templateTitle, templateBody
	}
	res, err := d.s.db.ExecContext(ctx, "INSERT INTO "+d.t("campaigns")+" (app, title, body, scheduled_at, segment, local_time) VALUES (?, ?, ?, ?, NULLIF(?, ''), ?)",
		app, title, body, at.UTC(), segment, local)
	if err != nil {
		return 0, fmt.Errorf("insert campaign: %w", err)
	}
	id, err := res.LastInsertId()
	if err == nil && template {
		_, err = d.s.db.ExecContext(ctx, "INSERT INTO "+d.t("campaign_translations")+" (campaign_id, locale, title, body) VALUES (?, 'fr', ?, ?)",
			id, templateTitleFR, templateBody)
	}
	if err != nil {
		return 0, fmt.Errorf("insert campaign: %w", err)
	}
	return id, nil
}

// The -content choices, and the templated campaign's text.
const (
	contentAttributes = "attributes"
	contentTemplate   = "template"
	templateTitle     = `Hi {{ first_name | default: "there" }}`
	templateTitleFR   = `Bonjour {{ first_name | default: "à vous" }}`
	templateBody      = `{% if plan == "gold" %}Gold members: everything 50% off{% else %}Everything 30% off{% endif %}`
)

// campaignRow is a campaign's progress.
type campaignRow struct {
	ID                                    int64
	App, Status, Reason                   string
	Targeted, Sent, Failed, Invalid, Expd int64
}

func (d *benchDB) campaigns(ctx context.Context) ([]campaignRow, error) {
	rows, err := d.s.db.QueryContext(ctx, "SELECT id, app, status, status_reason, targeted, sent, failed, invalid_tokens, expired FROM "+
		d.t("campaigns")+" ORDER BY id")
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []campaignRow
	for rows.Next() {
		var c campaignRow
		if err := rows.Scan(&c.ID, &c.App, &c.Status, &c.Reason, &c.Targeted, &c.Sent, &c.Failed, &c.Invalid, &c.Expd); err != nil {
			return nil, err
		}
		out = append(out, c)
	}
	return out, rows.Err()
}

// terminal reports whether a campaign status is final for a one-off run.
func terminal(status string) bool {
	switch status {
	case "done", "failed", "expired", "cancelled":
		return true
	}
	return false
}

// waitDone polls the campaign rows every 100 ms until every one is final.
func (d *benchDB) waitDone(ctx context.Context, timeout time.Duration, exited <-chan error) ([]campaignRow, error) {
	deadline := time.Now().Add(timeout)
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	for {
		cs, err := d.campaigns(ctx)
		if err != nil {
			return nil, err
		}
		if len(cs) > 0 && !slices.ContainsFunc(cs, func(c campaignRow) bool { return !terminal(c.Status) }) {
			return cs, nil
		}
		if time.Now().After(deadline) {
			return cs, fmt.Errorf("campaigns not finished after %v: %+v", timeout, cs)
		}
		select {
		case <-tick.C:
		case err := <-exited:
			return cs, fmt.Errorf("pushd exited before the campaigns finished: %v", err)
		case <-ctx.Done():
			return cs, ctx.Err()
		}
	}
}

// runRow is one pushd_runs row: a campaign run's own timing.
type runRow struct {
	App                 string
	Sent                int64
	Started, Finished   time.Time
	BatchSize, Targeted int64
}

func (d *benchDB) runs(ctx context.Context) ([]runRow, error) {
	rows, err := d.s.db.QueryContext(ctx, "SELECT app, sent, targeted, batch_size, started_at, finished_at FROM "+d.t("pushd_runs")+" ORDER BY id")
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []runRow
	for rows.Next() {
		var r runRow
		var fin sql.NullTime
		if err := rows.Scan(&r.App, &r.Sent, &r.Targeted, &r.BatchSize, &r.Started, &fin); err != nil {
			return nil, err
		}
		r.Finished = fin.Time
		out = append(out, r)
	}
	return out, rows.Err()
}

// probeResult is the database's cost per batch, measured apart from pushd.
type probeResult struct {
	Batches int
	Read    time.Duration // median: one store.ClaimBatch (the audience read and the batch row)
	Write   time.Duration // median: one store.Record of the batch's outcomes, all sent
}

// probe measures what one batch costs the database, with pushd stopped, by
// calling the store's own code as a runner does: for each app it starts a
// scratch run of a campaign that never falls due, then claims up to
// samples batches of batch users in turn and records each one's outcomes.
// The scratch rows stay in the run's database, which is dropped anyway.
func (d *benchDB) probe(ctx context.Context, apps []string, batch, samples int) (probeResult, error) {
	var res probeResult
	host, port, socket := d.s.hostPort()
	st, err := store.Open(ctx, store.Options{Host: host, Port: port, Socket: socket, User: d.s.cfg.User,
		Password: d.s.cfg.Passwd, Database: d.name, MaxOpenConns: 2})
	if err != nil {
		return res, fmt.Errorf("probe: %w", err)
	}
	defer st.Close()
	var reads, writes []time.Duration
	for _, app := range apps {
		k := max(1, samples/len(apps))
		r, w, err := d.probeApp(ctx, st, app, batch, k)
		if err != nil {
			return res, fmt.Errorf("probe %s: %w", app, err)
		}
		reads, writes = append(reads, r...), append(writes, w...)
	}
	if len(reads) == 0 {
		return res, errors.New("probe: no users")
	}
	res.Batches = len(reads)
	res.Read, res.Write = medianDuration(reads), medianDuration(writes)
	return res, nil
}

// probeApp times k claims and records of one app's scratch run.
func (d *benchDB) probeApp(ctx context.Context, st *store.Store, app string, batch, k int) (reads, writes []time.Duration, err error) {
	now := time.Now().UTC().Truncate(time.Second)
	cid, err := d.insertCampaign(ctx, app, now.AddDate(10, 0, 0), "", false, false)
	if err != nil {
		return nil, nil, err
	}
	_, runIDs, err := st.Decide(ctx, cid, now, func(*pushd.Campaign) pushd.Decision {
		return pushd.Decision{Action: pushd.Start, Runs: []pushd.NewRun{{App: app, ScheduledFor: now, Deadline: now.Add(time.Hour),
			BatchSize: batch, Notification: []byte(`{"title":"probe","body":"probe"}`)}}}
	})
	if err != nil {
		return nil, nil, err
	}
	runID := runIDs[0]
	const owner = "pushbench-probe"
	for range k {
		start := time.Now()
		b, err := st.ClaimBatch(ctx, runID, owner, nil, time.Minute, time.Now())
		if errors.Is(err, pushd.ErrDrained) {
			break
		}
		if err != nil {
			return nil, nil, err
		}
		read := time.Since(start)
		ds := make([]pushd.Delivery, len(b.Recipients))
		for i, rc := range b.Recipients {
			ds[i] = pushd.Delivery{UserID: rc.UserID, Outcome: pushd.Sent, Attempts: 1}
		}
		start = time.Now()
		if err := st.Record(ctx, pushd.Flush{RunID: runID, CampaignID: cid, BatchID: b.ID, Epoch: b.Epoch,
			Deliveries: ds, Done: true, Lease: time.Minute, Now: time.Now()}); err != nil {
			return nil, nil, err
		}
		reads, writes = append(reads, read), append(writes, time.Since(start))
	}
	return reads, writes, nil
}

// hostPort is the server address for config.ini.
func (s *server) hostPort() (host string, port int, socket string) {
	if s.cfg.Net == "unix" {
		return "", 0, s.cfg.Addr
	}
	h, p, err := net.SplitHostPort(s.cfg.Addr)
	if err != nil {
		return s.cfg.Addr, 3306, ""
	}
	port, _ = strconv.Atoi(p)
	return h, port, ""
}
