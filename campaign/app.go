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

	"github.com/pushd/pushd"
	"github.com/pushd/pushd/providers"
	"github.com/pushd/pushd/pushid"
)

// Sender is what a run needs from a provider client (providers/apns,
// providers/fcm).
type Sender interface {
	// Prepare renders a notification once per run; its error is a data
	// error fit for the campaign's status_reason.
	Prepare(n pushd.Notification) (providers.Prepared, error)
	// ValidateToken rejects a token that cannot be sent to at all.
	ValidateToken(token string) error
	// Send delivers one push. A rejection is a Result; an error means no
	// answer was obtained.
	Send(ctx context.Context, p providers.Prepared, token string) (providers.Result, error)
	// SendAsync is Send without waiting for the answer: done gets Send's
	// results exactly once, possibly on another goroutine, and must not
	// block.
	SendAsync(ctx context.Context, p providers.Prepared, token string, done func(providers.Result, error))
}

// ValueAdder is a Sender that can add one string value to a prepared
// notification's data cheaply (providers/apns): the push id of each user
// of a run that is otherwise the same for all.
type ValueAdder interface {
	WithValue(p providers.Prepared, key, value string) (providers.Prepared, error)
}

// App is one config.ini app section as the runners use it: its provider
// client and its limits. All runs of the app share one App, so the limits
// hold across campaigns. It is safe for concurrent use.
type App struct {
	Name   string
	Kind   pushd.PushType
	Sender Sender
	// BatchSize is the app default when a campaign has none.
	BatchSize int
	// DefaultExpiry is the deadline after the start when a campaign has no
	// expires_at.
	DefaultExpiry time.Duration
	// MaxAttempts bounds tries per push for retryable failures.
	MaxAttempts int
	// Cap is the app's frequency_cap; the zero value is none.
	Cap pushd.FrequencyCap
	// DefaultZone is the zone of users with no valid timezone (nil: UTC);
	// Quiet the app's quiet_hours.
	DefaultZone *time.Location
	Quiet       pushd.QuietHours
	// PushIDs signs the id every push carries under pushid.DataKey, for the
	// device API's opens; nil when the app does not use the device API.
	PushIDs *pushid.Signer

	slots     chan struct{}
	limiter   *rate.Limiter // nil: unlimited
	rateLimit float64       // the app's rate_limit across all instances
	// Until the provider has accepted one request with the current
	// credentials, requests go one at a time through probe: APNs allows a
	// single stream before a valid token, and a rejected key then costs one
	// request instead of a burst of Concurrency.
	probe  chan struct{}
	proven atomic.Bool

	// users counts the runners working with the App; once retired, the
	// last one to let go calls onIdle.
	usersMu sync.Mutex
	users   int
	retired bool
	onIdle  func()

	// holding is set from the first answer that holds the app until the
	// provider accepts a push again, so that the check before every push
	// takes neither the lock nor a clock reading while all is well.
	holding atomic.Bool
	holdMu  sync.Mutex
	hold    Hold
	// streak counts the holds since the last accepted push: each doubles
	// the wait.
	streak int
}

// Hold is an app that its provider refused as a whole: its credentials
// (APNs 403, a bad topic, an FCM project or key problem) or its right to
// send for a while (APNs TooManyProviderTokenUpdates). While it lasts no
// push of the app is tried, retried or counted as failed; when it ends one
// push probes the provider, and sending goes on if it is accepted.
type Hold struct {
	// Code is the provider's reason, e.g. "TooManyProviderTokenUpdates".
	Code string
	// Reason says what happened and what to do, in staff's words.
	Reason string
	// Since is when the app was first held in this episode; Until is when
	// the next probe may go.
	Since, Until time.Time
}

// Hold lengths: the first, doubling with each hold in a row, up to the
// last. A provider's Retry-After lengthens one.
const (
	holdFirst = time.Minute
	holdMax   = 30 * time.Minute
)

// AppOptions are the limits of an App.
type AppOptions struct {
	BatchSize     int
	DefaultExpiry time.Duration
	MaxAttempts   int
	// Concurrency bounds requests in flight across all runs of the app.
	Concurrency int
	// RateLimit bounds pushes per second; 0 means unlimited.
	RateLimit   float64
	Cap         pushd.FrequencyCap
	DefaultZone *time.Location
	Quiet       pushd.QuietHours
	PushIDs     *pushid.Signer
}

