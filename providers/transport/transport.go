// Package transport provides the long-lived HTTP/2 connections that the
// provider clients send over.
//
// Apple and Google both want few, long-lived connections: rapid connect and
// disconnect looks like abuse to Apple, and an idle HTTP/2 connection goes
// stale unless it is pinged. A Pool keeps a fixed number of connections to one
// provider host, health-checks them with PINGs, reconnects after GOAWAY and
// never opens more streams than the server's SETTINGS allow.
//
// The HTTP/2 client is purpose-built rather than golang.org/x/net/http2's
// Transport, whose per-request goroutine, timer and header processing cost
// more CPU than everything else pushd does per push (docs/performance.md).
// It does only what a push provider needs: POSTs with small bodies, whole
// answers of at most 64 KiB, and no server push. golang.org/x/net/http2
// still frames and HPACK-codes every byte.
package transport

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"time"
)

// EventKind names what happened to a connection.
type EventKind string

// The connection events a Pool reports.
const (
	// Connected: a dial succeeded.
	Connected EventKind = "connected"
	// DialFailed: a dial failed; requests wait for the next one.
	DialFailed EventKind = "dial_failed"
	// GoAway: the server is closing the connection (GOAWAY); new requests
	// go to another connection.
	GoAway EventKind = "goaway"
	// Lost: the connection failed or closed with requests possibly in
	// flight (a PING unanswered, a read or write error).
	Lost EventKind = "lost"
)

// Event is something that happened to one of a Pool's connections.
type Event struct {
	Kind EventKind
	Addr string // host:port
	Err  error  // why, for all but Connected
}

// Options configures a Pool. The zero value of each field selects its default.
type Options struct {
	// OnEvent, when set, is told of dials, GOAWAYs and lost connections,
	// for logs and metrics. It may run under a connection's lock, so it
	// must be quick and must not call the Pool.
	OnEvent func(Event)
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
	// DialTimeout bounds the TCP and TLS handshake and the wait for the
	// server's SETTINGS (default 10 s).
	DialTimeout time.Duration
	// Certificates are client certificates to present (certificate auth).
	Certificates []tls.Certificate
	// RequestTimeout bounds one request from its first frame to the end of
	// the answer, to within 100 ms; 0 leaves only the request's context. The
	// error is a net.Error whose Timeout is true and which matches
	// context.DeadlineExceeded. Enforcing it here costs no timer per request.
	RequestTimeout time.Duration
	// UniquePaths says that every request has its own :path (APNs puts the
	// device token there). The path is then sent as an HPACK literal that is
	// never indexed, sparing both ends a table insert and eviction per
	// request.
	UniquePaths bool
	// UniqueAnswers says that the answers' headers are unique per answer
	// (APNs's apns-id). The client then advertises SETTINGS_HEADER_TABLE_SIZE
	// 0, so that the server sends them as literals instead of indexing each
	// one, sparing both ends a table insert and eviction per answer.
	UniqueAnswers bool
}

// Pool is an http.RoundTripper that spreads requests over a fixed number of
// HTTP/2 connections to one host. It is safe for concurrent use.
//
// A request is retried on another connection only when the server
// certainly did not process it: refused with REFUSED_STREAM, above a
// GOAWAY's last stream id, or never written. Anything else that cuts a
// request off is an error, since the push may have gone out.
type Pool struct {
	opts    Options
	tlsConf *tls.Config
	slots   []slot
	next    atomic.Uint32

	addrOnce sync.Once
	addr     string // host:port, fixed by the first request
	host     string
}

type slot struct {
	cc      atomic.Pointer[clientConn]
	mu      sync.Mutex
	dialing chan struct{} // closed when the dial in progress ends; nil if none
	failed  time.Time     // last failed dial
	failErr error
}

// redialAfter is how long after a failed dial the next one starts, so a
// thousand waiting requests do not dial one after another. Requests wait
// for it rather than fail with the stale error.
const redialAfter = time.Second

