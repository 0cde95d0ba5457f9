package fcm

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"errors"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pushd/pushd"
	"github.com/pushd/pushd/internal/pushsim"
	"github.com/pushd/pushd/providers"
)

// deviceToken looks like a real registration token.
const deviceToken = "cY8vJ5xQTkWm1bR3:APA91bH-k2Zq_9xYv7LmN0pQrStUvWxYz01234567890abcdefGHIJKLmnopQRSTuvwxyz-_ABCDEFghijklMNOPqrstUVWXYZ0123456789abcdefghijklmnopqrstuv"

func hello() pushd.Notification {
	return pushd.Notification{Title: "Hello", Body: "World"}
}

func prepare(t testing.TB, c *Client, n pushd.Notification) providers.Prepared {
	t.Helper()
	p, err := c.Prepare(n)
	if err != nil {
		t.Fatalf("Prepare: %v", err)
	}
	return p
}

func TestSendDelivered(t *testing.T) {
	t.Parallel()
	s := newSim(t, pushsim.Options{})
	c := s.client(s.options())
	badge := 3
	p := prepare(t, c, pushd.Notification{
		Title: "Sale", Body: "50% off", Badge: &badge, Sound: "default", CollapseID: "sale-42",
		Data: map[string]json.RawMessage{"campaign": json.RawMessage(`17`), "deep_link": json.RawMessage(`"app://sale"`)},
	})

	res, err := c.Send(background(t), p, deviceToken)
	if err != nil {
		t.Fatalf("Send: %v", err)
	}
	if res.Outcome != providers.Delivered || res.Status != 200 || !strings.HasPrefix(res.ID, "projects/"+testProject+"/messages/") {
		t.Fatalf("Send = %+v, want delivered with the message name", res)
	}
	m, d := s.message(t, deviceToken)
	if d.AndroidTag != "sale-42" || d.CollapseID != "sale-42" {
		t.Errorf("android tag %q, apns-collapse-id %q; want sale-42", d.AndroidTag, d.CollapseID)
	}
	if m.Token != deviceToken || m.Notification.Title != "Sale" || m.Data["campaign"] != "17" || m.Data["deep_link"] != "app://sale" {
		t.Errorf("server saw %+v", m)
	}
	if m.APNs.Payload.APS.Badge == nil || *m.APNs.Payload.APS.Badge != 3 {
		t.Errorf("server saw android %+v apns %+v", m.Android, m.APNs)
	}
	if got := c.TokenRefreshes(); got != 1 {
		t.Errorf("TokenRefreshes = %d, want 1", got)
	}
}

