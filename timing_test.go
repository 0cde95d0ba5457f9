package pushd

import (
	"testing"
	"time"
)

func at(t *testing.T, s string) time.Time {
	t.Helper()
	v, err := time.Parse(time.RFC3339, s)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

// A 9:00–11:00 local campaign started at 23:00 UTC the day before: Tokyo
// (UTC+9) is due at 00:00 UTC, Paris (UTC+2 in June) at 07:00, New York
// at 13:00; users with no zone or an unknown one get the default
// (Paris), and share Paris's group.
func TestGroupsLocalTime(t *testing.T) {
	paris := mustZone(t, "Europe/Paris")
	tm := Timing{Local: true, Start: time.Date(2026, 6, 1, 9, 0, 0, 0, time.UTC), End: time.Date(2026, 6, 1, 11, 0, 0, 0, time.UTC),
		Late: LateSkip, Default: paris}
	now := at(t, "2026-05-31T23:00:00Z")
	groups, invalid := tm.Groups([]string{"Asia/Tokyo", "America/New_York", "", "Europe/Paris", "Mars/Olympus"}, now, time.LoadLocation)
	if len(invalid) != 1 || invalid[0] != "Mars/Olympus" {
		t.Errorf("invalid %v, want Mars/Olympus", invalid)
	}
	want := []struct {
		send, deadline string
		zones          int
	}{
		{"2026-06-01T00:00:00Z", "2026-06-01T02:00:00Z", 1},
		{"2026-06-01T07:00:00Z", "2026-06-01T09:00:00Z", 3},
		{"2026-06-01T13:00:00Z", "2026-06-01T15:00:00Z", 1},
	}
	if len(groups) != len(want) {
		t.Fatalf("groups %+v, want %d", groups, len(want))
	}
	for i, w := range want {
		g := groups[i]
		if g.SendAt.UTC().Format(time.RFC3339) != w.send || g.Deadline.UTC().Format(time.RFC3339) != w.deadline || len(g.Zones) != w.zones || g.Outcome != "" {
			t.Errorf("group %d: %s–%s %v %q, want %s–%s with %d zones", i, g.SendAt.UTC().Format(time.RFC3339), g.Deadline.UTC().Format(time.RFC3339), g.Zones, g.Outcome, w.send, w.deadline, w.zones)
		}
	}
}

// Started at 07:30 UTC: Tokyo's 9:00 was 7.5 h ago, Paris's 9:00 half an
// hour ago, New York's is to come. Each late policy treats them its way.
func TestGroupsLatePolicies(t *testing.T) {
	paris := mustZone(t, "Europe/Paris")
	now := at(t, "2026-06-01T07:30:00Z")
	zones := []string{"Asia/Tokyo", "Europe/Paris", "America/New_York"}
	for _, c := range []struct {
		policy LatePolicy
		end    time.Time
		want   map[string]string // zone → send time or outcome
	}{
		{LateSkip, time.Date(2026, 6, 1, 18, 0, 0, 0, time.UTC), map[string]string{
			"Asia/Tokyo": "skipped", "Europe/Paris": "2026-06-01T07:30:00Z", "America/New_York": "2026-06-01T13:00:00Z"}},
		{LateSend, time.Date(2026, 6, 1, 18, 0, 0, 0, time.UTC), map[string]string{
			"Asia/Tokyo": "2026-06-01T07:30:00Z", "Europe/Paris": "2026-06-01T07:30:00Z", "America/New_York": "2026-06-01T13:00:00Z"}},
		// Tokyo's deadline (11:00 local = 02:00 UTC) has passed: expired.
		{LateSend, time.Date(2026, 6, 1, 11, 0, 0, 0, time.UTC), map[string]string{
			"Asia/Tokyo": "expired", "Europe/Paris": "2026-06-01T07:30:00Z", "America/New_York": "2026-06-01T13:00:00Z"}},
		// next_day within a deadline two days later; and without it.
		{LateNextDay, time.Date(2026, 6, 3, 9, 0, 0, 0, time.UTC), map[string]string{
			"Asia/Tokyo": "2026-06-02T00:00:00Z", "Europe/Paris": "2026-06-02T07:00:00Z", "America/New_York": "2026-06-01T13:00:00Z"}},
		{LateNextDay, time.Date(2026, 6, 1, 18, 0, 0, 0, time.UTC), map[string]string{
			"Asia/Tokyo": "expired", "Europe/Paris": "expired", "America/New_York": "2026-06-01T13:00:00Z"}},
	} {
		tm := Timing{Local: true, Start: time.Date(2026, 6, 1, 9, 0, 0, 0, time.UTC), End: c.end, Late: c.policy, Default: paris}
		groups, _ := tm.Groups(zones, now, time.LoadLocation)
		got := map[string]string{}
		for _, g := range groups {
			v := g.SendAt.UTC().Format(time.RFC3339)
			if g.Outcome != "" {
				v = string(g.Outcome)
			}
			for _, z := range g.Zones {
				got[z] = v
			}
		}
		for z, w := range c.want {
			if got[z] != w {
				t.Errorf("%s until %s: %s gets %s, want %s", c.policy, c.end.Format(time.DateTime), z, got[z], w)
			}
		}
	}
}

// Quiet hours 21:00–08:00 hold a push due at 22:30 Paris time until 08:00
// the next morning, across the night of the change to summer time; a
// deadline before the window ends expires the group.
func TestGroupsQuietHours(t *testing.T) {
	paris := mustZone(t, "Europe/Paris")
	q, err := ParseQuietHours("21:00-08:00")
	if err != nil {
		t.Fatal(err)
	}
	// 2026-03-28 22:30 CET = 21:30 UTC; 08:00 CEST on the 29th = 06:00 UTC.
	tm := Timing{Start: at(t, "2026-03-28T21:30:00Z"), End: at(t, "2026-03-29T12:00:00Z"), Default: paris, Quiet: q}
	groups, _ := tm.Groups([]string{"Europe/Paris", "Asia/Tokyo"}, at(t, "2026-03-28T21:30:00Z"), time.LoadLocation)
	got := map[string]Group{}
	for _, g := range groups {
		for _, z := range g.Zones {
			got[z] = g
		}
	}
	if g := got["Europe/Paris"]; g.Outcome != "" || !g.SendAt.Equal(at(t, "2026-03-29T06:00:00Z")) {
		t.Errorf("Paris: %v %q, want held until 06:00 UTC", g.SendAt.UTC(), g.Outcome)
	}
	// 06:30 in Tokyo: quiet until 08:00 JST = 23:00 UTC.
	if g := got["Asia/Tokyo"]; g.Outcome != "" || !g.SendAt.Equal(at(t, "2026-03-28T23:00:00Z")) {
		t.Errorf("Tokyo: %v %q, want held until 23:00 UTC", g.SendAt.UTC(), g.Outcome)
	}
	tm.End = at(t, "2026-03-29T05:00:00Z")
	groups, _ = tm.Groups([]string{"Europe/Paris"}, at(t, "2026-03-28T21:30:00Z"), time.LoadLocation)
	if len(groups) != 1 || groups[0].Outcome != ExpiredSend || groups[0].Reason != "quiet hours until deadline" {
		t.Errorf("deadline inside the window: %+v, want expired, quiet hours until deadline", groups)
	}
	// Outside the window nothing moves.
	if _, in := q.Until(at(t, "2026-06-01T10:00:00Z"), paris); in {
		t.Error("12:00 Paris time is not quiet")
	}
	day, _ := ParseQuietHours("12:00-14:00")
	if end, in := day.Until(at(t, "2026-06-01T10:30:00Z"), paris); !in || !end.Equal(at(t, "2026-06-01T12:00:00Z")) {
		t.Errorf("12:30 in a 12:00-14:00 window: until %v %v", end, in)
	}
	for _, bad := range []string{"21-08", "21:00", "25:00-08:00", "21:00-08:0", "08:00-08:00"} {
		if _, err := ParseQuietHours(bad); err == nil {
			t.Errorf("ParseQuietHours(%q) accepted", bad)
		}
	}
}
