package campaign

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pushd/pushd"
	"github.com/pushd/pushd/providers"
)

// batchWork is one claimed batch being sent and recorded.
type batchWork struct {
	r *Runner
	b *pushd.Batch
	// Outcomes wait in out for the recorder, which put wakes once per
	// flushRows of them rather than once per push (a channel send per
	// answer cost a goroutine wake-up on the frame reader each time).
	outMu   sync.Mutex
	out     []outcome
	outDone bool          // every sender has finished
	outWake chan struct{} // capacity 1
	// exposed counts the recipients the send loop has taken on (only it
	// touches it), recordedN the outcomes the recorder has written (only
	// it does); what is left when the batch ends leaves the run's count.
	exposed, recordedN int
	// lost is set when another instance took the batch over: send nothing
	// more, record nothing more.
	lost atomic.Bool
	// leaseUntil is the local monotonic deadline (as time.Time with its
	// monotonic reading) until which the lease is surely ours. Sends wait
	// while it has passed and the recorder cannot renew it.
	leaseMu    sync.Mutex
	leaseUntil time.Time
}

type outcome struct {
	d   pushd.Delivery
	inv *pushd.Invalidation
}

// flushRows is how many outcomes make the recorder write at once, without
// waiting for FlushInterval.
const flushRows = 1000

// MaxUnrecorded is how many of a run's users may wait for the ledger
// beyond the app's concurrency: answered, being retried, or in flight
// beyond it. The send loops wait at concurrency + MaxUnrecorded users
// taken on and not yet recorded until a ledger write goes in, so that is
// the most a kill -9 can send twice, whatever the batch size and however
// slow the database. Three batches flushing every 1000 outcomes, and what
// arrives while their writes go in, stay below it while the database keeps
// up (at 3000, runs at full speed met it once or twice a run).
const MaxUnrecorded = 4 * flushRows

// put hands an outcome to the recorder. It never blocks for long, so it
// may run on a provider's frame reader.
func (w *batchWork) put(o outcome) {
	w.outMu.Lock()
	w.out = append(w.out, o)
	full := len(w.out) == flushRows
	w.outMu.Unlock()
	if full {
		w.wake()
	}
}

func (w *batchWork) wake() {
	select {
	case w.outWake <- struct{}{}:
	default:
	}
}

// finish tells the recorder that no outcome will follow.
func (w *batchWork) finish() {
	w.outMu.Lock()
	w.outDone = true
	w.outMu.Unlock()
	w.wake()
}

// take returns the outcomes put so far, leaving spare (emptied) to collect
// the next ones, and whether the senders have finished.
func (w *batchWork) take(spare []outcome) ([]outcome, bool) {
	w.outMu.Lock()
	defer w.outMu.Unlock()
	got := w.out
	w.out = spare[:0]
	return got, w.outDone
}

// leaseMargin is the part of the lease we never rely on: time for a renewal
// round trip and for clock rate differences.
func leaseMargin(lease time.Duration) time.Duration { return lease / 5 }

