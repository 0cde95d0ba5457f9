package main

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"reflect"
	"runtime/debug"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/coreos/go-systemd/v22/daemon"
	"github.com/pushd/pushd"
	"github.com/pushd/pushd/api"
	"github.com/pushd/pushd/campaign"
	"github.com/pushd/pushd/config"
	"github.com/pushd/pushd/heartbeat"
	"github.com/pushd/pushd/monitor"
	"github.com/pushd/pushd/pushid"
	"github.com/pushd/pushd/report"
	"github.com/pushd/pushd/retention"
	"github.com/pushd/pushd/scheduler"
	"github.com/pushd/pushd/store"
)

// setGCPercent makes the collector run half as often as by default,
// unless GOGC is set. A campaign allocates per push, tens of thousands of
// times a second, around a small live heap: at GOGC=100 collection took
// about a quarter of pushd's CPU. 400 gained nothing more measurable and
// costs memory (docs/performance.md).
func setGCPercent() {
	if os.Getenv("GOGC") == "" {
		debug.SetGCPercent(200)
	}
}

// cmdRun runs the daemon until SIGTERM or SIGINT. SIGHUP reloads config.ini.
func cmdRun(ctx context.Context, args []string, stderr io.Writer) error {
	path, cfg, err := configFromArgs("run", args, stderr)
	if err != nil {
		return err
	}
	log := newLogger(cfg.Server, stderr)
	setGCPercent()
	for _, w := range cfg.Warnings {
		log.Warn(w, "component", "config")
	}
	// Subscribe before anything slow, so a SIGTERM during start-up is not
	// the default (fatal) action.
	sigs := make(chan os.Signal, 4)
	signal.Notify(sigs, syscall.SIGTERM, syscall.SIGINT, syscall.SIGHUP)
	defer signal.Stop(sigs)

	d := &service{path: path, cfg: cfg, log: log, stopped: make(chan struct{}), failed: make(chan error, 1)}
	if err := d.start(ctx); err != nil {
		d.close()
		return err
	}
	for {
		select {
		case sig := <-sigs:
			if sig == syscall.SIGHUP {
				d.reload()
				continue
			}
			log.Info("shutting down: finishing in-flight sends", "signal", sig.String(), "timeout", d.cfg.Server.ShutdownTimeout)
			return d.shutdown(ctx, sigs)
		case err := <-d.failed:
			// Health checks and metrics are how ops see pushd: without
			// them, stop cleanly and let the service manager restart it.
			log.Error("a listener failed: stopping", "error", err,
				"timeout", d.cfg.Server.ShutdownTimeout)
			if serr := d.shutdown(ctx, sigs); serr != nil {
				return serr
			}
			return fmt.Errorf("%s: %w", d.path, err)
		}
	}
}

// shutdown stops the scheduler, letting in-flight sends finish within
// shutdown_timeout, and closes everything. A second signal aborts.
func (d *service) shutdown(ctx context.Context, sigs <-chan os.Signal) error {
	notify(daemon.SdNotifyStopping)
	stopCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), d.cfg.Server.ShutdownTimeout)
	defer cancel()
	stopped := make(chan error, 1)
	go func() { stopped <- d.sched.Stop(stopCtx) }()
	select {
	case err := <-stopped:
		d.beat.Stop(context.WithoutCancel(ctx))
		d.close()
		if err != nil {
			d.log.Warn("shutdown timeout reached: aborted the sends still in flight", "error", err)
		}
		d.log.Info("pushd stopped")
		return nil
	case sig := <-sigs:
		d.log.Warn("second signal: aborting", "signal", sig.String())
		return errors.New("aborted by a second signal")
	}
}

// service is the running daemon: its config, database, scheduler and the
// listener for health and metrics.
type service struct {
	path    string
	cfg     *config.Config
	log     *slog.Logger
	st      *store.Store
	sched   *scheduler.Scheduler
	apps    map[string]*campaign.App
	purger  *retention.Purger
	beat    *heartbeat.Beat
	metrics *monitor.Metrics
	health  *monitor.Health
	http    *http.Server
	// api serves the device API on apiHTTP ([API] listen), nil when off.
	api     *api.Server
	apiHTTP *http.Server
	apiCert apiCertHolder
	// pushIDs signs the push ids of apps that use the device API.
	pushIDs *pushid.Signer
	stopped chan struct{}
	// failed gets the health listener's error if it stops serving.
	failed chan error
}

