package transport

// Edge cases of a connection's life (draining, stream ids used up, GOAWAY,
// a stalled peer), of RequestTimeout and of malformed server behaviour.
// Each test pins down a bug found by reading the client, now fixed, or a
// subtle invariant that holds and is worth keeping; a test's comment
// describes the bug as it was.

import (
	"context"
	"crypto/tls"
	"io"
	"net"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"

	"github.com/pushd/pushd/internal/h2fake"
)

// poolConn is the connection in slot i of p (nil if none).
func poolConn(p *Pool, i int) *clientConn { return p.slots[i].cc.Load() }

// connDead reports whether cc has failed (its goroutines are ending).
func connDead(cc *clientConn) bool {
	select {
	case <-cc.closed:
		return true
	default:
		return false
	}
}

// A draining connection (GOAWAY received, or stream ids used up) must be
// closed once its last stream ends, however it ends. finishLocked does so
// for a stream that is answered, but a stream that ends by the server's
// RST_STREAM, the client's cancellation or the request timeout leaves the
// connection open: the pool has already replaced it, so nobody will ever
// close it, and its reader, writer and sweeper (which keeps PINGing)
// live as long as the server keeps the TCP connection.
func TestDrainingConnClosedWhenLastStreamEndsUnanswered(t *testing.T) {
	cases := []struct {
		name    string
		timeout time.Duration                                     // Options.RequestTimeout
		end     func(s *h2fake.Stream, cancel context.CancelFunc) // ends the last stream
	}{
		{"server RST_STREAM", 0, func(s *h2fake.Stream, _ context.CancelFunc) { _ = s.Reset(http2.ErrCodeInternal) }},
		{"context canceled", 0, func(_ *h2fake.Stream, cancel context.CancelFunc) { cancel() }},
		{"request timeout", 300 * time.Millisecond, func(*h2fake.Stream, context.CancelFunc) {}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			fs := h2fake.New(t, h2fake.Options{Handler: func(s *h2fake.Stream) { <-s.Gone() }})
			p := newTestPool(t, fs, Options{Connections: 1, RequestTimeout: tc.timeout})
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			done := make(chan result, 1)
			go func() { done <- roundTrip(ctx, p, "GET", fs.URL("/hang"), nil) }()
			c := fs.WaitConns(t, 1)[0]
			if !h2fake.WaitUntil(5*time.Second, func() bool { return len(c.Streams()) == 1 }) {
				t.Fatal("the request did not arrive")
			}
			s := c.Streams()[0]
			cc := poolConn(p, 0)
			// GOAWAY that keeps the one stream: the connection drains.
			if err := c.GoAway(s.ID, http2.ErrCodeNo, "drain"); err != nil {
				t.Fatal(err)
			}
			if !h2fake.WaitUntil(5*time.Second, c.GoAwayProcessed) {
				t.Fatal("client did not process the GOAWAY")
			}
			tc.end(s, cancel)
			r := <-done
			if r.err == nil {
				t.Fatal("the request succeeded")
			}
			if !h2fake.WaitUntil(2*time.Second, func() bool { return connDead(cc) }) {
				t.Errorf("the draining connection carries no stream but is still open 2s after its last stream ended (%v)", r.err)
			}
		})
	}
}

// The same leak when the connection drains because its stream ids are used
// up: the last stream times out and the connection stays open.
func TestConnOutOfStreamIDsClosedWhenLastStreamTimesOut(t *testing.T) {
	t.Parallel()
	fs := h2fake.New(t, h2fake.Options{Handler: func(s *h2fake.Stream) {
		if s.Path() == "/hang" {
			<-s.Gone()
			return
		}
		h2fake.EchoHandler(s)
	}})
	p := newTestPool(t, fs, Options{Connections: 1, RequestTimeout: 300 * time.Millisecond})
	ctx := ctxT(t, 5*time.Second)
	checkEcho(t, roundTrip(ctx, p, "GET", fs.URL("/a"), nil), "/a", nil)
	cc := poolConn(p, 0)
	cc.mu.Lock()
	cc.nextID = maxStreamID // the last id a client may use
	cc.mu.Unlock()
	r := roundTrip(ctx, p, "GET", fs.URL("/hang"), nil)
	if !isTimeout(r.err) {
		t.Fatalf("got %v, want a timeout", r.err)
	}
	if !cc.unusable.Load() {
		t.Fatal("the connection is still usable after its last stream id")
	}
	if !h2fake.WaitUntil(2*time.Second, func() bool { return connDead(cc) }) {
		t.Errorf("connection out of stream ids carries no stream but is still open")
	}
	// The next request goes out on a new connection.
	checkEcho(t, roundTrip(ctx, p, "GET", fs.URL("/b"), nil), "/b", nil)
}

