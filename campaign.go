package pushd

import (
	"errors"
	"time"
)

// Status is a campaign's or a run's status, as stored in the status columns.
type Status string

// Campaign and run statuses. Staff write Scheduled, Paused and Cancelled;
// pushd writes the rest.
const (
	Scheduled Status = "scheduled"
	Running   Status = "running"
	Paused    Status = "paused"
	Cancelled Status = "cancelled"
	Done      Status = "done"
	Failed    Status = "failed"
	Expired   Status = "expired"
)

// Finished reports whether a run in this status will never send again.
func (s Status) Finished() bool { return s == Done || s == Expired || s == Cancelled }

// Campaign is a row of the campaigns table as staff wrote it.
type Campaign struct {
	ID          int64
	App         string
	Title       string
	Body        string
	Data        string // raw JSON text; empty when NULL
	Badge       *int
	Sound       string
	CollapseID  string
	ScheduledAt time.Time
	ExpiresAt   *time.Time
	BatchSize   *int
	Cron        string
	RepeatUntil *time.Time
	Status      Status
	RunCount    int
	NextRunAt   *time.Time
	// CreatedAt and UpdatedAt are when the row was inserted and last
	// changed, by staff or by pushd: when it arrived as it now reads.
	CreatedAt, UpdatedAt time.Time
	// CurrentRun is the latest run, nil before the first.
	CurrentRun *RunState
}

// Arrived is when the row took its current form: the later of its
// insertion and its last change.
func (c *Campaign) Arrived() time.Time {
	if c.UpdatedAt.After(c.CreatedAt) {
		return c.UpdatedAt
	}
	return c.CreatedAt
}

// RunState is the part of a run the scheduler decides on.
type RunState struct {
	ID           int64
	Status       Status
	ScheduledFor time.Time
	Deadline     time.Time
}

// Action is what the scheduler decided to do with a due campaign.
type Action int

// The scheduler's decisions.
const (
	// Skip leaves the row alone.
	Skip Action = iota
	// Fail marks the campaign failed with Reason (a data error).
	Fail
	// Expire marks an occurrence that never started expired: its deadline
	// passed first. With NextRunAt the campaign stays scheduled. (A started
	// run that outlives its deadline is resumed and expires in the runner,
	// which records its remaining users.)
	Expire
	// Start begins a new run described by Run.
	Start
	// Resume continues the campaign's current, unfinished run.
	Resume
)

// Decision is the scheduler's verdict on one due campaign.
type Decision struct {
	Action Action
	Reason string
	// NextRunAt is the occurrence after this one for recurring campaigns;
	// nil means none (the campaign ends with this run).
	NextRunAt *time.Time
	Run       NewRun
}

// NewRun describes a run to create.
type NewRun struct {
	ScheduledFor time.Time
	Deadline     time.Time
	BatchSize    int
	Notification []byte // JSON snapshot, decoded by the campaign package
}

// ErrNotDue is returned by Decide when another instance took the campaign or
// staff changed it since it was listed.
var ErrNotDue = errors.New("campaign is no longer due")

// Due is a campaign due at a time.
type Due struct {
	CampaignID int64
	At         time.Time
}

// CampaignStatus is a campaign row as `pushd status` shows it: what staff
// wrote, the counts of its current run and the run's timing.
type CampaignStatus struct {
	ID     int64
	App    string
	Title  string
	Status Status
	Reason string // status_reason
	// Counts of the current run, as on the campaigns row.
	Targeted, Sent, Failed, Invalid, Expired int64
	RunCount                                 int
	Cron                                     string
	ScheduledAt                              time.Time
	ExpiresAt                                *time.Time
	NextRunAt                                *time.Time
	UpdatedAt                                time.Time
	// Run is the current run, nil before the first.
	Run *RunTiming
}

// RunTiming is when the current run started, must end and ended.
type RunTiming struct {
	ID         int64
	Occurrence int
	Status     Status
	StartedAt  time.Time
	Deadline   time.Time
	FinishedAt *time.Time // nil while the run is not finished
}
