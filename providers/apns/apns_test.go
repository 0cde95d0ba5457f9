package apns

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"errors"
	"io"
	"net"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pushd/pushd"
	"github.com/pushd/pushd/internal/pushsim"
	"github.com/pushd/pushd/providers"
)

func mustPrepare(t testing.TB, c *Client, n pushd.Notification) providers.Prepared {
	t.Helper()
	p, err := c.Prepare(n)
	if err != nil {
		t.Fatalf("Prepare: %v", err)
	}
	return p
}

func mustSend(t testing.TB, c *Client, p providers.Prepared, token string) providers.Result {
	t.Helper()
	res, err := c.Send(context.Background(), p, token)
	if err != nil {
		t.Fatalf("Send: %v", err)
	}
	return res
}

var hello = pushd.Notification{Title: "Hello", Body: "World"}

func TestNewValidatesOptions(t *testing.T) {
	t.Parallel()
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	p384, _ := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	valid := func() Options {
		return Options{Environment: Production, BundleID: "b", TeamID: "t", KeyID: "k", Key: key}
	}
	tests := []struct {
		name string
		mod  func(*Options)
		want string // "" = no error
	}{
		{"valid", func(*Options) {}, ""},
		{"refresh 20m", func(o *Options) { o.TokenRefresh = 20 * time.Minute }, ""},
		{"refresh 50m", func(o *Options) { o.TokenRefresh = 50 * time.Minute }, ""},
		{"refresh 19m59s", func(o *Options) { o.TokenRefresh = 20*time.Minute - time.Second }, "token refresh"},
		{"refresh 51m", func(o *Options) { o.TokenRefresh = 51 * time.Minute }, "token refresh"},
		{"refresh negative", func(o *Options) { o.TokenRefresh = -time.Minute }, "token refresh"},
		{"no bundle", func(o *Options) { o.BundleID = "" }, "bundle id"},
		{"no team", func(o *Options) { o.TeamID = "" }, "team id"},
		{"no key id", func(o *Options) { o.KeyID = "" }, "key id"},
		{"no key", func(o *Options) { o.Key = nil }, "key"},
		{"P-384 key", func(o *Options) { o.Key = p384 }, "P-256"},
		{"bad environment", func(o *Options) { o.Environment = "staging" }, "environment"},
		{"no environment no endpoint", func(o *Options) { o.Environment = "" }, "environment"},
		{"endpoint without environment", func(o *Options) { o.Environment = ""; o.Endpoint = "https://localhost:2197" }, ""},
		{"http endpoint", func(o *Options) { o.Endpoint = "http://api.push.apple.com" }, "https"},
		{"endpoint with path", func(o *Options) { o.Endpoint = "https://api.push.apple.com/3/device" }, "no path"},
		{"negative connections", func(o *Options) { o.Connections = -1 }, "connections"},
		{"negative timeout", func(o *Options) { o.RequestTimeout = -1 }, "timeout"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			opts := valid()
			tt.mod(&opts)
			c, err := New(opts)
			if tt.want == "" {
				if err != nil {
					t.Fatalf("New: %v", err)
				}
				c.Close()
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("New error = %v, want one mentioning %q", err, tt.want)
			}
		})
	}
}

func TestNewEndpointByEnvironment(t *testing.T) {
	t.Parallel()
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	for env, host := range map[string]string{Production: "api.push.apple.com", Development: "api.sandbox.push.apple.com"} {
		c, err := New(Options{Environment: env, BundleID: "b", TeamID: "t", KeyID: "k", Key: key})
		if err != nil {
			t.Fatal(err)
		}
		if c.host != host {
			t.Errorf("%s: host %q, want %q", env, c.host, host)
		}
		c.Close()
	}
}

