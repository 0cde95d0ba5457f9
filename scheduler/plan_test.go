package scheduler

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/pushd/pushd"
	"github.com/pushd/pushd/campaign"
	"github.com/pushd/pushd/providers"
)

// fakeSender rejects what a provider would refuse to render.
type fakeSender struct{}

type prepared struct{ n pushd.Notification }

func (prepared) PayloadSize() int { return 0 }

func (fakeSender) Prepare(n pushd.Notification) (providers.Prepared, error) {
	if len(n.Body) > 4000 {
		return nil, errors.New("the message is 4100 bytes, APNs allows 4096: shorten the body or data")
	}
	return prepared{n}, nil
}
func (fakeSender) ValidateToken(string) error { return nil }
func (fakeSender) Send(context.Context, providers.Prepared, string) (providers.Result, error) {
	return providers.Result{}, errors.New("not in this test")
}
func (fakeSender) SendAsync(_ context.Context, _ providers.Prepared, _ string, done func(providers.Result, error)) {
	done(providers.Result{}, errors.New("not in this test"))
}

func ptr[T any](v T) *T { return &v }

func TestPlan(t *testing.T) {
	t.Parallel()
	paris, err := time.LoadLocation("Europe/Paris")
	if err != nil {
		t.Fatal(err)
	}
	apps := map[string]*campaign.App{
		"MyApp":  campaign.NewApp("MyApp", pushd.APNs, fakeSender{}, campaign.AppOptions{BatchSize: 500, DefaultExpiry: 2 * time.Hour}),
		"MyApp2": campaign.NewApp("MyApp2", pushd.FCM, fakeSender{}, campaign.AppOptions{}),
	}
	now := time.Date(2026, 11, 22, 10, 0, 0, 0, time.UTC)
	base := func() *pushd.Campaign {
		return &pushd.Campaign{ID: 42, App: "MyApp", Title: "Sale", Body: "50% off", ScheduledAt: now, Status: pushd.Scheduled}
	}
	tests := []struct {
		name   string
		edit   func(c *pushd.Campaign)
		now    time.Time
		action pushd.Action
		reason string // fragment
		check  func(t *testing.T, d pushd.Decision)
	}{
		{name: "unknown app lists the known ones", edit: func(c *pushd.Campaign) { c.App = "MyAp" },
			action: pushd.Fail, reason: "unknown app 'MyAp' (config has: MyApp, MyApp2)"},
		{name: "expires before scheduled", edit: func(c *pushd.Campaign) { c.ExpiresAt = ptr(now.Add(-time.Minute)) },
			action: pushd.Fail, reason: "expires_at (2026-11-22 09:59:00) is before scheduled_at (2026-11-22 10:00:00)"},
		{name: "expires equal to scheduled", edit: func(c *pushd.Campaign) { c.ExpiresAt = ptr(now) },
			action: pushd.Fail, reason: "is before scheduled_at"},
		{name: "zero date is shown as typed", edit: func(c *pushd.Campaign) { c.ScheduledAt = time.Time{} },
			action: pushd.Fail, reason: "scheduled_at (0000-00-00 00:00:00) is not a real date: write a date and time such as 2026-11-23 10:00:00"},
		{name: "malformed data JSON", edit: func(c *pushd.Campaign) { c.Data = `{"screen": "sale"` },
			action: pushd.Fail, reason: "data is not valid JSON"},
		{name: "data not an object", edit: func(c *pushd.Campaign) { c.Data = `["a"]` },
			action: pushd.Fail, reason: "data must be a JSON object"},
		{name: "data trailing text", edit: func(c *pushd.Campaign) { c.Data = `{"a":"b"} x` },
			action: pushd.Fail, reason: "text after the JSON object"},
		{name: "broken cron", edit: func(c *pushd.Campaign) { c.Cron = "61 * * * *" },
			action: pushd.Fail, reason: `cron "61 * * * *" is not valid: the minute "61" must be 0-59`},
		{name: "cron with a day name spelled out", edit: func(c *pushd.Campaign) { c.Cron = "0 9 * * MONDAY" },
			action: pushd.Fail, reason: `the day of the week "MONDAY" must be 0-6 (0 is Sunday) or SUN-SAT (lists such as 1,15 and ranges such as 1-5 work too); example: "0 9 * * MON"`},
		{name: "batch size zero", edit: func(c *pushd.Campaign) { c.BatchSize = ptr(0) },
			action: pushd.Fail, reason: "batch_size 0 is out of range"},
		{name: "negative badge", edit: func(c *pushd.Campaign) { c.Badge = ptr(-1) },
			action: pushd.Fail, reason: "badge -1 is negative"},
		{name: "provider refuses payload", edit: func(c *pushd.Campaign) { c.Body = strings.Repeat("x", 4001) },
			action: pushd.Fail, reason: "APNs allows 4096"},
		{name: "repeat_until before start", edit: func(c *pushd.Campaign) { c.Cron = "@daily"; c.RepeatUntil = ptr(now.Add(-time.Hour)) },
			action: pushd.Fail, reason: "repeat_until"},
		{name: "one-off starts with its deadline", edit: func(c *pushd.Campaign) {
			c.ExpiresAt = ptr(now.Add(30 * time.Minute))
			c.Data = `{"screen":"sale","n":3}`
		}, now: now.Add(time.Second), action: pushd.Start, check: func(t *testing.T, d pushd.Decision) {
			if !d.Runs[0].Deadline.Equal(now.Add(30*time.Minute)) || d.NextRunAt != nil || d.Runs[0].BatchSize != 500 {
				t.Errorf("deadline %v next %v batch %d", d.Runs[0].Deadline, d.NextRunAt, d.Runs[0].BatchSize)
			}
			var c pushd.Notification
			if err := json.Unmarshal(d.Runs[0].Notification, &c); err != nil {
				t.Fatal(err)
			}
			if c.CollapseID != "pushd-42-1" || string(c.Data["n"]) != "3" || c.Title != "Sale" {
				t.Errorf("snapshot %+v", c)
			}
		}},
		{name: "no expires_at takes the app default", action: pushd.Start, check: func(t *testing.T, d pushd.Decision) {
			if !d.Runs[0].Deadline.Equal(now.Add(2 * time.Hour)) {
				t.Errorf("deadline %v, want scheduled_at + 2h", d.Runs[0].Deadline)
			}
		}},
		{name: "staff collapse id wins and batch size is theirs", edit: func(c *pushd.Campaign) { c.CollapseID = "black-friday"; c.BatchSize = ptr(250) },
			action: pushd.Start, check: func(t *testing.T, d pushd.Decision) {
				if !strings.Contains(string(d.Runs[0].Notification), `"collapse_id":"black-friday"`) || d.Runs[0].BatchSize != 250 {
					t.Errorf("notification %s batch %d", d.Runs[0].Notification, d.Runs[0].BatchSize)
				}
			}},
		{name: "recurring start sets the next occurrence", edit: func(c *pushd.Campaign) { c.Cron = "0 9 * * *"; c.ScheduledAt = now.Add(-30 * time.Minute) },
			action: pushd.Start, check: func(t *testing.T, d pushd.Decision) {
				if d.NextRunAt == nil || !d.NextRunAt.Equal(time.Date(2026, 11, 23, 9, 0, 0, 0, time.UTC)) {
					t.Errorf("next %v", d.NextRunAt)
				}
			}},
		{name: "cron follows the configured zone", edit: func(c *pushd.Campaign) {
			c.Cron = "0 9 * * *"
			c.ScheduledAt = time.Date(2026, 11, 22, 9, 0, 0, 0, paris)
		}, now: time.Date(2026, 11, 22, 9, 0, 1, 0, paris), action: pushd.Start, check: func(t *testing.T, d pushd.Decision) {
			if d.NextRunAt == nil || !d.NextRunAt.Equal(time.Date(2026, 11, 23, 9, 0, 0, 0, paris)) {
				t.Errorf("next %v, want 09:00 Paris", d.NextRunAt)
			}
		}},
		{name: "repeat_until ends the series", edit: func(c *pushd.Campaign) { c.Cron = "@daily"; c.RepeatUntil = ptr(now.Add(time.Hour)) },
			action: pushd.Start, check: func(t *testing.T, d pushd.Decision) {
				if d.NextRunAt != nil {
					t.Errorf("next %v, want none", d.NextRunAt)
				}
			}},
		{name: "one-off whose deadline passed while down", edit: func(c *pushd.Campaign) { c.ExpiresAt = ptr(now.Add(time.Hour)) },
			now: now.Add(2 * time.Hour), action: pushd.Expire, reason: "passed before pushd could start it",
			check: func(t *testing.T, d pushd.Decision) {
				if d.NextRunAt != nil {
					t.Error("a one-off has no next run")
				}
			}},
		{name: "recurring skips missed occurrences", edit: func(c *pushd.Campaign) {
			c.Cron = "@hourly"
			c.ExpiresAt = ptr(now.Add(10 * time.Minute))
		}, now: now.Add(3*time.Hour + 20*time.Minute), action: pushd.Expire, reason: "4 run(s) missed",
			check: func(t *testing.T, d pushd.Decision) {
				if d.NextRunAt == nil || !d.NextRunAt.Equal(now.Add(4*time.Hour)) {
					t.Errorf("next %v, want 14:00", d.NextRunAt)
				}
			}},
		{name: "resume a paused run", edit: func(c *pushd.Campaign) {
			c.CurrentRun = &pushd.RunState{ID: 7, Status: pushd.Paused, ScheduledFor: now, Deadline: now.Add(time.Hour)}
		}, action: pushd.Resume, check: func(t *testing.T, d pushd.Decision) {
			if d.Reason != "" {
				t.Errorf("reason %q for a resume before the deadline", d.Reason)
			}
		}},
		{name: "resumed after its deadline says it passed during the pause", edit: func(c *pushd.Campaign) {
			c.CurrentRun = &pushd.RunState{ID: 7, Status: pushd.Paused, ScheduledFor: now, Deadline: now.Add(time.Hour)}
		}, now: now.Add(2 * time.Hour), action: pushd.Resume, reason: "the deadline (2026-11-22 11:00:00) passed while the campaign was paused"},
		{name: "one-off typed with last year's dates", edit: func(c *pushd.Campaign) {
			c.ScheduledAt, c.ExpiresAt = now.AddDate(-1, 0, 0), ptr(now.AddDate(-1, 0, 0).Add(time.Hour))
			c.CreatedAt = now.Add(-time.Second)
		}, action: pushd.Fail, reason: "scheduled_at (2025-11-22 10:00:00) and expires_at (2025-11-22 11:00:00) are in the past: set both to times to come"},
		{name: "one-off typed in the past without expires_at", edit: func(c *pushd.Campaign) {
			c.ScheduledAt = now.Add(-3 * time.Hour)
			c.CreatedAt = now.Add(-time.Second)
		}, action: pushd.Fail, reason: "scheduled_at (2026-11-22 07:00:00) is in the past, and without expires_at a campaign may start at most default_expiry (2h) late"},
		{name: "edited after its deadline counts as typed in the past", edit: func(c *pushd.Campaign) {
			c.ExpiresAt = ptr(now.Add(time.Hour))
			c.CreatedAt, c.UpdatedAt = now.Add(-time.Hour), now.Add(90*time.Minute)
		}, now: now.Add(2 * time.Hour), action: pushd.Fail, reason: "are in the past"},
		{name: "recurring typed with a past start goes on from the next occurrence", edit: func(c *pushd.Campaign) {
			c.Cron = "@hourly"
			c.ScheduledAt, c.ExpiresAt = now.Add(-3*time.Hour), ptr(now.Add(-3*time.Hour+10*time.Minute))
			c.CreatedAt = now.Add(-time.Second)
		}, now: now.Add(20 * time.Minute), action: pushd.Expire, reason: "scheduled_at (2026-11-22 07:00:00) was in the past when the campaign arrived; next run at 2026-11-22 11:00:00",
			check: func(t *testing.T, d pushd.Decision) {
				if strings.Contains(d.Reason, "was pushd stopped") {
					t.Errorf("reason %q blames pushd for a row typed in the past", d.Reason)
				}
			}},
		{name: "a done run is not resumed", edit: func(c *pushd.Campaign) {
			c.RunCount = 1
			c.CurrentRun = &pushd.RunState{ID: 7, Status: pushd.Done, ScheduledFor: now, Deadline: now.Add(time.Hour)}
		}, action: pushd.Start, check: func(t *testing.T, d pushd.Decision) {
			if !strings.Contains(string(d.Runs[0].Notification), "pushd-42-2") {
				t.Errorf("second run's collapse id: %s", d.Runs[0].Notification)
			}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := base()
			if tt.edit != nil {
				tt.edit(c)
			}
			at := tt.now
			if at.IsZero() {
				at = now
			}
			d := Plan(c, apps, at)
			if d.Action != tt.action {
				t.Fatalf("action %v (reason %q), want %v", d.Action, d.Reason, tt.action)
			}
			if !strings.Contains(d.Reason, tt.reason) {
				t.Errorf("reason %q, want it to contain %q", d.Reason, tt.reason)
			}
			if tt.check != nil {
				tt.check(t, d)
			}
		})
	}
}