// TestSendOutcomes maps every documented FCM error code, and the bare HTTP
// answers Google also gives, to an outcome, over the wire.
func TestSendOutcomes(t *testing.T) {
	t.Parallel()
	now := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
	hdr := func(kv ...string) http.Header {
		h := http.Header{}
		for i := 0; i < len(kv); i += 2 {
			h.Set(kv[i], kv[i+1])
		}
		return h
	}
	tests := []struct {
		name   string
		answer pushsim.Answer
		want   providers.Result
	}{
		{
			name:   "UNREGISTERED",
			answer: pushsim.Answer{Status: 404, Body: googleError(404, "NOT_FOUND", "Requested entity was not found.", "UNREGISTERED")},
			want:   providers.Result{Outcome: providers.TokenInvalid, Status: 404, Reason: "UNREGISTERED", Detail: "Requested entity was not found."},
		},
		{
			name:   "SENDER_ID_MISMATCH",
			answer: pushsim.Answer{Status: 403, Body: googleError(403, "PERMISSION_DENIED", "SenderId mismatch", "SENDER_ID_MISMATCH")},
			want:   providers.Result{Outcome: providers.TokenInvalid, Status: 403, Reason: "SENDER_ID_MISMATCH", Detail: "SenderId mismatch"},
		},
		{
			name:   "INVALID_ARGUMENT bad token",
			answer: pushsim.Answer{Status: 400, Body: googleError(400, "INVALID_ARGUMENT", "The registration token is not a valid FCM registration token", "INVALID_ARGUMENT")},
			want:   providers.Result{Outcome: providers.TokenInvalid, Status: 400, Reason: "INVALID_ARGUMENT", Detail: "The registration token is not a valid FCM registration token"},
		},
		{
			name: "INVALID_ARGUMENT token field violation",
			answer: pushsim.Answer{Status: 400, Body: `{"error":{"code":400,"message":"Invalid value","status":"INVALID_ARGUMENT","details":[` +
				`{"@type":"type.googleapis.com/google.rpc.BadRequest","fieldViolations":[{"field":"message.token","description":"Invalid registration token"}]}]}}`},
			want: providers.Result{Outcome: providers.TokenInvalid, Status: 400, Reason: "INVALID_ARGUMENT", Detail: "Invalid value"},
		},
		{
			name:   "INVALID_ARGUMENT message",
			answer: pushsim.Answer{Status: 400, Body: googleError(400, "INVALID_ARGUMENT", "Invalid value at 'message.android.ttl' (type.googleapis.com/google.protobuf.Duration), Field 'ttl', Illegal duration format", "INVALID_ARGUMENT")},
			want:   providers.Result{Outcome: providers.Rejected, Status: 400, Reason: "INVALID_ARGUMENT", Detail: "Invalid value at 'message.android.ttl' (type.googleapis.com/google.protobuf.Duration), Field 'ttl', Illegal duration format"},
		},
		{
			name:   "THIRD_PARTY_AUTH_ERROR",
			answer: pushsim.Answer{Status: 401, Body: googleError(401, "UNAUTHENTICATED", "Auth error from APNS or Web Push Service", "THIRD_PARTY_AUTH_ERROR")},
			want:   providers.Result{Outcome: providers.CredentialFailure, Status: 401, Reason: "THIRD_PARTY_AUTH_ERROR", Detail: "Auth error from APNS or Web Push Service", Hint: hintAPNsKey},
		},
		{
			name:   "PERMISSION_DENIED",
			answer: pushsim.Answer{Status: 403, Body: googleError(403, "PERMISSION_DENIED", "Permission 'cloudmessaging.messages.create' denied on resource '//cloudresourcemanager.googleapis.com/projects/demo-project' (or it may not exist).", "")},
			want:   providers.Result{Outcome: providers.CredentialFailure, Status: 403, Reason: "PERMISSION_DENIED", Detail: "Permission 'cloudmessaging.messages.create' denied on resource '//cloudresourcemanager.googleapis.com/projects/demo-project' (or it may not exist).", Hint: hintProject},
		},
		{
			name:   "NOT_FOUND project",
			answer: pushsim.Answer{Status: 404, Body: googleError(404, "NOT_FOUND", "Requested entity was not found.", "")},
			want:   providers.Result{Outcome: providers.CredentialFailure, Status: 404, Reason: "NOT_FOUND", Detail: "Requested entity was not found.", Hint: hintProject},
		},
		{
			name:   "QUOTA_EXCEEDED Retry-After seconds",
			answer: pushsim.Answer{Status: 429, Header: hdr("Retry-After", "30"), Body: googleError(429, "RESOURCE_EXHAUSTED", "Quota exceeded for quota metric 'Send messages'", "QUOTA_EXCEEDED")},
			want:   providers.Result{Outcome: providers.Retryable, Status: 429, Reason: "QUOTA_EXCEEDED", Detail: "Quota exceeded for quota metric 'Send messages'", RetryAfter: 30 * time.Second},
		},
		{
			name:   "QUOTA_EXCEEDED Retry-After date",
			answer: pushsim.Answer{Status: 429, Header: hdr("Retry-After", now.Add(2*time.Minute).Format(http.TimeFormat)), Body: googleError(429, "RESOURCE_EXHAUSTED", "Quota exceeded", "QUOTA_EXCEEDED")},
			want:   providers.Result{Outcome: providers.Retryable, Status: 429, Reason: "QUOTA_EXCEEDED", Detail: "Quota exceeded", RetryAfter: 2 * time.Minute},
		},
		{
			name:   "429 without details or Retry-After",
			answer: pushsim.Answer{Status: 429, Body: googleError(429, "RESOURCE_EXHAUSTED", "Resource has been exhausted (e.g. check quota).", "")},
			want:   providers.Result{Outcome: providers.Retryable, Status: 429, Reason: "RESOURCE_EXHAUSTED", Detail: "Resource has been exhausted (e.g. check quota).", RetryAfter: time.Minute},
		},
		{
			name:   "429 with an empty body",
			answer: pushsim.Answer{Status: 429},
			want:   providers.Result{Outcome: providers.Retryable, Status: 429, Reason: "QUOTA_EXCEEDED", RetryAfter: time.Minute},
		},
		{
			name:   "UNAVAILABLE Retry-After",
			answer: pushsim.Answer{Status: 503, Header: hdr("Retry-After", "10"), Body: googleError(503, "UNAVAILABLE", "The service is currently unavailable.", "UNAVAILABLE")},
			want:   providers.Result{Outcome: providers.Retryable, Status: 503, Reason: "UNAVAILABLE", Detail: "The service is currently unavailable.", RetryAfter: 10 * time.Second},
		},
		{
			name:   "UNAVAILABLE without Retry-After",
			answer: pushsim.Answer{Status: 503, Body: googleError(503, "UNAVAILABLE", "The service is currently unavailable.", "")},
			want:   providers.Result{Outcome: providers.Retryable, Status: 503, Reason: "UNAVAILABLE", Detail: "The service is currently unavailable."},
		},
		{
			name:   "INTERNAL",
			answer: pushsim.Answer{Status: 500, Body: googleError(500, "INTERNAL", "Internal error encountered.", "INTERNAL")},
			want:   providers.Result{Outcome: providers.Retryable, Status: 500, Reason: "INTERNAL", Detail: "Internal error encountered."},
		},
		{
			name:   "UNSPECIFIED_ERROR on 500",
			answer: pushsim.Answer{Status: 500, Body: googleError(500, "UNKNOWN", "Unknown error", "UNSPECIFIED_ERROR")},
			want:   providers.Result{Outcome: providers.Retryable, Status: 500, Reason: "UNSPECIFIED_ERROR", Detail: "Unknown error"},
		},
		{
			name:   "UNSPECIFIED_ERROR on 400",
			answer: pushsim.Answer{Status: 400, Body: googleError(400, "FAILED_PRECONDITION", "Unknown error", "UNSPECIFIED_ERROR")},
			want:   providers.Result{Outcome: providers.Rejected, Status: 400, Reason: "UNSPECIFIED_ERROR", Detail: "Unknown error"},
		},
		{
			name:   "502 from a proxy, HTML",
			answer: pushsim.Answer{Status: 502, Header: hdr("Content-Type", "text/html"), Body: "<html><body>Bad Gateway</body></html>"},
			want:   providers.Result{Outcome: providers.Retryable, Status: 502, Reason: "HTTP_502"},
		},
		{
			name:   "413",
			answer: pushsim.Answer{Status: 413, Body: googleError(413, "FAILED_PRECONDITION", "Request payload size exceeds the limit", "")},
			want:   providers.Result{Outcome: providers.Rejected, Status: 413, Reason: "FAILED_PRECONDITION", Detail: "Request payload size exceeds the limit"},
		},
	}
	s := newSim(t, pushsim.Options{})
	opts := s.options()
	opts.Now = func() time.Time { return now }
	c := s.client(opts)
	p := prepare(t, c, hello())
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			token := deviceToken[:100] + strings.Repeat("x", i+1)
			s.Script(pushsim.ProviderFCM, token, tt.answer)
			res, err := c.Send(background(t), p, token)
			if err != nil {
				t.Fatalf("Send: %v", err)
			}
			if res != tt.want {
				t.Errorf("Send =\n %+v\nwant\n %+v", res, tt.want)
			}
		})
	}
	// Neither THIRD_PARTY_AUTH_ERROR nor anything else is a reason to fetch
	// a new access token.
	if got := c.TokenRefreshes(); got != 1 {
		t.Errorf("TokenRefreshes = %d, want 1", got)
	}
}

