package config_test

import (
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/pushd/pushd"
	"github.com/pushd/pushd/config"
)

func TestDefaults(t *testing.T) {
	t.Parallel()
	dir := keyDir(t)
	cfg := baseINI().mustParse(t, dir)

	host, _ := os.Hostname()
	wantServer := config.Server{
		Listen:          "127.0.0.1:9468",
		PollInterval:    time.Second,
		TimeZone:        time.UTC,
		LeaseDuration:   30 * time.Second,
		ShutdownTimeout: 30 * time.Second,
		LogFormat:       "auto",
		LogLevel:        slog.LevelInfo,
		InstanceID:      fmt.Sprintf("%s:%d", host, os.Getpid()),
		LedgerRetention: 90 * 24 * time.Hour,
		Campaigns:       true,
	}
	if cfg.Server != wantServer {
		t.Errorf("Server = %+v\nwant     %+v", cfg.Server, wantServer)
	}
	if cfg.SSL.CAFile != "" || cfg.SSL.RootCAs != nil {
		t.Errorf("SSL = %+v, want zero", cfg.SSL)
	}
	wantDB := config.Database{Host: "localhost", Port: 3306, User: "pushd", Password: "s3cret", Name: "pushd", TLS: "false", MaxOpenConns: 16}
	if cfg.Database != wantDB {
		t.Errorf("Database = %+v\nwant       %+v", cfg.Database, wantDB)
	}
	if got := cfg.AppNames(); !slices.Equal(got, []string{"Android", "iOS"}) {
		t.Errorf("AppNames() = %q", got)
	}
	for _, app := range cfg.Apps {
		if app.Endpoint != "" || app.BatchSize != 5000 || app.Concurrency != 2000 || app.Connections != 2 ||
			app.RateLimit != 0 || app.DefaultExpiry != 24*time.Hour || app.MaxAttempts != 5 {
			t.Errorf("app %s: common settings %+v, want the defaults", app.Name, app)
		}
	}

	ios := cfg.Apps["iOS"]
	if ios.Name != "iOS" || ios.PushType != pushd.APNs || ios.Environment != "development" || ios.BundleID != "com.example.app" ||
		ios.KeyID != "ABC123DEFG" || ios.TeamID != "DEF123GHIJ" || ios.AuthKey == nil || !ios.AuthKey.Equal(p256Key()) {
		t.Errorf("iOS = %+v", ios)
	}
	if want := filepath.Join(dir, authKeyFile); ios.AuthKeyPath != want {
		t.Errorf("AuthKeyPath = %q, want %q", ios.AuthKeyPath, want)
	}
	if ios.ServiceAccountFile != "" || ios.ProjectID != "" {
		t.Errorf("APNs app has FCM settings: %+v", ios)
	}

	android := cfg.Apps["Android"]
	if android.PushType != pushd.FCM || android.ProjectID != "test-project" ||
		android.ClientEmail != "pushd@test-project.iam.gserviceaccount.com" || android.AuthKey != nil {
		t.Errorf("Android = %+v", android)
	}
	if want := filepath.Join(dir, serviceAccountFile); android.ServiceAccountFile != want {
		t.Errorf("ServiceAccountFile = %q, want %q", android.ServiceAccountFile, want)
	}
	if data, _ := os.ReadFile(android.ServiceAccountFile); string(android.ServiceAccountJSON) != string(data) {
		t.Error("ServiceAccountJSON is not the file's content")
	}
	if len(cfg.Warnings) != 0 {
		t.Errorf("Warnings = %q", cfg.Warnings)
	}
	if cfg.Path != "config.ini" {
		t.Errorf("Path = %q", cfg.Path)
	}
}