// ErrNotSent is matched by a request's error when the request certainly
// never reached the server: no connection could be made before its
// deadline, or every connection refused it unprocessed. Such a request may
// be sent again without risk of a duplicate, and it says nothing about the
// request itself.
var ErrNotSent = errors.New("request not sent")

// notSent marks err as ErrNotSent.
type notSent struct{ err error }

func (e notSent) Error() string   { return e.err.Error() }
func (e notSent) Unwrap() []error { return []error{e.err, ErrNotSent} }

// maxRequestBody bounds a request body; push payloads are at most a few KiB.
const maxRequestBody = 1 << 20

// maxAttempts bounds the transparent retries of unprocessed requests.
const maxAttempts = 5

var _ http.RoundTripper = (*Pool)(nil)

// New returns a Pool. No connection is made until the first request.
func New(opts Options) (*Pool, error) {
	if opts.Connections < 0 {
		return nil, fmt.Errorf("transport: connections must be positive, got %d", opts.Connections)
	}
	if opts.RequestTimeout < 0 {
		return nil, fmt.Errorf("transport: request timeout must not be negative, got %s", opts.RequestTimeout)
	}
	if opts.Connections == 0 {
		opts.Connections = 2
	}
	if opts.ReadIdleTimeout <= 0 {
		opts.ReadIdleTimeout = 15 * time.Second
	}
	if opts.PingTimeout <= 0 {
		opts.PingTimeout = 10 * time.Second
	}
	if opts.DialTimeout <= 0 {
		opts.DialTimeout = 10 * time.Second
	}
	return &Pool{
		opts: opts,
		tlsConf: &tls.Config{
			RootCAs:      opts.RootCAs,
			MinVersion:   tls.VersionTLS12,
			Certificates: opts.Certificates,
			NextProtos:   []string{"h2"},
		},
		slots: make([]slot, opts.Connections),
	}, nil
}

// payloader is a request body whose bytes can be sent without a copy; the
// provider clients' bodies are.
type payloader interface{ Payload() []byte }

// RoundTrip sends req on the next connection, round robin, and returns
// once the whole answer has arrived. A request whose context ends while it
// waits for its answer is reset within 100 ms, at the connection's next
// sweep; nothing is written for it after its context has ended.
func (p *Pool) RoundTrip(req *http.Request) (*http.Response, error) {
	var (
		resp *http.Response
		err  error
	)
	answered := make(chan struct{})
	p.Go(req, func(r *http.Response, e error) {
		resp, err = r, e
		close(answered)
	})
	<-answered
	return resp, err
}

// Go sends req as RoundTrip does, but returns once the request is written,
// or queued to be. done receives what RoundTrip would return, exactly once:
// on the calling goroutine if the request fails before it is sent, else
// usually on the connection's frame reader, which reads no further answer
// until done returns. So done must be quick and must not wait for
// anything, least of all for another request's answer.
//
// Go blocks while the connection is being dialled or has no free stream.
// It lets a caller keep a thousand requests in flight without a goroutine
// waiting for each (docs/design.md, "Sending").
func (p *Pool) Go(req *http.Request, done func(*http.Response, error)) {
	body, err := requestBody(req)
	if err != nil {
		done(nil, err)
		return
	}
	if req.URL == nil || req.URL.Scheme != "https" || req.URL.Host == "" {
		done(nil, fmt.Errorf("transport: %v is not an https URL", req.URL))
		return
	}
	p.addrOnce.Do(func() {
		p.host = req.URL.Host
		p.addr = req.URL.Host
		if req.URL.Port() == "" {
			p.addr = net.JoinHostPort(req.URL.Hostname(), "443")
		}
	})
	if req.URL.Host != p.host {
		done(nil, fmt.Errorf("transport: the pool for %s got a request for %s", p.host, req.URL.Host))
		return
	}
	// One deadline for the dial, the retries and the answer.
	var deadline time.Time
	if p.opts.RequestTimeout > 0 {
		deadline = time.Now().Add(p.opts.RequestTimeout)
	}
	p.send(req, body, deadline, 1, done)
}