func TestSendDeliveredWithHeaders(t *testing.T) {
	t.Parallel()
	s := newSim(t, pushsim.Options{})
	c := newTestClient(t, s, nil)
	exp := s.clock.Now().Add(2 * time.Hour)
	badge := 3
	p := mustPrepare(t, c, pushd.Notification{
		Title: "Sale", Body: "50% off", Badge: &badge, Sound: "default",
		CollapseID: "sale-1", Expiration: exp,
	})
	tok := deviceToken(1)
	res := mustSend(t, c, p, tok)
	if res.Outcome != providers.Delivered || res.Status != 200 || !lowerUUID.MatchString(res.ID) {
		t.Fatalf("result %+v, want delivered with the apns-id", res)
	}
	// pushsim answers DuplicateHeaders to a repeated header, so each of
	// these was sent once.
	d := s.delivery(t, tok)
	got := [...]string{d.Topic, d.PushType, d.Priority, d.Expiration, d.CollapseID}
	want := [...]string{testTopic, "alert", "10", strconv.FormatInt(exp.Unix(), 10), "sale-1"}
	if got != want {
		t.Errorf("topic, push type, priority, expiration, collapse id = %q, want %q", got, want)
	}
	wantBody := `{"aps":{"alert":{"title":"Sale","body":"50% off"},"badge":3,"sound":"default"}}`
	if string(d.Payload) != wantBody || d.Count != 1 {
		t.Errorf("body (%d deliveries)\n got %s\nwant %s", d.Count, d.Payload, wantBody)
	}
}

var lowerUUID = regexp.MustCompile(`^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$`)

func TestSendOmitsUnsetHeaders(t *testing.T) {
	t.Parallel()
	s := newSim(t, pushsim.Options{})
	c := newTestClient(t, s, nil)
	tok := deviceToken(2)
	if res := mustSend(t, c, mustPrepare(t, c, hello), tok); res.Outcome != providers.Delivered {
		t.Fatalf("result %+v", res)
	}
	// pushsim refuses an apns-expiration or apns-collapse-id sent empty,
	// so empty fields mean the headers were left out.
	if d := s.delivery(t, tok); d.Expiration != "" || d.CollapseID != "" {
		t.Errorf("apns-expiration %q, apns-collapse-id %q; want both absent", d.Expiration, d.CollapseID)
	}
}

// TestReasonOutcomes drives the real client against pushsim for every
// documented APNs reason, and a few undocumented answers.
func TestReasonOutcomes(t *testing.T) {
	t.Parallel()
	s := newSim(t, pushsim.Options{})
	c := newTestClient(t, s, nil)
	p := mustPrepare(t, c, hello)
	const (
		rejected  = providers.Rejected
		invalid   = providers.TokenInvalid
		retryable = providers.Retryable
		cred      = providers.CredentialFailure
		throttled = providers.AppThrottled
	)
	tests := []struct {
		status int
		reason string
		want   providers.Outcome
		hint   string // substring the Hint must contain; "" = Hint must be empty
	}{
		{400, ReasonBadCollapseID, rejected, "collapse id"},
		{400, ReasonBadDeviceToken, invalid, ""},
		{400, ReasonBadExpirationDate, rejected, ""},
		{400, ReasonBadMessageID, rejected, ""},
		{400, ReasonBadPriority, rejected, ""},
		{400, ReasonBadTopic, cred, "check bundle_id in config.ini"},
		{400, ReasonDeviceTokenNotForTopic, invalid, ""},
		{400, ReasonDuplicateHeaders, rejected, ""},
		{400, ReasonIdleTimeout, retryable, ""},
		{400, ReasonInvalidPushType, rejected, ""},
		{400, ReasonMissingDeviceToken, rejected, ""},
		{400, ReasonMissingTopic, cred, "check bundle_id in config.ini"},
		{400, ReasonPayloadEmpty, rejected, ""},
		{400, ReasonTopicDisallowed, cred, "check bundle_id in config.ini"},
		{403, ReasonBadCertificate, cred, "credentials"},
		{403, ReasonBadCertificateEnvironment, cred, "check environment"},
		{403, ReasonExpiredProviderToken, cred, "check the server clock"},
		{403, ReasonForbidden, cred, "enabled for APNs"},
		{403, ReasonInvalidProviderToken, cred, "check key_id and team_id"},
		{403, ReasonMissingProviderToken, cred, "key_id"},
		{403, ReasonUnrelatedKeyIDInToken, cred, "check key_id"},
		{403, ReasonBadEnvironmentKeyIDInToken, cred, "check environment"},
		{404, ReasonBadPath, rejected, ""},
		{405, ReasonMethodNotAllowed, rejected, ""},
		{410, ReasonUnregistered, invalid, ""},
		{410, ReasonExpiredToken, invalid, ""},
		{413, ReasonPayloadTooLarge, rejected, "shorten"},
		{429, ReasonTooManyRequests, retryable, ""},
		{429, ReasonTooManyProviderTokenUpdates, throttled, ""},
		{500, ReasonInternalServerError, retryable, ""},
		{503, ReasonServiceUnavailable, retryable, ""},
		{503, ReasonShutdown, retryable, ""},
		// Answers APNs does not document.
		{400, "SomethingNew", rejected, ""},
		{403, "SomethingNew", cred, "check key_id, team_id, bundle_id and environment"},
		{418, "Teapot", rejected, ""},
		{401, "", rejected, ""},
		{502, "", retryable, ""},
		{504, "GatewayTimeout", retryable, ""},
	}
	if got, want := len(reasons), 32; got != want {
		t.Errorf("%d reasons have descriptions, Apple documents %d", got, want)
	}
	covered := map[string]bool{}
	for _, tt := range tests {
		covered[tt.reason] = true
	}
	for r := range reasons {
		if !covered[r] {
			t.Errorf("reason %s is not in the table", r)
		}
	}
	for i, tt := range tests {
		t.Run(strconv.Itoa(tt.status)+"_"+tt.reason, func(t *testing.T) {
			t.Parallel()
			tok := deviceToken(1000 + i)
			s.Script(pushsim.ProviderAPNs, tok, pushsim.Answer{Status: tt.status, Body: `{"reason":"` + tt.reason + `"}`})
			res := mustSend(t, c, p, tok)
			if res.Outcome != tt.want || res.Status != tt.status || res.Reason != tt.reason {
				t.Errorf("got %s %d %q, want %s %d %q", res.Outcome, res.Status, res.Reason, tt.want, tt.status, tt.reason)
			}
			if res.Detail == "" {
				t.Error("Detail is empty")
			}
			if tt.hint == "" && res.Hint != "" {
				t.Errorf("Hint %q, want none", res.Hint)
			}
			if tt.hint != "" && !strings.Contains(res.Hint, tt.hint) {
				t.Errorf("Hint %q, want it to contain %q", res.Hint, tt.hint)
			}
		})
	}
}

