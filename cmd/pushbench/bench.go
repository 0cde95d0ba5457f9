package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/pushd/pushd"
	"github.com/pushd/pushd/internal/pushsim"
)

// bench is what the runs share.
type bench struct {
	o      options
	srv    *server
	info   serverInfo
	sim    *sim
	work   string
	h2load string // "" means no ceiling
	logf   func(string, ...any)
}

// probeSamples is how many batches the database probe times per run.
const probeSamples = 100

// runOnce is one run: fresh database, seed, pushd, campaign, figures,
// database probe, ceiling.
func (b *bench) runOnce(ctx context.Context, i int) (runResult, error) {
	o := b.o
	r := runResult{Run: i, LoadStart: loadAvg()}
	began := time.Now()
	dir := filepath.Join(b.work, fmt.Sprintf("run-%d", i))
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return r, err
	}

	db, err := b.srv.createDB(ctx, i)
	if err != nil {
		return r, err
	}
	if o.keep {
		b.logf("run %d: database %s (kept)", i, db.name)
	} else {
		defer db.drop(context.WithoutCancel(ctx))
	}
	config := filepath.Join(dir, "config.ini")
	if err := os.WriteFile(config, []byte(b.configINI(db.name)), 0o600); err != nil {
		return r, err
	}
	if out, err := exec.CommandContext(ctx, o.pushd, "migrate", "-config", config).CombinedOutput(); err != nil {
		return r, fmt.Errorf("pushd migrate: %w\n%s", err, out)
	}

	seedStart := time.Now()
	apps := b.apps()
	per := o.n / len(apps)
	for j, app := range apps {
		n := per
		if j == len(apps)-1 {
			n = o.n - per*(len(apps)-1)
		}
		if o.segmentOf > 0 {
			n = o.segmentOf
		}
		if err := db.seed(ctx, app, n, o.content != ""); err != nil {
			return r, err
		}
	}
	segment := ""
	if o.segmentOf > 0 {
		segment = "bench"
		if err := db.segment(ctx, segment, o.n, o.segmentOf); err != nil {
			return r, err
		}
	}
	if err := db.analyze(ctx); err != nil {
		return r, err
	}
	r.SeedSeconds = time.Since(seedStart).Seconds()
	b.logf("run %d: seeded %d users in %.1f s", i, max(o.n, o.segmentOf), r.SeedSeconds)

	if r.IdleBefore, err = b.waitIdle(ctx, "pushd"); err != nil {
		return r, err
	}
	if err := b.sim.reset(ctx); err != nil {
		return r, err
	}
	d, err := b.startPushd(ctx, dir, config, i)
	if err != nil {
		return r, err
	}
	defer func() { d.kill() }() // d changes with -kill9
	if err := waitConnected(ctx, db, d); err != nil {
		return r, err
	}

	// DATETIME has whole seconds: the campaign is due 2 to 3 s ahead.
	at := time.Now().Add(2 * time.Second)
	if o.localTime {
		// A local-time run starts pushd.LocalLead before its first zone's
		// time, as it does when staff insert it ahead of time.
		at = at.Add(pushd.LocalLead + 3*time.Second)
	}
	if t := at.Truncate(time.Second); !t.Equal(at) {
		at = t.Add(time.Second)
	}
	var firstID int64
	for _, app := range apps {
		id, err := db.insertCampaign(ctx, app, at, segment, o.localTime, o.content == contentTemplate)
		if err != nil {
			return r, err
		}
		if firstID == 0 {
			firstID = id
		}
	}
	if err := sleepUntil(ctx, at); err != nil {
		return r, err
	}
	if o.kill9 {
		k := kill9Result{}
		if d, k, err = b.killMidRun(ctx, db, d, dir, config, i); err != nil {
			return r, err
		}
		r.Kill9 = &k
	}
	cpu0 := sampleCPU(d.pid(), b.sim.pid(), b.info.pid)

	timeout := 2*time.Minute + time.Duration(o.n)*time.Millisecond
	rows, err := db.waitDone(ctx, timeout, d.exited)
	cpu1 := sampleCPU(d.pid(), b.sim.pid(), b.info.pid)
	if err != nil {
		return r, fmt.Errorf("%w\npushd log %s:\n%s", err, d.logPath, tail(d.logPath, 20))
	}
	rss, rssErr := peakRSS(d.pid())
	cpuTotal, cpuErr := procCPU(d.pid())
	if err := errors.Join(rssErr, cpuErr); err != nil {
		return r, fmt.Errorf("read pushd's /proc: %w", err)
	}
	st, err := b.sim.stats(ctx)
	if err != nil {
		return r, err
	}
	if err := d.stop(); err != nil {
		b.logf("run %d: %v", i, err)
	}
	runs, err := db.runs(ctx)
	if err != nil {
		return r, err
	}

	r.fromCampaign(at, st, rows, runs, o)
	if k := r.Kill9; k != nil {
		k.Duplicates = r.Delivered - o.n
		if k.Duplicates != k.Unrecorded {
			r.Problems = append(r.Problems, fmt.Sprintf("kill -9: %d duplicates, not the %d sent and not recorded at the kill", k.Duplicates, k.Unrecorded))
		}
	}
	r.PeakRSSMiB = float64(rss) / (1 << 20)
	if r.Delivered > 0 {
		r.CPUPer10k = cpuTotal.Seconds() / float64(r.Delivered) * 10_000
	}
	r.Cores = coresBetween(cpu0, cpu1)
	if r.Delivered > 0 {
		// CPU per push moves much less than rates do when other work
		// shares the machine.
		r.SimMicrosPerPush = micros(cpu1.sim-cpu0.sim) / float64(r.Delivered)
		r.DBMicrosPerPush = micros(cpu1.db-cpu0.db) / float64(r.Delivered)
	}
	if r.Kill9 != nil {
		// These would be the restarted pushd's alone, divided by both
		// halves' pushes.
		r.PeakRSSMiB, r.CPUPer10k, r.Cores, r.SimMicrosPerPush, r.DBMicrosPerPush = 0, 0, cores{}, 0, 0
	}

	probe, err := db.probe(ctx, apps, o.batch, probeSamples)
	if err != nil {
		return r, err
	}
	r.DBReadPerBatchMS = ms(probe.Read)
	r.DBWritePerBatchMS = ms(probe.Write)
	r.ProbeBatches = probe.Batches

	if b.h2load != "" {
		if err := b.ceiling(ctx, dir, &r, firstID, at); err != nil {
			return r, err
		}
	}
	r.LoadEnd = loadAvg()
	r.WallSeconds = time.Since(began).Seconds()
	return r, nil
}

