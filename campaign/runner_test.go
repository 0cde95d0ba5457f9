package campaign_test

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/pushd/pushd"
	"github.com/pushd/pushd/campaign"
	"github.com/pushd/pushd/internal/memstore"
	"github.com/pushd/pushd/providers"
)

var _ campaign.Store = (*memstore.Store)(nil)

// These tests run the Runner on virtual time (testing/synctest) against
// memstore and fakeSender: a minute of sending takes a millisecond, and
// each test acts at a given call or request, never after a guessed wait.

const (
	appName = "MyApp"
	lease   = 30 * time.Second
	// leaseTrust is how long after a renewal a runner still sends:
	// the lease less its fifth (batch.go's leaseMargin).
	leaseTrust = lease - lease/5
)

// fixture is one run of appName in a fresh store.
type fixture struct {
	st         *memstore.Store
	snd        *fakeSender
	app        *campaign.App
	campaignID int64
	run        pushd.Run
	// observer, when set, is the runners' Observer.
	observer campaign.Observer
}

func token(id int64) string { return fmt.Sprintf("tok-%d", id) }

// newFixture starts a run over users 1..users in batches of batchSize,
// due now and ending after deadline.
func newFixture(t *testing.T, users, batchSize int, deadline time.Duration, snd *fakeSender, o campaign.AppOptions) *fixture {
	t.Helper()
	f := &fixture{st: memstore.New(nil), snd: snd}
	for id := int64(1); id <= int64(users); id++ {
		f.st.AddUsers(appName, pushd.Recipient{UserID: id, Token: token(id)})
	}
	f.app = campaign.NewApp(appName, pushd.APNs, snd, o)
	f.campaignID, f.run = startRun(t, f.st, batchSize, deadline)
	t.Cleanup(func() {
		synctest.Wait() // answers to requests the runner left, if any
		if !snd.asyncAnswered() {
			t.Error("a SendAsync was not answered")
		}
	})
	return f
}

// startRun adds a campaign of appName and starts its run, as the
// scheduler's Decide does.
func startRun(t *testing.T, st *memstore.Store, batchSize int, deadline time.Duration) (int64, pushd.Run) {
	t.Helper()
	now := time.Now()
	id := st.AddCampaign(pushd.Campaign{App: appName, Title: "Sale", Body: "50% off", ScheduledAt: now})
	start := pushd.Decision{Action: pushd.Start, Runs: []pushd.NewRun{{App: appName, ScheduledFor: now, Deadline: now.Add(deadline),
		BatchSize: batchSize, Notification: []byte(`{"title":"Sale","body":"50% off"}`)}}}
	_, runIDs, err := st.Decide(t.Context(), id, now, func(*pushd.Campaign) pushd.Decision { return start })
	if err != nil {
		t.Fatal(err)
	}
	return id, st.Run(runIDs[0]).Run
}

// work runs a runner of owner on the run until it returns, or fails the
// test if it has not returned after a virtual day.
func (f *fixture) work(t *testing.T, owner string, drain <-chan struct{}) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 24*time.Hour)
	defer cancel()
	r := campaign.NewRunner(f.run, f.app, f.st, campaign.Options{Owner: owner, Lease: lease, Observer: f.observer})
	if err := r.Run(ctx, drain); err != nil {
		t.Fatalf("Run: %v", err)
	}
	if ctx.Err() != nil {
		t.Fatal("the runner was still going after a virtual day")
	}
}

// sentTo counts the requests made per user.
func (f *fixture) sentTo() map[string]int {
	n := map[string]int{}
	for _, r := range f.snd.requests() {
		n[r.token]++
	}
	return n
}

// checkOneOutcomeEach checks that users 1..users each have exactly one
// outcome (the store refuses a second) and that the run's counts agree.
func (f *fixture) checkOneOutcomeEach(t *testing.T, users int) {
	t.Helper()
	got := f.st.Outcomes(f.run.ID)
	for id := int64(1); id <= int64(users); id++ {
		if _, ok := got[id]; !ok {
			t.Errorf("user %d has no outcome", id)
		}
	}
	if c := f.st.Run(f.run.ID).Counts; c.Outcomes() != int64(len(got)) || len(got) != users {
		t.Errorf("%d outcomes for %d users, counts %+v", len(got), users, c)
	}
}

