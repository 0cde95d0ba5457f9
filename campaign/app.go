// Package campaign executes campaign runs: it claims batches of a run's
// audience, sends them through the app's provider, retries what may be
// retried, and records one outcome per user in the ledger.
package campaign

import (
	"context"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/time/rate"

	"github.com/pushd/pushd/providers"
)

// Sender is what a run needs from a provider client (providers/apns,
// providers/fcm).
type Sender interface {
	// Prepare renders a notification once per run; its error is a data
	// error fit for the campaign's status_reason.
	Prepare(n providers.Notification) (providers.Prepared, error)
	// ValidateToken rejects a token that cannot be sent to at all.
	ValidateToken(token string) error
	// Send delivers one push. A rejection is a Result; an error means no
	// answer was obtained.
	Send(ctx context.Context, p providers.Prepared, token string) (providers.Result, error)
}

// App is one config.ini app section as the runners use it: its provider
// client and its limits. All runs of the app share one App, so the limits
// hold across campaigns. It is safe for concurrent use.
type App struct {
	Name   string
	Kind   providers.Kind
	Sender Sender
	// BatchSize is the app default when a campaign has none.
	BatchSize int
	// DefaultExpiry is the deadline after the start when a campaign has no
	// expires_at.
	DefaultExpiry time.Duration
	// MaxAttempts bounds tries per push for retryable failures.
	MaxAttempts int

	slots   chan struct{}
	limiter *rate.Limiter // nil: unlimited
	// Until the provider has accepted one request with the current
	// credentials, requests go one at a time through probe: APNs allows a
	// single stream before a valid token, and a rejected key then costs one
	// request instead of a burst of Concurrency.
	probe  chan struct{}
	proven atomic.Bool
	// jobs hands a send to an idle worker goroutine. Reusing goroutines
	// keeps their grown stacks: a fresh goroutine per push spent 18% of
	// pushd's CPU growing its stack through the HTTP/2 code.
	jobs chan func()
	// workers counts the worker goroutines, busy those running a job,
	// and peak the most busy at once since the last reap; reaping says a
	// reap goroutine runs. idleAfter is workerIdle (shorter in tests).
	workers, busy, peak atomic.Int64
	reaping             atomic.Bool
	idleAfter           time.Duration

	mu          sync.Mutex
	credFailure string
	credFailAt  time.Time
}

// AppOptions are the limits of an App.
type AppOptions struct {
	BatchSize     int
	DefaultExpiry time.Duration
	MaxAttempts   int
	// Concurrency bounds requests in flight across all runs of the app.
	Concurrency int
	// RateLimit bounds pushes per second; 0 means unlimited.
	RateLimit float64
}

// NewApp returns an App. Zero limits take the documented defaults.
func NewApp(name string, kind providers.Kind, s Sender, o AppOptions) *App {
	if o.BatchSize <= 0 {
		o.BatchSize = 1000
	}
	if o.DefaultExpiry <= 0 {
		o.DefaultExpiry = 24 * time.Hour
	}
	if o.MaxAttempts <= 0 {
		o.MaxAttempts = 5
	}
	if o.Concurrency <= 0 {
		o.Concurrency = 1000
	}
	a := &App{Name: name, Kind: kind, Sender: s, BatchSize: o.BatchSize, DefaultExpiry: o.DefaultExpiry,
		MaxAttempts: o.MaxAttempts, slots: make(chan struct{}, o.Concurrency), probe: make(chan struct{}, 1), jobs: make(chan func()),
		idleAfter: workerIdle}
	if o.RateLimit > 0 {
		a.limiter = rate.NewLimiter(rate.Limit(o.RateLimit), max(1, int(o.RateLimit/10)))
	}
	return a
}

// credentialHold is how long a credential failure stops new runs of the app
// before one more attempt is allowed; a reload replaces the App anyway.
const credentialHold = time.Minute

// failCredentials records that the provider rejected the app's credentials.
func (a *App) failCredentials(reason string, now time.Time) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.credFailure, a.credFailAt = reason, now
	a.proven.Store(false)
}

// accepted records that the provider answered a request past
// authentication, so the credentials work.
func (a *App) accepted() { a.proven.Store(true) }

// CredentialFailure returns the reason of a recent credential failure, or "".
func (a *App) CredentialFailure(now time.Time) string {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.credFailure != "" && now.Sub(a.credFailAt) < credentialHold {
		return a.credFailure
	}
	return ""
}

// lease is an in-flight slot, possibly the probe slot too.
type lease struct{ probe bool }

// acquire takes an in-flight slot and, with a rate limit, a token. While
// the credentials are unproven it also takes the probe slot.
func (a *App) acquire(ctx context.Context) (lease, error) {
	var l lease
	if !a.proven.Load() {
		select {
		case a.probe <- struct{}{}:
		case <-ctx.Done():
			return l, ctx.Err()
		}
		if a.proven.Load() {
			<-a.probe // proven while we waited
		} else {
			l.probe = true
		}
	}
	if a.limiter != nil {
		if err := a.limiter.Wait(ctx); err != nil {
			a.release(l)
			return lease{}, err
		}
	}
	select {
	case a.slots <- struct{}{}:
		return l, nil
	case <-ctx.Done():
		if l.probe {
			<-a.probe
		}
		return lease{}, ctx.Err()
	}
}

func (a *App) release(l lease) {
	<-a.slots
	if l.probe {
		<-a.probe
	}
}

// workerIdle is how long an app's workers may sit unused before they exit,
// so an idle app holds no goroutines.
const workerIdle = 10 * time.Second

// run runs job on an idle worker, or on a new one when none is idle. The
// caller holds an in-flight slot, which bounds the busy workers.
func (a *App) run(job func()) {
	if b := a.busy.Add(1); b > a.peak.Load() {
		a.peak.Store(b) // racy, but only sizes the pool
	}
	select {
	case a.jobs <- job:
	default:
		a.workers.Add(1)
		go a.worker(job)
		if a.reaping.CompareAndSwap(false, true) {
			go a.reap(a.idleAfter)
		}
	}
}

// worker runs jobs until it is handed nil. It waits with a plain receive:
// a per-worker idle timer, reset after every push, cost more than the
// receive itself. reap retires the workers not needed instead.
func (a *App) worker(job func()) {
	defer a.workers.Add(-1)
	for job != nil {
		job()
		a.busy.Add(-1)
		job = <-a.jobs
	}
}

// reap retires, every period, the waiting workers beyond the most that
// were busy at once during it, and returns when no worker is left.
func (a *App) reap(period time.Duration) {
	t := time.NewTicker(period)
	defer t.Stop()
	for range t.C {
		excess := a.workers.Load() - a.peak.Swap(a.busy.Load())
		for ; excess > 0; excess-- {
			select {
			case a.jobs <- nil:
				continue
			default:
			}
			break
		}
		if a.workers.Load() == 0 {
			a.reaping.Store(false)
			// A worker started since the check has no reaper otherwise.
			if a.workers.Load() == 0 || !a.reaping.CompareAndSwap(false, true) {
				return
			}
		}
	}
}

// InFlight is the number of requests of the app now in flight.
func (a *App) InFlight() int { return len(a.slots) }