func TestTokenIsCached(t *testing.T) {
	t.Parallel()
	s := newSim(t, pushsim.Options{})
	c := s.client(s.options())
	p := prepare(t, c, hello())

	// Concurrent first sends fetch one token between them.
	var wg sync.WaitGroup
	for range 20 {
		wg.Go(func() {
			for range 10 {
				res, err := c.Send(background(t), p, deviceToken)
				if err != nil || res.Outcome != providers.Delivered {
					t.Errorf("Send = %+v, %v", res, err)
					return
				}
			}
		})
	}
	wg.Wait()
	if got, fetched := c.TokenRefreshes(), s.Stats().OAuth.TokenRequests; got != 1 || fetched != 1 {
		t.Errorf("200 sends: TokenRefreshes = %d, token requests = %d; want 1 and 1", got, fetched)
	}
}

func TestUnauthenticatedRefreshesOnce(t *testing.T) {
	t.Parallel()
	s := newSim(t, pushsim.Options{})
	c := s.client(s.options())
	p := prepare(t, c, hello())
	if res, err := c.Send(background(t), p, deviceToken); err != nil || res.Outcome != providers.Delivered {
		t.Fatalf("Send = %+v, %v", res, err)
	}

	// Google stops accepting the token before its expiry: every sender
	// that holds it gets a 401, and between them they fetch one new token.
	s.expect("UNAUTHENTICATED")
	s.RevokeAccessTokens()
	var wg sync.WaitGroup
	for range 10 {
		wg.Go(func() {
			res, err := c.Send(background(t), p, deviceToken)
			if err != nil || res.Outcome != providers.Delivered {
				t.Errorf("Send after revocation = %+v, %v", res, err)
			}
		})
	}
	wg.Wait()
	if got := c.TokenRefreshes(); got != 2 {
		t.Errorf("TokenRefreshes = %d, want 2", got)
	}
}

