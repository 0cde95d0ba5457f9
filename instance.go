package pushd

import "time"

// Instance is one running pushd process as its heartbeat row
// (pushd_instances) tells it: who it is and what it works on.
type Instance struct {
	// Owner is the process's name in batch leases: instance_id and a
	// suffix unique to the process start.
	Owner      string
	InstanceID string
	Host       string
	PID        int
	Version    string
	StartedAt  time.Time
	// SeenAt is its last heartbeat, on the database's clock.
	SeenAt time.Time
	// Live says the heartbeat is recent, by the database's clock.
	Live bool
	// Runs are the runs it works on, with their recent pace.
	Runs []RunProgress
}

// RunProgress is how fast one process records a run's outcomes: users per
// second over the last half minute or so.
type RunProgress struct {
	RunID int64  `json:"run"`
	App   string `json:"app,omitempty"`
	// Sent counts sent pushes; Outcomes every outcome (sent, failed,
	// invalid, expired), which is what brings a run to its end.
	Sent     float64 `json:"sent_per_s"`
	Outcomes float64 `json:"outcomes_per_s"`
}
