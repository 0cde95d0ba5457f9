// Package retention keeps the ledger from growing for ever: every hour, on
// one instance at a time, it deletes the per-user outcomes of the runs that
// finished longer ago than [Server] ledger_retention.
package retention

import (
	"context"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pushd/pushd"
)

// Store is what the purger needs of the database.
type Store interface {
	// TryLock runs fn holding the named lock, or reports false at once
	// when another instance holds it.
	TryLock(ctx context.Context, name string, fn func(context.Context) error) (bool, error)
	// PurgeLedger deletes the ledger and batch rows of runs finished
	// before before, chunk rows a statement, calling pause after each.
	PurgeLedger(ctx context.Context, before time.Time, chunk int, pause func(took time.Duration) bool) (pushd.Purged, error)
	// PurgeAudiences deletes what no run needs any more, whatever the
	// retention: the segment members of finished runs and frequency-cap
	// sends older than the longest window. It returns the rows deleted.
	PurgeAudiences(ctx context.Context, chunk int, pause func(took time.Duration) bool) (int64, error)
}

// lockName is the database lock that makes one instance purge at a time.
const lockName = "pushd_ledger_retention"

// Options tune a Purger. Zero values take the defaults.
type Options struct {
	// Retention is how long a finished run's ledger rows are kept; 0 keeps
	// them for ever (the Purger then does nothing).
	Retention time.Duration
	// Every is the time between passes (1 h). A pass also runs at Start.
	Every time.Duration
	// Chunk is the most rows one DELETE removes (5,000).
	Chunk  int
	Clock  func() time.Time
	Logger *slog.Logger
}

// Purger runs the retention passes. Start and Stop may be called in any
// order and more than once; it is safe for concurrent use.
type Purger struct {
	st        Store
	o         Options
	log       *slog.Logger
	retention atomic.Int64 // time.Duration; SetRetention changes it

	mu     sync.Mutex
	cancel context.CancelFunc
	done   chan struct{}
}

// New returns a Purger; nothing runs before Start.
func New(st Store, o Options) *Purger {
	if o.Every <= 0 {
		o.Every = time.Hour
	}
	if o.Chunk <= 0 {
		o.Chunk = 5000
	}
	if o.Clock == nil {
		o.Clock = time.Now
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	p := &Purger{st: st, o: o, log: o.Logger.With("component", "retention")}
	p.retention.Store(int64(o.Retention))
	return p
}

// SetRetention changes the retention from the next pass on, as on reload.
func (p *Purger) SetRetention(d time.Duration) { p.retention.Store(int64(d)) }

// Start runs a pass now and then every Options.Every until Stop or the end
// of ctx. A second Start while running does nothing.
func (p *Purger) Start(ctx context.Context) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.cancel != nil {
		return
	}
	ctx, cancel := context.WithCancel(ctx)
	p.cancel, p.done = cancel, make(chan struct{})
	go func() {
		defer close(p.done)
		p.loop(ctx)
	}()
}

// Stop ends the loop, interrupting a pass between two statements, and waits
// for it. Deleted rows stay deleted; the next pass goes on where it ended.
func (p *Purger) Stop() {
	p.mu.Lock()
	cancel, done := p.cancel, p.done
	p.cancel = nil
	p.mu.Unlock()
	if cancel == nil {
		return
	}
	cancel()
	<-done
}

func (p *Purger) loop(ctx context.Context) {
	t := time.NewTicker(p.o.Every)
	defer t.Stop()
	for {
		p.Pass(ctx)
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// Pass deletes what is due now, unless another instance is at it. It logs
// what it did; errors end the pass and are tried again at the next one.
func (p *Purger) Pass(ctx context.Context) {
	keep := time.Duration(p.retention.Load())
	before := p.o.Clock().Add(-keep)
	var (
		got     pushd.Purged
		members int64
	)
	ran, err := p.st.TryLock(ctx, lockName, func(ctx context.Context) error {
		pause := func(took time.Duration) bool {
			// As long again as the statement took: at most half of one
			// connection's time goes to deleting.
			t := time.NewTimer(took)
			defer t.Stop()
			select {
			case <-ctx.Done():
				return false
			case <-t.C:
				return true
			}
		}
		var err error
		if members, err = p.st.PurgeAudiences(ctx, p.o.Chunk, pause); err != nil {
			return err
		}
		if keep <= 0 {
			return nil
		}
		got, err = p.st.PurgeLedger(ctx, before, p.o.Chunk, pause)
		return err
	})
	if members > 0 {
		p.log.Info("deleted the segment members of finished runs and old frequency-cap sends", "rows", members)
	}
	switch {
	case err != nil && ctx.Err() == nil:
		p.log.Warn("ledger retention pass failed; trying again next hour", "error", err, "runs", got.Runs, "deliveries", got.Deliveries)
	case !ran:
		p.log.Debug("ledger retention: another instance is at it")
	case got.Runs > 0:
		p.log.Info("deleted the ledger rows of old runs", "runs", got.Runs, "deliveries", got.Deliveries,
			"batches", got.Batches, "finished_before", before)
	}
}