// apps are the config.ini apps that get a campaign.
func (b *bench) apps() []string {
	var out []string
	for _, p := range b.o.providers() {
		out = append(out, appOf(p))
	}
	return out
}

func appOf(provider string) string {
	if provider == providerFCM {
		return appAndroid
	}
	return appIOS
}

// configINI is pushd's config for a run on database name: app IOS on APNs
// and Android on FCM, both at pushsim, with the flags' sizes.
func (b *bench) configINI(name string) string {
	host, port, socket := b.srv.hostPort()
	where := fmt.Sprintf("host = %s\nport = %d", host, port)
	if socket != "" {
		where = "socket = " + socket
	}
	c := b.sim.cfg
	sizes := fmt.Sprintf("batch_size = %d\nconcurrency = %d\nconnections = %d", b.o.batch, b.o.concurrency, b.o.connections)
	if b.o.capped {
		sizes += "\nfrequency_cap = 1/24h"
	}
	keys := [2]string{}
	if b.o.pushIDs {
		// Apps of the device API: every push carries a signed push_id.
		keys = [2]string{"api_keys = pushbench-ios-key-0123456789", "api_keys = pushbench-android-key-0123456789"}
	}
	return fmt.Sprintf(`[Server]
listen = off
log_level = warn
log_format = text

[SSL]
ca_file = %s

[Database]
%s
user = %s
password = %s
database = %s

[%s]
push_type = APNs
environment = development
endpoint = %s
bundle_id = %s
auth_key_path = %s
key_id = %s
team_id = %s
%s
%s

[%s]
push_type = FCM
endpoint = %s
service_account_file = %s
%s
%s
`, c.CAFile, where, b.srv.cfg.User, b.srv.cfg.Passwd, name,
		appIOS, c.URL, benchBundleID, c.APNs.AuthKeyPath, c.APNs.KeyID, c.APNs.TeamID, sizes, keys[0],
		appAndroid, c.URL, c.FCM.ServiceAccountFile, sizes, keys[1])
}

