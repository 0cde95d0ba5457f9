// Package fcm sends push notifications to Android (and, through Firebase,
// iOS) devices with the Firebase Cloud Messaging HTTP v1 API.
//
// The legacy API, GCM and batch sends are shut down: every message is one
// POST to /v1/projects/{project_id}/messages:send, authorised by an OAuth2
// access token minted from a service-account key, and multiplexed on a few
// long-lived HTTP/2 connections (providers/transport).
//
// Files: auth.go gets and refreshes access tokens, payload.go renders a
// Notification into the v1 message, send.go posts it and response.go maps
// Google's answer to a providers.Result.
package fcm

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pushd/pushd/providers/transport"
)

// DefaultEndpoint is the base URL of the FCM HTTP v1 API.
const DefaultEndpoint = "https://fcm.googleapis.com"

// Options configures a Client. The zero value of each optional field selects
// its default.
type Options struct {
	// Endpoint is the base URL of the FCM API (default DefaultEndpoint). It
	// must be https: FCM is spoken over HTTP/2 with TLS only.
	Endpoint string
	// ProjectID is the Firebase project id (config key project_id). Required.
	ProjectID string
	// ServiceAccountJSON is the content of the service-account key file
	// (config key service_account_file). Required. Its token_uri is honoured.
	ServiceAccountJSON []byte
	// RootCAs are the CAs trusted for both FCM and the key's token_uri; nil
	// means the system pool.
	RootCAs *x509.CertPool
	// Connections is the number of HTTP/2 connections to FCM (default 2).
	Connections int
	// RequestTimeout bounds each HTTP request to FCM and each access-token
	// fetch (default 30 s).
	RequestTimeout time.Duration
	// ValidateOnly makes every send a dry run ("validate_only": true): FCM
	// checks the message and answers as usual but delivers nothing.
	ValidateOnly bool
	// Logger receives the client's few log lines (a forced token refresh, a
	// cut-off answer), with project_id added; the caller names the component
	// and app. Default: discarded.
	Logger *slog.Logger
	// Now is the clock used for android.ttl and Retry-After dates (default
	// time.Now). Access-token expiry uses the real clock.
	Now func() time.Time
	// Transport, when set, replaces the HTTP/2 connection pool for requests
	// to FCM and to the token_uri. Meant for tests. One with a Go method,
	// as transport.Pool has, is used without a goroutine per request and
	// must enforce RequestTimeout itself.
	Transport http.RoundTripper
	// OnConnEvent, when set, is told of the connections' dials, GOAWAYs
	// and losses (see transport.Options.OnEvent). Ignored with Transport.
	OnConnEvent func(transport.Event)
}

// Client sends FCM HTTP v1 messages for one Firebase project with one
// service account. It is safe for concurrent use; create one per credential
// and keep it for the life of the process.
type Client struct {
	sendURL      *url.URL
	reqTemplate  http.Request   // Method, URL and Host of every send; copied per request
	rt           transport.Goer // the send transport, or it on a goroutine per request
	auth         *auth
	validateOnly bool
	now          func() time.Time
	log          *slog.Logger

	closed    atomic.Bool
	closeOnce sync.Once
	idlers    []interface{ CloseIdleConnections() }
}

// errClosed is returned by Send after Close.
var errClosed = errors.New("fcm: client is closed")

// New returns a Client. It checks the options and parses the service-account
// key but makes no network request: the first Send fetches an access token.
func New(opts Options) (*Client, error) {
	if opts.ProjectID == "" {
		return nil, errors.New("fcm: project_id is empty: set it to the Firebase project id")
	}
	if !validProjectID(opts.ProjectID) {
		return nil, fmt.Errorf("fcm: project_id %q: a project id has only letters, digits, '-', '.' and ':'", opts.ProjectID)
	}
	if opts.Endpoint == "" {
		opts.Endpoint = DefaultEndpoint
	}
	base, err := url.Parse(strings.TrimSuffix(opts.Endpoint, "/"))
	if err != nil || base.Scheme != "https" || base.Host == "" {
		return nil, fmt.Errorf("fcm: endpoint %q: want an https URL such as %s", opts.Endpoint, DefaultEndpoint)
	}
	if opts.RequestTimeout < 0 {
		return nil, fmt.Errorf("fcm: request timeout %v: must not be negative", opts.RequestTimeout)
	}
	if opts.RequestTimeout == 0 {
		opts.RequestTimeout = 30 * time.Second
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	log := opts.Logger.With("project_id", opts.ProjectID)

	c := &Client{
		validateOnly: opts.ValidateOnly,
		now:          opts.Now,
		log:          log,
	}

	sendRT, tokenRT := opts.Transport, opts.Transport
	if sendRT == nil {
		pool, err := transport.New(transport.Options{
			Connections:    opts.Connections,
			RootCAs:        opts.RootCAs,
			RequestTimeout: opts.RequestTimeout,
			OnEvent:        opts.OnConnEvent,
		})
		if err != nil {
			return nil, fmt.Errorf("fcm: %w", err)
		}
		sendRT = pool
		// Tokens are fetched about once an hour: a plain transport that lets
		// its connection go idle suits that better than pinged HTTP/2.
		tokenRT = &http.Transport{
			TLSClientConfig:     &tls.Config{RootCAs: opts.RootCAs, MinVersion: tls.VersionTLS12},
			ForceAttemptHTTP2:   true,
			TLSHandshakeTimeout: 10 * time.Second,
			IdleConnTimeout:     90 * time.Second,
			MaxIdleConnsPerHost: 1,
		}
	}
	for _, rt := range []http.RoundTripper{sendRT, tokenRT} {
		if i, ok := rt.(interface{ CloseIdleConnections() }); ok {
			c.idlers = append(c.idlers, i)
		}
	}
	c.rt = transport.AsGoer(sendRT, opts.RequestTimeout)

	c.auth, err = newAuth(opts.ServiceAccountJSON, tokenRT, opts.RequestTimeout, log)
	if err != nil {
		return nil, err
	}

	send := *base
	send.Path = strings.TrimSuffix(base.Path, "/") + "/v1/projects/" + opts.ProjectID + "/messages:send"
	send.RawPath = ""
	c.sendURL = &send
	c.reqTemplate = http.Request{
		Method:     http.MethodPost,
		URL:        c.sendURL,
		Host:       c.sendURL.Host,
		Proto:      "HTTP/1.1",
		ProtoMajor: 1,
		ProtoMinor: 1,
	}
	return c, nil
}

// Close stops token refreshes and closes idle connections. Send fails after
// Close. Close may be called more than once.
func (c *Client) Close() {
	c.closeOnce.Do(func() {
		c.closed.Store(true)
		c.auth.close()
		for _, i := range c.idlers {
			i.CloseIdleConnections()
		}
	})
}

// TokenRefreshes returns the number of OAuth2 access tokens fetched from the
// token_uri so far (successful exchanges only). Safe for concurrent use.
func (c *Client) TokenRefreshes() uint64 { return c.auth.fetches.Load() }

func validProjectID(s string) bool {
	for i := 0; i < len(s); i++ {
		b := s[i]
		if !('a' <= b && b <= 'z' || 'A' <= b && b <= 'Z' || '0' <= b && b <= '9' || b == '-' || b == '.' || b == ':') {
			return false
		}
	}
	return true
}
