package transport

// Tests of the HTTP/2 client against the strict fake server in
// internal/h2fake (which fails a test on any protocol violation it sees) and
// against golang.org/x/net/http2's server.

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	mrand "math/rand/v2"
	"net"
	"net/http"
	"net/http/httptest"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"

	"github.com/pushd/pushd/internal/h2fake"
)

// ---------------------------------------------------------------------------
// Helpers

func newTestPool(t *testing.T, fs *h2fake.Server, o Options) *Pool {
	t.Helper()
	if o.RootCAs == nil {
		o.RootCAs = fs.RootCAs
	}
	p, err := New(o)
	if err != nil {
		t.Fatalf("New(%+v): %v", o, err)
	}
	t.Cleanup(p.CloseIdleConnections)
	return p
}

type result struct {
	status  int
	header  http.Header
	body    []byte
	rtErr   error // from RoundTrip
	err     error // RoundTrip's error or, after it, the body's
	elapsed time.Duration
}

// roundTrip sends one request (hdr: name, value pairs) and reads the whole
// answer.
func roundTrip(ctx context.Context, p *Pool, method, url string, body []byte, hdr ...string) result {
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, url, rd)
	if err != nil {
		return result{rtErr: err, err: err}
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Add(hdr[i], hdr[i+1])
	}
	start := time.Now()
	resp, err := p.RoundTrip(req)
	if err != nil {
		return result{rtErr: err, err: err, elapsed: time.Since(start)}
	}
	if resp == nil {
		err := errors.New("RoundTrip returned a nil response and a nil error")
		return result{rtErr: err, err: err, elapsed: time.Since(start)}
	}
	r := result{status: resp.StatusCode, header: resp.Header}
	if resp.Body == nil {
		r.err = errors.New("response has a nil Body")
	} else {
		r.body, r.err = io.ReadAll(resp.Body)
		if cerr := resp.Body.Close(); cerr != nil && r.err == nil {
			r.err = fmt.Errorf("Body.Close: %w", cerr)
		}
	}
	r.elapsed = time.Since(start)
	return r
}

func bg() context.Context { return context.Background() }

// ctxT returns a context that ends after d (a safety net, so a hung client
// fails the test instead of hanging it).
func ctxT(t *testing.T, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

// checkEcho checks an answer from h2fake.EchoHandler.
func checkEcho(t *testing.T, r result, path string, body []byte) {
	t.Helper()
	if r.err != nil {
		t.Errorf("%s: %v", path, r.err)
		return
	}
	if r.status != 200 {
		t.Errorf("%s: status %d, want 200", path, r.status)
	}
	if got := r.header.Get("X-Echo-Path"); got != path {
		t.Errorf("%s: answer carries X-Echo-Path %q: answers mixed up between streams", path, got)
	}
	want := h2fake.EchoBody(path, body)
	if !bytes.Equal(r.body, want) {
		t.Errorf("%s: answer body %.60q (%d bytes) differs from the expected %.60q (%d bytes)", path, r.body, len(r.body), want, len(want))
	}
}

// parallel runs f(0..n-1) concurrently and waits.
func parallel(n int, f func(i int)) {
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			f(i)
		}()
	}
	wg.Wait()
}

func randBytes(n int) []byte {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return b
}

func randToken(n int) string {
	const letters = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
	b := make([]byte, n)
	for i := range b {
		b[i] = letters[mrand.IntN(len(letters))]
	}
	return string(b)
}

// isTimeout reports whether err says a deadline passed.
func isTimeout(err error) bool {
	if errors.Is(err, context.DeadlineExceeded) {
		return true
	}
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// holdThenEcho answers with h2fake.EchoHandler once n streams are open on the
// connection (or after max), so that tests see how many streams the client
// opens at once.
func holdThenEcho(n func() int, max time.Duration) func(s *h2fake.Stream) {
	return func(s *h2fake.Stream) {
		h2fake.WaitUntil(max, func() bool { return s.Conn().Open() >= n() })
		h2fake.EchoHandler(s)
	}
}

// sortedIDs returns ids sorted ascending.
func sortedIDs(ids []uint32) []uint32 {
	out := append([]uint32(nil), ids...)
	sort.Slice(out, func(i, j int) bool { return out[i] < out[j] })
	return out
}

func settings(kv ...uint32) []http2.Setting {
	var out []http2.Setting
	for i := 0; i+1 < len(kv); i += 2 {
		out = append(out, http2.Setting{ID: http2.SettingID(kv[i]), Val: kv[i+1]})
	}
	return out
}

const (
	sMCS   = uint32(http2.SettingMaxConcurrentStreams)
	sIWS   = uint32(http2.SettingInitialWindowSize)
	sMFS   = uint32(http2.SettingMaxFrameSize)
	sTable = uint32(http2.SettingHeaderTableSize)
)

// ---------------------------------------------------------------------------
// Connection set-up

// The client negotiates h2 over TLS, sends the preface and SETTINGS with
// ENABLE_PUSH=0, ACKs the server's SETTINGS, and sends a well-formed GET:
// pseudo-headers, lower-case fields, END_STREAM on HEADERS, no DATA. The
// answer's status, canonical header keys and body come back.
func TestH2HandshakeAndSimpleGet(t *testing.T) {
	t.Parallel()
	fs := h2fake.New(t, h2fake.Options{Handler: func(s *h2fake.Stream) {
		if _, err := s.ReadBody(); err != nil {
			return
		}
		_ = s.Respond(200, []byte("hello"), "apns-id", "abc-123", "x-multi", "a", "x-multi", "b", "content-type", "text/plain")
	}})
	p := newTestPool(t, fs, Options{Connections: 1})
	r := roundTrip(ctxT(t, 10*time.Second), p, "GET", fs.URL("/3/device/abc?x=1"), nil,
		"Authorization", "bearer tok", "X-Custom-Thing", "Val")
	if r.err != nil {
		t.Fatalf("GET: %v", r.err)
	}
	if r.status != 200 || string(r.body) != "hello" {
		t.Errorf("got %d %q, want 200 \"hello\"", r.status, r.body)
	}
	if got := r.header.Get("Apns-Id"); got != "abc-123" {
		t.Errorf(`resp.Header.Get("Apns-Id") = %q, want "abc-123" (keys must be canonical); header %v`, got, r.header)
	}
	if got := r.header.Values("X-Multi"); len(got) != 2 || got[0] != "a" || got[1] != "b" {
		t.Errorf(`resp.Header.Values("X-Multi") = %q, want [a b]`, got)
	}
	for k := range r.header {
		if strings.HasPrefix(k, ":") {
			t.Errorf("pseudo-header %q leaked into resp.Header", k)
		}
	}

	c := fs.WaitConns(t, 1)[0]
	cs := c.ClientSettings()
	if len(cs) == 0 {
		t.Fatal("client sent no SETTINGS")
	}
	push, found := uint32(1), false
	for _, s := range cs[0] {
		if s.ID == http2.SettingEnablePush {
			push, found = s.Val, true
		}
	}
	if !found || push != 0 {
		t.Errorf("client's first SETTINGS %v: want SETTINGS_ENABLE_PUSH=0", cs[0])
	}
	if !h2fake.WaitUntil(5*time.Second, func() bool { return c.SettingsAcks() >= 1 }) {
		t.Errorf("client never ACKed the server's SETTINGS")
	}

	streams := c.Streams()
	if len(streams) != 1 {
		t.Fatalf("server saw %d streams, want 1", len(streams))
	}
	s := streams[0]
	if s.ID%2 != 1 {
		t.Errorf("stream id %d is not odd", s.ID)
	}
	for name, want := range map[string]string{":method": "GET", ":scheme": "https", ":authority": fs.Addr, ":path": "/3/device/abc?x=1"} {
		if f, ok := s.Field(name); !ok || f.Value != want {
			t.Errorf("%s = %q (present %v), want %q", name, f.Value, ok, want)
		}
	}
	if s.Header("authorization") != "bearer tok" || s.Header("x-custom-thing") != "Val" {
		t.Errorf("regular headers not sent as lower-case fields with their values: %v", s.Fields)
	}
	if !s.HeadersEnd {
		t.Errorf("GET without a body: END_STREAM should be on HEADERS")
	}
	if n := len(s.DataFrames()); n != 0 {
		t.Errorf("GET without a body sent %d DATA frames", n)
	}
	if cl := s.Header("content-length"); cl != "" && cl != "0" {
		t.Errorf("GET without a body has content-length %q", cl)
	}
}

// A server that does not negotiate h2 is refused with an error.
func TestH2RefusesServerWithoutH2(t *testing.T) {
	t.Parallel()
	for name, protos := range map[string][]string{"http/1.1 only": {"http/1.1"}, "no ALPN": nil} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			cert, pool := h2fake.Cert(t)
			ln, err := tls.Listen("tcp", "127.0.0.1:0", &tls.Config{Certificates: []tls.Certificate{cert}, NextProtos: protos})
			if err != nil {
				t.Fatal(err)
			}
			var wg sync.WaitGroup
			var sawPreface atomic.Bool
			var mu sync.Mutex
			var conns []net.Conn
			wg.Add(1)
			go func() {
				defer wg.Done()
				for {
					nc, err := ln.Accept()
					if err != nil {
						return
					}
					mu.Lock()
					conns = append(conns, nc)
					mu.Unlock()
					wg.Add(1)
					go func() {
						defer wg.Done()
						b, _ := io.ReadAll(io.LimitReader(nc, 1<<16))
						if bytes.Contains(b, []byte("PRI * HTTP/2.0")) {
							sawPreface.Store(true)
						}
					}()
				}
			}()
			t.Cleanup(func() {
				ln.Close()
				mu.Lock()
				for _, c := range conns {
					c.Close()
				}
				mu.Unlock()
				wg.Wait()
			})
			p, err := New(Options{Connections: 1, RootCAs: pool, DialTimeout: 3 * time.Second})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(p.CloseIdleConnections)
			r := roundTrip(ctxT(t, 8*time.Second), p, "GET", "https://"+ln.Addr().String()+"/", nil)
			if r.err == nil {
				t.Fatalf("request to a server without h2 succeeded with status %d", r.status)
			}
			if r.elapsed > 5*time.Second {
				t.Errorf("refusing took %v; want an error from the dial, not a timeout", r.elapsed)
			}
			if sawPreface.Load() {
				t.Errorf("client sent the HTTP/2 preface to a server that did not negotiate h2")
			}
		})
	}
}

