package scheduler

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/pushd/pushd"
	"github.com/pushd/pushd/campaign"
	"github.com/pushd/pushd/internal/memstore"
	"github.com/pushd/pushd/providers"
)

var _ Store = (*memstore.Store)(nil)

// deliverSender is fakeSender that delivers every push after a second
// (virtual time) and counts the requests per token.
type deliverSender struct {
	fakeSender
	mu   sync.Mutex
	sent map[string]int
	// onRequest runs after request n (from 1) is counted.
	onRequest func(n int)
	n         int
}

func (d *deliverSender) Send(ctx context.Context, _ providers.Prepared, token string) (providers.Result, error) {
	d.mu.Lock()
	if d.sent == nil {
		d.sent = map[string]int{}
	}
	d.sent[token]++
	d.n++
	n, hook := d.n, d.onRequest
	d.mu.Unlock()
	if hook != nil {
		hook(n)
	}
	select {
	case <-time.After(time.Second):
		return providers.Result{Outcome: providers.Delivered, Status: 200}, nil
	case <-ctx.Done():
		return providers.Result{}, ctx.Err()
	}
}

func (d *deliverSender) SendAsync(ctx context.Context, p providers.Prepared, token string, done func(providers.Result, error)) {
	go func() { done(d.Send(ctx, p, token)) }()
}

func (d *deliverSender) requests() map[string]int {
	d.mu.Lock()
	defer d.mu.Unlock()
	out := map[string]int{}
	for k, v := range d.sent {
		out[k] = v
	}
	return out
}

// receive waits for a value from ch, failing the test when ctx ends first.
func receive[T any](t *testing.T, ctx context.Context, ch <-chan T, what string) T {
	t.Helper()
	select {
	case v := <-ch:
		return v
	case <-ctx.Done():
		t.Fatalf("no %s before the test's virtual deadline", what)
		panic("unreachable")
	}
}

// A recurring campaign runs each occurrence once across restarts: the
// scheduler is replaced after the first run, and the second is stopped
// halfway through its run; the next instance resumes that run rather than
// start another, and none is skipped or doubled.
// (Mutation caught: Plan not setting the next occurrence on Start.)
func TestSchedulerRecurringAcrossRestart(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		ctx, cancel := context.WithTimeout(t.Context(), 6*time.Hour)
		defer cancel()
		const users = 5
		st := memstore.New(nil)
		for id := int64(1); id <= users; id++ {
			st.AddUsers("MyApp", pushd.Recipient{UserID: id, Token: string(rune('a' + id))})
		}
		first := time.Now().Truncate(time.Hour).Add(time.Hour)
		expires := first.Add(10 * time.Minute)
		id := st.AddCampaign(pushd.Campaign{App: "MyApp", Title: "Daily", Body: "news", Cron: "0 * * * *",
			ScheduledAt: first, ExpiresAt: &expires})
		finished := make(chan int64, 10)
		st.OnCall(func(c memstore.Call) error {
			if c.Method == "FinishRun" {
				finished <- c.RunID
			}
			return nil
		})
		snd := &deliverSender{}
		midRun := make(chan struct{})
		snd.onRequest = func(n int) {
			if n == users+2 { // the second occurrence's second push
				close(midRun)
			}
		}
		apps := map[string]*campaign.App{"MyApp": campaign.NewApp("MyApp", pushd.APNs, snd, campaign.AppOptions{Concurrency: 1})}
		start := func(owner string) *Scheduler {
			s := New(st, apps, Options{Owner: owner, Lease: 30 * time.Second})
			s.Start(ctx)
			return s
		}

		s := start("one")
		receive(t, ctx, finished, "end of the first run")
		if err := s.Stop(ctx); err != nil {
			t.Fatal(err)
		}
		s = start("two")
		receive(t, ctx, midRun, "second run")
		if err := s.Stop(ctx); err != nil {
			t.Fatal(err)
		}
		s = start("three")
		receive(t, ctx, finished, "end of the second run")
		if err := s.Stop(ctx); err != nil {
			t.Fatal(err)
		}

		runs := st.Runs()
		if len(runs) != 2 {
			t.Fatalf("%d runs, want 2: %+v", len(runs), runs)
		}
		for i, r := range runs {
			at := first.Add(time.Duration(i) * time.Hour)
			if r.Occurrence != i+1 || !r.ScheduledFor.Equal(at) || !r.StartedAt.Equal(at) {
				t.Errorf("run %d: occurrence %d for %v started at %v, want occurrence %d at %v on the dot",
					r.ID, r.Occurrence, r.ScheduledFor, r.StartedAt, i+1, at)
			}
			if r.Status != pushd.Done || r.Counts.Sent != users || len(st.Outcomes(r.ID)) != users {
				t.Errorf("run %d: %s, %+v, %d outcomes; want done with %d sent", r.ID, r.Status, r.Counts, len(st.Outcomes(r.ID)), users)
			}
		}
		for tok, n := range snd.requests() {
			if n != 2 {
				t.Errorf("token %q: %d requests over two occurrences", tok, n)
			}
		}
		c := st.Campaign(id)
		if next := first.Add(2 * time.Hour); c.Status != pushd.Scheduled || c.RunCount != 2 || c.NextRunAt == nil || !c.NextRunAt.Equal(next) {
			t.Errorf("campaign %s, %d runs, next %v; want scheduled after 2 runs, next at %v", c.Status, c.RunCount, c.NextRunAt, next)
		}
	})
}