// notify tells systemd about a state change. Without NOTIFY_SOCKET it does
// nothing; an error is not worth more than ignoring, as systemd would then
// restart us for a missing READY anyway.
func notify(state string) { daemon.SdNotify(false, state) }

func (d *service) start(ctx context.Context) error {
	so := storeOptions(d.cfg)
	so.Logger = d.log.With("component", "store")
	st, err := store.Open(ctx, so)
	if err != nil {
		return err
	}
	d.st = st
	if st.LedgerWrites() != "LOAD DATA LOCAL" {
		d.log.Warn("the database has local_infile OFF: outcomes are recorded with INSERT, which costs it about a third more CPU per push; SET GLOBAL local_infile = ON lets pushd use LOAD DATA LOCAL")
	}
	if err := st.CheckSchema(ctx); err != nil {
		return err
	}
	if d.pushIDs, err = pushIDSigner(ctx, d.cfg, st); err != nil {
		return err
	}
	// The scheduler is made below; the sources read it only when scraped.
	apps := func() map[string]*campaign.App { return d.sched.Apps() }
	d.metrics = monitor.NewMetrics(apps)
	d.apps = map[string]*campaign.App{}
	for name, a := range d.cfg.Apps {
		app, err := newApp(d.cfg, a, d.log, d.st, d.metrics, d.pushIDs)
		if err != nil {
			return err
		}
		d.apps[name] = app
	}
	d.health = monitor.NewHealth(apps, d.cfg.Server.PollInterval, nil)
	watchdog, _ := daemon.SdWatchdogEnabled(false)
	self := owner(d.cfg.Server.InstanceID)
	d.sched = scheduler.New(st, d.apps, scheduler.Options{
		Owner: self, Poll: d.cfg.Server.PollInterval, Lease: d.cfg.Server.LeaseDuration,
		Logger: d.log, Observer: d.metrics,
		OnTick: d.health.Tick,
	})
	if addr := d.cfg.Server.Listen; addr != "" {
		ln, err := net.Listen("tcp", addr)
		if err != nil {
			return fmt.Errorf("%s [Server] listen = %q: %w", d.cfg.Path, addr, err)
		}
		d.http = &http.Server{Handler: monitor.Handler(d.health, d.metrics), ReadHeaderTimeout: 10 * time.Second}
		go d.serve(ln)
	}
	if d.cfg.API.Listen != "" {
		if err := d.startAPI(ctx); err != nil {
			return err
		}
	}
	if d.cfg.Server.Campaigns {
		d.sched.Start(ctx)
	} else {
		// An API-only instance: no campaign is sent here, and health
		// follows the database alone.
		d.log.Info("campaigns = off: this instance sends no campaign", "component", "daemon")
		go d.pingLoop(ctx)
	}
	d.purger = retention.New(st, retention.Options{Retention: d.cfg.Server.LedgerRetention, Logger: d.log})
	d.purger.Start(ctx)
	host, _ := os.Hostname()
	d.beat = heartbeat.New(st, d.sched, pushd.Instance{Owner: self, InstanceID: d.cfg.Server.InstanceID, Host: host,
		PID: os.Getpid(), Version: versionString(), StartedAt: time.Now()}, heartbeat.Options{Logger: d.log})
	d.beat.Start(ctx)
	go d.statusLoop(ctx)
	if watchdog > 0 {
		go d.watchdogLoop(ctx, watchdog)
	}
	d.log.Info("pushd started", "component", "daemon", "version", version, "instance", d.cfg.Server.InstanceID,
		"apps", len(d.apps), "config", d.path, "listen", d.cfg.Server.Listen)
	notify(daemon.SdNotifyReady)
	return nil
}