// checkOutcomeIffSent checks that exactly the users sent to have an
// outcome, and returns how many do.
func (f *fixture) checkOutcomeIffSent(t *testing.T, users int) int {
	t.Helper()
	sent, got := f.sentTo(), f.st.Outcomes(f.run.ID)
	for id := int64(1); id <= int64(users); id++ {
		if _, ok := got[id]; ok != (sent[token(id)] > 0) {
			t.Errorf("user %d: %d requests, outcome %v", id, sent[token(id)], ok)
		}
	}
	return len(got)
}

// resumeAs runs the rest of the run with a runner of owner, and checks
// that it ends done with every user sent to once over both runners.
func (f *fixture) resumeAs(t *testing.T, owner string, users int) {
	t.Helper()
	f.work(t, owner, nil)
	f.checkOneOutcomeEach(t, users)
	f.checkRun(t, pushd.Done, "")
	sent := f.sentTo()
	for id := int64(1); id <= int64(users); id++ {
		if n := sent[token(id)]; n != 1 {
			t.Errorf("user %d: %d requests, want 1", id, n)
		}
	}
}

// checkRun checks the run's status and that its reason contains want.
func (f *fixture) checkRun(t *testing.T, status pushd.Status, want string) {
	t.Helper()
	if r := f.st.Run(f.run.ID); r.Status != status || !strings.Contains(r.Reason, want) {
		t.Errorf("run is %s (%q), want %s with a reason containing %q", r.Status, r.Reason, status, want)
	}
}

// A Record refused with ErrLeaseLost means another instance owns the
// batch: the runner writes nothing more for it and sends none of its
// remaining users. (Mutation caught: record not setting w.lost.)
func TestRunnerLeaseLostMidBatch(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		const users = 10
		f := newFixture(t, users, users, time.Hour, &fakeSender{latency: 50 * time.Millisecond}, campaign.AppOptions{Concurrency: 1})
		var (
			mu       sync.Mutex
			lostAt   time.Time
			takeover pushd.Batch
		)
		// The hook may run on several goroutines, and again inside the
		// store calls it makes: it holds mu only to read and set.
		f.st.OnCall(func(c memstore.Call) error {
			mu.Lock()
			lose := c.Method == "Record" && lostAt.IsZero() && len(c.Deliveries) > 0
			if lose {
				lostAt = c.At
			}
			finish := c.Method == "ClaimBatch" && !lostAt.IsZero() && takeover.Recipients != nil
			other := takeover
			if finish {
				takeover.Recipients = nil
			}
			mu.Unlock()
			switch {
			case lose:
				// Another instance took the batch over while this one was
				// sending it: this flush is refused.
				b := f.st.TakeOver(c.BatchID, "other", lease)
				mu.Lock()
				takeover = b
				mu.Unlock()
			case finish:
				// The other instance sends the whole batch again (nothing of
				// it was recorded) and finishes it.
				ds := make([]pushd.Delivery, 0, len(other.Recipients))
				for _, rc := range other.Recipients {
					ds = append(ds, pushd.Delivery{UserID: rc.UserID, Outcome: pushd.Sent, Attempts: 1})
				}
				err := f.st.Record(t.Context(), pushd.Flush{RunID: f.run.ID, CampaignID: f.run.CampaignID, BatchID: other.ID,
					Epoch: other.Epoch, Deliveries: ds, Done: true, Lease: lease, Now: c.At})
				if err != nil {
					t.Errorf("the other instance's flush: %v", err)
				}
			}
			return nil
		})

		f.work(t, "a", nil)

		if lostAt.IsZero() {
			t.Fatal("no flush with outcomes was made")
		}
		reqs := f.snd.requests()
		for _, r := range reqs {
			if r.at.After(lostAt) {
				t.Errorf("%s sent at %v, after the lease was lost at %v", r.token, r.at, lostAt)
			}
		}
		if len(reqs) == 0 || len(reqs) >= users {
			t.Errorf("%d requests before the lease was lost, want some but not all %d", len(reqs), users)
		}
		for _, c := range f.st.Calls() {
			stale := c.BatchID == takeover.ID && c.Epoch == takeover.Epoch-1
			if stale && (c.Method == "Record" || c.Method == "ReleaseBatch") && c.At.After(lostAt) {
				t.Errorf("%s of the lost batch at %v, after the lease was lost", c.Method, c.At)
			}
		}
		f.checkOneOutcomeEach(t, users)
		f.checkRun(t, pushd.Done, "")
	})
}

