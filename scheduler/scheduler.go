package scheduler

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pushd/pushd"
	"github.com/pushd/pushd/campaign"
)

// Store is the part of the store the scheduler and its runners use.
type Store interface {
	campaign.Store
	DueCampaigns(ctx context.Context, until time.Time, limit int) ([]pushd.Due, error)
	UpcomingCampaigns(ctx context.Context, after time.Time, limit int) ([]*pushd.Campaign, error)
	Decide(ctx context.Context, id int64, now time.Time, decide func(*pushd.Campaign) pushd.Decision) (pushd.Decision, []int64, error)
	ActiveRuns(ctx context.Context) ([]pushd.Run, error)
	// EstimateAudience counts who a scheduled campaign would reach and
	// writes it on the row; a segment that cannot be read is a
	// *pushd.SegmentError.
	EstimateAudience(ctx context.Context, c *pushd.Campaign) (int64, error)
	// NoteCampaign writes status_reason on a scheduled row before its
	// first run, without changing the row's version.
	NoteCampaign(ctx context.Context, c *pushd.Campaign, reason string) error
}

// Options tune a Scheduler.
type Options struct {
	// Owner names this instance in batch leases; unique per process.
	Owner string
	// Poll is how often the database is asked for due campaigns and runs
	// (1 s). Campaigns due between polls start on a timer, on the dot.
	Poll  time.Duration
	Lease time.Duration
	Clock func() time.Time
	// Logger receives scheduler and runner logs.
	Logger   *slog.Logger
	Observer Observer
	// OnTick is called after every pass with its error (nil when the
	// database answered) and the runs this instance works on: the daemon's
	// watchdog and health use it.
	OnTick func(err error, running int)
}

// Observer receives the runners' events and the start of each run.
type Observer interface {
	campaign.Observer
	// RunStarted is called when a run starts, with how late it started.
	RunStarted(app string, lag time.Duration)
}

// Scheduler starts due campaigns and keeps a runner on every running run.
type Scheduler struct {
	st   Store
	o    Options
	log  *slog.Logger
	apps atomic.Pointer[map[string]*campaign.App]
	// held is shared by all runners: no run's runner takes over a batch
	// that a runner of this process still works on.
	held *campaign.Held
	// runnerClock is Options.Clock as given: nil lets runners read the
	// real clock once per push for several checks.
	runnerClock func() time.Time

	// checked maps each upcoming campaign to the fingerprint of the row
	// that passed Plan's checks, so a row is checked once per version.
	// Only the loop touches it; recheck (set by SetApps) clears it.
	checked map[int64]string
	recheck atomic.Bool

	mu      sync.Mutex
	runners map[int64]*runner
	wg      sync.WaitGroup

	stopOnce sync.Once
	// life guards stopped and the fields Start sets, so that Start and
	// Stop may come in any order, concurrently or more than once.
	life     sync.Mutex
	stopped  bool
	cancel   context.CancelFunc // stops the loop; nil until Start
	hardStop context.CancelFunc // aborts in-flight sends; nil until Start
	loopDone chan struct{}
}

type runner struct {
	drain chan struct{}
	app   *campaign.App
	run   *campaign.Runner
}

