package campaign_test

import (
	"testing"
	"testing/synctest"
	"time"

	"github.com/pushd/pushd"
	"github.com/pushd/pushd/campaign"
)

// A run split by local time waits for its send time: no request before
// it, every user after it. (Mutation caught: no wait in Run.)
func TestRunnerWaitsForItsSendTime(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		snd := &fakeSender{}
		f := newFixture(t, 30, 10, 24*time.Hour, snd, campaign.AppOptions{})
		sendAt := time.Now().Add(5 * time.Hour)
		f.run.ScheduledFor = sendAt
		f.work(t, "a", nil)
		reqs := snd.requests()
		if len(reqs) != 30 {
			t.Fatalf("%d requests, want 30", len(reqs))
		}
		for _, r := range reqs {
			if r.at.Before(sendAt) {
				t.Fatalf("request at %v, before the send time %v", r.at, sendAt)
			}
		}
		f.checkRun(t, pushd.Done, "")
	})
}

// Quiet hours hold the run until the window ends; a window that outlasts
// the deadline expires everyone, with the reason on the run.
func TestRunnerQuietHours(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		now := time.Now().UTC()
		// A window from an hour ago to two hours from now, whole minutes.
		from := now.Add(-time.Hour).Truncate(time.Minute)
		to := now.Add(2 * time.Hour).Truncate(time.Minute)
		day := func(t time.Time) time.Duration { return t.Sub(t.Truncate(24 * time.Hour)) }
		quiet := pushd.QuietHours{From: day(from), To: day(to)}

		snd := &fakeSender{}
		f := newFixture(t, 20, 5, 24*time.Hour, snd, campaign.AppOptions{})
		f.run.Zone, f.run.Quiet = time.UTC, quiet
		f.work(t, "a", nil)
		for _, r := range snd.requests() {
			if r.at.Before(to) {
				t.Fatalf("request at %v inside the quiet hours (until %v)", r.at, to)
			}
		}
		if n := len(snd.requests()); n != 20 {
			t.Errorf("%d requests after the window, want 20", n)
		}
		f.checkRun(t, pushd.Done, "")

		// Virtual time has moved past the window: the same again from now.
		now = time.Now().UTC()
		quiet = pushd.QuietHours{From: day(now.Add(-time.Hour).Truncate(time.Minute)), To: day(now.Add(2 * time.Hour).Truncate(time.Minute))}
		snd2 := &fakeSender{}
		g := newFixture(t, 20, 5, time.Hour, snd2, campaign.AppOptions{})
		g.run.Zone, g.run.Quiet = time.UTC, quiet
		g.work(t, "a", nil)
		if n := len(snd2.requests()); n != 0 {
			t.Errorf("%d requests although the quiet hours outlast the deadline", n)
		}
		g.checkRun(t, pushd.Expired, "quiet hours until the deadline")
	})
}

// max_per_minute spreads the pushes evenly: 60 a minute is one a second,
// and with two instances sharing the run each sends half as fast.
func TestRunnerPace(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		snd := &fakeSender{}
		f := newFixture(t, 61, 10, 24*time.Hour, snd, campaign.AppOptions{})
		f.run.MaxPerMinute = 60
		start := time.Now()
		f.work(t, "a", nil)
		reqs := snd.requests()
		if took := reqs[len(reqs)-1].at.Sub(start); took != time.Minute {
			t.Errorf("61 pushes at 60 a minute took %v, want 1m (the first at once)", took)
		}
		for i := 1; i < len(reqs); i++ {
			if gap := reqs[i].at.Sub(reqs[i-1].at); gap != time.Second {
				t.Fatalf("gap %v between pushes %d and %d, want 1s: not evenly spread", gap, i-1, i)
			}
		}

		snd2 := &fakeSender{}
		g := newFixture(t, 31, 10, 24*time.Hour, snd2, campaign.AppOptions{})
		g.run.MaxPerMinute = 60
		r := campaign.NewRunner(g.run, g.app, g.st, campaign.Options{Owner: "b", Lease: lease})
		r.SetShare(2)
		start = time.Now()
		if err := r.Run(t.Context(), nil); err != nil {
			t.Fatal(err)
		}
		reqs = snd2.requests()
		if took := reqs[len(reqs)-1].at.Sub(start); took != time.Minute {
			t.Errorf("31 pushes at half of 60 a minute took %v, want 1m", took)
		}
	})
}
