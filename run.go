package pushd

import (
	"errors"
	"time"
)

// The app defaults for batch_size and concurrency, chosen by measurement
// (docs/performance.md, "Defaults at the transport's limit"): 2000 requests
// in flight is what APNs allows on the default two connections (1000
// streams each), and 5000 users per batch reads and claims a fifth as often
// as 1000. A kill -9 can duplicate only what was in flight or answered and
// not yet in the ledger, whatever the batch size (docs/reliability.md).
const (
	DefaultBatchSize   = 5000
	DefaultConcurrency = 2000
)

// Run is a run in progress, as an instance needs it to take part.
type Run struct {
	ID           int64
	CampaignID   int64
	Occurrence   int
	App          string
	Status       Status
	Notification []byte
	ScheduledFor time.Time
	Deadline     time.Time
	BatchSize    int
	MaxUserID    int64
	Audience     Audience
	// Members says the audience is the run's rows in pushd_run_members.
	Members bool
	// UserData says batches read the recipients' locale and attributes,
	// for templates and translations.
	UserData bool
	Cap      FrequencyCap
	// Zone is the zone whose local clock a local-time or quiet-hours run
	// keeps, nil for others; Quiet the quiet hours it keeps there.
	Zone  *time.Location
	Quiet QuietHours
	// MaxPerMinute is the campaign's pace across all instances; 0 none.
	MaxPerMinute int
	// Reason is the run's status_reason when it was listed: why it was
	// resumed, if there is something to say.
	Reason string
}

// Recipient is one audience member of a batch.
type Recipient struct {
	UserID       int64
	Token        string
	RegisteredAt time.Time
	// Locale and Attributes are users.locale and users.attributes, read
	// only for a run with UserData.
	Locale     string
	Attributes []byte
	// Variant is set by the campaign runner: the variant given to the user.
	Variant string
}

// Batch is a leased share of a run's audience. Every write about it must
// quote Epoch; a newer owner has a higher one.
type Batch struct {
	ID         int64
	RunID      int64
	Epoch      int64
	After      int64 // users.id > After
	Last       int64 // users.id <= Last
	Recipients []Recipient
	// TakenOver is true when the batch was released or abandoned by an
	// earlier owner; Recipients then holds only users with no outcome yet.
	TakenOver bool
	// Capped is how many users of the batch's stretch the frequency cap
	// left out; the claim recorded them. A batch with ID 0 has only those:
	// there is nothing to send or record.
	Capped int
}

// Errors of the run and batch methods.
var (
	// ErrLeaseLost means another instance owns the batch now (or it is
	// done): stop sending it and drop what was not recorded.
	ErrLeaseLost = errors.New("batch lease lost")
	// ErrNoWork means every audience user is in a batch and other instances
	// still hold live leases on some: try again after a while.
	ErrNoWork = errors.New("no batch to claim now")
	// ErrDrained means every batch is done: the run can be finished.
	ErrDrained = errors.New("run has no work left")
	// ErrBusy means another instance still holds a live lease on the run.
	ErrBusy = errors.New("another instance holds a batch of the run")
	// ErrUnavailable is matched by a store error that means the database
	// could not be reached or dropped the connection: wait and try again,
	// nothing was decided.
	ErrUnavailable = errors.New("database unavailable")
)

// RunStopped is returned by ClaimBatch when the run must not go on.
type RunStopped struct {
	// Status is the run's status or, with ByStaff, the one it should take.
	Status Status
	// ByStaff says the campaign row, not the run, says stop: staff paused
	// or cancelled it (a deleted row, or one moved on to another run,
	// counts as cancelled). The run is still marked running; whoever got
	// this stops it with Status.
	ByStaff bool
}

func (e *RunStopped) Error() string { return "run is " + string(e.Status) }

// Flush is what a runner records about one batch in one transaction.
type Flush struct {
	RunID      int64
	CampaignID int64
	BatchID    int64
	Epoch      int64
	Deliveries []Delivery
	Invalid    []Invalidation
	// Locales says the run has translations: its sent deliveries are
	// counted per Locale in pushd_run_locales.
	Locales bool
	// Done says every recipient of the batch now has an outcome.
	Done bool
	// Lease renews the batch lease by this much.
	Lease time.Duration
	Now   time.Time
	// Tracked says the run's sends count towards a frequency cap: the
	// reservations of users not sent are dropped.
	Tracked bool
	// Recheck says an earlier attempt at these deliveries may have
	// committed although it reported an error (the database went away
	// around the COMMIT). Users the run already has an outcome for are then
	// left out and not counted again.
	Recheck bool
}

// RunCounts are a run's progress counters.
type RunCounts struct {
	Targeted, Sent, Failed, Invalid, Expired, Capped, Skipped, HeldOut int64
}

// Outcomes is how many users of the run have an outcome.
func (c RunCounts) Outcomes() int64 {
	return c.Sent + c.Failed + c.Invalid + c.Expired + c.Capped + c.Skipped + c.HeldOut
}

// ReasonCount is how many deliveries failed for one reason.
type ReasonCount struct {
	Reason string
	Count  int64
}

// Purged is what one pass of ledger retention deleted.
type Purged struct {
	Runs       int   // runs whose ledger rows were deleted
	Deliveries int64 // pushd_deliveries rows
	Batches    int64 // pushd_batches rows
}
