// Package scheduler decides when campaigns run and keeps their runners
// going: it polls for due campaigns, starts each on the dot, and runs a
// campaign.Runner for every run in progress.
package scheduler

import (
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/pushd/pushd"
	"github.com/pushd/pushd/campaign"
)

// maxBatchSize bounds campaigns.batch_size; larger batches only hold more
// memory and longer transactions.
const maxBatchSize = 100000

// missedLimit bounds the walk over occurrences missed while pushd was down.
const missedLimit = 100000

// Plan decides what to do with a campaign that is due now. It is pure: the
// store applies the decision. Every Fail reason is written for the staff
// who wrote the row: what is wrong and how to fix it.
func Plan(c *pushd.Campaign, apps map[string]*campaign.App, now time.Time) pushd.Decision {
	fail := func(format string, args ...any) pushd.Decision {
		return pushd.Decision{Action: pushd.Fail, Reason: fmt.Sprintf(format, args...)}
	}
	app, ok := apps[c.App]
	if !ok {
		return fail("%s", UnknownApp(c.App, apps))
	}
	var sched Schedule
	if strings.TrimSpace(c.Cron) != "" {
		var err error
		if sched, err = ParseCron(c.Cron); err != nil {
			return fail("%v", err)
		}
	}
	if c.CurrentRun != nil && !c.CurrentRun.Status.Finished() {
		// Staff set a paused or failed campaign back to scheduled. The run
		// expires by itself if its deadline has passed meanwhile, and says
		// why.
		d := pushd.Decision{Action: pushd.Resume, NextRunAt: following(sched, c, c.CurrentRun.ScheduledFor)}
		if !now.Before(c.CurrentRun.Deadline) {
			d.Reason = fmt.Sprintf("the deadline (%s) passed while the campaign was %s", c.CurrentRun.Deadline.Format(time.DateTime), c.CurrentRun.Status)
		}
		return d
	}
	if c.ScheduledAt.Year() < 2000 {
		return fail("scheduled_at (%s) is not a real date: write a date and time such as %s", typed(c.ScheduledAt),
			now.Add(24*time.Hour).Truncate(time.Hour).Format(time.DateTime))
	}
	if c.ExpiresAt != nil && !c.ExpiresAt.After(c.ScheduledAt) {
		return fail("expires_at (%s) is before scheduled_at (%s): set expires_at later than scheduled_at",
			c.ExpiresAt.Format(time.DateTime), c.ScheduledAt.Format(time.DateTime))
	}
	if sched != nil && c.RepeatUntil != nil && c.RepeatUntil.Before(c.ScheduledAt) {
		return fail("repeat_until (%s) is before scheduled_at (%s)", c.RepeatUntil.Format(time.DateTime), c.ScheduledAt.Format(time.DateTime))
	}
	batch := app.BatchSize
	if c.BatchSize != nil {
		if *c.BatchSize < 1 || *c.BatchSize > maxBatchSize {
			return fail("batch_size %d is out of range: use 1 to %d, or NULL for the app default (%d)", *c.BatchSize, maxBatchSize, app.BatchSize)
		}
		batch = *c.BatchSize
	}
	if c.Badge != nil && *c.Badge < 0 {
		return fail("badge %d is negative: use 0 to clear the badge, or NULL to leave it alone", *c.Badge)
	}
	data, err := campaign.ParseData(c.Data)
	if err != nil {
		return fail("%v", err)
	}
	// The one place a campaign row becomes what a provider renders.
	n := pushd.Notification{Title: c.Title, Body: c.Body, Data: data, Badge: c.Badge, Sound: c.Sound, CollapseID: c.CollapseID}
	if n.CollapseID == "" {
		// Derived from the run, so a copy resent after a crash replaces the
		// first on the device instead of showing twice.
		n.CollapseID = fmt.Sprintf("pushd-%d-%d", c.ID, c.RunCount+1)
	}

	window := app.DefaultExpiry
	if c.ExpiresAt != nil {
		window = c.ExpiresAt.Sub(c.ScheduledAt)
	}
	at := c.ScheduledAt
	if c.NextRunAt != nil {
		at = *c.NextRunAt
	}
	deadline := at.Add(window)
	n.Expiration = deadline
	if _, err := app.Sender.Prepare(n); err != nil {
		return fail("%v", err)
	}

	if !now.Before(deadline) {
		if sched == nil && !c.Arrived().Before(deadline) {
			// Typed in the past, not missed: staff can fix it.
			if c.ExpiresAt != nil {
				return fail("scheduled_at (%s) and expires_at (%s) are in the past: set both to times to come, then status to 'scheduled'",
					c.ScheduledAt.Format(time.DateTime), c.ExpiresAt.Format(time.DateTime))
			}
			return fail("scheduled_at (%s) is in the past, and without expires_at a campaign may start at most default_expiry (%s) late: set scheduled_at to a time to come, then status to 'scheduled'",
				c.ScheduledAt.Format(time.DateTime), formatWindow(window))
		}
		missed := fmt.Sprintf("the deadline (%s) passed before pushd could start it; was pushd stopped?", deadline.Format(time.DateTime))
		if !c.Arrived().Before(deadline) {
			missed = fmt.Sprintf("scheduled_at (%s) was in the past when the campaign arrived", c.ScheduledAt.Format(time.DateTime))
		}
		if sched == nil {
			return pushd.Decision{Action: pushd.Expire, Reason: missed}
		}
		next, skipped := at, 1
		for {
			next = sched.Next(next)
			if next.IsZero() || (c.RepeatUntil != nil && next.After(*c.RepeatUntil)) {
				return pushd.Decision{Action: pushd.Expire, Reason: fmt.Sprintf("%d run(s) missed: %s; no run is left before repeat_until", skipped, missed)}
			}
			if now.Before(next.Add(window)) || skipped >= missedLimit {
				break
			}
			skipped++
		}
		return pushd.Decision{Action: pushd.Expire, NextRunAt: &next,
			Reason: fmt.Sprintf("%d run(s) missed: %s; next run at %s", skipped, missed, next.Format(time.DateTime))}
	}

	body, err := json.Marshal(n)
	if err != nil {
		return fail("cannot store the notification: %v", err)
	}
	return pushd.Decision{
		Action:    pushd.Start,
		NextRunAt: following(sched, c, at),
		Run:       pushd.NewRun{ScheduledFor: at, Deadline: deadline, BatchSize: batch, Notification: body},
	}
}