func TestGoneTimestampIsMilliseconds(t *testing.T) {
	t.Parallel()
	s := newSim(t, pushsim.Options{})
	c := newTestClient(t, s, nil)
	p := mustPrepare(t, c, hello)
	tests := []struct {
		reason    string
		timestamp string
		want      time.Time
	}{
		// 2023-11-14T22:13:20.123Z; read as seconds it would be year 55000+.
		{ReasonUnregistered, "1700000000123", time.UnixMilli(1700000000123).UTC()},
		{ReasonExpiredToken, "1700000000000", time.Date(2023, 11, 14, 22, 13, 20, 0, time.UTC)},
		{ReasonUnregistered, "", time.Time{}},
		{ReasonUnregistered, `"1700000000123"`, time.UnixMilli(1700000000123).UTC()},
		{ReasonUnregistered, "-5", time.Time{}},
		{ReasonUnregistered, "null", time.Time{}},
	}
	for i, tt := range tests {
		tok := deviceToken(2000 + i)
		body := `{"reason":"` + tt.reason + `"`
		if tt.timestamp != "" {
			body += `,"timestamp":` + tt.timestamp
		}
		s.Script(pushsim.ProviderAPNs, tok, pushsim.Answer{Status: 410, Body: body + "}"})
		res := mustSend(t, c, p, tok)
		if res.Outcome != providers.TokenInvalid {
			t.Errorf("%s: outcome %s", tt.timestamp, res.Outcome)
		}
		if !res.InvalidSince.Equal(tt.want) {
			t.Errorf("timestamp %s: InvalidSince %v, want %v", tt.timestamp, res.InvalidSince, tt.want)
		}
	}
}

func TestRetryAfterSurfaced(t *testing.T) {
	t.Parallel()
	s := newSim(t, pushsim.Options{})
	c := newTestClient(t, s, nil)
	tok := deviceToken(3)
	// Apple documents no Retry-After, but the client honours one if sent.
	s.Script(pushsim.ProviderAPNs, tok, pushsim.Answer{Status: 429, Header: http.Header{"Retry-After": {"120"}}, Body: `{"reason":"TooManyRequests"}`})
	res := mustSend(t, c, mustPrepare(t, c, hello), tok)
	if res.Outcome != providers.Retryable || res.RetryAfter != 2*time.Minute {
		t.Fatalf("result %+v, want retryable after 2m", res)
	}
}