// A recurring local-time campaign starts each occurrence at the wall time,
// in each user's zone: its timing is local, its next run is the next wall
// time, and its runs end when the last zone (UTC−12) reaches the deadline.
// A row whose last zone's deadline has passed is missed, not started.
func TestPlanLocalTime(t *testing.T) {
	t.Parallel()
	tokyo, _ := time.LoadLocation("Asia/Tokyo")
	q, _ := pushd.ParseQuietHours("22:00-07:00")
	apps := map[string]*campaign.App{"MyApp": campaign.NewApp("MyApp", pushd.APNs, fakeSender{},
		campaign.AppOptions{DefaultZone: tokyo, Quiet: q})}
	wall := time.Date(2026, 6, 1, 9, 0, 0, 0, time.UTC)
	end := wall.Add(2 * time.Hour)
	c := &pushd.Campaign{ID: 7, App: "MyApp", Body: "b", ScheduledAt: wall, ExpiresAt: &end, Cron: "0 9 * * *",
		LocalTime: true, LatePolicy: "next_day", Status: pushd.Scheduled}
	d := Plan(c, apps, time.Date(2026, 5, 31, 19, 0, 0, 0, time.UTC))
	if d.Action != pushd.Start || len(d.Runs) != 1 {
		t.Fatalf("decision %+v, want a start", d)
	}
	r := d.Runs[0]
	if !r.Timing.Local || !r.Timing.Start.Equal(wall) || !r.Timing.End.Equal(end) || r.Timing.Late != pushd.LateNextDay ||
		r.Timing.Default != tokyo || r.Timing.Quiet != q {
		t.Errorf("timing %+v", r.Timing)
	}
	if want := time.Date(2026, 6, 1, 23, 0, 0, 0, time.UTC); !r.Deadline.Equal(want) {
		t.Errorf("deadline %v, want 11:00 at UTC-12 = %v", r.Deadline, want)
	}
	if d.NextRunAt == nil || !d.NextRunAt.Equal(wall.AddDate(0, 0, 1)) {
		t.Errorf("next run %v, want the next day's 09:00 wall time", d.NextRunAt)
	}
	c.IgnoreQuietHours = true
	if d := Plan(c, apps, time.Date(2026, 5, 31, 19, 0, 0, 0, time.UTC)); !d.Runs[0].Timing.Quiet.IsZero() {
		t.Error("ignore_quiet_hours kept the quiet hours")
	}
	// After 11:00 at UTC-12 the occurrence is missed; the next is scheduled.
	d = Plan(c, apps, time.Date(2026, 6, 1, 23, 30, 0, 0, time.UTC))
	if d.Action != pushd.Expire || d.NextRunAt == nil || !d.NextRunAt.Equal(wall.AddDate(0, 0, 1)) {
		t.Errorf("after the last zone's deadline: %+v", d)
	}
	for _, bad := range []struct {
		edit func(c *pushd.Campaign)
		want string
	}{
		{func(c *pushd.Campaign) { c.LatePolicy = "later" }, "late_policy 'later' is not one of skip, send or next_day"},
		{func(c *pushd.Campaign) { c.LocalTime = false }, "late_policy is set but local_time is 0"},
		{func(c *pushd.Campaign) { c.MaxPerMinute = ptr(0) }, "max_per_minute 0 is out of range"},
	} {
		c2 := *c
		bad.edit(&c2)
		if d := Plan(&c2, apps, time.Date(2026, 5, 31, 19, 0, 0, 0, time.UTC)); d.Action != pushd.Fail || !strings.Contains(d.Reason, bad.want) {
			t.Errorf("%+v, want a failure with %q", d, bad.want)
		}
	}
}
