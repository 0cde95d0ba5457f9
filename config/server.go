package config

import (
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"strconv"
	"strings"
	"time"
	"unicode"
)

// Defaults of the [Server] section.
const (
	defaultListen          = "127.0.0.1:9468"
	defaultPollInterval    = time.Second
	defaultLeaseDuration   = 30 * time.Second
	defaultShutdownTimeout = 30 * time.Second
	defaultLedgerRetention = 90 * day
)

const day = 24 * time.Hour

var logLevels = map[string]slog.Level{
	"debug": slog.LevelDebug,
	"info":  slog.LevelInfo,
	"warn":  slog.LevelWarn,
	"error": slog.LevelError,
}

// server reads the [Server] section.
func (s *section) server() Server {
	s.checkKeys(serverKeys)
	srv := Server{
		Listen:          s.listen(),
		PollInterval:    s.duration("poll_interval", defaultPollInterval, 100*time.Millisecond, time.Minute),
		TimeZone:        s.timeZone(),
		LeaseDuration:   s.duration("lease_duration", defaultLeaseDuration, 5*time.Second, 10*time.Minute),
		ShutdownTimeout: s.duration("shutdown_timeout", defaultShutdownTimeout, time.Second, 10*time.Minute),
		LogFormat:       s.choice("log_format", "auto", []string{"auto", "text", "json"}, map[string]string{"logfmt": "text", "plain": "text", "console": "text"}),
		InstanceID:      s.instanceID(),
		LedgerRetention: s.retention("ledger_retention", defaultLedgerRetention, day, 3653*day),
		Campaigns:       s.choice("campaigns", "on", []string{"on", "off"}, map[string]string{"true": "on", "yes": "on", "1": "on", "false": "off", "no": "off", "0": "off"}) == "on",
	}
	level := s.choice("log_level", "info", []string{"debug", "info", "warn", "error"},
		map[string]string{"warning": "warn", "err": "error", "trace": "debug", "notice": "info", "critical": "error", "fatal": "error"})
	srv.LogLevel = logLevels[level]
	return srv
}

// retention reads a period written in days ("90d") or as a duration
// ("2160h"), between lo and hi, or 0 for for ever; default def.
func (s *section) retention(key string, def, lo, hi time.Duration) time.Duration {
	e, ok := s.present(key, formatDays(def))
	if !ok {
		return def
	}
	if e.value == "0" {
		return 0
	}
	var d time.Duration
	if n, found := strings.CutSuffix(e.value, "d"); found {
		days, err := strconv.Atoi(n)
		if err != nil || days < 0 {
			s.fail(e, fmt.Errorf("must be a whole number of days such as %q, a duration such as \"2160h\", or 0 to keep everything", formatDays(def)))
			return def
		}
		d = time.Duration(days) * day
	} else {
		var err error
		if d, err = time.ParseDuration(e.value); err != nil {
			s.fail(e, fmt.Errorf("must be a number of days such as %q, a duration such as \"2160h\", or 0 to keep everything", formatDays(def)))
			return def
		}
	}
	if d < lo || d > hi {
		s.fail(e, fmt.Errorf("is out of range: must be between %s and %s, or 0 to keep everything", formatDays(lo), formatDays(hi)))
		return def
	}
	return d
}

// formatDays writes a whole number of days as "90d", else as a duration.
func formatDays(d time.Duration) string {
	if d%day == 0 {
		return strconv.Itoa(int(d/day)) + "d"
	}
	return formatDuration(d)
}

// listen reads the health and metrics listener address.
func (s *section) listen() string {
	e, ok := s.present("listen", defaultListen)
	if !ok {
		return defaultListen
	}
	if strings.EqualFold(e.value, "off") {
		return ""
	}
	fix := fmt.Sprintf(`must be host:port such as %q, ":9468" for every interface, or "off"`, defaultListen)
	host, port, err := net.SplitHostPort(e.value)
	if err != nil {
		s.fail(e, errors.New(fix))
		return ""
	}
	if n, err := strconv.Atoi(port); err != nil || n < 1 || n > 65535 {
		s.fail(e, fmt.Errorf("port %q is not a number between 1 and 65535: %s", port, fix))
		return ""
	}
	if host != "" && net.ParseIP(host) == nil && !hostPattern.MatchString(host) {
		s.fail(e, fmt.Errorf("host %q is not an IP address or host name: %s", host, fix))
		return ""
	}
	return e.value
}

// timeZone reads the zone of the DATETIME columns.
func (s *section) timeZone() *time.Location {
	e, ok := s.present("timezone", "UTC")
	if !ok {
		return time.UTC
	}
	if strings.EqualFold(e.value, "local") {
		s.fail(e, errors.New(`depends on the host's settings: name the zone the database is written in, e.g. "UTC" or "Europe/Berlin"`))
		return time.UTC
	}
	loc, err := time.LoadLocation(e.value)
	if err != nil {
		s.fail(e, errors.New(`is not a known time zone: use an IANA name such as "UTC" or "Europe/Berlin"`))
		return time.UTC
	}
	return loc
}

