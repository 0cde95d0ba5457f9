package config

import (
	"crypto/ecdsa"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	// The zone database is embedded so that a timezone accepted by
	// `pushd check` loads the same on a minimal host without tzdata.
	_ "time/tzdata"

	"github.com/pushd/pushd"
)

// Config is a loaded and validated config.ini. It is immutable after Load
// returns and safe to share between goroutines.
type Config struct {
	// Path is the file the configuration was read from, as passed to Load
	// or Parse.
	Path     string
	Server   Server
	SSL      SSL
	Database Database
	API      API
	// Apps holds one entry per app section, keyed by the section name as
	// written, which is the app name used in the database tables.
	Apps map[string]*App
	// Warnings lists non-fatal problems, each formatted like a
	// ValidationError, e.g. "config.ini [MyApp] auth_key_path:
	// /etc/pushd/AuthKey.p8 is readable by other users (mode 0644); chmod 600 it".
	Warnings []string
}

// AppNames returns the names of the configured apps, sorted.
func (c *Config) AppNames() []string {
	names := make([]string, 0, len(c.Apps))
	for name := range c.Apps {
		names = append(names, name)
	}
	slices.Sort(names)
	return names
}

// Server is the [Server] section: how the daemon itself runs.
type Server struct {
	// Listen is the host:port of the health and metrics listener (listen),
	// default "127.0.0.1:9468". It is empty when listen = off.
	Listen string
	// PollInterval is how often the scheduler looks for due campaigns
	// (poll_interval), default 1s, 100ms to 1m.
	PollInterval time.Duration
	// TimeZone is the zone the DATETIME columns are written in (timezone, an
	// IANA name), default UTC.
	TimeZone *time.Location
	// LeaseDuration is how long a claimed campaign stays with this instance
	// without a renewal (lease_duration), default 30s, 5s to 10m.
	LeaseDuration time.Duration
	// ShutdownTimeout bounds how long in-flight sends may finish after
	// SIGTERM (shutdown_timeout), default 30s, 1s to 10m.
	ShutdownTimeout time.Duration
	// LogFormat is "auto", "text" or "json" (log_format), default "auto":
	// text on a terminal, JSON otherwise.
	LogFormat string
	// LogLevel is the minimum level logged (log_level: debug, info, warn or
	// error), default info.
	LogLevel slog.Level
	// InstanceID names this process in leases and logs (instance_id),
	// default "<hostname>:<pid>".
	InstanceID string
	// LedgerRetention is how long the per-user ledger rows of a finished
	// run are kept (ledger_retention), default 90 days, 1 day to 10 years;
	// 0 keeps them for ever. Written with d for days, e.g. "90d", or as a
	// duration, e.g. "2160h".
	LedgerRetention time.Duration
	// Campaigns is false when this instance only serves the device API
	// (campaigns = off): it starts no scheduler and sends nothing.
	Campaigns bool
}

// SSL is the [SSL] section: trust for the connections to APNs and FCM.
type SSL struct {
	// CAFile is the resolved absolute path of an extra PEM bundle trusted
	// for provider connections (ca_file), e.g. a simulator's CA. Empty when
	// not set.
	CAFile string
	// RootCAs is the system pool plus the certificates of CAFile. It is nil
	// when CAFile is empty, which in a tls.Config means the system pool.
	RootCAs *x509.CertPool
}

// Database is the [Database] section: the MySQL/MariaDB server holding the
// campaigns and device tokens.
type Database struct {
	// Host is the server's host name or address (host), default "localhost".
	Host string
	// Port is the TCP port (port), default 3306, 1 to 65535.
	Port int
	// Socket is the resolved path of a Unix socket (socket). When set it is
	// used instead of Host and Port.
	Socket string
	// User is the database user (user), required.
	User string
	// Password is the user's password (password, legacy alias passwd),
	// possibly empty.
	Password string
	// Name is the database name (database, legacy alias db), required.
	Name string
	// TLS is "false", "true", "skip-verify" or "preferred" (tls), with the
	// meanings of go-sql-driver/mysql's tls parameter. Default "false".
	TLS string
	// TLSCAFile is the resolved path of a PEM bundle to verify the server
	// with (tls_ca_file). Only allowed with TLS "true"; empty means the
	// system pool.
	TLSCAFile string
	// MaxOpenConns caps the connection pool (max_open_conns), default 16,
	// 2 to 200.
	MaxOpenConns int
}