// A server that completes TLS but never sends SETTINGS fails each dial
// within DialTimeout; the request is redialled until its own timeout and
// then fails as not sent, naming the last dial's error, and the client
// opens no stream on it.
func TestH2DialTimeoutWithoutServerSettings(t *testing.T) {
	t.Parallel()
	fs := h2fake.New(t, h2fake.Options{NoSettings: true})
	p := newTestPool(t, fs, Options{Connections: 1, DialTimeout: 300 * time.Millisecond, RequestTimeout: 2 * time.Second})
	r := roundTrip(ctxT(t, 10*time.Second), p, "GET", fs.URL("/x"), nil)
	if r.err == nil {
		t.Fatalf("request succeeded on a server that never sent SETTINGS")
	}
	if !errors.Is(r.err, ErrNotSent) || !strings.Contains(r.err.Error(), "no SETTINGS") {
		t.Errorf("error %v, want ErrNotSent naming the missing SETTINGS", r.err)
	}
	if r.elapsed < 1500*time.Millisecond || r.elapsed > 5*time.Second {
		t.Errorf("failed after %v; want at the request timeout of 2 s", r.elapsed)
	}
	if n := len(fs.Conns()); n < 2 {
		t.Errorf("%d connection(s): want a redial after the first dial failed", n)
	}
	if n := len(fs.Streams()); n != 0 {
		t.Errorf("client opened %d stream(s) before the server's first SETTINGS", n)
	}
}

// The client opens no stream before the server's first SETTINGS arrives.
func TestH2WaitsForServerSettings(t *testing.T) {
	t.Parallel()
	fs := h2fake.New(t, h2fake.Options{SettingsDelay: 300 * time.Millisecond, Settings: settings(sMCS, 2)})
	p := newTestPool(t, fs, Options{Connections: 1})
	ctx := ctxT(t, 10*time.Second)
	parallel(6, func(i int) {
		path := fmt.Sprintf("/w/%d", i)
		checkEcho(t, roundTrip(ctx, p, "GET", fs.URL(path), nil), path, nil)
	})
	for _, c := range fs.Conns() {
		if n := c.EarlyHeaders(); n != 0 {
			t.Errorf("conn %d: client opened %d stream(s) before the server's first SETTINGS was sent", c.Index, n)
		}
		if pk := c.Peak(); pk > 2 {
			t.Errorf("conn %d: %d streams open at once, SETTINGS_MAX_CONCURRENT_STREAMS=2", c.Index, pk)
		}
	}
}

// ---------------------------------------------------------------------------
// Streams

// Never more open streams than MAX_CONCURRENT_STREAMS; the rest wait, and
// the client does use the streams it is allowed.
func TestH2MaxConcurrentStreams(t *testing.T) {
	t.Parallel()
	fs := h2fake.New(t, h2fake.Options{
		Settings: settings(sMCS, 3),
		Handler:  holdThenEcho(func() int { return 3 }, 300*time.Millisecond),
	})
	p := newTestPool(t, fs, Options{Connections: 1})
	ctx := ctxT(t, 15*time.Second)
	parallel(30, func(i int) {
		path := fmt.Sprintf("/mcs/%d", i)
		checkEcho(t, roundTrip(ctx, p, "GET", fs.URL(path), nil), path, nil)
	})
	if n := fs.NumConns(); n != 1 {
		t.Errorf("Connections: 1 but %d connections were dialled", n)
	}
	c := fs.Conns()[0]
	if pk := c.Peak(); pk != 3 {
		t.Errorf("peak of %d concurrent streams with 30 requests waiting, want exactly SETTINGS_MAX_CONCURRENT_STREAMS=3", pk)
	}
}

// A SETTINGS that lowers MAX_CONCURRENT_STREAMS below the number of open
// streams, and one that raises it, are both honoured mid-connection.
func TestH2MaxConcurrentStreamsChangesMidConnection(t *testing.T) {
	t.Parallel()
	var target atomic.Int32
	target.Store(5)
	gate := make(chan struct{})
	fs := h2fake.New(t, h2fake.Options{
		Settings: settings(sMCS, 5),
		Handler: func(s *h2fake.Stream) {
			if strings.HasPrefix(s.Path(), "/hold/") {
				select {
				case <-gate:
				case <-s.Gone():
					return
				}
				h2fake.EchoHandler(s)
				return
			}
			holdThenEcho(func() int { return int(target.Load()) }, 300*time.Millisecond)(s)
		},
	})
	p := newTestPool(t, fs, Options{Connections: 1})
	ctx := ctxT(t, 20*time.Second)

	// Phase 1: limit 5.
	parallel(20, func(i int) {
		path := fmt.Sprintf("/p1/%d", i)
		checkEcho(t, roundTrip(ctx, p, "GET", fs.URL(path), nil), path, nil)
	})
	c := fs.Conns()[0]
	if pk := c.Peak(); pk != 5 {
		t.Errorf("phase 1: peak %d concurrent streams, want 5", pk)
	}

	// Phase 2: 5 streams held open, limit lowered to 1: no new stream until
	// all held ones are done.
	var wg sync.WaitGroup
	for i := range 5 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			path := fmt.Sprintf("/hold/%d", i)
			checkEcho(t, roundTrip(ctx, p, "GET", fs.URL(path), nil), path, nil)
		}()
	}
	if !h2fake.WaitUntil(5*time.Second, func() bool { return c.Open() == 5 }) {
		t.Fatalf("the 5 held requests did not all open streams (open: %d)", c.Open())
	}
	if err := c.WriteSettings(settings(sMCS, 1)...); err != nil {
		t.Fatal(err)
	}
	c.WaitSettingsAcked(t)
	target.Store(1)
	for i := range 5 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			path := fmt.Sprintf("/p2/%d", i)
			checkEcho(t, roundTrip(ctx, p, "GET", fs.URL(path), nil), path, nil)
		}()
	}
	time.Sleep(150 * time.Millisecond) // give a wrong client time to open streams
	for _, s := range c.Streams() {
		if strings.HasPrefix(s.Path(), "/p2/") {
			t.Errorf("stream %d (%s) opened while 5 streams were open and MAX_CONCURRENT_STREAMS had been lowered to 1", s.ID, s.Path())
		}
	}
	close(gate)
	wg.Wait()

	// Phase 3: raised to 4.
	if err := c.WriteSettings(settings(sMCS, 4)...); err != nil {
		t.Fatal(err)
	}
	c.WaitSettingsAcked(t)
	target.Store(4)
	c.ResetPeak()
	parallel(20, func(i int) {
		path := fmt.Sprintf("/p3/%d", i)
		checkEcho(t, roundTrip(ctx, p, "GET", fs.URL(path), nil), path, nil)
	})
	if pk := c.Peak(); pk != 4 {
		t.Errorf("phase 3: peak %d concurrent streams after MAX_CONCURRENT_STREAMS was raised to 4, want 4", pk)
	}
	if n := fs.NumConns(); n != 1 {
		t.Errorf("%d connections, want 1", n)
	}
}

// Stream ids are odd and strictly increasing, sequentially and under
// concurrency.
func TestH2StreamIDsOddAndIncreasing(t *testing.T) {
	t.Parallel()
	fs := h2fake.New(t, h2fake.Options{})
	p := newTestPool(t, fs, Options{Connections: 1})
	ctx := ctxT(t, 10*time.Second)
	for i := range 10 {
		path := fmt.Sprintf("/seq/%d", i)
		checkEcho(t, roundTrip(ctx, p, "GET", fs.URL(path), nil), path, nil)
	}
	parallel(60, func(i int) {
		path := fmt.Sprintf("/par/%d", i)
		body := []byte(strings.Repeat("x", i*100))
		checkEcho(t, roundTrip(ctx, p, "POST", fs.URL(path), body), path, body)
	})
	ids := fs.Conns()[0].StreamIDs()
	if len(ids) != 70 {
		t.Errorf("%d streams, want 70", len(ids))
	}
	for i, id := range ids {
		if id%2 != 1 {
			t.Errorf("stream id %d is even", id)
		}
		if i > 0 && id <= ids[i-1] {
			t.Errorf("stream id %d after %d: not strictly increasing", id, ids[i-1])
		}
	}
}

// ---------------------------------------------------------------------------
// Request encoding