// instanceID reads the name of this process in leases and logs.
func (s *section) instanceID() string {
	e, ok := s.get("instance_id")
	if !ok || e.value == "" {
		host, err := os.Hostname()
		if err != nil || host == "" {
			host = "localhost"
		}
		return fmt.Sprintf("%s:%d", host, os.Getpid())
	}
	switch {
	case len(e.value) > 255:
		s.fail(e, errors.New("is longer than 255 bytes: use a shorter name"))
	case strings.ContainsFunc(e.value, func(r rune) bool { return unicode.IsSpace(r) || unicode.IsControl(r) }):
		s.fail(e, errors.New("contains spaces or control characters: use e.g. host:1"))
	}
	return e.value
}

// ssl reads the [SSL] section.
func (s *section) ssl() SSL {
	s.checkKeys(sslKeys)
	e, ok := s.get("ca_file")
	if !ok || e.value == "" {
		return SSL{}
	}
	path, certs, ok := s.caFile(e)
	if !ok {
		return SSL{}
	}
	pool, err := x509.SystemCertPool()
	if err != nil {
		s.warn(e, fmt.Errorf("the system's trusted certificates could not be loaded (%v): only %s is trusted", err, path))
		pool = x509.NewCertPool()
	}
	for _, c := range certs {
		pool.AddCert(c)
	}
	return SSL{CAFile: path, RootCAs: pool}
}

// caFile reads and parses a PEM bundle of CA certificates.
func (s *section) caFile(e *entry) (string, []*x509.Certificate, bool) {
	path, data, ok := s.readFile(e, maxCASize, false)
	if !ok {
		return "", nil, false
	}
	certs, err := parseCertificates(data)
	if err != nil {
		s.fail(e, fmt.Errorf("%s %w", path, err))
		return "", nil, false
	}
	return path, certs, true
}

// database reads the [Database] section.
func (s *section) database() Database {
	s.checkKeys(databaseKeys)
	db := Database{
		Host:         s.str("host", "localhost"),
		Port:         s.integer("port", 3306, 1, 65535, ""),
		MaxOpenConns: s.integer("max_open_conns", 16, 2, 200, ""),
	}
	if e, ok := s.get("host"); ok && e.value != "" && net.ParseIP(e.value) == nil && !hostPattern.MatchString(e.value) {
		s.fail(e, errors.New(`is not an IP address or host name (put the port in port = and a socket path in socket =)`))
	}
	if e, ok := s.get("socket"); ok && e.value != "" {
		db.Socket = s.c.resolve(e.value)
		for _, key := range []string{"host", "port"} {
			if other, ok := s.get(key); ok && other.value != "" {
				s.warn(other, errors.New("is ignored because socket is set"))
			}
		}
	}
	if e, ok := s.required("user", "the MySQL user pushd logs in as"); ok {
		db.User = e.value
	}
	db.Password = s.aliased("password", "passwd")
	if e, ok := s.aliasedEntry("database", "db"); !ok {
		s.failMissing("database", errors.New("is missing: set it to the name of the database holding pushd's tables"))
	} else if e.value == "" {
		s.fail(e, errors.New("is empty: set it to the name of the database holding pushd's tables"))
	} else {
		db.Name = e.value
	}

	errsBefore := len(s.c.errs)
	db.TLS = s.choice("tls", "false", []string{"false", "true", "skip-verify", "preferred"},
		map[string]string{"yes": "true", "on": "true", "1": "true", "required": "true", "verify": "true",
			"no": "false", "off": "false", "0": "false", "disabled": "false", "insecure": "skip-verify"})
	tlsValid := len(s.c.errs) == errsBefore
	if e, ok := s.get("tls_ca_file"); ok && e.value != "" {
		if path, _, ok := s.caFile(e); ok {
			db.TLSCAFile = path
		}
		if tlsValid && db.TLS != "true" {
			s.fail(e, fmt.Errorf("has no effect with tls = %s, which does not verify the server: set tls = true or remove tls_ca_file", db.TLS))
		}
	}
	return db
}

// aliased returns the value of key or of its legacy alias, recording a
// problem when both are set.
func (s *section) aliased(key, alias string) string {
	if e, ok := s.aliasedEntry(key, alias); ok {
		return e.value
	}
	return ""
}

// aliasedEntry returns the entry of key or of its legacy alias.
func (s *section) aliasedEntry(key, alias string) (*entry, bool) {
	e, ok := s.get(key)
	a, aok := s.get(alias)
	switch {
	case ok && aok:
		s.fail(a, fmt.Errorf("is the legacy name of %s, which is also set: keep only %s", key, key))
		return e, true
	case aok:
		return a, true
	}
	return e, ok
}
