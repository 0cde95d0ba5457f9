package pushd

import (
	"testing"
	"time"
)

func mustZone(t *testing.T, name string) *time.Location {
	t.Helper()
	loc, err := time.LoadLocation(name)
	if err != nil {
		t.Fatal(err)
	}
	return loc
}

// The zone database's real rules: Paris and New York on their spring
// forward and fall back days, Lord Howe's half-hour shift, and zones
// without DST on both sides of UTC.
func TestWallIn(t *testing.T) {
	cases := []struct {
		zone string
		wall Wall
		want string // RFC 3339 in UTC
	}{
		{"Europe/Paris", Wall{2026, 6, 1, 9, 0, 0}, "2026-06-01T07:00:00Z"},
		// 2026-03-29 02:00 CET jumps to 03:00 CEST: 02:30 does not exist.
		{"Europe/Paris", Wall{2026, 3, 29, 2, 30, 0}, "2026-03-29T01:00:00Z"},
		{"Europe/Paris", Wall{2026, 3, 29, 3, 0, 0}, "2026-03-29T01:00:00Z"},
		{"Europe/Paris", Wall{2026, 3, 29, 1, 59, 0}, "2026-03-29T00:59:00Z"},
		// 2026-10-25 03:00 CEST falls back to 02:00 CET: 02:30 happens twice.
		{"Europe/Paris", Wall{2026, 10, 25, 2, 30, 0}, "2026-10-25T00:30:00Z"},
		{"Europe/Paris", Wall{2026, 10, 25, 3, 30, 0}, "2026-10-25T02:30:00Z"},
		// New York: 2026-03-08 02:00 EST jumps to 03:00 EDT; 2026-11-01
		// 02:00 EDT falls back to 01:00 EST.
		{"America/New_York", Wall{2026, 3, 8, 2, 15, 0}, "2026-03-08T07:00:00Z"},
		{"America/New_York", Wall{2026, 11, 1, 1, 30, 0}, "2026-11-01T05:30:00Z"},
		// Lord Howe moves by 30 minutes: 2026-10-04 02:00 +10:30 → 02:30 +11.
		{"Australia/Lord_Howe", Wall{2026, 10, 4, 2, 10, 0}, "2026-10-03T15:30:00Z"},
		{"Pacific/Kiritimati", Wall{2026, 6, 1, 9, 0, 0}, "2026-05-31T19:00:00Z"},
		{"Asia/Tokyo", Wall{2026, 6, 1, 9, 0, 0}, "2026-06-01T00:00:00Z"},
		{"Etc/GMT+12", Wall{2026, 6, 1, 9, 0, 0}, "2026-06-01T21:00:00Z"},
		{"UTC", Wall{2026, 6, 1, 9, 0, 0}, "2026-06-01T09:00:00Z"},
	}
	for _, c := range cases {
		got := c.wall.In(mustZone(t, c.zone)).UTC().Format(time.RFC3339)
		if got != c.want {
			t.Errorf("%+v in %s = %s, want %s", c.wall, c.zone, got, c.want)
		}
	}
}
