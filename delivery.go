package pushd

import (
	"time"
)

// Outcome is a ledger outcome, as stored in pushd_deliveries.outcome.
type Outcome string

// Ledger outcomes.
const (
	Sent         Outcome = "sent"
	FailedSend   Outcome = "failed"
	InvalidToken Outcome = "invalid"
	ExpiredSend  Outcome = "expired"
)

// Delivery is the outcome for one user of a run.
type Delivery struct {
	UserID   int64
	Outcome  Outcome
	Reason   string
	Attempts int
}

// Invalidation records a token a provider declared dead.
type Invalidation struct {
	UserID int64
	App    string
	Token  string
	Since  time.Time
	Reason string
}