// work sends one batch and records its outcomes. Users left without an
// outcome (shutdown, pause, lost lease) stay unrecorded; the batch is then
// released so that whoever takes it sends to exactly them.
func (r *Runner) work(ctx context.Context, b *pushd.Batch) {
	w := &batchWork{r: r, b: b, out: make([]outcome, 0, min(len(b.Recipients), 2*flushRows)), outWake: make(chan struct{}, 1)}
	w.leaseUntil = time.Now().Add(r.o.Lease - leaseMargin(r.o.Lease))
	recorded := make(chan bool, 1)
	go func() { recorded <- w.record(ctx) }()

	sendCtx, cancel := context.WithDeadline(ctx, r.run.Deadline)
	defer cancel()
	var wg sync.WaitGroup
	for _, rc := range b.Recipients {
		if r.stopping() || w.lost.Load() {
			break
		}
		if r.exposed.Load() >= r.maxExposed && !r.waitExposed(sendCtx, w) {
			if !errors.Is(sendCtx.Err(), context.DeadlineExceeded) {
				break
			}
			r.expose(w)
			w.put(expiredOutcome(rc, 0))
			continue
		}
		r.expose(w)
		if err := r.app.Sender.ValidateToken(rc.Token); err != nil {
			w.put(outcome{
				d:   pushd.Delivery{UserID: rc.UserID, Variant: rc.Variant, Outcome: pushd.InvalidToken, Reason: "MalformedToken", Attempts: 0},
				inv: &pushd.Invalidation{UserID: rc.UserID, App: r.run.App, Token: rc.Token, Since: r.o.Clock(), Reason: "MalformedToken"},
			})
			continue
		}
		p := r.prepared
		if p == nil {
			var o *outcome
			if p, o = r.personal(&rc); o != nil {
				w.put(*o)
				continue
			}
		}
		l, now, err := w.acquire(sendCtx)
		if err != nil {
			if errors.Is(sendCtx.Err(), context.DeadlineExceeded) {
				w.put(expiredOutcome(rc, 0))
				continue
			}
			break
		}
		if !r.clock(now).Before(r.run.Deadline) {
			r.app.release(l)
			w.put(expiredOutcome(rc, 0))
			continue
		}
		// A drain may have come while we waited for the slot.
		if r.stopping() {
			r.app.release(l)
			break
		}
		wg.Add(1)
		w.send(sendCtx, p, rc, l, &wg, now)
	}
	wg.Wait()
	w.finish()
	<-recorded
	// Users taken on and never recorded (stop, lost lease) are the next
	// owner's now.
	r.unexpose(w.exposed - w.recordedN)
}

func expiredOutcome(rc pushd.Recipient, attempts int) outcome {
	return outcome{d: pushd.Delivery{UserID: rc.UserID, Variant: rc.Variant, Outcome: pushd.ExpiredSend, Reason: "deadline reached", Attempts: attempts}}
}

// errLeaseWait means waiting for the lease ended without it: the batch was
// lost, the run stopped, or ctx ended.
var errLeaseWait = errors.New("stopped waiting for the lease")

// acquire takes an in-flight slot with the lease in hand, and returns the
// time it checked the lease at. The lease is checked after the slot, since
// acquire may wait; the one clock reading then also serves the deadline and
// the answer's latency. While the lease is in doubt the slot is given back,
// so that a batch waiting on the database holds none (it may be the probe
// slot other runs of the app need).
//
// While the app is held (see Hold), acquire waits for the hold to end
// without a slot; a hold that began while it waited for the slot makes it
// give the slot back and wait too.
func (w *batchWork) acquire(ctx context.Context) (lease, time.Time, error) {
	if w.r.pace != nil {
		// Before the slot: a push waiting for the campaign's pace holds
		// none that other campaigns of the app could use.
		if err := w.r.pace.Wait(ctx); err != nil {
			return lease{}, time.Time{}, err
		}
	}
	for {
		// The load first: no clock reading per push while nothing is held.
		if w.r.app.holding.Load() {
			if h, held := w.r.app.Held(time.Now()); held {
				if !w.waitHold(ctx, h.Until) {
					return lease{}, time.Time{}, errLeaseWait
				}
				continue
			}
		}
		l, err := w.r.app.acquire(ctx)
		if err != nil {
			return l, time.Time{}, err
		}
		if w.lost.Load() {
			// Taken over while we waited for the slot.
			w.r.app.release(l)
			return lease{}, time.Time{}, errLeaseWait
		}
		now := time.Now()
		if _, held := w.r.app.Held(now); held {
			w.r.app.release(l)
			continue
		}
		if w.leaseHeld(now) {
			return l, now, nil
		}
		w.r.app.release(l)
		if !w.waitLease(ctx) {
			return lease{}, time.Time{}, errLeaseWait
		}
	}
}

// waitHold waits until the app's hold ends at until, reporting false when
// the batch is lost, the run stops or ctx ends first. The recorder keeps
// renewing the lease meanwhile.
func (w *batchWork) waitHold(ctx context.Context, until time.Time) bool {
	for {
		if w.lost.Load() || w.r.stopping() {
			return false
		}
		left := time.Until(until)
		if left <= 0 {
			return true
		}
		t := time.NewTimer(min(left, time.Second)) // a drain ends the wait within a second
		select {
		case <-ctx.Done():
			t.Stop()
			return false
		case <-t.C:
		}
	}
}

// leaseHeld reports whether the lease is surely still ours at now.
func (w *batchWork) leaseHeld(now time.Time) bool {
	w.leaseMu.Lock()
	defer w.leaseMu.Unlock()
	return now.Before(w.leaseUntil)
}

