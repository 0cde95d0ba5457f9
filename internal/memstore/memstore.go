// Package memstore is an in-memory stand-in for the MySQL store, for the
// unit tests of the campaign runner and the scheduler: it implements
// scheduler.Store (and so campaign.Store) with the semantics store
// documents, without a database, so that those tests can run under
// testing/synctest on virtual time.
//
// It keeps what the tables keep: campaigns as staff write them, runs with
// their cursor and counters, batches with owner, epoch and a lease expiry
// on the fake's clock, the ledger with at most one outcome per (run, user)
// and the dead tokens. Every write is fenced by the batch epoch as in
// store.Record, and a flush that would give a user a second outcome fails
// whole, as LOAD DATA's check does.
//
// A test can make the database go away for a while (Down), stand in for
// another instance (TakeOver), act at a given call (OnCall) and read back
// every call made (Calls). It imports only pushd and the standard library,
// so that campaign and scheduler tests can share it; it is not for
// production use.
package memstore

import (
	"cmp"
	"context"
	"fmt"
	"maps"
	"math"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/pushd/pushd"
)

// Batch statuses, as in pushd_batches.status.
const (
	Pending = "pending"
	Claimed = "claimed"
	Done    = "done"
)

// Call is one call of a store method, as Calls reports it.
type Call struct {
	Method string
	// At is the fake's clock when the call began.
	At      time.Time
	RunID   int64
	BatchID int64 // Record, ReleaseBatch; ClaimBatch: the batch claimed
	Epoch   int64
	Owner   string
	Status  pushd.Status // StopRun, FinishRun
	Reason  string       // StopRun, FinishRun, FailRun
	// Deliveries and Done are the flush's (Record).
	Deliveries []pushd.Delivery
	Done       bool
	// Err is what the call returned.
	Err error
}

// RunRow is a run as pushd_runs holds it.
type RunRow struct {
	pushd.Run  // its Reason is the run's status_reason
	Counts     pushd.RunCounts
	Cursor     int64
	Drained    bool
	StartedAt  time.Time
	FinishedAt time.Time // zero while not finished
}

// BatchRow is a batch as pushd_batches holds it.
type BatchRow struct {
	ID, RunID   int64
	After, Last int64
	Status      string // Pending, Claimed or Done
	Owner       string
	Epoch       int64
	// LeaseExpires is on the fake's clock; zero when not claimed.
	LeaseExpires time.Time
}

// CampaignRow is a campaigns row: what staff wrote and what pushd adds.
type CampaignRow struct {
	pushd.Campaign
	Reason       string
	CurrentRunID int64 // 0 before the first run
	Targeted     int64 // the estimate before the first run
}

type user struct {
	app string
	pushd.Recipient
}

type deadToken struct {
	pushd.Invalidation
	runID int64
}

// Store is the in-memory store. It is safe for concurrent use. The zero
// value is not usable; call New.
type Store struct {
	clock func() time.Time

	mu        sync.Mutex
	onCall    func(Call) error
	downUntil time.Time
	users     []user // by id
	dead      map[int64]deadToken
	campaigns map[int64]*CampaignRow
	runs      map[int64]*RunRow
	batches   []*BatchRow // by id; id i is batches[i-1]
	ledger    map[int64]map[int64]pushd.Delivery
	calls     []Call
}

// New returns an empty store whose database clock is clock (time.Now if
// nil; inside a synctest bubble that is the bubble's virtual clock).
func New(clock func() time.Time) *Store {
	if clock == nil {
		clock = time.Now
	}
	return &Store{clock: clock, dead: map[int64]deadToken{}, campaigns: map[int64]*CampaignRow{},
		runs: map[int64]*RunRow{}, ledger: map[int64]map[int64]pushd.Delivery{}}
}

