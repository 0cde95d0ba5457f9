package campaign

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unicode/utf8"

	"github.com/pushd/pushd"
	"github.com/pushd/pushd/content"
	"github.com/pushd/pushd/providers"
	"github.com/pushd/pushd/pushid"
	"golang.org/x/time/rate"
)

// Store is the part of the store a runner uses.
type Store interface {
	ClaimBatch(ctx context.Context, runID int64, owner string, held []int64, lease time.Duration, now time.Time) (*pushd.Batch, error)
	Record(ctx context.Context, f pushd.Flush) error
	ReleaseBatch(ctx context.Context, batchID, epoch int64) error
	FailRun(ctx context.Context, runID int64, reason string, now time.Time) error
	StopRun(ctx context.Context, runID int64, status pushd.Status, reason string, now time.Time) error
	SetRunReason(ctx context.Context, runID int64, reason string) error
	RunSummary(ctx context.Context, runID int64) (pushd.RunCounts, []pushd.ReasonCount, error)
	FinishRun(ctx context.Context, runID int64, status pushd.Status, reason string, now time.Time) (bool, error)
	ExpireRemaining(ctx context.Context, runID int64, owner string, lease time.Duration, now time.Time) (int64, error)
	CountAudience(ctx context.Context, r pushd.Run) (int64, error)
	SetTargeted(ctx context.Context, r pushd.Run, n int64) error
	// WaitingNote says on the row how many users of the run's campaign
	// still wait for their send time.
	WaitingNote(ctx context.Context, r pushd.Run, now time.Time) error
}

// Options tune a Runner. Zero values take the defaults.
type Options struct {
	// Owner names this instance in batch leases.
	Owner string
	// Held is the set of batches this process is working on, shared by all
	// its runners (nil: the runner's own). See store.ClaimBatch.
	Held *Held
	// Lease is how long a claimed batch stays ours without renewal (30 s).
	Lease time.Duration
	// Poll is the wait before claiming again while other instances hold the
	// run's remaining batches (1 s).
	Poll time.Duration
	// FlushInterval is the longest an outcome waits before it is recorded
	// (100 ms), which bounds the duplicates a hard kill can cause.
	FlushInterval time.Duration
	// Outstanding is how many batches one runner works on at once (3): one
	// finishing (its last answers and final record), one being sent, and
	// the next, already read, waiting for senders. With two, the senders
	// that the finishing batch freed sat idle while it recorded and the
	// next one was claimed. It also bounds the duplicates a kill -9 can
	// cause: at most the users of this many batches.
	Outstanding int
	// CountAudience makes the runner count the audience and store it as
	// targeted; only the instance that started the run does.
	CountAudience bool
	Clock         func() time.Time
	Logger        *slog.Logger
	// Observer is told about sends and database trouble (metrics, health).
	Observer Observer
}

// staffReason is the run's status_reason when staff stopped its campaign.
var staffReason = map[pushd.Status]string{
	pushd.Paused:    "paused by staff",
	pushd.Cancelled: "cancelled by staff",
}

// Observer receives events from runners. Implementations must be fast and
// safe for concurrent use.
type Observer interface {
	// Sent is called once per provider answer or send error. last says no
	// further try of the push follows: a retryable answer or an error is
	// then the push's failure.
	Sent(app string, kind pushd.PushType, res providers.Result, err error, took time.Duration, last bool)
	// Recorded is called after each ledger write with its duration.
	Recorded(app string, n int, took time.Duration, err error)
	// Capped is called with the users a claim left out under the app's
	// frequency cap.
	Capped(app string, n int)
	// LedgerWait is called when a run's sending starts to wait for the
	// ledger (MaxUnrecorded).
	LedgerWait(app string)
}

type nopObserver struct{}

func (nopObserver) Sent(string, pushd.PushType, providers.Result, error, time.Duration, bool) {}
func (nopObserver) Recorded(string, int, time.Duration, error)                                {}
func (nopObserver) Capped(string, int)                                                        {}
func (nopObserver) LedgerWait(string)                                                         {}

// Held is a set of batch ids, safe for concurrent use.
type Held struct {
	mu  sync.Mutex
	ids map[int64]struct{}
}

// NewHeld returns an empty set.
func NewHeld() *Held { return &Held{ids: make(map[int64]struct{})} }

func (h *Held) add(id int64) {
	h.mu.Lock()
	h.ids[id] = struct{}{}
	h.mu.Unlock()
}

