// Package pushsim is a strict local simulator of Apple's APNs HTTP/2 provider
// API, Google's FCM HTTP v1 API and Google's OAuth2 token endpoint, written
// from the providers' documentation (see shared/PROTOCOLS.md).
//
// It answers like the real services do (status codes, reasons, error bodies,
// JWT rules), so that pushd's tests and benchmarks run against something that
// rejects what Apple and Google would reject:
//
//   - APNs: POST /3/device/<hex token> with an ES256 provider token signed by
//     Files().AuthKeyFile; header, topic, payload and token-churn checks.
//   - FCM: POST /v1/projects/<project>/messages:send with an access token
//     from the token endpoint; the v1 Message is type-checked field by field.
//   - OAuth: POST /token with a JWT-bearer assertion signed by the key in
//     Files().ServiceAccountFile; golang.org/x/oauth2/google works as is.
//
// The device token chooses what happens to a good request, by its first
// four characters (the same for both providers; see BehaviourOf):
//
//	dead  APNs 410 Unregistered (timestamp now-DeadSince), FCM 404 UNREGISTERED
//	0bad  APNs 400 BadDeviceToken, FCM 400 INVALID_ARGUMENT
//	0f0e  APNs 400 DeviceTokenNotForTopic, FCM 403 SENDER_ID_MISMATCH
//	0429  the first 2 requests 429 (FCM with Retry-After), then delivered
//	0503  the first request 503 (FCM with Retry-After), then delivered
//	0510  delivered after Options.SlowDelay
//	else  delivered, subject to Faults
//
// All three APIs share one TLS listener that speaks HTTP/2 only (an HTTP/1
// request gets 505). A second, plain-HTTP admin listener serves:
//
//	GET  /stats       Stats as JSON
//	GET  /deliveries  one Delivery per line (NDJSON)
//	GET  /pushes      one Push per line (NDJSON), with Options.KeepPushes
//	POST /reset       Server.Reset
//	GET  /faults      the current Faults as JSON
//	POST /faults      replace the Faults, e.g. {"fail_rate":0.1,"latency":"20ms"}
//
// The generated keys and certificates live in Options.Dir and are reused on
// the next start; Dir/pushsim.json tells other processes where everything is.
//
// # Checks the client tests rely on
//
// The tests of providers/apns and providers/fcm run against pushsim (it
// replaced their own fakes), so it also enforces what those fakes did.
// Where Apple or Google document no rejection, pushsim is stricter on
// purpose, to catch client bugs, and says so at the check:
//
//   - apns-expiration must be 0 or a date not yet passed (a relative TTL is
//     a date in 1970) and not in milliseconds; the same for FCM's
//     apns.headers.
//   - apns-collapse-id must not be sent empty; in FCM's apns.headers it and
//     apns-priority, apns-push-type, apns-id and apns-topic follow the APNs
//     rules, and other header names are refused.
//   - The documented aps keys must have their documented JSON types (a
//     badge is a non-negative integer), for APNs and FCM's apns.payload.
//   - The aps values must be ones Apple documents: interruption-level
//     passive, active, time-sensitive or critical; relevance-score from 0
//     to 1; mutable-content 1, and only with an alert (APNs answers
//     BadPayload, FCM INVALID_ARGUMENT).
//   - The payload must match apns-push-type: an alert push has an alert,
//     a sound or a badge; a background push has content-available 1 and
//     none of them (APNs InvalidPushType), and apns-priority 5, where an
//     omitted priority counts as 10 and 1 is refused too (BadPriority).
//     FCM applies the background rules to apns.headers and apns.payload,
//     counting message.notification as an alert.
//   - FCM image URLs (notification.image, android.notification.image,
//     apns.fcm_options.image) are absolute https URLs; android.priority
//     is NORMAL, HIGH, normal or high, not a number or another spelling.
//   - An APNs provider token with an exp claim is invalid.
//   - An OAuth assertion's exp must come after its iat.
//   - FCM data keys are reserved case-insensitively, and may not be empty;
//     messages:send takes no query parameters.
//
// Tests that need every push a client sent, not only the last per token
// (Server.Deliveries), set Options.KeepPushes and read Server.Pushes.
//
// Tests script what the prefixes cannot produce with Server.Script (any
// status, headers or body, or a reset stream, for valid requests only),
// age or revoke credentials with Server.ExpireProviderTokens and
// Server.RevokeAccessTokens, and fail the token endpoint or every access
// token with Faults. ValidateFCMRequest checks a rendered FCM request
// without a round trip, for fuzzing.
package pushsim

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log"
	"log/slog"
	"net"
	"net/http"
	"regexp"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/net/http2"
)