// App is one app section: the credentials and limits for sending one app's
// campaigns. Fields of the other provider are zero.
type App struct {
	// Name is the section name, as used in the database tables.
	Name     string
	PushType pushd.PushType
	// Endpoint overrides the provider's base URL (endpoint), for a
	// simulator or staging host: "https://host[:port]" with no path. Empty
	// means the provider's own host (for APNs, chosen by Environment).
	Endpoint string
	// BatchSize is how many device tokens are claimed from the database at
	// a time (batch_size), default 5000, 1 to 100000.
	BatchSize int
	// Concurrency is the maximum number of requests in flight
	// (concurrency), default 2000, 1 to 20000.
	Concurrency int
	// Connections is the number of HTTP/2 connections to the provider
	// (connections), default 2, 1 to 16.
	Connections int
	// RateLimit is the maximum number of pushes per second (rate_limit);
	// 0, the default, means unlimited.
	RateLimit float64
	// DefaultExpiry is how long after its start a campaign without
	// expires_at may still be delivered (default_expiry), default 24h,
	// 1m to 672h (the providers keep a push at most 4 weeks).
	DefaultExpiry time.Duration
	// MaxAttempts is how often a push is tried when the provider answers
	// with a retryable error (max_attempts), default 5, 1 to 20.
	MaxAttempts int
	// RequestTimeout bounds one request to the provider, answer included
	// (request_timeout), default 30s, 1s to 5m. A push that times out is
	// retried like any network error.
	RequestTimeout time.Duration
	// FrequencyCap (frequency_cap = N/DURATION, default off): a user sent
	// FrequencyCap.Count pushes of the app within the last
	// FrequencyCap.Window is sent no other, unless the campaign says
	// ignore_frequency_cap. The zero value is off.
	FrequencyCap pushd.FrequencyCap
	// DefaultTimezone (default_timezone) is the zone of users with no
	// valid users.timezone in local-time campaigns and quiet hours; nil:
	// [Server] timezone.
	DefaultTimezone *time.Location
	// QuietHours (quiet_hours = HH:MM-HH:MM, default off) is the window, in
	// each user's local time, in which no push of the app goes out.
	QuietHours pushd.QuietHours
	// APIKeys are the keys the app's installations send to the device API
	// (api_keys): one, or two while the apps move to a new one.
	APIKeys []string

	// Environment is "development" or "production" (APNs only): it picks
	// api.sandbox.push.apple.com or api.push.apple.com.
	Environment string
	// BundleID is the app's bundle ID, the base of the apns-topic (APNs).
	BundleID string
	// KeyID is the 10-character ID of the auth key (APNs).
	KeyID string
	// TeamID is the 10-character Apple developer team ID (APNs).
	TeamID string
	// AuthKeyPath is the resolved absolute path of the .p8 auth key (APNs).
	AuthKeyPath string
	// AuthKey is the parsed auth key, a P-256 key for ES256 (APNs).
	AuthKey *ecdsa.PrivateKey

	// ServiceAccountFile is the resolved absolute path of the
	// service-account key JSON file (FCM).
	ServiceAccountFile string
	// ServiceAccountJSON holds the bytes of ServiceAccountFile, ready for
	// golang.org/x/oauth2/google (FCM).
	ServiceAccountJSON []byte
	// ProjectID is the Firebase project to send through (project_id),
	// default the service account's project_id (FCM).
	ProjectID string
	// ClientEmail is the service account's client_email (FCM).
	ClientEmail string
}