// send starts the request on a connection, trying others while the
// request certainly did not go out. Retries of requests the server refused
// after they went out are started by exchange.complete.
func (p *Pool) send(req *http.Request, body []byte, deadline time.Time, attempt int, done func(*http.Response, error)) {
	for ; ; attempt++ {
		cc, err := p.conn(req.Context(), deadline)
		if err != nil {
			done(nil, notSent{err})
			return
		}
		x := &exchange{pool: p, req: req, reqBody: body, attempt: attempt, done: done}
		x.deadline = deadline
		err = cc.start(x)
		if err == nil {
			return
		}
		ue, ok := err.(unprocessedError)
		if !ok {
			done(nil, err)
			return
		}
		if attempt == maxAttempts || req.Context().Err() != nil {
			done(nil, notSent{ue.err})
			return
		}
	}
}

// requestBody returns the bytes of req's body and closes it, as a
// RoundTripper must.
func requestBody(req *http.Request) ([]byte, error) {
	if req.Body == nil || req.Body == http.NoBody {
		return nil, nil
	}
	defer req.Body.Close()
	if pl, ok := req.Body.(payloader); ok {
		return pl.Payload(), nil
	}
	b, err := io.ReadAll(io.LimitReader(req.Body, maxRequestBody+1))
	if err != nil {
		return nil, fmt.Errorf("transport: read request body: %w", err)
	}
	if len(b) > maxRequestBody {
		return nil, fmt.Errorf("transport: request body over %d bytes", maxRequestBody)
	}
	return b, nil
}

// conn returns the next slot's connection, dialling it if it is missing,
// dead or draining. One dial per slot runs at a time, for all the requests
// that wait for it; each stops waiting when its own context ends or its
// deadline (zero: none) passes, and the dial does not depend on any one
// request's context.
//
// While the slot's connection is being made, another slot's working
// connection is returned instead, if there is one.
//
// A connection that the server closed or GOAWAYed before it carried a
// single request counts as a failed dial, so that a server refusing every
// new connection is not redialled in a tight loop. After a failed dial the
// request waits for the next one, redialAfter later, until its context or
// deadline ends: a provider away for a minute delays it, rather than fail
// it with the stale error (the caller sees ErrNotSent at its deadline).
func (p *Pool) conn(ctx context.Context, deadline time.Time) (*clientConn, error) {
	n := uint32(len(p.slots))
	i := p.next.Add(1)
	s := &p.slots[i%n]
	if cc := s.usable(); cc != nil {
		return cc, nil
	}
	// This slot's connection is missing, dead or draining. Have it made,
	// but use another slot's working connection meanwhile: Go's caller may
	// be sending a whole batch, which should not wait for one dial.
	for j := uint32(1); j < n; j++ {
		if cc := p.slots[(i+j)%n].usable(); cc != nil {
			p.prepare(s)
			return cc, nil
		}
	}
	var (
		timeout <-chan time.Time
		lastErr error
	)
	for {
		cc, done, err := p.prepare(s)
		if cc != nil {
			return cc, nil
		}
		var redial *time.Timer
		if err != nil {
			if permanent(err) {
				return nil, err // waiting would not cure it
			}
			// The last dial failed moments ago: wait for the next.
			lastErr = err
			redial = time.NewTimer(redialAfter - time.Since(s.failedAt()))
			done = nil
		}
		if timeout == nil && !deadline.IsZero() {
			t := time.NewTimer(time.Until(deadline))
			defer t.Stop()
			timeout = t.C
		}
		var redialed <-chan time.Time
		if redial != nil {
			redialed = redial.C
		}
		select {
		case <-done:
		case <-redialed:
		case <-ctx.Done():
			stop(redial)
			return nil, ctx.Err()
		case <-timeout:
			stop(redial)
			if lastErr != nil {
				return nil, fmt.Errorf("transport: waiting for a connection to %s: %w (the last dial: %w)", p.addr,
					timeoutError{p.opts.RequestTimeout}, lastErr)
			}
			return nil, fmt.Errorf("transport: waiting for a connection to %s: %w", p.addr, timeoutError{p.opts.RequestTimeout})
		}
	}
}

