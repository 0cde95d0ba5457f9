package apns

import (
	"bytes"
	"encoding/json"
	"math"
	"net/http"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/pushd/pushd/providers"
)

// The reasons APNs gives in the {"reason": ...} body of an error response,
// as documented in "Handling notification responses from APNs". They are
// untyped so they compare directly with providers.Result.Reason.
const (
	// ReasonBadCollapseID (400): the apns-collapse-id is over 64 bytes.
	ReasonBadCollapseID = "BadCollapseId"
	// ReasonBadDeviceToken (400): the device token is not a token of this
	// app, or is for the other environment (sandbox vs production).
	ReasonBadDeviceToken = "BadDeviceToken"
	// ReasonBadExpirationDate (400): the apns-expiration value is bad.
	ReasonBadExpirationDate = "BadExpirationDate"
	// ReasonBadMessageID (400): the apns-id value is bad.
	ReasonBadMessageID = "BadMessageId"
	// ReasonBadPriority (400): the apns-priority value is bad.
	ReasonBadPriority = "BadPriority"
	// ReasonBadTopic (400): the apns-topic is invalid.
	ReasonBadTopic = "BadTopic"
	// ReasonDeviceTokenNotForTopic (400): the device token does not match
	// the topic (the app's bundle id).
	ReasonDeviceTokenNotForTopic = "DeviceTokenNotForTopic"
	// ReasonDuplicateHeaders (400): a header was repeated.
	ReasonDuplicateHeaders = "DuplicateHeaders"
	// ReasonIdleTimeout (400): the connection sat idle too long.
	ReasonIdleTimeout = "IdleTimeout"
	// ReasonInvalidPushType (400): the apns-push-type value is bad.
	ReasonInvalidPushType = "InvalidPushType"
	// ReasonMissingDeviceToken (400): the request path has no device token.
	ReasonMissingDeviceToken = "MissingDeviceToken"
	// ReasonMissingTopic (400): apns-topic is required and was not sent.
	ReasonMissingTopic = "MissingTopic"
	// ReasonPayloadEmpty (400): the payload is empty.
	ReasonPayloadEmpty = "PayloadEmpty"
	// ReasonTopicDisallowed (400): pushing to this topic is not allowed.
	ReasonTopicDisallowed = "TopicDisallowed"

	// ReasonBadCertificate (403): the client certificate is invalid.
	ReasonBadCertificate = "BadCertificate"
	// ReasonBadCertificateEnvironment (403): the client certificate is for
	// the other environment.
	ReasonBadCertificateEnvironment = "BadCertificateEnvironment"
	// ReasonExpiredProviderToken (403): the provider token is stale (older
	// than an hour by Apple's clock); sign a new one.
	ReasonExpiredProviderToken = "ExpiredProviderToken"
	// ReasonForbidden (403): the action is not allowed.
	ReasonForbidden = "Forbidden"
	// ReasonInvalidProviderToken (403): the provider token is invalid or
	// its signature cannot be verified (wrong key id, team id or key).
	ReasonInvalidProviderToken = "InvalidProviderToken"
	// ReasonMissingProviderToken (403): no provider token and no
	// certificate was presented.
	ReasonMissingProviderToken = "MissingProviderToken"
	// ReasonUnrelatedKeyIDInToken (403): the token's key id is not related
	// to the key of the connection's first push.
	ReasonUnrelatedKeyIDInToken = "UnrelatedKeyIdInToken"
	// ReasonBadEnvironmentKeyIDInToken (403): the token's key is not
	// enabled for this environment (sandbox vs production).
	ReasonBadEnvironmentKeyIDInToken = "BadEnvironmentKeyIdInToken"

	// ReasonBadPath (404): the request path is wrong.
	ReasonBadPath = "BadPath"
	// ReasonMethodNotAllowed (405): only POST is supported.
	ReasonMethodNotAllowed = "MethodNotAllowed"

	// ReasonUnregistered (410): the token is no longer active for the topic,
	// typically because the app was uninstalled. The body's timestamp says
	// since when.
	ReasonUnregistered = "Unregistered"
	// ReasonExpiredToken (410): the device token has expired.
	ReasonExpiredToken = "ExpiredToken"

	// ReasonPayloadTooLarge (413): the payload is over the size limit.
	ReasonPayloadTooLarge = "PayloadTooLarge"

	// ReasonTooManyProviderTokenUpdates (429): the provider token was
	// re-signed too often (more than once every 20 minutes).
	ReasonTooManyProviderTokenUpdates = "TooManyProviderTokenUpdates"
	// ReasonTooManyRequests (429): too many pushes to the same device.
	ReasonTooManyRequests = "TooManyRequests"

	// ReasonInternalServerError (500): APNs failed internally.
	ReasonInternalServerError = "InternalServerError"
	// ReasonServiceUnavailable (503): APNs is unavailable.
	ReasonServiceUnavailable = "ServiceUnavailable"
	// ReasonShutdown (503): the APNs server is shutting down; reconnect.
	ReasonShutdown = "Shutdown"
)