// A POST: pseudo-headers, lower-case names, content-length, the body in
// DATA frames with END_STREAM on the last; an empty-body POST ends on
// HEADERS.
func TestH2RequestEncoding(t *testing.T) {
	t.Parallel()
	fs := h2fake.New(t, h2fake.Options{})
	p := newTestPool(t, fs, Options{Connections: 1})
	ctx := ctxT(t, 10*time.Second)

	body := []byte(`{"aps":{"alert":"hi"}}`)
	r := roundTrip(ctx, p, "POST", fs.URL("/3/device/tok"), body,
		"Content-Type", "application/json", "Apns-Topic", "com.example.app", "Apns-Push-Type", "alert")
	checkEcho(t, r, "/3/device/tok", body)
	ss := fs.StreamsForPath("/3/device/tok")
	if len(ss) != 1 {
		t.Fatalf("%d streams for the POST, want 1", len(ss))
	}
	s := ss[0]
	if s.Method() != "POST" {
		t.Errorf(":method %q", s.Method())
	}
	if got := s.Header("content-length"); got != strconv.Itoa(len(body)) {
		t.Errorf("content-length %q, want %d", got, len(body))
	}
	for name, want := range map[string]string{"content-type": "application/json", "apns-topic": "com.example.app", "apns-push-type": "alert"} {
		if got := s.Header(name); got != want {
			t.Errorf("%s = %q, want %q", name, got, want)
		}
	}
	if s.HeadersEnd {
		t.Errorf("END_STREAM on HEADERS of a request with a body")
	}
	total := 0
	for _, n := range s.DataFrames() {
		total += n
	}
	if total != len(body) {
		t.Errorf("DATA frames %v carry %d bytes, want %d", s.DataFrames(), total, len(body))
	}

	// An empty body: END_STREAM on HEADERS, no DATA.
	req, _ := http.NewRequestWithContext(ctx, "POST", fs.URL("/empty"), http.NoBody)
	resp, err := p.RoundTrip(req)
	if err != nil {
		t.Fatalf("POST with http.NoBody: %v", err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if ss := fs.StreamsForPath("/empty"); len(ss) != 1 {
		t.Errorf("%d streams for /empty", len(ss))
	} else {
		if !ss[0].HeadersEnd {
			t.Errorf("request without a body: END_STREAM not on HEADERS")
		}
		if n := len(ss[0].DataFrames()); n != 0 {
			t.Errorf("request without a body sent %d DATA frames", n)
		}
	}
}

// Connection-specific header fields a caller sets are not sent (RFC 9113
// §8.2.2); the fake fails the test if they are. Failing the request is also
// allowed.
func TestH2ConnectionSpecificHeadersNotSent(t *testing.T) {
	t.Parallel()
	fs := h2fake.New(t, h2fake.Options{})
	p := newTestPool(t, fs, Options{Connections: 1})
	r := roundTrip(ctxT(t, 10*time.Second), p, "POST", fs.URL("/conn-hdrs"), []byte("x"),
		"Connection", "keep-alive", "Keep-Alive", "timeout=5", "Proxy-Connection", "keep-alive", "Upgrade", "websocket")
	if r.err == nil {
		checkEcho(t, r, "/conn-hdrs", []byte("x"))
	}
	// Afterwards the connection still works.
	checkEcho(t, roundTrip(ctxT(t, 10*time.Second), p, "GET", fs.URL("/after"), nil), "/after", nil)
}

// DATA frames never exceed the server's SETTINGS_MAX_FRAME_SIZE.
func TestH2DataFramesRespectMaxFrameSize(t *testing.T) {
	t.Parallel()
	for _, mfs := range []uint32{16384, 20000} {
		t.Run(fmt.Sprint(mfs), func(t *testing.T) {
			t.Parallel()
			fs := h2fake.New(t, h2fake.Options{Settings: settings(sMCS, 100, sMFS, mfs, sIWS, 1<<20)})
			p := newTestPool(t, fs, Options{Connections: 1})
			body := randBytes(150000)
			checkEcho(t, roundTrip(ctxT(t, 10*time.Second), p, "POST", fs.URL("/big"), body), "/big", body)
			ss := fs.StreamsForPath("/big")
			if len(ss) != 1 {
				t.Fatalf("%d streams", len(ss))
			}
			frames := ss[0].DataFrames()
			total := 0
			for _, n := range frames {
				total += n
				if n > int(mfs) {
					t.Errorf("DATA frame of %d bytes, MAX_FRAME_SIZE %d", n, mfs)
				}
			}
			if total != len(body) || len(frames) < (len(body)+int(mfs)-1)/int(mfs) {
				t.Errorf("%d DATA frames with %d bytes for a %d-byte body", len(frames), total, len(body))
			}
			if got := ss[0].Header("content-length"); got != strconv.Itoa(len(body)) {
				t.Errorf("content-length %q, want %d", got, len(body))
			}
		})
	}
}

// A header block larger than MAX_FRAME_SIZE is sent as HEADERS followed
// directly by CONTINUATION frames, even with many concurrent streams whose
// frames could interleave.
func TestH2RequestHeadersUseContinuation(t *testing.T) {
	t.Parallel()
	fs := h2fake.New(t, h2fake.Options{})
	p := newTestPool(t, fs, Options{Connections: 1})
	ctx := ctxT(t, 15*time.Second)
	parallel(20, func(i int) {
		path := fmt.Sprintf("/cont/%d", i)
		big := randToken(50000)
		body := randBytes(20000)
		r := roundTrip(ctx, p, "POST", fs.URL(path), body, "X-Big", big)
		checkEcho(t, r, path, body)
		ss := fs.StreamsForPath(path)
		if len(ss) != 1 {
			t.Errorf("%s: %d streams", path, len(ss))
			return
		}
		s := ss[0]
		if s.Header("x-big") != big {
			t.Errorf("%s: x-big arrived with %d bytes, want %d", path, len(s.Header("x-big")), len(big))
		}
		if s.BlockSize > 16384 && s.Continuations < (s.BlockSize-1)/16384 {
			t.Errorf("%s: %d-byte header block in %d CONTINUATION frames", path, s.BlockSize, s.Continuations)
		}
		if s.BlockSize <= 16384 {
			t.Errorf("%s: header block of only %d bytes; the test wants one above MAX_FRAME_SIZE", path, s.BlockSize)
		}
	})
}

// With UniquePaths, :path is a never-indexed literal, while a repeated
// authorization header is still indexed, so the second request's header
// block is much smaller.
func TestH2UniquePathsNeverIndexed(t *testing.T) {
	t.Parallel()
	fs := h2fake.New(t, h2fake.Options{})
	p := newTestPool(t, fs, Options{Connections: 1, UniquePaths: true})
	ctx := ctxT(t, 10*time.Second)
	auth := "bearer " + randToken(400)
	var paths []string
	for range 3 {
		path := "/3/device/" + randToken(64)
		paths = append(paths, path)
		checkEcho(t, roundTrip(ctx, p, "POST", fs.URL(path), []byte("{}"), "Authorization", auth, "Apns-Topic", "com.example"), path, []byte("{}"))
	}
	var sizes []int
	for _, path := range paths {
		ss := fs.StreamsForPath(path)
		if len(ss) != 1 {
			t.Fatalf("%s: %d streams", path, len(ss))
		}
		f, ok := ss[0].Field(":path")
		if !ok || !f.Sensitive {
			t.Errorf("%s: :path not sent as a never-indexed literal (Sensitive=%v)", path, f.Sensitive)
		}
		if ss[0].Header("authorization") != auth {
			t.Errorf("%s: authorization did not arrive intact", path)
		}
		sizes = append(sizes, ss[0].BlockSize)
	}
	if sizes[1] > sizes[0]-300 || sizes[2] > sizes[0]-300 {
		t.Errorf("header block sizes %v: the 400-byte authorization should be indexed after the first request", sizes)
	}
}

// The client's HPACK encoder honours the server's SETTINGS_HEADER_TABLE_SIZE,
// from the first SETTINGS and when it is lowered mid-connection.
func TestH2HeaderTableSize(t *testing.T) {
	t.Parallel()
	run := func(t *testing.T, fs *h2fake.Server, p *Pool, prefix string) {
		ctx := ctxT(t, 10*time.Second)
		auth := "bearer " + randToken(200)
		for i := range 5 {
			path := fmt.Sprintf("%s/seq/%d", prefix, i)
			checkEcho(t, roundTrip(ctx, p, "POST", fs.URL(path), []byte("b"), "Authorization", auth, "X-Same", "same-value"), path, []byte("b"))
		}
		parallel(20, func(i int) {
			path := fmt.Sprintf("%s/par/%d", prefix, i)
			checkEcho(t, roundTrip(ctx, p, "POST", fs.URL(path), []byte("b"), "Authorization", auth, "X-Same", "same-value"), path, []byte("b"))
		})
	}
	for _, size := range []uint32{0, 100} {
		t.Run(fmt.Sprintf("first SETTINGS %d", size), func(t *testing.T) {
			t.Parallel()
			fs := h2fake.New(t, h2fake.Options{Settings: settings(sMCS, 100, sTable, size)})
			p := newTestPool(t, fs, Options{Connections: 1})
			run(t, fs, p, "/a")
			if v := fs.Violations(); v != 0 {
				t.Errorf("%d violations", v)
			}
		})
	}
	t.Run("lowered to 0 mid-connection", func(t *testing.T) {
		t.Parallel()
		fs := h2fake.New(t, h2fake.Options{})
		p := newTestPool(t, fs, Options{Connections: 1})
		run(t, fs, p, "/before")
		c := fs.Conns()[0]
		if err := c.WriteSettings(settings(sTable, 0)...); err != nil {
			t.Fatal(err)
		}
		c.WaitSettingsAcked(t)
		run(t, fs, p, "/after")
		if v := fs.Violations(); v != 0 {
			t.Errorf("%d violations", v)
		}
	})
}

// ---------------------------------------------------------------------------
// Flow control of request bodies

// The client sends no more than the stream window (INITIAL_WINDOW_SIZE),
// then waits for WINDOW_UPDATE.
func TestH2RequestBodyStreamWindow(t *testing.T) {
	t.Parallel()
	fs := h2fake.New(t, h2fake.Options{ManualFlow: true, Settings: settings(sMCS, 100, sIWS, 1000)})
	p := newTestPool(t, fs, Options{Connections: 1})
	body := randBytes(5000)
	done := make(chan result, 1)
	go func() { done <- roundTrip(ctxT(t, 15*time.Second), p, "POST", fs.URL("/up"), body) }()

	var s *h2fake.Stream
	if !h2fake.WaitUntil(5*time.Second, func() bool {
		ss := fs.StreamsForPath("/up")
		if len(ss) == 1 {
			s = ss[0]
			return s.RecvFlow() >= 1000
		}
		return false
	}) {
		t.Fatalf("client did not send the 1000 bytes the stream window allows")
	}
	time.Sleep(100 * time.Millisecond)
	if got := s.RecvFlow(); got != 1000 {
		t.Errorf("client sent %d bytes with a stream window of 1000", got)
	}
	select {
	case r := <-done:
		t.Fatalf("request finished before the window was opened: %v", r.err)
	default:
	}
	if err := s.Conn().WindowUpdate(s.ID, 4000); err != nil {
		t.Fatal(err)
	}
	checkEcho(t, <-done, "/up", body)
}

// The connection window (65535, not changed by SETTINGS) is shared by the
// streams and bounds the total the client sends until a WINDOW_UPDATE on
// stream 0.
func TestH2RequestBodyConnectionWindow(t *testing.T) {
	t.Parallel()
	fs := h2fake.New(t, h2fake.Options{ManualFlow: true, Settings: settings(sMCS, 100, sIWS, 1<<20)})
	p := newTestPool(t, fs, Options{Connections: 1})
	ctx := ctxT(t, 15*time.Second)
	bodies := [][]byte{randBytes(50000), randBytes(50000)}
	results := make(chan struct {
		i int
		r result
	}, 2)
	for i := range bodies {
		go func() {
			r := roundTrip(ctx, p, "POST", fs.URL(fmt.Sprintf("/c/%d", i)), bodies[i])
			results <- struct {
				i int
				r result
			}{i, r}
		}()
	}
	c := fs.WaitConns(t, 1)[0]
	if !h2fake.WaitUntil(5*time.Second, func() bool { return c.ConnRecv() >= 65535 }) {
		t.Fatalf("client sent %d bytes; the connection window allows 65535", c.ConnRecv())
	}
	time.Sleep(100 * time.Millisecond)
	if got := c.ConnRecv(); got != 65535 {
		t.Errorf("client sent %d bytes with a connection window of 65535", got)
	}
	if err := c.WindowUpdate(0, 100000-65535); err != nil {
		t.Fatal(err)
	}
	for range 2 {
		x := <-results
		checkEcho(t, x.r, fmt.Sprintf("/c/%d", x.i), bodies[x.i])
	}
}

// Changes of SETTINGS_INITIAL_WINDOW_SIZE adjust the window of open streams
// by the difference, also below zero (RFC 9113 §6.9.2).
func TestH2InitialWindowSizeChangeAdjustsOpenStreams(t *testing.T) {
	t.Parallel()
	fs := h2fake.New(t, h2fake.Options{ManualFlow: true, Settings: settings(sMCS, 100, sIWS, 1000)})
	p := newTestPool(t, fs, Options{Connections: 1})
	body := randBytes(10000)
	done := make(chan result, 1)
	go func() { done <- roundTrip(ctxT(t, 15*time.Second), p, "POST", fs.URL("/iws"), body) }()

	var s *h2fake.Stream
	waitRecv := func(n int64, why string) {
		t.Helper()
		if !h2fake.WaitUntil(5*time.Second, func() bool {
			if s == nil {
				if ss := fs.StreamsForPath("/iws"); len(ss) == 1 {
					s = ss[0]
				} else {
					return false
				}
			}
			return s.RecvFlow() >= n
		}) {
			got := int64(0)
			if s != nil {
				got = s.RecvFlow()
			}
			t.Fatalf("%s: client sent %d bytes, want %d", why, got, n)
		}
		time.Sleep(50 * time.Millisecond)
		if got := s.RecvFlow(); got != n {
			t.Errorf("%s: client sent %d bytes, want exactly %d", why, got, n)
		}
	}
	waitRecv(1000, "initial window 1000")
	c := s.Conn()

	if err := c.WriteSettings(settings(sIWS, 3000)...); err != nil {
		t.Fatal(err)
	}
	c.WaitSettingsAcked(t)
	waitRecv(3000, "INITIAL_WINDOW_SIZE raised to 3000 (window +2000)")

	if err := c.WriteSettings(settings(sIWS, 500)...); err != nil {
		t.Fatal(err)
	}
	c.WaitSettingsAcked(t)
	// Window now 500-3000 = -2500; +2600 makes it 100.
	if err := c.WindowUpdate(s.ID, 2600); err != nil {
		t.Fatal(err)
	}
	waitRecv(3100, "INITIAL_WINDOW_SIZE lowered to 500 (window -2500), then WINDOW_UPDATE 2600")

	if err := c.WriteSettings(settings(sIWS, 20000)...); err != nil {
		t.Fatal(err)
	}
	checkEcho(t, <-done, "/iws", body)
}

// ---------------------------------------------------------------------------
// Responses

func TestH2ResponseShapes(t *testing.T) {
	t.Parallel()
	long := randToken(3000)
	fs := h2fake.New(t, h2fake.Options{Handler: func(s *h2fake.Stream) {
		if _, err := s.ReadBody(); err != nil {
			return
		}
		h := func(kv ...string) []hpack.HeaderField {
			var out []hpack.HeaderField
			for i := 0; i+1 < len(kv); i += 2 {
				out = append(out, hpack.HeaderField{Name: kv[i], Value: kv[i+1]})
			}
			return out
		}
		switch s.Path() {
		case "/end-on-headers":
			_ = s.WriteHeaders(h(":status", "204", "apns-id", "x1"), true)
		case "/end-on-empty-data":
			_ = s.WriteHeaders(h(":status", "200"), false)
			_ = s.WriteData([]byte("abc"), false)
			_ = s.WriteData([]byte("def"), false)
			_ = s.WriteData(nil, true)
		case "/informational":
			_ = s.WriteHeaders(h(":status", "100"), false)
			_ = s.WriteHeaders(h(":status", "103", "link", "</style.css>; rel=preload"), false)
			_ = s.WriteHeaders(h(":status", "200", "apns-id", "final"), false)
			_ = s.WriteData([]byte("final body"), true)
		case "/trailers":
			_ = s.WriteHeaders(h(":status", "200"), false)
			_ = s.WriteData([]byte("with trailers"), false)
			_ = s.WriteHeaders(h("x-trailer", "t"), true)
		case "/continuation":
			_ = s.WriteHeadersSplit(h(":status", "200", "x-long", long, "apns-id", "cont"), false, 100)
			_ = s.WriteData([]byte("after continuation"), true)
		case "/padded":
			_ = s.WriteHeaders(h(":status", "200"), false)
			_ = s.WriteDataPadded(bytes.Repeat([]byte("p"), 40000), true, 200)
		case "/status":
			_ = s.Respond(410, []byte(`{"reason":"Unregistered","timestamp":1}`), "apns-id", "gone", "content-type", "application/json")
		}
	}})
	p := newTestPool(t, fs, Options{Connections: 1})
	ctx := ctxT(t, 10*time.Second)
	cases := []struct {
		path, body string
		status     int
		hdr, val   string
	}{
		{"/end-on-headers", "", 204, "Apns-Id", "x1"},
		{"/end-on-empty-data", "abcdef", 200, "", ""},
		{"/informational", "final body", 200, "Apns-Id", "final"},
		{"/trailers", "with trailers", 200, "", ""},
		{"/continuation", "after continuation", 200, "X-Long", long},
		{"/padded", strings.Repeat("p", 40000), 200, "", ""},
		{"/status", `{"reason":"Unregistered","timestamp":1}`, 410, "Apns-Id", "gone"},
	}
	for _, tc := range cases {
		r := roundTrip(ctx, p, "GET", fs.URL(tc.path), nil)
		if r.err != nil {
			t.Errorf("%s: %v", tc.path, r.err)
			continue
		}
		if r.status != tc.status || string(r.body) != tc.body {
			t.Errorf("%s: got %d %.60q, want %d %.60q", tc.path, r.status, r.body, tc.status, tc.body)
		}
		if tc.hdr != "" && r.header.Get(tc.hdr) != tc.val {
			t.Errorf("%s: header %s = %.60q, want %.60q", tc.path, tc.hdr, r.header.Get(tc.hdr), tc.val)
		}
	}
	if n := fs.NumConns(); n != 1 {
		t.Errorf("%d connections: one of the responses broke the connection", n)
	}
}

// Unknown frame types, unknown SETTINGS and PRIORITY frames from the server
// are ignored (RFC 9113 §4.1, §5.5, §6.5.2).
func TestH2IgnoresUnknownFramesAndSettings(t *testing.T) {
	t.Parallel()
	fs := h2fake.New(t, h2fake.Options{
		Settings: settings(sMCS, 100, 0x4a4a, 7),
		Handler: func(s *h2fake.Stream) {
			c := s.Conn()
			_ = c.WriteRaw(0xfa, 0xff, 0, []byte("unknown frame on stream 0"))
			_ = c.WriteRaw(0xfb, 0, s.ID, []byte("unknown frame on the stream"))
			_ = c.WriteRaw(http2.FramePriority, 0, s.ID, []byte{0, 0, 0, 0, 15})
			h2fake.EchoHandler(s)
		},
	})
	p := newTestPool(t, fs, Options{Connections: 1})
	ctx := ctxT(t, 10*time.Second)
	for i := range 3 {
		path := fmt.Sprintf("/unk/%d", i)
		checkEcho(t, roundTrip(ctx, p, "GET", fs.URL(path), nil), path, nil)
	}
	if n := fs.NumConns(); n != 1 {
		t.Errorf("%d connections: an unknown frame broke the connection", n)
	}
	for _, g := range fs.Conns()[0].ClientGoAways() {
		t.Errorf("client sent GOAWAY(%v, %q)", g.Code, g.Debug)
	}
}

// A malformed response (upper-case field name, missing :status, a
// pseudo-header after a regular field) is a stream error of type
// PROTOCOL_ERROR (RFC 9113 §8.1.1): the request fails, the client resets the
// stream, and the connection stays usable.
func TestH2MalformedResponseIsStreamError(t *testing.T) {
	t.Parallel()
	blocks := map[string][]hpack.HeaderField{
		"/upper":          {{Name: ":status", Value: "200"}, {Name: "X-Upper", Value: "v"}},
		"/no-status":      {{Name: "content-type", Value: "text/plain"}},
		"/pseudo-late":    {{Name: "content-type", Value: "text/plain"}, {Name: ":status", Value: "200"}},
		"/request-pseudo": {{Name: ":status", Value: "200"}, {Name: ":path", Value: "/"}},
	}
	fs := h2fake.New(t, h2fake.Options{Handler: func(s *h2fake.Stream) {
		fields, ok := blocks[s.Path()]
		if !ok {
			h2fake.EchoHandler(s)
			return
		}
		if _, err := s.ReadBody(); err != nil {
			return
		}
		_ = s.WriteHeaders(fields, false)
		select {
		case <-s.Gone():
		case <-time.After(5 * time.Second):
			_ = s.WriteData([]byte("too late"), true)
		}
	}})
	p := newTestPool(t, fs, Options{Connections: 1})
	for path := range blocks {
		r := roundTrip(ctxT(t, 10*time.Second), p, "GET", fs.URL(path), nil)
		if r.err == nil {
			t.Errorf("%s: malformed response accepted: %d %q", path, r.status, r.body)
		}
		ss := fs.StreamsForPath(path)
		if len(ss) != 1 {
			t.Errorf("%s: %d streams", path, len(ss))
			continue
		}
		if code, ok := ss[0].WaitClientReset(5 * time.Second); !ok || code != http2.ErrCodeProtocol {
			t.Errorf("%s: client's RST_STREAM: %v (sent %v), want PROTOCOL_ERROR", path, code, ok)
		}
	}
	checkEcho(t, roundTrip(ctxT(t, 10*time.Second), p, "GET", fs.URL("/ok"), nil), "/ok", nil)
	if n := fs.NumConns(); n != 1 {
		t.Errorf("%d connections: a stream error took the connection down", n)
	}
}

// The client sends connection WINDOW_UPDATEs as it receives DATA, so many
// response bodies totalling several MiB (padded: padding counts against the
// window too) never stall one connection.
func TestH2ManyResponseBytesOnOneConnection(t *testing.T) {
	t.Parallel()
	const n, size = 100, 60000
	bodyFor := func(path string) []byte {
		return bytes.Repeat([]byte(path+";"), size/(len(path)+1)+1)[:size]
	}
	fs := h2fake.New(t, h2fake.Options{Handler: func(s *h2fake.Stream) {
		if _, err := s.ReadBody(); err != nil {
			return
		}
		if err := s.WriteHeaders([]hpack.HeaderField{{Name: ":status", Value: "200"}}, false); err != nil {
			return
		}
		_ = s.WriteDataPadded(bodyFor(s.Path()), true, 37)
	}})
	p := newTestPool(t, fs, Options{Connections: 1})
	ctx := ctxT(t, 20*time.Second)
	var next atomic.Int32
	parallel(8, func(int) {
		for {
			i := int(next.Add(1)) - 1
			if i >= n {
				return
			}
			path := fmt.Sprintf("/bytes/%d", i)
			r := roundTrip(ctx, p, "GET", fs.URL(path), nil)
			if r.err != nil {
				t.Errorf("%s: %v (after %d MB the connection window may not be replenished)", path, r.err, int(next.Load())*size>>20)
				return
			}
			if !bytes.Equal(r.body, bodyFor(path)) {
				t.Errorf("%s: wrong body (%d bytes)", path, len(r.body))
			}
		}
	})
	if c := fs.NumConns(); c != 1 {
		t.Errorf("%d connections, want 1", c)
	}
}

// Response bodies up to 64 KiB are fine (this needs a stream WINDOW_UPDATE
// or a larger window than 65535); a larger one fails that request only.
func TestH2ResponseBodyLimit(t *testing.T) {
	t.Parallel()
	fs := h2fake.New(t, h2fake.Options{Handler: func(s *h2fake.Stream) {
		if _, err := s.ReadBody(); err != nil {
			return
		}
		size := 100
		switch s.Path() {
		case "/64k":
			size = 64 << 10
		case "/200k":
			size = 200 << 10
		}
		_ = s.Respond(200, bytes.Repeat([]byte("z"), size), "x-echo-path", s.Path())
	}})
	p := newTestPool(t, fs, Options{Connections: 1})
	ctx := ctxT(t, 15*time.Second)

	r := roundTrip(ctx, p, "GET", fs.URL("/64k"), nil)
	if r.err != nil || len(r.body) != 64<<10 {
		t.Errorf("64 KiB body: %d bytes, %v; want all of it", len(r.body), r.err)
	}

	var big result
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		big = roundTrip(ctx, p, "GET", fs.URL("/200k"), nil)
	}()
	parallel(5, func(i int) {
		path := fmt.Sprintf("/small/%d", i)
		r := roundTrip(ctx, p, "GET", fs.URL(path), nil)
		if r.err != nil || len(r.body) != 100 {
			t.Errorf("%s beside an oversized body: %d bytes, %v", path, len(r.body), r.err)
		}
	})
	wg.Wait()
	if big.err == nil {
		t.Errorf("200 KiB response body accepted (%d bytes); want an error above 64 KiB", len(big.body))
	} else if errors.Is(big.err, context.DeadlineExceeded) {
		t.Errorf("200 KiB response body: the request hung until the test's deadline instead of failing: %v", big.err)
	}
	r = roundTrip(ctx, p, "GET", fs.URL("/after"), nil)
	if r.err != nil || len(r.body) != 100 {
		t.Errorf("request after the oversized body: %d bytes, %v", len(r.body), r.err)
	}
	if n := fs.NumConns(); n != 1 {
		t.Errorf("%d connections: the oversized body took the connection down", n)
	}
}

// ---------------------------------------------------------------------------
// Liveness: PING

// The client answers the server's PINGs with an ACK carrying the same data.
func TestH2AnswersPing(t *testing.T) {
	t.Parallel()
	fs := h2fake.New(t, h2fake.Options{})
	p := newTestPool(t, fs, Options{Connections: 1})
	checkEcho(t, roundTrip(ctxT(t, 10*time.Second), p, "GET", fs.URL("/p"), nil), "/p", nil)
	c := fs.Conns()[0]
	for i := range 3 {
		if err := c.Ping(5 * time.Second); err != nil {
			t.Errorf("PING %d: %v", i, err)
		}
	}
}

// After ReadIdleTimeout of silence the client PINGs; answered PINGs keep the
// connection.
func TestH2ReadIdlePingKeepsConnection(t *testing.T) {
	t.Parallel()
	fs := h2fake.New(t, h2fake.Options{})
	p := newTestPool(t, fs, Options{Connections: 1, ReadIdleTimeout: 100 * time.Millisecond, PingTimeout: 2 * time.Second})
	ctx := ctxT(t, 10*time.Second)
	checkEcho(t, roundTrip(ctx, p, "GET", fs.URL("/a"), nil), "/a", nil)
	c := fs.Conns()[0]
	if !h2fake.WaitUntil(5*time.Second, func() bool { return c.ClientPings() >= 2 }) {
		t.Fatalf("client sent %d PINGs in 5s with ReadIdleTimeout 100ms", c.ClientPings())
	}
	select {
	case <-c.Done():
		t.Fatalf("connection closed although every PING was answered")
	default:
	}
	checkEcho(t, roundTrip(ctx, p, "GET", fs.URL("/b"), nil), "/b", nil)
	if n := fs.NumConns(); n != 1 {
		t.Errorf("%d connections, want 1", n)
	}
}

// An unanswered PING closes the connection after PingTimeout: the in-flight
// request fails and the next one dials a new connection.
func TestH2PingTimeoutClosesConnection(t *testing.T) {
	t.Parallel()
	fs := h2fake.New(t, h2fake.Options{
		OnConn: func(c *h2fake.Conn) {
			if c.Index == 0 {
				c.SetIgnorePings(true)
			}
		},
		Handler: func(s *h2fake.Stream) {
			if s.Path() == "/hang" {
				<-s.Gone()
				return
			}
			h2fake.EchoHandler(s)
		},
	})
	p := newTestPool(t, fs, Options{Connections: 1, ReadIdleTimeout: 200 * time.Millisecond, PingTimeout: 300 * time.Millisecond})
	r := roundTrip(ctxT(t, 15*time.Second), p, "GET", fs.URL("/hang"), nil)
	if r.err == nil {
		t.Fatalf("request on a dead connection succeeded")
	}
	if r.elapsed > 5*time.Second {
		t.Errorf("in-flight request failed after %v; ReadIdleTimeout+PingTimeout is 500ms", r.elapsed)
	}
	c := fs.Conns()[0]
	if c.ClientPings() == 0 {
		t.Errorf("client sent no PING before giving up on the connection")
	}
	select {
	case <-c.Done():
	case <-time.After(5 * time.Second):
		t.Errorf("client did not close the connection whose PING went unanswered")
	}
	checkEcho(t, roundTrip(ctxT(t, 10*time.Second), p, "GET", fs.URL("/next"), nil), "/next", nil)
	if n := fs.NumConns(); n != 2 {
		t.Errorf("%d connections, want 2 (a fresh one after the dead one)", n)
	}
	if ss := fs.StreamsForPath("/next"); len(ss) != 1 || ss[0].Conn().Index == 0 {
		t.Errorf("the next request was not sent on a new connection")
	}
}

// ---------------------------------------------------------------------------
// GOAWAY, RST_STREAM, dropped connections

// After GOAWAY(last), streams <= last complete on the old connection;
// streams above it are retried on a new connection and succeed; no new
// stream is opened on the old connection.
func TestH2GoAwayRetriesUnprocessedStreams(t *testing.T) {
	t.Parallel()
	release := make(chan struct{})
	fs := h2fake.New(t, h2fake.Options{Handler: func(s *h2fake.Stream) {
		if strings.HasPrefix(s.Path(), "/g/") && s.Conn().Index == 0 {
			select {
			case <-release:
			case <-s.Gone():
				return
			}
		}
		h2fake.EchoHandler(s)
	}})
	p := newTestPool(t, fs, Options{Connections: 1})
	ctx := ctxT(t, 15*time.Second)
	bodyFor := func(i int) []byte { return []byte(fmt.Sprintf("body-%d-%s", i, strings.Repeat("x", i*1000))) }
	results := make([]result, 6)
	var wg sync.WaitGroup
	for i := range 6 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			results[i] = roundTrip(ctx, p, "POST", fs.URL(fmt.Sprintf("/g/%d", i)), bodyFor(i))
		}()
	}
	c0 := fs.WaitConns(t, 1)[0]
	if !h2fake.WaitUntil(5*time.Second, func() bool {
		n := 0
		for _, s := range c0.Streams() {
			select {
			case <-s.Ended():
				n++
			default:
			}
		}
		return n == 6
	}) {
		t.Fatalf("the 6 requests did not all arrive: %d streams", len(c0.Streams()))
	}
	ids := sortedIDs(c0.StreamIDs())
	last := ids[2]
	byID := map[uint32]string{}
	for _, s := range c0.Streams() {
		byID[s.ID] = s.Path()
	}
	if err := c0.GoAway(last, http2.ErrCodeNo, ""); err != nil {
		t.Fatal(err)
	}
	close(release)
	wg.Wait()
	for i, r := range results {
		checkEcho(t, r, fmt.Sprintf("/g/%d", i), bodyFor(i))
	}
	for _, id := range ids {
		path := byID[id]
		ss := fs.StreamsForPath(path)
		if id <= last {
			if len(ss) != 1 {
				t.Errorf("%s (stream %d <= last %d) was sent %d times; it must complete on the old connection only", path, id, last, len(ss))
			}
			continue
		}
		retried := false
		for _, s := range ss {
			if s.Conn().Index != 0 {
				retried = true
			}
		}
		if !retried {
			t.Errorf("%s (stream %d > last %d) was not retried on a new connection", path, id, last)
		}
	}
	// The client either processed the GOAWAY and the PING after it, or
	// closed the connection once its last stream was done; either way the
	// fake has checked that no stream was opened after the GOAWAY.
	if !h2fake.WaitUntil(5*time.Second, func() bool {
		select {
		case <-c0.Done():
			return true
		default:
			return c0.GoAwayProcessed()
		}
	}) {
		t.Errorf("client neither ACKed the PING sent after GOAWAY nor closed the connection")
	}
	// New requests go elsewhere.
	parallel(3, func(i int) {
		path := fmt.Sprintf("/after/%d", i)
		checkEcho(t, roundTrip(ctx, p, "GET", fs.URL(path), nil), path, nil)
	})
	if n := len(c0.Streams()); n != 6 {
		t.Errorf("the connection that sent GOAWAY got %d streams, want the original 6", n)
	}
}