// pingLoop stands in for the scheduler's passes on an instance that sends
// no campaign: health and readiness follow the database.
func (d *service) pingLoop(ctx context.Context) {
	t := time.NewTicker(d.cfg.Server.PollInterval)
	defer t.Stop()
	for {
		pctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		err := d.st.Ping(pctx)
		cancel()
		d.health.Tick(err, 0)
		select {
		case <-ctx.Done():
			return
		case <-d.stopped:
			return
		case <-t.C:
		}
	}
}

// serve serves health and metrics on ln until the server is shut down;
// any other end is reported on d.failed.
func (d *service) serve(ln net.Listener) {
	if err := d.http.Serve(ln); !errors.Is(err, http.ErrServerClosed) {
		d.failed <- fmt.Errorf("[Server] listen (%s): %w", ln.Addr(), err)
	}
}

// watchdogLoop pets systemd's watchdog while the scheduler loop is alive,
// independently of poll_interval. A pass that waits on an unreachable
// database still counts as alive: restarting pushd would not bring the
// database back.
func (d *service) watchdogLoop(ctx context.Context, every time.Duration) {
	t := time.NewTicker(every / 3)
	defer t.Stop()
	for {
		if d.health.Live() {
			notify(daemon.SdNotifyWatchdog)
		}
		select {
		case <-ctx.Done():
			return
		case <-d.stopped:
			return
		case <-t.C:
		}
	}
}

// statusLoop publishes campaign totals to the metrics and systemd's status
// line every few seconds, e.g. "2 campaigns running, 41,200/1,000,000 sent".
func (d *service) statusLoop(ctx context.Context) {
	t := time.NewTicker(5 * time.Second)
	defer t.Stop()
	for {
		cctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		tot, err := d.st.CampaignTotals(cctx)
		cancel()
		if err == nil {
			d.metrics.SetCampaigns(tot.ByStatus)
			notify(fmt.Sprintf("STATUS=%d campaigns running, %s/%s sent", tot.ByStatus["running"], report.Num(tot.Sent), report.Num(tot.Targeted)))
		} else {
			notify("STATUS=database unreachable: sending paused")
		}
		select {
		case <-ctx.Done():
			return
		case <-d.stopped:
			return
		case <-t.C:
		}
	}
}

// owner names this process start in leases: the configured instance id plus
// a random suffix, so that after a restart the instance takes over the
// batches its previous life abandoned instead of waiting for them forever.
func owner(instanceID string) string {
	var b [3]byte
	rand.Read(b[:])
	return fmt.Sprintf("%s#%x", instanceID, b)
}

// reload re-reads config.ini. A config that fails validation is rejected
// whole and the old one stays in force. Apps whose section is unchanged
// keep their client, so their runs go on untouched.
func (d *service) reload() {
	log := d.log.With("component", "daemon")
	notify(daemon.SdNotifyReloading + "\n" + daemon.SdNotifyMonotonicUsec())
	defer notify(daemon.SdNotifyReady)
	reject := func(err error) {
		log.Error("reload rejected: the previous config stays in force", "error", err)
		d.health.ConfigRejected(err)
		d.metrics.Reloaded(false)
	}
	cfg, err := config.Load(d.path)
	if err != nil {
		reject(err)
		return
	}
	if restartOnly(d.cfg, cfg) {
		log.Warn("reload: changes to [Database], [API] listen, tls on or off, rate_limit and secret, and [Server] keys other than shutdown_timeout take effect on restart only")
	}
	if d.pushIDs == nil {
		// The first app of the device API came with this reload.
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		ids, err := pushIDSigner(ctx, cfg, d.st)
		cancel()
		if err != nil {
			reject(err)
			return
		}
		d.pushIDs = ids
	}
	sameCA := cfg.SSL.CAFile == d.cfg.SSL.CAFile
	apps := map[string]*campaign.App{}
	var fresh []*campaign.App
	for name, a := range cfg.Apps {
		if old, ok := d.cfg.Apps[name]; ok && sameCA && reflect.DeepEqual(old, a) {
			apps[name] = d.apps[name]
			continue
		}
		app, err := newApp(cfg, a, d.log, d.st, d.metrics, d.pushIDs)
		if err != nil {
			reject(err)
			for _, f := range fresh {
				closeApp(f)
			}
			return
		}
		apps[name] = app
		fresh = append(fresh, app)
	}
	old := d.apps
	d.sched.SetApps(apps)
	d.apps, d.cfg = apps, cfg
	var removed []string
	for name, a := range old {
		if apps[name] != a {
			// Runners still sending on the old client finish their batch
			// first; the client closes when the last of them lets go.
			a.Retire(func() { closeApp(a) })
		}
		if _, ok := apps[name]; !ok {
			removed = append(removed, name)
		}
	}
	slices.Sort(removed)
	d.purger.SetRetention(cfg.Server.LedgerRetention)
	if d.api != nil {
		d.api.SetApps(apiApps(cfg))
		if cfg.API.TLSCertFile != "" && d.apiHTTP.TLSConfig != nil {
			if err := d.loadAPICert(cfg.API); err != nil {
				log.Error("reload: the device API keeps its certificate", "error", err)
			}
		}
	}
	d.health.ConfigRejected(nil)
	d.metrics.Reloaded(true)
	log.Info("config reloaded", "apps", len(apps), "changed", len(fresh), "removed", strings.Join(removed, ","))
}