// reasonInfo is what a reason means for people. The outcome is decided by
// outcomeFor, mostly from the status.
type reasonInfo struct {
	detail string // short text saying what happened
	hint   string // what to fix on our side, if anything
}

var reasons = map[string]reasonInfo{
	ReasonBadCollapseID:          {"the collapse id is too long", "shorten the campaign's collapse id"},
	ReasonBadDeviceToken:         {"the device token is not valid for this app or environment", ""},
	ReasonBadExpirationDate:      {"the expiration date is invalid", ""},
	ReasonBadMessageID:           {"the apns-id header is invalid", ""},
	ReasonBadPriority:            {"the priority is invalid", ""},
	ReasonBadTopic:               {"the topic (bundle id) is invalid", "check bundle_id in config.ini"},
	ReasonDeviceTokenNotForTopic: {"the device token belongs to another app", ""},
	ReasonDuplicateHeaders:       {"a header was repeated", ""},
	ReasonIdleTimeout:            {"the connection was idle too long", ""},
	ReasonInvalidPushType:        {"the push type is invalid", ""},
	ReasonMissingDeviceToken:     {"the device token is missing", ""},
	ReasonMissingTopic:           {"the topic (bundle id) is missing", "check bundle_id in config.ini"},
	ReasonPayloadEmpty:           {"the payload is empty", ""},
	ReasonTopicDisallowed:        {"pushing to this topic (bundle id) is not allowed", "check bundle_id in config.ini"},

	ReasonBadCertificate:             {"the certificate is invalid", "check the app's APNs credentials"},
	ReasonBadCertificateEnvironment:  {"the certificate is for the other environment", "check environment"},
	ReasonExpiredProviderToken:       {"the provider token is expired", "check the server clock"},
	ReasonForbidden:                  {"APNs forbids this action", "check that the key is enabled for APNs in the Apple developer account"},
	ReasonInvalidProviderToken:       {"the provider token is invalid", "check key_id and team_id"},
	ReasonMissingProviderToken:       {"no provider token was sent", "check auth_key_path, key_id and team_id"},
	ReasonUnrelatedKeyIDInToken:      {"the key id does not match the connection's key", "check key_id"},
	ReasonBadEnvironmentKeyIDInToken: {"the key is not enabled for this environment", "check environment"},

	ReasonBadPath:          {"the request path is invalid", ""},
	ReasonMethodNotAllowed: {"the request method is not allowed", ""},

	ReasonUnregistered: {"the device token is no longer registered (app uninstalled)", ""},
	ReasonExpiredToken: {"the device token has expired", ""},

	ReasonPayloadTooLarge: {"the payload is too large", "shorten the title, body or custom data"},

	ReasonTooManyProviderTokenUpdates: {"the provider token was renewed too often", ""},
	ReasonTooManyRequests:             {"too many notifications to the same device", ""},

	ReasonInternalServerError: {"APNs had an internal error", ""},
	ReasonServiceUnavailable:  {"APNs is unavailable", ""},
	ReasonShutdown:            {"the APNs server is shutting down", ""},
}

// maxResponseBody bounds how much of a response body is read. APNs error
// bodies are a few dozen bytes.
const maxResponseBody = 2048

// maxDetail bounds Result.Detail when it quotes an unexpected body.
const maxDetail = 200

// errorBody is an APNs error response body.
type errorBody struct {
	Reason string `json:"reason"`
	// Timestamp is milliseconds since the UNIX epoch (410 only). It is kept
	// raw so that an odd value costs only the timestamp, not the reason.
	Timestamp json.RawMessage `json:"timestamp"`
}