// Load reads and validates the configuration file at path. Relative paths in
// the file resolve against the file's directory.
//
// On failure Load returns a nil Config and an errors.Join of every
// *ValidationError found.
func Load(path string) (*Config, error) {
	cfg, c, err := load(path)
	if err != nil {
		return nil, err
	}
	if len(c.errs) > 0 {
		return nil, c.joined()
	}
	return cfg, nil
}

// Inspect is Load for `pushd check`: besides every problem, as Load
// returns them, it returns the part of the configuration that is valid, so
// that the other checks can run in the same pass: the apps whose sections
// have no error, the warnings, and the [Database] section, which is usable
// only when databaseOK. cfg is nil only when the file cannot be read.
func Inspect(path string) (cfg *Config, databaseOK bool, err error) {
	cfg, c, err := load(path)
	if err != nil {
		return nil, false, err
	}
	databaseOK = true
	for _, l := range c.errs {
		switch {
		case l.err.Section == "":
		case kindOf(l.err.Section) == databaseSection:
			databaseOK = false
		default:
			for name := range cfg.Apps {
				if strings.EqualFold(name, l.err.Section) {
					delete(cfg.Apps, name)
				}
			}
		}
	}
	// A file that did not parse, or has no [Database], has none to check.
	databaseOK = databaseOK && cfg.Database.Name != ""
	if len(c.errs) > 0 {
		return cfg, databaseOK, c.joined()
	}
	return cfg, databaseOK, nil
}

// load reads and checks the file at path. Its error means the file could
// not be read; the checker holds the problems found in it.
func load(path string) (*Config, *checker, error) {
	file := filepath.Base(path)
	fail := func(err error) (*Config, *checker, error) {
		return nil, nil, errors.Join(&ValidationError{File: file, Err: err})
	}
	f, err := os.Open(path)
	if err != nil {
		return fail(err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return fail(err)
	}
	if !fi.Mode().IsRegular() {
		return fail(errors.New(path + " is not a regular file"))
	}
	data, err := readLimited(f, maxConfigSize)
	if err != nil {
		return fail(err)
	}
	abs, err := filepath.Abs(path)
	if err != nil {
		return fail(err)
	}
	cfg, c := parse(path, data, filepath.Dir(abs))
	if cfg.Database.Password != "" && fi.Mode().Perm()&0o004 != 0 {
		cfg.Warnings = append(cfg.Warnings, (&ValidationError{
			File: file,
			Err:  permError(abs, fi.Mode(), "holds the database password and is readable by every user", "chmod o-r it"),
		}).Error())
	}
	return cfg, c, nil
}

// Parse validates a configuration held in memory. name is the file name used
// in errors; relative paths resolve against baseDir (the current directory
// when empty). Key and service-account files are read from disk.
//
// On failure Parse returns a nil Config and an errors.Join of every
// *ValidationError found.
func Parse(name string, data []byte, baseDir string) (*Config, error) {
	cfg, c := parse(name, data, baseDir)
	if len(c.errs) > 0 {
		return nil, c.joined()
	}
	return cfg, nil
}

// parse checks a configuration held in memory; the Config is complete only
// when the checker recorded no error.
func parse(name string, data []byte, baseDir string) (*Config, *checker) {
	if baseDir == "" {
		baseDir = "."
	}
	abs, err := filepath.Abs(baseDir)
	if err == nil {
		baseDir = abs
	}
	file := ""
	if name != "" {
		file = filepath.Base(name)
	}
	c := &checker{file: file, baseDir: baseDir}
	if len(data) > maxConfigSize {
		c.fileError(fmt.Errorf("is larger than %d KiB: is this the right file?", maxConfigSize>>10))
		return &Config{Apps: map[string]*App{}, Path: name}, c
	}
	cfg := c.check(data)
	cfg.Path = name
	return cfg, c
}
