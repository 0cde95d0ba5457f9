package pushd

import (
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"
)

// LatePolicy says what a local-time run does with users whose local
// scheduled_at has passed when it starts (campaigns.late_policy).
type LatePolicy string

// Late policies.
const (
	// LateSkip records users more than an hour late as skipped and sends
	// to the others at once. The default.
	LateSkip LatePolicy = "skip"
	// LateSend sends to them at once, if their deadline allows.
	LateSend LatePolicy = "send"
	// LateNextDay sends at the same local time the next day, if their
	// deadline allows.
	LateNextDay LatePolicy = "next_day"
)

// LateSkipAfter is how late a user may be under LateSkip and still be sent.
const LateSkipAfter = time.Hour

// Skipped is the ledger outcome of users a run leaves out on purpose: their
// local time passed (late_policy skip).
const Skipped Outcome = "skipped"

// QuietHours is an app's quiet_hours window in each user's local time, such
// as 21:00-08:00. From == To is no window.
type QuietHours struct {
	From, To time.Duration // since local midnight
}

// IsZero reports whether there is no window.
func (q QuietHours) IsZero() bool { return q.From == q.To }

func (q QuietHours) String() string {
	f := func(d time.Duration) string { return fmt.Sprintf("%02d:%02d", int(d.Hours()), int(d.Minutes())%60) }
	return f(q.From) + "-" + f(q.To)
}

// ParseQuietHours reads HH:MM-HH:MM.
func ParseQuietHours(s string) (QuietHours, error) {
	from, to, ok := strings.Cut(strings.TrimSpace(s), "-")
	if !ok {
		return QuietHours{}, fmt.Errorf("must be HH:MM-HH:MM, such as 21:00-08:00")
	}
	parse := func(v string) (time.Duration, error) {
		h, m, ok := strings.Cut(strings.TrimSpace(v), ":")
		hh, err1 := strconv.Atoi(h)
		mm, err2 := strconv.Atoi(m)
		if !ok || err1 != nil || err2 != nil || hh < 0 || hh > 23 || mm < 0 || mm > 59 || len(m) != 2 {
			return 0, fmt.Errorf("must be HH:MM-HH:MM with hours 00 to 23, such as 21:00-08:00")
		}
		return time.Duration(hh)*time.Hour + time.Duration(mm)*time.Minute, nil
	}
	f, err := parse(from)
	if err != nil {
		return QuietHours{}, err
	}
	t, err := parse(to)
	if err != nil {
		return QuietHours{}, err
	}
	if f == t {
		return QuietHours{}, fmt.Errorf("starts and ends at %s: write the window, such as 21:00-08:00, or leave the key out", from)
	}
	return QuietHours{From: f, To: t}, nil
}

// Until reports whether at, in loc, is inside the window and, if so, when
// the window ends (the first moment after it, in loc's own rules).
func (q QuietHours) Until(at time.Time, loc *time.Location) (time.Time, bool) {
	if q.IsZero() {
		return time.Time{}, false
	}
	local := at.In(loc)
	w := WallOf(local)
	since := time.Duration(w.Hour)*time.Hour + time.Duration(w.Min)*time.Minute + time.Duration(w.Sec)*time.Second
	var endDay int // 0: the window ends today, 1: tomorrow
	switch {
	case q.From < q.To: // e.g. 12:00-14:00
		if since < q.From || since >= q.To {
			return time.Time{}, false
		}
	case since >= q.From: // e.g. 21:00-08:00, evening part
		endDay = 1
	case since < q.To: // morning part
	default:
		return time.Time{}, false
	}
	end := Wall{w.Year, w.Month, w.Day, int(q.To.Hours()), int(q.To.Minutes()) % 60, 0}.AddDays(endDay)
	return end.In(loc), true
}

// Timing is how a run's pushes are timed per user: at one instant for
// everyone, or at each user's local time, and around the app's quiet hours.
type Timing struct {
	// Local says scheduled_at and expires_at are wall-clock times in each
	// user's zone (campaigns.local_time).
	Local bool
	// Start and End are scheduled_at and expires_at: instants when not
	// Local, wall clocks (read from the DATETIME as written) when Local.
	Start, End time.Time
	Late       LatePolicy
	// Default is the zone of users with no valid timezone: the app's
	// default_timezone, else [Server] timezone.
	Default *time.Location
	// Quiet is the app's quiet_hours, zero when none applies (also when
	// the campaign sets ignore_quiet_hours).
	Quiet QuietHours
}

// Grouped reports whether the audience must be split by zone.
func (t Timing) Grouped() bool { return t.Local || !t.Quiet.IsZero() }

// Group is the users of a run's zones that share their send time and
// deadline. A group with Outcome set is recorded at the start with it and
// sent nothing.
type Group struct {
	SendAt, Deadline time.Time
	Outcome          Outcome // "", Skipped or ExpiredSend
	Reason           string
	// Zones are the users.timezone values in the group ("" for NULL and
	// for values that are no zone), and Zone the one the runner uses to
	// keep quiet hours: they share the local clock.
	Zones []string
	Zone  *time.Location
}

// Groups splits an audience whose users have the given timezone values
// into groups by send time, deadline and outcome, in send order. now is
// when the run starts; values LoadZone cannot read fall back to Default
// and are returned in invalid.
func (t Timing) Groups(zones []string, now time.Time, loadZone func(string) (*time.Location, error)) (groups []Group, invalid []string) {
	type key struct {
		send, deadline int64
		outcome        Outcome
	}
	byKey := map[key]*Group{}
	for _, z := range zones {
		loc := t.Default
		if z != "" {
			l, err := loadZone(z)
			if err != nil {
				invalid = append(invalid, z)
			} else {
				loc = l
			}
		}
		g := t.place(loc, now)
		k := key{g.SendAt.UnixNano(), g.Deadline.UnixNano(), g.Outcome}
		if have := byKey[k]; have != nil {
			have.Zones = append(have.Zones, z)
			continue
		}
		g.Zones = []string{z}
		byKey[k] = &g
	}
	for _, g := range byKey {
		groups = append(groups, *g)
	}
	slices.SortFunc(groups, func(a, b Group) int {
		if c := a.SendAt.Compare(b.SendAt); c != 0 {
			return c
		}
		if c := a.Deadline.Compare(b.Deadline); c != 0 {
			return c
		}
		return strings.Compare(string(a.Outcome), string(b.Outcome))
	})
	return groups, invalid
}

// place works out one zone's send time, deadline and outcome.
func (t Timing) place(loc *time.Location, now time.Time) Group {
	g := Group{Zone: loc, SendAt: t.Start, Deadline: t.End}
	if t.Local {
		start, end := WallOf(t.Start), WallOf(t.End)
		g.SendAt, g.Deadline = start.In(loc), end.In(loc)
		if late := now.Sub(g.SendAt); late > 0 {
			switch t.Late {
			case LateSend:
				g.SendAt = now
			case LateNextDay:
				g.SendAt = start.AddDays(1).In(loc)
			default:
				if late > LateSkipAfter {
					g.Outcome, g.Reason = Skipped, "local time passed"
					return g
				}
				g.SendAt = now
			}
		}
		if !g.SendAt.Before(g.Deadline) {
			g.Outcome, g.Reason = ExpiredSend, "local time passed"
			return g
		}
	} else if g.SendAt.Before(now) {
		g.SendAt = now
	}
	if end, quiet := t.Quiet.Until(g.SendAt, loc); quiet {
		if !end.Before(g.Deadline) {
			g.Outcome, g.Reason = ExpiredSend, "quiet hours until deadline"
			return g
		}
		g.SendAt = end
	}
	return g
}