// TestSettings checks that set values are used, in every accepted spelling.
func TestSettings(t *testing.T) {
	t.Parallel()
	dir := keyDir(t)
	writeFile(t, dir, "ca.pem", caCert(t), 0o644)
	writeFile(t, dir, "pkcs1.json", serviceAccount(t, map[string]any{"private_key": string(pemOf("RSA PRIVATE KEY", x509MarshalPKCS1(rsaKey())))}), 0o600)
	f := ini{
		{"server", []string{
			"Listen = off",
			"poll_interval = 250ms",
			"timezone = Europe/Berlin",
			"lease_duration = 1m",
			"shutdown_timeout = 10s",
			"log_format = JSON",
			"log_level = Debug",
			"instance_id = push-1",
			"ledger_retention = 30d",
		}},
		{"ssl", []string{"ca_file = ca.pem"}},
		{"DATABASE", []string{
			"host = db.internal", "port: 3307", "user = app", `passwd = "p#ss;word"`, "db = campaigns",
			"tls = TRUE", "tls_ca_file = " + filepath.Join(dir, "ca.pem"), "max_open_conns = 200",
		}},
		{"Tenant App (iOS)", []string{
			"push_type = apns", "environment = Production", "bundle_id = com.example.app-1",
			"key_id = ABC123DEFG", "team_id = DEF123GHIJ", "auth_key_path = " + filepath.Join(dir, authKeyFile),
			"endpoint = HTTPS://127.0.0.1:8443/", "batch_size = 100000", "concurrency = 20000", "connections = 16",
			"rate_limit = 2.5", "default_expiry = 672h", "max_attempts = 20", "frequency_cap = 2/7d", "quiet_hours = 21:30-08:00", "default_timezone = Asia/Tokyo",
		}},
		{"Android", []string{
			"push_type = fcm", "service_account_file = pkcs1.json", "project_id = other-project",
			"batch_size = 1", "concurrency = 1", "connections = 1", "default_expiry = 1m", "max_attempts = 1",
		}},
	}
	cfg := f.mustParse(t, dir)

	berlin, _ := time.LoadLocation("Europe/Berlin")
	s := cfg.Server
	if s.Listen != "" || s.PollInterval != 250*time.Millisecond || s.TimeZone.String() != berlin.String() ||
		s.LeaseDuration != time.Minute || s.ShutdownTimeout != 10*time.Second || s.LogFormat != "json" ||
		s.LogLevel != slog.LevelDebug || s.InstanceID != "push-1" || s.LedgerRetention != 30*24*time.Hour {
		t.Errorf("Server = %+v", s)
	}
	if cfg.SSL.CAFile != filepath.Join(dir, "ca.pem") || cfg.SSL.RootCAs == nil {
		t.Errorf("SSL = %+v", cfg.SSL)
	}
	wantDB := config.Database{Host: "db.internal", Port: 3307, User: "app", Password: "p#ss;word", Name: "campaigns",
		TLS: "true", TLSCAFile: filepath.Join(dir, "ca.pem"), MaxOpenConns: 200}
	if cfg.Database != wantDB {
		t.Errorf("Database = %+v\nwant       %+v", cfg.Database, wantDB)
	}
	ios := cfg.Apps["Tenant App (iOS)"]
	if ios == nil || ios.PushType != pushd.APNs || ios.Environment != "production" || ios.BundleID != "com.example.app-1" ||
		ios.Endpoint != "https://127.0.0.1:8443" || ios.BatchSize != 100000 || ios.Concurrency != 20000 ||
		ios.Connections != 16 || ios.RateLimit != 2.5 || ios.DefaultExpiry != 672*time.Hour || ios.MaxAttempts != 20 ||
		ios.FrequencyCap != (pushd.FrequencyCap{Count: 2, Window: 7 * 24 * time.Hour}) ||
		ios.QuietHours != (pushd.QuietHours{From: 21*time.Hour + 30*time.Minute, To: 8 * time.Hour}) || ios.DefaultTimezone.String() != "Asia/Tokyo" {
		t.Errorf("iOS = %+v", ios)
	}
	android := cfg.Apps["Android"]
	if android.ProjectID != "other-project" || android.BatchSize != 1 || android.Concurrency != 1 ||
		android.Connections != 1 || android.DefaultExpiry != time.Minute || android.MaxAttempts != 1 || android.FrequencyCap.Window != 0 {
		t.Errorf("Android = %+v", android)
	}
	if want := []string{`config.ini [Android] project_id: differs from the service account's project "test-project": ` +
		`the account needs the Firebase Cloud Messaging API Admin role in "other-project"`}; !slices.Equal(cfg.Warnings, want) {
		t.Errorf("Warnings = %q\nwant       %q", cfg.Warnings, want)
	}
}