// When a request fails because of a GOAWAY, the GOAWAY's debug data is in
// the error text.
func TestH2GoAwayDebugDataInError(t *testing.T) {
	t.Parallel()
	for _, code := range []http2.ErrCode{http2.ErrCodeNo, http2.ErrCodeProtocol} {
		t.Run(code.String(), func(t *testing.T) {
			t.Parallel()
			fs := h2fake.New(t, h2fake.Options{Handler: func(s *h2fake.Stream) {
				if s.Path() != "/shut" {
					h2fake.EchoHandler(s)
					return
				}
				if _, err := s.ReadBody(); err != nil {
					return
				}
				c := s.Conn()
				// The request's stream is <= last: the server may have
				// processed it, and then it goes away.
				_ = c.GoAway(s.ID, code, `{"reason":"Shutdown"}`)
				h2fake.WaitUntil(2*time.Second, c.GoAwayProcessed)
				c.Close()
			}})
			p := newTestPool(t, fs, Options{Connections: 1})
			r := roundTrip(ctxT(t, 10*time.Second), p, "POST", fs.URL("/shut"), []byte("{}"))
			if r.err == nil {
				t.Fatalf("request whose connection went away succeeded: %d", r.status)
			}
			if !strings.Contains(r.err.Error(), "Shutdown") {
				t.Errorf("error %q does not carry the GOAWAY debug data {\"reason\":\"Shutdown\"}", r.err)
			}
			if n := len(fs.StreamsForPath("/shut")); n != 1 {
				t.Errorf("request sent %d times; a stream <= GOAWAY's last stream id may have been processed and must not be retried", n)
			}
			checkEcho(t, roundTrip(ctxT(t, 10*time.Second), p, "GET", fs.URL("/next"), nil), "/next", nil)
		})
	}
}

