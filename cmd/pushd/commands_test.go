package main

import (
	"os"
	"strings"
	"testing"
	"time"

	"github.com/pushd/pushd/internal/pushsim"
)

// TestRecurring: a cron campaign runs at scheduled_at and then on its
// schedule, each run with its own counts and collapse id; a restart between
// runs neither skips nor doubles one, and repeat_until ends the series.
func TestRecurring(t *testing.T) {
	t.Parallel()
	e := newEnv(t, "", pushsim.Options{})
	e.users("IOS", 50, func(i int) string { return iosToken("", i) }, "NOW(3) - INTERVAL 1 DAY")
	at := time.Now().Add(time.Second).Truncate(time.Second)
	id := e.campaign("IOS", at, map[string]any{"cron": "@every 4s", "expires_at": at.Add(3 * time.Second).UTC(),
		"repeat_until": at.Add(9 * time.Second).UTC()})
	d := e.start()
	waitFor(t, time.Minute, "the first run", func() bool {
		return e.count(`SELECT COUNT(*) FROM pushd_runs WHERE campaign_id = ? AND status = 'done'`, id) == 1
	})
	d.stop(t)
	if r := e.row(id); r.Status != "scheduled" {
		t.Fatalf("between runs the row is %+v, want scheduled with a next run", r)
	}
	d = e.start()
	r := e.waitStatus(id, time.Minute, "done", "failed", "expired")
	d.stop(t)
	if r.Status != "done" || r.Sent != 50 {
		t.Fatalf("after the series: %+v, want done with the last run's 50 sent", r)
	}
	runs := e.count(`SELECT COUNT(*) FROM pushd_runs WHERE campaign_id = ? AND status = 'done' AND sent = 50`, id)
	occ := e.count(`SELECT COUNT(DISTINCT occurrence) FROM pushd_runs WHERE campaign_id = ?`, id)
	if runs != 3 || occ != 3 {
		t.Fatalf("%d done runs with %d distinct occurrences, want 3 (at +0 s, +4 s, +8 s; +12 s is after repeat_until)", runs, occ)
	}
	// Each run is a separate send: every token got it three times, each
	// time with that run's collapse id.
	dl := e.delivered(pushsim.ProviderAPNs)[iosToken("", 0)]
	if dl.Count != 3 || !strings.HasSuffix(dl.CollapseID, "-3") {
		t.Fatalf("token 0: %d deliveries, last collapse id %q; want 3 and a run-3 id", dl.Count, dl.CollapseID)
	}
}

// TestCommands: check lists every problem and exits non-zero, migrate is
// idempotent, run refuses an outdated schema, version prints.
func TestCommands(t *testing.T) {
	t.Parallel()
	e := newEnv(t, "", pushsim.Options{})
	if out, err := e.pushd("check"); err != nil || !strings.Contains(out, "config is valid") || !strings.Contains(out, "[IOS]") {
		t.Fatalf("check on a good setup: %v\n%s", err, out)
	}
	if out, err := e.pushd("migrate"); err != nil {
		t.Fatalf("second migrate: %v\n%s", err, out)
	}
	if _, err := e.db.Exec(`DELETE FROM pushd_schema WHERE version > 1`); err != nil {
		t.Fatal(err)
	}
	out, err := e.pushd("run")
	if err == nil || !strings.Contains(out, "pushd migrate") {
		t.Fatalf("run on an outdated schema: %v\n%s", err, out)
	}
	out, err = e.pushd("check")
	if err == nil || !strings.Contains(out, "pushd migrate") {
		t.Fatalf("check on an outdated schema: %v\n%s", err, out)
	}
	e.pushd("migrate")

	good, _ := os.ReadFile(e.config)
	bad := strings.Replace(string(good), "[Android]\n", "[Android]\napi_key = AIzaSyLegacy\n", 1)
	bad = strings.Replace(bad, "[IOS]\n", "[IOS]\nbatch_size = 0\n", 1)
	os.WriteFile(e.config, []byte(bad), 0o600)
	out, err = e.pushd("check")
	if err == nil {
		t.Fatalf("check passed a broken config:\n%s", out)
	}
	for _, want := range []string{"[Android] api_key", "service_account_file", "[IOS] batch_size", `"0"`} {
		if !strings.Contains(out, want) {
			t.Errorf("check output lacks %q:\n%s", want, out)
		}
	}
	if out, err := e.pushd("run"); err == nil || !strings.Contains(out, "api_key") {
		t.Errorf("run with a legacy api_key: %v\n%s", err, out)
	}
	if out, err := e.pushd("version"); err != nil || !strings.HasPrefix(out, "pushd ") {
		t.Errorf("version: %v %q", err, out)
	}
}