// parseResponse maps an APNs answer to a Result. apnsID is the apns-id
// header, retryAfter the Retry-After header (APNs does not document one, but
// a proxy may send it), body at most maxResponseBody bytes of the body, and
// now the clock for an HTTP-date Retry-After.
func parseResponse(status int, apnsID, retryAfter string, body []byte, now time.Time) providers.Result {
	r := providers.Result{Status: status, ID: apnsID}
	if status == http.StatusOK {
		r.Outcome = providers.Delivered
		return r
	}
	var eb errorBody
	if err := json.Unmarshal(bytes.TrimSpace(body), &eb); err != nil {
		eb = errorBody{}
	}
	r.Reason = printable(eb.Reason)
	r.RetryAfter = parseRetryAfter(retryAfter, now)

	r.Outcome = outcomeFor(status, eb.Reason)
	info, known := reasons[eb.Reason]
	switch {
	case known:
		r.Detail = info.detail
		r.Hint = info.hint
	case r.Reason != "":
		r.Detail = "APNs answered " + strconv.Itoa(status) + " " + r.Reason
	case len(body) > 0:
		r.Detail = "APNs answered " + strconv.Itoa(status) + ": " + printable(string(body))
	default:
		r.Detail = "APNs answered " + strconv.Itoa(status) + " " + http.StatusText(status)
	}
	if r.Outcome == providers.CredentialFailure && r.Hint == "" {
		r.Hint = "check key_id, team_id, bundle_id and environment"
	}
	if status == http.StatusGone {
		r.InvalidSince = parseMillis(eb.Timestamp)
	}
	return r
}

// outcomeFor decides the outcome from the status, and from the reason
// where one status covers reasons that mean different things.
func outcomeFor(status int, reason string) providers.Outcome {
	switch status {
	case http.StatusBadRequest:
		switch reason {
		case ReasonBadDeviceToken, ReasonDeviceTokenNotForTopic:
			return providers.TokenInvalid
		case ReasonBadTopic, ReasonTopicDisallowed, ReasonMissingTopic:
			// Every push of the app would fail the same way.
			return providers.CredentialFailure
		case ReasonIdleTimeout:
			return providers.Retryable
		}
		return providers.Rejected
	case http.StatusForbidden:
		return providers.CredentialFailure
	case http.StatusGone:
		return providers.TokenInvalid
	case http.StatusNotFound, http.StatusMethodNotAllowed, http.StatusRequestEntityTooLarge:
		return providers.Rejected
	case http.StatusTooManyRequests:
		if reason == ReasonTooManyProviderTokenUpdates {
			// The key's token updates, counted for the whole team and key.
			return providers.AppThrottled
		}
		return providers.Retryable
	}
	if status >= 500 {
		return providers.Retryable
	}
	// Other 4xx, and statuses APNs never sends (1xx, other 2xx, 3xx): do not
	// retry what we do not understand.
	return providers.Rejected
}

// parseMillis reads the 410 timestamp, milliseconds since the UNIX epoch.
// It returns the zero time for a missing, non-numeric or non-positive value.
func parseMillis(raw json.RawMessage) time.Time {
	s := strings.Trim(string(raw), `"`)
	if s == "" {
		return time.Time{}
	}
	ms, err := strconv.ParseInt(s, 10, 64)
	if err != nil {
		f, ferr := strconv.ParseFloat(s, 64)
		// Reject what does not fit in int64 milliseconds (~292 million years).
		if ferr != nil || math.IsNaN(f) || f < 1 || f >= 9.2e18 {
			return time.Time{}
		}
		ms = int64(f)
	}
	if ms <= 0 {
		return time.Time{}
	}
	return time.UnixMilli(ms).UTC()
}

// parseRetryAfter reads a Retry-After header: delay-seconds or an HTTP-date.
func parseRetryAfter(v string, now time.Time) time.Duration {
	if v == "" {
		return 0
	}
	if secs, err := strconv.ParseInt(v, 10, 64); err == nil {
		if secs <= 0 {
			return 0
		}
		const maxSecs = int64(7 * 24 * time.Hour / time.Second)
		return time.Duration(min(secs, maxSecs)) * time.Second
	}
	if t, err := http.ParseTime(v); err == nil && t.After(now) {
		return min(t.Sub(now), 7*24*time.Hour)
	}
	return 0
}

// printable shortens s to maxDetail bytes of valid UTF-8 without control
// characters, so an odd body cannot garble a log line or a status_reason.
func printable(s string) string {
	var b strings.Builder
	for _, r := range s {
		if b.Len() >= maxDetail {
			break
		}
		switch {
		case r == utf8.RuneError, r < 0x20, r == 0x7f:
			b.WriteByte('?')
		default:
			b.WriteRune(r)
		}
	}
	return b.String()
}