// AddUsers adds users of app, as the company's users table would have
// them. Ids must be unique across apps.
func (s *Store) AddUsers(app string, rs ...pushd.Recipient) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, r := range rs {
		s.users = append(s.users, user{app: app, Recipient: r})
	}
	slices.SortFunc(s.users, func(a, b user) int { return cmp.Compare(a.UserID, b.UserID) })
}

// AddCampaign inserts a campaign row as staff would and returns its id.
// An empty status means scheduled.
func (s *Store) AddCampaign(c pushd.Campaign) int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	c.ID = int64(len(s.campaigns) + 1)
	if c.Status == "" {
		c.Status = pushd.Scheduled
	}
	c.CurrentRun = nil
	s.campaigns[c.ID] = &CampaignRow{Campaign: c}
	return c.ID
}

// SetCampaignStatus changes a campaign's status as staff do (paused,
// cancelled, scheduled).
func (s *Store) SetCampaignStatus(id int64, st pushd.Status) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.campaigns[id].Status = st
}

// OnCall makes f run at the start of every call, before the call looks at
// the data and without the store's lock, so f may call the store. A
// non-nil error from f is what the call returns, having done nothing.
func (s *Store) OnCall(f func(Call) error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.onCall = f
}

// Down makes every call fail for d from now on the fake's clock, with an
// error matching pushd.ErrUnavailable, as when the database is away.
func (s *Store) Down(d time.Duration) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.downUntil = s.clock().Add(d)
}

// TakeOver takes a batch over for owner as another instance does once
// the lease has run out: the epoch goes up, so that the earlier owner's
// writes are refused. It does not check the lease, and so also stands in
// for an owner that stalled past it without knowing.
func (s *Store) TakeOver(batchID int64, owner string, lease time.Duration) pushd.Batch {
	s.mu.Lock()
	defer s.mu.Unlock()
	b := s.batches[batchID-1]
	b.Status, b.Owner, b.Epoch, b.LeaseExpires = Claimed, owner, b.Epoch+1, s.clock().Add(lease)
	run := s.runs[b.RunID]
	return pushd.Batch{ID: b.ID, RunID: b.RunID, Epoch: b.Epoch, After: b.After, Last: b.Last,
		Recipients: s.unrecorded(run, b.After, b.Last), TakenOver: true}
}

// Calls returns the calls made so far, in order.
func (s *Store) Calls() []Call {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.calls)
}

// Run returns a run's row.
func (s *Store) Run(id int64) RunRow {
	s.mu.Lock()
	defer s.mu.Unlock()
	return *s.runs[id]
}

// Runs returns every run's row, by id.
func (s *Store) Runs() []RunRow {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]RunRow, 0, len(s.runs))
	for _, r := range s.runs {
		out = append(out, *r)
	}
	slices.SortFunc(out, func(a, b RunRow) int { return cmp.Compare(a.ID, b.ID) })
	return out
}

// Campaign returns a campaign's row.
func (s *Store) Campaign(id int64) CampaignRow {
	s.mu.Lock()
	defer s.mu.Unlock()
	return *s.campaigns[id]
}

// Batches returns a run's batches, by id.
func (s *Store) Batches(runID int64) []BatchRow {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []BatchRow
	for _, b := range s.batches {
		if b.RunID == runID {
			out = append(out, *b)
		}
	}
	return out
}

// Outcomes returns a run's ledger, by user id.
func (s *Store) Outcomes(runID int64) map[int64]pushd.Delivery {
	s.mu.Lock()
	defer s.mu.Unlock()
	return maps.Clone(s.ledger[runID])
}

// enter starts call c: it runs the OnCall hook and fails the call while
// the database is down or ctx is done. On success the store is locked
// and the caller must leave; on failure the call is already recorded.
func (s *Store) enter(ctx context.Context, c *Call) error {
	c.At = s.clock()
	s.mu.Lock()
	hook := s.onCall
	s.mu.Unlock()
	var err error
	if hook != nil {
		err = hook(*c)
	}
	s.mu.Lock()
	switch {
	case err != nil:
	case ctx.Err() != nil:
		err = ctx.Err()
	case c.At.Before(s.downUntil):
		err = fmt.Errorf("%s: %w: connection refused", strings.ToLower(c.Method), pushd.ErrUnavailable)
	default:
		return nil
	}
	s.leave(c, err)
	return err
}

