package fcm

import (
	"errors"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/pushd/pushd/providers"
	"golang.org/x/oauth2"
)

func TestRetryAfter(t *testing.T) {
	t.Parallel()
	now := time.Date(2030, 1, 1, 12, 0, 0, 0, time.UTC)
	tests := []struct {
		header string
		def    time.Duration
		want   time.Duration
	}{
		{"", time.Minute, time.Minute},
		{"", 0, 0},
		{"0", time.Minute, 0},
		{"120", 0, 2 * time.Minute},
		{" 7 ", 0, 7 * time.Second},
		{now.Add(90 * time.Second).Format(http.TimeFormat), 0, 90 * time.Second},
		{now.Add(-time.Hour).Format(http.TimeFormat), time.Minute, 0}, // in the past: now
		{"Wednesday, 01-Jan-30 12:00:30 GMT", 0, 30 * time.Second},    // RFC 850
		{"Tue Jan  1 12:01:00 2030", 0, time.Minute},                  // asctime
		{"99999999999999999999", 0, maxRetryAfter},
		{"86401", 0, maxRetryAfter},
		{"-5", time.Minute, time.Minute},
		{"soon", time.Minute, time.Minute},
		{"1.5", 0, 0},
	}
	for _, tt := range tests {
		h := http.Header{}
		if tt.header != "" {
			h.Set("Retry-After", tt.header)
		}
		if got := retryAfter(h, now, tt.def); got != tt.want {
			t.Errorf("Retry-After %q (default %v) = %v, want %v", tt.header, tt.def, got, tt.want)
		}
	}
}

func TestClassifyEdges(t *testing.T) {
	t.Parallel()
	now := time.Now()
	long := strings.Repeat("é", 2000)
	tests := []struct {
		name   string
		status int
		body   string
		want   providers.Result
	}{
		{"200 without a name", 200, ``, providers.Result{Outcome: providers.Delivered, Status: 200}},
		{"200 pretty-printed", 200, "{\n  \"name\": \"projects/p/messages/1\"\n}\n", providers.Result{Outcome: providers.Delivered, Status: 200, ID: "projects/p/messages/1"}},
		{"200 name with escapes", 200, `{"name":"a\u00e9\"b"}`, providers.Result{Outcome: providers.Delivered, Status: 200, ID: `aé"b`}},
		{"200 name repeated", 200, `{"name":"first","name":"second"}`, providers.Result{Outcome: providers.Delivered, Status: 200, ID: "second"}},
		{"200 not JSON after the name", 200, `{"name":"x"} junk`, providers.Result{Outcome: providers.Delivered, Status: 200}},
		{"401 without body refreshes", 401, ``, providers.Result{Outcome: providers.CredentialFailure, Status: 401, Reason: "UNAUTHENTICATED", Hint: hintAccessToken}},
		{"403 without body", 403, `Forbidden`, providers.Result{Outcome: providers.CredentialFailure, Status: 403, Reason: "PERMISSION_DENIED", Hint: hintProject}},
		{"404 HTML", 404, `<html>Not Found</html>`, providers.Result{Outcome: providers.CredentialFailure, Status: 404, Reason: "NOT_FOUND", Hint: hintProject}},
		{"400 without body", 400, ``, providers.Result{Outcome: providers.Rejected, Status: 400, Reason: "INVALID_ARGUMENT"}},
		{"409", 409, googleError(409, "ABORTED", "conflict", ""), providers.Result{Outcome: providers.Rejected, Status: 409, Reason: "ABORTED", Detail: "conflict"}},
		{"302", 302, ``, providers.Result{Outcome: providers.Rejected, Status: 302, Reason: "HTTP_302"}},
		{"500 says UNREGISTERED: still retryable", 500, googleError(500, "INTERNAL", "x", "UNREGISTERED"), providers.Result{Outcome: providers.Retryable, Status: 500, Reason: "UNREGISTERED", Detail: "x"}},
		{"400 says QUOTA_EXCEEDED", 400, googleError(400, "RESOURCE_EXHAUSTED", "x", "QUOTA_EXCEEDED"), providers.Result{Outcome: providers.Retryable, Status: 400, Reason: "QUOTA_EXCEEDED", Detail: "x", RetryAfter: time.Minute}},
		{"FcmError detail wins over status", 404, `{"error":{"code":404,"status":"NOT_FOUND","details":[{"@type":"type.googleapis.com/google.rpc.Other","errorCode":"X"},{"@type":"type.googleapis.com/google.firebase.fcm.v1.FcmError","errorCode":"UNREGISTERED"}]}}`,
			providers.Result{Outcome: providers.TokenInvalid, Status: 404, Reason: "UNREGISTERED"}},
	}
	for _, tt := range tests {
		if got := classify(tt.status, http.Header{}, []byte(tt.body), now); got != tt.want {
			t.Errorf("%s: classify =\n %+v\nwant\n %+v", tt.name, got, tt.want)
		}
	}

	got := classify(400, http.Header{}, []byte(googleError(400, "INVALID_ARGUMENT", long, "")), now)
	if len(got.Detail) > maxDetail || !utf8.ValidString(got.Detail) || len(got.Detail) < maxDetail-1 {
		t.Errorf("long message kept as %d bytes (valid UTF-8: %v), want it cut to about %d", len(got.Detail), utf8.ValidString(got.Detail), maxDetail)
	}
}

func TestTokenRejection(t *testing.T) {
	t.Parallel()
	retrieve := func(status int, body string) error {
		return fmt.Errorf("oauth2: cannot fetch token: %w", &oauth2.RetrieveError{Response: &http.Response{StatusCode: status}, Body: []byte(body)})
	}
	tests := []struct {
		name string
		err  error
		want providers.Result
		ok   bool
	}{
		{"invalid_grant", retrieve(400, `{"error":"invalid_grant","error_description":"Invalid JWT Signature."}`),
			providers.Result{Outcome: providers.CredentialFailure, Status: 400, Reason: "invalid_grant", Detail: "Invalid JWT Signature.", Hint: hintServiceAccount}, true},
		{"unauthorized_client without JSON", retrieve(401, `nope`),
			providers.Result{Outcome: providers.CredentialFailure, Status: 401, Reason: "Unauthorized", Hint: hintServiceAccount}, true},
		{"throttled", retrieve(429, `{"error":"rate_limit_exceeded"}`), providers.Result{}, false},
		{"server error", retrieve(500, `{"error":"internal_failure"}`), providers.Result{}, false},
		{"network", errors.New("dial tcp: connection refused"), providers.Result{}, false},
	}
	for _, tt := range tests {
		got, ok := tokenRejection(tt.err)
		if ok != tt.ok || got != tt.want {
			t.Errorf("%s: tokenRejection = %+v, %v; want %+v, %v", tt.name, got, ok, tt.want, tt.ok)
		}
	}
}

func TestReadBodyIsBounded(t *testing.T) {
	t.Parallel()
	big := strings.NewReader(strings.Repeat("x", 3*maxBody))
	b, err := readBody(big, nil)
	if !errors.Is(err, errBodyTooLarge) || len(b) != maxBody {
		t.Errorf("readBody of %d bytes = %d bytes, %v; want %d and errBodyTooLarge", 3*maxBody, len(b), err, maxBody)
	}
	b, err = readBody(strings.NewReader("small"), make([]byte, 0, 2))
	if err != nil || string(b) != "small" {
		t.Errorf("readBody = %q, %v", b, err)
	}
}