// ceiling runs h2load against pushsim with the run's request shape.
func (b *bench) ceiling(ctx context.Context, dir string, r *runResult, campaignID int64, at time.Time) error {
	var err error
	if r.IdleBeforeCeiling, err = b.waitIdle(ctx, "the ceiling"); err != nil {
		return err
	}
	if err := b.sim.reset(ctx); err != nil {
		return err
	}
	before := sampleCPU(0, b.sim.pid(), b.info.pid)
	shape := ceilingShape{scheduled: at, collapse: fmt.Sprintf("pushd-%d-1", campaignID)}
	rate, results, err := h2loadRun(ctx, b.h2load, dir, b.sim, b.o.providers(), b.o.n, b.o.connections, b.o.concurrency, shape)
	if err != nil {
		return err
	}
	after := sampleCPU(0, b.sim.pid(), b.info.pid)
	st, err := b.sim.stats(ctx)
	if err != nil {
		return err
	}
	want := 0
	for _, res := range results {
		want += res.Requests
	}
	if got := st.APNs.Delivered + st.FCM.Delivered; got != want {
		return fmt.Errorf("h2load: pushsim delivered %d of %d requests", got, want)
	}
	r.CeilingPerSec = rate
	r.H2load = results
	wall := after.at.Sub(before.at).Seconds()
	r.CeilingSimCores = (after.sim - before.sim).Seconds() / wall
	r.CeilingSimMicrosPerReq = micros(after.sim-before.sim) / float64(want)
	var h2cpu time.Duration
	for _, res := range results {
		h2cpu += res.CPU
	}
	r.CeilingH2loadCores = h2cpu.Seconds() / wall
	c := coresBetween(before, after)
	r.CeilingOtherCores = max(0, c.Other+c.MariaDB-r.CeilingH2loadCores)
	if rate > 0 {
		r.Ratio = r.UsersPerSec / rate
	}
	return nil
}

// idleBusy is the load from other work below which the machine counts as
// idle, in cores.
const idleBusy = 0.3

// waitIdle waits, up to -idle-wait, until the machine's busy CPU over one
// second is below idleBusy cores; nothing of the benchmark runs meanwhile
// but an idle pushsim and MariaDB. It returns the last second's load, and
// goes on (saying so) if the machine stays busy: a shared machine is
// measured as it is, and the table shows the other work.
func (b *bench) waitIdle(ctx context.Context, what string) (float64, error) {
	if b.o.idleWait <= 0 {
		return -1, nil
	}
	deadline := time.Now().Add(b.o.idleWait)
	said := false
	for {
		t0, err := machineCPU()
		if err != nil {
			return -1, nil // no /proc/stat: nothing to wait for
		}
		start := time.Now()
		if err := sleepUntil(ctx, start.Add(time.Second)); err != nil {
			return -1, err
		}
		t1, _ := machineCPU()
		busy := (t1 - t0).Seconds() / time.Since(start).Seconds()
		if busy < idleBusy {
			return busy, nil
		}
		if time.Now().After(deadline) {
			b.logf("the machine is still busy (%.2f cores of other work) after %v; measuring %s anyway", busy, b.o.idleWait, what)
			return busy, nil
		}
		if !said {
			b.logf("waiting up to %v for other work (%.2f cores) to calm down before %s", b.o.idleWait, busy, what)
			said = true
		}
	}
}

// pushdProc is a running `pushd run`.
type pushdProc struct {
	cmd     *exec.Cmd
	exited  chan error
	logPath string
	done    bool
}

func (b *bench) startPushd(ctx context.Context, dir, config string, i int) (*pushdProc, error) {
	return b.startPushdLog(ctx, dir, config, i, "pushd.log")
}

func (b *bench) startPushdLog(ctx context.Context, dir, config string, i int, logName string) (*pushdProc, error) {
	logPath := filepath.Join(dir, logName)
	logf, err := os.Create(logPath)
	if err != nil {
		return nil, err
	}
	defer logf.Close()
	cmd := exec.Command(b.o.pushd, "run", "-config", config)
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.Env = os.Environ()
	if b.o.cpuprofile != "" {
		cmd.Env = append(cmd.Env, "PUSHD_CPUPROFILE="+filepath.Join(b.o.cpuprofile, fmt.Sprintf("pushd-%s-n%d-run%d.pprof", b.o.provider, b.o.n, i)))
	}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start pushd: %w", err)
	}
	d := &pushdProc{cmd: cmd, exited: make(chan error, 1), logPath: logPath}
	go func() { d.exited <- cmd.Wait() }()
	return d, nil
}

func (d *pushdProc) pid() int { return d.cmd.Process.Pid }

