package report

import (
	"bytes"
	"context"
	"errors"
	"math"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pushd/pushd"
)

// TestStatusEmpty is the first thing a new install shows.
func TestStatusEmpty(t *testing.T) {
	t.Parallel()
	var b bytes.Buffer
	berlin, err := time.LoadLocation("Europe/Berlin")
	if err != nil {
		t.Fatal(err)
	}
	Status(&b, StatusView{Database: "pushd", Loc: berlin, Now: time.Date(2026, 7, 1, 10, 0, 0, 0, time.UTC)})
	if want := "pushd campaigns in database pushd at 2026-07-01 12:00:00 CEST: no campaigns\n\npushd instances: none has run in the last day; is pushd started?\n"; b.String() != want {
		t.Errorf("empty status = %q, want %q", b.String(), want)
	}
}

// TestStatusWatch checks the redraw loop: ANSI clearing on a terminal
// only, a frame per interval, and a clean return when interrupted.
func TestStatusWatch(t *testing.T) {
	t.Parallel()
	for _, tty := range []bool{true, false} {
		ctx, cancel := context.WithCancel(context.Background())
		var (
			mu     sync.Mutex
			frames int
			out    bytes.Buffer
		)
		done := make(chan struct{})
		go func() {
			defer close(done)
			if err := Watch(ctx, &out, 5*time.Millisecond, tty, func(context.Context) []byte {
				mu.Lock()
				defer mu.Unlock()
				frames++
				if frames == 3 {
					cancel()
				}
				return []byte("frame\n")
			}); err != nil {
				t.Errorf("Watch = %v, want nil after an interrupt", err)
			}
		}()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			t.Fatal("Watch did not return after its context ended")
		}
		want := "frame\n\nframe\n"
		if tty {
			want = ansiClearScreen + "frame\n" + ansiClearScreen + "frame\n"
		}
		if out.String() != want {
			t.Errorf("tty=%v: watch wrote %q, want %q (the frame that saw the interrupt is dropped)", tty, out.String(), want)
		}
	}
}

// TestStatusWatchWriteError checks that a watch into a closed pipe ends.
func TestStatusWatchWriteError(t *testing.T) {
	t.Parallel()
	err := Watch(t.Context(), failingWriter{}, time.Millisecond, false, func(context.Context) []byte { return []byte("x\n") })
	if !errors.Is(err, errClosedPipe) {
		t.Errorf("Watch into a failing writer = %v, want its error", err)
	}
}

// TestStatusFormatting pins the small formatters the table relies on.
func TestStatusFormatting(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		got, want string
	}{
		{Num(0), "0"},
		{Num(999), "999"},
		{Num(1000), "1,000"},
		{Num(1234567), "1,234,567"},
		{Num(-1234), "-1,234"},
		{statusDuration(45 * time.Second), "45s"},
		{statusDuration(4*time.Minute + 5*time.Second), "4m05s"},
		{statusDuration(12*time.Minute + 59*time.Second), "12m"},
		{statusDuration(3*time.Hour + 5*time.Minute), "3h05m"},
		{statusDuration(51 * time.Hour), "2d03h"},
		{statusRateText(0), "0.0/s"},
		{statusRateText(9.94), "9.9/s"},
		{statusRateText(12345.6), "12,346/s"},
		{statusOneLine("a\nb\tc\x00d  e"), "a b c d e"},
		{statusTruncate("short", 10), "short"},
		{statusTruncate("one two three four five", 16), "one two three…"},
		{statusTruncate("abcdefghijklmnop", 8), "abcdefg…"},
		{statusTruncate("one two three four", 14), "one two three…"},
	} {
		if c.got != c.want {
			t.Errorf("got %q, want %q", c.got, c.want)
		}
	}
}

var errClosedPipe = errors.New("closed pipe")

type failingWriter struct{}

func (failingWriter) Write([]byte) (int, error) { return 0, errClosedPipe }