// leave records call c with its result and unlocks the store.
func (s *Store) leave(c *Call, err error) {
	c.Err = err
	s.calls = append(s.calls, *c)
	s.mu.Unlock()
}

// valid is store's validToken: the user's token was not found dead, or
// was registered again since.
func (s *Store) valid(u user) bool {
	d, ok := s.dead[u.UserID]
	return !ok || !strings.EqualFold(d.Token, u.Token) || u.RegisteredAt.After(d.Since)
}

// audience returns the users of app in (after, last], by id.
func (s *Store) audience(app string, after, last int64) []user {
	var out []user
	for _, u := range s.users {
		if u.app == app && u.UserID > after && u.UserID <= last {
			out = append(out, u)
		}
	}
	return out
}

// unrecorded is what a taken-over batch still has to send: the valid users
// of (after, last] with no outcome in the run.
func (s *Store) unrecorded(run *RunRow, after, last int64) []pushd.Recipient {
	var out []pushd.Recipient
	for _, u := range s.audience(run.App, after, last) {
		if _, done := s.ledger[run.ID][u.UserID]; !done && s.valid(u) {
			out = append(out, u.Recipient)
		}
	}
	return out
}

func (s *Store) openBatches(runID int64) int {
	n := 0
	for _, b := range s.batches {
		if b.RunID == runID && b.Status != Done {
			n++
		}
	}
	return n
}

// ActiveRuns lists the runs in status running.
func (s *Store) ActiveRuns(ctx context.Context) (out []pushd.Run, err error) {
	c := Call{Method: "ActiveRuns"}
	if err := s.enter(ctx, &c); err != nil {
		return nil, err
	}
	defer func() { s.leave(&c, err) }()
	for _, r := range s.runs {
		if r.Status == pushd.Running {
			out = append(out, r.Run)
		}
	}
	slices.SortFunc(out, func(a, b pushd.Run) int { return cmp.Compare(a.ID, b.ID) })
	return out, nil
}

// CountAudience counts the run's audience as it stood at the start.
func (s *Store) CountAudience(ctx context.Context, r pushd.Run) (n int64, err error) {
	c := Call{Method: "CountAudience", RunID: r.ID}
	if err := s.enter(ctx, &c); err != nil {
		return 0, err
	}
	defer func() { s.leave(&c, err) }()
	for _, u := range s.audience(r.App, math.MinInt64, r.MaxUserID) {
		if s.valid(u) || s.dead[u.UserID].runID == r.ID {
			n++
		}
	}
	return n, nil
}

// SetTargeted stores the audience size on the run.
func (s *Store) SetTargeted(ctx context.Context, r pushd.Run, n int64) (err error) {
	c := Call{Method: "SetTargeted", RunID: r.ID}
	if err := s.enter(ctx, &c); err != nil {
		return err
	}
	defer func() { s.leave(&c, err) }()
	s.runs[r.ID].Counts.Targeted = n
	return nil
}