func (h *Held) remove(id int64) {
	h.mu.Lock()
	delete(h.ids, id)
	h.mu.Unlock()
}

func (h *Held) list() []int64 {
	h.mu.Lock()
	defer h.mu.Unlock()
	ids := make([]int64, 0, len(h.ids))
	for id := range h.ids {
		ids = append(ids, id)
	}
	return ids
}

// Runner works on one run until it is finished, stopped, or drained.
type Runner struct {
	run   pushd.Run
	app   *App
	store Store
	o     Options
	log   *slog.Logger
	// realClock: o.Clock was left to default to time.Now.
	realClock bool

	// prepared is the run's notification, the same for every user; a
	// personal one is rendered from content per user instead.
	prepared providers.Prepared
	content  *content.Content
	// variants holds the content of each of the campaign's variants.
	variants map[string]*content.Content
	// base is the run's notification, which carries each user's push id
	// when the app uses the device API (prepared is then nil): added to
	// idBase by adder when the provider can, else prepared per user.
	base   pushd.Notification
	idBase providers.Prepared
	adder  ValueAdder
	// renderLog lets one line in 10 s tell why users fail to render.
	renderLog rate.Sometimes
	// expiring says why the claim loop ended the run as expired before its
	// deadline was reached; only Run's goroutine touches it.
	expiring string
	// pace keeps the campaign's max_per_minute, shared out among the
	// instances on the run (SetShare); nil without one.
	pace *rate.Limiter
	// stop is set when no new send may start: shutdown (drain).
	stop atomic.Bool
	// halt is set when a ledger write finds the campaign paused or
	// cancelled: the batches stop sending and give their other users
	// back, and the next claim stops the run. A claim that succeeds (staff
	// resumed meanwhile) clears it.
	halt atomic.Bool
	// sent and outcomes count what this runner recorded, for heartbeats.
	sent, outcomes atomic.Int64
	// retryLog lets one line in 10 s say that pushes are being retried.
	retryLog rate.Sometimes
	// exposed counts the users the send loops have taken on whose outcome
	// is not yet in the ledger: what a kill -9 now could send twice. The
	// loops wait while it is maxExposed (the app's concurrency +
	// MaxUnrecorded); exposedWake is closed and replaced when it falls.
	exposed     atomic.Int64
	maxExposed  int64
	exposedMu   sync.Mutex
	exposedWake chan struct{}
	ledgerLog   rate.Sometimes
}

// stopping reports whether no new send may start: shutdown, or staff
// stopping the campaign.
func (r *Runner) stopping() bool { return r.stop.Load() || r.halt.Load() }

// expose counts a recipient the send loop of w takes on.
func (r *Runner) expose(w *batchWork) {
	w.exposed++
	r.exposed.Add(1)
}

// unexpose takes n recipients off the count, once recorded or given up,
// and wakes the send loops waiting for it.
func (r *Runner) unexpose(n int) {
	if n == 0 {
		return
	}
	r.exposed.Add(-int64(n))
	r.exposedMu.Lock()
	close(r.exposedWake)
	r.exposedWake = make(chan struct{})
	r.exposedMu.Unlock()
}

// waitExposed waits while the run has maxExposed users taken on and not
// yet recorded, reporting false when w is lost, the run stops or ctx ends
// first.
func (r *Runner) waitExposed(ctx context.Context, w *batchWork) bool {
	r.o.Observer.LedgerWait(r.run.App)
	for {
		r.exposedMu.Lock()
		wake := r.exposedWake
		r.exposedMu.Unlock()
		if r.exposed.Load() < r.maxExposed {
			return true
		}
		if w.lost.Load() || r.stopping() {
			return false
		}
		r.ledgerLog.Do(func() {
			r.log.Info("sending waits for the ledger to catch up", "unrecorded", r.exposed.Load())
		})
		t := time.NewTimer(time.Second) // a drain ends the wait within a second
		select {
		case <-ctx.Done():
			t.Stop()
			return false
		case <-wake:
		case <-t.C:
		}
		t.Stop()
	}
}

// Recorded is how many outcomes a runner has recorded: sent pushes, and
// outcomes of every kind.
type Recorded struct {
	App            string
	Sent, Outcomes int64
}

// Recorded returns what the runner has recorded so far. It is safe for
// concurrent use.
func (r *Runner) Recorded() Recorded {
	return Recorded{App: r.run.App, Sent: r.sent.Load(), Outcomes: r.outcomes.Load()}
}