// While the database cannot be written the lease cannot be renewed: the
// runner stops sending before it might have run out, keeps its outcomes,
// and records them and sends the rest once the database is back.
// (Mutation caught: batchWork.acquire not checking the lease.)
func TestRunnerDatabaseAwayPausesSending(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		const (
			users   = 60
			outage  = 2 * lease
			latency = time.Second
		)
		f := newFixture(t, users, users/2, time.Hour, &fakeSender{latency: latency}, campaign.AppOptions{Concurrency: 1})
		var downAt time.Time
		f.st.OnCall(func(c memstore.Call) error {
			if c.Method == "Record" && downAt.IsZero() && len(c.Deliveries) > 0 {
				downAt = c.At // called from one recorder at a time until set
				f.st.Down(outage)
			}
			return nil
		})

		f.work(t, "a", nil)

		upAt := downAt.Add(outage)
		var before, after int
		for _, r := range f.snd.requests() {
			switch {
			case r.at.Before(downAt.Add(leaseTrust)):
				before++
			case r.at.Before(upAt):
				t.Errorf("%s sent at +%v, while the lease was in doubt (database away from +%v to +%v)",
					r.token, r.at.Sub(downAt), time.Duration(0), outage)
			default:
				after++
			}
		}
		if before == 0 || after == 0 {
			t.Errorf("%d requests before the outage and %d after, want some of each", before, after)
		}
		if n := len(f.snd.requests()); n != users {
			t.Errorf("%d requests for %d users", n, users)
		}
		f.checkOneOutcomeEach(t, users)
		f.checkRun(t, pushd.Done, "")
	})
}

// While the ledger cannot be written, a run stops taking users on once
// the app's concurrency + MaxUnrecorded of them wait for it, long before
// its leases are in doubt: that is the most a kill -9 could send twice,
// whatever the batch size, retries included. (Mutation caught: the send
// loops not waiting take on 9,099 and 7,111 users.)
func TestRunnerUnrecordedBound(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name    string
		batch   int
		retried bool // every user is answered retryable once, then delivered
	}{
		{name: "one batch", batch: 10000},
		{name: "three batches, retried", batch: 4000, retried: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			synctest.Test(t, func(t *testing.T) {
				const (
					users       = 10000
					concurrency = 100
					outage      = 10 * time.Minute
				)
				snd := &fakeSender{latency: 10 * time.Millisecond}
				if tc.retried {
					for id := int64(1); id <= users; id++ {
						snd.answer(token(id), retryable(0), delivered())
					}
				}
				f := newFixture(t, users, tc.batch, time.Hour, snd, campaign.AppOptions{Concurrency: concurrency})
				waits := &waitCounter{}
				f.observer = waits
				var downAt time.Time
				f.st.OnCall(func(c memstore.Call) error {
					if c.Method == "Record" && downAt.IsZero() && len(c.Deliveries) > 0 {
						downAt = c.At
						f.st.Down(outage)
					}
					return nil
				})

				f.work(t, "a", nil)

				// Users first tried while nothing could be recorded.
				first := map[string]bool{}
				taken := 0
				for _, r := range snd.requests() {
					if first[r.token] {
						continue
					}
					first[r.token] = true
					if !r.at.Before(downAt) && r.at.Before(downAt.Add(outage)) {
						taken++
					}
				}
				// Three send loops may each pass the check at once.
				bound := concurrency + campaign.MaxUnrecorded + 3
				t.Logf("%d users taken on during the outage (bound %d)", taken, bound)
				if taken == 0 || taken > bound {
					t.Errorf("%d users taken on while the ledger could not be written, want 1 to %d", taken, bound)
				}
				if len(first) != users {
					t.Errorf("%d users tried, want %d", len(first), users)
				}
				if waits.n.Load() == 0 {
					t.Error("the Observer was never told that sending waited for the ledger")
				}
				f.checkOneOutcomeEach(t, users)
				f.checkRun(t, pushd.Done, "")
			})
		})
	}
}

