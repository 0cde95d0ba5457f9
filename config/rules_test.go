package config_test

import (
	"errors"
	"io/fs"
	"strings"
	"testing"
)

// TestRules checks that each rule rejects a bad config with an error naming
// the section and key and saying what is wrong and how to fix it.
func TestRules(t *testing.T) {
	t.Parallel()
	base := baseINI()
	apns := func(line string) ini { return base.setLine("iOS", line) }
	fcm := func(line string) ini { return base.setLine("Android", line) }
	server := func(line string) ini { return base.setLine("Server", line) }
	db := func(line string) ini { return base.setLine("Database", line) }
	drop := func(section, key string) ini { return base.set(section, key, "") }

	tests := []struct {
		name         string
		ini          ini
		files        map[string][]byte // written mode 0600 into the key directory
		section, key string
		want         []string
	}{
		// Structure.
		{name: "key before any section", ini: append(ini{{"", []string{"poll_interval = 2s"}}}, base...),
			section: "", key: "poll_interval", want: []string{"outside any section", "[Server]"}},
		{name: "duplicate section", ini: base.add("Server2").clone(), section: "", key: "", want: nil}, // replaced below
		{name: "unknown key with suggestion", ini: apns("bundleid = com.example.app"),
			section: "iOS", key: "bundleid", want: []string{"unknown key", "did you mean bundle_id?"}},
		{name: "unknown key shortened", ini: fcm("service_account = x.json"),
			section: "Android", key: "service_account", want: []string{"did you mean service_account_file?"}},
		{name: "unknown key without suggestion", ini: server("frobnicate = 1"),
			section: "Server", key: "frobnicate", want: []string{"unknown key", "[Server] takes listen, poll_interval"}},
		{name: "key of another section", ini: db("poll_interval = 1s"),
			section: "Database", key: "poll_interval", want: []string{"belongs in [Server]"}},
		{name: "APNs key in FCM app", ini: fcm("bundle_id = com.example.app"),
			section: "Android", key: "bundle_id", want: []string{"belongs to push_type = APNs", "push_type = FCM"}},
		{name: "FCM key in APNs app", ini: apns("service_account_file = " + serviceAccountFile),
			section: "iOS", key: "service_account_file", want: []string{"belongs to push_type = FCM", "push_type = APNs"}},
		{name: "key given twice", ini: base.add("iOS", "team_id = DEF123GHIJ"),
			section: "iOS", key: "team_id", want: []string{"more than once", "keep one"}},
		{name: "key given twice, first empty", ini: base.add("Database", "host =", "host = db1"),
			section: "Database", key: "host", want: []string{"more than once"}},
		{name: "key given twice in other case", ini: base.add("iOS", "Team_ID = DEF123GHIJ"),
			section: "iOS", key: "Team_ID", want: []string{"repeats team_id", "keep one"}},
		{name: "no apps", ini: base.without("iOS").without("Android"),
			section: "", key: "", want: []string{"no app sections", "push_type = APNs"}},
		{name: "no Database", ini: base.without("Database"),
			section: "Database", key: "", want: []string{"section is missing", "user and database"}},
		{name: "DEFAULT section", ini: base.add("DEFAULT", "concurrency = 10"),
			section: "DEFAULT", key: "", want: []string{"not supported"}},
		{name: "app name with spaces", ini: base.add(" Web ", "push_type = FCM"),
			section: " Web ", key: "", want: []string{"spaces around the name", "[Web]"}},
		{name: "app name too long", ini: base.add(strings.Repeat("A", 65), "push_type = FCM"),
			section: strings.Repeat("A", 65), key: "", want: []string{"65 bytes", "at most 64"}},
		{name: "app names differing in case", ini: base.add("ios", "push_type = FCM"),
			section: "ios", key: "", want: []string{"same section as [iOS]", "ignoring case"}},

		// push_type.
		{name: "push_type missing", ini: drop("iOS", "push_type"),
			section: "iOS", key: "push_type", want: []string{"is missing", "APNs keys", "push_type = APNs"}},
		{name: "push_type empty", ini: apns("push_type = "),
			section: "iOS", key: "push_type", want: []string{"is empty", "push_type = APNs"}},
		{name: "push_type unknown", ini: fcm("push_type = android"),
			section: "Android", key: "push_type", want: []string{`must be "APNs" or "FCM"`, `did you mean "FCM"?`}},
		{name: "push_type GCM", ini: fcm("push_type = GCM"),
			section: "Android", key: "push_type", want: []string{"GCM was shut down in 2019", "push_type = FCM", "service_account_file"}},
		{name: "push_type C2DM", ini: fcm("push_type = c2dm"),
			section: "Android", key: "push_type", want: []string{"C2DM was shut down in 2015", "push_type = FCM", "service_account_file"}},
		{name: "misspelt [Server]", ini: base.add("Sever", "listen = off"),
			section: "Sever", key: "push_type", want: []string{"is missing", "meant to be [Server]"}},

		// Legacy credentials.
		{name: "FCM api_key", ini: fcm("api_key = AIzaSyLegacy"),
			section: "Android", key: "api_key", want: []string{`api_key = "***"`, "legacy API", "stopped working in 2024", "service-account key", "service_account_file"}},
		{name: "FCM server_key", ini: fcm("server_key = AAAAlegacy"),
			section: "Android", key: "server_key", want: []string{"stopped working in 2024"}},
		{name: "FCM sender_id", ini: fcm("sender_id = 123456789012"),
			section: "Android", key: "sender_id", want: []string{"stopped working in 2024"}},
		{name: "APNs cert_file", ini: apns("cert_file = apns.pem"),
			section: "iOS", key: "cert_file", want: []string{"certificate auth is not supported", "auth_key_path", "key_id", "team_id"}},
		{name: "APNs cert_path", ini: apns("cert_path = apns.pem"),
			section: "iOS", key: "cert_path", want: []string{"certificate auth is not supported"}},
		{name: "APNs key_file", ini: apns("key_file = apns.key"),
			section: "iOS", key: "key_file", want: []string{"certificate auth is not supported"}},
		{name: "APNs certificate", ini: apns("certificate = apns.pem"),
			section: "iOS", key: "certificate", want: []string{"certificate auth is not supported"}},
		{name: "APNs p12_file", ini: apns("p12_file = apns.p12"),
			section: "iOS", key: "p12_file", want: []string{"certificate auth is not supported"}},

		// APNs.
		{name: "environment missing", ini: drop("iOS", "environment"),
			section: "iOS", key: "environment", want: []string{"is missing", `"development" or "production"`}},
		{name: "environment sandbox", ini: apns("environment = sandbox"),
			section: "iOS", key: "environment", want: []string{`must be "development" or "production"`, `did you mean "development"?`}},
		{name: "environment prod", ini: apns("environment = prod"),
			section: "iOS", key: "environment", want: []string{`did you mean "production"?`}},
		{name: "bundle_id missing", ini: drop("iOS", "bundle_id"),
			section: "iOS", key: "bundle_id", want: []string{"is missing", "bundle ID"}},
		{name: "bundle_id one label", ini: apns("bundle_id = myapp"),
			section: "iOS", key: "bundle_id", want: []string{"reverse-DNS", "com.example.app"}},
		{name: "bundle_id with space", ini: apns("bundle_id = com.example.my app"),
			section: "iOS", key: "bundle_id", want: []string{"reverse-DNS"}},
		{name: "key_id short", ini: apns("key_id = ABC123"),
			section: "iOS", key: "key_id", want: []string{"exactly 10 characters A-Z and 0-9"}},
		{name: "key_id lower case", ini: apns("key_id = abc123defg"),
			section: "iOS", key: "key_id", want: []string{"upper case", "key_id = ABC123DEFG"}},
		{name: "team_id bad character", ini: apns("team_id = DEF123GHI_"),
			section: "iOS", key: "team_id", want: []string{"exactly 10 characters", "Team ID"}},
		{name: "team_id missing", ini: drop("iOS", "team_id"),
			section: "iOS", key: "team_id", want: []string{"is missing", "Team ID"}},
		{name: "auth_key_path missing", ini: drop("iOS", "auth_key_path"),
			section: "iOS", key: "auth_key_path", want: []string{"is missing", ".p8"}},
		{name: "auth_key_path no such file", ini: apns("auth_key_path = cert/AuthKey.p8"),
			section: "iOS", key: "auth_key_path", want: []string{`auth_key_path = "cert/AuthKey.p8": open /`, "cert/AuthKey.p8: no such file or directory"}},
		{name: "auth_key_path a directory", ini: apns("auth_key_path = keys"),
			section: "iOS", key: "auth_key_path", want: []string{"is a directory"}},
		{name: "auth key not PEM", files: map[string][]byte{authKeyFile: []byte("not a key\n")},
			section: "iOS", key: "auth_key_path", want: []string{"is not PEM", "BEGIN PRIVATE KEY"}},
		{name: "auth key is SEC 1", files: map[string][]byte{authKeyFile: nil}, // filled in below
			section: "iOS", key: "auth_key_path", want: []string{`"EC PRIVATE KEY"`, "PKCS#8"}},
		{name: "auth key is RSA", files: map[string][]byte{authKeyFile: nil},
			section: "iOS", key: "auth_key_path", want: []string{"RSA key", "P-256"}},
		{name: "auth key on P-384", files: map[string][]byte{authKeyFile: nil},
			section: "iOS", key: "auth_key_path", want: []string{"curve P-384", "P-256"}},
		{name: "auth key is Ed25519", files: map[string][]byte{authKeyFile: nil},
			section: "iOS", key: "auth_key_path", want: []string{"Ed25519", "P-256"}},
		{name: "auth key is a certificate", files: map[string][]byte{authKeyFile: nil},
			section: "iOS", key: "auth_key_path", want: []string{"certificate auth is not supported"}},
		{name: "auth key is the service account", ini: apns("auth_key_path = " + serviceAccountFile),
			section: "iOS", key: "auth_key_path", want: []string{"is JSON", "service_account_file"}},
		{name: "auth key bad PKCS#8", files: map[string][]byte{authKeyFile: pemOf("PRIVATE KEY", []byte("junk"))},
			section: "iOS", key: "auth_key_path", want: []string{"not a valid PKCS#8 key"}},

		// FCM.
		{name: "service_account_file missing", ini: drop("Android", "service_account_file"),
			section: "Android", key: "service_account_file", want: []string{"is missing", "Generate new private key"}},
		{name: "service account not JSON", files: map[string][]byte{serviceAccountFile: []byte("{\n  \"type\": service_account\n}")},
			section: "Android", key: "service_account_file", want: []string{"not valid JSON", "line 2"}},
		{name: "service account is an array", files: map[string][]byte{serviceAccountFile: []byte(`[]`)},
			section: "Android", key: "service_account_file", want: []string{"JSON array, not an object"}},
		{name: "service account field not a string", files: map[string][]byte{serviceAccountFile: []byte(`{"type": 1}`)},
			section: "Android", key: "service_account_file", want: []string{"type is a JSON number, not a string"}},
		{name: "google-services.json", files: map[string][]byte{serviceAccountFile: []byte(`{"project_info": {"project_id": "x"}, "client": []}`)},
			section: "Android", key: "service_account_file", want: []string{"google-services.json", "not a service-account key", "Generate new private key"}},
		{name: "service account of a user", files: map[string][]byte{serviceAccountFile: []byte(`{"type": "authorized_user", "client_id": "x"}`)},
			section: "Android", key: "service_account_file", want: []string{"user's credential", "Generate new private key"}},
		{name: "service account without client_email", files: map[string][]byte{serviceAccountFile: nil},
			section: "Android", key: "service_account_file", want: []string{"has no client_email"}},
		{name: "service account without private_key_id", files: map[string][]byte{serviceAccountFile: nil},
			section: "Android", key: "service_account_file", want: []string{"has no private_key_id"}},
		{name: "service account key not PEM", files: map[string][]byte{serviceAccountFile: nil},
			section: "Android", key: "service_account_file", want: []string{"private_key is not PEM", `literal \n`}},
		{name: "service account key not RSA", files: map[string][]byte{serviceAccountFile: nil},
			section: "Android", key: "service_account_file", want: []string{"not an RSA key"}},
		{name: "service account token_uri http", files: map[string][]byte{serviceAccountFile: nil},
			section: "Android", key: "service_account_file", want: []string{`token_uri "http://oauth2.googleapis.com/token" is not an https URL`}},
		{name: "no project_id anywhere", files: map[string][]byte{serviceAccountFile: nil},
			section: "Android", key: "project_id", want: []string{"is missing", "Project settings"}},
		{name: "project_id with slash", ini: fcm("project_id = a/b"),
			section: "Android", key: "project_id", want: []string{"Firebase project ID"}},

		// Common app keys.
		{name: "endpoint http", ini: apns("endpoint = http://localhost:8080"),
			section: "iOS", key: "endpoint", want: []string{"must use https"}},
		{name: "endpoint with path", ini: apns("endpoint = https://localhost:8443/3/device"),
			section: "iOS", key: "endpoint", want: []string{"must not have a path"}},
		{name: "endpoint with query", ini: fcm("endpoint = https://localhost?x=1"),
			section: "Android", key: "endpoint", want: []string{"must not have a path or query"}},
		{name: "endpoint without host", ini: apns("endpoint = https:///"),
			section: "iOS", key: "endpoint", want: []string{"https URL with a host"}},
		{name: "endpoint bad port", ini: apns("endpoint = https://localhost:70000"),
			section: "iOS", key: "endpoint", want: []string{`port "70000"`}},
		{name: "batch_size 0", ini: apns("batch_size = 0"),
			section: "iOS", key: "batch_size", want: []string{"between 1 and 100000"}},
		{name: "batch_size too big", ini: apns("batch_size = 100001"),
			section: "iOS", key: "batch_size", want: []string{"between 1 and 100000"}},
		{name: "concurrency 0", ini: fcm("concurrency = 0"),
			section: "Android", key: "concurrency", want: []string{"between 1 and 20000", "0"}},
		{name: "concurrency not a number", ini: fcm("concurrency = lots"),
			section: "Android", key: "concurrency", want: []string{"whole number between 1 and 20000"}},
		{name: "concurrency overflows", ini: fcm("concurrency = 99999999999999999999"),
			section: "Android", key: "concurrency", want: []string{"out of range", "between 1 and 20000"}},
		{name: "connections 17", ini: apns("connections = 17"),
			section: "iOS", key: "connections", want: []string{"between 1 and 16"}},
		{name: "frequency_cap without a period", ini: apns("frequency_cap = 2"),
			section: "iOS", key: "frequency_cap", want: []string{`such as "2/24h"`}},
		{name: "frequency_cap in words", ini: apns("frequency_cap = 2 per day"),
			section: "iOS", key: "frequency_cap", want: []string{`such as "2/24h"`}},
		{name: "frequency_cap of 0 pushes", ini: apns("frequency_cap = 0/24h"),
			section: "iOS", key: "frequency_cap", want: []string{"use 1 to 1000"}},
		{name: "frequency_cap over 90 days", ini: apns("frequency_cap = 1/100d"),
			section: "iOS", key: "frequency_cap", want: []string{"use 1m to 90d"}},
		{name: "quiet_hours without minutes", ini: apns("quiet_hours = 21-8"),
			section: "iOS", key: "quiet_hours", want: []string{"HH:MM-HH:MM", "21:00-08:00"}},
		{name: "quiet_hours of nothing", ini: apns("quiet_hours = 08:00-08:00"),
			section: "iOS", key: "quiet_hours", want: []string{"starts and ends at 08:00"}},
		{name: "default_timezone unknown", ini: apns("default_timezone = Europe/Pariss"),
			section: "iOS", key: "default_timezone", want: []string{"not a known time zone"}},
		{name: "max_attempts 0", ini: apns("max_attempts = 0"),
			section: "iOS", key: "max_attempts", want: []string{"between 1 and 20"}},
		{name: "rate_limit negative", ini: apns("rate_limit = -5"),
			section: "iOS", key: "rate_limit", want: []string{"0 or more", "unlimited"}},
		{name: "rate_limit NaN", ini: apns("rate_limit = NaN"),
			section: "iOS", key: "rate_limit", want: []string{"must be a number"}},
		{name: "default_expiry too long", ini: fcm("default_expiry = 1000h"),
			section: "Android", key: "default_expiry", want: []string{"between 1m and 672h"}},
		{name: "default_expiry in days", ini: fcm("default_expiry = 7d"),
			section: "Android", key: "default_expiry", want: []string{"24h for a day"}},
		{name: "empty value of a defaulted key", ini: apns("batch_size ="),
			section: "iOS", key: "batch_size", want: []string{"is empty", "default (5000)"}},
		{name: "inline comment", ini: apns("concurrency = 100 # per connection"),
			section: "iOS", key: "concurrency", want: []string{"whole number", "comments on a line of their own"}},

		// [Server].
		{name: "poll_interval without unit", ini: server("poll_interval = 10"),
			section: "Server", key: "poll_interval", want: []string{"has no unit", `"10s"`}},
		{name: "poll_interval too short", ini: server("poll_interval = 50ms"),
			section: "Server", key: "poll_interval", want: []string{"between 100ms and 1m"}},
		{name: "lease_duration too long", ini: server("lease_duration = 1h"),
			section: "Server", key: "lease_duration", want: []string{"between 5s and 10m"}},
		{name: "shutdown_timeout zero", ini: server("shutdown_timeout = 0s"),
			section: "Server", key: "shutdown_timeout", want: []string{"between 1s and 10m"}},
		{name: "ledger_retention in words", ini: server("ledger_retention = 90 days"),
			section: "Server", key: "ledger_retention", want: []string{`number of days such as "90d"`, "0 to keep everything"}},
		{name: "ledger_retention too short", ini: server("ledger_retention = 12h"),
			section: "Server", key: "ledger_retention", want: []string{"between 1d and 3653d"}},
		{name: "ledger_retention negative", ini: server("ledger_retention = -5d"),
			section: "Server", key: "ledger_retention", want: []string{"whole number of days"}},
		{name: "listen without port", ini: server("listen = localhost"),
			section: "Server", key: "listen", want: []string{"host:port", `"off"`}},
		{name: "listen bad port", ini: server("listen = :0"),
			section: "Server", key: "listen", want: []string{"between 1 and 65535"}},
		{name: "timezone unknown", ini: server("timezone = Europe/Berln"),
			section: "Server", key: "timezone", want: []string{"not a known time zone", "IANA"}},
		{name: "timezone Local", ini: server("timezone = Local"),
			section: "Server", key: "timezone", want: []string{"host's settings"}},
		{name: "log_format", ini: server("log_format = xml"),
			section: "Server", key: "log_format", want: []string{`must be "auto", "text" or "json"`}},
		{name: "log_level warning", ini: server("log_level = warning"),
			section: "Server", key: "log_level", want: []string{`"debug", "info", "warn" or "error"`, `did you mean "warn"?`}},
		{name: "instance_id with space", ini: server("instance_id = host 1"),
			section: "Server", key: "instance_id", want: []string{"spaces"}},
		{name: "port in [Server]", ini: server("port = 9468"),
			section: "Server", key: "port", want: []string{"listen"}},

		// [SSL].
		{name: "ca_file missing", ini: base.add("SSL", "ca_file = ca.pem"),
			section: "SSL", key: "ca_file", want: []string{"ca.pem: no such file"}},
		{name: "ca_file holds no certificate", ini: base.add("SSL", "ca_file = "+authKeyFile),
			section: "SSL", key: "ca_file", want: []string{`"PRIVATE KEY", not a CERTIFICATE`}},
		{name: "ca_file empty file", ini: base.add("SSL", "ca_file = empty.pem"), files: map[string][]byte{"empty.pem": {}},
			section: "SSL", key: "ca_file", want: []string{"holds no PEM certificate"}},
		{name: "unknown key in [SSL]", ini: base.add("SSL", "cafile = ca.pem"),
			section: "SSL", key: "cafile", want: []string{"did you mean ca_file?"}},

		// [Database].
		{name: "user missing", ini: drop("Database", "user"),
			section: "Database", key: "user", want: []string{"is missing"}},
		{name: "database missing", ini: drop("Database", "database"),
			section: "Database", key: "database", want: []string{"is missing"}},
		{name: "database empty", ini: db("database = "),
			section: "Database", key: "database", want: []string{"is empty"}},
		{name: "password and passwd", ini: base.add("Database", "passwd = other"),
			section: "Database", key: "passwd", want: []string{`passwd = "***"`, "legacy name of password", "keep only password"}},
		{name: "database and db", ini: base.add("Database", "db = other"),
			section: "Database", key: "db", want: []string{"legacy name of database"}},
		{name: "port 0", ini: db("port = 0"),
			section: "Database", key: "port", want: []string{"between 1 and 65535"}},
		{name: "port too big", ini: db("port = 65536"),
			section: "Database", key: "port", want: []string{"between 1 and 65535"}},
		{name: "host with port", ini: db("host = db:3306"),
			section: "Database", key: "host", want: []string{"port ="}},
		{name: "tls yes", ini: db("tls = yes"),
			section: "Database", key: "tls", want: []string{`"false", "true", "skip-verify" or "preferred"`, `did you mean "true"?`}},
		{name: "tls_ca_file without tls", ini: db("tls_ca_file = ca.pem"), files: map[string][]byte{"ca.pem": nil},
			section: "Database", key: "tls_ca_file", want: []string{"tls = false", "set tls = true"}},
		{name: "tls_ca_file unreadable", ini: db("tls = true").set("Database", "tls_ca_file", "tls_ca_file = /nonexistent/ca.pem"),
			section: "Database", key: "tls_ca_file", want: []string{"open /nonexistent/ca.pem: no such file"}},
		{name: "max_open_conns 1", ini: db("max_open_conns = 1"),
			section: "Database", key: "max_open_conns", want: []string{"between 2 and 200"}},
		{name: "max_open_conns 201", ini: db("max_open_conns = 201"),
			section: "Database", key: "max_open_conns", want: []string{"between 2 and 200"}},
	}
	// Cases whose input needs building.
	for i := range tests {
		tc := &tests[i]
		switch tc.name {
		case "duplicate section":
			tc.ini = base.add("Server", "listen = off")
			tc.ini = append(tc.ini, iniSection{"server", []string{"poll_interval = 2s"}})
			tc.section, tc.want = "server", []string{"same section as [Server]", "merge"}
		case "auth key is SEC 1":
			tc.files[authKeyFile] = sec1(t)
		case "auth key is RSA":
			tc.files[authKeyFile] = pkcs8(t, rsaKey())
		case "auth key on P-384":
			tc.files[authKeyFile] = p384PKCS8(t)
		case "auth key is Ed25519":
			tc.files[authKeyFile] = ed25519PKCS8(t)
		case "auth key is a certificate":
			tc.files[authKeyFile] = caCert(t)
		case "service account without client_email":
			tc.files[serviceAccountFile] = serviceAccount(t, map[string]any{"client_email": nil})
		case "service account without private_key_id":
			tc.files[serviceAccountFile] = serviceAccount(t, map[string]any{"private_key_id": ""})
		case "service account key not PEM":
			tc.files[serviceAccountFile] = serviceAccount(t, map[string]any{"private_key": strings.ReplaceAll(string(pkcs8(t, rsaKey())), "\n", `\n`)})
		case "service account key not RSA":
			tc.files[serviceAccountFile] = serviceAccount(t, map[string]any{"private_key": string(p8(t))})
		case "service account token_uri http":
			tc.files[serviceAccountFile] = serviceAccount(t, map[string]any{"token_uri": "http://oauth2.googleapis.com/token"})
		case "no project_id anywhere":
			tc.files[serviceAccountFile] = serviceAccount(t, map[string]any{"project_id": nil})
		case "tls_ca_file without tls":
			tc.files["ca.pem"] = caCert(t)
		}
		if tc.ini == nil {
			tc.ini = base
		}
	}

	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			dir := keyDir(t)
			for name, data := range tc.files {
				writeFile(t, dir, name, data, 0o600)
			}
			_, err := tc.ini.parse(t, dir)
			errs := validationErrors(t, err)
			for _, e := range errs {
				if e.Section != tc.section || e.Key != tc.key {
					continue
				}
				msg := e.Error()
				if e.File != "config.ini" || !strings.HasPrefix(msg, "config.ini") {
					t.Errorf("File = %q, message %q: want config.ini", e.File, msg)
				}
				ok := true
				for _, w := range tc.want {
					ok = ok && strings.Contains(msg, w)
				}
				if ok {
					return
				}
			}
			t.Errorf("no error for [%s] %s containing %q; got:\n%v\n--- config.ini ---\n%s", tc.section, tc.key, tc.want, err, tc.ini)
		})
	}
}

// TestRulesLegacyFCMAlone checks that an FCM app still on a server key gets
// the migration message only, not a second error for the missing
// service_account_file that the message already asks for.
func TestRulesLegacyFCMAlone(t *testing.T) {
	t.Parallel()
	f := baseINI().set("Android", "service_account_file", "").add("Android", "api_key = AIzaSecret")
	_, err := f.parse(t, keyDir(t))
	errs := validationErrors(t, err)
	if len(errs) != 1 || errs[0].Key != "api_key" {
		t.Fatalf("want one error for api_key, got:\n%v", err)
	}
	if strings.Contains(err.Error(), "AIzaSecret") {
		t.Errorf("error shows the server key: %v", err)
	}
}

// TestMissingKeyFileIsNotExist checks that a missing file can be told apart
// with errors.Is.
func TestMissingKeyFileIsNotExist(t *testing.T) {
	t.Parallel()
	_, err := baseINI().set("iOS", "auth_key_path", "auth_key_path = nope.p8").parse(t, keyDir(t))
	validationErrors(t, err)
	if !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("errors.Is(err, fs.ErrNotExist) = false for %v", err)
	}
}