// capped counts users a claim left out under the frequency cap, recorded
// by the claim itself.
func (r *Runner) capped(n int) {
	r.outcomes.Add(int64(n))
	r.o.Observer.Capped(r.run.App, n)
}

// counted adds a flush's deliveries to the runner's counts.
func (r *Runner) counted(ds []pushd.Delivery) {
	var sent int64
	for _, d := range ds {
		if d.Outcome == pushd.Sent {
			sent++
		}
	}
	r.sent.Add(sent)
	r.outcomes.Add(int64(len(ds)))
}

// NewRunner returns a runner for run r of app.
func NewRunner(r pushd.Run, app *App, st Store, o Options) *Runner {
	if o.Lease <= 0 {
		o.Lease = 30 * time.Second
	}
	if o.Poll <= 0 {
		o.Poll = time.Second
	}
	if o.FlushInterval <= 0 {
		o.FlushInterval = 100 * time.Millisecond
	}
	if o.Outstanding <= 0 {
		o.Outstanding = 3
	}
	if o.Held == nil {
		o.Held = NewHeld()
	}
	realClock := o.Clock == nil
	if realClock {
		o.Clock = time.Now
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.Observer == nil {
		o.Observer = nopObserver{}
	}
	log := o.Logger.With("component", "campaign", "app", r.App, "campaign_id", r.CampaignID, "run_id", r.ID)
	run := &Runner{run: r, app: app, store: st, o: o, log: log, realClock: realClock,
		retryLog: rate.Sometimes{Interval: 10 * time.Second}, renderLog: rate.Sometimes{Interval: 10 * time.Second},
		ledgerLog: rate.Sometimes{Interval: 10 * time.Second}, exposedWake: make(chan struct{}),
		maxExposed: int64(cap(app.slots)) + MaxUnrecorded}
	if r.MaxPerMinute > 0 {
		// A burst of one: evenly spread, not a minute's worth at once.
		run.pace = rate.NewLimiter(rate.Limit(float64(r.MaxPerMinute)/60), 1)
	}
	return run
}

// personal renders and prepares the notification for one user of a run
// with templates or translations, and keeps the translation's locale in
// rc.Locale for the count per locale. A user it cannot send to gets an
// outcome instead: skipped by the template, or failed with the reason
// (pushd_deliveries.reason holds 64 characters; the log has the rest).
func (r *Runner) personal(rc *pushd.Recipient) (providers.Prepared, *outcome) {
	if r.idBase != nil {
		p, err := r.adder.WithValue(r.idBase, pushid.DataKey, r.app.PushIDs.ID(r.run.ID, rc.UserID))
		if err != nil {
			return nil, &outcome{d: pushd.Delivery{UserID: rc.UserID, Outcome: pushd.FailedSend, Reason: truncate(err.Error(), 64)}}
		}
		return p, nil
	}
	n := r.base
	var err error
	ct := r.content
	if r.base.HoldoutPercent > 0 || len(r.base.Variants) > 0 {
		name, held := pushd.Assign(r.run.CampaignID, rc.UserID, r.base.HoldoutPercent, r.base.Variants)
		rc.Variant = name
		if held {
			rc.Attributes = nil
			return nil, &outcome{d: pushd.Delivery{UserID: rc.UserID, Outcome: pushd.HeldOut, Reason: "holdout group"}}
		}
		if name != "" {
			ct = r.variants[name]
		}
	}
	if ct != nil {
		var locale string
		n, locale, err = ct.Render(content.User{ID: rc.UserID, Locale: rc.Locale, Attributes: rc.Attributes})
		rc.Locale, rc.Attributes = locale, nil
		if errors.Is(err, content.ErrSkipped) {
			return nil, &outcome{d: pushd.Delivery{UserID: rc.UserID, Outcome: pushd.Skipped, Reason: "template skip", Variant: rc.Variant}}
		}
	}
	var p providers.Prepared
	if err == nil {
		if r.app.PushIDs != nil {
			n.Data = WithPushID(n.Data, r.app.PushIDs.ID(r.run.ID, rc.UserID))
		}
		n.Expiration = r.run.Deadline
		p, err = r.app.Sender.Prepare(n)
	}
	if err != nil {
		r.renderLog.Do(func() {
			r.log.Warn("a user's notification cannot be sent as rendered", "user_id", rc.UserID, "error", err)
		})
		return nil, &outcome{d: pushd.Delivery{UserID: rc.UserID, Outcome: pushd.FailedSend, Reason: truncate(err.Error(), 64), Variant: rc.Variant}}
	}
	return p, nil
}

// WithPushID returns a copy of data with the push id under pushid.DataKey.
func WithPushID(data map[string]json.RawMessage, id string) map[string]json.RawMessage {
	out := make(map[string]json.RawMessage, len(data)+1)
	maps.Copy(out, data)
	out[pushid.DataKey] = json.RawMessage(`"` + id + `"`) // base64url: nothing to escape
	return out
}

// truncate cuts s to at most n bytes, on a character boundary.
func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n]
}

