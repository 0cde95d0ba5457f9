package main

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"reflect"
	"syscall"
	"time"

	"github.com/pushd/pushd/campaign"
	"github.com/pushd/pushd/config"
	"github.com/pushd/pushd/scheduler"
	"github.com/pushd/pushd/store"
)

// cmdRun runs the daemon until SIGTERM or SIGINT. SIGHUP reloads config.ini.
func cmdRun(ctx context.Context, args []string, stderr io.Writer) error {
	path, err := parseFlags("run", args, stderr)
	if err != nil {
		return err
	}
	cfg, err := loadConfig(path, stderr)
	if err != nil {
		return err
	}
	log := newLogger(cfg.Server, stderr)
	for _, w := range cfg.Warnings {
		log.Warn(w, "component", "config")
	}
	// Subscribe before anything slow, so a SIGTERM during start-up is not
	// the default (fatal) action.
	sigs := make(chan os.Signal, 4)
	signal.Notify(sigs, syscall.SIGTERM, syscall.SIGINT, syscall.SIGHUP)
	defer signal.Stop(sigs)

	d := &daemon{path: path, cfg: cfg, log: log}
	if err := d.start(ctx); err != nil {
		d.close()
		return err
	}
	for sig := range sigs {
		if sig == syscall.SIGHUP {
			d.reload()
			continue
		}
		log.Info("shutting down: finishing in-flight sends", "signal", sig.String(), "timeout", cfg.Server.ShutdownTimeout)
		stopCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), d.cfg.Server.ShutdownTimeout)
		stopped := make(chan error, 1)
		go func() { stopped <- d.sched.Stop(stopCtx) }()
		select {
		case err := <-stopped:
			cancel()
			d.close()
			if err != nil {
				log.Warn("shutdown timeout reached: aborted the sends still in flight", "error", err)
			}
			log.Info("pushd stopped")
			return nil
		case sig := <-sigs:
			cancel()
			log.Warn("second signal: aborting", "signal", sig.String())
			return errors.New("aborted by a second signal")
		}
	}
	return nil
}

// daemon is the running pushd: its config, database and scheduler.
type daemon struct {
	path  string
	cfg   *config.Config
	log   *slog.Logger
	st    *store.Store
	sched *scheduler.Scheduler
	apps  map[string]*campaign.App
}

func (d *daemon) start(ctx context.Context) error {
	st, err := store.Open(ctx, storeOptions(d.cfg))
	if err != nil {
		return err
	}
	d.st = st
	if err := st.CheckSchema(ctx); err != nil {
		return err
	}
	d.apps = map[string]*campaign.App{}
	for name, a := range d.cfg.Apps {
		app, err := newApp(d.cfg, a, d.log)
		if err != nil {
			return err
		}
		d.apps[name] = app
	}
	d.sched = scheduler.New(st, d.apps, scheduler.Options{
		Owner: owner(d.cfg.Server.InstanceID), Poll: d.cfg.Server.PollInterval, Lease: d.cfg.Server.LeaseDuration,
		Logger: d.log,
	})
	d.sched.Start(ctx)
	d.log.Info("pushd started", "component", "daemon", "version", version, "instance", d.cfg.Server.InstanceID,
		"apps", len(d.apps), "config", d.path)
	return nil
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
func (d *daemon) reload() {
	log := d.log.With("component", "daemon")
	cfg, err := config.Load(d.path)
	if err != nil {
		log.Error("reload rejected: config.ini is invalid; the previous config stays in force", "error", err)
		return
	}
	if !reflect.DeepEqual(cfg.Database, d.cfg.Database) || cfg.Server.TimeZone.String() != d.cfg.Server.TimeZone.String() {
		log.Warn("reload: [Database] and [Server] timezone changes take effect on restart only")
	}
	apps := map[string]*campaign.App{}
	var fresh []*campaign.App
	for name, a := range cfg.Apps {
		if old, ok := d.cfg.Apps[name]; ok && reflect.DeepEqual(old, a) && reflect.DeepEqual(cfg.SSL.CAFile, d.cfg.SSL.CAFile) {
			apps[name] = d.apps[name]
			continue
		}
		app, err := newApp(cfg, a, d.log)
		if err != nil {
			log.Error("reload rejected; the previous config stays in force", "error", err)
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
	for name, a := range old {
		if apps[name] != a {
			// Runners still sending on the old client finish their batch
			// first; close it once they are surely done.
			time.AfterFunc(cfg.Server.ShutdownTimeout+time.Minute, func() { closeApp(a) })
		}
	}
	log.Info("config reloaded", "apps", len(apps), "changed", len(fresh))
}

func (d *daemon) close() {
	for _, a := range d.apps {
		closeApp(a)
	}
	if d.st != nil {
		d.st.Close()
	}
}

// cmdMigrate creates or upgrades the tables.
func cmdMigrate(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	path, err := parseFlags("migrate", args, stderr)
	if err != nil {
		return err
	}
	cfg, err := loadConfig(path, stderr)
	if err != nil {
		return err
	}
	st, err := store.Open(ctx, storeOptions(cfg))
	if err != nil {
		return err
	}
	defer st.Close()
	if err := st.Migrate(ctx); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "schema is current in database %s\n", cfg.Database.Name)
	return nil
}

// cmdCheck validates everything it can and lists every problem.
func cmdCheck(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	path, err := parseFlags("check", args, stderr)
	if err != nil {
		return err
	}
	cfg, err := config.Load(path)
	if err != nil {
		printProblems(stdout, err)
		return errReported
	}
	problems := 0
	for _, w := range cfg.Warnings {
		fmt.Fprintln(stdout, "warning:", w)
	}
	log := slog.New(slog.DiscardHandler)
	for _, name := range cfg.AppNames() {
		a := cfg.Apps[name]
		s, _, err := newSender(cfg, a, log)
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
	cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	st, err := store.Open(cctx, storeOptions(cfg))
	if err != nil {
		fmt.Fprintf(stdout, "error: %s [Database]: %v\n", cfg.Path, err)
		problems++
	} else {
		defer st.Close()
		if err := st.CheckSchema(cctx); err != nil {
			fmt.Fprintf(stdout, "error: database %s: %v\n", cfg.Database.Name, err)
			problems++
		} else {
			fmt.Fprintf(stdout, "ok: database %s reachable, schema current\n", cfg.Database.Name)
		}
	}
	if problems > 0 {
		fmt.Fprintf(stdout, "%d problem(s)\n", problems)
		return errReported
	}
	fmt.Fprintln(stdout, "config is valid")
	return nil
}