// Options configures a Server. Only Dir is required; every other field has a
// default, named in its comment.
type Options struct {
	// Dir receives the generated material (see Files). It is created if
	// missing. Key material already in Dir is reused, so that a config that
	// points at it keeps working across restarts.
	Dir string
	// Addr is the TLS listener for APNs, FCM and the token endpoint.
	// Default "127.0.0.1:0".
	Addr string
	// AdminAddr is the plain-HTTP admin listener. Default "127.0.0.1:0".
	AdminAddr string
	// TeamID is the APNs team id, the JWT "iss". Default "TEAM000001".
	TeamID string
	// KeyID is the APNs key id, the JWT "kid". Default "KEY0000001".
	KeyID string
	// BundleIDs are the apps whose topics APNs accepts.
	// Default {"com.example.demo"}.
	BundleIDs []string
	// ProjectID is the only FCM project that exists. Default "pushd-demo".
	ProjectID string
	// DeadSince dates a dead token's unregistration: the 410 timestamp is
	// now - DeadSince. Default 1h.
	DeadSince time.Duration
	// SlowDelay is how long requests for slow ("0510") tokens take.
	// Default 2s.
	SlowDelay time.Duration
	// AccessTokenTTL is the lifetime of OAuth access tokens. Default 1h.
	AccessTokenTTL time.Duration
	// MaxConcurrentStreams is advertised in the HTTP/2 SETTINGS.
	// Default 1000.
	MaxConcurrentStreams uint32
	// NoDeliveryLog turns off the per-token delivery records, for
	// benchmarks with millions of tokens. Stats are kept either way.
	NoDeliveryLog bool
	// KeepPushes is how many of the latest delivered pushes Server.Pushes
	// returns, each with its headers and decoded payload; beyond it the
	// oldest are dropped. 0, the default, keeps none and costs nothing,
	// for benchmarks. Each kept push holds its request body.
	KeepPushes int
	// Logger receives lifecycle messages, and one debug line per request.
	// Nil discards.
	Logger *slog.Logger
	// Faults are the initial injected faults; see Server.SetFaults.
	Faults Faults
	// Now is the clock. Default time.Now.
	Now func() time.Time
}