// stop sends SIGTERM and waits for pushd to exit (it writes its profile on
// the way out).
func (d *pushdProc) stop() error {
	if d.done {
		return nil
	}
	d.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case err := <-d.exited:
		d.done = true
		if err != nil {
			return fmt.Errorf("pushd exited with %v after SIGTERM; see %s", err, d.logPath)
		}
		return nil
	case <-time.After(60 * time.Second):
		d.kill()
		return fmt.Errorf("pushd did not exit within 60 s of SIGTERM; killed")
	}
}

func (d *pushdProc) kill() {
	if d.done {
		return
	}
	d.cmd.Process.Kill()
	<-d.exited
	d.done = true
}

// waitConnected waits until pushd has a connection to the run's database,
// so that the campaign is inserted into a running daemon.
func waitConnected(ctx context.Context, db *benchDB, d *pushdProc) error {
	deadline := time.Now().Add(30 * time.Second)
	for {
		ok, err := db.pushdConnected(ctx)
		if err != nil {
			return err
		}
		if ok {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("pushd did not connect to the database within 30 s\n%s", tail(d.logPath, 20))
		}
		select {
		case err := <-d.exited:
			d.exited <- err
			return fmt.Errorf("pushd exited at start (%v):\n%s", err, tail(d.logPath, 20))
		case <-time.After(50 * time.Millisecond):
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

func sleepUntil(ctx context.Context, t time.Time) error {
	select {
	case <-time.After(time.Until(t)):
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// tail is the last n lines of the file at path.
func tail(path string, n int) string {
	data, err := os.ReadFile(path)
	if err != nil {
		return err.Error()
	}
	lines := strings.Split(strings.TrimRight(string(data), "\n"), "\n")
	return strings.Join(lines[max(0, len(lines)-n):], "\n")
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

func micros(d time.Duration) float64 { return float64(d) / float64(time.Microsecond) }

// fromCampaign fills in the figures of the campaign itself: pushsim's first
// and last 200 and the campaign and run rows.
func (r *runResult) fromCampaign(at time.Time, st pushsim.Stats, rows []campaignRow, runs []runRow, o options) {
	var first, last time.Time
	for _, p := range []pushsim.ProviderStats{st.APNs, st.FCM} {
		r.Delivered += p.Delivered
		for code, n := range p.ByStatus {
			if code != "200" {
				r.Problems = append(r.Problems, fmt.Sprintf("pushsim answered %d × %s", n, code))
			}
		}
		if p.FirstAt.IsZero() {
			continue
		}
		if first.IsZero() || p.FirstAt.Before(first) {
			first = p.FirstAt
		}
		last = later(last, p.LastAt)
	}
	if r.Delivered != o.n && !(o.kill9 && r.Delivered > o.n) {
		r.Problems = append(r.Problems, fmt.Sprintf("pushsim delivered %d of %d", r.Delivered, o.n))
	}
	for _, c := range rows {
		if c.Status != "done" || c.Failed+c.Invalid+c.Expd > 0 {
			r.Problems = append(r.Problems, fmt.Sprintf("campaign %d (%s): %s, %d sent, %d failed, %d invalid, %d expired: %s",
				c.ID, c.App, c.Status, c.Sent, c.Failed, c.Invalid, c.Expd, c.Reason))
		}
	}
	if !first.IsZero() {
		r.FirstPushLateMS = ms(first.Sub(at))
		if span := last.Sub(at).Seconds(); span > 0 {
			r.UsersPerSec = float64(r.Delivered) / span
		}
		if r.UsersPerSec > 0 {
			r.SendPerBatchMS = float64(o.batch) / r.UsersPerSec * 1000
		}
	}
	for _, p := range []struct {
		name string
		st   pushsim.ProviderStats
	}{{providerAPNs, st.APNs}, {providerFCM, st.FCM}} {
		if p.st.Delivered == 0 {
			continue
		}
		pr := providerResult{Provider: p.name, Delivered: p.st.Delivered}
		if span := p.st.LastAt.Sub(p.st.FirstAt).Seconds(); span > 0 {
			pr.SimPerSec = float64(p.st.Delivered) / span
		}
		for _, run := range runs {
			if appOf(p.name) == run.App && !run.Finished.IsZero() {
				if span := run.Finished.Sub(run.Started).Seconds(); span > 0 {
					pr.RunPerSec = float64(run.Sent) / span
				}
			}
		}
		r.Providers = append(r.Providers, pr)
	}
}

func later(a, b time.Time) time.Time {
	if b.After(a) {
		return b
	}
	return a
}