// TestSocket checks that a socket path resolves and makes host and port
// moot.
func TestSocket(t *testing.T) {
	t.Parallel()
	dir := keyDir(t)
	cfg := baseINI().add("Database", "socket = run/mysqld.sock", "host = db1").mustParse(t, dir)
	if want := filepath.Join(dir, "run/mysqld.sock"); cfg.Database.Socket != want {
		t.Errorf("Socket = %q, want %q", cfg.Database.Socket, want)
	}
	if want := []string{"config.ini [Database] host: is ignored because socket is set"}; !slices.Equal(cfg.Warnings, want) {
		t.Errorf("Warnings = %q, want %q", cfg.Warnings, want)
	}
}

// TestRelativePaths checks that Load resolves paths against the directory
// of the configuration file, not the working directory.
func TestRelativePaths(t *testing.T) {
	t.Parallel()
	dir := keyDir(t)
	path := writeFile(t, dir, "tenant/config.ini", []byte(baseINI().
		set("iOS", "auth_key_path", "auth_key_path = ../"+authKeyFile).
		set("Android", "service_account_file", "service_account_file = ./../"+serviceAccountFile).
		add("SSL", "ca_file = ca.pem").String()), 0o600)
	writeFile(t, dir, "tenant/ca.pem", caCert(t), 0o644)

	cfg, err := config.Load(path)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Path != path {
		t.Errorf("Path = %q, want %q", cfg.Path, path)
	}
	for got, want := range map[string]string{
		cfg.Apps["iOS"].AuthKeyPath:            filepath.Join(dir, authKeyFile),
		cfg.Apps["Android"].ServiceAccountFile: filepath.Join(dir, serviceAccountFile),
		cfg.SSL.CAFile:                         filepath.Join(dir, "tenant/ca.pem"),
	} {
		if got != want {
			t.Errorf("resolved %q, want %q", got, want)
		}
	}
}

func TestWarnings(t *testing.T) {
	t.Parallel()
	dir := keyDir(t)
	keyPath := writeFile(t, dir, authKeyFile, p8(t), 0o644)
	saPath := writeFile(t, dir, serviceAccountFile, serviceAccount(t, nil), 0o640)
	cfg := baseINI().mustParse(t, dir)
	want := []string{
		"config.ini [iOS] auth_key_path: " + keyPath + " is readable by other users (mode 0644); chmod 600 it",
		"config.ini [Android] service_account_file: " + saPath + " is readable by other users (mode 0640); chmod 600 it",
	}
	if !slices.Equal(cfg.Warnings, want) {
		t.Errorf("Warnings =\n%q\nwant\n%q", cfg.Warnings, want)
	}

	t.Run("key file named after another key", func(t *testing.T) {
		cfg := baseINI().set("iOS", "key_id", "key_id = ZZZ999ZZZZ").mustParse(t, keyDir(t))
		if len(cfg.Warnings) != 1 || !strings.Contains(cfg.Warnings[0], "named after key ABC123DEFG, but key_id = ZZZ999ZZZZ") {
			t.Errorf("Warnings = %q", cfg.Warnings)
		}
	})
	t.Run("world-readable config with password", func(t *testing.T) {
		dir := keyDir(t)
		path := writeFile(t, dir, "config.ini", []byte(baseINI().String()), 0o644)
		cfg, err := config.Load(path)
		if err != nil {
			t.Fatal(err)
		}
		want := []string{"config.ini: " + path + " holds the database password and is readable by every user (mode 0644); chmod o-r it"}
		if !slices.Equal(cfg.Warnings, want) {
			t.Errorf("Warnings = %q, want %q", cfg.Warnings, want)
		}
	})
}

