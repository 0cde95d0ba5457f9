// Package heartbeat tells the database, every few seconds, that this pushd
// process is alive, which runs it works on and how fast: what `pushd
// status` needs for a true rate and to notice a campaign nobody sends.
package heartbeat

import (
	"cmp"
	"context"
	"log/slog"
	"slices"
	"sync"
	"time"

	"github.com/pushd/pushd"
	"github.com/pushd/pushd/campaign"
)

// Store is where heartbeats go.
type Store interface {
	Heartbeat(ctx context.Context, inst pushd.Instance) error
	Forget(ctx context.Context, owner string) error
	// Instances lists the processes' rows; Live says the heartbeat is
	// younger than live.
	Instances(ctx context.Context, live time.Duration) ([]pushd.Instance, error)
}

// Source reports what this process has recorded per run, and learns how
// many live instances share each run and app; a scheduler.Scheduler is one.
type Source interface {
	Recorded() map[int64]campaign.Recorded
	SetShares(runs map[int64]int, apps map[string]int)
}

// Defaults of Options.
const (
	DefaultEvery  = 5 * time.Second
	DefaultWindow = 30 * time.Second
)

// Options tune a Beat. Zero values take the defaults.
type Options struct {
	// Every is the time between heartbeats (5 s). `pushd status` takes an
	// instance for dead after three missed ones.
	Every time.Duration
	// Window is how far back the pace of each run is measured (30 s).
	Window time.Duration
	Logger *slog.Logger
}

// sample is what a run had recorded at a time.
type sample struct {
	at time.Time
	campaign.Recorded
}

// Beat writes the heartbeats of one process. Start and Stop may be called
// in any order and more than once.
type Beat struct {
	st   Store
	src  Source
	self pushd.Instance
	o    Options
	log  *slog.Logger

	// samples per run, oldest first, no older than the window. Only the
	// loop touches it.
	samples map[int64][]sample

	mu     sync.Mutex
	cancel context.CancelFunc
	done   chan struct{}
}

// New returns a Beat for the process self (its Runs are filled in at each
// heartbeat).
func New(st Store, src Source, self pushd.Instance, o Options) *Beat {
	if o.Every <= 0 {
		o.Every = DefaultEvery
	}
	if o.Window <= 0 {
		o.Window = DefaultWindow
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	return &Beat{st: st, src: src, self: self, o: o, log: o.Logger.With("component", "heartbeat"), samples: map[int64][]sample{}}
}

// Start beats now and then every Options.Every until Stop.
func (b *Beat) Start(ctx context.Context) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.cancel != nil {
		return
	}
	ctx, cancel := context.WithCancel(ctx)
	b.cancel, b.done = cancel, make(chan struct{})
	go func() {
		defer close(b.done)
		t := time.NewTicker(b.o.Every)
		defer t.Stop()
		failing := false
		for {
			if err := b.beat(ctx, time.Now()); err != nil {
				if !failing && ctx.Err() == nil {
					b.log.Warn("cannot write the heartbeat; pushd status may show this instance as gone", "error", err)
				}
				failing = true
			} else {
				failing = false
			}
			select {
			case <-ctx.Done():
				return
			case <-t.C:
			}
		}
	}()
}

// Stop ends the heartbeats and removes this process's row, so that it is
// not shown as live until its heartbeat goes stale.
func (b *Beat) Stop(ctx context.Context) {
	b.mu.Lock()
	cancel, done := b.cancel, b.done
	b.cancel = nil
	b.mu.Unlock()
	if cancel == nil {
		return
	}
	cancel()
	<-done
	ctx, cancelForget := context.WithTimeout(ctx, 5*time.Second)
	defer cancelForget()
	if err := b.st.Forget(ctx, b.self.Owner); err != nil {
		b.log.Warn("cannot remove the heartbeat row", "error", err)
	}
}

// beat samples the runs and writes one heartbeat at now.
func (b *Beat) beat(ctx context.Context, now time.Time) error {
	in := b.self
	in.Runs = b.progress(now)
	if err := b.st.Heartbeat(ctx, in); err != nil {
		return err
	}
	return b.share(ctx)
}

// share counts the live instances on each run and each app, this one
// included, and tells the source. An instance that stops beating drops out
// after three missed heartbeats; one that joins counts from its first.
func (b *Beat) share(ctx context.Context) error {
	all, err := b.st.Instances(ctx, 3*b.o.Every)
	if err != nil {
		return err
	}
	runs, apps := map[int64]int{}, map[string]int{}
	for _, in := range all {
		if !in.Live {
			continue
		}
		seen := map[string]bool{}
		for _, r := range in.Runs {
			runs[r.RunID]++
			if r.App != "" && !seen[r.App] {
				seen[r.App] = true
				apps[r.App]++
			}
		}
	}
	b.src.SetShares(runs, apps)
	return nil
}

// progress takes a sample of every run and returns each one's pace over
// the window: zero until a run has two samples.
func (b *Beat) progress(now time.Time) []pushd.RunProgress {
	cur := b.src.Recorded()
	out := make([]pushd.RunProgress, 0, len(cur))
	for id, rec := range cur {
		s := append(b.samples[id], sample{at: now, Recorded: rec})
		for len(s) > 2 && now.Sub(s[1].at) >= b.o.Window {
			s = s[1:]
		}
		b.samples[id] = s
		p := pushd.RunProgress{RunID: id, App: rec.App}
		if d := now.Sub(s[0].at).Seconds(); d > 0 {
			p.Sent = float64(rec.Sent-s[0].Sent) / d
			p.Outcomes = float64(rec.Outcomes-s[0].Outcomes) / d
		}
		out = append(out, p)
	}
	for id := range b.samples {
		if _, ok := cur[id]; !ok {
			delete(b.samples, id)
		}
	}
	slices.SortFunc(out, func(a, b pushd.RunProgress) int { return cmp.Compare(a.RunID, b.RunID) })
	return out
}
