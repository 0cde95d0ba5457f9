package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"runtime/debug"
	"sync"
	"time"

	"github.com/pushd/pushd"
	"github.com/pushd/pushd/campaign"
	"github.com/pushd/pushd/config"
	"github.com/pushd/pushd/monitor"
	"github.com/pushd/pushd/providers/apns"
	"github.com/pushd/pushd/providers/fcm"
	"github.com/pushd/pushd/providers/transport"
	"github.com/pushd/pushd/pushid"
	"github.com/pushd/pushd/store"
)

const defaultConfigPath = "/etc/pushd/config.ini"

// parseFlags parses the flags every config-reading command shares.
func parseFlags(name string, args []string, stderr io.Writer) (string, error) {
	fs := flag.NewFlagSet("pushd "+name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	path := fs.String("config", defaultConfigPath, "path of config.ini")
	if err := fs.Parse(args); err != nil {
		return "", errReported
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "pushd %s: unexpected argument %q\n", name, fs.Arg(0))
		return "", errReported
	}
	return *path, nil
}

// configFromArgs parses -config and loads that file, printing every problem
// on failure.
func configFromArgs(name string, args []string, stderr io.Writer) (string, *config.Config, error) {
	path, err := parseFlags(name, args, stderr)
	if err != nil {
		return "", nil, err
	}
	cfg, err := loadConfig(path, stderr)
	return path, cfg, err
}

// loadConfig loads the config, printing every problem on failure.
func loadConfig(path string, stderr io.Writer) (*config.Config, error) {
	cfg, err := config.Load(path)
	if err != nil {
		printProblems(stderr, err)
		return nil, errReported
	}
	return cfg, nil
}

// printProblems prints each error of a joined error on a line of its own.
func printProblems(w io.Writer, err error) int {
	var joined interface{ Unwrap() []error }
	if errors.As(err, &joined) {
		for _, e := range joined.Unwrap() {
			fmt.Fprintln(w, "error:", e)
		}
		return len(joined.Unwrap())
	}
	fmt.Fprintln(w, "error:", err)
	return 1
}

func storeOptions(cfg *config.Config) store.Options {
	d := cfg.Database
	return store.Options{Host: d.Host, Port: d.Port, Socket: d.Socket, User: d.User, Password: d.Password,
		Database: d.Name, TLS: d.TLS, TLSCAFile: d.TLSCAFile, MaxOpenConns: d.MaxOpenConns, Location: cfg.Server.TimeZone}
}

// openStore connects to the database of cfg, giving up after 5 s.
func openStore(ctx context.Context, cfg *config.Config) (*store.Store, error) {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	return store.Open(ctx, storeOptions(cfg))
}

// closer is a provider client.
type closer interface{ Close() }

// senderOptions are what `pushd send` changes about a client.
type senderOptions struct {
	// transport replaces the provider connections (APNs dry run).
	transport http.RoundTripper
	// validateOnly makes FCM check without delivering (FCM dry run).
	validateOnly bool
	// share is where APNs clients get their provider token; nil signs
	// their own (only when the database cannot be reached).
	share apns.TokenShare
	// onConnEvent hears of the provider connections' events.
	onConnEvent func(transport.Event)
}

// newSender builds the provider client of one app section.
func newSender(cfg *config.Config, a *config.App, log *slog.Logger, o senderOptions) (campaign.Sender, pushd.PushType, error) {
	log = log.With("component", "provider", "app", a.Name)
	switch a.PushType {
	case pushd.APNs:
		c, err := apns.New(apns.Options{Endpoint: a.Endpoint, Environment: a.Environment, BundleID: a.BundleID,
			TeamID: a.TeamID, KeyID: a.KeyID, Key: a.AuthKey, RootCAs: cfg.SSL.RootCAs, Connections: a.Connections,
			RequestTimeout: a.RequestTimeout, Logger: log, Transport: o.transport, Share: o.share, OnConnEvent: o.onConnEvent})
		return c, pushd.APNs, err
	case pushd.FCM:
		c, err := fcm.New(fcm.Options{Endpoint: a.Endpoint, ProjectID: a.ProjectID, ServiceAccountJSON: a.ServiceAccountJSON,
			RootCAs: cfg.SSL.RootCAs, Connections: a.Connections, RequestTimeout: a.RequestTimeout, Logger: log,
			Transport: o.transport, ValidateOnly: o.validateOnly, OnConnEvent: o.onConnEvent})
		return c, pushd.FCM, err
	}
	return nil, "", fmt.Errorf("push_type %q", a.PushType)
}