// waitLease blocks while the lease may have run out, which happens only
// when the database cannot be written: then sending pauses rather than
// risk sending what a new owner sends too.
func (w *batchWork) waitLease(ctx context.Context) bool {
	for {
		if w.lost.Load() || w.r.stopping() {
			return false
		}
		if w.leaseHeld(time.Now()) {
			return true
		}
		select {
		case <-ctx.Done():
			return false
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// send makes the first try of a push, called holding an in-flight slot.
// No goroutine waits for the answer: answered handles it on the provider's
// frame reader, and only a push that must be tried again gets a goroutine,
// for its backoff and its further tries. wg is done when the push is.
func (w *batchWork) send(ctx context.Context, p providers.Prepared, rc pushd.Recipient, l lease, wg *sync.WaitGroup, start time.Time) {
	w.r.app.Sender.SendAsync(ctx, p, rc.Token, func(res providers.Result, err error) {
		attempts := 1
		retryAfter, again := w.answered(ctx, rc, l, &attempts, start, res, err)
		if !again {
			wg.Done()
			return
		}
		tried := attempts // a copy, so that attempts stays on the stack of every push
		go func() {
			defer wg.Done()
			w.retry(ctx, p, rc, tried, retryAfter)
		}()
	})
}

// retry tries a push again after a backoff, until it has an outcome or
// must be left for the next owner.
func (w *batchWork) retry(ctx context.Context, p providers.Prepared, rc pushd.Recipient, attempts int, retryAfter time.Duration) {
	r := w.r
	for {
		wait := backoff(attempts, retryAfter)
		if !r.o.Clock().Add(wait).Before(r.run.Deadline) {
			w.put(expiredOutcome(rc, attempts))
			return
		}
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			if errors.Is(ctx.Err(), context.DeadlineExceeded) {
				w.put(expiredOutcome(rc, attempts))
			}
			return
		case <-t.C:
		}
		l, start, err := w.acquire(ctx)
		if err != nil {
			if errors.Is(ctx.Err(), context.DeadlineExceeded) {
				w.put(expiredOutcome(rc, attempts))
			}
			return
		}
		if r.stopping() || w.lost.Load() {
			r.app.release(l)
			return
		}
		if !r.clock(start).Before(r.run.Deadline) {
			// The slot or a hold may have kept it past the deadline.
			r.app.release(l)
			w.put(expiredOutcome(rc, attempts))
			return
		}
		res, err := r.app.Sender.Send(ctx, p, rc.Token)
		attempts++
		var again bool
		if retryAfter, again = w.answered(ctx, rc, l, &attempts, start, res, err); !again {
			return
		}
	}
}

// answered handles the answer to try number *attempts of a push,
// releasing its in-flight slot: it records the outcome, or reports that the
// push is to be tried again, not before retryAfter. An answer that holds
// the app does not count as a try. It may run on the provider's frame
// reader, so it never blocks.
func (w *batchWork) answered(ctx context.Context, rc pushd.Recipient, l lease, attempts *int, start time.Time, res providers.Result, err error) (retryAfter time.Duration, again bool) {
	r := w.r
	var hold Hold
	if err == nil {
		switch res.Outcome {
		case providers.CredentialFailure, providers.AppThrottled:
			// Held before the slot is given back, so that the send waiting
			// for the probe slot finds the app held.
			var began bool
			if hold, began = r.app.holdFor(res.Reason, r.holdWords(res), res.RetryAfter, time.Now()); began {
				r.log.Warn("app held: no push of it is tried until the hold ends", "reason", hold.Reason,
					"until", hold.Until, "code", hold.Code)
			}
		default:
			r.app.accepted()
		}
	}
	r.app.release(l)
	last := true
	defer func() { r.o.Observer.Sent(r.app.Name, r.app.Kind, res, err, time.Since(start), last) }()
	switch {
	case errors.Is(err, providers.ErrExpired) || (err != nil && errors.Is(ctx.Err(), context.DeadlineExceeded)):
		w.put(expiredOutcome(rc, *attempts))
	case err != nil && ctx.Err() != nil:
		// Shutdown abort: unknown whether it arrived; left for the next owner.
		last = false
	case errors.Is(err, providers.ErrNotSent):
		// It never left (the provider or the network is down): not a
		// try. It waits and goes again until the deadline, which leaves
		// the user expired, never failed.
		*attempts--
		last = false
		r.retryLog.Do(func() { r.log.Info("pushes wait for a connection to the provider", "error", err) })
		return notSentWait, true
	case err != nil:
		if *attempts < r.app.MaxAttempts {
			last = false
			r.retryLog.Do(func() { r.log.Info("pushes are being retried: no answer from the provider", "error", err) })
			return 0, true
		}
		r.log.Warn("push failed: no answer from the provider", "user_id", rc.UserID, "attempts", *attempts, "error", err)
		w.put(outcome{d: pushd.Delivery{UserID: rc.UserID, Variant: rc.Variant, Outcome: pushd.FailedSend,
			Reason: transportReason(err) + fmt.Sprintf(" after %d tries", *attempts), Attempts: *attempts}})
	default:
		switch res.Outcome {
		case providers.Delivered:
			w.put(outcome{d: pushd.Delivery{UserID: rc.UserID, Variant: rc.Variant, Outcome: pushd.Sent, Attempts: *attempts, Locale: rc.Locale}})
		case providers.TokenInvalid:
			w.put(invalidOutcome(r.run.App, rc, res, *attempts, r.o.Clock()))
		case providers.CredentialFailure, providers.AppThrottled:
			// Not this user's fault: tried again once the hold is over.
			*attempts--
			last = false
			return time.Until(hold.Until), true
		case providers.Retryable:
			if *attempts < r.app.MaxAttempts {
				last = false
				r.retryLog.Do(func() {
					r.log.Info("pushes are being retried", "reason", reasonOf(res), "retry_after", res.RetryAfter)
				})
				return res.RetryAfter, true
			}
			w.put(outcome{d: pushd.Delivery{UserID: rc.UserID, Variant: rc.Variant, Outcome: pushd.FailedSend,
				Reason: fmt.Sprintf("%s after %d tries", reasonOf(res), *attempts), Attempts: *attempts}})
		default: // Rejected
			w.put(outcome{d: pushd.Delivery{UserID: rc.UserID, Variant: rc.Variant, Outcome: pushd.FailedSend, Reason: reasonOf(res), Attempts: *attempts}})
		}
	}
	return 0, false
}

// notSentWait is the least wait before a push that never left goes again;
// the transport has already waited for a connection up to the request
// timeout.
const notSentWait = time.Second

// invalidOutcome records a dead token. An APNs 410 says since when the
// token is invalid; a token registered again after that is not invalidated.
func invalidOutcome(app string, rc pushd.Recipient, res providers.Result, attempts int, now time.Time) outcome {
	since := res.InvalidSince
	if since.IsZero() {
		since = now
	}
	reason := reasonOf(res)
	if !res.InvalidSince.IsZero() && rc.RegisteredAt.After(res.InvalidSince) {
		return outcome{d: pushd.Delivery{UserID: rc.UserID, Variant: rc.Variant, Outcome: pushd.FailedSend,
			Reason: reason + " (token registered again since)", Attempts: attempts}}
	}
	return outcome{
		d:   pushd.Delivery{UserID: rc.UserID, Variant: rc.Variant, Outcome: pushd.InvalidToken, Reason: reason, Attempts: attempts},
		inv: &pushd.Invalidation{UserID: rc.UserID, App: app, Token: rc.Token, Since: since, Reason: reason},
	}
}

// transportReason is a short ledger reason for a send that got no answer;
// the full error goes to the log.
func transportReason(err error) string {
	var ne net.Error
	if errors.Is(err, context.DeadlineExceeded) || (errors.As(err, &ne) && ne.Timeout()) {
		return "Timeout"
	}
	return "NetworkError"
}

func reasonOf(res providers.Result) string {
	if res.Reason != "" {
		return res.Reason
	}
	return fmt.Sprintf("HTTP %d", res.Status)
}

// backoff is the wait before try attempts+1: exponential from 500 ms, capped
// at 30 s, with jitter so throttled senders do not retry in lockstep, and
// never shorter than the provider's Retry-After.
func backoff(attempts int, retryAfter time.Duration) time.Duration {
	d := 500 * time.Millisecond << min(max(attempts, 1)-1, 6)
	d = min(d, 30*time.Second)
	d = d/2 + rand.N(d/2+1)
	return max(d, retryAfter)
}

// record writes outcomes to the ledger within FlushInterval, renewing the
// lease as it goes. It returns when the senders have finished and
// everything it could record is recorded, reporting whether the batch is
// complete.
func (w *batchWork) record(ctx context.Context) bool {
	r := w.r
	// Outcomes must be written even while shutting down.
	dbCtx := context.WithoutCancel(ctx)
	ticker := time.NewTicker(r.o.FlushInterval)
	defer ticker.Stop()
	// f accumulates what the next flush records; its slices are reused
	// once a flush succeeds.
	f := pushd.Flush{RunID: r.run.ID, CampaignID: r.run.CampaignID, BatchID: w.b.ID, Epoch: w.b.Epoch, Lease: r.o.Lease,
		Tracked: r.run.Cap.Tracked(), Locales: r.content != nil && r.content.Translated()}
	var (
		recorded int
		renewed  = time.Now()
		failing  bool
	)
	total := len(w.b.Recipients)
	flush := func(final bool) bool {
		if w.lost.Load() {
			return true
		}
		f.Done = final && recorded+len(f.Deliveries) == total
		f.Now = r.o.Clock()
		// A failed attempt may have committed all the same.
		f.Recheck = failing
		start := time.Now()
		cctx, cancel := context.WithTimeout(dbCtx, 10*time.Second)
		err := r.store.Record(cctx, f)
		cancel()
		var staff *pushd.RunStopped
		if errors.As(err, &staff) {
			err = nil // written; staff paused or cancelled the campaign
		}
		r.o.Observer.Recorded(r.run.App, len(f.Deliveries), time.Since(start), err)
		switch {
		case err == nil:
			if staff != nil && !r.halt.Swap(true) {
				// The claim loop's next claim stops the run.
				r.log.Info("campaign "+string(staff.Status)+" by staff: no new sends", "batch_id", w.b.ID)
			}
			if failing {
				r.log.Info("recording outcomes again", "batch_id", w.b.ID)
				failing = false
			}
			recorded += len(f.Deliveries)
			w.recordedN = recorded
			r.unexpose(len(f.Deliveries))
			r.counted(f.Deliveries)
			f.Deliveries, f.Invalid = f.Deliveries[:0], f.Invalid[:0]
			renewed = start
			w.leaseMu.Lock()
			w.leaseUntil = start.Add(r.o.Lease - leaseMargin(r.o.Lease))
			w.leaseMu.Unlock()
			return true
		case errors.Is(err, pushd.ErrLeaseLost):
			r.log.Warn("batch taken over by another instance; dropping it", "batch_id", w.b.ID, "unrecorded", len(f.Deliveries))
			w.lost.Store(true)
			return true
		default:
			if !failing {
				r.log.Error("cannot record outcomes: sending paused until the database is back", "batch_id", w.b.ID, "error", err)
				failing = true
			}
			return false
		}
	}
	var spare []outcome
	for {
		tick := false
		select {
		case <-w.outWake:
		case <-ticker.C:
			tick = true
		}
		got, done := w.take(spare)
		for _, o := range got {
			f.Deliveries = append(f.Deliveries, o.d)
			if o.inv != nil {
				f.Invalid = append(f.Invalid, *o.inv)
			}
		}
		spare = got
		if done {
			// Every sender has finished: record the rest, retrying while
			// the database is away (the lease is fenced, so a late write
			// after a takeover is refused, never duplicated).
			for !flush(true) {
				if !r.sleep(ctx, nil, time.Second) {
					// Hard stop: what is unrecorded will be sent again by the
					// next owner; the collapse id keeps that harmless.
					return false
				}
			}
			complete := !w.lost.Load() && recorded == total
			if !complete && !w.lost.Load() {
				if err := r.store.ReleaseBatch(dbCtx, w.b.ID, w.b.Epoch); err != nil {
					r.log.Warn("cannot release batch; its lease will expire", "batch_id", w.b.ID, "error", err)
				}
			}
			return complete
		}
		if len(f.Deliveries) >= flushRows || (tick && (len(f.Deliveries) > 0 || time.Since(renewed) > r.o.Lease/3)) {
			flush(false)
		}
	}
}