// Start and Stop come in any order and number, as River's services allow:
// Stop before Start, Stop twice and Start after Stop do not panic, and a
// stopped Scheduler stays stopped.
func TestSchedulerStartStopAnyOrder(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		ctx := t.Context()
		st := memstore.New(nil)
		polled := func() bool {
			synctest.Wait()
			for _, c := range st.Calls() {
				if c.Method == "DueCampaigns" {
					return true
				}
			}
			return false
		}

		s := New(st, nil, Options{Owner: "a"})
		for range 2 {
			if err := s.Stop(ctx); err != nil {
				t.Fatalf("Stop before Start: %v", err)
			}
		}
		s.Start(ctx)
		if polled() {
			t.Error("Start after Stop started the loop")
		}

		s = New(st, nil, Options{Owner: "b"})
		s.Start(ctx)
		s.Start(ctx)
		if !polled() {
			t.Error("Start did not start the loop")
		}
		for range 2 {
			if err := s.Stop(ctx); err != nil {
				t.Fatalf("Stop: %v", err)
			}
		}
		n := len(st.Calls())
		s.Start(ctx)
		synctest.Wait() // a loop would have polled at once
		if len(st.Calls()) != n {
			t.Error("Start after Stop restarted the loop")
		}
	})
}

// A campaign due in a week that can never run fails at the first pass,
// not when it falls due; a good one is left alone; a reload that removes
// its app fails the good one too, at the next pass.
// (Mutation caught: tick not calling checkUpcoming; SetApps not clearing
// the checked rows.)
func TestSchedulerChecksUpcomingRows(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		st := memstore.New(nil)
		app := campaign.NewApp("MyApp", pushd.APNs, fakeSender{}, campaign.AppOptions{})
		week := time.Now().Add(7 * 24 * time.Hour)
		good := st.AddCampaign(pushd.Campaign{App: "MyApp", Title: "t", Body: "b", ScheduledAt: week, Cron: "0 9 * * MON"})
		bad := st.AddCampaign(pushd.Campaign{App: "MyApp", Title: "t", Body: "b", ScheduledAt: week, Cron: "0 9 * * MONDAY"})
		s := New(st, map[string]*campaign.App{"MyApp": app}, Options{Owner: "a", Poll: time.Second})
		s.Start(t.Context())
		defer s.Stop(context.Background())
		time.Sleep(500 * time.Millisecond) // the first pass ran at once
		synctest.Wait()
		if c := st.Campaign(bad); c.Status != pushd.Failed || c.Reason == "" {
			t.Fatalf("a bad row due in a week is %s %q after the first pass, want failed", c.Status, c.Reason)
		}
		if c := st.Campaign(good); c.Status != pushd.Scheduled {
			t.Fatalf("a good upcoming row became %s %q", c.Status, c.Reason)
		}
		s.SetApps(map[string]*campaign.App{"Other": campaign.NewApp("Other", pushd.FCM, fakeSender{}, campaign.AppOptions{})})
		time.Sleep(time.Second)
		synctest.Wait()
		if c := st.Campaign(good); c.Status != pushd.Failed || c.Reason != "unknown app 'MyApp' (config has: Other)" {
			t.Fatalf("after its app was removed the row is %s %q, want failed as unknown", c.Status, c.Reason)
		}
	})
}

// A row whose pace cannot reach its audience before its deadline says so,
// in numbers, at the first pass, and stays scheduled; the estimate of its
// reach is on the row.
func TestSchedulerSaysWhenThePaceCannotMeetTheDeadline(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		st := memstore.New(nil)
		for id := int64(1); id <= 1000; id++ {
			st.AddUsers("MyApp", pushd.Recipient{UserID: id, Token: fmt.Sprint(id)})
		}
		app := campaign.NewApp("MyApp", pushd.APNs, fakeSender{}, campaign.AppOptions{})
		at := time.Now().Add(24 * time.Hour)
		end := at.Add(time.Hour)
		slow, fast := 10, 100
		tight := st.AddCampaign(pushd.Campaign{App: "MyApp", Title: "t", Body: "b", ScheduledAt: at, ExpiresAt: &end, MaxPerMinute: &slow})
		roomy := st.AddCampaign(pushd.Campaign{App: "MyApp", Title: "t", Body: "b", ScheduledAt: at, ExpiresAt: &end, MaxPerMinute: &fast})
		s := New(st, map[string]*campaign.App{"MyApp": app}, Options{Owner: "a", Poll: time.Second})
		s.Start(t.Context())
		defer s.Stop(context.Background())
		time.Sleep(500 * time.Millisecond)
		synctest.Wait()
		c := st.Campaign(tight)
		want := "at 10 per minute, 1,000 users take 1 h 40 min; the deadline allows 1 h, so about 400 will expire"
		if c.Status != pushd.Scheduled || c.Reason != want || c.Targeted != 1000 {
			t.Errorf("tight row: %s %q targeted %d\nwant scheduled with %q", c.Status, c.Reason, c.Targeted, want)
		}
		if c := st.Campaign(roomy); c.Status != pushd.Scheduled || c.Reason != "" {
			t.Errorf("roomy row: %s %q, want scheduled with no reason", c.Status, c.Reason)
		}
	})
}