// TestEveryProblemListed checks that one pass reports every problem, each as
// its own *ValidationError, in file order, with secrets redacted.
func TestEveryProblemListed(t *testing.T) {
	t.Parallel()
	f := ini{
		{"", []string{"log_level = info"}},
		{"Server", []string{"poll_interval = 10", "log_level = verbose"}},
		{"Database", []string{"passwd = hunter2", "port = 0"}},
		{"iOS", []string{"push_type = APNs", "environment = sandbox", "bundle_id = com.example.app",
			"key_id = ABC123DEFG", "team_id = DEF123GHIJ", "auth_key_path = missing.p8", "concurrency = 0", "bundleid = x"}},
		{"Android", []string{"push_type = FCM", "api_key = AIzaSecret"}},
		{"Old", []string{"push_type = GCM"}},
	}
	_, err := f.parse(t, keyDir(t))
	errs := validationErrors(t, err)
	var got []string
	for _, e := range errs {
		got = append(got, fmt.Sprintf("[%s] %s", e.Section, e.Key))
	}
	want := []string{
		"[] log_level",
		"[Server] poll_interval",
		"[Server] log_level",
		"[Database] port",
		"[Database] user",
		"[Database] database",
		"[iOS] environment",
		"[iOS] auth_key_path",
		"[iOS] concurrency",
		"[iOS] bundleid",
		"[Android] api_key",
		"[Old] push_type",
	}
	if !slices.Equal(got, want) {
		t.Errorf("problems in this order:\n%s\nwant:\n%s\nerror:\n%v", strings.Join(got, "\n"), strings.Join(want, "\n"), err)
	}
	if lines := strings.Split(err.Error(), "\n"); len(lines) != len(want) {
		t.Errorf("err.Error() has %d lines, want one per problem:\n%v", len(lines), err)
	}
	for _, secret := range []string{"hunter2", "AIzaSecret"} {
		if strings.Contains(err.Error(), secret) {
			t.Errorf("error shows secret %q:\n%v", secret, err)
		}
	}
}

func TestValidationErrorFormat(t *testing.T) {
	t.Parallel()
	cause := errors.New("open cert/AuthKey.p8: no such file or directory")
	tests := []struct {
		err  *config.ValidationError
		want string
	}{
		{&config.ValidationError{File: "config.ini", Section: "MyApp", Key: "auth_key_path", Value: "cert/AuthKey.p8", Err: cause},
			`config.ini [MyApp] auth_key_path = "cert/AuthKey.p8": open cert/AuthKey.p8: no such file or directory`},
		{&config.ValidationError{File: "config.ini", Section: "MyApp", Key: "bundle_id", Err: errors.New("is missing")},
			`config.ini [MyApp] bundle_id: is missing`},
		{&config.ValidationError{File: "config.ini", Section: "Database", Err: errors.New("section is missing")},
			`config.ini [Database]: section is missing`},
		{&config.ValidationError{File: "config.ini", Err: errors.New("no app sections")},
			`config.ini: no app sections`},
		{&config.ValidationError{File: "config.ini", Key: "x", Value: "a\nb", Err: errors.New("bad")},
			`config.ini x = "a\nb": bad`},
	}
	for _, tc := range tests {
		if got := tc.err.Error(); got != tc.want {
			t.Errorf("Error() = %s\nwant      %s", got, tc.want)
		}
	}
	if !errors.Is(tests[0].err, cause) {
		t.Error("Unwrap does not return Err")
	}
}

func TestLoadErrors(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	_, err := config.Load(filepath.Join(dir, "nope.ini"))
	errs := validationErrors(t, err)
	if errs[0].File != "nope.ini" || !strings.Contains(err.Error(), "no such file") {
		t.Errorf("err = %v", err)
	}
	_, err = config.Load(dir)
	if errs := validationErrors(t, err); !strings.Contains(errs[0].Error(), "not a regular file") {
		t.Errorf("err = %v", err)
	}
}