// New returns a Scheduler for apps (keyed by config.ini section name).
func New(st Store, apps map[string]*campaign.App, o Options) *Scheduler {
	if o.Poll <= 0 {
		o.Poll = time.Second
	}
	runnerClock := o.Clock
	if o.Clock == nil {
		o.Clock = time.Now
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	s := &Scheduler{st: st, o: o, log: o.Logger.With("component", "scheduler"), runners: map[int64]*runner{},
		held: campaign.NewHeld(), runnerClock: runnerClock}
	s.apps.Store(&apps)
	return s
}

// SetApps replaces the apps, as on a config reload. Running runs keep the
// App they started with until their current batch ends; runs of an app that
// is gone are stopped with a reason.
func (s *Scheduler) SetApps(apps map[string]*campaign.App) {
	s.apps.Store(&apps)
	s.recheck.Store(true) // an app may have come or gone
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, r := range s.runners {
		if apps[r.app.Name] != r.app {
			r.stopOnce()
		}
	}
}

func (r *runner) stopOnce() {
	select {
	case <-r.drain:
	default:
		close(r.drain)
	}
}

// Apps returns the current apps.
func (s *Scheduler) Apps() map[string]*campaign.App { return *s.apps.Load() }

// Start runs the scheduler loop until Stop. It does nothing when the
// scheduler was started or stopped before: a stopped Scheduler stays
// stopped, and a new one takes its place to start again.
func (s *Scheduler) Start(ctx context.Context) {
	s.life.Lock()
	defer s.life.Unlock()
	if s.cancel != nil || s.stopped {
		return
	}
	loopCtx, cancel := context.WithCancel(ctx)
	hardCtx, hardStop := context.WithCancel(context.WithoutCancel(ctx))
	s.cancel, s.hardStop = cancel, hardStop
	s.loopDone = make(chan struct{})
	go func() {
		defer close(s.loopDone)
		s.loop(loopCtx, hardCtx)
	}()
}

// Stop stops claiming work, lets in-flight sends finish and their outcomes
// be recorded until ctx is done, then aborts what is left. Unfinished
// batches are released for another instance or the next start. Stop may be
// called more than once, and before Start, which it then prevents.
func (s *Scheduler) Stop(ctx context.Context) error {
	s.stopOnce.Do(func() {
		s.life.Lock()
		s.stopped = true
		cancel, loopDone := s.cancel, s.loopDone
		s.life.Unlock()
		if cancel != nil {
			cancel()
			<-loopDone
		}
		s.mu.Lock()
		for _, r := range s.runners {
			r.stopOnce()
		}
		s.mu.Unlock()
	})
	done := make(chan struct{})
	go func() { s.wg.Wait(); close(done) }()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		s.life.Lock()
		hardStop := s.hardStop
		s.life.Unlock()
		if hardStop != nil {
			hardStop()
		}
		<-done
		return ctx.Err()
	}
}

func (s *Scheduler) loop(ctx, hardCtx context.Context) {
	for {
		wake := s.Tick(ctx, hardCtx)
		t := time.NewTimer(max(wake.Sub(s.o.Clock()), time.Millisecond))
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-t.C:
		}
	}
}

// Tick does one pass: starts the campaigns due now and a runner for every
// running run without one. It returns when the next pass should happen,
// which is early when a campaign falls due before the next poll.
func (s *Scheduler) Tick(ctx, hardCtx context.Context) time.Time {
	now := s.o.Clock()
	wake := now.Add(s.o.Poll)
	err := s.tick(ctx, hardCtx, now, &wake)
	if err != nil && ctx.Err() == nil {
		s.log.Error("scheduler pass failed", "error", err)
	}
	if s.o.OnTick != nil {
		s.o.OnTick(err, len(s.Running()))
	}
	return wake
}

func (s *Scheduler) tick(ctx, hardCtx context.Context, now time.Time, wake *time.Time) error {
	apps := s.Apps()
	dues, err := s.st.DueCampaigns(ctx, now.Add(s.o.Poll), 100)
	if err != nil {
		return err
	}
	started := map[int64]bool{}
	for _, d := range dues {
		if d.At.After(now) {
			if d.At.Before(*wake) {
				*wake = d.At
			}
			continue
		}
		var app string
		dec, runIDs, err := s.st.Decide(ctx, d.CampaignID, s.o.Clock(), func(c *pushd.Campaign) pushd.Decision {
			app = c.App
			return Plan(c, apps, s.o.Clock())
		})
		if errors.Is(err, pushd.ErrNotDue) {
			continue
		}
		if err != nil {
			return err
		}
		log := s.log.With("campaign_id", d.CampaignID, "app", app)
		switch dec.Action {
		case pushd.Fail:
			log.Warn("campaign failed", "reason", dec.Reason)
		case pushd.Expire:
			log.Warn("campaign expired before it started", "reason", dec.Reason)
		case pushd.Start:
			for i, r := range dec.Runs {
				lag := s.o.Clock().Sub(r.ScheduledFor)
				log.Info("campaign started", "run_id", runIDs[i], "run_app", r.App, "deadline", r.Deadline, "lag", lag)
				started[runIDs[i]] = true
				if s.o.Observer != nil {
					s.o.Observer.RunStarted(r.App, lag)
				}
			}
		case pushd.Resume:
			log.Info("campaign resumed", "run_ids", runIDs)
		}
	}
	if err := s.checkUpcoming(ctx, apps, now); err != nil {
		return err
	}
	runs, err := s.st.ActiveRuns(ctx)
	if err != nil {
		return err
	}
	for _, r := range runs {
		s.ensureRunner(ctx, hardCtx, r, started[r.ID])
	}
	return nil
}