// waitCounter is an Observer that counts LedgerWait calls.
type waitCounter struct{ n atomic.Int64 }

func (w *waitCounter) Sent(string, pushd.PushType, providers.Result, error, time.Duration, bool) {}
func (w *waitCounter) Recorded(string, int, time.Duration, error)                                {}
func (w *waitCounter) Capped(string, int)                                                        {}
func (w *waitCounter) LedgerWait(string)                                                         { w.n.Add(1) }

// An answer about the whole app holds it: no push of any of its runs is
// tried while the hold lasts, one probe goes when it ends (1 min, then 2
// min…), and once the provider accepts again every user is sent, none
// counted as failed. The rows say why nothing moves meanwhile.
// (Mutations caught: batchWork.acquire not waiting for the hold; answered
// counting the held answer as a try, or recording it as failed.)
func TestRunnerHoldsTheApp(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		name   string
		answer answer
		reason string
	}{
		{"credentials", credentialFailure("check key_id and team_id"), "check key_id and team_id in [" + appName + "] of config.ini, then reload pushd"},
		{"token updates", tooManyTokenUpdates(), "refuses this app's pushes for a while (TooManyProviderTokenUpdates"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			synctest.Test(t, func(t *testing.T) {
				const users = 10
				snd := &fakeSender{latency: 50 * time.Millisecond}
				fixed := time.Now().Add(90 * time.Second) // ops fix the key, or Apple lets go
				snd.respond = func(_ string, at time.Time) answer {
					if at.Before(fixed) {
						return tt.answer
					}
					return delivered()
				}
				f := newFixture(t, users, 5, time.Hour, snd, campaign.AppOptions{Concurrency: 10})
				g := *f // a second campaign of the same app, at the same time
				g.campaignID, g.run = startRun(t, f.st, 5, time.Hour)
				var wg sync.WaitGroup
				for _, x := range []*fixture{f, &g} {
					wg.Go(func() { x.work(t, "a", nil) })
				}

				time.Sleep(30 * time.Second)
				synctest.Wait()
				for _, x := range []*fixture{f, &g} {
					x.checkRun(t, pushd.Running, "held since ")
					x.checkRun(t, pushd.Running, tt.reason)
					if c := f.st.Campaign(x.campaignID); !strings.Contains(c.Reason, "pushd tries again at") {
						t.Errorf("campaign row says %q while held", c.Reason)
					}
				}
				if n := len(snd.requests()); n != 1 {
					t.Errorf("%d requests in the first 30 s of the hold, want 1", n)
				}
				wg.Wait()

				// Tries: the first at 0 s, the probe at 1 min (still refused:
				// held 2 min more), then one at 3 min that is accepted.
				var before int
				for _, r := range snd.requests() {
					if r.at.Before(fixed) {
						before++
					}
				}
				if before != 2 {
					t.Errorf("%d requests while the provider refused the app, want 2 (the first and one probe)", before)
				}
				for _, x := range []*fixture{f, &g} {
					x.checkOneOutcomeEach(t, users)
					x.checkRun(t, pushd.Done, "")
					for id, d := range f.st.Outcomes(x.run.ID) {
						if d.Outcome != pushd.Sent || d.Attempts != 1 {
							t.Errorf("run %d user %d: %+v, want sent at the first counted try", x.run.ID, id, d)
						}
					}
				}
			})
		})
	}
}

