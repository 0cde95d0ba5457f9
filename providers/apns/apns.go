// Package apns sends alert and background notifications through the Apple
// Push Notification service's HTTP/2 provider API with token (.p8 key)
// authentication.
//
// A Client owns one provider token and one connection pool for one app
// (bundle id, team and key). A campaign run renders its notification once
// with Prepare and then calls Send once per device token, from as many
// goroutines as it likes.
package apns

import (
	"context"
	"crypto/ecdsa"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pushd/pushd/providers"
	"github.com/pushd/pushd/providers/transport"
)

// The APNs hosts.
const (
	ProductionEndpoint  = "https://api.push.apple.com"
	DevelopmentEndpoint = "https://api.sandbox.push.apple.com"
)

// The environments, spelled as in config.ini.
const (
	Development = "development"
	Production  = "production"
)

// Options configures a Client. The zero value of an optional field selects
// its default.
type Options struct {
	// Endpoint is the base URL of APNs, e.g. "https://api.push.apple.com".
	// Empty selects the host of Environment.
	Endpoint string
	// Environment is "development" (the sandbox) or "production".
	Environment string
	// BundleID is the app's bundle id, sent as apns-topic.
	BundleID string
	// TeamID is the Apple developer team id (the token's iss claim).
	TeamID string
	// KeyID is the id of the .p8 key (the token's kid header).
	KeyID string
	// Key is the parsed .p8 key: ECDSA P-256.
	Key *ecdsa.PrivateKey
	// RootCAs are the CAs trusted for APNs' certificate; nil is the system
	// pool.
	RootCAs *x509.CertPool
	// Connections is the number of HTTP/2 connections (default 2).
	Connections int
	// RequestTimeout bounds one request, answer included (default 30 s).
	RequestTimeout time.Duration
	// TokenRefresh is the provider-token age at which it is re-signed
	// (default 40 min). It must lie within [20 min, 50 min]: Apple refuses
	// tokens refreshed more often than every 20 minutes and ones older than
	// an hour.
	TokenRefresh time.Duration
	// Share, when set, is where the provider token comes from, so that
	// every process sending with this key sends one token (see
	// TokenShare). Nil signs one per client, which is right only for a
	// single process that never restarts within 20 minutes.
	Share TokenShare
	// Logger receives the client's few log lines (one per token signing,
	// never one per push); nil discards them. The caller adds component and
	// app attributes.
	Logger *slog.Logger
	// Now is the clock (default time.Now). It dates provider tokens and
	// decides whether a notification has expired.
	Now func() time.Time
	// Transport carries the requests. Nil selects a transport.Pool of
	// Connections connections trusting RootCAs; tests may substitute one.
	// One with a Go method, as transport.Pool has, is used without a
	// goroutine per request and must enforce RequestTimeout itself.
	Transport http.RoundTripper
	// OnConnEvent, when set, is told of the connections' dials, GOAWAYs
	// and losses (see transport.Options.OnEvent). Ignored with Transport.
	OnConnEvent func(transport.Event)
}

// Client sends notifications to APNs for one app. It is safe for concurrent
// use. Make one per app and keep it for the life of the daemon.
type Client struct {
	// headerSet is the static headers of the last Prepare, reused by the
	// next one with the same (see headerSet).
	headerSet    atomic.Pointer[headerSet]
	scheme, host string
	topic        string
	now          func() time.Time
	rt           http.RoundTripper
	async        transport.Goer // rt, or rt on a goroutine per request
	tokens       *tokenSource
	closed       atomic.Bool
	closeOnce    sync.Once
	// reqTemplate holds what every request shares.
	reqTemplate *http.Request
	// bodyBufs holds buffers for reading error bodies.
	bodyBufs sync.Pool
}