// upcomingLimit bounds the upcoming campaigns checked per pass: the
// soonest ones.
const upcomingLimit = 1000

// checkBudget bounds the wall time one pass spends checking new rows (each
// counts its audience, a second or more for millions of users); the rest
// are checked in the next passes.
const checkBudget = 500 * time.Millisecond

// checkUpcoming fails, within one pass of their arrival, the scheduled
// campaigns not due yet that can never run as written (an unknown app, a
// bad cron or data, impossible times), with Plan's reason. Staff fix the
// row and set it scheduled again; the new version is checked again.
func (s *Scheduler) checkUpcoming(ctx context.Context, apps map[string]*campaign.App, now time.Time) error {
	cs, err := s.st.UpcomingCampaigns(ctx, now.Add(s.o.Poll), upcomingLimit)
	if err != nil {
		return err
	}
	if s.recheck.Swap(false) {
		s.checked = nil
	}
	passed := make(map[int64]string, len(cs))
	started := time.Now()
	for i, c := range cs {
		fp := fingerprint(c)
		if s.checked[c.ID] == fp {
			passed[c.ID] = fp
			continue
		}
		if time.Since(started) > checkBudget {
			// Counting audiences takes time; the rest wait for the next
			// pass rather than delay campaigns falling due meanwhile.
			for _, c := range cs[i:] {
				if fp := fingerprint(c); s.checked[c.ID] == fp {
					passed[c.ID] = fp
				}
			}
			break
		}
		var segErr *pushd.SegmentError
		if Plan(c, apps, now).Action != pushd.Fail {
			// The segments, and the reach staff see before the start.
			n, err := s.st.EstimateAudience(ctx, c)
			if !errors.As(err, &segErr) {
				if err != nil {
					return err
				}
				if c.RunCount == 0 {
					if err := s.st.NoteCampaign(ctx, c, feasibility(c, apps, n)); err != nil {
						return err
					}
				}
				passed[c.ID] = fp
				continue
			}
		}
		// Decided again on the locked row: it may have changed since.
		dec, _, err := s.st.Decide(ctx, c.ID, s.o.Clock(), func(locked *pushd.Campaign) pushd.Decision {
			if d := Plan(locked, apps, s.o.Clock()); d.Action == pushd.Fail {
				return d
			}
			if segErr != nil && fingerprint(locked) == fp {
				return pushd.Decision{Action: pushd.Fail, Reason: segErr.Error()}
			}
			return pushd.Decision{Action: pushd.Skip}
		})
		if errors.Is(err, pushd.ErrNotDue) {
			continue
		}
		if err != nil {
			return err
		}
		if dec.Action == pushd.Fail {
			s.log.Warn("campaign failed when it arrived", "campaign_id", c.ID, "app", c.App, "reason", dec.Reason)
		}
	}
	s.checked = passed
	return nil
}

// feasibility is the arrival check's word on whether a campaign of n users
// can finish before its deadline at its pace: the campaign's
// max_per_minute or the apps' rate_limit, per app. Local-time campaigns are
// spread over the day and judged per send time when they start.
func feasibility(c *pushd.Campaign, apps map[string]*campaign.App, n int64) string {
	if c.LocalTime {
		return ""
	}
	var pace float64
	window := time.Duration(0)
	perMinute := 0
	if c.MaxPerMinute != nil {
		perMinute = *c.MaxPerMinute
	}
	for _, name := range c.Apps() {
		app := apps[name]
		p := campaign.PerMinute(perMinute, app)
		if p == 0 {
			return "" // one app is not limited: no estimate of the whole
		}
		pace += p
		w := app.DefaultExpiry
		if c.ExpiresAt != nil {
			w = c.ExpiresAt.Sub(c.ScheduledAt)
		}
		window = max(window, w)
	}
	return campaign.Feasibility(n, pace, window)
}