// Invariant: a connection out of stream ids whose last stream is answered
// is closed, and the last id used is 2^31-1.
func TestConnOutOfStreamIDsClosedWhenLastStreamAnswered(t *testing.T) {
	t.Parallel()
	fs := h2fake.New(t, h2fake.Options{})
	p := newTestPool(t, fs, Options{Connections: 1})
	ctx := ctxT(t, 5*time.Second)
	checkEcho(t, roundTrip(ctx, p, "GET", fs.URL("/a"), nil), "/a", nil)
	cc := poolConn(p, 0)
	cc.mu.Lock()
	cc.nextID = maxStreamID - 2
	cc.mu.Unlock()
	checkEcho(t, roundTrip(ctx, p, "GET", fs.URL("/b"), nil), "/b", nil)
	checkEcho(t, roundTrip(ctx, p, "GET", fs.URL("/c"), nil), "/c", nil)
	if !h2fake.WaitUntil(2*time.Second, func() bool { return connDead(cc) }) {
		t.Errorf("connection out of stream ids still open after its last stream")
	}
	checkEcho(t, roundTrip(ctx, p, "GET", fs.URL("/d"), nil), "/d", nil)
	c0 := fs.Conns()[0]
	ids := c0.StreamIDs()
	if got := ids[len(ids)-1]; got != maxStreamID {
		t.Errorf("last stream id on the first connection %d, want %d", got, uint32(maxStreamID))
	}
	if n := fs.NumConns(); n != 2 {
		t.Errorf("%d connections, want 2", n)
	}
}

// RequestTimeout is computed afresh for every attempt, so a request that is
// refused (REFUSED_STREAM, GOAWAY) just before its timeout is retried with a
// whole new timeout, up to maxAttempts times: RoundTrip can take five times
// RequestTimeout. The timeout should run from RoundTrip's start.
func TestRequestTimeoutSpansRetries(t *testing.T) {
	t.Parallel()
	const timeout = 500 * time.Millisecond
	fs := h2fake.New(t, h2fake.Options{Handler: func(s *h2fake.Stream) {
		select {
		case <-time.After(400 * time.Millisecond):
			_ = s.Reset(http2.ErrCodeRefusedStream)
		case <-s.Gone():
		}
	}})
	p := newTestPool(t, fs, Options{Connections: 1, RequestTimeout: timeout})
	r := roundTrip(context.Background(), p, "GET", fs.URL("/refused"), nil)
	if r.err == nil {
		t.Fatal("a refused request succeeded")
	}
	if r.elapsed > timeout+500*time.Millisecond {
		t.Errorf("RoundTrip took %v with RequestTimeout %v (%d attempts): %v", r.elapsed, timeout, len(fs.StreamsForPath("/refused")), r.err)
	}
}

// RequestTimeout does not bound the wait for a connection: a server that
// completes the TLS handshake but never sends SETTINGS, or a listener that
// never answers the handshake (a blackholed dial), holds every request for
// DialTimeout. The same happens mid-life: once a connection fails, every
// request waits for the redial.
func TestRequestTimeoutCoversDial(t *testing.T) {
	const timeout = 300 * time.Millisecond
	check := func(t *testing.T, p *Pool, url string) {
		r := roundTrip(context.Background(), p, "GET", url, nil)
		if r.err == nil {
			t.Fatal("request succeeded")
		}
		if r.elapsed > timeout+500*time.Millisecond {
			t.Errorf("RoundTrip took %v with RequestTimeout %v: %v", r.elapsed, timeout, r.err)
		}
	}
	t.Run("no SETTINGS", func(t *testing.T) {
		t.Parallel()
		fs := h2fake.New(t, h2fake.Options{NoSettings: true})
		p := newTestPool(t, fs, Options{Connections: 1, RequestTimeout: timeout, DialTimeout: 3 * time.Second})
		check(t, p, fs.URL("/x"))
	})
	t.Run("no TLS handshake", func(t *testing.T) {
		t.Parallel()
		ln, err := net.Listen("tcp", "127.0.0.1:0") // never accepts
		if err != nil {
			t.Fatal(err)
		}
		defer ln.Close()
		_, pool := h2fake.Cert(t)
		p, err := New(Options{Connections: 1, RootCAs: pool, RequestTimeout: timeout, DialTimeout: 3 * time.Second})
		if err != nil {
			t.Fatal(err)
		}
		check(t, p, "https://"+ln.Addr().String()+"/x")
	})
}