// NewApp returns an App. Zero limits take the documented defaults.
func NewApp(name string, kind pushd.PushType, s Sender, o AppOptions) *App {
	if o.BatchSize <= 0 {
		o.BatchSize = pushd.DefaultBatchSize
	}
	if o.DefaultExpiry <= 0 {
		o.DefaultExpiry = 24 * time.Hour
	}
	if o.MaxAttempts <= 0 {
		o.MaxAttempts = 5
	}
	if o.Concurrency <= 0 {
		o.Concurrency = pushd.DefaultConcurrency
	}
	if o.DefaultZone == nil {
		o.DefaultZone = time.UTC
	}
	a := &App{Name: name, Kind: kind, Sender: s, BatchSize: o.BatchSize, DefaultExpiry: o.DefaultExpiry,
		MaxAttempts: o.MaxAttempts, Cap: o.Cap, DefaultZone: o.DefaultZone, Quiet: o.Quiet, PushIDs: o.PushIDs, slots: make(chan struct{}, o.Concurrency), probe: make(chan struct{}, 1)}
	if o.RateLimit > 0 {
		a.rateLimit = o.RateLimit
		a.limiter = rate.NewLimiter(rate.Limit(o.RateLimit), max(1, int(o.RateLimit/10)))
	}
	return a
}

// Hold records that a runner starts working with the app, and reports
// false if the app was retired and has already let go of its client: the
// caller must then not use it. Every Hold that reports true needs a Release.
func (a *App) Hold() bool {
	a.usersMu.Lock()
	defer a.usersMu.Unlock()
	if a.retired && a.users == 0 {
		return false
	}
	a.users++
	return true
}

// Release undoes a Hold. On a retired app, the last Release calls the
// function given to Retire.
func (a *App) Release() {
	a.usersMu.Lock()
	a.users--
	idle := a.retired && a.users == 0
	a.usersMu.Unlock()
	if idle {
		a.onIdle()
	}
}

// Retire marks an app that a reload replaced or removed: onIdle (which
// closes its client) runs once no runner holds it, at once if none does.
// Retire is called at most once.
func (a *App) Retire(onIdle func()) {
	a.usersMu.Lock()
	a.retired, a.onIdle = true, onIdle
	idle := a.users == 0
	a.usersMu.Unlock()
	if idle {
		onIdle()
	}
}

// holdFor holds the app after an answer about the whole app at now, and
// reports the hold and whether this answer began it. Answers to pushes
// that were in flight when it began do not lengthen it.
func (a *App) holdFor(code, reason string, retryAfter time.Duration, now time.Time) (Hold, bool) {
	a.holdMu.Lock()
	defer a.holdMu.Unlock()
	if a.holding.Load() && now.Before(a.hold.Until) {
		return a.hold, false
	}
	since := a.hold.Since
	if !a.holding.Load() {
		since = now
	}
	a.streak++
	wait := max(min(holdFirst<<min(a.streak-1, 6), holdMax), retryAfter)
	a.hold = Hold{Code: code, Reason: reason, Since: since, Until: now.Add(wait)}
	// The next try after the hold goes alone, through the probe slot.
	a.proven.Store(false)
	a.holding.Store(true)
	return a.hold, true
}

// accepted records that the provider answered a request past
// authentication, so the credentials work and any hold is over.
func (a *App) accepted() {
	// Every answer lands here: loads keep the cache lines shared between
	// the frame readers and the senders, where a store would bounce them.
	if !a.proven.Load() {
		a.proven.Store(true)
	}
	if a.holding.Load() {
		a.holdMu.Lock()
		a.holding.Store(false)
		a.hold, a.streak = Hold{}, 0
		a.holdMu.Unlock()
	}
}

// Held returns the app's hold at now, if one is in force.
func (a *App) Held(now time.Time) (Hold, bool) {
	if !a.holding.Load() {
		return Hold{}, false
	}
	a.holdMu.Lock()
	defer a.holdMu.Unlock()
	if a.holding.Load() && now.Before(a.hold.Until) {
		return a.hold, true
	}
	return Hold{}, false
}

// Holding returns the hold of the current episode, from the first answer
// that held the app until the provider accepts a push again: unlike Held,
// also while the probe after a hold is out.
func (a *App) Holding() (Hold, bool) {
	if !a.holding.Load() {
		return Hold{}, false
	}
	a.holdMu.Lock()
	defer a.holdMu.Unlock()
	return a.hold, a.holding.Load()
}

// SetShare tells the app how many live instances send its pushes, so that
// together they keep its rate_limit: each takes its share.
func (a *App) SetShare(n int) {
	if a.limiter == nil {
		return
	}
	r := a.rateLimit / float64(max(n, 1))
	a.limiter.SetLimit(rate.Limit(r))
	a.limiter.SetBurst(max(1, int(r/10)))
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
			if l.probe {
				<-a.probe
			}
			return lease{}, err // no slot was taken
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

// InFlight is the number of requests of the app now in flight.
func (a *App) InFlight() int { return len(a.slots) }