// A hold that outlasts the deadline leaves the users expired, never
// failed, and spends only the probes.
func TestRunnerHoldPastTheDeadline(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		const users = 10
		snd := &fakeSender{latency: 50 * time.Millisecond}
		snd.respond = func(string, time.Time) answer { return credentialFailure("check key_id") }
		f := newFixture(t, users, users, 10*time.Minute, snd, campaign.AppOptions{Concurrency: 10})
		f.work(t, "a", nil)
		// Probes at 0, 1, 3 and 7 minutes; the next would be at 15.
		if n := len(snd.requests()); n != 4 {
			t.Errorf("%d requests, want 4 probes", n)
		}
		f.checkOneOutcomeEach(t, users)
		for id, d := range f.st.Outcomes(f.run.ID) {
			if d.Outcome != pushd.ExpiredSend {
				t.Errorf("user %d: %+v, want expired", id, d)
			}
		}
		f.checkRun(t, pushd.Expired, "deadline reached")
	})
}

// Staff pausing or cancelling the campaign while a batch is sending stop
// its sending at the next ledger write, whatever the batch size, and the
// run at the next claim with StopRun; users not sent keep no outcome, and
// a paused run resumes with exactly them. (Mutations caught: claimLoop not
// calling StopRun; the recorder ignoring the flush's RunStopped, which
// sends the whole batch.)
func TestRunnerStaffStop(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		status pushd.Status
		reason string
	}{
		{pushd.Paused, "paused by staff"},
		{pushd.Cancelled, "cancelled by staff"},
	} {
		t.Run(string(tt.status), func(t *testing.T) {
			t.Parallel()
			synctest.Test(t, func(t *testing.T) {
				// One batch: sending stops at the next ledger write after
				// the pause (100 ms, one push here), not at the next claim.
				const users = 60
				snd := &fakeSender{latency: 100 * time.Millisecond}
				f := newFixture(t, users, users, time.Hour, snd, campaign.AppOptions{Concurrency: 1})
				snd.onRequest = func(n int, _ string) {
					if n == 5 {
						f.st.SetCampaignStatus(f.campaignID, tt.status)
					}
				}

				f.work(t, "a", nil)

				f.checkRun(t, tt.status, tt.reason)
				if n := f.checkOutcomeIffSent(t, users); n < 5 || n > 8 {
					t.Errorf("%d outcomes after stopping at the 5th request, want 5 to 8", n)
				}
				if tt.status != pushd.Paused {
					return
				}
				f.st.SetCampaignStatus(f.campaignID, pushd.Scheduled)
				resume := pushd.Decision{Action: pushd.Resume}
				if _, _, err := f.st.Decide(t.Context(), f.campaignID, time.Now(), func(*pushd.Campaign) pushd.Decision { return resume }); err != nil {
					t.Fatal(err)
				}
				f.resumeAs(t, "b", users)
			})
		})
	}
}