// ClaimBatch leases the next share of the run's audience to owner, as
// store.ClaimBatch does: first a released or abandoned batch not in held,
// else the next BatchSize users after the cursor.
func (s *Store) ClaimBatch(ctx context.Context, runID int64, owner string, held []int64, lease time.Duration, now time.Time) (b *pushd.Batch, err error) {
	c := Call{Method: "ClaimBatch", RunID: runID, Owner: owner}
	if err := s.enter(ctx, &c); err != nil {
		return nil, err
	}
	defer func() {
		if b != nil {
			c.BatchID, c.Epoch = b.ID, b.Epoch
		}
		s.leave(&c, err)
	}()
	run, ok := s.runs[runID]
	if !ok {
		return nil, fmt.Errorf("lock run %d: no such run", runID)
	}
	if run.Status != pushd.Running {
		return nil, &pushd.RunStopped{Status: run.Status}
	}
	camp := s.campaigns[run.CampaignID]
	switch {
	case camp == nil || camp.CurrentRunID != runID:
		return nil, &pushd.RunStopped{Status: pushd.Cancelled, ByStaff: true}
	case camp.Status == pushd.Cancelled || camp.Status == pushd.Paused:
		return nil, &pushd.RunStopped{Status: camp.Status, ByStaff: true}
	}
	if !now.Before(run.Deadline) {
		return nil, &pushd.RunStopped{Status: pushd.Expired}
	}
	dbNow := s.clock()
	for _, cand := range s.batches {
		abandoned := cand.Status == Claimed && cand.LeaseExpires.Before(dbNow) && !slices.Contains(held, cand.ID)
		if cand.RunID != runID || (cand.Status != Pending && !abandoned) {
			continue
		}
		recips := s.unrecorded(run, cand.After, cand.Last)
		cand.Owner, cand.Epoch, cand.LeaseExpires = owner, cand.Epoch+1, dbNow.Add(lease)
		if len(recips) == 0 {
			cand.Status = Done // everything was recorded before the owner left
			continue
		}
		cand.Status = Claimed
		return &pushd.Batch{ID: cand.ID, RunID: runID, Epoch: cand.Epoch, After: cand.After, Last: cand.Last,
			Recipients: recips, TakenOver: true}, nil
	}
	for !run.Drained {
		us := s.audience(run.App, run.Cursor, run.MaxUserID)
		if len(us) == 0 {
			run.Drained, run.Cursor = true, run.MaxUserID
			break
		}
		us = us[:min(len(us), run.BatchSize)]
		after, last := run.Cursor, us[len(us)-1].UserID
		run.Cursor = last
		var recips []pushd.Recipient
		for _, u := range us {
			if s.valid(u) {
				recips = append(recips, u.Recipient)
			}
		}
		if len(recips) == 0 {
			continue // only dead tokens in this stretch: step over it
		}
		nb := &BatchRow{ID: int64(len(s.batches) + 1), RunID: runID, After: after, Last: last, Status: Claimed,
			Owner: owner, Epoch: 1, LeaseExpires: dbNow.Add(lease)}
		s.batches = append(s.batches, nb)
		return &pushd.Batch{ID: nb.ID, RunID: runID, Epoch: 1, After: after, Last: last, Recipients: recips}, nil
	}
	if s.openBatches(runID) > 0 {
		return nil, pushd.ErrNoWork
	}
	return nil, pushd.ErrDrained
}