// A server that sends GOAWAY right after its SETTINGS on every connection
// (overloaded, or shutting down behind a load balancer) makes Pool.conn dial
// again and again with no pause: the dial succeeded, so no dial error is
// cached, and the new connection is unusable at once. RoundTrip returns only
// when its context ends, after opening connections in a tight loop (which
// Apple treats as abuse).
func TestImmediateGoAwayDoesNotDialInALoop(t *testing.T) {
	t.Parallel()
	fs := h2fake.New(t, h2fake.Options{
		NoSettings: true,
		OnConn: func(c *h2fake.Conn) {
			_ = c.WriteFirstSettings(http2.Setting{ID: http2.SettingMaxConcurrentStreams, Val: 100})
			_ = c.GoAway(0, http2.ErrCodeNo, "go away")
		},
		Handler: func(s *h2fake.Stream) { <-s.Gone() },
	})
	p := newTestPool(t, fs, Options{Connections: 1, RequestTimeout: 500 * time.Millisecond})
	ctx := ctxT(t, 3*time.Second)
	r := roundTrip(ctx, p, "GET", fs.URL("/x"), nil)
	if r.err == nil {
		t.Fatal("request succeeded")
	}
	if n := fs.NumConns(); n > 2*maxAttempts {
		t.Errorf("one request opened %d connections in %v (%v)", n, r.elapsed, r.err)
	}
	if r.elapsed > time.Second {
		t.Errorf("RoundTrip took %v with RequestTimeout 500ms", r.elapsed)
	}
}

// The header-name cache canon is shared by lower (request names, Go
// spelling -> wire spelling) and canonical (response names, wire spelling ->
// Go spelling). A name in both directions with the same spelling collides:
// a request header keyed "x-trace" (set without canonicalising, as
// http.Header allows) makes a later response field x-trace come back
// under "x-trace" so Header.Get("X-Trace") misses it; and a response field
// seen first makes a request header keyed "x-trace" go out as "X-Trace",
// an upper-case field name that makes the request malformed (RFC 9113
// 8.2.1).
func TestHeaderNameCacheKeepsDirectionsApart(t *testing.T) {
	t.Run("request first", func(t *testing.T) {
		t.Parallel()
		fs := h2fake.New(t, h2fake.Options{Handler: func(s *h2fake.Stream) {
			_ = s.Respond(200, nil, "x-trace", "resp")
		}})
		p := newTestPool(t, fs, Options{Connections: 1})
		req, _ := http.NewRequestWithContext(ctxT(t, 5*time.Second), "GET", fs.URL("/a"), nil)
		req.Header["x-trace"] = []string{"req"}
		resp, err := p.RoundTrip(req)
		if err != nil {
			t.Fatal(err)
		}
		if got := resp.Header.Get("X-Trace"); got != "resp" {
			t.Errorf("response Header.Get(\"X-Trace\") = %q, want \"resp\"; header %v", got, resp.Header)
		}
	})
	t.Run("response first", func(t *testing.T) {
		t.Parallel()
		rec := &h2fake.Recorder{TB: t}
		fs := h2fake.New(rec, h2fake.Options{Handler: func(s *h2fake.Stream) {
			_ = s.Respond(200, nil, "x-trace", "resp")
		}})
		p := newTestPool(t, fs, Options{Connections: 1})
		ctx := ctxT(t, 5*time.Second)
		if r := roundTrip(ctx, p, "GET", fs.URL("/a"), nil); r.err != nil {
			t.Fatal(r.err)
		}
		req, _ := http.NewRequestWithContext(ctx, "GET", fs.URL("/b"), nil)
		req.Header["x-trace"] = []string{"req"}
		if _, err := p.RoundTrip(req); err != nil {
			t.Fatal(err)
		}
		ss := fs.StreamsForPath("/b")
		if len(ss) != 1 {
			t.Fatalf("%d streams for /b", len(ss))
		}
		for _, f := range ss[0].Fields {
			if strings.ToLower(f.Name) != f.Name {
				t.Errorf("request field name %q sent with upper case", f.Name)
			}
		}
		if errs := rec.All(); len(errs) > 0 {
			t.Errorf("fake server: %q", errs)
		}
	})
}