// At the deadline, pushes waiting for a retry are recorded expired (at
// once when their next try would come too late), nothing is sent after
// it, and the run ends expired with a reason.
// (Mutation caught: retry not expiring a push whose backoff crosses the
// deadline.)
func TestRunnerDeadlineWithRetriesPending(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		const users = 40
		snd := &fakeSender{latency: time.Second}
		for id := int64(1); id <= users; id++ {
			switch id % 4 {
			case 0:
				snd.answer(token(id), retryable(time.Hour)) // next try long after the deadline
			case 1:
				snd.answer(token(id), retryable(2*time.Second)) // tried again until the deadline
			}
		}
		f := newFixture(t, users, 10, 10*time.Second, snd, campaign.AppOptions{Concurrency: 2, MaxAttempts: 20})

		f.work(t, "a", nil)

		for _, r := range snd.requests() {
			if !r.at.Before(f.run.Deadline) {
				t.Errorf("%s sent at the deadline or after", r.token)
			}
		}
		f.checkOneOutcomeEach(t, users)
		f.checkRun(t, pushd.Expired, "deadline reached")
		answeredAt := map[int64]time.Time{}
		for _, r := range snd.requests() {
			var id int64
			fmt.Sscanf(r.token, "tok-%d", &id)
			if _, ok := answeredAt[id]; !ok {
				answeredAt[id] = r.at.Add(snd.latency)
			}
		}
		recordedAt := map[int64]time.Time{}
		for _, c := range f.st.Calls() {
			for _, d := range c.Deliveries {
				if c.Method == "Record" && c.Err == nil {
					recordedAt[d.UserID] = c.At
				}
			}
		}
		got := f.st.Outcomes(f.run.ID)
		for id := int64(1); id <= users; id++ {
			d := got[id]
			// Answered with a flush interval to spare, it must be recorded
			// before the deadline, not when the deadline ends the wait.
			early := answeredAt[id].Add(100 * time.Millisecond).Before(f.run.Deadline)
			switch tried := f.sentTo()[token(id)] > 0; {
			case id%4 == 0 && tried && early && !recordedAt[id].Before(f.run.Deadline):
				t.Errorf("user %d: answered at %v, its retry due after the deadline, recorded only at %v", id, answeredAt[id], recordedAt[id])
			case id%4 <= 1 && d.Outcome != pushd.ExpiredSend:
				t.Errorf("user %d: %+v, want expired", id, d)
			case id%4 <= 1 && tried && d.Attempts < 1:
				t.Errorf("user %d: %+v, want its tries counted", id, d)
			}
		}
	})
}

// Closing drain stops the sending: requests in flight are answered and
// recorded, nothing is sent after, and the unfinished batches are
// released for another instance, which sends exactly the rest.
// (Mutation caught: the recorder not calling ReleaseBatch.)
func TestRunnerDrainReleasesBatches(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		const users = 30
		snd := &fakeSender{latency: time.Second}
		f := newFixture(t, users, 10, time.Hour, snd, campaign.AppOptions{Concurrency: 4})
		drain := make(chan struct{})
		var drainAt time.Time
		snd.onRequest = func(n int, _ string) {
			if n == 6 {
				drainAt = time.Now()
				close(drain)
			}
		}

		f.work(t, "a", drain)

		reqs := snd.requests()
		for _, r := range reqs {
			if r.at.After(drainAt) {
				t.Errorf("%s sent %v after the drain", r.token, r.at.Sub(drainAt))
			}
		}
		if n := f.checkOutcomeIffSent(t, users); n == 0 || n == users {
			t.Fatalf("%d users sent before the drain, want some but not all %d", n, users)
		}
		for _, b := range f.st.Batches(f.run.ID) {
			if b.Status == memstore.Claimed {
				t.Errorf("batch %d still claimed by %q after the drain, want released", b.ID, b.Owner)
			}
		}
		f.checkRun(t, pushd.Running, "")

		f.resumeAs(t, "b", users)
	})
}

// A provider away for a minute and a half costs nobody: pushes that never
// left are tried again without counting a try, and all arrive once it is
// back; away past the deadline, the users are expired, never failed.
// (Mutation caught: answered counting a push that was not sent as a try.)
func TestRunnerProviderOutage(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		name     string
		deadline time.Duration
		want     pushd.Outcome
	}{
		{"back before the deadline", time.Hour, pushd.Sent},
		{"down past the deadline", time.Minute, pushd.ExpiredSend},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			synctest.Test(t, func(t *testing.T) {
				const users = 20
				snd := &fakeSender{latency: 50 * time.Millisecond}
				back := time.Now().Add(90 * time.Second)
				snd.respond = func(_ string, at time.Time) answer {
					if at.Before(back) {
						return notSent()
					}
					return delivered()
				}
				f := newFixture(t, users, 10, tt.deadline, snd, campaign.AppOptions{Concurrency: 5, MaxAttempts: 3})
				f.work(t, "a", nil)
				f.checkOneOutcomeEach(t, users)
				for id, d := range f.st.Outcomes(f.run.ID) {
					if d.Outcome != tt.want || (tt.want == pushd.Sent && d.Attempts != 1) {
						t.Errorf("user %d: %+v, want %s", id, d, tt.want)
					}
				}
			})
		})
	}
}