// SetShare tells the runner how many live instances work on its run, so
// that together they keep the campaign's max_per_minute.
func (r *Runner) SetShare(n int) {
	if r.pace == nil {
		return
	}
	r.pace.SetLimit(rate.Limit(float64(r.run.MaxPerMinute) / 60 / float64(max(n, 1))))
}

// clock is o.Clock, answered from now (a time.Now reading) when o.Clock is
// the real clock: the send loop reads the clock once per push.
func (r *Runner) clock(now time.Time) time.Time {
	if r.realClock {
		return now
	}
	return r.o.Clock()
}

// Run takes part in the run until it ends. Closing drain stops claiming and
// starting sends; requests already sent finish unless ctx is cancelled, and
// unfinished batches are released for another instance or a restart.
func (r *Runner) Run(ctx context.Context, drain <-chan struct{}) error {
	var n pushd.Notification
	if err := json.Unmarshal(r.run.Notification, &n); err != nil {
		return r.fail(ctx, fmt.Sprintf("pushd cannot read the run's notification snapshot: %v", err))
	}
	n.Expiration = r.run.Deadline
	r.base = n
	if n.Personal() {
		c, err := content.Compile(n)
		if err != nil {
			return r.fail(ctx, err.Error())
		}
		r.content = c
		for _, v := range n.Variants {
			vc, err := content.Compile(pushd.WithVariant(n, v))
			if err != nil {
				return r.fail(ctx, fmt.Sprintf("campaign_variants (%s) %v", v.Name, err))
			}
			if r.variants == nil {
				r.variants = map[string]*content.Content{}
			}
			r.variants[v.Name] = vc
		}
	} else {
		p, err := r.app.Sender.Prepare(n)
		if err != nil {
			return r.fail(ctx, err.Error())
		}
		switch adder, ok := r.app.Sender.(ValueAdder); {
		case r.app.PushIDs == nil:
			r.prepared = p
		case ok:
			// The same push for all but its id: added to p per user.
			r.idBase, r.adder = p, adder
		}
		// Otherwise prepared per user, id included (personal).
	}
	if r.o.CountAudience {
		go r.countAudience(ctx)
	}
	// A run split by local time or quiet hours waits for its send time,
	// and then tells the row how many of the campaign's users still wait.
	if wait := r.run.ScheduledFor.Sub(r.o.Clock()); wait > 0 {
		r.log.Debug("waiting for the run's send time", "at", r.run.ScheduledFor)
		if !r.sleep(ctx, drain, wait) {
			return nil
		}
	}
	if r.run.Zone != nil {
		if err := r.store.WaitingNote(ctx, r.run, r.o.Clock()); err != nil && ctx.Err() == nil {
			r.log.Warn("cannot write how many users still wait", "error", err)
		}
	}
	returned := make(chan struct{})
	defer close(returned)
	go func() {
		select {
		case <-drain:
			r.stop.Store(true)
		case <-ctx.Done():
		case <-returned:
		}
	}()
	go r.reportHolds(ctx, returned)

	stopped, err := r.claimLoop(ctx, drain)
	if err != nil {
		return err
	}
	switch stopped {
	case pushd.Expired:
		return r.expire(ctx, drain)
	case pushd.Done:
		return r.finish(ctx)
	}
	return nil
}