func TestUnauthenticatedTwiceIsCredentialFailure(t *testing.T) {
	t.Parallel()
	s := newSim(t, pushsim.Options{Faults: pushsim.Faults{RejectAccessTokens: true}})
	s.expect("UNAUTHENTICATED")
	c := s.client(s.options())
	p := prepare(t, c, hello())

	res, err := c.Send(background(t), p, deviceToken)
	if err != nil {
		t.Fatalf("Send: %v", err)
	}
	if res.Outcome != providers.CredentialFailure || res.Status != 401 || res.Reason != "UNAUTHENTICATED" || res.Hint != hintAccessToken {
		t.Errorf("Send = %+v, want a 401 CredentialFailure with a hint", res)
	}
	if got, sends := c.TokenRefreshes(), s.Stats().FCM.Requests; got != 2 || sends != 2 {
		t.Errorf("TokenRefreshes = %d, sends = %d; want 2 and 2 (one refresh, one retry)", got, sends)
	}
}

func TestInvalidGrant(t *testing.T) {
	t.Parallel()
	s := newSim(t, pushsim.Options{})
	s.expect("token")
	// The key file names the right key id but holds another key, so the
	// assertion's signature does not verify.
	opts := s.options()
	opts.ServiceAccountJSON = withOtherKey(t, opts.ServiceAccountJSON)
	c := s.client(opts)

	res, err := c.Send(background(t), prepare(t, c, hello()), deviceToken)
	if err != nil {
		t.Fatalf("Send: %v", err)
	}
	want := providers.Result{Outcome: providers.CredentialFailure, Status: 400, Reason: "invalid_grant", Detail: "Invalid JWT Signature.", Hint: hintServiceAccount}
	if res != want {
		t.Errorf("Send = %+v, want %+v", res, want)
	}
	if n := s.Stats().FCM.Requests; n != 0 {
		t.Errorf("%d sends without a token", n)
	}
	if got := c.TokenRefreshes(); got != 0 {
		t.Errorf("TokenRefreshes = %d, want 0", got)
	}
}