// RST_STREAM(REFUSED_STREAM) means the server did not process the request:
// it is retried transparently, with its whole body.
func TestH2RefusedStreamRetried(t *testing.T) {
	t.Parallel()
	var mu sync.Mutex
	seen := map[string]int{}
	fs := h2fake.New(t, h2fake.Options{Handler: func(s *h2fake.Stream) {
		mu.Lock()
		seen[s.Path()]++
		first := seen[s.Path()] == 1
		mu.Unlock()
		if first {
			if s.Path() == "/refuse-after-body" {
				if _, err := s.ReadBody(); err != nil {
					return
				}
			}
			_ = s.Reset(http2.ErrCodeRefusedStream)
			return
		}
		h2fake.EchoHandler(s)
	}})
	p := newTestPool(t, fs, Options{Connections: 1})
	ctx := ctxT(t, 10*time.Second)
	small := []byte(`{"aps":{}}`)
	checkEcho(t, roundTrip(ctx, p, "POST", fs.URL("/refuse-after-body"), small), "/refuse-after-body", small)
	big := randBytes(200000)
	checkEcho(t, roundTrip(ctx, p, "POST", fs.URL("/refuse-at-once"), big), "/refuse-at-once", big)
	for _, path := range []string{"/refuse-after-body", "/refuse-at-once"} {
		if n := len(fs.StreamsForPath(path)); n != 2 {
			t.Errorf("%s sent %d times, want 2 (refused, then retried)", path, n)
		}
	}
}

