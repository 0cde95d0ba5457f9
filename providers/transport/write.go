package transport

import (
	"errors"
	"fmt"
	"net/http"
	"runtime"
	"strings"

	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"
)

// wbufWriter lets the framer write into wbuf; the caller holds mu.
type wbufWriter clientConn

func (w *wbufWriter) Write(b []byte) (int, error) {
	cc := (*clientConn)(w)
	cc.wbuf = append(cc.wbuf, b...)
	cc.wcond.Signal()
	return len(b), nil
}

func (cc *clientConn) writeLoop() {
	var spare []byte
	cc.mu.Lock()
	defer cc.unlock()
	for {
		for len(cc.wbuf) == 0 && cc.err == nil {
			cc.wcond.Wait()
		}
		if cc.err != nil {
			// Last frames, such as a GOAWAY explaining a protocol error,
			// go out before the close; failLocked set a write deadline.
			out := cc.wbuf
			cc.wbuf = nil
			cc.unlock()
			if len(out) > 0 {
				cc.nc.Write(out)
			}
			cc.nc.Close()
			cc.mu.Lock()
			return
		}
		if len(cc.wbuf) < yieldBelow {
			// Let senders that are already runnable add their frames
			// first: a yield costs far less than the write syscall and
			// TLS record that it saves them.
			cc.unlock()
			runtime.Gosched()
			cc.mu.Lock()
			if cc.err != nil {
				continue
			}
		}
		out := cc.wbuf
		cc.wbuf = spare[:0]
		cc.unlock()
		_, err := cc.nc.Write(out)
		cc.mu.Lock()
		spare = out[:0]
		if err != nil {
			cc.failLocked(fmt.Errorf("write to %s: %w", cc.p.addr, err))
			cc.wbuf = nil
		}
		if len(cc.blocked) > 0 {
			cc.sendBlockedLocked() // queue space for bodies that waited
		}
		if cc.waiters > 0 {
			cc.cond.Broadcast() // queue space for senders
		}
	}
}

// start opens a stream for x and writes its request, unless the request
// cannot go out on this connection, which it then returns as an error
// (unprocessedError if another connection may take it). Once started, x
// is completed when its stream ends. The deadline (zero: none) is the
// request's RequestTimeout deadline, fixed by Pool.Go to span retries.
func (cc *clientConn) start(x *exchange) error {
	ctx := x.req.Context()
	body := x.reqBody
	cc.mu.Lock()
	// A slot, and room in the write queue.
	for {
		if cc.err != nil {
			err := cc.err
			cc.unlock()
			return unprocessedError{err}
		}
		if cc.draining {
			err := cc.goAway
			cc.unlock()
			return unprocessedError{err}
		}
		if err := x.expired(ctx, cc.p.opts.RequestTimeout); err != nil {
			cc.unlock()
			return err
		}
		if uint32(len(cc.streams)) < cc.maxStreams && len(cc.wbuf) < maxPending {
			break
		}
		cc.wait()
	}
	x.id = cc.nextID
	cc.nextID += 2
	if cc.nextID > maxStreamID {
		cc.draining = true
		cc.unusable.Store(true)
		cc.goAway = errors.New("stream ids used up")
	}
	x.window = cc.initialWindow
	cc.streams[x.id] = x
	cc.used.Store(true)
	cc.writeHeaders(x.req, x.id, len(body))
	x.sentAll = len(body) == 0
	x.rest = body

	// The body, as far as the windows allow now. What they do not allow
	// waits on the connection, not on the caller, so that a push waiting
	// for a WINDOW_UPDATE does not hold up the next ones: the frame reader
	// sends the rest as the windows open (sendBlockedLocked). Streams
	// already waiting go first, in order.
	if len(cc.blocked) > 0 || !cc.sendBodyLocked(x) {
		cc.blocked = append(cc.blocked, x)
	}
	cc.unlock()
	return nil
}

// sendBodyLocked writes as much of x's remaining body as the windows, the
// frame size and the write queue allow, and reports whether it is all
// out. cc.mu must be held.
func (cc *clientConn) sendBodyLocked(x *exchange) bool {
	for len(x.rest) > 0 && cc.err == nil && !x.ended {
		n := min(int32(len(x.rest)), cc.sendWindow, x.window, int32(cc.maxFrame))
		if n <= 0 || len(cc.wbuf) >= maxPending {
			return false
		}
		last := int(n) == len(x.rest)
		cc.fr.WriteData(x.id, last, x.rest[:n])
		x.sentAll = last
		x.rest = x.rest[n:]
		cc.sendWindow -= n
		x.window -= n
	}
	x.rest = nil
	return true
}

// sendBlockedLocked goes on with the bodies that waited for window or
// queue space, in the order their requests started. A stream whose
// request deadline has passed meanwhile is reset instead: a request
// completed after it could still be processed. cc.mu must be held.
func (cc *clientConn) sendBlockedLocked() {
	keep := cc.blocked[:0]
	for i, x := range cc.blocked {
		if x.ended || cc.err != nil {
			continue
		}
		if err := x.expired(x.req.Context(), cc.p.opts.RequestTimeout); err != nil {
			cc.resetLocked(x, http2.ErrCodeCancel, err)
			continue
		}
		if cc.sendBodyLocked(x) {
			continue
		}
		keep = append(keep, x)
		if cc.sendWindow <= 0 || len(cc.wbuf) >= maxPending {
			// The connection is what waits: later streams wait behind.
			keep = append(keep, cc.blocked[i+1:]...)
			break
		}
	}
	clear(cc.blocked[len(keep):])
	cc.blocked = keep
}

// wait blocks on cond; the sweeper wakes waiters so they see their
// contexts end.
func (cc *clientConn) wait() {
	cc.waiters++
	cc.cond.Wait()
	cc.waiters--
}

// writeHeaders encodes req's header block and writes HEADERS and any
// CONTINUATION frames. The caller holds mu, so the block's HPACK state and
// the stream id order match the order on the wire.
func (cc *clientConn) writeHeaders(req *http.Request, id uint32, bodyLen int) {
	endStream := bodyLen == 0
	cc.hbuf.Reset()
	cc.encodeHeaders(req, bodyLen)
	block := cc.hbuf.Bytes()
	first := true
	for first || len(block) > 0 {
		n := min(len(block), int(cc.maxFrame))
		frag := block[:n]
		block = block[n:]
		if first {
			cc.fr.WriteHeaders(http2.HeadersFrameParam{
				StreamID:      id,
				BlockFragment: frag,
				EndStream:     endStream,
				EndHeaders:    len(block) == 0,
			})
			first = false
		} else {
			cc.fr.WriteContinuation(id, len(block) == 0, frag)
		}
	}
}

func (cc *clientConn) field(name, value string) {
	cc.henc.WriteField(hpack.HeaderField{Name: name, Value: value})
}

// lower returns the HTTP/2 spelling of a header name, cached because the
// same few names repeat on every request. Connection-specific headers,
// which HTTP/2 forbids, are dropped.
func (cc *clientConn) lower(k string) (string, bool) {
	if v, ok := cc.lowerNames[k]; ok {
		return v, v != ""
	}
	v := strings.ToLower(k)
	switch v {
	case "connection", "proxy-connection", "keep-alive", "transfer-encoding", "upgrade", "host", "content-length", "te":
		v = ""
	}
	if len(cc.lowerNames) < 256 {
		cc.lowerNames[k] = v
	}
	return v, v != ""
}