// A request body that waits for flow-control window checks its deadline
// only while it stays blocked: a WINDOW_UPDATE that arrives after the
// context's deadline (and before the next 100 ms sweep) wakes it and the
// rest of the body, with END_STREAM, is written after the deadline. The
// server then has a complete request, which it may process, while
// RoundTrip reports the deadline. Each attempt below opens the window
// about 1 ms after the deadline, so the bug shows unless a sweep falls in
// that millisecond.
func TestNoRequestBodyWrittenAfterDeadline(t *testing.T) {
	t.Parallel()
	var deadline atomic.Int64
	fs := h2fake.New(t, h2fake.Options{
		ManualFlow: true,
		Settings:   settings(sMCS, 100, sIWS, 16),
		Handler: func(s *h2fake.Stream) {
			if s.Path() == "/warm" {
				h2fake.EchoHandler(s)
				return
			}
			if !h2fake.WaitUntil(2*time.Second, func() bool { return s.RecvFlow() >= 16 }) {
				return
			}
			time.Sleep(time.Until(time.Unix(0, deadline.Load())) + time.Millisecond)
			_ = s.Conn().WindowUpdate(s.ID, 1000)
			_ = s.Conn().WindowUpdate(0, 1000)
			<-s.Gone()
		},
	})
	p := newTestPool(t, fs, Options{Connections: 1})
	// Connect first, so that the deadline is not spent dialling.
	checkEcho(t, roundTrip(ctxT(t, 5*time.Second), p, "GET", fs.URL("/warm"), nil), "/warm", nil)
	for i := range 3 {
		dl := time.Now().Add(300 * time.Millisecond)
		deadline.Store(dl.UnixNano())
		ctx, cancel := context.WithDeadline(context.Background(), dl)
		path := "/late/" + string(rune('a'+i))
		r := roundTrip(ctx, p, "POST", fs.URL(path), make([]byte, 32))
		cancel()
		if r.err == nil {
			t.Fatalf("%s: succeeded", path)
		}
		ss := fs.StreamsForPath(path)
		if len(ss) != 1 {
			t.Fatalf("%s: %d streams", path, len(ss))
		}
		time.Sleep(50 * time.Millisecond)
		if got := ss[0].RecvFlow(); got > 16 {
			t.Errorf("%s: the server got %d body bytes; only the 16 sent before the deadline may go out (error %v)", path, got, r.err)
		}
	}
}

// Invariant: a server that completes the handshake, sends SETTINGS and then
// neither reads nor writes anything (a blackholed peer, as far as the
// client can tell) cannot hold a RoundTrip past RequestTimeout, though the
// writer is stuck in a socket write and the write queue is full; the PING
// health check then fails the connection, the stuck write is cut by the
// write deadline, and the socket is closed.
func TestStalledServerFailsRequestsAndConnection(t *testing.T) {
	t.Parallel()
	cert, pool := h2fake.Cert(t)
	ln, err := tls.Listen("tcp", "127.0.0.1:0", &tls.Config{Certificates: []tls.Certificate{cert}, NextProtos: []string{"h2"}})
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	accepted := make(chan net.Conn, 1)
	go func() {
		nc, err := ln.Accept()
		if err != nil {
			return
		}
		if err := nc.(*tls.Conn).Handshake(); err != nil {
			nc.Close()
			return
		}
		fr := http2.NewFramer(nc, nil)
		_ = fr.WriteSettings(
			http2.Setting{ID: http2.SettingMaxConcurrentStreams, Val: 1000},
			http2.Setting{ID: http2.SettingInitialWindowSize, Val: maxStreamID},
		)
		_ = fr.WriteWindowUpdate(0, maxStreamID-65535)
		accepted <- nc
	}()
	const timeout = 500 * time.Millisecond
	p, err := New(Options{
		Connections:     1,
		RootCAs:         pool,
		RequestTimeout:  timeout,
		ReadIdleTimeout: 2 * time.Second,
		PingTimeout:     500 * time.Millisecond,
	})
	if err != nil {
		t.Fatal(err)
	}
	url := "https://" + ln.Addr().String() + "/x"
	// Connect first: the dial is not part of RequestTimeout.
	if r := roundTrip(context.Background(), p, "GET", url, nil); !isTimeout(r.err) {
		t.Fatalf("first request: %v, want a timeout", r.err)
	}
	body := make([]byte, maxRequestBody)
	parallel(24, func(i int) {
		// A body the transport takes as is, as the providers' are:
		// reading 24 MiB into memory is not the transport's time.
		req, _ := http.NewRequest("POST", url, nil)
		req.Body = payload(body)
		req.ContentLength = int64(len(body))
		start := time.Now()
		_, err := p.RoundTrip(req)
		elapsed := time.Since(start)
		if err == nil {
			t.Errorf("request %d succeeded", i)
		}
		if elapsed > timeout+time.Second {
			t.Errorf("request %d returned after %v with RequestTimeout %v: %v", i, elapsed, timeout, err)
		}
	})
	var nc net.Conn
	select {
	case nc = <-accepted:
	case <-time.After(5 * time.Second):
		t.Fatal("no connection")
	}
	defer nc.Close()
	cc := poolConn(p, 0)
	if !h2fake.WaitUntil(5*time.Second, func() bool { return connDead(cc) }) {
		t.Fatal("connection to a peer that stopped reading and writing is not failed by the PING check")
	}
	// The client closes the socket: reading what it queued ends in EOF.
	_ = nc.SetReadDeadline(time.Now().Add(8 * time.Second))
	if _, err := io.Copy(io.Discard, nc); err != nil {
		t.Errorf("the client did not close the socket after the connection failed: %v", err)
	}
}

