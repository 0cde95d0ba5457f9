package pushsim

import (
	"bufio"
	"context"
	"crypto/tls"
	"encoding/binary"
	"errors"
	"net"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/net/http2"
)

// goAwayDebug is the GOAWAY debug data APNs sends when it closes a
// connection for maintenance.
var goAwayDebug = []byte(`{"reason":"Shutdown"}`)

const handshakeTimeout = 10 * time.Second

type connKey struct{}

// acceptLoop serves the TLS listener until it is closed.
func (s *Server) acceptLoop() {
	var backoff time.Duration
	for {
		nc, err := s.ln.Accept()
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			// Out of file descriptors and the like: back off as net/http does.
			backoff = min(max(2*backoff, 5*time.Millisecond), time.Second)
			s.log.Warn("accept failed", "error", err, "retry_in", backoff)
			if !sleep(s.ctx, backoff) {
				return
			}
			continue
		}
		backoff = 0
		c := &conn{Conn: tls.Server(nc, s.tlsConf)}
		c.w.w = c.Conn
		if !s.track(c, true) {
			c.Close()
			return
		}
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			defer s.track(c, false)
			s.serveConn(c)
		}()
	}
}

// track adds or removes c from the set Close drops; adding fails once the
// server is closed.
func (s *Server) track(c *conn, add bool) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !add {
		delete(s.conns, c)
		return true
	}
	if s.closed {
		return false
	}
	s.conns[c] = struct{}{}
	return true
}

func (s *Server) serveConn(c *conn) {
	defer c.Close()
	ctx, cancel := context.WithTimeout(s.ctx, handshakeTimeout)
	err := c.HandshakeContext(ctx)
	cancel()
	if err != nil {
		s.log.Debug("tls handshake failed", "remote", c.RemoteAddr().String(), "error", err)
		return
	}
	s.stats.connections.Add(1)
	if c.ConnectionState().NegotiatedProtocol != http2.NextProtoTLS {
		s.refuseHTTP1(c)
		return
	}
	// ServeConn (deprecated in favour of http.Server) is used because
	// http.Server only speaks HTTP/2 on a bare *tls.Conn, and the GOAWAY
	// debug data needs the connection wrapped.
	s.h2.ServeConn(c, &http2.ServeConnOpts{
		Context:    context.WithValue(s.ctx, connKey{}, c),
		BaseConfig: s.h1,
		Handler:    s.handler,
	})
}

// refuseHTTP1 answers requests from a client that did not negotiate h2 with
// 505, as neither APNs nor FCM speak HTTP/1.1 here.
func (s *Server) refuseHTTP1(c *conn) {
	c.SetDeadline(time.Now().Add(handshakeTimeout))
	req, err := http.ReadRequest(bufio.NewReader(c))
	if err != nil {
		return
	}
	req.Body.Close()
	body := `{"reason":"HTTP/2 required"}`
	resp := "HTTP/1.1 505 HTTP Version Not Supported\r\n" +
		"Content-Type: application/json\r\n" +
		"Connection: close\r\n" +
		"Content-Length: " + strconv.Itoa(len(body)) + "\r\n\r\n" + body
	c.Conn.Write([]byte(resp))
	s.log.Debug("refused HTTP/1 request", "remote", c.RemoteAddr().String(), "path", req.URL.Path)
}

// conn is one TLS connection. Writes go through a frameFilter so that a
// GOAWAY we asked for carries APNs-style debug data, which Go's HTTP/2 server
// cannot add by itself.
type conn struct {
	*tls.Conn
	requests  atomic.Int64
	goingAway atomic.Bool
	w         goAwayWriter
}

func (c *conn) Write(p []byte) (int, error) { return c.w.Write(p) }

// countRequest counts one request and reports whether it is the one after
// which the connection must go away (once per connection).
func (c *conn) countRequest(goAwayAfter int) bool {
	n := c.requests.Add(1)
	if goAwayAfter <= 0 || n < int64(goAwayAfter) || !c.goingAway.CompareAndSwap(false, true) {
		return false
	}
	c.w.requestDebug(goAwayDebug)
	return true
}