// newApp builds a campaign.App for one app section, whose APNs provider
// token comes from share; its connection events go to the log and m.
func newApp(cfg *config.Config, a *config.App, log *slog.Logger, share apns.TokenShare, m *monitor.Metrics, ids *pushid.Signer) (*campaign.App, error) {
	s, kind, err := newSender(cfg, a, log, senderOptions{share: share, onConnEvent: connEvents(log, a.Name, a.PushType, m)})
	if err != nil {
		return nil, fmt.Errorf("%s [%s]: %w", cfg.Path, a.Name, err)
	}
	return campaign.NewApp(a.Name, kind, s, campaign.AppOptions{BatchSize: a.BatchSize, DefaultExpiry: a.DefaultExpiry,
		MaxAttempts: a.MaxAttempts, Concurrency: a.Concurrency, RateLimit: a.RateLimit, Cap: a.FrequencyCap,
		DefaultZone: defaultZone(cfg, a), Quiet: a.QuietHours, PushIDs: appPushIDs(a, ids)}), nil
}

// appPushIDs is the signer of an app's push ids: the apps that use the
// device API (api_keys set) carry one in every push.
func appPushIDs(a *config.App, ids *pushid.Signer) *pushid.Signer {
	if len(a.APIKeys) == 0 {
		return nil
	}
	return ids
}

// defaultZone is the zone of an app's users with no valid timezone.
func defaultZone(cfg *config.Config, a *config.App) *time.Location {
	if a.DefaultTimezone != nil {
		return a.DefaultTimezone
	}
	return cfg.Server.TimeZone
}

// connEventEvery bounds the log lines per app and kind of connection
// event: a provider that refuses connections for a minute is one line
// every 10 s, with the count of the ones left out.
const connEventEvery = 10 * time.Second

// connEvents logs an app's provider connection events at info (a lost
// connection or failed dial at warn), rate-limited per kind, and counts
// them all in m.
func connEvents(log *slog.Logger, app string, kind pushd.PushType, m *monitor.Metrics) func(transport.Event) {
	log = log.With("component", "provider", "app", app)
	var (
		mu      sync.Mutex
		last    = map[transport.EventKind]time.Time{}
		skipped = map[transport.EventKind]int{}
	)
	return func(e transport.Event) {
		if m != nil {
			m.ConnEvent(app, kind, string(e.Kind))
		}
		now := time.Now()
		mu.Lock()
		if now.Sub(last[e.Kind]) < connEventEvery {
			skipped[e.Kind]++
			mu.Unlock()
			return
		}
		n := skipped[e.Kind]
		last[e.Kind], skipped[e.Kind] = now, 0
		mu.Unlock()
		level, msg := slog.LevelInfo, "connected to the provider"
		switch e.Kind {
		case transport.DialFailed:
			level, msg = slog.LevelWarn, "cannot connect to the provider; pushes wait for a connection"
		case transport.Lost:
			level, msg = slog.LevelWarn, "lost a connection to the provider; pushes in flight are retried"
		case transport.GoAway:
			msg = "the provider is closing a connection (GOAWAY); new pushes use another"
		}
		attrs := []any{"addr", e.Addr}
		if e.Err != nil {
			attrs = append(attrs, "error", e.Err)
		}
		if n > 0 {
			attrs = append(attrs, "more_since_last_line", n)
		}
		log.Log(context.Background(), level, msg, attrs...)
	}
}

func closeApp(a *campaign.App) {
	if c, ok := a.Sender.(closer); ok {
		c.Close()
	}
}

// newLogger returns the daemon's logger: text on a terminal, JSON under
// systemd or when piped, unless config.ini says which.
func newLogger(s config.Server, w io.Writer) *slog.Logger {
	opts := &slog.HandlerOptions{Level: s.LogLevel}
	format := s.LogFormat
	if format == "" || format == "auto" {
		format = "json"
		if f, ok := w.(*os.File); ok && os.Getenv("JOURNAL_STREAM") == "" {
			if fi, err := f.Stat(); err == nil && fi.Mode()&os.ModeCharDevice != 0 {
				format = "text"
			}
		}
	}
	if format == "text" {
		return slog.New(slog.NewTextHandler(w, opts))
	}
	return slog.New(slog.NewJSONHandler(w, opts))
}

// versionString names this build: the version stamped by the Makefile
// (git describe), else the module version of `go install …@vX`, else the
// commit the binary was built from, and the Go version.
func versionString() string {
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return "pushd " + version
	}
	return "pushd " + buildVersion(version, bi)
}

// buildVersion is versionString's logic over a build's info.
func buildVersion(stamped string, bi *debug.BuildInfo) string {
	v := stamped
	if v == "" || v == "dev" {
		v = "dev"
		if bi.Main.Version != "" && bi.Main.Version != "(devel)" {
			v = bi.Main.Version
		} else {
			var rev, at, dirty string
			for _, s := range bi.Settings {
				switch s.Key {
				case "vcs.revision":
					rev = s.Value[:min(12, len(s.Value))]
				case "vcs.time":
					at = s.Value
				case "vcs.modified":
					if s.Value == "true" {
						dirty = "-dirty"
					}
				}
			}
			if rev != "" {
				v = "git " + rev + dirty
				if at != "" {
					v += " of " + at
				}
			}
		}
	}
	return v + " " + bi.GoVersion
}