// Record writes a flush if and only if the batch is still claimed at
// f.Epoch, else returns pushd.ErrLeaseLost having written nothing. A flush
// that would give a user a second outcome fails whole.
func (s *Store) Record(ctx context.Context, f pushd.Flush) (err error) {
	c := Call{Method: "Record", RunID: f.RunID, BatchID: f.BatchID, Epoch: f.Epoch,
		Deliveries: slices.Clone(f.Deliveries), Done: f.Done}
	if err := s.enter(ctx, &c); err != nil {
		return err
	}
	defer func() { s.leave(&c, err) }()
	ds := f.Deliveries
	if f.Recheck {
		ds = slices.DeleteFunc(slices.Clone(ds), func(d pushd.Delivery) bool {
			_, had := s.ledger[f.RunID][d.UserID]
			return had
		})
	}
	seen := map[int64]bool{}
	for _, d := range ds {
		switch d.Outcome {
		case pushd.Sent, pushd.FailedSend, pushd.InvalidToken, pushd.ExpiredSend, pushd.Skipped, pushd.HeldOut:
		default:
			return fmt.Errorf("record run %d: unknown outcome %q", f.RunID, d.Outcome)
		}
		if _, had := s.ledger[f.RunID][d.UserID]; had || seen[d.UserID] {
			return fmt.Errorf("record run %d: user %d already has an outcome (duplicate key)", f.RunID, d.UserID)
		}
		seen[d.UserID] = true
	}
	if f.BatchID < 1 || f.BatchID > int64(len(s.batches)) {
		return pushd.ErrLeaseLost
	}
	b := s.batches[f.BatchID-1]
	if b.Epoch != f.Epoch || b.Status != Claimed {
		if f.Recheck && f.Done && len(ds) == 0 && b.Status == Done && b.Epoch == f.Epoch {
			return nil // the earlier attempt committed this final flush
		}
		return pushd.ErrLeaseLost
	}
	b.LeaseExpires = s.clock().Add(f.Lease)
	if f.Done {
		b.Status = Done
	}
	s.addOutcomes(s.runs[f.RunID], ds)
	for _, inv := range f.Invalid {
		s.dead[inv.UserID] = deadToken{Invalidation: inv, runID: f.RunID}
	}
	if camp := s.campaigns[f.CampaignID]; len(ds) > 0 && camp != nil && camp.CurrentRunID == f.RunID &&
		(camp.Status == pushd.Cancelled || camp.Status == pushd.Paused) {
		return &pushd.RunStopped{Status: camp.Status, ByStaff: true}
	}
	return nil
}

func (s *Store) addOutcomes(run *RunRow, ds []pushd.Delivery) {
	if s.ledger[run.ID] == nil {
		s.ledger[run.ID] = map[int64]pushd.Delivery{}
	}
	for _, d := range ds {
		s.ledger[run.ID][d.UserID] = d
		switch d.Outcome {
		case pushd.Sent:
			run.Counts.Sent++
		case pushd.FailedSend:
			run.Counts.Failed++
		case pushd.InvalidToken:
			run.Counts.Invalid++
		case pushd.ExpiredSend:
			run.Counts.Expired++
		case pushd.Skipped:
			run.Counts.Skipped++
		case pushd.HeldOut:
			run.Counts.HeldOut++
		}
	}
}

// ReleaseBatch gives a batch back for anyone to take over at once. Losing
// the lease meanwhile is not an error.
func (s *Store) ReleaseBatch(ctx context.Context, batchID, epoch int64) (err error) {
	c := Call{Method: "ReleaseBatch", BatchID: batchID, Epoch: epoch}
	if err := s.enter(ctx, &c); err != nil {
		return err
	}
	defer func() { s.leave(&c, err) }()
	if b := s.batches[batchID-1]; b.Epoch == epoch && b.Status == Claimed {
		b.Status, b.Owner, b.LeaseExpires = Pending, "", time.Time{}
	}
	return nil
}

// StopRun stops a running run as paused or cancelled; a paused one is
// due again as soon as staff set its campaign back to scheduled.
func (s *Store) StopRun(ctx context.Context, runID int64, status pushd.Status, reason string, now time.Time) (err error) {
	c := Call{Method: "StopRun", RunID: runID, Status: status, Reason: reason}
	if err := s.enter(ctx, &c); err != nil {
		return err
	}
	defer func() { s.leave(&c, err) }()
	if status != pushd.Paused && status != pushd.Cancelled {
		return fmt.Errorf("stop run %d: status %q is not paused or cancelled", runID, status)
	}
	run := s.runs[runID]
	if run.Status != pushd.Running {
		return nil
	}
	run.Status, run.Reason = status, reason
	if status == pushd.Cancelled {
		run.FinishedAt = now
		return nil
	}
	next := run.ScheduledFor
	s.campaigns[run.CampaignID].NextRunAt = &next
	return nil
}