// Any other RST_STREAM code fails the request (no retry); the connection
// stays usable.
func TestH2RstStreamFailsRequest(t *testing.T) {
	t.Parallel()
	codes := []http2.ErrCode{http2.ErrCodeInternal, http2.ErrCodeCancel, http2.ErrCodeProtocol, http2.ErrCodeEnhanceYourCalm}
	fs := h2fake.New(t, h2fake.Options{Handler: func(s *h2fake.Stream) {
		if _, err := s.ReadBody(); err != nil {
			return
		}
		var code int
		if _, err := fmt.Sscanf(s.Path(), "/rst/%d", &code); err == nil {
			_ = s.Reset(http2.ErrCode(code))
			return
		}
		if s.Path() == "/rst-after-headers" {
			_ = s.WriteHeaders([]hpack.HeaderField{{Name: ":status", Value: "200"}}, false)
			_ = s.WriteData([]byte("partial"), false)
			_ = s.Reset(http2.ErrCodeInternal)
			return
		}
		h2fake.EchoHandler(s)
	}})
	p := newTestPool(t, fs, Options{Connections: 1})
	ctx := ctxT(t, 10*time.Second)
	for _, code := range codes {
		path := fmt.Sprintf("/rst/%d", code)
		r := roundTrip(ctx, p, "POST", fs.URL(path), []byte("x"))
		if r.err == nil {
			t.Errorf("RST_STREAM(%v): request succeeded with %d", code, r.status)
		}
		if n := len(fs.StreamsForPath(path)); n != 1 {
			t.Errorf("RST_STREAM(%v): request sent %d times, want 1 (no retry)", code, n)
		}
	}
	r := roundTrip(ctx, p, "GET", fs.URL("/rst-after-headers"), nil)
	if r.err == nil {
		t.Errorf("RST_STREAM after the response HEADERS: request succeeded with body %q", r.body)
	}
	checkEcho(t, roundTrip(ctx, p, "GET", fs.URL("/ok"), nil), "/ok", nil)
	if n := fs.NumConns(); n != 1 {
		t.Errorf("%d connections: RST_STREAM took the connection down", n)
	}
}

// PUSH_PROMISE to a client that sent ENABLE_PUSH=0 is a connection error of
// type PROTOCOL_ERROR (RFC 9113 §6.6, §8.4): GOAWAY(PROTOCOL_ERROR), the
// connection is closed, the request fails, the next one redials.
func TestH2PushPromiseIsConnectionError(t *testing.T) {
	t.Parallel()
	fs := h2fake.New(t, h2fake.Options{Handler: func(s *h2fake.Stream) {
		if s.Path() != "/push" {
			h2fake.EchoHandler(s)
			return
		}
		_ = s.Conn().WritePushPromise(s.ID, 2, []hpack.HeaderField{
			{Name: ":method", Value: "GET"}, {Name: ":scheme", Value: "https"},
			{Name: ":authority", Value: s.Authority()}, {Name: ":path", Value: "/pushed"},
		})
		select {
		case <-s.Gone():
		case <-time.After(5 * time.Second):
			_ = s.Respond(200, []byte("push accepted"))
		}
	}})
	p := newTestPool(t, fs, Options{Connections: 1})
	r := roundTrip(ctxT(t, 10*time.Second), p, "GET", fs.URL("/push"), nil)
	if r.err == nil {
		t.Errorf("request on a connection that got PUSH_PROMISE succeeded: %q", r.body)
	}
	c := fs.Conns()[0]
	select {
	case <-c.Done():
	case <-time.After(5 * time.Second):
		t.Errorf("connection not closed after PUSH_PROMISE")
	}
	var codes []http2.ErrCode
	for _, g := range c.ClientGoAways() {
		codes = append(codes, g.Code)
	}
	if len(codes) == 0 || codes[len(codes)-1] != http2.ErrCodeProtocol {
		t.Errorf("client's GOAWAY codes %v, want PROTOCOL_ERROR (connection error, RFC 9113 §5.4.1)", codes)
	}
	checkEcho(t, roundTrip(ctxT(t, 10*time.Second), p, "GET", fs.URL("/next"), nil), "/next", nil)
	if n := fs.NumConns(); n != 2 {
		t.Errorf("%d connections, want 2", n)
	}
}

// The server drops the connection while requests are in flight: they fail
// (they may have been processed: no silent retry); the next request redials.
func TestH2ServerDropsConnection(t *testing.T) {
	t.Parallel()
	fs := h2fake.New(t, h2fake.Options{Handler: func(s *h2fake.Stream) {
		if !strings.HasPrefix(s.Path(), "/drop/") {
			h2fake.EchoHandler(s)
			return
		}
		if _, err := s.ReadBody(); err != nil {
			return
		}
		if s.Path() == "/drop/trigger" {
			c := s.Conn()
			h2fake.WaitUntil(5*time.Second, func() bool { return c.Open() >= 3 })
			c.Close()
			return
		}
		<-s.Gone()
	}})
	p := newTestPool(t, fs, Options{Connections: 1})
	ctx := ctxT(t, 15*time.Second)
	paths := []string{"/drop/a", "/drop/b", "/drop/trigger"}
	results := make([]result, len(paths))
	parallel(len(paths), func(i int) {
		results[i] = roundTrip(ctx, p, "POST", fs.URL(paths[i]), []byte("payload"))
	})
	for i, r := range results {
		if r.err == nil {
			t.Errorf("%s: succeeded although the connection was dropped", paths[i])
		} else if errors.Is(r.err, context.DeadlineExceeded) {
			t.Errorf("%s: hung until the test's deadline instead of failing: %v", paths[i], r.err)
		}
		if n := len(fs.StreamsForPath(paths[i])); n != 1 {
			t.Errorf("%s: sent %d times; a request in flight on a dropped connection must not be retried", paths[i], n)
		}
	}
	checkEcho(t, roundTrip(ctx, p, "GET", fs.URL("/next"), nil), "/next", nil)
	if n := fs.NumConns(); n != 2 {
		t.Errorf("%d connections, want 2", n)
	}
}