// permanent reports whether a dial failed for a reason that redialling
// does not cure: the provider's certificate is not trusted, or the server
// does not speak HTTP/2. Those fail the request at once; an unreachable,
// refusing or silent server is waited for.
func permanent(err error) bool {
	var (
		verify  *tls.CertificateVerificationError
		unknown x509.UnknownAuthorityError
		host    x509.HostnameError
		invalid x509.CertificateInvalidError
		record  tls.RecordHeaderError // not TLS at all
		op      *net.OpError
	)
	// crypto/tls reports an alert from the server (a refused protocol
	// version, ALPN or certificate) as a net.OpError of Op "remote error".
	remoteAlert := errors.As(err, &op) && op.Op == "remote error"
	return errors.Is(err, errNoH2) || errors.As(err, &verify) || errors.As(err, &unknown) ||
		errors.As(err, &host) || errors.As(err, &invalid) || errors.As(err, &record) || remoteAlert
}

func stop(t *time.Timer) {
	if t != nil {
		t.Stop()
	}
}

// failedAt is when the slot's last dial failed.
func (s *slot) failedAt() time.Time {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.failed
}

// usable returns the slot's connection if it takes new streams.
func (s *slot) usable() *clientConn {
	if cc := s.cc.Load(); cc != nil && !cc.unusable.Load() {
		return cc
	}
	return nil
}

// prepare returns the slot's usable connection, or the error of a dial
// that failed within redialAfter, or else a channel closed when the dial
// it starts (or that is under way) ends.
func (p *Pool) prepare(s *slot) (*clientConn, chan struct{}, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	cc := s.cc.Load()
	if cc != nil && !cc.unusable.Load() {
		return cc, nil, nil
	}
	if cc != nil && !cc.used.Load() {
		s.failed, s.failErr = time.Now(), fmt.Errorf("transport: %s ended a new connection before any request: %w", p.addr, cc.why())
		s.cc.Store(nil)
	}
	if time.Since(s.failed) < redialAfter {
		return nil, nil, s.failErr
	}
	if s.dialing == nil {
		done := make(chan struct{})
		s.dialing = done
		go func() {
			cc, err := p.dial(context.Background())
			// Reported before the connection is handed out, so that its
			// GOAWAY or loss can never be reported before it.
			if err != nil {
				p.event(DialFailed, err)
			} else {
				p.event(Connected, nil)
			}
			s.mu.Lock()
			if err != nil {
				s.failed, s.failErr = time.Now(), fmt.Errorf("transport: %w", err)
			} else {
				s.cc.Store(cc)
			}
			s.dialing = nil
			s.mu.Unlock()
			close(done)
		}()
	}
	return nil, s.dialing, nil
}

// event reports an event to Options.OnEvent.
func (p *Pool) event(kind EventKind, err error) {
	if p.opts.OnEvent != nil {
		p.opts.OnEvent(Event{Kind: kind, Addr: p.addr, Err: err})
	}
}

// CloseIdleConnections closes connections that carry no request.
func (p *Pool) CloseIdleConnections() {
	for i := range p.slots {
		if cc := p.slots[i].cc.Load(); cc != nil {
			cc.closeIfIdle()
		}
	}
}

// Goer is a transport that can send without waiting for the answer, as
// Pool does with Go.
type Goer interface {
	Go(req *http.Request, done func(*http.Response, error))
}

// AsGoer returns rt if it is a Goer. Otherwise it returns an adapter that
// runs each request on a goroutine of its own, bounded by timeout as a
// Pool's RequestTimeout would bound it; tests substitute such transports.
func AsGoer(rt http.RoundTripper, timeout time.Duration) Goer {
	if g, ok := rt.(Goer); ok {
		return g
	}
	return goroutineGoer{rt, timeout}
}

type goroutineGoer struct {
	rt      http.RoundTripper
	timeout time.Duration
}

func (g goroutineGoer) Go(req *http.Request, done func(*http.Response, error)) {
	ctx, cancel := context.WithTimeout(req.Context(), g.timeout)
	req = req.WithContext(ctx)
	go func() {
		defer cancel()
		done(g.rt.RoundTrip(req))
	}()
}
