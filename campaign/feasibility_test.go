package campaign

import (
	"testing"
	"time"
)

func TestFeasibility(t *testing.T) {
	got := Feasibility(250_000, 1000, 2*time.Hour)
	want := "at 1,000 per minute, 250,000 users take 4 h 10 min; the deadline allows 2 h, so about 130,000 will expire"
	if got != want {
		t.Errorf("got  %q\nwant %q", got, want)
	}
	if got := Feasibility(100_000, 1000, 2*time.Hour); got != "" {
		t.Errorf("a campaign that fits: %q", got)
	}
	if got := Feasibility(100_000, 0, time.Hour); got != "" {
		t.Errorf("no pace: %q", got)
	}
	app := NewApp("a", "", nil, AppOptions{RateLimit: 10})
	if p := PerMinute(0, app); p != 600 {
		t.Errorf("rate_limit 10/s = %v per minute, want 600", p)
	}
	if p := PerMinute(100, app); p != 100 {
		t.Errorf("max_per_minute 100 under rate_limit 600/min = %v, want 100", p)
	}
	if p := PerMinute(5000, app); p != 600 {
		t.Errorf("max_per_minute 5000 over rate_limit 600/min = %v, want 600", p)
	}
}
