// Package scheduler decides when campaigns run and keeps their runners
// going: it polls for due campaigns, starts each on the dot, and runs a
// campaign.Runner for every run in progress.
package scheduler

import (
	"bytes"
	"encoding/json"
	"fmt"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/pushd/pushd"
	"github.com/pushd/pushd/campaign"
	"github.com/pushd/pushd/content"
	"github.com/pushd/pushd/pushid"
)

// maxPerMinute bounds campaigns.max_per_minute: a million a minute is
// faster than any app sends.
const maxPerMinute = 1_000_000

// maxBatchSize bounds campaigns.batch_size; larger batches only hold more
// memory and longer transactions.
const maxBatchSize = 100000

// segmentName is what may follow segment_ in a segment's table or view
// name: MySQL names are at most 64 characters.
var segmentName = regexp.MustCompile(`^[A-Za-z0-9_]{1,56}$`)

// missedLimit bounds the walk over occurrences missed while pushd was down.
const missedLimit = 100000

// Plan decides what to do with a campaign that is due now. It is pure: the
// store applies the decision. Every Fail reason is written for the staff
// who wrote the row: what is wrong and how to fix it.
func Plan(c *pushd.Campaign, apps map[string]*campaign.App, now time.Time) pushd.Decision {
	fail := func(format string, args ...any) pushd.Decision {
		return pushd.Decision{Action: pushd.Fail, Reason: fmt.Sprintf(format, args...)}
	}
	names := c.Apps()
	if len(names) == 0 {
		return fail("%s", UnknownApp(c.App, apps))
	}
	var picked []*campaign.App
	for i, name := range names {
		app, ok := apps[name]
		if !ok {
			return fail("%s", UnknownApp(name, apps))
		}
		if slices.Contains(names[:i], name) {
			return fail("app '%s' is named twice in app (%s): name each app once", name, c.App)
		}
		picked = append(picked, app)
	}
	for _, seg := range []struct{ column, name string }{{"segment", c.Segment}, {"exclude_segment", c.ExcludeSegment}} {
		if seg.name != "" && !segmentName.MatchString(seg.name) {
			return fail("%s '%s' is not a segment name: use letters, digits and _ only (at most 56), the part after segment_ of the table or view name, e.g. recent_buyers for segment_recent_buyers", seg.column, seg.name)
		}
	}
	if c.Segment != "" && strings.EqualFold(c.Segment, c.ExcludeSegment) {
		return fail("segment and exclude_segment are both '%s': nobody would be left; set exclude_segment to another segment or NULL", c.Segment)
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
	late := pushd.LatePolicy(strings.ToLower(strings.TrimSpace(c.LatePolicy)))
	switch late {
	case "":
		late = pushd.LateSkip
	case pushd.LateSkip, pushd.LateSend, pushd.LateNextDay:
	default:
		return fail("late_policy '%s' is not one of skip, send or next_day: skip leaves out users whose local time passed more than an hour ago, send sends to them at once, next_day at the same time the next day", c.LatePolicy)
	}
	if c.LatePolicy != "" && !c.LocalTime {
		return fail("late_policy is set but local_time is 0: set local_time = 1 to send at each user's local time, or late_policy to NULL")
	}
	if c.MaxPerMinute != nil && (*c.MaxPerMinute < 1 || *c.MaxPerMinute > maxPerMinute) {
		return fail("max_per_minute %d is out of range: use 1 to %d, or NULL to send as fast as the app allows", *c.MaxPerMinute, maxPerMinute)
	}
	if c.BatchSize != nil && (*c.BatchSize < 1 || *c.BatchSize > maxBatchSize) {
		return fail("batch_size %d is out of range: use 1 to %d, or NULL for the app default (%d)", *c.BatchSize, maxBatchSize, picked[0].BatchSize)
	}
	if c.Badge != nil && *c.Badge < 0 {
		return fail("badge %d is negative: use 0 to clear the badge, or NULL to leave it alone", *c.Badge)
	}
	data, err := campaign.ParseData(c.Data)
	if err != nil {
		return fail("%v", err)
	}
	// The one place a campaign row becomes what a provider renders.
	n := pushd.Notification{Title: c.Title, Body: c.Body, Subtitle: c.Subtitle, Data: data, Badge: c.Badge, Sound: c.Sound,
		CollapseID: c.CollapseID, ImageURL: strings.TrimSpace(c.ImageURL), Link: strings.TrimSpace(c.Link),
		Category: c.Category, ThreadID: c.ThreadID, ChannelID: c.ChannelID,
		InterruptionLevel: strings.ToLower(strings.TrimSpace(c.InterruptionLevel)), RelevanceScore: c.RelevanceScore,
		Priority: pushd.Priority(strings.ToLower(strings.TrimSpace(c.Priority))), Silent: c.Silent,
		Translations: c.Translations}
	if err := checkRich(&n, c.Overrides); err != nil {
		return fail("%v", err)
	}
	if err := checkVariants(c); err != nil {
		return fail("%v", err)
	}
	n.Variants, n.HoldoutPercent = c.Variants, c.HoldoutPercent
	ct, err := content.Compile(n)
	if err != nil {
		return fail("%v", err)
	}
	n.Templated = ct.Templated()
	// What the providers check before the run: the notification, or for a
	// personal one each translation and variant as a user without
	// attributes gets it.
	samples := []pushd.Notification{n}
	if n.Personal() {
		if samples, err = ct.Samples(); err != nil {
			return fail("%v", err)
		}
		for _, v := range n.Variants {
			vc, err := content.Compile(pushd.WithVariant(n, v))
			if err != nil {
				return fail("campaign_variants (%s) %v", v.Name, err)
			}
			n.Templated = n.Templated || vc.Templated()
			vs, err := vc.Samples()
			if err != nil {
				return fail("campaign_variants (%s) %v", v.Name, err)
			}
			samples = append(samples, vs...)
		}
	}
	if n.CollapseID == "" {
		// Derived from the run, so a copy resent after a crash replaces the
		// first on the device instead of showing twice.
		n.CollapseID = fmt.Sprintf("pushd-%d-%d", c.ID, c.RunCount+1)
	}

	at := c.ScheduledAt
	if c.NextRunAt != nil {
		at = *c.NextRunAt
	}
	// until is when a deadline has passed for every user: at once, or for a
	// local-time campaign when the last zone (UTC−12) reaches it.
	until := func(t time.Time) time.Time {
		if c.LocalTime {
			return pushd.LocalEnd(t)
		}
		return t
	}
	// Each app's deadline: expires_at, else the app's default_expiry. The
	// occurrence is missed only when every app's deadline has passed.
	runs := make([]pushd.NewRun, len(picked))
	var window time.Duration
	for i, app := range picked {
		w := app.DefaultExpiry
		if c.ExpiresAt != nil {
			w = c.ExpiresAt.Sub(c.ScheduledAt)
		}
		window = max(window, w)
		if app.PushIDs != nil {
			if _, taken := n.Data[pushid.DataKey]; taken {
				return fail("data key %q is reserved: pushd puts each push's id there for the device API's open counts; rename the key", pushid.DataKey)
			}
			if bytes.Contains(n.Overrides.APNs, []byte(`"`+pushid.DataKey+`"`)) || bytes.Contains(n.Overrides.FCM, []byte(`"`+pushid.DataKey+`"`)) {
				return fail("overrides name %q, which pushd reserves for each push's id (device API open counts); remove it", pushid.DataKey)
			}
		}
		for _, sample := range samples {
			if app.PushIDs != nil {
				// The longest id, so that the size check leaves it room.
				sample.Data = campaign.WithPushID(sample.Data, strings.Repeat("A", pushid.MaxLen))
			}
			sample.Expiration = at.Add(w)
			if sample.CollapseID == "" {
				sample.CollapseID = n.CollapseID
			}
			if _, err := app.Sender.Prepare(sample); err != nil {
				if len(picked) > 1 {
					return fail("for app '%s': %v", app.Name, err)
				}
				return fail("%v", err)
			}
		}
		body, err := json.Marshal(n)
		if err != nil {
			return fail("cannot store the notification: %v", err)
		}
		batch := app.BatchSize
		if c.BatchSize != nil {
			batch = *c.BatchSize
		}
		fc := app.Cap
		if c.IgnoreFrequencyCap {
			fc.Count = 0
		}
		runs[i] = pushd.NewRun{App: app.Name, ScheduledFor: at, Deadline: until(at.Add(w)), BatchSize: batch, Notification: body, UserData: n.Personal(),
			Audience: pushd.Audience{Segment: c.Segment, Exclude: c.ExcludeSegment}, Cap: fc}
		runs[i].Timing = pushd.Timing{Local: c.LocalTime, Start: at, End: at.Add(w), Late: late, Default: app.DefaultZone}
		if !c.IgnoreQuietHours {
			runs[i].Timing.Quiet = app.Quiet
		}
		if c.MaxPerMinute != nil {
			runs[i].MaxPerMinute = *c.MaxPerMinute
		}
	}
	deadline := at.Add(window)

	if !now.Before(until(deadline)) {
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
			if now.Before(until(next.Add(window))) || skipped >= missedLimit {
				break
			}
			skipped++
		}
		return pushd.Decision{Action: pushd.Expire, NextRunAt: &next,
			Reason: fmt.Sprintf("%d run(s) missed: %s; next run at %s", skipped, missed, next.Format(time.DateTime))}
	}

	return pushd.Decision{Action: pushd.Start, NextRunAt: following(sched, c, at), Runs: runs}
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