// restartOnly reports whether next changes settings that a reload does not
// apply: the database connection and the [Server] keys the daemon reads
// once at start. shutdown_timeout is read at shutdown, so it does apply.
func restartOnly(cur, next *config.Config) bool {
	a, b := cur.Server, next.Server
	a.ShutdownTimeout, b.ShutdownTimeout = 0, 0
	return !reflect.DeepEqual(cur.Database, next.Database) || a.TimeZone.String() != b.TimeZone.String() ||
		a.Listen != b.Listen || a.PollInterval != b.PollInterval || a.LeaseDuration != b.LeaseDuration ||
		a.LogFormat != b.LogFormat || a.LogLevel != b.LogLevel || a.InstanceID != b.InstanceID || a.Campaigns != b.Campaigns ||
		cur.API.Listen != next.API.Listen || (cur.API.TLSCertFile == "") != (next.API.TLSCertFile == "") || cur.API.RateLimit != next.API.RateLimit ||
		cur.API.Secret != next.API.Secret
}

func (d *service) close() {
	close(d.stopped)
	if d.purger != nil {
		d.purger.Stop()
	}
	for _, srv := range []*http.Server{d.http, d.apiHTTP} {
		if srv != nil {
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
			srv.Shutdown(ctx)
			cancel()
		}
	}
	if d.api != nil {
		d.api.Close() // after the server: the requests it let finish are written
	}
	for _, a := range d.apps {
		closeApp(a)
	}
	if d.st != nil {
		d.st.Close()
	}
}

// cmdMigrate creates or upgrades the tables.
func cmdMigrate(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	_, cfg, err := configFromArgs("migrate", args, stderr)
	if err != nil {
		return err
	}
	st, err := store.Open(ctx, storeOptions(cfg))
	if err != nil {
		return databaseError(cfg, err)
	}
	defer st.Close()
	from, err := st.Migrate(ctx)
	if err != nil {
		return err
	}
	switch {
	case from == 0:
		fmt.Fprintf(stdout, "created pushd's tables in database %s (schema version %d)\n", cfg.Database.Name, pushd.SchemaVersion)
	case from < pushd.SchemaVersion:
		fmt.Fprintf(stdout, "upgraded the schema of database %s from version %d to %d\n", cfg.Database.Name, from, pushd.SchemaVersion)
	default:
		fmt.Fprintf(stdout, "schema is current in database %s (version %d)\n", cfg.Database.Name, pushd.SchemaVersion)
	}
	return nil
}

// databaseError words a failure to connect, with the fix for a database
// that does not exist yet.
func databaseError(cfg *config.Config, err error) error {
	if errors.Is(err, store.ErrUnknownDatabase) {
		return fmt.Errorf("%s [Database] database = %q: %w: create it with CREATE DATABASE %s CHARACTER SET utf8mb4; then run pushd migrate -config %s",
			cfg.Path, cfg.Database.Name, store.ErrUnknownDatabase, cfg.Database.Name, cfg.Path)
	}
	return fmt.Errorf("%s [Database]: %w", cfg.Path, err)
}