// FailRun stops a running run and its campaign with reason.
func (s *Store) FailRun(ctx context.Context, runID int64, reason string, now time.Time) (err error) {
	c := Call{Method: "FailRun", RunID: runID, Reason: reason}
	if err := s.enter(ctx, &c); err != nil {
		return err
	}
	defer func() { s.leave(&c, err) }()
	run := s.runs[runID]
	if run.Status != pushd.Running {
		return nil // already stopped by someone else
	}
	run.Status, run.Reason = pushd.Failed, reason
	if camp := s.campaigns[run.CampaignID]; camp.CurrentRunID == runID && camp.Status == pushd.Running {
		next := run.ScheduledFor
		camp.Status, camp.Reason, camp.NextRunAt = pushd.Failed, reason, &next
	}
	return nil
}

// RunSummary returns the run's counters and its three most common failure
// reasons.
func (s *Store) RunSummary(ctx context.Context, runID int64) (counts pushd.RunCounts, top []pushd.ReasonCount, err error) {
	c := Call{Method: "RunSummary", RunID: runID}
	if err := s.enter(ctx, &c); err != nil {
		return counts, nil, err
	}
	defer func() { s.leave(&c, err) }()
	byReason := map[string]int64{}
	for _, d := range s.ledger[runID] {
		if d.Outcome == pushd.FailedSend {
			byReason[d.Reason]++
		}
	}
	for r, n := range byReason {
		top = append(top, pushd.ReasonCount{Reason: r, Count: n})
	}
	slices.SortFunc(top, func(a, b pushd.ReasonCount) int {
		return cmp.Or(cmp.Compare(b.Count, a.Count), cmp.Compare(a.Reason, b.Reason))
	})
	return s.runs[runID].Counts, top[:min(len(top), 3)], nil
}

// FinishRun ends a drained run with no open batch as status, and moves its
// campaign on: back to scheduled when a next occurrence is set.
func (s *Store) FinishRun(ctx context.Context, runID int64, status pushd.Status, reason string, now time.Time) (ok bool, err error) {
	c := Call{Method: "FinishRun", RunID: runID, Status: status, Reason: reason}
	if err := s.enter(ctx, &c); err != nil {
		return false, err
	}
	defer func() { s.leave(&c, err) }()
	run := s.runs[runID]
	if run.Status != pushd.Running || !run.Drained || s.openBatches(runID) > 0 {
		return false, nil
	}
	run.Status, run.Reason, run.FinishedAt = status, reason, now
	if camp := s.campaigns[run.CampaignID]; camp.CurrentRunID == runID && camp.Status == pushd.Running {
		camp.Status, camp.Reason = status, reason
		if camp.NextRunAt != nil {
			camp.Status = pushd.Scheduled
		}
	}
	return true, nil
}

// ExpireRemaining records every audience user of a run past its deadline
// who has no outcome yet as expired, after taking over every open batch;
// it fails with pushd.ErrBusy while another owner holds a live lease.
func (s *Store) ExpireRemaining(ctx context.Context, runID int64, owner string, lease time.Duration, now time.Time) (n int64, err error) {
	c := Call{Method: "ExpireRemaining", RunID: runID, Owner: owner}
	if err := s.enter(ctx, &c); err != nil {
		return 0, err
	}
	defer func() { s.leave(&c, err) }()
	run := s.runs[runID]
	if run.Status != pushd.Running {
		return 0, &pushd.RunStopped{Status: run.Status}
	}
	dbNow := s.clock()
	for _, b := range s.batches {
		if b.RunID == runID && b.Status == Claimed && b.Owner != owner && !b.LeaseExpires.Before(dbNow) {
			return 0, pushd.ErrBusy
		}
	}
	if !run.Drained {
		s.batches = append(s.batches, &BatchRow{ID: int64(len(s.batches) + 1), RunID: runID, After: run.Cursor,
			Last: run.MaxUserID, Status: Pending, Epoch: 1})
		run.Drained, run.Cursor = true, run.MaxUserID
	}
	for _, b := range s.batches {
		if b.RunID != runID || b.Status == Done {
			continue
		}
		b.Status, b.Owner, b.Epoch = Done, owner, b.Epoch+1
		var ds []pushd.Delivery
		for _, r := range s.unrecorded(run, b.After, b.Last) {
			ds = append(ds, pushd.Delivery{UserID: r.UserID, Outcome: pushd.ExpiredSend, Reason: "deadline reached"})
		}
		s.addOutcomes(run, ds)
		n += int64(len(ds))
	}
	return n, nil
}