func TestTokenEndpointTrouble(t *testing.T) {
	t.Parallel()
	t.Run("5xx is an error", func(t *testing.T) {
		t.Parallel()
		s := newSim(t, pushsim.Options{Faults: pushsim.Faults{TokenEndpointUnavailable: true}})
		s.expect("token")
		c := s.client(s.options())
		res, err := c.Send(background(t), prepare(t, c, hello()), deviceToken)
		if err == nil {
			t.Fatalf("Send = %+v, want an error to retry", res)
		}
	})
	t.Run("unreachable is an error", func(t *testing.T) {
		t.Parallel()
		s := newSim(t, pushsim.Options{})
		opts := s.options()
		opts.ServiceAccountJSON = serviceAccount(t, "https://"+closedAddr(t)+"/token")
		c := s.client(opts)
		res, err := c.Send(background(t), prepare(t, c, hello()), deviceToken)
		if err == nil {
			t.Fatalf("Send = %+v, want an error to retry", res)
		}
		if s.Stats().FCM.Requests != 0 {
			t.Error("sent without a token")
		}
	})
}

func TestFCMUnreachable(t *testing.T) {
	t.Parallel()
	s := newSim(t, pushsim.Options{})
	opts := s.options()
	opts.Endpoint = "https://" + closedAddr(t)
	opts.RequestTimeout = 1500 * time.Millisecond
	c := s.client(opts)
	res, err := c.Send(background(t), prepare(t, c, hello()), deviceToken)
	if !errors.Is(err, providers.ErrNotSent) {
		t.Fatalf("Send = %+v, %v; want ErrNotSent", res, err)
	}
}

// closedAddr returns a loopback address nobody listens on.
func closedAddr(t testing.TB) string {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	return addr
}

func TestTimeoutAndCancel(t *testing.T) {
	t.Parallel()
	s := newSim(t, pushsim.Options{SlowDelay: time.Minute})
	opts := s.options()
	opts.RequestTimeout = 500 * time.Millisecond
	c := s.client(opts)
	p := prepare(t, c, hello())
	// Warm the token and the connections; on a loaded machine the first
	// handshakes may take longer than the timeout.
	for i := 0; ; i++ {
		_, err := c.Send(background(t), p, deviceToken)
		if err == nil {
			break
		}
		if i == 20 {
			t.Fatal(err)
		}
	}

	// pushsim answers a slow token only after SlowDelay, a minute.
	slow := pushsim.PrefixSlow + deviceToken[4:]
	start := time.Now()
	res, err := c.Send(background(t), p, slow)
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("held send = %+v, %v; want DeadlineExceeded", res, err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("RequestTimeout 500ms took %v", d)
	}

	// Cancel once the send has reached pushsim.
	sent := s.Stats().FCM.Requests
	ctx, cancel := context.WithCancel(background(t))
	go func() {
		waitFor(t, "the send to reach pushsim", func() bool { return s.Stats().FCM.Requests > sent })
		cancel()
	}()
	res, err = c.Send(ctx, p, slow)
	if !errors.Is(err, context.Canceled) {
		t.Errorf("cancelled send = %+v, %v; want Canceled", res, err)
	}
}

