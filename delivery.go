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
	// Capped: not sent, the user had reached the app's frequency_cap.
	Capped Outcome = "capped"
	// HeldOut: not sent on purpose, the user is in the campaign's holdout
	// group (holdout_percent), kept for comparison.
	HeldOut Outcome = "held_out"
)

// Delivery is the outcome for one user of a run.
type Delivery struct {
	UserID   int64
	Outcome  Outcome
	Reason   string
	Attempts int
	// Locale is the translation the user was sent ("" for the campaign's
	// own text); counted when the flush says Locales.
	Locale string
	// Variant is the campaign variant the user was given ("" without).
	Variant string
}

// Invalidation records a token a provider declared dead.
type Invalidation struct {
	UserID int64
	App    string
	Token  string
	Since  time.Time
	Reason string
}
