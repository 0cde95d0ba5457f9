// Command apibench measures the device API with wrk (a standard HTTP load
// tool, apt-get install wrk): registrations (PUT) per second and their
// latency, opens per second, and a campaign's rate while registrations
// arrive, next to the same campaign alone. It runs pushd (built from this
// checkout) against MariaDB and an in-process pushsim, on a scratch
// database it drops afterwards. `make apibench` runs it.
package main

import (
	"context"
	"database/sql"
	"flag"
	"fmt"
	"math/rand/v2"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/go-sql-driver/mysql"

	"github.com/pushd/pushd/internal/pushsim"
	"github.com/pushd/pushd/pushid"
)

const (
	apiKey = "apibench-key-0123456789abcdef"
	secret = "apibench-secret-0123456789abcdef0123456789"
)

type options struct {
	dsn         string
	duration    time.Duration
	connections int
	threads     int
	runs        int
	campaignN   int
}

func main() {
	var o options
	flag.StringVar(&o.dsn, "dsn", "root@tcp(127.0.0.1:3306)/test", "MariaDB server (creates and drops a database apibench_*)")
	flag.DurationVar(&o.duration, "duration", 15*time.Second, "length of each wrk run")
	flag.IntVar(&o.connections, "connections", 64, "wrk connections")
	flag.IntVar(&o.threads, "threads", 2, "wrk threads")
	flag.IntVar(&o.runs, "runs", 3, "runs of each measurement (medians are reported)")
	flag.IntVar(&o.campaignN, "campaign-users", 200_000, "users of the campaign measured alone and beside registrations")
	flag.Parse()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	if err := run(ctx, o); err != nil {
		fmt.Fprintln(os.Stderr, "apibench:", err)
		os.Exit(1)
	}
}

func logf(format string, a ...any) { fmt.Fprintf(os.Stderr, "apibench: "+format+"\n", a...) }

type wrkResult struct {
	rps, p50, p99 float64 // requests/s, ms
	requests      int
	errors        int // non-2xx answers and socket errors
}