func TestSendTTLAtSendTime(t *testing.T) {
	t.Parallel()
	s := newSim(t, pushsim.Options{})
	clock := newClock(time.Date(2030, 5, 1, 12, 0, 0, 0, time.UTC))
	opts := s.options()
	opts.Now = clock.Now
	c := s.client(opts)
	deadline := clock.Now().Add(90*time.Second + 700*time.Millisecond)
	p := prepare(t, c, pushd.Notification{Title: "Flash sale", Expiration: deadline})

	for _, tc := range []struct {
		advance time.Duration
		ttl     string
	}{{0, "90s"}, {30 * time.Second, "60s"}, {60*time.Second + 500*time.Millisecond, "0s"}} {
		clock.Advance(tc.advance)
		res, err := c.Send(background(t), p, deviceToken)
		if tc.ttl == "0s" {
			if !errors.Is(err, providers.ErrExpired) {
				t.Errorf("with 0.2s left: Send = %+v, %v; want ErrExpired", res, err)
			}
			continue
		}
		if err != nil || res.Outcome != providers.Delivered {
			t.Fatalf("Send = %+v, %v", res, err)
		}
		m, _ := s.message(t, deviceToken)
		if m.Android.TTL != tc.ttl {
			t.Errorf("android.ttl = %q, want %q", m.Android.TTL, tc.ttl)
		}
		if got := m.APNs.Headers["apns-expiration"]; got != "1903867290" {
			t.Errorf("apns-expiration = %q, want the absolute deadline 1903867290", got)
		}
	}
	if n := s.Stats().FCM.Requests; n != 2 {
		t.Errorf("%d sends reached FCM, want 2: nothing after the deadline", n)
	}
}

func TestExpiredSendsNothing(t *testing.T) {
	t.Parallel()
	s := newSim(t, pushsim.Options{})
	c := s.client(s.options())
	p := prepare(t, c, pushd.Notification{Title: "Too late", Expiration: time.Now().Add(-time.Second)})
	res, err := c.Send(background(t), p, deviceToken)
	if !errors.Is(err, providers.ErrExpired) || res != (providers.Result{}) {
		t.Fatalf("Send = %+v, %v; want ErrExpired", res, err)
	}
	if st := s.Stats(); st.OAuth.TokenRequests+st.FCM.Requests != 0 {
		t.Error("an expired notification made requests")
	}
}

func TestValidateOnlyOverTheWire(t *testing.T) {
	t.Parallel()
	s := newSim(t, pushsim.Options{})
	opts := s.options()
	opts.ValidateOnly = true
	c := s.client(opts)
	if res, err := c.Send(background(t), prepare(t, c, hello()), deviceToken); err != nil || res.Outcome != providers.Delivered {
		t.Fatalf("Send = %+v, %v", res, err)
	}
	if st := s.Stats().FCM; st.ValidatedOnly != 1 || st.Delivered != 0 {
		t.Errorf("pushsim validated %d and delivered %d messages; want validate_only: 1 and 0", st.ValidatedOnly, st.Delivered)
	}
}

func TestSendMalformedToken(t *testing.T) {
	t.Parallel()
	s := newSim(t, pushsim.Options{})
	c := s.client(s.options())
	p := prepare(t, c, hello())
	for _, tok := range []string{"", `abc"}`, "tok en", strings.Repeat("a", 4097)} {
		res, err := c.Send(background(t), p, tok)
		if err != nil || res.Outcome != providers.TokenInvalid || res.Reason != "MALFORMED_TOKEN" {
			t.Errorf("Send(%.20q) = %+v, %v; want TokenInvalid MALFORMED_TOKEN", tok, res, err)
		}
	}
	if st := s.Stats(); st.OAuth.TokenRequests+st.FCM.Requests != 0 {
		t.Error("a malformed token made requests")
	}
}

func TestSendForeignPrepared(t *testing.T) {
	t.Parallel()
	s := newSim(t, pushsim.Options{})
	a, b := s.client(s.options()), s.client(s.options())
	if _, err := a.Send(background(t), prepare(t, b, hello()), deviceToken); err == nil {
		t.Error("Send accepted another client's Prepared")
	}
}