// claimLoop claims and works batches until the run stops (returning its
// status), drains (Done), or drain closes (""). It returns when its batches
// are finished.
func (r *Runner) claimLoop(ctx context.Context, drain <-chan struct{}) (pushd.Status, error) {
	slots := make(chan struct{}, r.o.Outstanding)
	var wg sync.WaitGroup
	defer wg.Wait()
	dbDown := false
	for {
		if r.run.Zone != nil {
			if end, quiet := r.run.Quiet.Until(r.o.Clock(), r.run.Zone); quiet {
				if !end.Before(r.run.Deadline) {
					wg.Wait()
					r.expiring = "quiet hours until the deadline"
					return pushd.Expired, nil
				}
				r.log.Info("quiet hours: holding the run", "until", end)
				if !r.sleep(ctx, drain, end.Sub(r.o.Clock())) {
					return "", nil
				}
			}
		}
		select {
		case <-drain:
			return "", nil
		case <-ctx.Done():
			return "", nil
		case slots <- struct{}{}:
		}
		if r.stop.Load() {
			<-slots
			return "", nil
		}
		halted := r.halt.Load()
		b, err := r.store.ClaimBatch(ctx, r.run.ID, r.o.Owner, r.o.Held.list(), r.o.Lease, r.o.Clock())
		if err == nil {
			if halted {
				// Staff resumed the campaign since a flush found it stopped.
				r.halt.Store(false)
			}
			if dbDown {
				r.log.Info("database reachable again, resuming")
				dbDown = false
			}
			if b.Capped > 0 {
				r.capped(b.Capped)
			}
			if b.ID == 0 {
				// Only capped users in the stretch, recorded by the claim.
				<-slots
				continue
			}
			r.o.Held.add(b.ID)
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer func() { <-slots }()
				defer r.o.Held.remove(b.ID)
				r.work(ctx, b)
			}()
			continue
		}
		<-slots
		var stopped *pushd.RunStopped
		switch {
		case errors.As(err, &stopped):
			wg.Wait()
			if stopped.ByStaff {
				if err := r.store.StopRun(ctx, r.run.ID, stopped.Status, staffReason[stopped.Status], r.o.Clock()); err != nil {
					return "", fmt.Errorf("stop run %d as %s: %w", r.run.ID, stopped.Status, err)
				}
				r.log.Info("run stopped by staff", "status", stopped.Status)
			}
			return stopped.Status, nil
		case errors.Is(err, pushd.ErrDrained):
			wg.Wait()
			return pushd.Done, nil
		case errors.Is(err, pushd.ErrNoWork):
			// Our own batches, or another instance's, are still open. Ours
			// end soon; another's end or their lease expires.
			ours := len(slots) > 0
			wg.Wait()
			if !ours && !r.sleep(ctx, drain, r.o.Poll) {
				return "", nil
			}
		case ctx.Err() != nil:
			return "", nil
		default:
			if !dbDown {
				r.log.Warn("cannot claim a batch, retrying", "error", err)
				dbDown = errors.Is(err, pushd.ErrUnavailable)
			}
			if !r.sleep(ctx, drain, r.o.Poll) {
				return "", nil
			}
		}
	}
}

// sleep waits d, reporting false when drain closes or ctx ends first. A nil
// drain never closes.
func (r *Runner) sleep(ctx context.Context, drain <-chan struct{}, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-drain:
	case <-ctx.Done():
	}
	return false
}

func (r *Runner) countAudience(ctx context.Context) {
	n, err := r.store.CountAudience(ctx, r.run)
	if err == nil {
		err = r.store.SetTargeted(ctx, r.run, n)
	}
	if err == nil {
		// Whether the pace lets the run finish before its deadline, said at
		// once rather than found out at the end.
		from := r.o.Clock()
		if r.run.ScheduledFor.After(from) {
			from = r.run.ScheduledFor
		}
		if words := Feasibility(n, PerMinute(r.run.MaxPerMinute, r.app), r.run.Deadline.Sub(from)); words != "" {
			r.log.Warn("the campaign cannot finish before its deadline at its pace", "detail", words)
			err = r.store.SetRunReason(ctx, r.run.ID, words)
		}
	}
	if err != nil && ctx.Err() == nil {
		r.log.Warn("cannot count the audience", "error", err)
	}
}

// expire records the users the deadline left unreached and ends the run.
func (r *Runner) expire(ctx context.Context, drain <-chan struct{}) error {
	for {
		_, err := r.store.ExpireRemaining(ctx, r.run.ID, r.o.Owner, r.o.Lease, r.o.Clock())
		var stopped *pushd.RunStopped
		switch {
		case err == nil:
			counts, _, err := r.store.RunSummary(ctx, r.run.ID)
			if err != nil {
				return err
			}
			if counts.Expired == 0 {
				return r.finish(ctx)
			}
			reason := fmt.Sprintf("deadline reached: %d of %d users were not reached before expires_at (%s); %d were sent",
				counts.Expired, max(counts.Targeted, counts.Outcomes()),
				r.run.Deadline.Format(time.DateTime), counts.Sent)
			if why := cmp.Or(r.expiring, r.run.Reason); why != "" {
				// Why the run ends before its users were reached: quiet hours
				// that outlast the deadline, or a pause it came back from late.
				reason = why + ": " + strings.TrimPrefix(reason, "deadline reached: ")
			}
			_, err = r.store.FinishRun(ctx, r.run.ID, pushd.Expired, reason, r.o.Clock())
			if err == nil {
				r.log.Info("run expired", "expired", counts.Expired, "sent", counts.Sent)
			}
			return err
		case errors.As(err, &stopped):
			return nil // another instance finished it
		case errors.Is(err, pushd.ErrBusy), errors.Is(err, pushd.ErrUnavailable):
			if !r.sleep(ctx, drain, r.o.Poll) {
				return nil
			}
		default:
			return fmt.Errorf("expire run %d: %w", r.run.ID, err)
		}
	}
}