// cmdCheck validates everything it can and lists every problem in one
// run: config errors, warnings, each valid app's credentials and the
// database, so that ops fix everything before running it again.
func cmdCheck(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	path, err := parseFlags("check", args, stderr)
	if err != nil {
		return err
	}
	cfg, databaseOK, err := config.Inspect(path)
	problems := 0
	if err != nil {
		problems += printProblems(stdout, err)
	}
	if cfg != nil {
		problems += checkSetup(ctx, cfg, databaseOK, stdout)
	}
	if problems > 0 {
		fmt.Fprintf(stdout, "%d problem(s)\n", problems)
		return errReported
	}
	fmt.Fprintln(stdout, "config is valid")
	return nil
}

// checkSetup checks what the valid part of cfg names: each app's
// credentials and, when [Database] is usable, the database. It prints a
// line per check and returns how many failed.
func checkSetup(ctx context.Context, cfg *config.Config, databaseOK bool, stdout io.Writer) int {
	problems := 0
	for _, w := range cfg.Warnings {
		fmt.Fprintln(stdout, "warning:", w)
	}
	log := slog.New(slog.DiscardHandler)
	for _, name := range cfg.AppNames() {
		a := cfg.Apps[name]
		s, _, err := newSender(cfg, a, log, senderOptions{})
		if err != nil {
			fmt.Fprintf(stdout, "error: %s [%s]: %v\n", cfg.Path, name, err)
			problems++
			continue
		}
		if c, ok := s.(closer); ok {
			c.Close()
		}
		fmt.Fprintf(stdout, "ok: [%s] %s\n", name, a.PushType)
	}
	if !databaseOK {
		fmt.Fprintln(stdout, "skipped: the database checks, until [Database] is fixed")
		return problems
	}
	cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	st, err := store.Open(cctx, storeOptions(cfg))
	if err != nil {
		fmt.Fprintf(stdout, "error: %v\n", databaseError(cfg, err))
		return problems + 1
	}
	defer st.Close()
	if err := st.CheckSchema(cctx); err != nil {
		if errors.Is(err, store.ErrSchemaMissing) || errors.Is(err, store.ErrSchemaOutdated) {
			err = fmt.Errorf("%w (pushd migrate -config %s)", err, cfg.Path)
		}
		fmt.Fprintf(stdout, "error: database %s: %v\n", cfg.Database.Name, err)
		return problems + 1
	}
	fmt.Fprintf(stdout, "ok: database %s reachable, schema current\n", cfg.Database.Name)
	cols, err := st.UserColumns(cctx)
	if err != nil {
		fmt.Fprintf(stdout, "error: database %s: %v\n", cfg.Database.Name, err)
		return problems + 1
	}
	fmt.Fprintf(stdout, "ok: users %s\n", userColumnsWords(cols))
	if cfg.API.Listen != "" {
		isTable, err := st.UsersIsTable(cctx)
		switch {
		case err != nil:
			fmt.Fprintf(stdout, "error: database %s: %v\n", cfg.Database.Name, err)
			return problems + 1
		case !isTable:
			fmt.Fprintf(stdout, "error: %s [API] listen: %v\n", cfg.Path, errUsersView)
			return problems + 1
		}
		fmt.Fprintf(stdout, "ok: [API] device API on %s\n", cfg.API.Listen)
	}
	return problems
}

// userColumnsWords says which optional users columns templates and
// translations can use.
func userColumnsWords(c store.UserColumns) string {
	switch {
	case c.Locale && c.Attributes:
		return "has locale and attributes: translations and templates use them"
	case c.Locale:
		return "has locale but no attributes column: translations work; templates see only id and locale"
	case c.Attributes:
		return "has attributes but no locale column: templates work; every user gets the campaign's own text, not a translation"
	}
	return "has no locale or attributes column: every user gets the campaign's own text, and templates see only id"
}
