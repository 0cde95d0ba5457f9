// Package transport provides the long-lived HTTP/2 connections that the
// provider clients send over.
//
// Apple and Google both want few, long-lived connections: rapid connect and
// disconnect looks like abuse to Apple, and an idle HTTP/2 connection goes
// stale unless it is pinged. A Pool keeps a fixed number of connections to one
// provider host, health-checks them with PINGs, reconnects after GOAWAY and
// never opens more streams than the server's SETTINGS allow.
package transport

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"net/http"
	"sync/atomic"
	"time"

	"golang.org/x/net/http2"
)

// Options configures a Pool. The zero value of each field selects its default.
type Options struct {
	// Connections is the number of HTTP/2 connections to keep (default 2).
	Connections int
	// RootCAs are the CAs trusted for the provider's certificate; nil means
	// the system pool.
	RootCAs *x509.CertPool
	// ReadIdleTimeout is how long a connection may stay silent before it is
	// PINGed (default 15 s, as sideshow/apns2 uses).
	ReadIdleTimeout time.Duration
	// PingTimeout is how long a PING may go unanswered before the connection
	// is closed and replaced (default 10 s).
	PingTimeout time.Duration
	// DialTimeout bounds the TCP and TLS handshake (default 10 s).
	DialTimeout time.Duration
	// Certificates are client certificates to present (certificate auth).
	Certificates []tls.Certificate
	// NoCoalesce turns off write coalescing (see coalescingConn); for
	// benchmarks that measure what it gains.
	NoCoalesce bool
}

// Pool is an http.RoundTripper that spreads requests over a fixed number of
// HTTP/2 connections to one host. It is safe for concurrent use.
type Pool struct {
	transports []*http2.Transport
	next       atomic.Uint32
}

var _ http.RoundTripper = (*Pool)(nil)

// New returns a Pool. No connection is made until the first request.
func New(opts Options) (*Pool, error) {
	if opts.Connections < 0 {
		return nil, fmt.Errorf("transport: connections must be positive, got %d", opts.Connections)
	}
	if opts.Connections == 0 {
		opts.Connections = 2
	}
	if opts.ReadIdleTimeout == 0 {
		opts.ReadIdleTimeout = 15 * time.Second
	}
	if opts.PingTimeout == 0 {
		opts.PingTimeout = 10 * time.Second
	}
	if opts.DialTimeout == 0 {
		opts.DialTimeout = 10 * time.Second
	}
	p := &Pool{}
	for range opts.Connections {
		p.transports = append(p.transports, &http2.Transport{
			TLSClientConfig: &tls.Config{
				RootCAs:      opts.RootCAs,
				MinVersion:   tls.VersionTLS12,
				Certificates: opts.Certificates,
			},
			// Each Transport holds one connection per host; with strict
			// stream limits it waits for a free stream rather than dialling
			// more connections than configured.
			StrictMaxConcurrentStreams: true,
			ReadIdleTimeout:            opts.ReadIdleTimeout,
			PingTimeout:                opts.PingTimeout,
			DialTLSContext:             dialTLS(opts.DialTimeout, !opts.NoCoalesce),
		})
	}
	return p, nil
}

// RoundTrip sends req on the next connection, round robin.
func (p *Pool) RoundTrip(req *http.Request) (*http.Response, error) {
	i := p.next.Add(1) % uint32(len(p.transports))
	return p.transports[i].RoundTrip(req)
}

// CloseIdleConnections closes connections that carry no request.
func (p *Pool) CloseIdleConnections() {
	for _, t := range p.transports {
		t.CloseIdleConnections()
	}
}