func TestSyntaxErrors(t *testing.T) {
	t.Parallel()
	tests := []struct{ text, want string }{
		{"[Server]\nlisten = off\nbundle_id com.example\n", `config.ini: line 3: "bundle_id com.example" is not a [section] header, a key = value line or a comment`},
		{"[Server\n", `config.ini: line 1: section header "[Server" has no closing ]`},
		{"[Server]\n= x\n", `config.ini: line 2: "= x" has no key name`},
		{"[]\n", `config.ini: a section header is empty`},
	}
	for _, tc := range tests {
		_, err := config.Parse("config.ini", []byte(tc.text), t.TempDir())
		errs := validationErrors(t, err)
		if len(errs) != 1 || !strings.HasPrefix(errs[0].Error(), tc.want) {
			t.Errorf("Parse(%q) = %v\nwant %s", tc.text, err, tc.want)
		}
	}
}

// TestExample checks that config.ini.example loads once its key files exist,
// that its active values are the defaults, and that it documents every key.
func TestExample(t *testing.T) {
	t.Parallel()
	data, err := os.ReadFile("../config.ini.example")
	if err != nil {
		t.Fatal(err)
	}
	// The example's paths are relative to the config file's directory.
	dir := t.TempDir()
	writeFile(t, dir, "keys/AuthKey_ABC123DEFG.p8", p8(t), 0o600)
	writeFile(t, dir, "keys/service-account.json", serviceAccount(t, nil), 0o600)
	cfg, err := config.Parse("config.ini", data, dir)
	if err != nil {
		t.Fatalf("example does not load:\n%v", err)
	}
	if len(cfg.Warnings) != 0 {
		t.Errorf("Warnings = %q", cfg.Warnings)
	}
	if got := cfg.AppNames(); !slices.Equal(got, []string{"MyAndroidApp", "MyiOSApp"}) {
		t.Errorf("AppNames() = %q", got)
	}

	// The example shows the defaults: it parses to what a config without
	// those lines parses to.
	defaults := baseINI().mustParse(t, keyDir(t))
	if cfg.Server != defaults.Server {
		t.Errorf("example [Server] = %+v\ndefaults         %+v", cfg.Server, defaults.Server)
	}
	if got, want := cfg.Database.Port, defaults.Database.Port; got != want {
		t.Errorf("example port = %d, default %d", got, want)
	}
	if got, want := cfg.Database.MaxOpenConns, defaults.Database.MaxOpenConns; got != want {
		t.Errorf("example max_open_conns = %d, default %d", got, want)
	}
	for _, name := range cfg.AppNames() {
		got, want := *cfg.Apps[name], *defaults.Apps["iOS"]
		if got.BatchSize != want.BatchSize || got.Concurrency != want.Concurrency || got.Connections != want.Connections ||
			got.RateLimit != want.RateLimit || got.DefaultExpiry != want.DefaultExpiry || got.MaxAttempts != want.MaxAttempts {
			t.Errorf("example [%s] common settings differ from the defaults: %+v", name, got)
		}
	}

	keys := []string{
		"listen", "poll_interval", "timezone", "lease_duration", "shutdown_timeout", "log_format", "log_level", "instance_id", "ledger_retention",
		"ca_file",
		"host", "port", "socket", "user", "password", "database", "tls", "tls_ca_file", "max_open_conns",
		"push_type", "endpoint", "batch_size", "concurrency", "connections", "rate_limit", "default_expiry", "max_attempts", "frequency_cap", "default_timezone", "quiet_hours",
		"environment", "bundle_id", "key_id", "team_id", "auth_key_path", "service_account_file", "project_id",
	}
	for _, key := range keys {
		if !regexp.MustCompile(`(?m)^#? ?` + key + ` = `).Match(data) {
			t.Errorf("example does not show key %s", key)
		}
	}
	for _, legacy := range []string{"passwd", "db", "api_key", "service_account_file"} {
		if !strings.Contains(string(data), legacy) {
			t.Errorf("example does not mention %s", legacy)
		}
	}
}