func TestCloseTwice(t *testing.T) {
	t.Parallel()
	s := newSim(t, pushsim.Options{})
	c := s.client(s.options())
	p := prepare(t, c, hello())
	c.Close()
	c.Close()
	if _, err := c.Send(background(t), p, deviceToken); err == nil {
		t.Error("Send after Close succeeded")
	}
}

func TestNewRejectsBadOptions(t *testing.T) {
	t.Parallel()
	s := newSim(t, pushsim.Options{})
	key := serviceAccount(t, s.Files().TokenURI)
	var sa map[string]string
	if err := json.Unmarshal(key, &sa); err != nil {
		t.Fatal(err)
	}
	with := func(k, v string) []byte {
		m := map[string]string{}
		for kk, vv := range sa {
			m[kk] = vv
		}
		m[k] = v
		b, _ := json.Marshal(m)
		return b
	}
	tests := []struct {
		name   string
		change func(*Options)
		want   string
	}{
		{"no project", func(o *Options) { o.ProjectID = "" }, "project_id is empty"},
		{"project with a slash", func(o *Options) { o.ProjectID = "a/b" }, "project_id"},
		{"http endpoint", func(o *Options) { o.Endpoint = "http://fcm.googleapis.com" }, "https"},
		{"no key", func(o *Options) { o.ServiceAccountJSON = nil }, "service_account_file is empty"},
		{"not JSON", func(o *Options) { o.ServiceAccountJSON = []byte("nope") }, "service_account_file"},
		{"user credentials", func(o *Options) { o.ServiceAccountJSON = with("type", "authorized_user") }, "service_account_file"},
		{"bad private key", func(o *Options) {
			o.ServiceAccountJSON = with("private_key", "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n")
		}, "private_key"},
		{"negative timeout", func(o *Options) { o.RequestTimeout = -time.Second }, "timeout"},
		{"negative connections", func(o *Options) { o.Connections = -1 }, "connections"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			opts := s.options()
			tt.change(&opts)
			c, err := New(opts)
			if err == nil {
				c.Close()
				t.Fatal("New succeeded")
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Errorf("New: %v; want it to mention %q", err, tt.want)
			}
		})
	}
}

// TestRequestBodyReplays checks that the transport can resend a request cut
// off by GOAWAY: GetBody yields the same bytes as Body, however often.
func TestRequestBodyReplays(t *testing.T) {
	t.Parallel()
	s := newSim(t, pushsim.Options{})
	c := s.client(s.options())
	body := []byte(`{"message":{"token":"x"}}`)
	req := c.newRequest(context.Background(), body, &credential{header: requestHeader("t")})
	if req.URL.String() != s.URL()+"/v1/projects/"+testProject+"/messages:send" {
		t.Errorf("URL = %s", req.URL)
	}
	if req.ContentLength != int64(len(body)) || req.Header.Get("Authorization") != "Bearer t" {
		t.Errorf("request %+v", req)
	}
	read := func(r io.ReadCloser) string {
		b, err := io.ReadAll(r)
		if err != nil {
			t.Fatal(err)
		}
		r.Close()
		return string(b)
	}
	if got := read(req.Body); got != string(body) {
		t.Errorf("Body = %q", got)
	}
	for range 2 {
		r, err := req.GetBody()
		if err != nil {
			t.Fatal(err)
		}
		if got := read(r); got != string(body) {
			t.Errorf("GetBody = %q", got)
		}
	}
}

// withOtherKey returns the key file with its private key replaced.
func withOtherKey(t *testing.T, keyJSON []byte) []byte {
	t.Helper()
	k, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	der, err := x509.MarshalPKCS8PrivateKey(k)
	if err != nil {
		t.Fatal(err)
	}
	var sa map[string]any
	if err := json.Unmarshal(keyJSON, &sa); err != nil {
		t.Fatal(err)
	}
	sa["private_key"] = string(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}))
	b, err := json.Marshal(sa)
	if err != nil {
		t.Fatal(err)
	}
	return b
}