// Faults are service-wide failures injected into otherwise good requests.
// The zero value injects nothing. In JSON (admin /faults) the fields are
// snake_case and Latency is a Go duration string such as "20ms".
type Faults struct {
	// FailRate is the fraction (0..1) of otherwise good APNs and FCM requests
	// answered 503 (APNs ServiceUnavailable, FCM UNAVAILABLE).
	FailRate float64
	// ThrottleRate is the fraction (0..1) answered 429 (APNs TooManyRequests,
	// FCM QUOTA_EXCEEDED). FailRate + ThrottleRate must not exceed 1.
	ThrottleRate float64
	// RetryAfter is the Retry-After header, in seconds, on FCM 429 and 503
	// answers. Default 1. APNs sends none: Apple documents none.
	RetryAfter int
	// Latency is added to every request on the TLS listener.
	Latency time.Duration
	// GoAwayAfter ends every connection after N requests on it: with the
	// Nth answer the server sends a graceful GOAWAY (NO_ERROR) whose debug
	// data is {"reason":"Shutdown"}, as APNs does, and closes the
	// connection once the streams the client had already opened are
	// answered. Stats.GoAways counts the connections ended. 0 disables.
	GoAwayAfter int
	// ExpiredProviderTokenOnce answers the next APNs request whose JWT is
	// otherwise valid with 403 ExpiredProviderToken, once.
	ExpiredProviderTokenOnce bool
	// InvalidProviderToken answers every APNs request that carries a bearer
	// token with 403 InvalidProviderToken.
	InvalidProviderToken bool
	// RejectServiceAccount answers every token-endpoint request with
	// 400 invalid_grant.
	RejectServiceAccount bool
	// TokenEndpointUnavailable answers every token-endpoint request with
	// 503 backend_error, as Google's endpoint does when it is overloaded.
	TokenEndpointUnavailable bool
	// RejectAccessTokens answers every FCM request with 401
	// UNAUTHENTICATED, however fresh its access token: the credential the
	// tokens were issued for no longer works.
	RejectAccessTokens bool
	// Seed seeds the random draws for FailRate and ThrottleRate, so that a
	// run with sequential requests is repeatable. 0 picks a random seed.
	Seed int64
}

// Validate reports whether the rates are in range and the durations and
// counts are not negative.
func (f Faults) Validate() error {
	switch {
	case f.FailRate < 0 || f.FailRate > 1:
		return fmt.Errorf("fail rate %v: want 0..1", f.FailRate)
	case f.ThrottleRate < 0 || f.ThrottleRate > 1:
		return fmt.Errorf("throttle rate %v: want 0..1", f.ThrottleRate)
	case f.FailRate+f.ThrottleRate > 1:
		return fmt.Errorf("fail rate %v + throttle rate %v: want at most 1", f.FailRate, f.ThrottleRate)
	case f.RetryAfter < 0:
		return fmt.Errorf("retry after %d: want >= 0 seconds", f.RetryAfter)
	case f.Latency < 0:
		return fmt.Errorf("latency %v: want >= 0", f.Latency)
	case f.GoAwayAfter < 0:
		return fmt.Errorf("goaway after %d: want >= 0", f.GoAwayAfter)
	}
	return nil
}

// Server is a running simulator. Its methods are safe for concurrent use.
type Server struct {
	opts  Options
	log   *slog.Logger
	now   func() time.Time
	files Files
	mat   *material

	ln      net.Listener
	adminLn net.Listener
	admin   *http.Server
	tlsConf *tls.Config
	h2      *http2.Server
	h1      *http.Server // base config for HTTP/2 connections
	handler http.Handler

	faults     atomic.Pointer[faultState]
	expireOnce atomic.Bool
	scripts    scripts

	stats    stats
	delivery *deliveryLog // nil with NoDeliveryLog
	pushes   *pushLog     // nil with KeepPushes 0
	attempts attempts
	apnsJWT  jwtCache
	oauth    accessTokens
	msgSeq   atomic.Uint64

	ctx    context.Context // cancelled by Close
	cancel context.CancelFunc
	wg     sync.WaitGroup
	mu     sync.Mutex
	conns  map[*conn]struct{}
	closed bool
}

var idPattern = regexp.MustCompile(`^[A-Z0-9]{10}$`)