// payload is a request body with a Payload method (see payloader).
type payload []byte

func (b payload) Read([]byte) (int, error) { return 0, io.EOF }
func (b payload) Close() error             { return nil }
func (b payload) Payload() []byte          { return b }

// A WINDOW_UPDATE that takes the connection send window past 2^31-1, and
// a SETTINGS_INITIAL_WINDOW_SIZE change that takes an open stream's window
// past it, are connection errors of type FLOW_CONTROL_ERROR (RFC 9113
// 6.9.1, 6.9.2). handle's errors all become GOAWAY(PROTOCOL_ERROR).
func TestFlowControlViolationSendsFlowControlError(t *testing.T) {
	cases := []struct {
		name string
		send func(c *h2fake.Conn, s *h2fake.Stream) error
	}{
		{"connection window overflow", func(c *h2fake.Conn, _ *h2fake.Stream) error { return c.WindowUpdate(0, maxStreamID) }},
		{"stream window overflow by SETTINGS", func(c *h2fake.Conn, s *h2fake.Stream) error {
			if err := c.WindowUpdate(s.ID, maxStreamID-65535); err != nil {
				return err
			}
			return c.WriteSettings(http2.Setting{ID: http2.SettingInitialWindowSize, Val: 65536})
		}},
		{"INITIAL_WINDOW_SIZE over 2^31-1", func(c *h2fake.Conn, _ *h2fake.Stream) error {
			return c.WriteSettings(http2.Setting{ID: http2.SettingInitialWindowSize, Val: 1 << 31})
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			fs := h2fake.New(t, h2fake.Options{Handler: func(s *h2fake.Stream) { <-s.Gone() }})
			p := newTestPool(t, fs, Options{Connections: 1})
			done := make(chan result, 1)
			go func() { done <- roundTrip(ctxT(t, 5*time.Second), p, "GET", fs.URL("/a"), nil) }()
			c := fs.WaitConns(t, 1)[0]
			if !h2fake.WaitUntil(5*time.Second, func() bool { return len(c.Streams()) == 1 }) {
				t.Fatal("the request did not arrive")
			}
			if err := tc.send(c, c.Streams()[0]); err != nil {
				t.Fatal(err)
			}
			if r := <-done; r.err == nil {
				t.Error("the request succeeded")
			}
			select {
			case <-c.Done():
			case <-time.After(5 * time.Second):
				t.Fatal("the client kept the connection")
			}
			ga := c.ClientGoAways()
			if len(ga) != 1 || ga[0].Code != http2.ErrCodeFlowControl {
				t.Errorf("client sent GOAWAY %+v, want one with FLOW_CONTROL_ERROR", ga)
			}
		})
	}
}

// A HEADERS frame with END_STREAM that carries an informational (1xx)
// status is malformed (RFC 9113 8.1). handle skips every 1xx block before
// looking at END_STREAM, so the stream is never finished: the request hangs
// until its timeout or context ends (forever without either) and keeps its
// stream slot.
func TestInformationalWithEndStreamFailsAtOnce(t *testing.T) {
	t.Parallel()
	fs := h2fake.New(t, h2fake.Options{Handler: func(s *h2fake.Stream) {
		_ = s.WriteHeaders([]hpack.HeaderField{{Name: ":status", Value: "103"}}, true)
	}})
	p := newTestPool(t, fs, Options{Connections: 1})
	r := roundTrip(ctxT(t, 2*time.Second), p, "GET", fs.URL("/a"), nil)
	if r.err == nil {
		t.Fatalf("a 1xx-only answer succeeded with status %d", r.status)
	}
	if r.elapsed > time.Second {
		t.Errorf("request failed only after %v (%v); a malformed answer should fail it at once", r.elapsed, r.err)
	}
}