func TestProviderTokenCaching(t *testing.T) {
	t.Parallel()
	s := newSim(t, pushsim.Options{})
	c := newTestClient(t, s, nil) // TokenRefresh defaults to 40m
	p := mustPrepare(t, c, hello)

	// 1000 sends over both connections share the token signed by New.
	var wg sync.WaitGroup
	for w := range 8 {
		wg.Go(func() {
			for i := range 125 {
				if res, err := c.Send(context.Background(), p, deviceToken(w*1000+i)); err != nil || res.Outcome != providers.Delivered {
					t.Errorf("send: %+v %v", res, err)
					return
				}
			}
		})
	}
	wg.Wait()
	if got := c.TokenRefreshes(); got != 1 {
		t.Fatalf("after 1000 sends: %d signings, want 1", got)
	}
	if got := s.Stats().APNsJWT.DistinctTokens; got != 1 {
		t.Fatalf("pushsim saw %d distinct tokens, want 1", got)
	}

	// Just short of the refresh age: still the same token.
	s.clock.Advance(40*time.Minute - time.Second)
	mustSend(t, c, p, deviceToken(1))
	if got := c.TokenRefreshes(); got != 1 {
		t.Fatalf("before the refresh age: %d signings, want 1", got)
	}

	// Past it: exactly one more, however many sends follow.
	s.clock.Advance(time.Second)
	for i := range 10 {
		mustSend(t, c, p, deviceToken(i))
	}
	if got := c.TokenRefreshes(); got != 2 {
		t.Fatalf("after the refresh age: %d signings, want 2", got)
	}

	// Many senders notice the stale token at once: still one signing.
	s.clock.Advance(40 * time.Minute)
	start := make(chan struct{})
	for i := range 64 {
		wg.Go(func() {
			<-start
			if res, err := c.Send(context.Background(), p, deviceToken(i)); err != nil || res.Outcome != providers.Delivered {
				t.Errorf("send: %+v %v", res, err)
			}
		})
	}
	close(start)
	wg.Wait()
	if got := c.TokenRefreshes(); got != 3 {
		t.Fatalf("after a concurrent refresh: %d signings, want 3", got)
	}
	if got := s.Stats().APNsJWT.DistinctTokens; got != 3 {
		t.Fatalf("pushsim saw %d distinct tokens, want 3", got)
	}
}

// TestTokenSourceSingleFlight checks the refresh logic without the network,
// where the goroutines really do pile up on the stale token together.
func TestTokenSourceSingleFlight(t *testing.T) {
	t.Parallel()
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	clock := newFakeClock()
	s := &tokenSource{teamID: "t", keyID: "k", key: key, refresh: 40 * time.Minute, now: clock.Now, logger: discardLogger()}
	first, err := s.current(s.now())
	if err != nil {
		t.Fatal(err)
	}
	clock.Advance(time.Hour)

	// Hold every goroutine at its first look at the clock (the lock-free
	// check) until all of them have seen the stale token, so they really do
	// all queue for the lock.
	const n = 200
	var arrived sync.WaitGroup
	arrived.Add(n)
	var calls atomic.Int64
	gate := make(chan struct{})
	var openGate sync.Once
	s.now = func() time.Time {
		if calls.Add(1) <= n {
			arrived.Done()
			<-gate
		}
		return clock.Now()
	}
	go func() { arrived.Wait(); openGate.Do(func() { close(gate) }) }()
	// A broken source may block in the clock under its lock, so that not
	// all goroutines can arrive: give up waiting rather than hang.
	giveUp := time.AfterFunc(10*time.Second, func() { openGate.Do(func() { close(gate) }) })
	defer giveUp.Stop()

	var wg sync.WaitGroup
	got := make([]*providerToken, n)
	for i := range got {
		wg.Go(func() { got[i], _ = s.current(s.now()) })
	}
	wg.Wait()
	if n := s.signed.Load(); n != 2 {
		t.Fatalf("%d signings, want 2", n)
	}
	for i, tok := range got {
		if tok == nil || tok == first || tok != got[0] {
			t.Fatalf("goroutine %d got %p, want the one new token %p", i, tok, got[0])
		}
	}
}