// ---------------------------------------------------------------------------
// Cancellation and timeouts

func TestH2ContextCancellation(t *testing.T) {
	t.Parallel()
	holdHandler := func(s *h2fake.Stream) {
		if strings.HasPrefix(s.Path(), "/wait") {
			<-s.Gone()
			return
		}
		h2fake.EchoHandler(s)
	}

	t.Run("cancel while waiting for the answer", func(t *testing.T) {
		t.Parallel()
		fs := h2fake.New(t, h2fake.Options{Handler: holdHandler})
		p := newTestPool(t, fs, Options{Connections: 1})
		ctx, cancel := context.WithCancel(bg())
		defer cancel()
		var cancelledAt time.Time
		go func() {
			h2fake.WaitUntil(5*time.Second, func() bool { return len(fs.StreamsForPath("/wait")) == 1 })
			cancelledAt = time.Now()
			cancel()
		}()
		r := roundTrip(ctx, p, "GET", fs.URL("/wait"), nil)
		if r.err == nil || !errors.Is(r.err, context.Canceled) {
			t.Fatalf("got %v, want an error that errors.Is context.Canceled", r.err)
		}
		if d := time.Since(cancelledAt); d > 2*time.Second {
			t.Errorf("RoundTrip returned %v after the cancel", d)
		}
		s := fs.StreamsForPath("/wait")[0]
		if code, ok := s.WaitClientReset(5 * time.Second); !ok || code != http2.ErrCodeCancel {
			t.Errorf("RST_STREAM for the cancelled stream: %v (sent %v), want CANCEL", code, ok)
		}
		checkEcho(t, roundTrip(ctxT(t, 10*time.Second), p, "GET", fs.URL("/ok"), nil), "/ok", nil)
		if n := fs.NumConns(); n != 1 {
			t.Errorf("%d connections: the cancel took the connection down", n)
		}
	})

	t.Run("deadline while waiting for the answer", func(t *testing.T) {
		t.Parallel()
		fs := h2fake.New(t, h2fake.Options{Handler: holdHandler})
		p := newTestPool(t, fs, Options{Connections: 1})
		checkEcho(t, roundTrip(ctxT(t, 10*time.Second), p, "GET", fs.URL("/warm"), nil), "/warm", nil)
		ctx, cancel := context.WithTimeout(bg(), 200*time.Millisecond)
		defer cancel()
		r := roundTrip(ctx, p, "GET", fs.URL("/wait"), nil)
		if r.err == nil || !errors.Is(r.err, context.DeadlineExceeded) {
			t.Fatalf("got %v, want an error that errors.Is context.DeadlineExceeded", r.err)
		}
		if r.elapsed > 3*time.Second {
			t.Errorf("RoundTrip took %v with a 200ms deadline", r.elapsed)
		}
		ss := fs.StreamsForPath("/wait")
		if len(ss) != 1 {
			t.Fatalf("%d streams for /wait", len(ss))
		}
		if code, ok := ss[0].WaitClientReset(5 * time.Second); !ok || code != http2.ErrCodeCancel {
			t.Errorf("RST_STREAM for the timed-out stream: %v (sent %v), want CANCEL", code, ok)
		}
		checkEcho(t, roundTrip(ctxT(t, 10*time.Second), p, "GET", fs.URL("/ok"), nil), "/ok", nil)
		if n := fs.NumConns(); n != 1 {
			t.Errorf("%d connections, want 1", n)
		}
	})

	t.Run("deadline while waiting for a stream slot", func(t *testing.T) {
		t.Parallel()
		fs := h2fake.New(t, h2fake.Options{Handler: holdHandler, Settings: settings(sMCS, 1)})
		p := newTestPool(t, fs, Options{Connections: 1})
		holdCtx, release := context.WithCancel(bg())
		defer release()
		held := make(chan result, 1)
		go func() { held <- roundTrip(holdCtx, p, "GET", fs.URL("/wait/hold"), nil) }()
		if !h2fake.WaitUntil(5*time.Second, func() bool { return len(fs.StreamsForPath("/wait/hold")) == 1 }) {
			t.Fatal("the first request never arrived")
		}
		ctx, cancel := context.WithTimeout(bg(), 200*time.Millisecond)
		defer cancel()
		r := roundTrip(ctx, p, "GET", fs.URL("/queued"), nil)
		if r.err == nil || !errors.Is(r.err, context.DeadlineExceeded) {
			t.Errorf("queued request: got %v, want an error that errors.Is context.DeadlineExceeded", r.err)
		}
		if r.elapsed > 3*time.Second {
			t.Errorf("queued request took %v with a 200ms deadline", r.elapsed)
		}
		if n := len(fs.StreamsForPath("/queued")); n != 0 {
			t.Errorf("queued request opened %d stream(s) beyond MAX_CONCURRENT_STREAMS=1", n)
		}
		release()
		if hr := <-held; !errors.Is(hr.err, context.Canceled) {
			t.Errorf("held request after cancel: %v, want context.Canceled", hr.err)
		}
		checkEcho(t, roundTrip(ctxT(t, 10*time.Second), p, "GET", fs.URL("/ok"), nil), "/ok", nil)
	})

	t.Run("cancel while blocked on flow control", func(t *testing.T) {
		t.Parallel()
		fs := h2fake.New(t, h2fake.Options{ManualFlow: true, Settings: settings(sMCS, 100, sIWS, 1000)})
		p := newTestPool(t, fs, Options{Connections: 1})
		ctx, cancel := context.WithCancel(bg())
		defer cancel()
		done := make(chan result, 1)
		go func() { done <- roundTrip(ctx, p, "POST", fs.URL("/blocked"), randBytes(5000)) }()
		var s *h2fake.Stream
		if !h2fake.WaitUntil(5*time.Second, func() bool {
			if ss := fs.StreamsForPath("/blocked"); len(ss) == 1 {
				s = ss[0]
				return s.RecvFlow() >= 1000
			}
			return false
		}) {
			t.Fatal("the body's first 1000 bytes never arrived")
		}
		cancel()
		select {
		case r := <-done:
			if !errors.Is(r.err, context.Canceled) {
				t.Errorf("got %v, want context.Canceled", r.err)
			}
		case <-time.After(3 * time.Second):
			t.Fatalf("RoundTrip blocked on flow control did not return 3s after its context was cancelled")
		}
		if code, ok := s.WaitClientReset(5 * time.Second); !ok || code != http2.ErrCodeCancel {
			t.Errorf("RST_STREAM: %v (sent %v), want CANCEL", code, ok)
		}
		r := roundTrip(ctxT(t, 10*time.Second), p, "POST", fs.URL("/small"), []byte("tiny"))
		checkEcho(t, r, "/small", []byte("tiny"))
	})
}

// RequestTimeout bounds one RoundTrip: an unanswered request fails with a
// timeout error and its stream is reset; other requests are unaffected.
func TestH2RequestTimeout(t *testing.T) {
	t.Parallel()
	fs := h2fake.New(t, h2fake.Options{Handler: func(s *h2fake.Stream) {
		switch s.Path() {
		case "/never":
			<-s.Gone()
			return
		case "/slowish":
			select {
			case <-time.After(100 * time.Millisecond):
			case <-s.Gone():
				return
			}
		}
		h2fake.EchoHandler(s)
	}})
	p := newTestPool(t, fs, Options{Connections: 1, RequestTimeout: 300 * time.Millisecond})
	ctx := ctxT(t, 10*time.Second)
	var never, slowish result
	parallel(2, func(i int) {
		if i == 0 {
			never = roundTrip(ctx, p, "GET", fs.URL("/never"), nil)
		} else {
			slowish = roundTrip(ctx, p, "GET", fs.URL("/slowish"), nil)
		}
	})
	if never.err == nil {
		t.Fatalf("unanswered request succeeded")
	}
	if !isTimeout(never.err) {
		t.Errorf("error %v (%T): want errors.Is context.DeadlineExceeded or a net.Error with Timeout()", never.err, never.err)
	}
	if never.elapsed > 3*time.Second {
		t.Errorf("unanswered request failed after %v with RequestTimeout 300ms", never.elapsed)
	}
	checkEcho(t, slowish, "/slowish", nil)
	ss := fs.StreamsForPath("/never")
	if len(ss) != 1 {
		t.Fatalf("%d streams for /never", len(ss))
	}
	if _, ok := ss[0].WaitClientReset(5 * time.Second); !ok {
		t.Errorf("client did not reset the timed-out stream")
	}
	checkEcho(t, roundTrip(ctx, p, "GET", fs.URL("/after"), nil), "/after", nil)
	if n := fs.NumConns(); n != 1 {
		t.Errorf("%d connections: the timeout took the connection down", n)
	}
}

// CloseIdleConnections closes a connection that carries no request; the
// next request dials again.
func TestH2CloseIdleConnections(t *testing.T) {
	t.Parallel()
	fs := h2fake.New(t, h2fake.Options{})
	p := newTestPool(t, fs, Options{Connections: 1})
	ctx := ctxT(t, 10*time.Second)
	checkEcho(t, roundTrip(ctx, p, "GET", fs.URL("/a"), nil), "/a", nil)
	c := fs.Conns()[0]
	p.CloseIdleConnections()
	select {
	case <-c.Done():
	case <-time.After(5 * time.Second):
		t.Errorf("idle connection still open 5s after CloseIdleConnections")
	}
	if g := c.ClientGoAways(); len(g) != 1 || g[0].Code != http2.ErrCodeNo {
		t.Errorf("client GOAWAYs before the idle close: %+v, want one NO_ERROR", g)
	}
	checkEcho(t, roundTrip(ctx, p, "GET", fs.URL("/b"), nil), "/b", nil)
	if n := fs.NumConns(); n != 2 {
		t.Errorf("%d connections, want 2", n)
	}
}

