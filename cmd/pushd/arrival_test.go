package main

import (
	"strings"
	"testing"
	"time"

	"github.com/pushd/pushd/internal/pushsim"
)

// A row that can never run fails within a poll of its arrival, a week
// before it is due, with a reason in marketing's words; a good one stays
// scheduled; a fixed one set back to scheduled is checked again.
func TestRowsCheckedOnArrival(t *testing.T) {
	t.Parallel()
	e := newEnv(t, "", pushsim.Options{})
	d := e.start()
	next := time.Now().Add(7 * 24 * time.Hour)
	good := e.campaign("IOS", next, map[string]any{"cron": "0 9 * * MON", "data": `{"screen": "sale"}`})
	bad := map[int64]string{
		e.campaign("IOS", next, map[string]any{"cron": "0 9 * * MONDAY"}):           `the day of the week "MONDAY" must be 0-6 (0 is Sunday) or SUN-SAT`,
		e.campaign("IOS", next, map[string]any{"data": `{screen: "sale"}`}):         `data is not valid JSON at character 2 ("{»screen: \"sale\"}"): every name must be in double quotes`,
		e.campaign("iOS-typo", next, nil):                                           "unknown app 'iOS-typo' (config has: Android, IOS)",
		e.campaign("IOS", next, map[string]any{"expires_at": next.Add(-time.Hour)}): "is before scheduled_at",
		e.campaign("Android", next, map[string]any{"data": `{"from": "x"}`}):        `data key "from" cannot be used`,
	}
	for id, want := range bad {
		r := e.waitStatus(id, 15*time.Second, "failed")
		if !strings.Contains(r.Reason, want) {
			t.Errorf("campaign %d failed with %q, want %q", id, r.Reason, want)
		}
		for _, internal := range []string{"strconv", "invalid character", "failed to parse"} {
			if strings.Contains(r.Reason, internal) {
				t.Errorf("campaign %d: reason %q speaks Go (%q)", id, r.Reason, internal)
			}
		}
	}
	if r := e.row(good); r.Status != "scheduled" || r.Reason != "" {
		t.Fatalf("a good upcoming campaign became %+v", r)
	}

	// Staff fix the cron and set the row back to scheduled; a new bad row
	// marks the next pass, which checks the fixed one too.
	var fixed int64
	for id, want := range bad {
		if strings.Contains(want, "MONDAY") {
			fixed = id
		}
	}
	if _, err := e.db.Exec(`UPDATE campaigns SET cron = '0 9 * * MON', status = 'scheduled', status_reason = '' WHERE id = ?`, fixed); err != nil {
		t.Fatal(err)
	}
	marker := e.campaign("IOS", next, map[string]any{"batch_size": 0})
	e.waitStatus(marker, 15*time.Second, "failed")
	if r := e.row(fixed); r.Status != "scheduled" {
		t.Fatalf("the fixed campaign became %+v", r)
	}
	d.stop(t)
}