func TestExpiredProviderTokenResignsOnceThenDelivers(t *testing.T) {
	t.Parallel()
	s := newSim(t, pushsim.Options{Faults: pushsim.Faults{ExpiredProviderTokenOnce: true}})
	s.expect(ReasonExpiredProviderToken)
	c := newTestClient(t, s, nil)
	p := mustPrepare(t, c, hello)

	res := mustSend(t, c, p, deviceToken(1))
	if res.Outcome != providers.Delivered {
		t.Fatalf("result %+v, want delivered after one re-sign", res)
	}
	if got := c.TokenRefreshes(); got != 2 {
		t.Errorf("%d signings, want 2", got)
	}
	if got := s.requests(); got != 2 {
		t.Errorf("pushsim saw %d requests, want 2", got)
	}
}

func TestExpiredProviderTokenConcurrentFailuresSignOnce(t *testing.T) {
	t.Parallel()
	s := newSim(t, pushsim.Options{})
	s.expect(ReasonExpiredProviderToken)
	c := newTestClient(t, s, nil)
	p := mustPrepare(t, c, hello)
	mustSend(t, c, p, deviceToken(100)) // pushsim learns the first token
	s.ExpireProviderTokens()
	var wg sync.WaitGroup
	for i := range 50 {
		wg.Go(func() {
			if res, err := c.Send(context.Background(), p, deviceToken(i)); err != nil || res.Outcome != providers.Delivered {
				t.Errorf("send %d: %+v %v", i, res, err)
			}
		})
	}
	wg.Wait()
	if got := c.TokenRefreshes(); got != 2 {
		t.Errorf("%d signings, want 2", got)
	}
	if st := s.Stats(); st.APNs.ByReason[ReasonExpiredProviderToken] == 0 || st.APNsJWT.DistinctTokens != 2 {
		t.Errorf("pushsim stats %+v: want ExpiredProviderToken answers and 2 distinct tokens", st)
	}
}

func TestExpiredProviderTokenTwiceIsCredentialFailure(t *testing.T) {
	t.Parallel()
	// pushsim's clock runs two hours ahead of the client's, so every token
	// the client signs is already past Apple's one-hour limit.
	clock := newFakeClock()
	s := newSim(t, pushsim.Options{Now: func() time.Time { return clock.Now().Add(2 * time.Hour) }})
	s.expect(ReasonExpiredProviderToken)
	c := newTestClient(t, s, func(o *Options) { o.Now = clock.Now })
	p := mustPrepare(t, c, hello)

	res := mustSend(t, c, p, deviceToken(1))
	if res.Outcome != providers.CredentialFailure || res.Reason != ReasonExpiredProviderToken || res.Hint != "check the server clock" {
		t.Fatalf("result %+v, want a credential failure", res)
	}
	if got, want := c.TokenRefreshes(), uint64(2); got != want {
		t.Errorf("%d signings, want %d", got, want)
	}
	if got := s.requests(); got != 2 {
		t.Errorf("pushsim saw %d requests, want 2 (one retry)", got)
	}

	// APNs rejects even a fresh token, so re-signing again would only earn
	// TooManyProviderTokenUpdates: the next sends neither sign nor retry.
	for i := range 5 {
		res = mustSend(t, c, p, deviceToken(2+i))
		if res.Outcome != providers.CredentialFailure {
			t.Fatalf("result %+v", res)
		}
	}
	if got := c.TokenRefreshes(); got != 2 {
		t.Errorf("%d signings after more failures, want still 2", got)
	}
	if got := s.requests(); got != 7 {
		t.Errorf("pushsim saw %d requests, want 7", got)
	}
}

func TestSendExpired(t *testing.T) {
	t.Parallel()
	s := newSim(t, pushsim.Options{})
	c := newTestClient(t, s, nil)
	p := mustPrepare(t, c, pushd.Notification{Title: "t", Expiration: s.clock.Now().Add(time.Minute)})
	mustSend(t, c, p, deviceToken(1)) // before the deadline
	s.clock.Advance(time.Minute + time.Second)
	res, err := c.Send(context.Background(), p, deviceToken(1))
	if !errors.Is(err, providers.ErrExpired) {
		t.Fatalf("Send after the deadline = %+v, %v; want ErrExpired", res, err)
	}
	if got := s.requests(); got != 1 {
		t.Errorf("pushsim saw %d requests, want 1 (nothing after the deadline)", got)
	}
}