// ---------------------------------------------------------------------------
// Load

// 2000 concurrent requests over 2 connections with MAX_CONCURRENT_STREAMS
// 100 all complete, each with its own answer.
func TestH2ManyConcurrentRequests(t *testing.T) {
	t.Parallel()
	fs := h2fake.New(t, h2fake.Options{Settings: settings(sMCS, 100)})
	p := newTestPool(t, fs, Options{Connections: 2})
	ctx := ctxT(t, 60*time.Second)
	var failed atomic.Int32
	parallel(2000, func(i int) {
		path := fmt.Sprintf("/3/device/%064d", i)
		body := []byte(fmt.Sprintf(`{"n":%d}`, i))
		r := roundTrip(ctx, p, "POST", fs.URL(path), body, "Apns-Topic", "com.example")
		if r.err != nil || r.header.Get("X-Echo-Path") != path || !bytes.Equal(r.body, body) {
			if failed.Add(1) <= 5 {
				checkEcho(t, r, path, body)
			}
		}
	})
	if n := failed.Load(); n > 0 {
		t.Errorf("%d of 2000 requests failed or got another request's answer", n)
	}
	if n := fs.NumConns(); n < 1 || n > 2 {
		t.Errorf("%d connections for Connections: 2", n)
	}
	for _, c := range fs.Conns() {
		if pk := c.Peak(); pk > 100 {
			t.Errorf("conn %d: %d concurrent streams", c.Index, pk)
		}
	}
}

// Interoperability with golang.org/x/net/http2's server: concurrent POSTs
// with bodies, each echoed back.
func TestH2InteropWithXNetServer(t *testing.T) {
	t.Parallel()
	ts := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.ProtoMajor != 2 {
			http.Error(w, "want HTTP/2, got "+r.Proto, http.StatusHTTPVersionNotSupported)
			return
		}
		b, err := io.ReadAll(r.Body)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		if r.ContentLength >= 0 && int64(len(b)) != r.ContentLength {
			http.Error(w, "content-length mismatch", http.StatusBadRequest)
			return
		}
		w.Header().Set("X-Echo-Path", r.URL.Path)
		w.Header().Set("Apns-Id", r.Header.Get("X-Req"))
		w.Write(b)
	}))
	if err := http2.ConfigureServer(ts.Config, &http2.Server{MaxConcurrentStreams: 50}); err != nil {
		t.Fatal(err)
	}
	ts.TLS = ts.Config.TLSConfig
	ts.StartTLS()
	t.Cleanup(ts.Close)
	pool := x509.NewCertPool()
	pool.AddCert(ts.Certificate())
	p, err := New(Options{Connections: 2, RootCAs: pool})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(p.CloseIdleConnections)
	ctx := ctxT(t, 30*time.Second)
	parallel(300, func(i int) {
		path := fmt.Sprintf("/interop/%d", i)
		body := randBytes(1 + mrand.IntN(30000))
		r := roundTrip(ctx, p, "POST", ts.URL+path, body, "X-Req", strconv.Itoa(i))
		if r.err != nil {
			t.Errorf("%s: %v", path, r.err)
			return
		}
		if r.status != 200 || r.header.Get("X-Echo-Path") != path || r.header.Get("Apns-Id") != strconv.Itoa(i) || !bytes.Equal(r.body, body) {
			t.Errorf("%s: status %d, echo path %q, id %q, %d-byte body (want %d)", path, r.status, r.header.Get("X-Echo-Path"), r.header.Get("Apns-Id"), len(r.body), len(body))
		}
	})
}

// ---------------------------------------------------------------------------
// Edge cases of the stream life cycle and of limits

// A server may answer before the request body is complete (RFC 9113 §8.1).
// The client must then still close its half of the stream (finish the body
// or RST_STREAM): a half-closed stream counts against
// MAX_CONCURRENT_STREAMS (§5.1.2). With the limit at 1, the fake fails the
// test if the next request opens a stream while the first is still open.
// A RST_STREAM(NO_ERROR) after the complete response must not make the
// client discard the response.
func TestH2EarlyResponseClosesStream(t *testing.T) {
	t.Parallel()
	for _, rst := range []bool{false, true} {
		name := "response only"
		if rst {
			name = "response then RST_STREAM(NO_ERROR)"
		}
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			fs := h2fake.New(t, h2fake.Options{ManualFlow: true, Settings: settings(sMCS, 1, sIWS, 1000), Handler: func(s *h2fake.Stream) {
				if s.Path() != "/early" {
					h2fake.EchoHandler(s)
					return
				}
				h2fake.WaitUntil(5*time.Second, func() bool { return s.RecvFlow() >= 1000 })
				if err := s.Respond(200, []byte("early")); err != nil {
					return
				}
				if rst {
					_ = s.Reset(http2.ErrCodeNo)
				}
			}})
			p := newTestPool(t, fs, Options{Connections: 1})
			ctx := ctxT(t, 10*time.Second)
			r := roundTrip(ctx, p, "POST", fs.URL("/early"), randBytes(5000))
			switch {
			case rst && (r.err != nil || r.status != 200 || string(r.body) != "early"):
				t.Errorf("complete response followed by RST_STREAM(NO_ERROR): got %d %q, %v; want 200 \"early\" (RFC 9113 §8.1: clients MUST NOT discard it)", r.status, r.body, r.err)
			case !rst && r.err == nil && (r.status != 200 || string(r.body) != "early"):
				t.Errorf("early response: got %d %q", r.status, r.body)
			}
			ss := fs.StreamsForPath("/early")
			if len(ss) != 1 {
				t.Fatalf("%d streams for /early", len(ss))
			}
			if !rst && !h2fake.WaitUntil(5*time.Second, ss[0].ClosedByClient) {
				t.Errorf("after the complete early response the client neither finished the request body nor sent RST_STREAM: the stream stays half-closed and counts against MAX_CONCURRENT_STREAMS (RFC 9113 §5.1.2)")
			}
			checkEcho(t, roundTrip(ctx, p, "GET", fs.URL("/next"), nil), "/next", nil)
		})
	}
}

// One request whose context ends while its connection is being dialled
// must not make other requests, with time left, fail.
func TestH2ShortContextDoesNotFailOtherRequests(t *testing.T) {
	t.Parallel()
	fs := h2fake.New(t, h2fake.Options{SettingsDelay: 400 * time.Millisecond})
	p := newTestPool(t, fs, Options{Connections: 1})
	ctx, cancel := context.WithTimeout(bg(), 100*time.Millisecond)
	defer cancel()
	r := roundTrip(ctx, p, "GET", fs.URL("/short"), nil)
	if r.err == nil {
		t.Fatalf("request with a 100ms deadline succeeded though the server's SETTINGS come after 400ms")
	}
	if !errors.Is(r.err, context.DeadlineExceeded) {
		t.Errorf("short request: %v, want context.DeadlineExceeded", r.err)
	}
	r = roundTrip(ctxT(t, 10*time.Second), p, "GET", fs.URL("/patient"), nil)
	if r.err != nil {
		t.Errorf("a request with 10s to go, sent right after another request's context ended during the dial, failed: %v", r.err)
	} else {
		checkEcho(t, r, "/patient", nil)
	}
}

// A frame larger than the client's own SETTINGS_MAX_FRAME_SIZE is a
// FRAME_SIZE_ERROR (RFC 9113 §4.2): the request fails and the client says so
// with RST_STREAM or GOAWAY carrying that code.
func TestH2RejectsFrameOverMaxFrameSize(t *testing.T) {
	t.Parallel()
	fs := h2fake.New(t, h2fake.Options{Handler: func(s *h2fake.Stream) {
		if s.Path() != "/huge-frame" {
			h2fake.EchoHandler(s)
			return
		}
		if _, err := s.ReadBody(); err != nil {
			return
		}
		if err := s.WriteHeaders([]hpack.HeaderField{{Name: ":status", Value: "200"}}, false); err != nil {
			return
		}
		_ = s.WriteDataFrameRaw(bytes.Repeat([]byte("f"), int(s.Conn().ClientMaxFrame())+1000), true)
	}})
	p := newTestPool(t, fs, Options{Connections: 1})
	r := roundTrip(ctxT(t, 10*time.Second), p, "GET", fs.URL("/huge-frame"), nil)
	c := fs.Conns()[0]
	if r.err == nil {
		t.Errorf("client accepted a %d-byte DATA frame although its SETTINGS_MAX_FRAME_SIZE is %d", len(r.body), c.ClientMaxFrame())
	}
	ss := fs.StreamsForPath("/huge-frame")
	if len(ss) != 1 {
		t.Fatalf("%d streams", len(ss))
	}
	ok := h2fake.WaitUntil(5*time.Second, func() bool {
		if code, ok := ss[0].ClientReset(); ok && code == http2.ErrCodeFrameSize {
			return true
		}
		for _, g := range c.ClientGoAways() {
			if g.Code == http2.ErrCodeFrameSize {
				return true
			}
		}
		return false
	})
	if !ok {
		code, reset := ss[0].ClientReset()
		t.Errorf("no RST_STREAM or GOAWAY with FRAME_SIZE_ERROR (RST_STREAM: %v %v; GOAWAYs: %v)", code, reset, c.ClientGoAways())
	}
	checkEcho(t, roundTrip(ctxT(t, 10*time.Second), p, "GET", fs.URL("/next"), nil), "/next", nil)
}

// A request body is sent whole or refused with an error, never cut short
// (here just over 16 MiB).
func TestH2LargeRequestBodyNotTruncated(t *testing.T) {
	t.Parallel()
	fs := h2fake.New(t, h2fake.Options{Settings: settings(sMCS, 100, sIWS, 1<<24, sMFS, 1<<20)})
	p := newTestPool(t, fs, Options{Connections: 1})
	body := randBytes(16<<20 + 1)
	r := roundTrip(ctxT(t, 30*time.Second), p, "POST", fs.URL("/huge-body"), body)
	if r.rtErr != nil {
		if ss := fs.StreamsForPath("/huge-body"); len(ss) > 0 {
			t.Logf("refused with %v after sending %d bytes", r.rtErr, ss[0].BodyLen())
		}
		return
	}
	checkEcho(t, r, "/huge-body", body)
}