// New checks opts, signs the first provider token (so a bad key fails at
// startup rather than at the first push) and returns a Client. No
// connection is made until the first Send.
func New(opts Options) (*Client, error) {
	if opts.BundleID == "" {
		return nil, errors.New("apns: bundle id is empty")
	}
	if opts.TeamID == "" {
		return nil, errors.New("apns: team id is empty")
	}
	if opts.KeyID == "" {
		return nil, errors.New("apns: key id is empty")
	}
	if err := checkKey(opts.Key); err != nil {
		return nil, fmt.Errorf("apns: %w", err)
	}
	endpoint := opts.Endpoint
	switch opts.Environment {
	case Production:
		if endpoint == "" {
			endpoint = ProductionEndpoint
		}
	case Development:
		if endpoint == "" {
			endpoint = DevelopmentEndpoint
		}
	case "":
		if endpoint == "" {
			return nil, errors.New(`apns: environment is empty; set "development" or "production"`)
		}
	default:
		return nil, fmt.Errorf(`apns: environment %q is not "development" or "production"`, opts.Environment)
	}
	u, err := url.Parse(endpoint)
	if err != nil {
		return nil, fmt.Errorf("apns: endpoint %q: %w", endpoint, err)
	}
	if u.Scheme != "https" || u.Host == "" || (u.Path != "" && u.Path != "/") || u.RawQuery != "" {
		return nil, fmt.Errorf("apns: endpoint %q must be https://host[:port] with no path", endpoint)
	}
	if opts.Connections < 0 {
		return nil, fmt.Errorf("apns: connections must be 1 or more, got %d", opts.Connections)
	}
	if opts.Connections == 0 {
		opts.Connections = 2
	}
	if opts.RequestTimeout < 0 {
		return nil, fmt.Errorf("apns: request timeout must be positive, got %s", opts.RequestTimeout)
	}
	if opts.RequestTimeout == 0 {
		opts.RequestTimeout = 30 * time.Second
	}
	if opts.TokenRefresh == 0 {
		opts.TokenRefresh = defaultTokenRefresh
	}
	if opts.TokenRefresh < minTokenRefresh || opts.TokenRefresh > maxTokenRefresh {
		return nil, fmt.Errorf("apns: token refresh %s is outside [%s, %s]: Apple refuses tokens renewed more often than every 20 minutes or older than an hour",
			opts.TokenRefresh, minTokenRefresh, maxTokenRefresh)
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	rt := opts.Transport
	if rt == nil {
		pool, err := transport.New(transport.Options{
			Connections:    opts.Connections,
			RootCAs:        opts.RootCAs,
			RequestTimeout: opts.RequestTimeout,
			// The device token is in the path, and an answer's headers
			// are its own apns-id (and apns-unique-id): none is worth
			// indexing.
			UniquePaths:   true,
			UniqueAnswers: true,
			OnEvent:       opts.OnConnEvent,
		})
		if err != nil {
			return nil, fmt.Errorf("apns: %w", err)
		}
		rt = pool
	}
	c := &Client{
		scheme: u.Scheme,
		host:   u.Host,
		topic:  opts.BundleID,
		now:    opts.Now,
		rt:     rt,
		tokens: &tokenSource{
			teamID:  opts.TeamID,
			keyID:   opts.KeyID,
			key:     opts.Key,
			refresh: opts.TokenRefresh,
			now:     opts.Now,
			logger:  opts.Logger,
			share:   opts.Share,
		},
	}
	c.async = transport.AsGoer(rt, opts.RequestTimeout)
	c.reqTemplate = &http.Request{Method: http.MethodPost, Proto: "HTTP/2.0", ProtoMajor: 2, Host: u.Host}
	c.bodyBufs.New = func() any { return new([maxResponseBody]byte) }
	if opts.Share == nil {
		if _, err := c.tokens.current(c.now()); err != nil {
			return nil, fmt.Errorf("apns: %w", err)
		}
	} else if _, err := c.tokens.sign(false); err != nil {
		// Checked, not published: the first send adopts or renews the
		// shared token.
		return nil, fmt.Errorf("apns: %w", err)
	}
	return c, nil
}

// TokenRefreshes returns how many provider tokens the client has signed
// and sent (or will send), the one signed by New without a share included.
func (c *Client) TokenRefreshes() uint64 { return c.tokens.signed.Load() }

// ProviderToken says where the token the client sends now comes from:
// when it was issued, and whether it is the one shared through Options.Share
// (false: signed by this process alone). The zero time means none yet.
func (c *Client) ProviderToken() (issuedAt time.Time, shared bool) {
	t := c.tokens.cur.Load()
	if t == nil {
		return time.Time{}, false
	}
	return t.signedAt, c.tokens.share != nil && !t.local
}

// Close closes the client's idle connections. Sends after Close fail. It
// may be called more than once.
func (c *Client) Close() {
	c.closed.Store(true)
	c.closeOnce.Do(func() {
		if ci, ok := c.rt.(interface{ CloseIdleConnections() }); ok {
			ci.CloseIdleConnections()
		}
	})
}

// maxTokenLen is the longest device token accepted. APNs tokens are 32
// bytes (64 hex digits) today; Apple has said they may grow, so allow room.
const maxTokenLen = 200

// ValidateToken reports whether token can be an APNs device token: 1 to 200
// hexadecimal digits, an even number of them. Its error wraps
// providers.ErrTokenMalformed.
func (c *Client) ValidateToken(token string) error {
	switch {
	case token == "":
		return fmt.Errorf("apns: empty device token: %w", providers.ErrTokenMalformed)
	case len(token) > maxTokenLen:
		return fmt.Errorf("apns: device token is %d characters, over %d: %w", len(token), maxTokenLen, providers.ErrTokenMalformed)
	case len(token)%2 != 0:
		return fmt.Errorf("apns: device token has an odd number of hex digits (%d): %w", len(token), providers.ErrTokenMalformed)
	}
	for i := 0; i < len(token); i++ {
		if !isHex(token[i]) {
			return fmt.Errorf("apns: device token has a non-hex character at position %d: %w", i, providers.ErrTokenMalformed)
		}
	}
	return nil
}

func isHex(b byte) bool {
	return '0' <= b && b <= '9' || 'a' <= b && b <= 'f' || 'A' <= b && b <= 'F'
}

// Send posts the prepared notification to one device token and returns
// APNs' answer.
//
// A rejection, however permanent, is a Result, never an error. Send returns
// an error only when it got no answer: the context ended, the request timed
// out, the connection failed or was reset (the caller may retry those), the
// provider token could not be signed, or p was not made by this client's
// Prepare. It returns providers.ErrExpired, sending nothing, once the
// notification's Expiration has passed by the client's clock. A token that
// ValidateToken refuses is not sent either: it yields a TokenInvalid Result
// with Reason BadDeviceToken and Status 0.
//
// If APNs answers ExpiredProviderToken, Send re-signs the provider token
// (once, however many sends saw the same stale token) and retries the push
// once.
func (c *Client) Send(ctx context.Context, p providers.Prepared, token string) (providers.Result, error) {
	return providers.Await(func(done func(providers.Result, error)) { c.SendAsync(ctx, p, token, done) })
}

// SendAsync is Send without the wait: it returns once the request is
// written (or queued to be), and done gets what Send would have returned,
// exactly once. done may run on the transport's frame reader, which reads
// no further answer until it returns, so it must be quick and must not
// block. A forced provider-token refresh and its retry run on a goroutine
// of their own.
//
// A rejection, however permanent, is a Result, never an error; see Send.
func (c *Client) SendAsync(ctx context.Context, p providers.Prepared, token string, done func(providers.Result, error)) {
	pp, ok := p.(*prepared)
	if !ok || pp.client != c {
		done(providers.Result{}, errors.New("apns: Send: the notification was not prepared by this client"))
		return
	}
	if err := c.ValidateToken(token); err != nil {
		done(providers.Result{Outcome: providers.TokenInvalid, Reason: ReasonBadDeviceToken, Detail: "not sent: " + err.Error()}, nil)
		return
	}
	if c.closed.Load() {
		done(providers.Result{}, errors.New("apns: Send on a closed client"))
		return
	}
	// One clock reading serves the token's age and the expiration check.
	now := c.now()
	tok, err := c.tokens.current(now)
	if err != nil {
		done(providers.Result{}, fmt.Errorf("apns: %w", err))
		return
	}
	c.post(ctx, pp, token, tok, now, func(res providers.Result, err error) {
		if err != nil || res.Status != http.StatusForbidden || res.Reason != ReasonExpiredProviderToken {
			done(res, err)
			return
		}
		// Signing takes a lock and a millisecond: not on the frame reader.
		go func() {
			next, retry, err := c.tokens.replace(tok)
			switch {
			case err != nil:
				done(providers.Result{}, fmt.Errorf("apns: %w", err))
			case !retry:
				done(res, nil)
			default:
				c.post(ctx, pp, token, next, c.now(), done)
			}
		}()
	})
}

// requestState is the per-request memory that the transport may hold
// until the request is done.
type requestState struct {
	url  url.URL
	body payloadBody
}

// post makes one request at now; done gets its answer.
func (c *Client) post(ctx context.Context, p *prepared, token string, tok *providerToken, now time.Time, done func(providers.Result, error)) {
	req, err := c.newRequest(ctx, p, token, tok, now)
	if err != nil {
		done(providers.Result{}, err)
		return
	}
	c.async.Go(req, func(resp *http.Response, err error) { done(c.result(resp, err)) })
}

// newRequest builds the request for one push at now, unless the
// notification has expired or ctx has ended.
func (c *Client) newRequest(ctx context.Context, p *prepared, token string, tok *providerToken, now time.Time) (*http.Request, error) {
	if !p.expiration.IsZero() && now.After(p.expiration) {
		return nil, providers.ErrExpired
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	// One allocation for the URL and the body reader together.
	st := &requestState{
		url:  url.URL{Scheme: c.scheme, Host: c.host, Path: "/3/device/" + token},
		body: payloadBody{b: p.payload},
	}
	// WithContext's copy is the request's one allocation.
	req := c.reqTemplate.WithContext(ctx)
	req.URL = &st.url
	req.Header = p.headers(tok)
	req.Body = &st.body
	req.GetBody = p.getBody
	req.ContentLength = int64(len(p.payload))
	return req, nil
}

// result reads an answer into a Result.
func (c *Client) result(resp *http.Response, err error) (providers.Result, error) {
	if err != nil {
		if errors.Is(err, transport.ErrNotSent) {
			err = fmt.Errorf("%w: %w", providers.ErrNotSent, err)
		}
		return providers.Result{}, fmt.Errorf("apns: post to %s: %w", c.host, err)
	}
	defer resp.Body.Close()
	// Reading the (normally empty or tiny) body to EOF lets the stream end
	// cleanly instead of being reset.
	buf := c.bodyBufs.Get().(*[maxResponseBody]byte)
	defer c.bodyBufs.Put(buf)
	n, err := io.ReadFull(resp.Body, buf[:])
	if err != nil && !errors.Is(err, io.EOF) && !errors.Is(err, io.ErrUnexpectedEOF) {
		return providers.Result{}, fmt.Errorf("apns: read answer from %s: %w", c.host, err)
	}
	if resp.StatusCode == http.StatusOK {
		return providers.Result{Outcome: providers.Delivered, Status: http.StatusOK, ID: resp.Header.Get("Apns-Id")}, nil
	}
	return parseResponse(resp.StatusCode, resp.Header.Get("Apns-Id"), resp.Header.Get("Retry-After"), buf[:n], c.now()), nil
}