// goAwayWriter passes the HTTP/2 server's frames to w unchanged, except that
// once requestDebug was called the next graceful GOAWAY gets debug data.
type goAwayWriter struct {
	mu sync.Mutex
	w  interface{ Write([]byte) (int, error) }
	f  frameFilter
}

func (g *goAwayWriter) requestDebug(debug []byte) {
	g.mu.Lock()
	if g.f.debug == nil {
		g.f.debug = debug
	}
	g.mu.Unlock()
}

func (g *goAwayWriter) Write(p []byte) (int, error) {
	g.mu.Lock()
	defer g.mu.Unlock()
	out := g.f.filter(p)
	if len(out) == 0 {
		return len(p), nil
	}
	if _, err := g.w.Write(out); err != nil {
		return 0, err
	}
	return len(p), nil
}

const (
	frameHeaderLen = 9
	frameGoAway    = 0x7
	goAwayFixedLen = 8 // last stream id and error code
)

// frameFilter follows the frame boundaries of the server's outgoing HTTP/2
// byte stream (which starts with a frame: the server sends no preface) and
// appends debug to the first GOAWAY with error code NO_ERROR once debug is
// set. A frame header that a write splits is held back until it is whole,
// which is safe because the server's writes end on frame boundaries when it
// flushes.
type frameFilter struct {
	debug  []byte // appended to the next graceful GOAWAY; nil once used
	held   []byte // incomplete header (plus GOAWAY fixed payload) held back
	remain int    // payload bytes of the current frame still to pass through
}

func frameLength(h []byte) int { return int(h[0])<<16 | int(h[1])<<8 | int(h[2]) }

// filter returns the bytes to send for p; it returns p itself when nothing
// changed.
func (f *frameFilter) filter(p []byte) []byte {
	var out []byte
	modified := false
	span := 0 // start of the bytes of p not yet copied to out
	i := 0
	for i < len(p) {
		if f.remain > 0 {
			k := min(f.remain, len(p)-i)
			i += k
			f.remain -= k
			continue
		}
		if len(f.held) == 0 && len(p)-i >= frameHeaderLen && (f.debug == nil || p[i+3] != frameGoAway) {
			f.remain = frameLength(p[i:])
			i += frameHeaderLen
			continue
		}
		// Slow path: gather a split header, or a GOAWAY to rewrite, in held.
		if !modified {
			modified = true
			out = make([]byte, 0, len(p)+len(f.debug)+frameHeaderLen)
		}
		out = append(out, p[span:i]...)
		need := f.need()
		k := min(need-len(f.held), len(p)-i)
		f.held = append(f.held, p[i:i+k]...)
		i += k
		span = i
		if len(f.held) < f.need() {
			continue
		}
		out = f.emit(out)
	}
	if !modified {
		return p
	}
	return append(out, p[span:]...)
}

// need is how many bytes held must gather before they can be sent.
func (f *frameFilter) need() int {
	if len(f.held) > 3 && f.held[3] == frameGoAway && f.debug != nil && frameLength(f.held) == goAwayFixedLen {
		return frameHeaderLen + goAwayFixedLen
	}
	return frameHeaderLen
}

// emit appends the complete held bytes to out, rewriting a graceful GOAWAY.
func (f *frameFilter) emit(out []byte) []byte {
	h := f.held
	f.held = f.held[:0]
	if len(h) == frameHeaderLen+goAwayFixedLen {
		code := binary.BigEndian.Uint32(h[frameHeaderLen+4:])
		if code == uint32(http2.ErrCodeNo) {
			n := goAwayFixedLen + len(f.debug)
			out = append(out, byte(n>>16), byte(n>>8), byte(n))
			out = append(out, h[3:]...)
			out = append(out, f.debug...)
			f.debug = nil
			return out
		}
		return append(out, h...)
	}
	f.remain = frameLength(h)
	return append(out, h...)
}

// connFrom returns the connection a request arrived on.
func connFrom(r *http.Request) *conn {
	c, _ := r.Context().Value(connKey{}).(*conn)
	return c
}