func TestSendMalformedTokenIsNotSent(t *testing.T) {
	t.Parallel()
	s := newSim(t, pushsim.Options{})
	c := newTestClient(t, s, nil)
	p := mustPrepare(t, c, hello)
	for _, tok := range []string{"", "abc", "zz", "../../x", strings.Repeat("ab", 101)} {
		res, err := c.Send(context.Background(), p, tok)
		if err != nil || res.Outcome != providers.TokenInvalid || res.Status != 0 || res.Reason != ReasonBadDeviceToken {
			t.Errorf("Send(%q) = %+v, %v; want an unsent TokenInvalid", tok, res, err)
		}
	}
	if got := s.requests(); got != 0 {
		t.Errorf("pushsim saw %d requests, want 0", got)
	}
}

func TestValidateToken(t *testing.T) {
	t.Parallel()
	c := &Client{}
	tests := []struct {
		token string
		ok    bool
	}{
		{deviceToken(7), true},
		{"ABCDEF0123", true},
		{strings.Repeat("a", 200), true},
		{"", false},
		{"abc", false},
		{"zz", false},
		{"ab cd", false},
		{"abcd\n", false},
		{strings.Repeat("a", 202), false},
		{"ａｂ", false}, // full-width letters
	}
	for _, tt := range tests {
		err := c.ValidateToken(tt.token)
		if (err == nil) != tt.ok {
			t.Errorf("ValidateToken(%q) = %v, want ok=%v", tt.token, err, tt.ok)
		}
		if err != nil && !errors.Is(err, providers.ErrTokenMalformed) {
			t.Errorf("ValidateToken(%q) = %v, does not wrap ErrTokenMalformed", tt.token, err)
		}
	}
}

func TestSendTransportErrors(t *testing.T) {
	t.Parallel()

	t.Run("connection refused", func(t *testing.T) {
		t.Parallel()
		s := newSim(t, pushsim.Options{})
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		addr := l.Addr().String()
		l.Close()
		c := newTestClient(t, s, func(o *Options) { o.Endpoint = "https://" + addr; o.RequestTimeout = 1500 * time.Millisecond })
		start := time.Now()
		res, err := c.Send(context.Background(), mustPrepare(t, c, hello), deviceToken(1))
		// Redialled until the request's own timeout, then not sent.
		if !errors.Is(err, providers.ErrNotSent) || time.Since(start) < time.Second {
			t.Fatalf("Send = %+v, %v after %v; want ErrNotSent at the request timeout", res, err, time.Since(start))
		}
	})

	t.Run("stream reset", func(t *testing.T) {
		t.Parallel()
		s := newSim(t, pushsim.Options{})
		c := newTestClient(t, s, nil)
		s.Script(pushsim.ProviderAPNs, deviceToken(1), pushsim.Answer{Reset: true})
		res, err := c.Send(context.Background(), mustPrepare(t, c, hello), deviceToken(1))
		if err == nil {
			t.Fatalf("Send = %+v, want an error", res)
		}
	})

	t.Run("request timeout", func(t *testing.T) {
		t.Parallel()
		s := newSim(t, pushsim.Options{SlowDelay: time.Minute})
		c := newTestClient(t, s, func(o *Options) { o.RequestTimeout = 50 * time.Millisecond })
		res, err := c.Send(context.Background(), mustPrepare(t, c, hello), slowToken(1))
		if !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("Send = %+v, %v; want DeadlineExceeded", res, err)
		}
	})

	t.Run("context canceled", func(t *testing.T) {
		t.Parallel()
		s := newSim(t, pushsim.Options{})
		c := newTestClient(t, s, nil)
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		res, err := c.Send(ctx, mustPrepare(t, c, hello), deviceToken(1))
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("Send = %+v, %v; want Canceled", res, err)
		}
		if got := s.requests(); got != 0 {
			t.Errorf("pushsim saw %d requests, want 0", got)
		}
	})

	t.Run("closed client", func(t *testing.T) {
		t.Parallel()
		s := newSim(t, pushsim.Options{})
		c := newTestClient(t, s, nil)
		p := mustPrepare(t, c, hello)
		c.Close()
		c.Close()
		if res, err := c.Send(context.Background(), p, deviceToken(1)); err == nil {
			t.Fatalf("Send after Close = %+v, want an error", res)
		}
	})
}

func TestSendRefusesForeignPrepared(t *testing.T) {
	t.Parallel()
	s := newSim(t, pushsim.Options{})
	c1 := newTestClient(t, s, nil)
	c2 := newTestClient(t, s, nil)
	if _, err := c2.Send(context.Background(), mustPrepare(t, c1, hello), deviceToken(1)); err == nil {
		t.Fatal("Send accepted a notification prepared by another client")
	}
}