// A campaign of two apps shows a line per app under its own, with the
// apps' sums; CAPPED and SKIPPED appear only when some campaign has them;
// a scheduled campaign shows its estimated reach.
func TestStatusAppsCappedAndEstimate(t *testing.T) {
	now := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	run := &pushd.RunTiming{ID: 10, Occurrence: 1, Status: pushd.Running, StartedAt: now.Add(-time.Minute), Deadline: now.Add(time.Hour)}
	v := StatusView{Database: "pushd", Now: now, Counts: map[string]int{"running": 1, "scheduled": 1},
		Campaigns: []pushd.CampaignStatus{
			{ID: 2, App: "ShopiOS,ShopAndroid", Status: pushd.Running, Targeted: 300, Sent: 150, Capped: 20, Run: run, Runs: []int64{10, 11},
				Apps: []pushd.AppRun{
					{App: "ShopiOS", RunIDs: []int64{10}, Status: pushd.Running, Targeted: 200, Sent: 100, Capped: 20},
					{App: "ShopAndroid", RunIDs: []int64{11}, Status: pushd.Done, Targeted: 100, Sent: 50},
				}},
			{ID: 3, App: "ShopiOS", Status: pushd.Scheduled, Targeted: 12345, ScheduledAt: now.Add(time.Hour)},
		},
		Instances: []pushd.Instance{{Owner: "a#1", Live: true, Runs: []pushd.RunProgress{{RunID: 10, Sent: 7}, {RunID: 11, Sent: 3}}}},
	}
	var b strings.Builder
	Status(&b, v)
	out := b.String()
	for _, want := range []string{"CAPPED", "  ShopiOS", "  ShopAndroid", "100/200", "50/100", "~12,345", "10/s"} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
	if strings.Contains(out, "SKIPPED") {
		t.Errorf("SKIPPED shown with no skipped users:\n%s", out)
	}
}

func TestStatusLocales(t *testing.T) {
	t.Parallel()
	var b bytes.Buffer
	now := time.Date(2026, 7, 1, 10, 0, 0, 0, time.UTC)
	Status(&b, StatusView{Database: "pushd", Loc: time.UTC, Now: now, Campaigns: []pushd.CampaignStatus{
		{ID: 7, App: "A", Status: pushd.Done, Sent: 4300, ScheduledAt: now, Locales: map[string]int64{"": 3010, "fr": 1204, "de": 86}},
		{ID: 6, App: "A", Status: pushd.Done, Sent: 10, ScheduledAt: now},
	}})
	if want := "Sent per translation:\n  7: campaign text 3,010 · fr 1,204 · de 86\n"; !strings.Contains(b.String(), want) {
		t.Errorf("status lacks %q:\n%s", want, b.String())
	}
	if strings.Contains(b.String(), "  6:") {
		t.Errorf("a campaign without translations listed:\n%s", b.String())
	}
}

func TestStatusVariants(t *testing.T) {
	t.Parallel()
	// 600/5000 against 450/5000: pooled p = 0.105, se = sqrt(0.105 × 0.895 × 2/5000) = 0.006131, z = 0.03/se = 4.893.
	if z := TwoProportionZ(600, 5000, 450, 5000); math.Abs(z-4.893) > 0.001 {
		t.Errorf("z = %.3f, want 4.893", z)
	}
	var b bytes.Buffer
	now := time.Date(2026, 7, 1, 10, 0, 0, 0, time.UTC)
	Status(&b, StatusView{Database: "pushd", Loc: time.UTC, Now: now, Campaigns: []pushd.CampaignStatus{
		{ID: 9, App: "A", Status: pushd.Done, Sent: 10000, ScheduledAt: now, HeldOut: 1100,
			Variants: []pushd.VariantStat{{Name: "A", Sent: 5000, Opened: 450}, {Name: "B", Sent: 5000, Opened: 600}}},
		{ID: 8, App: "A", Status: pushd.Done, Sent: 200, ScheduledAt: now,
			Variants: []pushd.VariantStat{{Name: "A", Sent: 100, Opened: 10}, {Name: "B", Sent: 100, Opened: 12}}},
	}})
	for _, want := range []string{
		"9: A 5,000 sent, 450 opened (9.0%) · B 5,000 sent, 600 opened (12.0%) · held out 1,100",
		"B's open rate is higher than A's beyond chance (z = 4.89)",
		"B and A: the difference may be chance so far (z = 0.45, needs 1.96)",
	} {
		if !strings.Contains(b.String(), want) {
			t.Errorf("status lacks %q:\n%s", want, b.String())
		}
	}
}
