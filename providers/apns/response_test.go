package apns

import (
	"net/http"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/pushd/pushd/providers"
)

func TestParseResponse(t *testing.T) {
	t.Parallel()
	now := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	tests := []struct {
		name       string
		status     int
		retryAfter string
		body       string
		want       providers.Result
	}{
		{"delivered", 200, "", "", providers.Result{Outcome: providers.Delivered, Status: 200, ID: "id"}},
		{"unregistered with ms timestamp", 410, "", `{"reason":"Unregistered","timestamp":1456224000123}`, providers.Result{
			Outcome: providers.TokenInvalid, Status: 410, Reason: ReasonUnregistered, ID: "id",
			Detail:       reasons[ReasonUnregistered].detail,
			InvalidSince: time.Date(2016, 2, 23, 10, 40, 0, 123e6, time.UTC),
		}},
		{"float timestamp", 410, "", `{"reason":"ExpiredToken","timestamp":1.456224e12}`, providers.Result{
			Outcome: providers.TokenInvalid, Status: 410, Reason: ReasonExpiredToken, ID: "id",
			Detail:       reasons[ReasonExpiredToken].detail,
			InvalidSince: time.Date(2016, 2, 23, 10, 40, 0, 0, time.UTC),
		}},
		{"timestamp ignored off 410", 400, "", `{"reason":"BadDeviceToken","timestamp":1456224000123}`, providers.Result{
			Outcome: providers.TokenInvalid, Status: 400, Reason: ReasonBadDeviceToken, ID: "id",
			Detail: reasons[ReasonBadDeviceToken].detail,
		}},
		{"retry-after seconds", 429, "30", `{"reason":"TooManyRequests"}`, providers.Result{
			Outcome: providers.Retryable, Status: 429, Reason: ReasonTooManyRequests, ID: "id",
			Detail: reasons[ReasonTooManyRequests].detail, RetryAfter: 30 * time.Second,
		}},
		{"retry-after date", 503, now.Add(90 * time.Second).Format(http.TimeFormat), `{"reason":"Shutdown"}`, providers.Result{
			Outcome: providers.Retryable, Status: 503, Reason: ReasonShutdown, ID: "id",
			Detail: reasons[ReasonShutdown].detail, RetryAfter: 90 * time.Second,
		}},
		{"retry-after garbage", 503, "soon", `{"reason":"Shutdown"}`, providers.Result{
			Outcome: providers.Retryable, Status: 503, Reason: ReasonShutdown, ID: "id",
			Detail: reasons[ReasonShutdown].detail,
		}},
		{"non-JSON body", 502, "", "<html>Bad Gateway</html>", providers.Result{
			Outcome: providers.Retryable, Status: 502, ID: "id", Detail: "APNs answered 502: <html>Bad Gateway</html>",
		}},
		{"empty body", 500, "", "", providers.Result{
			Outcome: providers.Retryable, Status: 500, ID: "id", Detail: "APNs answered 500 Internal Server Error",
		}},
		{"control characters are neutralised", 400, "", "{\"reason\":\"Odd\\nReason\"}", providers.Result{
			Outcome: providers.Rejected, Status: 400, Reason: "Odd?Reason", ID: "id", Detail: "APNs answered 400 Odd?Reason",
		}},
		{"unknown 3xx is not retried", 302, "", "", providers.Result{
			Outcome: providers.Rejected, Status: 302, ID: "id", Detail: "APNs answered 302 Found",
		}},
	}
	for _, tt := range tests {
		got := parseResponse(tt.status, "id", tt.retryAfter, []byte(tt.body), now)
		if got != tt.want {
			t.Errorf("%s:\n got %+v\nwant %+v", tt.name, got, tt.want)
		}
	}
}

func TestDetailIsBounded(t *testing.T) {
	t.Parallel()
	got := parseResponse(500, "", "", []byte(strings.Repeat("é", 2000)), time.Now())
	if len(got.Detail) > 250 || !utf8.ValidString(got.Detail) {
		t.Errorf("Detail is %d bytes, valid UTF-8 %v", len(got.Detail), utf8.ValidString(got.Detail))
	}
}

var validOutcomes = map[providers.Outcome]bool{
	providers.Delivered: true, providers.Rejected: true, providers.TokenInvalid: true,
	providers.Retryable: true, providers.CredentialFailure: true,
}

func FuzzParseResponse(f *testing.F) {
	f.Add(200, []byte(""), "")
	f.Add(410, []byte(`{"reason":"Unregistered","timestamp":1456224000123}`), "")
	f.Add(403, []byte(`{"reason":"ExpiredProviderToken"}`), "")
	f.Add(429, []byte(`{"reason":"TooManyRequests"}`), "120")
	f.Add(503, []byte(`{"reason":"Shutdown"}`), "Wed, 21 Oct 2015 07:28:00 GMT")
	f.Add(410, []byte(`{"reason":"ExpiredToken","timestamp":1e400}`), "")
	f.Add(400, []byte("\xff\xfe{"), "-1")
	now := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	f.Fuzz(func(t *testing.T, status int, body []byte, retryAfter string) {
		if len(body) > maxResponseBody {
			body = body[:maxResponseBody]
		}
		r := parseResponse(status, "", retryAfter, body, now)
		if !validOutcomes[r.Outcome] {
			t.Fatalf("outcome %q", r.Outcome)
		}
		if r.Status != status {
			t.Fatalf("status %d, want %d", r.Status, status)
		}
		switch {
		case status == 200 && r.Outcome != providers.Delivered,
			status != 200 && r.Outcome == providers.Delivered,
			status == 410 && r.Outcome != providers.TokenInvalid,
			status == 403 && r.Outcome != providers.CredentialFailure,
			status >= 500 && r.Outcome != providers.Retryable:
			t.Fatalf("status %d gave %s", status, r.Outcome)
		}
		if r.Outcome == providers.CredentialFailure && r.Hint == "" {
			t.Fatal("credential failure without a hint")
		}
		if status != 410 && !r.InvalidSince.IsZero() {
			t.Fatalf("InvalidSince %v on a %d", r.InvalidSince, status)
		}
		if r.RetryAfter < 0 || r.RetryAfter > 7*24*time.Hour {
			t.Fatalf("RetryAfter %v", r.RetryAfter)
		}
		for _, s := range []string{r.Reason, r.Detail} {
			if len(s) > 300 || !utf8.ValidString(s) || strings.ContainsAny(s, "\r\n\x00") {
				t.Fatalf("unsafe text %q", s)
			}
		}
	})
}
