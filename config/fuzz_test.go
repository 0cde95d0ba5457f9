package config_test

import (
	"testing"
	"time"

	"github.com/pushd/pushd"
	"github.com/pushd/pushd/config"
)

// FuzzParse checks that Parse never panics, that every failure is an
// errors.Join of *ValidationError, and that every success holds values in
// their documented ranges. The seeds in testdata/fuzz/FuzzParse name the key
// files written here, so the fuzzer also explores configs that load.
func FuzzParse(f *testing.F) {
	dir := f.TempDir()
	writeFile(f, dir, authKeyFile, p8(f), 0o600)
	writeFile(f, dir, serviceAccountFile, serviceAccount(f, nil), 0o600)
	f.Add([]byte(baseINI().String()))

	f.Fuzz(func(t *testing.T, data []byte) {
		cfg, err := config.Parse("config.ini", data, dir)
		if err != nil {
			if cfg != nil {
				t.Fatal("Parse returned a Config with an error")
			}
			for _, e := range validationErrors(t, err) {
				if e.File != "config.ini" || e.Err == nil || e.Error() == "" {
					t.Fatalf("malformed error %#v", e)
				}
			}
			return
		}
		checkRanges(t, cfg)
	})
}

// checkRanges fails t when a loaded Config holds a value Parse should have
// rejected.
func checkRanges(t *testing.T, cfg *config.Config) {
	t.Helper()
	s := cfg.Server
	if s.PollInterval < 100*time.Millisecond || s.PollInterval > time.Minute ||
		s.LeaseDuration < 5*time.Second || s.LeaseDuration > 10*time.Minute ||
		s.ShutdownTimeout < time.Second || s.ShutdownTimeout > 10*time.Minute ||
		s.TimeZone == nil || s.InstanceID == "" ||
		(s.LogFormat != "auto" && s.LogFormat != "text" && s.LogFormat != "json") {
		t.Fatalf("Server out of range: %+v", s)
	}
	d := cfg.Database
	if d.Port < 1 || d.Port > 65535 || d.MaxOpenConns < 2 || d.MaxOpenConns > 200 || d.User == "" || d.Name == "" {
		t.Fatalf("Database out of range: %+v", d)
	}
	if len(cfg.Apps) == 0 {
		t.Fatal("Config without apps")
	}
	for name, a := range cfg.Apps {
		if a.Name != name || a.BatchSize < 1 || a.BatchSize > 100000 || a.Concurrency < 1 || a.Concurrency > 20000 ||
			a.Connections < 1 || a.Connections > 16 || a.RateLimit < 0 || a.MaxAttempts < 1 || a.MaxAttempts > 20 ||
			a.DefaultExpiry < time.Minute || a.DefaultExpiry > 672*time.Hour || len(name) > 64 {
			t.Fatalf("app %q out of range: %+v", name, a)
		}
		switch a.PushType {
		case pushd.APNs:
			if a.AuthKey == nil || len(a.KeyID) != 10 || len(a.TeamID) != 10 || a.BundleID == "" ||
				(a.Environment != "development" && a.Environment != "production") {
				t.Fatalf("APNs app %q incomplete: %+v", name, a)
			}
		case pushd.FCM:
			if a.ProjectID == "" || a.ClientEmail == "" || len(a.ServiceAccountJSON) == 0 {
				t.Fatalf("FCM app %q incomplete: %+v", name, a)
			}
		default:
			t.Fatalf("app %q has push type %q", name, a.PushType)
		}
	}
}