// fingerprint identifies a version of a campaign row.
func fingerprint(c *pushd.Campaign) string {
	deref := func(p any) any {
		switch v := p.(type) {
		case *int:
			if v != nil {
				return *v
			}
		case *time.Time:
			if v != nil {
				return v.UnixNano()
			}
		}
		return nil
	}
	return fmt.Sprint(c.App, "\x00", c.Segment, "\x00", c.ExcludeSegment, "\x00", c.IgnoreFrequencyCap,
		c.LocalTime, c.LatePolicy, "\x00", c.IgnoreQuietHours, deref(c.MaxPerMinute), c.Title, "\x00", c.Body, "\x00", c.Data, "\x00", deref(c.Badge), c.Sound, "\x00", c.CollapseID,
		c.ScheduledAt.UnixNano(), deref(c.ExpiresAt), deref(c.BatchSize), c.Cron, "\x00", deref(c.RepeatUntil),
		deref(c.NextRunAt), c.UpdatedAt.UnixNano())
}

func (s *Scheduler) ensureRunner(ctx, hardCtx context.Context, r pushd.Run, fresh bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.runners[r.ID]; ok || ctx.Err() != nil {
		return
	}
	// The apps as of now, under s.mu: a runner started on an app that a
	// reload has just replaced is drained by SetApps, which takes s.mu
	// after storing the new apps.
	app, ok := s.Apps()[r.App]
	if !ok {
		reason := "app '" + r.App + "' was removed from config.ini while the campaign was running; add it back, reload pushd and set status to 'scheduled' to resume"
		if err := s.st.FailRun(ctx, r.ID, reason, s.o.Clock()); err != nil {
			s.log.Error("cannot fail run of removed app", "run_id", r.ID, "error", err)
		}
		return
	}
	if !app.Hold() {
		return // retired and closed; the next pass uses its successor
	}
	run := campaign.NewRunner(r, app, s.st, campaign.Options{
		Owner: s.o.Owner, Held: s.held, Lease: s.o.Lease, Poll: s.o.Poll, CountAudience: fresh,
		Clock: s.runnerClock, Logger: s.o.Logger, Observer: s.o.Observer,
	})
	h := &runner{drain: make(chan struct{}), app: app, run: run}
	s.runners[r.ID] = h
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		defer app.Release()
		err := run.Run(hardCtx, h.drain)
		if err != nil && hardCtx.Err() == nil {
			s.log.Error("runner stopped", "run_id", r.ID, "campaign_id", r.CampaignID, "app", r.App, "error", err)
		}
		s.mu.Lock()
		delete(s.runners, r.ID)
		s.mu.Unlock()
	}()
}

// Recorded returns, for each run this instance works on, what its runner
// has recorded so far.
func (s *Scheduler) Recorded() map[int64]campaign.Recorded {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make(map[int64]campaign.Recorded, len(s.runners))
	for id, r := range s.runners {
		out[id] = r.run.Recorded()
	}
	return out
}

// SetShares tells each runner, and each app, how many live instances work
// on its run or send for the app (heartbeat reads them from
// pushd_instances), so that max_per_minute and rate_limit hold for all
// instances together.
func (s *Scheduler) SetShares(runs map[int64]int, apps map[string]int) {
	for name, app := range s.Apps() {
		app.SetShare(apps[name])
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	for id, r := range s.runners {
		r.run.SetShare(runs[id])
	}
}

// Running reports the ids of the runs this instance works on.
func (s *Scheduler) Running() []int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	ids := make([]int64, 0, len(s.runners))
	for id := range s.runners {
		ids = append(ids, id)
	}
	return ids
}
