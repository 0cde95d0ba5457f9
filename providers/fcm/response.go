package fcm

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/pushd/pushd/providers"
)

// FCM error codes (the FcmError detail's errorCode) and the Google API
// statuses that stand in for them when no detail is sent.
const (
	codeUnspecified        = "UNSPECIFIED_ERROR"
	codeInvalidArgument    = "INVALID_ARGUMENT"
	codeUnregistered       = "UNREGISTERED"
	codeSenderIDMismatch   = "SENDER_ID_MISMATCH"
	codeQuotaExceeded      = "QUOTA_EXCEEDED"
	codeUnavailable        = "UNAVAILABLE"
	codeInternal           = "INTERNAL"
	codeThirdPartyAuth     = "THIRD_PARTY_AUTH_ERROR"
	codeUnauthenticated    = "UNAUTHENTICATED"
	codePermissionDenied   = "PERMISSION_DENIED"
	codeNotFound           = "NOT_FOUND"
	codeResourceExhausted  = "RESOURCE_EXHAUSTED"
	fcmErrorType           = "type.googleapis.com/google.firebase.fcm.v1.FcmError"
	badRequestType         = "type.googleapis.com/google.rpc.BadRequest"
	defaultQuotaRetryAfter = time.Minute
)

// Hints for a campaign's status_reason.
const (
	hintAPNsKey = "the APNs key or certificate uploaded to Firebase is invalid: replace it in the Firebase console (Project settings > Cloud Messaging)"
	hintProject = "check project_id and that the service account has the Firebase Cloud Messaging API Admin role in that project"
)

// Bounds on what is read and kept from an answer.
const (
	maxBody       = 64 << 10
	maxDetail     = 1024
	maxRetryAfter = 24 * time.Hour
)

// apiError is Google's error shape.
type apiError struct {
	Error struct {
		Code    int    `json:"code"`
		Message string `json:"message"`
		Status  string `json:"status"`
		Details []struct {
			Type            string `json:"@type"`
			ErrorCode       string `json:"errorCode"`
			FieldViolations []struct {
				Field       string `json:"field"`
				Description string `json:"description"`
			} `json:"fieldViolations"`
		} `json:"details"`
	} `json:"error"`
}

// classify maps an answer of messages:send to a Result. now is for a
// Retry-After given as a date.
//
// The FCM code is the FcmError detail's errorCode, else the Google status,
// else one derived from the HTTP status. 2xx is Delivered; 429 and 5xx are
// Retryable whatever the body says (a 429 may come with no details, and a
// server error must never invalidate a token); other 4xx follow the code and
// fall back to Rejected, as does any other status.
func classify(status int, h http.Header, body []byte, now time.Time) providers.Result {
	res := providers.Result{Status: status}
	if status >= 200 && status <= 299 {
		res.Outcome = providers.Delivered
		res.ID = messageName(body)
		return res
	}

	var e apiError
	// A body that is not Google's JSON (a proxy's HTML page, a cut-off
	// answer) leaves e empty: the HTTP status alone decides.
	_ = json.Unmarshal(body, &e)
	code := ""
	tokenField := false
	for _, d := range e.Error.Details {
		switch d.Type {
		case fcmErrorType:
			if code == "" {
				code = d.ErrorCode
			}
		case badRequestType:
			for _, v := range d.FieldViolations {
				tokenField = tokenField || v.Field == "message.token"
			}
		}
	}
	if code == "" {
		code = e.Error.Status
	}
	if code == "" {
		code = statusCode(status)
	}
	res.Reason = code
	res.Detail = truncate(e.Error.Message, maxDetail)

	switch {
	case status == http.StatusTooManyRequests:
		res.Outcome = providers.Retryable
		res.RetryAfter = retryAfter(h, now, defaultQuotaRetryAfter)
		return res
	case status >= 500 && status <= 599:
		res.Outcome = providers.Retryable
		res.RetryAfter = retryAfter(h, now, 0)
		return res
	case status < 400 || status > 499:
		// Not an answer FCM gives (a redirect, say): nothing to act on but
		// the message did not go.
		res.Outcome = providers.Rejected
		return res
	}

	switch code {
	case codeUnregistered, codeSenderIDMismatch:
		res.Outcome = providers.TokenInvalid
	case codeInvalidArgument:
		res.Outcome = providers.Rejected
		if tokenField || badTokenMessage(e.Error.Message) {
			res.Outcome = providers.TokenInvalid
		}
	case codeThirdPartyAuth:
		res.Outcome = providers.CredentialFailure
		res.Hint = hintAPNsKey
	case codeUnauthenticated:
		// Send refreshes the access token and tries once more before this
		// stands.
		res.Outcome = providers.CredentialFailure
		res.Hint = hintAccessToken
	case codePermissionDenied:
		res.Outcome = providers.CredentialFailure
		res.Hint = hintProject
	case codeNotFound:
		// A dead token is 404 with an UNREGISTERED detail; without one the
		// project (or the URL) is what was not found.
		res.Outcome = providers.CredentialFailure
		res.Hint = hintProject
	case codeQuotaExceeded, codeResourceExhausted:
		res.Outcome = providers.Retryable
		res.RetryAfter = retryAfter(h, now, defaultQuotaRetryAfter)
	case codeUnavailable, codeInternal:
		res.Outcome = providers.Retryable
		res.RetryAfter = retryAfter(h, now, 0)
	case codeUnspecified:
		// FCM knows no more; on a 4xx the message is at fault.
		res.Outcome = providers.Rejected
	default:
		res.Outcome = providers.Rejected
	}
	return res
}