func (o *Options) setDefaults() error {
	if o.Dir == "" {
		return errors.New("options: Dir is required")
	}
	if o.Addr == "" {
		o.Addr = "127.0.0.1:0"
	}
	if o.AdminAddr == "" {
		o.AdminAddr = "127.0.0.1:0"
	}
	if o.TeamID == "" {
		o.TeamID = "TEAM000001"
	}
	if o.KeyID == "" {
		o.KeyID = "KEY0000001"
	}
	if !idPattern.MatchString(o.TeamID) {
		return fmt.Errorf("options: TeamID %q: want 10 upper-case letters or digits", o.TeamID)
	}
	if !idPattern.MatchString(o.KeyID) {
		return fmt.Errorf("options: KeyID %q: want 10 upper-case letters or digits", o.KeyID)
	}
	if len(o.BundleIDs) == 0 {
		o.BundleIDs = []string{"com.example.demo"}
	}
	o.BundleIDs = append([]string(nil), o.BundleIDs...)
	for _, b := range o.BundleIDs {
		if !topicPattern.MatchString(b) {
			return fmt.Errorf("options: bundle id %q: want a reverse-DNS name such as com.example.demo", b)
		}
	}
	if o.ProjectID == "" {
		o.ProjectID = "pushd-demo"
	}
	if !projectPattern.MatchString(o.ProjectID) {
		return fmt.Errorf("options: ProjectID %q: want lower-case letters, digits or hyphens", o.ProjectID)
	}
	if o.DeadSince == 0 {
		o.DeadSince = time.Hour
	}
	if o.SlowDelay == 0 {
		o.SlowDelay = 2 * time.Second
	}
	if o.AccessTokenTTL == 0 {
		o.AccessTokenTTL = time.Hour
	}
	if o.KeepPushes < 0 {
		return fmt.Errorf("options: KeepPushes %d: want 0 (keep none) or more", o.KeepPushes)
	}
	if o.DeadSince < 0 || o.SlowDelay < 0 || o.AccessTokenTTL < 0 {
		return errors.New("options: DeadSince, SlowDelay and AccessTokenTTL must not be negative")
	}
	if o.MaxConcurrentStreams == 0 {
		o.MaxConcurrentStreams = 1000
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if err := o.Faults.Validate(); err != nil {
		return fmt.Errorf("options: faults: %w", err)
	}
	return nil
}

var projectPattern = regexp.MustCompile(`^[a-z0-9][a-z0-9-]{0,62}$`)

// Start writes or reuses the material in opts.Dir, opens both listeners and
// serves until Close.
func Start(opts Options) (*Server, error) {
	if err := opts.setDefaults(); err != nil {
		return nil, err
	}
	s := &Server{
		opts:  opts,
		log:   opts.Logger,
		now:   opts.Now,
		conns: make(map[*conn]struct{}),
	}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	s.log = s.log.With("component", "pushsim")
	if !opts.NoDeliveryLog {
		s.delivery = newDeliveryLog()
	}
	if opts.KeepPushes > 0 {
		s.pushes = newPushLog(opts.KeepPushes)
	}
	s.attempts.init()
	s.apnsJWT.init()
	s.oauth.init()
	s.scripts.init()
	s.SetFaults(opts.Faults)

	host, _, err := net.SplitHostPort(opts.Addr)
	if err != nil {
		return nil, fmt.Errorf("options: Addr %q: %w", opts.Addr, err)
	}
	// Certificates are checked against the clients' wall clocks, not Now.
	mat, err := loadMaterial(opts.Dir, opts.KeyID, host, time.Now())
	if err != nil {
		return nil, err
	}
	s.mat = mat

	ln, err := net.Listen("tcp", opts.Addr)
	if err != nil {
		return nil, fmt.Errorf("listen %s: %w", opts.Addr, err)
	}
	adminLn, err := net.Listen("tcp", opts.AdminAddr)
	if err != nil {
		ln.Close()
		return nil, fmt.Errorf("listen admin %s: %w", opts.AdminAddr, err)
	}
	s.ln, s.adminLn = ln, adminLn

	s.files, err = writeConfig(opts, mat, s.URL(), s.AdminURL())
	if err != nil {
		ln.Close()
		adminLn.Close()
		return nil, err
	}

	s.tlsConf = &tls.Config{
		Certificates: []tls.Certificate{mat.serverCert},
		NextProtos:   []string{http2.NextProtoTLS},
		MinVersion:   tls.VersionTLS12,
	}
	s.h1 = &http.Server{ErrorLog: log.New(debugLogWriter{s.log}, "", 0)}
	s.h2 = &http2.Server{MaxConcurrentStreams: opts.MaxConcurrentStreams}
	s.handler = http.HandlerFunc(s.serveHTTP)
	s.admin = &http.Server{
		Handler:           s.adminHandler(),
		ReadHeaderTimeout: 10 * time.Second,
		ErrorLog:          s.h1.ErrorLog,
	}

	s.ctx, s.cancel = context.WithCancel(context.Background())
	s.wg.Add(2)
	go func() {
		defer s.wg.Done()
		s.acceptLoop()
	}()
	go func() {
		defer s.wg.Done()
		if err := s.admin.Serve(adminLn); err != nil && !errors.Is(err, http.ErrServerClosed) {
			s.log.Error("admin listener stopped", "error", err)
		}
	}()
	s.log.Info("started", "url", s.URL(), "admin_url", s.AdminURL(), "config", s.files.ConfigFile)
	return s, nil
}

// debugLogWriter turns the HTTP servers' internal error log into debug lines.
type debugLogWriter struct{ log *slog.Logger }

func (w debugLogWriter) Write(p []byte) (int, error) {
	w.log.Debug("http server", "message", string(p))
	return len(p), nil
}

// URL is the base URL of APNs, FCM and the token endpoint, such as
// "https://127.0.0.1:8443".
func (s *Server) URL() string { return "https://" + s.ln.Addr().String() }

// AdminURL is the base URL of the admin API, such as "http://127.0.0.1:8444".
func (s *Server) AdminURL() string { return "http://" + s.adminLn.Addr().String() }

// Files describes the generated material; the same facts are in
// Files().ConfigFile (pushsim.json).
func (s *Server) Files() Files {
	f := s.files
	f.BundleIDs = append([]string(nil), f.BundleIDs...)
	return f
}

// SetFaults replaces the injected faults. It does not validate them: call
// Faults.Validate first when they come from outside. Setting
// ExpiredProviderTokenOnce arms it again.
func (s *Server) SetFaults(f Faults) {
	if f.RetryAfter == 0 {
		f.RetryAfter = 1
	}
	s.expireOnce.Store(f.ExpiredProviderTokenOnce)
	s.faults.Store(newFaultState(f))
}

// currentFaults returns the faults in force, ExpiredProviderTokenOnce showing whether
// it is still armed.
func (s *Server) currentFaults() Faults {
	f := s.faults.Load().Faults
	f.ExpiredProviderTokenOnce = s.expireOnce.Load()
	return f
}

// Reset zeroes the statistics and forgets the deliveries, the kept pushes
// (Seq starts again at 1), the attempt counters of the "0429" and "0503" tokens, the scripted answers and the
// APNs JWTs seen (so the token-churn window starts afresh). Issued access
// tokens stay valid.
func (s *Server) Reset() {
	s.stats.reset()
	s.scripts.reset()
	if s.delivery != nil {
		s.delivery.reset()
	}
	if s.pushes != nil {
		s.pushes.reset()
	}
	s.attempts.reset()
	s.apnsJWT.reset()
}

// Close stops both listeners, drops every connection and waits for the
// server's goroutines. It may be called more than once.
func (s *Server) Close() error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil
	}
	s.closed = true
	conns := make([]*conn, 0, len(s.conns))
	for c := range s.conns {
		conns = append(conns, c)
	}
	s.mu.Unlock()

	s.cancel()
	err := s.ln.Close()
	if aerr := s.admin.Close(); err == nil {
		err = aerr
	}
	for _, c := range conns {
		c.Close()
	}
	s.wg.Wait()
	s.log.Info("stopped")
	return err
}

// sleep waits for d, or less if ctx ends first; it reports whether the full
// time passed.
func sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}
