package transport

import (
	"crypto/tls"
	"errors"
	"net"
	"sync"
)

// maxPending bounds what Write buffers before it waits for the flusher.
const maxPending = 256 << 10

// coalescingConn batches the HTTP/2 client's writes. The framer flushes
// after each request's frames, which made every request its own TLS record
// and write syscall. Here a Write only appends to a buffer, and one
// goroutine writes the buffer out: while it is in a syscall, the frames of
// further requests accumulate and then go out together. An idle connection
// gains no delay, since the flusher wakes on the first byte.
type coalescingConn struct {
	net.Conn
	mu     sync.Mutex
	cond   *sync.Cond
	buf    []byte
	spare  []byte
	err    error // sticky: the first write error, or errClosed
	closed chan struct{}
}

var errClosed = errors.New("connection closed")

func newCoalescingConn(c net.Conn) *coalescingConn {
	cc := &coalescingConn{Conn: c, closed: make(chan struct{})}
	cc.cond = sync.NewCond(&cc.mu)
	go cc.flushLoop()
	return cc
}

// ConnectionState is the TLS state, which the HTTP/2 transport looks for.
func (c *coalescingConn) ConnectionState() tls.ConnectionState {
	if tc, ok := c.Conn.(interface{ ConnectionState() tls.ConnectionState }); ok {
		return tc.ConnectionState()
	}
	return tls.ConnectionState{}
}

// Write queues p. An error of an earlier flush is returned here, which is
// how the HTTP/2 transport learns that the connection broke.
func (c *coalescingConn) Write(p []byte) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for c.err == nil && len(c.buf) >= maxPending {
		c.cond.Wait()
	}
	if c.err != nil {
		return 0, c.err
	}
	c.buf = append(c.buf, p...)
	c.cond.Broadcast()
	return len(p), nil
}

func (c *coalescingConn) flushLoop() {
	c.mu.Lock()
	defer c.mu.Unlock()
	for {
		for len(c.buf) == 0 && c.err == nil {
			c.cond.Wait()
		}
		if c.err != nil {
			return
		}
		out := c.buf
		c.buf = c.spare[:0]
		c.mu.Unlock()
		_, err := c.Conn.Write(out)
		c.mu.Lock()
		c.spare = out[:0]
		if err != nil && c.err == nil {
			c.err = err
		}
		c.cond.Broadcast()
	}
}

// Close stops the flusher and closes the connection. Frames not yet
// written are dropped, as on any abrupt close.
func (c *coalescingConn) Close() error {
	c.mu.Lock()
	if c.err == nil {
		c.err = errClosed
	}
	c.cond.Broadcast()
	c.mu.Unlock()
	return c.Conn.Close()
}
