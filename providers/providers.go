// Package providers holds the types shared by the push provider clients
// (providers/apns, providers/fcm) and their consumer, the campaign runner.
//
// Protocol details live in the sub-packages only. This package says what a
// campaign asks a provider to send and what a provider's answer means for the
// campaign; it never speaks HTTP.
package providers

import (
	"errors"
	"time"
)

// Prepared is a pushd.Notification rendered for one provider by its Prepare method.
// Only the provider that made it can send it.
type Prepared interface {
	// PayloadSize is the size in bytes of the rendered payload that counts
	// against the provider's limit.
	PayloadSize() int
}

// Outcome says what a provider's answer means for one message.
type Outcome string

// The outcomes of one send.
const (
	// Delivered means the provider accepted the message.
	Delivered Outcome = "delivered"
	// Rejected is a permanent failure of this message; never retry it.
	Rejected Outcome = "rejected"
	// TokenInvalid means the device token is dead or not for this app:
	// invalidate it and never retry.
	TokenInvalid Outcome = "token_invalid"
	// Retryable is a transient failure (throttling, 5xx): retry with backoff.
	Retryable Outcome = "retryable"
	// CredentialFailure means the app's credentials or settings (key, team,
	// topic, project) are rejected; every further send of the app fails the
	// same way, so hold the app's pushes instead of burning the audience.
	CredentialFailure Outcome = "credential_failure"
	// AppThrottled means the provider refuses the whole app for a while
	// (APNs TooManyProviderTokenUpdates), not this message or device: hold
	// the app's pushes and try again later. RetryAfter says how long, if
	// the provider did.
	AppThrottled Outcome = "app_throttled"
)

// Result is a provider's answer to one send. A rejection is data, not an
// error: Send returns an error only when it could not get an answer.
type Result struct {
	Outcome Outcome
	// Status is the HTTP status code of the answer.
	Status int
	// Reason is the provider's reason or error code, e.g. "BadDeviceToken" or
	// "UNREGISTERED". Empty on success.
	Reason string
	// Detail is the provider's human-readable message, if any.
	Detail string
	// RetryAfter is the wait the provider asked for (Retry-After), zero if none.
	RetryAfter time.Duration
	// InvalidSince is when the provider last knew the token to be invalid
	// (the APNs 410 timestamp). Zero when the provider does not say.
	InvalidSince time.Time
	// ID is the provider's id for the message (apns-id, FCM message name).
	ID string
	// Hint tells a person what to fix, in words fit for a campaign's
	// status_reason, e.g. "check key_id and team_id". Empty when there is
	// nothing to fix on our side.
	Hint string
}

// ErrTokenMalformed is wrapped by a provider's ValidateToken for a token that
// cannot be a device token of that provider, so it is never sent.
var ErrTokenMalformed = errors.New("malformed device token")

// ErrNotSent is matched by a Send error when the push certainly never
// reached the provider: no connection could be made before the request's
// deadline (the provider or the network is down), or every connection
// refused it unprocessed. Sending it again cannot duplicate it, and it
// says nothing against the push: the campaign does not count it as a try.
// The clients translate transport.ErrNotSent into it.
var ErrNotSent = errors.New("not sent")

// ErrExpired is returned by Send when the notification's Expiration has
// passed: nothing is sent after the deadline.
var ErrExpired = errors.New("notification deadline has passed")

// ErrPayloadTooLarge is wrapped by Prepare when the rendered payload exceeds
// the provider's limit.
var ErrPayloadTooLarge = errors.New("payload too large")

// Await starts an asynchronous send and waits for its result: it makes a
// client's Send out of its SendAsync.
func Await(send func(done func(Result, error))) (Result, error) {
	var (
		res Result
		err error
	)
	answered := make(chan struct{})
	send(func(r Result, e error) {
		res, err = r, e
		close(answered)
	})
	<-answered
	return res, err
}