// statusCode names the Google status that an HTTP status stands for, for an
// answer without a body.
func statusCode(status int) string {
	switch status {
	case http.StatusBadRequest:
		return codeInvalidArgument
	case http.StatusUnauthorized:
		return codeUnauthenticated
	case http.StatusForbidden:
		return codePermissionDenied
	case http.StatusNotFound:
		return codeNotFound
	case http.StatusTooManyRequests:
		return codeQuotaExceeded
	case http.StatusInternalServerError:
		return codeInternal
	case http.StatusServiceUnavailable:
		return codeUnavailable
	}
	return "HTTP_" + strconv.Itoa(status)
}

// badTokenMessage recognises FCM's INVALID_ARGUMENT for a token, e.g. "The
// registration token is not a valid FCM registration token".
func badTokenMessage(msg string) bool {
	m := strings.ToLower(msg)
	return strings.Contains(m, "registration token") &&
		(strings.Contains(m, "not a valid") || strings.Contains(m, "invalid"))
}

// retryAfter reads Retry-After as delay-seconds or an HTTP date, capped at
// maxRetryAfter; def when absent or unreadable.
func retryAfter(h http.Header, now time.Time, def time.Duration) time.Duration {
	v := strings.TrimSpace(h.Get("Retry-After"))
	if v == "" {
		return def
	}
	if secs, err := strconv.ParseUint(v, 10, 64); err == nil || errors.Is(err, strconv.ErrRange) {
		if err != nil || secs > uint64(maxRetryAfter/time.Second) {
			return maxRetryAfter
		}
		return time.Duration(secs) * time.Second
	}
	if t, err := http.ParseTime(v); err == nil {
		return min(max(t.Sub(now), 0), maxRetryAfter)
	}
	return def
}

// messageName returns the "name" of a success answer,
// {"name":"projects/p/messages/0:1500415314455276%31bd1c9631bd1c96"}.
func messageName(body []byte) string {
	// Fast path for the answer FCM gives, an object with the one key "name"
	// whose value has no escapes: json.Unmarshal would cost five allocations
	// on every delivered message.
	if rest, ok := cutJSON(body, '{'); ok {
		if rest, ok = cutJSON(rest, '"'); ok && bytes.HasPrefix(rest, []byte(`name"`)) {
			if rest, ok = cutJSON(rest[5:], ':'); ok {
				if rest, ok = cutJSON(rest, '"'); ok {
					end := bytes.IndexByte(rest, '"')
					if end >= 0 && bytes.IndexByte(rest[:end], '\\') < 0 {
						if tail, ok := cutJSON(rest[end+1:], '}'); ok && len(bytes.Trim(tail, " \t\r\n")) == 0 && utf8.Valid(rest[:end]) && json.Valid(body) {
							return string(rest[:end])
						}
					}
				}
			}
		}
	}
	var answer struct {
		Name string `json:"name"`
	}
	if json.Unmarshal(body, &answer) != nil {
		return ""
	}
	return answer.Name
}

// cutJSON skips JSON whitespace and then c.
func cutJSON(b []byte, c byte) ([]byte, bool) {
	b = bytes.TrimLeft(b, " \t\r\n")
	if len(b) == 0 || b[0] != c {
		return b, false
	}
	return b[1:], true
}

// truncate cuts s to at most n bytes on a rune boundary.
func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n]
}

var errBodyTooLarge = errors.New("response body over the limit")

// bufPool holds response buffers; answers are small, so one rarely grows.
var bufPool = sync.Pool{New: func() any { b := make([]byte, 0, 512); return &b }}

func getBuffer() *[]byte { return bufPool.Get().(*[]byte) }

func putBuffer(b *[]byte) {
	if cap(*b) > 16<<10 {
		return // let a rare large answer go rather than pin it
	}
	*b = (*b)[:0]
	bufPool.Put(b)
}

// readBody appends at most maxBody bytes of r to buf.
func readBody(r io.Reader, buf []byte) ([]byte, error) {
	for {
		if len(buf) >= maxBody {
			return buf, errBodyTooLarge
		}
		if len(buf) == cap(buf) {
			buf = append(buf, 0)[:len(buf)]
		}
		n, err := r.Read(buf[len(buf):min(cap(buf), maxBody)])
		buf = buf[:len(buf)+n]
		if err == io.EOF {
			return buf, nil
		}
		if err != nil {
			return buf, err
		}
	}
}