// finish ends a drained run as done, with a summary of any failures.
func (r *Runner) finish(ctx context.Context) error {
	counts, top, err := r.store.RunSummary(ctx, r.run.ID)
	if err != nil {
		return err
	}
	reason := ""
	if counts.Failed > 0 {
		reason = fmt.Sprintf("%d of %d pushes failed", counts.Failed, counts.Outcomes())
		for i, t := range top {
			sep := ", "
			if i == 0 {
				sep = "; reasons: "
			}
			reason += fmt.Sprintf("%s%s (%d)", sep, t.Reason, t.Count)
		}
		reason += "; details in pushd_deliveries"
	}
	add := func(format string, args ...any) {
		if reason != "" {
			reason += "; "
		}
		reason += fmt.Sprintf(format, args...)
	}
	if counts.Capped > 0 {
		add("%d of %d users not sent: they had reached the app's frequency_cap", counts.Capped, counts.Outcomes())
	}
	if counts.Skipped > 0 {
		add("%d users skipped: their local time had passed by more than an hour (late_policy skip), or the template said {%% skip %%}", counts.Skipped)
	}
	if counts.Expired > 0 {
		add("%d users not sent: their local time or quiet hours came after the deadline", counts.Expired)
	}
	ok, err := r.store.FinishRun(ctx, r.run.ID, pushd.Done, reason, r.o.Clock())
	if err == nil && ok {
		r.log.Info("run done", "sent", counts.Sent, "failed", counts.Failed, "invalid_tokens", counts.Invalid, "expired", counts.Expired,
			"capped", counts.Capped)
	}
	return err
}

func (r *Runner) fail(ctx context.Context, reason string) error {
	r.log.Error("run failed", "reason", reason)
	return r.store.FailRun(ctx, r.run.ID, reason, r.o.Clock())
}

// holdWords says, for staff, why the provider's answer holds the app.
func (r *Runner) holdWords(res providers.Result) string {
	if res.Outcome == providers.AppThrottled {
		what := res.Reason
		if res.Detail != "" {
			what += ": " + res.Detail
		}
		return fmt.Sprintf("%s refuses this app's pushes for a while (%s)", r.app.Kind, what)
	}
	reason := fmt.Sprintf("%s rejected the app's credentials (%s)", r.app.Kind, res.Reason)
	if res.Hint != "" {
		reason += ": " + res.Hint + " in [" + r.app.Name + "] of config.ini, then reload pushd"
	}
	return reason
}

// holdCheck is how often a runner looks at its app's hold to write it on
// the campaign row.
const holdCheck = time.Second

// reportHolds writes the app's holds on the run's and the campaign's
// status_reason while they last, and clears it when sending goes on, so
// that staff see why nothing moves. It returns when done closes.
func (r *Runner) reportHolds(ctx context.Context, done <-chan struct{}) {
	t := time.NewTicker(holdCheck)
	defer t.Stop()
	var shown Hold
	for {
		select {
		case <-done:
			return
		case <-ctx.Done():
			return
		case <-t.C:
		}
		h, _ := r.app.Holding()
		if h == shown {
			continue
		}
		reason := ""
		if h.Reason != "" {
			loc := r.run.Deadline.Location()
			reason = fmt.Sprintf("held since %s: %s; no push of this app is tried meanwhile and none counts as failed; pushd tries again at %s by itself",
				h.Since.In(loc).Format(time.TimeOnly), h.Reason, h.Until.In(loc).Format(time.TimeOnly))
		}
		if err := r.store.SetRunReason(ctx, r.run.ID, reason); err != nil {
			r.log.Warn("cannot write the hold on the campaign row", "error", err)
			continue
		}
		if h.Reason == "" {
			r.log.Info("app no longer held: sending goes on")
		}
		shown = h
	}
}