// DueCampaigns lists the scheduled campaigns whose next occurrence is at
// or before until, soonest first.
func (s *Store) DueCampaigns(ctx context.Context, until time.Time, limit int) (out []pushd.Due, err error) {
	c := Call{Method: "DueCampaigns"}
	if err := s.enter(ctx, &c); err != nil {
		return nil, err
	}
	defer func() { s.leave(&c, err) }()
	for _, camp := range s.campaigns {
		if at := dueAt(&camp.Campaign); camp.Status == pushd.Scheduled && !at.After(until) {
			out = append(out, pushd.Due{CampaignID: camp.ID, At: at})
		}
	}
	slices.SortFunc(out, func(a, b pushd.Due) int {
		return cmp.Or(a.At.Compare(b.At), cmp.Compare(a.CampaignID, b.CampaignID))
	})
	return out[:min(len(out), limit)], nil
}

// UpcomingCampaigns lists the scheduled campaigns whose next occurrence is
// after after, soonest first, as store.UpcomingCampaigns does.
func (s *Store) UpcomingCampaigns(ctx context.Context, after time.Time, limit int) (out []*pushd.Campaign, err error) {
	c := Call{Method: "UpcomingCampaigns"}
	if err := s.enter(ctx, &c); err != nil {
		return nil, err
	}
	defer func() { s.leave(&c, err) }()
	for _, camp := range s.campaigns {
		if camp.Status == pushd.Scheduled && dueAt(&camp.Campaign).After(after) {
			view := camp.Campaign
			out = append(out, &view)
		}
	}
	slices.SortFunc(out, func(a, b *pushd.Campaign) int {
		return cmp.Or(dueAt(a).Compare(dueAt(b)), cmp.Compare(a.ID, b.ID))
	})
	return out[:min(len(out), limit)], nil
}

// dueAt is when the campaign's next occurrence is due.
func dueAt(c *pushd.Campaign) time.Time {
	if c.NextRunAt != nil {
		return *c.NextRunAt
	}
	return c.ScheduledAt
}

// SetRunReason writes reason on a running run and its current campaign.
func (s *Store) SetRunReason(ctx context.Context, runID int64, reason string) (err error) {
	c := Call{Method: "SetRunReason", RunID: runID, Reason: reason}
	if err := s.enter(ctx, &c); err != nil {
		return err
	}
	defer func() { s.leave(&c, err) }()
	run := s.runs[runID]
	if run == nil || run.Status != pushd.Running {
		return nil
	}
	run.Reason = reason
	if camp := s.campaigns[run.CampaignID]; camp.CurrentRunID == runID && camp.Status == pushd.Running {
		camp.Reason = reason
	}
	return nil
}

// EstimateAudience counts the users of the campaign's apps; the in-memory
// store has no segments.
func (s *Store) EstimateAudience(ctx context.Context, c *pushd.Campaign) (n int64, err error) {
	call := Call{Method: "EstimateAudience"}
	if err := s.enter(ctx, &call); err != nil {
		return 0, err
	}
	defer func() { s.leave(&call, err) }()
	for _, app := range c.Apps() {
		for _, u := range s.users {
			if u.app == app {
				n++
			}
		}
	}
	if camp := s.campaigns[c.ID]; camp != nil && camp.Status == pushd.Scheduled {
		camp.Targeted = n
	}
	return n, nil
}

// WaitingNote is a no-op: the in-memory store has no runs split by zone.
func (s *Store) WaitingNote(context.Context, pushd.Run, time.Time) error { return nil }