func run(ctx context.Context, o options) error {
	wrkBin, err := exec.LookPath("wrk")
	if err != nil {
		return fmt.Errorf("wrk is not installed (apt-get install wrk): %w", err)
	}
	work, err := os.MkdirTemp("", "apibench-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(work)
	pushdBin := filepath.Join(work, "pushd")
	logf("building pushd")
	if out, err := exec.CommandContext(ctx, "go", "build", "-o", pushdBin, "./cmd/pushd").CombinedOutput(); err != nil {
		return fmt.Errorf("go build (run from the repository root): %v\n%s", err, out)
	}
	sim, err := pushsim.Start(pushsim.Options{Dir: filepath.Join(work, "sim"), BundleIDs: []string{"com.example.bench"}, NoDeliveryLog: true})
	if err != nil {
		return err
	}
	defer sim.Close()

	cfg, err := mysql.ParseDSN(o.dsn)
	if err != nil {
		return err
	}
	name := fmt.Sprintf("apibench_%d", rand.IntN(1_000_000))
	admin, err := sql.Open("mysql", o.dsn)
	if err != nil {
		return err
	}
	defer admin.Close()
	if _, err := admin.ExecContext(ctx, "CREATE DATABASE "+name); err != nil {
		return err
	}
	defer admin.Exec("DROP DATABASE " + name)
	cfg.DBName = name
	cfg.ParseTime = true
	db, err := sql.Open("mysql", cfg.FormatDSN())
	if err != nil {
		return err
	}
	defer db.Close()

	port := 20000 + rand.IntN(20000)
	f := sim.Files()
	host, p, _ := strings.Cut(cfg.Addr, ":")
	ini := fmt.Sprintf(`[Server]
listen = off
log_format = text
poll_interval = 200ms
[SSL]
ca_file = %s
[Database]
host = %s
port = %s
user = %s
password = %s
database = %s
[API]
listen = 127.0.0.1:%d
rate_limit = 0
secret = %s
[Bench]
push_type = APNs
environment = development
endpoint = %s
bundle_id = com.example.bench
auth_key_path = %s
key_id = %s
team_id = %s
api_keys = %s
`, f.CAFile, host, p, cfg.User, cfg.Passwd, name, port, secret, sim.URL(), f.AuthKeyFile, f.KeyID, f.TeamID, apiKey)
	config := filepath.Join(work, "config.ini")
	if err := os.WriteFile(config, []byte(ini), 0o600); err != nil {
		return err
	}
	if out, err := exec.CommandContext(ctx, pushdBin, "migrate", "-config", config).CombinedOutput(); err != nil {
		return fmt.Errorf("pushd migrate: %v\n%s", err, out)
	}
	d := exec.CommandContext(ctx, pushdBin, "run", "-config", config)
	logFile, _ := os.Create(filepath.Join(work, "pushd.log"))
	d.Stderr = logFile
	if err := d.Start(); err != nil {
		return err
	}
	defer func() { d.Process.Signal(os.Interrupt); d.Wait() }()
	base := fmt.Sprintf("http://127.0.0.1:%d", port)
	if err := waitHTTP(ctx, base); err != nil {
		return err
	}

	putScript := filepath.Join(work, "put.lua")
	if err := os.WriteFile(putScript, []byte(putLua), 0o644); err != nil {
		return err
	}
	wrk := func(script string, args ...string) (wrkResult, error) {
		cmd := exec.CommandContext(ctx, wrkBin, append([]string{"-t", strconv.Itoa(o.threads), "-c", strconv.Itoa(o.connections),
			"-d", o.duration.String(), "--latency", "-s", script, base}, args...)...)
		out, err := cmd.CombinedOutput()
		if err != nil {
			return wrkResult{}, fmt.Errorf("wrk: %v\n%s", err, out)
		}
		return parseWrk(string(out))
	}

	// Registrations.
	var puts []wrkResult
	for i := range o.runs {
		r, err := wrk(putScript, "--", strconv.Itoa(i))
		if err != nil {
			return err
		}
		logf("PUT run %d: %.0f/s, p50 %.1f ms, p99 %.1f ms, %d requests, %d errors", i+1, r.rps, r.p50, r.p99, r.requests, r.errors)
		puts = append(puts, r)
	}
	var stored int
	if err := db.QueryRowContext(ctx, "SELECT COUNT(*) FROM users").Scan(&stored); err != nil {
		return err
	}
	acked := 0
	for _, r := range puts {
		acked += r.requests - r.errors
	}

	// A campaign alone, then beside registrations.
	campaignAlone, err := campaign(ctx, db, o.campaignN, nil)
	if err != nil {
		return err
	}
	var beside wrkResult
	campaignBeside, err := campaign(ctx, db, o.campaignN, func() error {
		var err error
		beside, err = wrk(putScript, "--", "99")
		return err
	})
	if err != nil {
		return err
	}

	// Opens: every user of the last campaign opens its push once.
	ids := pushid.New([]byte(secret))
	opensFile := filepath.Join(work, "opens.txt")
	if err := writeOpens(ctx, db, ids, opensFile); err != nil {
		return err
	}
	openScript := filepath.Join(work, "open.lua")
	if err := os.WriteFile(openScript, []byte(strings.ReplaceAll(openLua, "OPENS_FILE", opensFile)), 0o644); err != nil {
		return err
	}
	var opens []wrkResult
	for i := range o.runs {
		r, err := wrk(openScript, "--", strconv.Itoa(i), strconv.Itoa(o.threads))
		if err != nil {
			return err
		}
		logf("open run %d: %.0f/s, p50 %.1f ms, p99 %.1f ms, %d requests, %d errors", i+1, r.rps, r.p50, r.p99, r.requests, r.errors)
		opens = append(opens, r)
	}
	var counted int
	db.QueryRowContext(ctx, "SELECT COUNT(*) FROM pushd_opens").Scan(&counted)

	fmt.Printf("\napibench: wrk -t %d -c %d -d %v, %d runs each; pushd with [API] and campaigns on; MariaDB %s\n", o.threads, o.connections, o.duration, o.runs, cfg.Addr)
	fmt.Printf("  registrations (PUT)   median %6.0f/s  p50 %5.1f ms  p99 %5.1f ms  (runs: %s)\n", median(puts, rps), median(puts, p50), median(puts, p99), list(puts))
	fmt.Printf("  acknowledged %d, rows in users %d (every acknowledged registration stored: %v)\n", acked, stored, stored >= acked)
	fmt.Printf("  opens (POST)          median %6.0f/s  p50 %5.1f ms  p99 %5.1f ms  (runs: %s); %d counted\n", median(opens, rps), median(opens, p50), median(opens, p99), list(opens), counted)
	fmt.Printf("  campaign of %d users alone: %.0f users/s; beside registrations: %.0f users/s while %.0f PUT/s (p99 %.1f ms)\n",
		o.campaignN, campaignAlone, campaignBeside, beside.rps, beside.p99)
	return nil
}

func rps(r wrkResult) float64 { return r.rps }
func p50(r wrkResult) float64 { return r.p50 }
func p99(r wrkResult) float64 { return r.p99 }

func median(rs []wrkResult, f func(wrkResult) float64) float64 {
	v := make([]float64, len(rs))
	for i, r := range rs {
		v[i] = f(r)
	}
	slices.Sort(v)
	return v[len(v)/2]
}

func list(rs []wrkResult) string {
	var s []string
	for _, r := range rs {
		s = append(s, fmt.Sprintf("%.0f", r.rps))
	}
	return strings.Join(s, ", ")
}

func waitHTTP(ctx context.Context, base string) error {
	for range 100 {
		req, _ := http.NewRequestWithContext(ctx, "GET", base+"/v1/", nil)
		if res, err := http.DefaultClient.Do(req); err == nil {
			res.Body.Close()
			return nil
		}
		time.Sleep(100 * time.Millisecond)
	}
	return fmt.Errorf("the API at %s did not answer", base)
}

var (
	reRPS     = regexp.MustCompile(`Requests/sec:\s+([0-9.]+)`)
	reReqs    = regexp.MustCompile(`(\d+) requests in`)
	reNon2xx  = regexp.MustCompile(`Non-2xx or 3xx responses: (\d+)`)
	reSockErr = regexp.MustCompile(`Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)`)
	reLat     = regexp.MustCompile(`(?m)^\s+(50|99)%\s+([0-9.]+)(us|ms|s)\s*$`)
)

func parseWrk(out string) (wrkResult, error) {
	var r wrkResult
	m := reRPS.FindStringSubmatch(out)
	if m == nil {
		return r, fmt.Errorf("wrk printed no Requests/sec:\n%s", out)
	}
	r.rps, _ = strconv.ParseFloat(m[1], 64)
	if m := reReqs.FindStringSubmatch(out); m != nil {
		r.requests, _ = strconv.Atoi(m[1])
	}
	if m := reNon2xx.FindStringSubmatch(out); m != nil {
		n, _ := strconv.Atoi(m[1])
		r.errors += n
	}
	if m := reSockErr.FindStringSubmatch(out); m != nil {
		for _, s := range m[1:] {
			n, _ := strconv.Atoi(s)
			r.errors += n
		}
	}
	for _, m := range reLat.FindAllStringSubmatch(out, -1) {
		v, _ := strconv.ParseFloat(m[2], 64)
		switch m[3] {
		case "us":
			v /= 1000
		case "s":
			v *= 1000
		}
		if m[1] == "50" {
			r.p50 = v
		} else {
			r.p99 = v
		}
	}
	return r, nil
}

// campaign sends a campaign to n users added for it (with beside running
// meanwhile, if given) and returns its users per second.
func campaign(ctx context.Context, db *sql.DB, n int, beside func() error) (float64, error) {
	var before int64
	db.QueryRowContext(ctx, "SELECT COALESCE(MAX(id), 0) FROM users").Scan(&before)
	if _, err := db.ExecContext(ctx, `INSERT INTO users (app, push_token, registered_at)
		SELECT 'Bench', LPAD(HEX(? + seq), 64, 'c'), NOW() - INTERVAL 1 DAY FROM seq_1_to_`+strconv.Itoa(n), before); err != nil {
		return 0, err
	}
	at := time.Now().Add(2 * time.Second).Truncate(time.Second).Add(time.Second)
	res, err := db.ExecContext(ctx, `INSERT INTO campaigns (app, title, body, scheduled_at, expires_at) VALUES ('Bench', 'Sale', 'Everything 30% off', ?, ?)`,
		at.UTC(), at.Add(time.Hour).UTC())
	if err != nil {
		return 0, err
	}
	id, _ := res.LastInsertId()
	time.Sleep(time.Until(at))
	done := make(chan error, 1)
	if beside != nil {
		go func() { done <- beside() }()
	}
	for {
		var status string
		var targeted, outcomes int64
		var started, finished sql.NullTime
		err := db.QueryRowContext(ctx, `SELECT status, targeted, sent + failed + invalid_tokens + expired, started_at, finished_at FROM campaigns WHERE id = ?`, id).
			Scan(&status, &targeted, &outcomes, &started, &finished)
		if err != nil {
			return 0, err
		}
		if status == "done" || status == "failed" || status == "expired" {
			var sent int64
			var last time.Time
			db.QueryRowContext(ctx, `SELECT sent, (SELECT MAX(recorded_at) FROM pushd_deliveries d JOIN pushd_runs r ON r.id = d.run_id WHERE r.campaign_id = ?) FROM campaigns WHERE id = ?`, id, id).Scan(&sent, &last)
			if beside != nil {
				if err := <-done; err != nil {
					return 0, err
				}
			}
			rate := float64(sent) / last.Sub(at).Seconds()
			logf("campaign %d: %s, %d sent, %.0f users/s", id, status, sent, rate)
			return rate, nil
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// writeOpens writes, for every user sent the last campaign who has an
// installation id (or gets one now), "push_id installation_id" lines.
func writeOpens(ctx context.Context, db *sql.DB, ids *pushid.Signer, path string) error {
	if _, err := db.ExecContext(ctx, `UPDATE users SET installation_id = CONCAT('bench-', id) WHERE installation_id IS NULL`); err != nil {
		return err
	}
	rows, err := db.QueryContext(ctx, `SELECT d.run_id, d.user_id, u.installation_id FROM pushd_deliveries d
		JOIN users u ON u.id = d.user_id WHERE d.outcome = 'sent' AND d.run_id = (SELECT MAX(id) FROM pushd_runs)`)
	if err != nil {
		return err
	}
	defer rows.Close()
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	defer f.Close()
	for rows.Next() {
		var run, user int64
		var inst string
		if err := rows.Scan(&run, &user, &inst); err != nil {
			return err
		}
		fmt.Fprintf(f, "%s %s\n", ids.ID(run, user), inst)
	}
	return rows.Err()
}

// putLua registers a new installation per request: a unique id and APNs
// token per thread and request, with a zone, a locale and attributes.
const putLua = `
local threads = 0
function setup(thread) thread:set("tid", threads); threads = threads + 1 end
function init(args) run = tonumber(args[1]) or 0; n = 0 end
function request()
  n = n + 1
  local inst = string.format("r%d-%d-%09d", run, tid, n)
  local tok = string.format("%s%02x%02x%08x", string.rep("0", 52), run, tid, n)
  local body = '{"token":"' .. tok .. '","timezone":"Europe/Paris","locale":"fr-FR","attributes":{"first_name":"User' .. n .. '"}}'
  return wrk.format("PUT", "/v1/apps/Bench/installations/" .. inst,
    {["Authorization"] = "Bearer ` + apiKey + `", ["Content-Type"] = "application/json"}, body)
end
`

// openLua posts each line of the opens file once per thread share.
const openLua = `
local threads = 0
function setup(thread) thread:set("tid", threads); threads = threads + 1 end
function init(args)
  lines = {}
  for l in io.lines("OPENS_FILE") do table.insert(lines, l) end
  step = tonumber(args[2]) or 1
  i = tid + (tonumber(args[1]) or 0) * 100000
end
function request()
  local l = lines[(i % #lines) + 1]
  i = i + step
  local push, inst = l:match("(%S+) (%S+)")
  return wrk.format("POST", "/v1/apps/Bench/opens",
    {["Authorization"] = "Bearer ` + apiKey + `", ["Content-Type"] = "application/json"},
    '{"push":"' .. push .. '","installation_id":"' .. inst .. '"}')
end
`