// typed shows a DATETIME as staff typed it: the zero date, which the
// driver reads as year 1, is 0000-00-00.
func typed(t time.Time) string {
	if t.IsZero() {
		return "0000-00-00 00:00:00"
	}
	return t.Format(time.DateTime)
}

// formatWindow writes a deadline window as staff write durations: 24h, 90m.
func formatWindow(d time.Duration) string {
	s := d.String()
	s = strings.TrimSuffix(s, "0s")
	return strings.TrimSuffix(s, "0m")
}

// following is the occurrence after at, or nil for a one-off campaign or
// when repeat_until ends the series.
func following(sched Schedule, c *pushd.Campaign, at time.Time) *time.Time {
	if sched == nil {
		return nil
	}
	next := sched.Next(at)
	if next.IsZero() || (c.RepeatUntil != nil && next.After(*c.RepeatUntil)) {
		return nil
	}
	return &next
}

// UnknownApp words the reason for a campaign naming an app config.ini
// lacks, listing the apps it has.
func UnknownApp(name string, apps map[string]*campaign.App) string {
	names := make([]string, 0, len(apps))
	for n := range apps {
		names = append(names, n)
	}
	slices.Sort(names)
	return fmt.Sprintf("unknown app '%s' (config has: %s)", name, strings.Join(names, ", "))
}
