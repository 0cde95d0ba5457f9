package h2fake

import (
	"crypto/tls"
	"crypto/x509"
	"net"
	"sync"
	"testing"
	"time"

	"golang.org/x/net/http2"
)

// Options configures a Server. The zero value is a server that announces
// MAX_CONCURRENT_STREAMS=100 and answers every request with EchoHandler.
type Options struct {
	// Settings is the server's first SETTINGS frame. nil means
	// MAX_CONCURRENT_STREAMS=100 only; an empty non-nil slice sends an empty
	// SETTINGS frame (all defaults).
	Settings []http2.Setting
	// Handler is called in its own goroutine for every request stream as
	// soon as its HEADERS have arrived (the body may still be arriving; see
	// Stream.ReadBody). nil means EchoHandler.
	Handler func(s *Stream)
	// OnConn is called for every new connection after the TLS handshake,
	// before the server's SETTINGS are sent and before any frame is read.
	OnConn func(c *Conn)
	// ManualFlow stops the fake from sending WINDOW_UPDATE frames for the
	// request bodies it receives; the test grants window itself with
	// Conn.WindowUpdate.
	ManualFlow bool
	// SettingsDelay delays the server's first SETTINGS frame (0: sent as
	// soon as the TLS handshake is done).
	SettingsDelay time.Duration
	// NoSettings: the server never sends SETTINGS.
	NoSettings bool
}

// Server is a listening fake on 127.0.0.1. Its methods are safe for
// concurrent use. It is closed by the cleanup of the test that made it.
type Server struct {
	t       testing.TB
	opts    Options
	ln      net.Listener
	tlsCfg  *tls.Config
	RootCAs *x509.CertPool // trusts the server's certificate (see Cert)
	Addr    string         // host:port the server listens on

	wg sync.WaitGroup

	mu     sync.Mutex
	conns  []*Conn
	closed bool
}

// New starts a fake server on a free port of 127.0.0.1. It reports the
// client's protocol violations with t.Errorf (from any goroutine) and its
// own set-up failures with t.Fatalf, and closes itself in t.Cleanup.
func New(t testing.TB, opts Options) *Server {
	t.Helper()
	cert, pool := Cert(t)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("listen: %v", err)
	}
	if opts.Settings == nil {
		opts.Settings = []http2.Setting{{ID: http2.SettingMaxConcurrentStreams, Val: 100}}
	}
	if opts.Handler == nil {
		opts.Handler = EchoHandler
	}
	fs := &Server{
		t:       t,
		opts:    opts,
		ln:      ln,
		RootCAs: pool,
		Addr:    ln.Addr().String(),
		tlsCfg: &tls.Config{
			Certificates: []tls.Certificate{cert},
			NextProtos:   []string{"h2"},
			MinVersion:   tls.VersionTLS12,
		},
	}
	fs.wg.Add(1)
	go fs.acceptLoop()
	t.Cleanup(fs.Close)
	return fs
}

// URL returns an https URL for path on the fake.
func (fs *Server) URL(path string) string { return "https://" + fs.Addr + path }

func (fs *Server) acceptLoop() {
	defer fs.wg.Done()
	for {
		nc, err := fs.ln.Accept()
		if err != nil {
			return
		}
		fs.wg.Add(1)
		go fs.serve(nc)
	}
}

func (fs *Server) serve(nc net.Conn) {
	defer fs.wg.Done()
	tc := tls.Server(nc, fs.tlsCfg)
	_ = tc.SetDeadline(time.Now().Add(5 * time.Second))
	if err := tc.Handshake(); err != nil {
		// The client may give up on a dial (e.g. its dial timeout); that is
		// not a protocol violation.
		tc.Close()
		return
	}
	_ = tc.SetDeadline(time.Time{})
	c := newConn(fs, tc)
	if p := tc.ConnectionState().NegotiatedProtocol; p != "h2" {
		c.fail("TLS negotiated ALPN %q, want h2", p)
		tc.Close()
		return
	}
	fs.mu.Lock()
	if fs.closed {
		fs.mu.Unlock()
		tc.Close()
		return
	}
	c.Index = len(fs.conns)
	fs.conns = append(fs.conns, c)
	fs.mu.Unlock()

	if fs.opts.OnConn != nil {
		fs.opts.OnConn(c)
	}
	switch {
	case fs.opts.NoSettings:
	case fs.opts.SettingsDelay > 0:
		fs.wg.Add(1)
		go func() {
			defer fs.wg.Done()
			select {
			case <-time.After(fs.opts.SettingsDelay):
				_ = c.WriteFirstSettings(fs.opts.Settings...)
			case <-c.deadCh:
			}
		}()
	default:
		_ = c.WriteFirstSettings(fs.opts.Settings...)
	}
	c.readLoop()
}

// Close shuts the listener and every connection and waits for the fake's
// goroutines (connection loops and handlers) to finish, for at most 10s
// (then it reports a stuck handler with t.Errorf). It may be called more
// than once.
func (fs *Server) Close() {
	fs.mu.Lock()
	if fs.closed {
		fs.mu.Unlock()
		return
	}
	fs.closed = true
	conns := append([]*Conn(nil), fs.conns...)
	fs.mu.Unlock()
	fs.ln.Close()
	for _, c := range conns {
		c.Close()
	}
	done := make(chan struct{})
	go func() { fs.wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		fs.t.Errorf("fake server: handlers still running 10s after Close (a test handler is stuck)")
	}
}

// Conns returns the connections accepted so far, in accept order.
func (fs *Server) Conns() []*Conn {
	fs.mu.Lock()
	defer fs.mu.Unlock()
	return append([]*Conn(nil), fs.conns...)
}

// NumConns is the number of HTTP/2 connections accepted so far.
func (fs *Server) NumConns() int { return len(fs.Conns()) }

// WaitConns waits up to 5s until at least n connections were accepted,
// fails t if they were not, and returns the connections.
func (fs *Server) WaitConns(t testing.TB, n int) []*Conn {
	t.Helper()
	if !WaitUntil(5*time.Second, func() bool { return fs.NumConns() >= n }) {
		t.Fatalf("fake server: %d connection(s) after 5s, want %d", fs.NumConns(), n)
	}
	return fs.Conns()
}

// Streams returns every request stream seen on every connection.
func (fs *Server) Streams() []*Stream {
	var all []*Stream
	for _, c := range fs.Conns() {
		all = append(all, c.Streams()...)
	}
	return all
}

// StreamsForPath returns the streams, on any connection, whose :path is path.
func (fs *Server) StreamsForPath(path string) []*Stream {
	var out []*Stream
	for _, s := range fs.Streams() {
		if s.Path() == path {
			out = append(out, s)
		}
	}
	return out
}

// Violations is the number of protocol violations reported so far.
func (fs *Server) Violations() int {
	n := 0
	for _, c := range fs.Conns() {
		c.mu.Lock()
		n += len(c.violations)
		c.mu.Unlock()
	}
	return n
}

// WaitUntil polls cond every 2ms until it is true or timeout passes, and
// reports whether it became true. It is for waiting on the fake's (or the
// client's) state, which has no event to wait on.
func WaitUntil(timeout time.Duration, cond func() bool) bool {
	deadline := time.Now().Add(timeout)
	for {
		if cond() {
			return true
		}
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(2 * time.Millisecond)
	}
}
