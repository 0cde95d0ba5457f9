package pushd

import "time"

// Wall is a wall-clock date and time with no zone, as a local-time
// campaign's scheduled_at and expires_at are: "9:00" means 9:00 wherever
// each user is.
type Wall struct {
	Year           int
	Month          time.Month
	Day            int
	Hour, Min, Sec int
}

// WallOf reads the wall clock of t in its own location.
func WallOf(t time.Time) Wall {
	y, mo, d := t.Date()
	h, mi, s := t.Clock()
	return Wall{y, mo, d, h, mi, s}
}

// AddDays returns the same wall time days later.
func (w Wall) AddDays(days int) Wall {
	t := time.Date(w.Year, w.Month, w.Day+days, w.Hour, w.Min, w.Sec, 0, time.UTC)
	return WallOf(t)
}

// utc is the instant the wall time would be in UTC, for comparisons.
func (w Wall) utc() time.Time {
	return time.Date(w.Year, w.Month, w.Day, w.Hour, w.Min, w.Sec, 0, time.UTC)
}

// In returns the instant the wall time occurs in loc. A wall time that does
// not exist that day (the hour skipped when clocks go forward) moves to the
// first moment that exists after it, the transition; one that occurs twice
// (the hour repeated when clocks go back) is its first occurrence.
func (w Wall) In(loc *time.Location) time.Time {
	want := w.utc()
	p := time.Date(w.Year, w.Month, w.Day, w.Hour, w.Min, w.Sec, 0, loc)
	got := WallOf(p).utc()
	switch {
	case got.After(want):
		// In a gap, and p is past it: the gap ends where p's zone period
		// starts.
		start, _ := p.ZoneBounds()
		return start
	case got.Before(want):
		// In a gap, and p is before it: the gap ends where p's period ends.
		_, end := p.ZoneBounds()
		return end
	}
	// Exists. An earlier occurrence is in the previous zone period, with
	// that period's offset.
	start, _ := p.ZoneBounds()
	if start.IsZero() {
		return p
	}
	_, prevOffset := start.Add(-time.Nanosecond).In(loc).Zone()
	earlier := want.Add(-time.Duration(prevOffset) * time.Second)
	if earlier.Before(start) && WallOf(earlier.In(loc)).utc().Equal(want) {
		return earlier
	}
	return p
}

// Earliest and latest UTC offsets in use: a local-time run starts when
// UTC+14 reaches scheduled_at and ends when UTC−12 reaches expires_at.
const (
	EarliestOffset = 14 * time.Hour
	LatestOffset   = -12 * time.Hour
)
