package main

import (
	"os"
	"regexp"
	"strings"
	"testing"

	"github.com/pushd/pushd/internal/pushsim"
)

// `pushd check` lists every problem in one run: a config error does not
// hide the warnings, the other apps' checks or the database's, and the
// count closes the output.
func TestCheckListsEveryProblem(t *testing.T) {
	t.Parallel()
	e := newEnv(t, "", pushsim.Options{})
	e.setKey("IOS", "batch_size", "0")
	e.setKey("Database", "database", "pushd_not_created_yet")
	key := e.sim.Files().ServiceAccountFile
	if err := os.Chmod(key, 0o644); err != nil {
		t.Fatal(err)
	}
	out, err := e.pushd("check")
	if err == nil {
		t.Fatalf("check passed:\n%s", out)
	}
	for _, want := range []string{
		"error: config.ini [IOS] batch_size = \"0\"",
		"warning: ", // the service-account file readable by others
		"ok: [Android] FCM",
		`database = "pushd_not_created_yet": the database does not exist: create it with CREATE DATABASE pushd_not_created_yet CHARACTER SET utf8mb4; then run pushd migrate -config`,
	} {
		if !strings.Contains(out, want) {
			t.Errorf("check output lacks %q:\n%s", want, out)
		}
	}
	if !strings.Contains(out, "readable") {
		t.Errorf("check output lacks the key file warning:\n%s", out)
	}
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if last := lines[len(lines)-1]; last != "2 problem(s)" {
		t.Errorf("last line %q, want \"2 problem(s)\":\n%s", last, out)
	}

	// A broken [Database] skips the database checks, and says so.
	e.setKey("Database", "port", "99999")
	out, _ = e.pushd("check")
	if !strings.Contains(out, "[Database] port") || !strings.Contains(out, "skipped: the database checks, until [Database] is fixed") ||
		!regexp.MustCompile(`(?m)^2 problem\(s\)$`).MatchString(out) {
		t.Errorf("check with a broken [Database]:\n%s", out)
	}
}

// `pushd migrate` says what it did: created, upgraded or nothing to do.
func TestMigrateSaysWhatItDid(t *testing.T) {
	t.Parallel()
	e := newEnv(t, "", pushsim.Options{})
	if _, err := e.db.Exec(`DROP TABLE pushd_schema`); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"created pushd's tables in database", "schema is current in database"} {
		out, err := e.pushd("migrate")
		if err != nil || !strings.Contains(out, want) {
			t.Fatalf("migrate = %v, %q; want %q", err, out, want)
		}
	}
	if _, err := e.db.Exec(`DELETE FROM pushd_schema WHERE version > 1`); err != nil {
		t.Fatal(err)
	}
	if out, err := e.pushd("migrate"); err != nil || !strings.Contains(out, "from version 1 to") {
		t.Fatalf("migrate of version 1 = %v, %q", err, out)
	}
}