// NoteCampaign writes the reason on a scheduled campaign before its first
// run.
func (s *Store) NoteCampaign(ctx context.Context, c *pushd.Campaign, reason string) (err error) {
	call := Call{Method: "NoteCampaign", Reason: reason}
	if err := s.enter(ctx, &call); err != nil {
		return err
	}
	defer func() { s.leave(&call, err) }()
	if camp := s.campaigns[c.ID]; camp != nil && camp.Status == pushd.Scheduled && camp.RunCount == 0 {
		camp.Reason = reason
	}
	return nil
}

// Decide asks decide what to do with a scheduled campaign and applies the
// decision, as store.Decide does in one transaction. It returns the run id
// for Start and Resume.
func (s *Store) Decide(ctx context.Context, id int64, now time.Time, decide func(*pushd.Campaign) pushd.Decision) (d pushd.Decision, runIDs []int64, err error) {
	c := Call{Method: "Decide"}
	if err := s.enter(ctx, &c); err != nil {
		return d, nil, err
	}
	var runID int64
	defer func() {
		c.RunID, c.Reason = runID, d.Reason
		s.leave(&c, err)
	}()
	camp, ok := s.campaigns[id]
	if !ok || camp.Status != pushd.Scheduled {
		return d, nil, pushd.ErrNotDue
	}
	view := camp.Campaign
	if r := s.runs[camp.CurrentRunID]; r != nil {
		view.CurrentRun = &pushd.RunState{ID: r.ID, Status: r.Status, ScheduledFor: r.ScheduledFor, Deadline: r.Deadline}
	}
	d = decide(&view)
	runIDs, err = s.apply(camp, d, now)
	if len(runIDs) > 0 {
		runID = runIDs[0]
	}
	return d, runIDs, err
}

// apply applies d. The in-memory store knows one run per campaign: it
// starts only the first app's run, and has no segments or caps.
func (s *Store) apply(camp *CampaignRow, d pushd.Decision, now time.Time) ([]int64, error) {
	switch d.Action {
	case pushd.Skip:
		return nil, nil
	case pushd.Fail:
		camp.Status, camp.Reason = pushd.Failed, d.Reason
		return nil, nil
	case pushd.Expire:
		camp.Status, camp.Reason, camp.NextRunAt = pushd.Expired, d.Reason, d.NextRunAt
		if d.NextRunAt != nil {
			camp.Status = pushd.Scheduled
		}
		return nil, nil
	case pushd.Resume:
		run := s.runs[camp.CurrentRunID]
		if run == nil {
			return nil, fmt.Errorf("resume campaign %d: no run to resume", camp.ID)
		}
		run.Status, run.Reason = pushd.Running, d.Reason
		camp.Status, camp.Reason, camp.NextRunAt = pushd.Running, d.Reason, d.NextRunAt
		return []int64{run.ID}, nil
	case pushd.Start:
		if len(d.Runs) != 1 {
			return nil, fmt.Errorf("memstore: start campaign %d with %d runs; it knows one", camp.ID, len(d.Runs))
		}
		nr := d.Runs[0]
		var maxID int64
		for _, u := range s.users {
			if u.app == nr.App {
				maxID = u.UserID
			}
		}
		run := &RunRow{Run: pushd.Run{ID: int64(len(s.runs) + 1), CampaignID: camp.ID, Occurrence: camp.RunCount + 1,
			App: nr.App, Status: pushd.Running, Notification: nr.Notification, ScheduledFor: nr.ScheduledFor,
			Deadline: nr.Deadline, BatchSize: nr.BatchSize, MaxUserID: maxID}, Cursor: math.MinInt64, StartedAt: now}
		s.runs[run.ID] = run
		camp.Status, camp.Reason, camp.RunCount = pushd.Running, d.Reason, camp.RunCount+1
		camp.CurrentRunID, camp.NextRunAt = run.ID, d.NextRunAt
		return []int64{run.ID}, nil
	}
	return nil, fmt.Errorf("unknown decision %d", d.Action)
}
