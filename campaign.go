package pushd

import (
	"errors"
	"strings"
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
	ID int64
	// App is the app's config.ini section, or several separated by commas:
	// see Apps.
	App string
	// Segment and ExcludeSegment name segment_<name> tables or views; empty
	// when NULL.
	Segment, ExcludeSegment string
	// IgnoreFrequencyCap sends even to users who reached the cap.
	IgnoreFrequencyCap bool
	// LocalTime says ScheduledAt and ExpiresAt are wall-clock times in each
	// user's zone; LatePolicy is late_policy ("" for the default, skip).
	LocalTime  bool
	LatePolicy string
	// IgnoreQuietHours sends even inside the app's quiet hours.
	IgnoreQuietHours bool
	// MaxPerMinute is the campaign's pace, nil for as fast as the app goes.
	MaxPerMinute *int
	Title        string
	Body         string
	Data         string // raw JSON text; empty when NULL
	Badge        *int
	Sound        string
	CollapseID   string
	// The rich and silent push columns; empty or nil when NULL.
	Subtitle, ImageURL, Link, Category, ThreadID, ChannelID string
	InterruptionLevel, Priority                             string
	RelevanceScore                                          *float64
	Silent                                                  bool
	Overrides                                               string // raw JSON text
	// Translations are the campaign's campaign_translations rows.
	Translations []Translation
	// Variants are its campaign_variants rows; HoldoutPercent its
	// holdout_percent.
	Variants       []Variant
	HoldoutPercent int
	ScheduledAt    time.Time
	ExpiresAt      *time.Time
	BatchSize      *int
	Cron           string
	RepeatUntil    *time.Time
	Status         Status
	RunCount       int
	NextRunAt      *time.Time
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

// Apps splits App into its app names, trimmed, in the order written and
// without empty ones.
func (c *Campaign) Apps() []string {
	var out []string
	for _, a := range strings.Split(c.App, ",") {
		if a = strings.TrimSpace(a); a != "" {
			out = append(out, a)
		}
	}
	return out
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
	// Runs are the runs Start creates: one per app of the campaign, all of
	// the same occurrence.
	Runs []NewRun
}

// NewRun describes a run to create.
type NewRun struct {
	App          string
	ScheduledFor time.Time
	Deadline     time.Time
	BatchSize    int
	Notification []byte // JSON snapshot, decoded by the campaign package
	// UserData: the notification is personal, so batches read the users'
	// locale and attributes.
	UserData bool
	Audience Audience
	Cap      FrequencyCap
	// Timing, when Grouped, splits the run by zone: store makes a run per
	// group of users that share send time and deadline.
	Timing Timing
	// MaxPerMinute is the campaign's pace across all instances; 0 none.
	MaxPerMinute int
}

// Audience says who a run sends to beyond "the app's users".
type Audience struct {
	// Segment and Exclude name segment_<name> tables or views; empty for
	// none. With a segment, the run's audience is evaluated once when it
	// starts and kept in pushd_run_members.
	Segment, Exclude string
}

// Segmented reports whether the audience is narrowed by a segment.
func (a Audience) Segmented() bool { return a.Segment != "" || a.Exclude != "" }

// FrequencyCap is the rule a run applies: a user sent Count pushes of the
// app within the last Window gets no other. Window 0: the app has no cap,
// and its sends are not tracked. Count 0 with a Window: the campaign
// ignores the cap, but its sends still count towards later campaigns'.
type FrequencyCap struct {
	Count  int
	Window time.Duration
}

// Tracked reports whether the run's sends count towards the cap.
func (f FrequencyCap) Tracked() bool { return f.Window > 0 }

// Checked reports whether the run leaves out capped users.
func (f FrequencyCap) Checked() bool { return f.Window > 0 && f.Count > 0 }

// SegmentError is a segment a campaign names that cannot be read: a data
// error, worded for the staff who wrote the row.
type SegmentError struct {
	Segment string
	Problem string // what is wrong and how to fix it
}

func (e *SegmentError) Error() string {
	return "segment '" + e.Segment + "' " + e.Problem
}

// ErrNotDue is returned by Decide when another instance took the campaign or
// staff changed it since it was listed.
var ErrNotDue = errors.New("campaign is no longer due")

// Due is a campaign due at a time.
type Due struct {
	CampaignID int64
	At         time.Time
}

// LocalDue is when a local-time campaign whose (wall-clock) due time is at
// starts: LocalLead before the earliest zone, UTC+14, reaches it, so that
// splitting the audience by zone (seconds for millions of users) is done
// when the first zone's time comes.
func LocalDue(at time.Time) time.Time {
	return WallOf(at).In(time.FixedZone("UTC+14", int(EarliestOffset.Seconds()))).Add(-LocalLead)
}

// LocalLead is how long before its first zone's time a local-time run
// starts.
const LocalLead = time.Minute

// LocalEnd is when a local-time deadline at has passed everywhere: when the
// latest zone, UTC−12, reaches it.
func LocalEnd(at time.Time) time.Time {
	return WallOf(at).In(time.FixedZone("UTC-12", int(LatestOffset.Seconds())))
}

// CampaignStatus is a campaign row as `pushd status` shows it: what staff
// wrote, the counts of its current run and the run's timing.
type CampaignStatus struct {
	ID     int64
	App    string
	Title  string
	Status Status
	Reason string // status_reason
	// Counts of the current run, as on the campaigns row. Before the first
	// run Targeted is the estimate of the reach.
	Targeted, Sent, Failed, Invalid, Expired, Capped, Skipped int64
	RunCount                                                  int
	Cron                                                      string
	ScheduledAt                                               time.Time
	ExpiresAt                                                 *time.Time
	NextRunAt                                                 *time.Time
	UpdatedAt                                                 time.Time
	// Run is the current run, nil before the first; with several apps, the
	// first app's run.
	Run *RunTiming
	// Apps splits the current occurrence by app when the campaign names
	// several; nil otherwise.
	Apps []AppRun
	// Runs are the ids of the current occurrence's runs (one per app, and
	// per send time for local-time campaigns), when it has several.
	Runs []int64
	// Locales counts the users of the current occurrence sent each
	// translation ("" for the campaign's own text); nil without
	// translations.
	Locales map[string]int64
	// Variants are the current occurrence's figures per variant, in name
	// order; nil without variants. HeldOut counts its holdout group.
	Variants []VariantStat
	HeldOut  int64
}

// VariantStat is one variant's reach and opens in an occurrence.
type VariantStat struct {
	Name         string
	Sent, Opened int64
}

// AppRun is one app's share of a campaign that names several: the sums
// over its runs.
type AppRun struct {
	App                                                       string
	RunIDs                                                    []int64
	Status                                                    Status
	Targeted, Sent, Failed, Invalid, Expired, Capped, Skipped int64
}

// RunIDs are the ids of the current occurrence's runs.
func (c CampaignStatus) RunIDs() []int64 {
	if len(c.Runs) > 0 {
		return c.Runs
	}
	if c.Run != nil {
		return []int64{c.Run.ID}
	}
	return nil
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