// TestRedaction checks that passwords and server keys never appear in
// errors, also when their key is misspelt or the line does not parse.
func TestRedaction(t *testing.T) {
	t.Parallel()
	const secret = "hunter2-AIza"
	for _, text := range []string{
		baseINI().add("Database", "pasword = "+secret).String(),
		baseINI().add("Database", "db_password = "+secret).String(),
		baseINI().setLine("Database", "password = "+secret).add("Database", "passwd = "+secret).String(),
		baseINI().add("Android", "server_key = "+secret).String(),
		baseINI().add("Android", "fcm_server_key = "+secret).String(),
		"[Database]\npassword " + secret + "\n",
	} {
		_, err := config.Parse("config.ini", []byte(text), keyDir(t))
		validationErrors(t, err)
		if strings.Contains(err.Error(), secret) {
			t.Errorf("error shows the secret:\n%v", err)
		}
		if !strings.Contains(err.Error(), "***") {
			t.Errorf("error does not show the redacted value:\n%v", err)
		}
	}
}

func TestHostNames(t *testing.T) {
	t.Parallel()
	dir := keyDir(t)
	for _, host := range []string{"localhost", "db_1", "mysql.internal.example.com", "10.0.0.5", "::1"} {
		cfg := baseINI().add("Database", "host = "+host).mustParse(t, dir)
		if cfg.Database.Host != host {
			t.Errorf("Host = %q, want %q", cfg.Database.Host, host)
		}
	}
	for _, listen := range []string{":9468", "[::1]:9468", "0.0.0.0:1", "metrics_host:65535"} {
		cfg := baseINI().add("Server", "listen = "+listen).mustParse(t, dir)
		if cfg.Server.Listen != listen {
			t.Errorf("Listen = %q, want %q", cfg.Server.Listen, listen)
		}
	}
}

func TestTooLarge(t *testing.T) {
	t.Parallel()
	data := []byte(baseINI().String() + "#" + strings.Repeat("x", 1<<20) + "\n")
	_, err := config.Parse("config.ini", data, keyDir(t))
	if errs := validationErrors(t, err); len(errs) != 1 || !strings.Contains(errs[0].Error(), "larger than 1024 KiB") {
		t.Errorf("err = %v", err)
	}
}

func TestAPISection(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	base := "[Database]\nuser = u\ndatabase = d\n\n[F]\npush_type = FCM\nproject_id = p\nservice_account_file = sa.json\n"
	if err := os.WriteFile(dir+"/sa.json", serviceAccount(t, nil), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, err := config.Parse("config.ini", []byte(base+"api_keys = k0123456789abcdef, k0123456789abcdeg\n\n[API]\nlisten = :8080\nrate_limit = 50\n\n[Server]\ncampaigns = off\n"), dir)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.API.Listen != ":8080" || cfg.API.RateLimit != 50 || cfg.Server.Campaigns || len(cfg.Apps["F"].APIKeys) != 2 {
		t.Errorf("API %+v, campaigns %v, keys %v", cfg.API, cfg.Server.Campaigns, cfg.Apps["F"].APIKeys)
	}
	for _, tc := range []struct{ ini, want string }{
		{base + "api_keys = short\n", `[F] api_keys = "***": each key must be 16 to 256`},
		{base + "api_keys = a123456789abcdefg, b123456789abcdefg, c123456789abcdefg\n", `[F] api_keys = "***": has more than two keys`},
		{base + "api_keys = a123456789abcdefg\n\n[G]\npush_type = FCM\nproject_id = p\nservice_account_file = sa.json\napi_keys = a123456789abcdefg\n", "[G] api_keys: uses a key of [F]"},
		{base + "\n[API]\nlisten = 8080\n", `[API] listen = "8080": must be host:port`},
		{base + "\n[API]\ntls_cert_file = c.pem\n", "[API] tls_key_file: is missing"},
		{base + "\n[API]\nsecret = short\n", `[API] secret = "***": is shorter than 32 characters`},
		{base + "\n[API]\nlisen = :80\n", `[API] lisen = ":80": unknown key: did you mean listen?`},
	} {
		_, err := config.Parse("config.ini", []byte(tc.ini), dir)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%q: err %v, want %q", tc.ini, err, tc.want)
		}
	}
}
