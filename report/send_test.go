package report

import (
	"strings"
	"testing"
	"time"

	"github.com/pushd/pushd"
	"github.com/pushd/pushd/providers"
)

// TestDescribeResult pins the wording of answers pushsim cannot produce
// on demand.
func TestDescribeResult(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		kind pushd.PushType
		res  providers.Result
		ok   bool
		want []string
	}{
		{pushd.FCM, providers.Result{Outcome: providers.Retryable, Status: 429, Reason: "QUOTA_EXCEEDED", RetryAfter: time.Minute},
			false, []string{"not delivered, for now: QUOTA_EXCEEDED — the Firebase project's sending quota", "FCM asks to wait 1m0s", "retry"}},
		{pushd.APNs, providers.Result{Outcome: providers.TokenInvalid, Status: 410, Reason: "Unregistered", Detail: "x"},
			false, []string{"rejected: Unregistered — the token is no longer active", "invalid_tokens"}},
		{pushd.FCM, providers.Result{Outcome: providers.CredentialFailure, Status: 403, Reason: "PERMISSION_DENIED",
			Detail: "Permission denied", Hint: "check project_id"}, false,
			[]string{"credentials rejected: FCM rejected app A's credentials: PERMISSION_DENIED — Permission denied", "fix: check project_id in [A] of /etc/pushd/config.ini"}},
		{pushd.APNs, providers.Result{Outcome: providers.Rejected, Status: 400, Reason: "BadPriority", Detail: "the priority is invalid"},
			false, []string{"rejected: BadPriority — the priority is invalid"}},
		{pushd.APNs, providers.Result{Outcome: providers.Rejected, Status: 502}, false, []string{"rejected: HTTP 502"}},
		{pushd.FCM, providers.Result{Outcome: providers.Delivered, Status: 200, ID: "projects/p/messages/1"}, true,
			[]string{"delivered: FCM accepted the push (message projects/p/messages/1)"}},
	} {
		got, ok := Result(c.kind, "A", "/etc/pushd/config.ini", c.res, false)
		if ok != c.ok {
			t.Errorf("%+v: ok = %v, want %v", c.res, ok, c.ok)
		}
		for _, w := range c.want {
			if !strings.Contains(got, w) {
				t.Errorf("%+v:\n%s\nlacks %q", c.res, got, w)
			}
		}
	}
}