func TestSigningErrorIsReturnedNotSent(t *testing.T) {
	t.Parallel()
	s := newSim(t, pushsim.Options{})
	c := newTestClient(t, s, nil)
	p := mustPrepare(t, c, hello)
	// A key the signer refuses; the next refresh must fail loudly rather
	// than fall back to an empty bearer.
	p384, _ := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	c.tokens.key = p384
	s.clock.Advance(time.Hour)
	res, err := c.Send(context.Background(), p, deviceToken(1))
	if err == nil {
		t.Fatalf("Send = %+v, want the signing error", res)
	}
	if got := s.requests(); got != 0 {
		t.Errorf("pushsim saw %d requests, want 0", got)
	}
}

// captureTransport records requests and answers 200 without a network.
type captureTransport struct {
	mu   sync.Mutex
	reqs []*http.Request
	resp *http.Response
}

func (c *captureTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	if c.resp != nil { // benchmark mode: shared answer, no recording
		return c.resp, nil
	}
	body, err := io.ReadAll(r.Body)
	if err != nil {
		return nil, err
	}
	r.Body = io.NopCloser(bytes.NewReader(body))
	c.mu.Lock()
	c.reqs = append(c.reqs, r)
	c.mu.Unlock()
	return &http.Response{StatusCode: 200, Header: http.Header{"Apns-Id": {"x"}}, Body: http.NoBody}, nil
}

func TestRequestBodyIsReplayable(t *testing.T) {
	t.Parallel()
	ct := &captureTransport{}
	s := newSim(t, pushsim.Options{})
	c := newTestClient(t, s, func(o *Options) { o.Transport = ct })
	p := mustPrepare(t, c, hello)
	mustSend(t, c, p, deviceToken(1))
	mustSend(t, c, p, deviceToken(2))
	if len(ct.reqs) != 2 {
		t.Fatalf("%d requests", len(ct.reqs))
	}
	want := `{"aps":{"alert":{"title":"Hello","body":"World"}}}`
	for _, r := range ct.reqs {
		if r.ContentLength != int64(len(want)) || r.GetBody == nil {
			t.Fatalf("ContentLength %d, GetBody %v", r.ContentLength, r.GetBody != nil)
		}
		for range 2 {
			b, err := r.GetBody()
			if err != nil {
				t.Fatal(err)
			}
			got, _ := io.ReadAll(b)
			if string(got) != want {
				t.Fatalf("GetBody gave %q, want %q", got, want)
			}
		}
	}
	if got := ct.reqs[1].URL.String(); got != s.URL()+"/3/device/"+deviceToken(2) {
		t.Errorf("URL %s", got)
	}
}

// answerTransport answers every request at once with resp, on the
// caller's goroutine, through Go as transport.Pool does: it measures the
// client's own cost.
type answerTransport struct{ resp *http.Response }

func (a answerTransport) RoundTrip(*http.Request) (*http.Response, error) { return a.resp, nil }

func (a answerTransport) Go(req *http.Request, done func(*http.Response, error)) {
	req.Body.Close()
	done(a.resp, nil)
}

func newAnswerTransport() answerTransport {
	return answerTransport{&http.Response{StatusCode: 200, Header: http.Header{"Apns-Id": {"x"}}, Body: http.NoBody}}
}

func TestSendAllocations(t *testing.T) {
	// Not parallel: AllocsPerRun counts every goroutine's allocations.
	s := newSim(t, pushsim.Options{})
	c := newTestClient(t, s, func(o *Options) { o.Transport = newAnswerTransport() })
	p := mustPrepare(t, c, pushd.Notification{Title: "t", Body: "b", Expiration: s.clock.Now().Add(time.Hour)})
	tok := deviceToken(1)
	ctx := context.Background()
	done := func(res providers.Result, err error) {
		if err != nil || res.Outcome != providers.Delivered {
			t.Fatal(res, err)
		}
	}
	allocs := testing.AllocsPerRun(1000, func() { c.SendAsync(ctx, p, tok, done) })
	// Request, URL and body reader, path, and the two completions; a
	// regression (per-send headers, signing, JSON) costs far more.
	if allocs > 5 {
		t.Errorf("%.0f allocations per send, want at most 5", allocs)
	}
	t.Logf("%.0f allocations per send (client side)", allocs)
}
